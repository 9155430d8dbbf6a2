//! Framing: each message is a JSON object ended by a NUL byte.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read from the socket at a time, at least; most messages fit in
/// one read. A longer message is read straight into its own buffer, which
/// grows as it fills, so that a reply of a hundred megabytes is not copied
/// piece by piece out of a reader's buffer.
const READ_CHUNK: usize = 64 * 1024;

/// A message buffer keeps at most this much capacity between messages, so
/// that one big message does not pin its size for the connection's life.
const RETAINED: usize = 64 * 1024;

/// Why reading a message failed. After any of them but [`ReadError::Closed`]
/// the stream is between message boundaries: only
/// [`MessageReader::discard`] can find the next one.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The peer closed the connection between messages.
    Closed,
    /// The peer closed the connection in the middle of a message.
    Cut,
    /// The message is longer than the reader's limit.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The reader's caller refused to hold more of the message.
    OverBudget,
    /// The socket failed.
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed => f.write_str("the connection closed"),
            ReadError::Cut => f.write_str("the connection closed in the middle of a message"),
            ReadError::TooLarge { limit } => write!(f, "a message is longer than {limit} bytes"),
            ReadError::OverBudget => f.write_str("a message is more than the reader may hold"),
            ReadError::Io(error) => write!(f, "reading failed: {error}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(error) => Some(error),
            _ => None,
        }
    }
}

/// Reads NUL-terminated messages, one at a time, into a buffer it reuses.
///
/// A message read in part survives a cancelled [`MessageReader::read`]:
/// the next call goes on with it.
#[derive(Debug)]
pub struct MessageReader<R> {
    reader: R,
    /// What was read and not handed out yet: the message being read, then
    /// perhaps the start of those after it.
    buffer: Vec<u8>,
    /// The start of `buffer` holds no NUL this far, and was admitted.
    scanned: usize,
    limit: usize,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Reads from `reader` messages of at most `limit` bytes (without the NUL).
    pub fn new(reader: R, limit: usize) -> MessageReader<R> {
        MessageReader {
            reader,
            buffer: Vec::new(),
            scanned: 0,
            limit,
        }
    }

    /// Changes the longest message read.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The longest message read.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Waits until the peer sends something; false when it closed the
    /// connection instead. What it reads is kept for the next message.
    pub async fn wait_for_data(&mut self) -> std::io::Result<bool> {
        if !self.buffer.is_empty() {
            return Ok(true);
        }
        Ok(self.read_more(READ_CHUNK).await? > 0)
    }

    /// Reads up to the next NUL, which it drops. `admit` is asked before
    /// each piece is kept, with the piece's length; when it says no, the
    /// read fails with [`ReadError::OverBudget`]. On any error the part
    /// read is dropped.
    pub async fn read(
        &mut self,
        admit: impl FnMut(usize) -> bool,
    ) -> Result<Message<'_>, ReadError> {
        match self.fill(admit).await {
            Ok(end) => {
                self.scanned = 0;
                Ok(Message {
                    buffer: &mut self.buffer,
                    end: Some(end),
                })
            }
            Err(error) => {
                // Bytes from a NUL on are the rest of the stream.
                let end = memchr::memchr(0, &self.buffer[self.scanned..])
                    .map_or(self.buffer.len(), |end| self.scanned + end);
                self.buffer.drain(..end);
                self.scanned = 0;
                release(&mut self.buffer);
                Err(error)
            }
        }
    }

    /// Where the message ends (its NUL's index in the buffer).
    async fn fill(&mut self, mut admit: impl FnMut(usize) -> bool) -> Result<usize, ReadError> {
        loop {
            let unscanned = &self.buffer[self.scanned..];
            let nul = memchr::memchr(0, unscanned);
            let piece = nul.unwrap_or(unscanned.len());
            if self.scanned + piece > self.limit {
                return Err(ReadError::TooLarge { limit: self.limit });
            }
            if piece > 0 && !admit(piece) {
                return Err(ReadError::OverBudget);
            }
            self.scanned += piece;
            if nul.is_some() {
                return Ok(self.scanned);
            }
            // Never more than the longest message and its NUL.
            let room = (self.limit + 1).saturating_sub(self.buffer.len());
            if self.read_more(room).await.map_err(ReadError::Io)? == 0 {
                return Err(if self.buffer.is_empty() {
                    ReadError::Closed
                } else {
                    ReadError::Cut
                });
            }
        }
    }

    /// Reads at most `most` bytes onto the end of the buffer, growing it
    /// (by doubling) when it has less than [`READ_CHUNK`] free.
    async fn read_more(&mut self, most: usize) -> std::io::Result<usize> {
        if self.buffer.capacity() - self.buffer.len() < READ_CHUNK {
            self.buffer.reserve(READ_CHUNK);
        }
        (&mut self.reader)
            .take(most as u64)
            .read_buf(&mut self.buffer)
            .await
    }

    /// Skips the rest of the message being read, up to and including its
    /// NUL, keeping none of it: after a refused message, so that the peer
    /// can read the refusal (closing a Unix socket with unread data makes
    /// the peer's read fail with a reset instead).
    pub async fn discard(&mut self) -> Result<(), ReadError> {
        self.scanned = 0;
        loop {
            if let Some(end) = memchr::memchr(0, &self.buffer) {
                self.buffer.drain(..=end);
                release(&mut self.buffer);
                return Ok(());
            }
            self.buffer.clear();
            if self.read_more(READ_CHUNK).await.map_err(ReadError::Io)? == 0 {
                return Err(ReadError::Cut);
            }
        }
    }
}

