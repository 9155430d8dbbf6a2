//! `Release` and `InRelease`: what a repository's suite says about itself
//! and the digests of its indexes.
//!
//! `InRelease` is clearsigned. apt verified its signature when it
//! downloaded it; this module only strips the armour (no gpg runs here) and
//! reads the text inside, so it must only be given files from apt's lists
//! directory.

use std::collections::HashMap;

use jiff::Timestamp;
use openwua_model::update::Sha256Digest;

use crate::deb822::{self, FormatError};

/// A Release file's fields that the scan uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Release {
    /// `Origin` (`Debian`).
    pub origin: String,
    /// `Label`.
    pub label: String,
    /// `Suite` (`stable`, `bookworm-security`).
    pub suite: String,
    /// `Codename` (`bookworm`).
    pub codename: String,
    /// `Version` (`12.5`).
    pub version: String,
    /// `Date`.
    pub date: Option<Timestamp>,
    /// `Valid-Until`: after it the Release is stale.
    pub valid_until: Option<Timestamp>,
    /// `Architectures`.
    pub architectures: Vec<String>,
    /// `Components`.
    pub components: Vec<String>,
    /// `Acquire-By-Hash: yes`.
    pub acquire_by_hash: bool,
    /// The `SHA256` list: index path (`main/binary-amd64/Packages`) → size
    /// and digest.
    pub sha256: HashMap<String, IndexDigest>,
}

/// The size and digest a Release gives one index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDigest {
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 digest.
    pub sha256: Sha256Digest,
}

/// The most index files one Release may list (Debian's main suite lists
/// about 1,500 per digest).
pub const MAX_INDEX_ENTRIES: usize = 100_000;

/// The largest Release or InRelease read (Debian's are about 150 kB).
pub const MAX_RELEASE_BYTES: u64 = 32 << 20;

impl Release {
    /// Who publishes the suite: `Origin`, else `Label`, else `unknown`
    /// (an update's identity and Company category need a name).
    pub fn publisher(&self) -> &str {
        [self.origin.as_str(), self.label.as_str()]
            .into_iter()
            .find(|name| !name.is_empty())
            .unwrap_or("unknown")
    }
}

/// The text inside a clearsigned message; text that is not clearsigned is
/// returned as it is (a plain `Release`).
pub fn strip_clearsign(text: &str) -> Result<String, FormatError> {
    let mut lines = text
        .lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let first = loop {
        match lines.next() {
            Some(line) if line.trim().is_empty() => continue,
            Some(line) => break line,
            None => return Ok(String::new()),
        }
    };
    if first != "-----BEGIN PGP SIGNED MESSAGE-----" {
        return Ok(text.to_owned());
    }
    // Armour headers (`Hash: SHA256`) end at the first blank line.
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
    }
    let mut body = String::with_capacity(text.len());
    for line in lines {
        if line == "-----BEGIN PGP SIGNATURE-----" {
            return Ok(body);
        }
        // Dash-escaping (RFC 4880 §7.1).
        body.push_str(line.strip_prefix("- ").unwrap_or(line));
        body.push('\n');
    }
    Err(FormatError::at(
        0,
        "a clearsigned message without its signature (truncated?)",
    ))
}

