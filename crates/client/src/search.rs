//! What a search returns, as WUA's COM objects hand it out: the result
//! (`ISearchResult`) holds an update collection (`IUpdateCollection`)
//! whose entries are decoded when they are read, so a search that finds
//! 90,000 updates costs the reply's syntax check, not 90,000 `Update`s,
//! until the program looks at them.

use std::fmt;
use std::sync::OnceLock;

use openwua_model::enums::OperationResultCode;
use openwua_model::search::{SearchWarning, UpdateEntry};
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
    entries: Vec<Slot>,
}

#[derive(Clone)]
struct Slot {
    raw: Box<RawValue>,
    // Boxed: an undecoded entry costs a pointer, not an `UpdateEntry`.
    decoded: OnceLock<Box<UpdateEntry>>,
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
        self.entries.get(index).map(|slot| slot.entry(index))
    }

    /// Every entry, in order, each decoded as the iterator reaches it.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
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
    fn entry(&self, index: usize) -> Result<&UpdateEntry, ClientError> {
        if let Some(entry) = self.decoded.get() {
            return Ok(entry);
        }
        let entry: UpdateEntry = serde_json::from_str(self.raw.get()).map_err(|error| {
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
    entries: std::iter::Enumerate<std::slice::Iter<'a, Slot>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<&'a UpdateEntry, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.entries.next().map(|(index, slot)| slot.entry(index))
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
    /// Checks each entry's JSON syntax and keeps its text; decoding waits.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Vec::<Box<RawValue>>::deserialize(deserializer)?;
        let entries = raw
            .into_iter()
            .map(|raw| Slot {
                raw,
                decoded: OnceLock::new(),
            })
            .collect();
        Ok(UpdateCollection { entries })
    }
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
    fn bad_syntax_fails_the_whole_reply() {
        let json = r#"{"resultCode":"Succeeded","updates":[{"update":}]}"#;
        assert!(serde_json::from_str::<SearchResult>(json).is_err());
    }
}