/// Gives back all but [`RETAINED`] bytes of a buffer's spare capacity.
fn release(buffer: &mut Vec<u8>) {
    buffer.shrink_to(RETAINED);
}

/// One message just read, without its NUL. Dropping it makes room for the
/// next; [`Message::into_vec`] keeps it instead.
#[derive(Debug)]
pub struct Message<'a> {
    buffer: &'a mut Vec<u8>,
    /// Where its NUL is; none once [`Message::into_vec`] took it.
    end: Option<usize>,
}

impl Message<'_> {
    /// The message's bytes, owned and not copied: to decode it elsewhere
    /// (a blocking thread) or keep it. The reader keeps what follows it.
    pub fn into_vec(mut self) -> Vec<u8> {
        let Some(end) = self.end.take() else {
            return Vec::new();
        };
        let rest = self.buffer.split_off(end + 1);
        let mut message = std::mem::replace(self.buffer, rest);
        message.truncate(end);
        message
    }
}

impl std::ops::Deref for Message<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.buffer.get(..self.end.unwrap_or(0)).unwrap_or_default()
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        if let Some(end) = self.end {
            self.buffer.drain(..=end);
            release(self.buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn read_all(bytes: &[u8], limit: usize) -> Vec<Result<Vec<u8>, String>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut reader = MessageReader::new(bytes, limit);
            let mut results = Vec::new();
            loop {
                match reader.read(|_| true).await {
                    Ok(message) => results.push(Ok(message.to_vec())),
                    Err(error) => {
                        results.push(Err(error.to_string()));
                        return results;
                    }
                }
            }
        })
    }

    #[test]
    fn messages_packed_together_are_read_one_by_one() {
        let results = read_all(b"{\"a\":1}\0{}\0", 100);
        assert_eq!(results[0].as_deref(), Ok(&b"{\"a\":1}"[..]));
        assert_eq!(results[1].as_deref(), Ok(&b"{}"[..]));
        assert_eq!(results[2], Err(ReadError::Closed.to_string()));
    }

    #[test]
    fn a_message_taken_whole_leaves_the_next_one_to_read() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut reader = MessageReader::new(&b"{\"a\":1}\0{}\0[]"[..], 100);
            let first = reader.read(|_| true).await.expect("the first").into_vec();
            assert_eq!(first, b"{\"a\":1}");
            assert_eq!(&*reader.read(|_| true).await.expect("the second"), b"{}");
            assert!(matches!(reader.read(|_| true).await, Err(ReadError::Cut)));
        });
    }

    #[test]
    fn a_message_over_budget_is_skipped_to_its_nul_and_no_further() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut reader = MessageReader::new(&b"{\"a\":1}\0{}\0"[..], 100);
            assert!(matches!(
                reader.read(|_| false).await,
                Err(ReadError::OverBudget)
            ));
            reader.discard().await.expect("its NUL");
            assert_eq!(&*reader.read(|_| true).await.expect("the next"), b"{}");
        });
    }

    #[test]
    fn a_message_cut_off_is_cut_not_closed() {
        assert_eq!(read_all(b"{\"a\"", 100)[0], Err(ReadError::Cut.to_string()));
    }

    #[test]
    fn a_message_over_the_limit_is_refused_and_the_next_one_found() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let long = [vec![b' '; 300 * 1024], b"\0{}\0".to_vec()].concat();
            let mut reader = MessageReader::new(&long[..], 100 * 1024);
            assert!(matches!(
                reader.read(|_| true).await,
                Err(ReadError::TooLarge { limit: 102_400 })
            ));
            reader.discard().await.expect("its NUL");
            assert_eq!(&*reader.read(|_| true).await.expect("the next"), b"{}");
        });
    }

    #[test]
    fn a_big_message_does_not_keep_its_capacity() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let long = [vec![b' '; 1024 * 1024], b"\0".to_vec()].concat();
            let mut reader = MessageReader::new(&long[..], 2 * 1024 * 1024);
            assert_eq!(
                reader.read(|_| true).await.expect("a message").len(),
                1024 * 1024
            );
            assert!(reader.buffer.capacity() <= RETAINED);
        });
    }

    #[test]
    fn a_refused_budget_stops_the_read() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut reader = MessageReader::new(&b"{\"a\":1}\0"[..], 100);
            assert!(matches!(
                reader.read(|length| length < 4).await,
                Err(ReadError::OverBudget)
            ));
        });
    }

    proptest! {
        /// Whatever arrives, reading ends in messages and one error: never a
        /// panic, never an endless loop, never a message over the limit.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), limit in 1usize..64) {
            let results = read_all(&bytes, limit);
            prop_assert!(results.len() <= bytes.iter().filter(|&&byte| byte == 0).count() + 1);
            for message in results.iter().flatten() {
                prop_assert!(message.len() <= limit);
            }
        }
    }
}
