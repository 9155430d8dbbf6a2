//! Arbitrary bytes as criteria: parsing never panics, a parsed criteria
//! prints to a string that parses back to the same criteria, and an error
//! points inside the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openwua_model::criteria::Criteria;

fuzz_target!(|data: &[u8]| {
    match Criteria::parse_bytes(data) {
        Ok(criteria) => {
            let printed = criteria.to_string();
            assert_eq!(Criteria::parse(&printed), Ok(criteria), "{printed:?}");
        }
        Err(error) => {
            assert!(error.offset() <= data.len(), "{error}");
            if let Ok(text) = std::str::from_utf8(data) {
                assert!(text.is_char_boundary(error.offset()), "{error}");
            }
        }
    }
});
