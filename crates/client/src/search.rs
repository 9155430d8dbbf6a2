//! What a search returns, as WUA's COM objects hand it out: the result
//! (`ISearchResult`) holds an update collection (`IUpdateCollection`)
//! whose entries are decoded when they are read, so a search that finds
//! 90,000 updates costs the reply's syntax check, not 90,000 `Update`s,
//! until the program looks at them. The entries are ranges of the reply
//! as it was read, kept whole: no entry's JSON is copied.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use openwua_model::enums::OperationResultCode;
use openwua_model::search::{SearchWarning, UpdateEntry};
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::ClientError;

/// `ISearchResult`: the outcome, the updates found and the warnings.
///
/// It has the JSON form of `openwua_model::search::SearchResult` both
/// ways; only its updates are decoded late.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    /// `ResultCode`.
    pub result_code: OperationResultCode,
    /// `Updates`, in catalog order, each decoded when first read.
    pub updates: UpdateCollection,
    /// `Warnings`.
    #[serde(default)]
    pub warnings: Vec<SearchWarning>,
}

/// `IUpdateCollection`: the updates of a search, each kept as the agent's
/// JSON until it is read, then decoded once and kept.
///
/// An entry that does not decode (an agent speaking another form of the
/// update) is an error for that entry alone, each time it is read.
#[derive(Clone, Default)]
pub struct UpdateCollection {
    /// The JSON the entries are ranges of: the agent's whole reply when the
    /// collection comes from [`crate::UpdateSearcher::search`]. Checked to
    /// be JSON, so UTF-8, when the collection was made.
    text: Arc<Vec<u8>>,
    entries: Vec<Slot>,
}

#[derive(Clone)]
struct Slot {
    range: Range<usize>,
    // Boxed: an undecoded entry costs a pointer, not an `UpdateEntry`.
    decoded: OnceLock<Box<UpdateEntry>>,
}

impl Slot {
    fn new(range: Range<usize>) -> Slot {
        Slot {
            range,
            decoded: OnceLock::new(),
        }
    }
}

impl UpdateCollection {
    /// `Count`.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the search found nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `Item(index)`: `None` past the end, else the entry, decoded now if
    /// it has not been read before.
    pub fn get(&self, index: usize) -> Option<Result<&UpdateEntry, ClientError>> {
        self.entries
            .get(index)
            .map(|slot| slot.entry(&self.text, index))
    }

    /// Every entry, in order, each decoded as the iterator reaches it.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            text: &self.text,
            entries: self.entries.iter().enumerate(),
        }
    }

    /// Every entry decoded and cloned, or the first one that does not
    /// decode.
    pub fn to_vec(&self) -> Result<Vec<UpdateEntry>, ClientError> {
        self.iter().map(|entry| entry.cloned()).collect()
    }
}

impl Slot {
    fn entry(&self, text: &[u8], index: usize) -> Result<&UpdateEntry, ClientError> {
        if let Some(entry) = self.decoded.get() {
            return Ok(entry);
        }
        let json = text.get(self.range.clone()).unwrap_or_default();
        let entry: UpdateEntry = serde_json::from_slice(json).map_err(|error| {
            ClientError::Protocol(format!(
                "update {index} of the search result is not as expected: {error}"
            ))
        })?;
        // Another thread may have decoded it meanwhile: both are equal.
        Ok(self.decoded.get_or_init(|| Box::new(entry)))
    }
}

/// The entries of an [`UpdateCollection`], decoded one by one.
#[derive(Clone)]
pub struct Iter<'a> {
    text: &'a [u8],
    entries: std::iter::Enumerate<std::slice::Iter<'a, Slot>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<&'a UpdateEntry, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.entries
            .next()
            .map(|(index, slot)| slot.entry(self.text, index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a UpdateCollection {
    type Item = Result<&'a UpdateEntry, ClientError>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'de> Deserialize<'de> for UpdateCollection {
    /// Checks each entry's JSON syntax and keeps its text, all entries in
    /// one buffer; decoding waits.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(CollectionVisitor)
    }
}

struct CollectionVisitor;

impl<'de> Visitor<'de> for CollectionVisitor {
    type Value = UpdateCollection;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array of updates")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<UpdateCollection, A::Error> {
        let mut text = Vec::new();
        let mut entries = Vec::new();
        while let Some(raw) = sequence.next_element::<Box<RawValue>>()? {
            let start = text.len();
            text.extend_from_slice(raw.get().as_bytes());
            entries.push(Slot::new(start..text.len()));
        }
        Ok(UpdateCollection {
            text: Arc::new(text),
            entries,
        })
    }
}

