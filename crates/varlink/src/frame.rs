//! Framing: each message is a JSON object ended by a NUL byte.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Bytes read from the socket at a time; most messages fit in one read.
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
    reader: BufReader<R>,
    buffer: Vec<u8>,
    limit: usize,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Reads from `reader` messages of at most `limit` bytes (without the NUL).
    pub fn new(reader: R, limit: usize) -> MessageReader<R> {
        MessageReader {
            reader: BufReader::with_capacity(READ_CHUNK, reader),
            buffer: Vec::new(),
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
    /// connection instead. Reads nothing out of the stream.
    pub async fn wait_for_data(&mut self) -> std::io::Result<bool> {
        if !self.buffer.is_empty() {
            return Ok(true);
        }
        Ok(!self.reader.fill_buf().await?.is_empty())
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
            Ok(()) => Ok(Message {
                buffer: &mut self.buffer,
            }),
            Err(error) => {
                release(&mut self.buffer);
                Err(error)
            }
        }
    }

    async fn fill(&mut self, mut admit: impl FnMut(usize) -> bool) -> Result<(), ReadError> {
        loop {
            let available = self.reader.fill_buf().await.map_err(ReadError::Io)?;
            if available.is_empty() {
                return Err(if self.buffer.is_empty() {
                    ReadError::Closed
                } else {
                    ReadError::Cut
                });
            }
            let (body, taken, complete) = match available.iter().position(|&byte| byte == 0) {
                Some(end) => (&available[..end], end + 1, true),
                None => (available, available.len(), false),
            };
            if self.buffer.len() + body.len() > self.limit {
                return Err(ReadError::TooLarge { limit: self.limit });
            }
            if !admit(body.len()) {
                return Err(ReadError::OverBudget);
            }
            self.buffer.extend_from_slice(body);
            self.reader.consume(taken);
            if complete {
                return Ok(());
            }
        }
    }

    /// Skips the rest of the message being read, up to and including its
    /// NUL, keeping none of it: after a refused message, so that the peer
    /// can read the refusal (closing a Unix socket with unread data makes
    /// the peer's read fail with a reset instead).
    pub async fn discard(&mut self) -> Result<(), ReadError> {
        release(&mut self.buffer);
        loop {
            let available = self.reader.fill_buf().await.map_err(ReadError::Io)?;
            if available.is_empty() {
                return Err(ReadError::Cut);
            }
            match available.iter().position(|&byte| byte == 0) {
                Some(end) => {
                    self.reader.consume(end + 1);
                    return Ok(());
                }
                None => {
                    let length = available.len();
                    self.reader.consume(length);
                }
            }
        }
    }
}

/// Empties a message buffer, giving back all but [`RETAINED`] bytes of it.
fn release(buffer: &mut Vec<u8>) {
    buffer.clear();
    buffer.shrink_to(RETAINED);
}

/// One message just read, without its NUL. Dropping it makes room for the
/// next; [`Message::into_vec`] keeps it instead.
#[derive(Debug)]
pub struct Message<'a> {
    buffer: &'a mut Vec<u8>,
}

impl Message<'_> {
    /// The message's bytes, owned: to decode it elsewhere (a blocking
    /// thread) or keep it. The reader starts the next one afresh.
    pub fn into_vec(self) -> Vec<u8> {
        std::mem::take(self.buffer)
    }
}

impl std::ops::Deref for Message<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.buffer
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        release(self.buffer);
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