/// Parses a Release or InRelease file's text. A Release without a `SHA256`
/// list cannot verify anything and is refused.
pub fn parse_release(text: &str) -> Result<Release, FormatError> {
    let body = strip_clearsign(text)?;
    let mut paragraphs = deb822::paragraphs(&body);
    let paragraph = match paragraphs.next() {
        Some(paragraph) => paragraph?,
        None => return Err(FormatError::at(0, "an empty Release file")),
    };
    let word = |name: &str| paragraph.first_line(name).unwrap_or("").to_owned();
    let words = |name: &str| -> Vec<String> {
        paragraph
            .get(name)
            .map(|value| value.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let date = |name: &str| -> Result<Option<Timestamp>, FormatError> {
        paragraph
            .first_line(name)
            .map(|value| {
                parse_date(value).ok_or_else(|| {
                    FormatError::at(
                        paragraph.line,
                        format!("{name}: {value:?} is not an RFC 2822 date"),
                    )
                })
            })
            .transpose()
    };
    let Some(list) = paragraph.get("SHA256") else {
        return Err(FormatError::at(
            0,
            "no SHA256 list, so nothing in this suite can be verified",
        ));
    };
    let mut sha256 = HashMap::new();
    for line in deb822::value_lines(list).filter(|line| !line.is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(digest), Some(size), Some(path), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(FormatError::at(
                0,
                format!("SHA256 line {line:?} is not `digest size path`"),
            ));
        };
        let digest = digest
            .parse()
            .map_err(|_| FormatError::at(0, format!("SHA256 line {line:?}: bad digest")))?;
        let size = size
            .parse()
            .map_err(|_| FormatError::at(0, format!("SHA256 line {line:?}: bad size")))?;
        if sha256.len() >= MAX_INDEX_ENTRIES {
            return Err(FormatError::at(
                0,
                format!("more than {MAX_INDEX_ENTRIES} indexes"),
            ));
        }
        sha256.insert(
            path.to_owned(),
            IndexDigest {
                size,
                sha256: digest,
            },
        );
    }
    Ok(Release {
        origin: word("Origin"),
        label: word("Label"),
        suite: word("Suite"),
        codename: word("Codename"),
        version: word("Version"),
        date: date("Date")?,
        valid_until: date("Valid-Until")?,
        architectures: words("Architectures"),
        components: words("Components"),
        acquire_by_hash: paragraph
            .first_line("Acquire-By-Hash")
            .is_some_and(|value| value.eq_ignore_ascii_case("yes")),
        sha256,
    })
}

/// An RFC 2822 date as Release files write them; archives write the zone
/// as `UTC`, which RFC 2822 does not name, so it is read as `+0000`.
pub fn parse_date(value: &str) -> Option<Timestamp> {
    let value = value.trim();
    let normalised;
    let value = match value.strip_suffix(" UTC") {
        Some(rest) => {
            normalised = format!("{rest} +0000");
            normalised.as_str()
        }
        None => value,
    };
    jiff::fmt::rfc2822::parse(value)
        .ok()
        .map(|zoned| zoned.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_A: &str = "515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f";

    fn release_text() -> String {
        format!(
            "Origin: Debian\nLabel: Debian-Security\nSuite: stable-security\n\
             Version: 12\nCodename: bookworm-security\n\
             Date: Sat, 11 Jul 2026 10:16:37 UTC\nValid-Until: Sat, 18 Jul 2026 10:16:37 UTC\n\
             Acquire-By-Hash: yes\nArchitectures: amd64 arm64\nComponents: updates/main main\n\
             MD5Sum:\n 0ed6d4c8891eb86358b94bb35d9e4da4 10 main/binary-amd64/Packages\n\
             SHA256:\n {DIGEST_A} 50060337 main/binary-amd64/Packages\n {DIGEST_A} 7 Packages\n"
        )
    }

    #[test]
    fn reads_the_fields_and_the_sha256_list() {
        let release = parse_release(&release_text()).unwrap();
        assert_eq!(release.origin, "Debian");
        assert_eq!(release.label, "Debian-Security");
        assert_eq!(release.suite, "stable-security");
        assert_eq!(release.codename, "bookworm-security");
        assert_eq!(release.version, "12");
        assert_eq!(release.architectures, ["amd64", "arm64"]);
        assert_eq!(release.components, ["updates/main", "main"]);
        assert!(release.acquire_by_hash);
        assert_eq!(release.date.unwrap().to_string(), "2026-07-11T10:16:37Z");
        assert_eq!(
            release.valid_until.unwrap().to_string(),
            "2026-07-18T10:16:37Z"
        );
        let index = release.sha256["main/binary-amd64/Packages"];
        assert_eq!(index.size, 50060337);
        assert_eq!(index.sha256.to_string(), DIGEST_A);
        assert_eq!(release.sha256["Packages"].size, 7);
        assert_eq!(release.sha256.len(), 2);
    }

    #[test]
    fn clearsigned_text_is_unwrapped() {
        let signed = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\n{}- -Dash-Escaped: x\n\
             -----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----\n",
            release_text()
        );
        let body = strip_clearsign(&signed).unwrap();
        assert!(body.starts_with("Origin: Debian\n"));
        assert!(body.ends_with("\n-Dash-Escaped: x\n"));
        assert_eq!(parse_release(&signed).unwrap().origin, "Debian");
    }

    #[test]
    fn a_truncated_clearsigned_message_is_refused() {
        let signed = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{}",
            release_text()
        );
        assert!(parse_release(&signed).is_err());
    }

    #[test]
    fn a_release_without_sha256_is_refused() {
        let error =
            parse_release("Origin: x\nMD5Sum:\n 0ed6d4c8891eb86358b94bb35d9e4da4 1 Packages\n")
                .unwrap_err();
        assert!(error.reason.contains("SHA256"), "{error}");
    }

    #[test]
    fn bad_digests_sizes_and_dates_are_refused() {
        for text in [
            "SHA256:\n nothex 1 Packages\n",
            &format!("SHA256:\n {DIGEST_A} -1 Packages\n"),
            &format!("SHA256:\n {DIGEST_A} 1\n"),
            &format!("Date: yesterday\nSHA256:\n {DIGEST_A} 1 Packages\n"),
        ] {
            assert!(parse_release(text).is_err(), "{text}");
        }
    }

    #[test]
    fn dates_in_every_spelling_archives_use() {
        for value in [
            "Sat, 11 Jul 2026 10:16:37 UTC",
            "Sat, 11 Jul 2026 10:16:37 +0000",
            "Sat, 11 Jul 2026 10:16:37 GMT",
        ] {
            assert_eq!(
                parse_date(value).unwrap().to_string(),
                "2026-07-11T10:16:37Z",
                "{value}"
            );
        }
        assert!(parse_date("11/07/2026").is_none());
    }
}