impl SearchResult {
    /// The result in a Search call's reply (the whole Varlink message),
    /// keeping the reply as the text of its updates; the reply back when it
    /// is not a successful one, for the general path to explain.
    pub(crate) fn from_reply(reply: Vec<u8>) -> Result<SearchResult, Vec<u8>> {
        let Some((result, ranges)) = borrowed_result(&reply) else {
            return Err(reply);
        };
        Ok(SearchResult {
            updates: UpdateCollection {
                text: Arc::new(reply),
                entries: ranges.into_iter().map(Slot::new).collect(),
            },
            ..result
        })
    }
}

/// The reply's result without its updates, and where each update's JSON
/// is in `reply`.
fn borrowed_result(reply: &[u8]) -> Option<(SearchResult, Vec<Range<usize>>)> {
    #[derive(Deserialize)]
    struct Reply<'a> {
        #[serde(borrow)]
        parameters: Parameters<'a>,
        #[serde(default)]
        continues: bool,
        #[serde(default)]
        error: Option<IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct Parameters<'a> {
        #[serde(borrow)]
        result: Borrowed<'a>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Borrowed<'a> {
        result_code: OperationResultCode,
        #[serde(borrow)]
        updates: Vec<&'a RawValue>,
        #[serde(default)]
        warnings: Vec<SearchWarning>,
    }
    let Reply {
        parameters: Parameters { result },
        continues: false,
        error: None,
    } = serde_json::from_slice(reply).ok()?
    else {
        return None;
    };
    let base = reply.as_ptr().addr();
    // serde_json borrows each raw value from the slice it parses; the
    // check keeps a range from ever naming other bytes.
    let ranges = result
        .updates
        .iter()
        .map(|raw| {
            let text = raw.get().as_bytes();
            let start = text.as_ptr().addr().checked_sub(base)?;
            let range = start..start.checked_add(text.len())?;
            reply.get(range.clone()).map(|_| range)
        })
        .collect::<Option<Vec<_>>>()?;
    let result = SearchResult {
        result_code: result.result_code,
        updates: UpdateCollection::default(),
        warnings: result.warnings,
    };
    Some((result, ranges))
}

impl Serialize for UpdateCollection {
    /// The decoded entries, so the JSON is what a program that decoded
    /// everything would write (normalized, not the agent's text).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut sequence = serializer.serialize_seq(Some(self.len()))?;
        for entry in self {
            sequence.serialize_element(entry.map_err(serde::ser::Error::custom)?)?;
        }
        sequence.end()
    }
}

impl fmt::Debug for UpdateCollection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateCollection")
            .field("len", &self.len())
            .field(
                "decoded",
                &self
                    .entries
                    .iter()
                    .filter(|slot| slot.decoded.get().is_some())
                    .count(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_that_does_not_decode_fails_alone_each_time_it_is_read() {
        let json = r#"{"resultCode":"Succeeded","updates":[{"not":"an update"}],"warnings":[]}"#;
        let result: SearchResult = serde_json::from_str(json).unwrap();
        assert_eq!(result.updates.len(), 1);
        for _ in 0..2 {
            let error = result.updates.get(0).unwrap().unwrap_err();
            assert!(error.to_string().contains("update 0"), "{error}");
        }
        assert!(result.updates.get(1).is_none());
        assert!(result.updates.to_vec().is_err());
        assert!(serde_json::to_string(&result).is_err());
    }

    #[test]
    fn a_reply_is_kept_whole_and_its_entries_are_ranges_of_it() {
        let reply = br#"{"parameters":{"result":{"resultCode":"Succeeded","updates":[{"a":"\u00e9"}, [1]]}}}"#;
        let result = SearchResult::from_reply(reply.to_vec()).unwrap();
        assert_eq!(result.updates.text.as_slice(), reply);
        let texts: Vec<_> = result
            .updates
            .entries
            .iter()
            .map(|slot| &reply[slot.range.clone()])
            .collect();
        assert_eq!(texts, [&br#"{"a":"\u00e9"}"#[..], b"[1]"]);
        assert!(result.warnings.is_empty());
    }

    #[test]
    fn a_reply_that_is_not_a_success_is_given_back() {
        for reply in [
            &br#"{"error":"org.openwua.Agent.WuaError","parameters":{"hresult":1}}"#[..],
            br#"{"parameters":{"result":{"resultCode":"Succeeded","updates":[]}},"continues":true}"#,
            br#"{"parameters":{"result":{"resultCode":"Succeeded","updates":[{]}}}"#,
        ] {
            assert_eq!(SearchResult::from_reply(reply.to_vec()).unwrap_err(), reply);
        }
    }

    #[test]
    fn bad_syntax_fails_the_whole_reply() {
        let json = r#"{"resultCode":"Succeeded","updates":[{"update":}]}"#;
        assert!(serde_json::from_str::<SearchResult>(json).is_err());
    }
}
