//! A content server on 127.0.0.1 for the download tests: real HTTP/1.1
//! over real TCP, one request per connection, that misbehaves on request
//! (cuts, short bodies, ignored ranges, error statuses, wrong bytes, slow
//! drips) and records what it was asked.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Behaviour {
    /// Ranges honoured, everything sent at once.
    Healthy,
    /// The first response promises the whole body, sends this many bytes and
    /// closes; later ones are healthy.
    TruncateFirst(usize),
    /// Every response stops at this absolute offset and closes.
    CutAt(usize),
    /// Always 200 with the whole body, whatever the Range.
    IgnoreRange,
    /// Always this status, with a short body.
    Status(u16),
    /// Other bytes of the right length.
    WrongBytes,
    /// One byte every 10 ms.
    Drip,
    /// 16 KiB every 10 ms.
    Slow,
}

/// The server; it serves until the test process ends.
pub struct Server {
    port: u16,
    behaviour: Arc<Mutex<Behaviour>>,
    /// The Range header of each request (None: no Range).
    ranges: Arc<Mutex<Vec<Option<String>>>>,
    /// Body bytes written to clients so far.
    sent: Arc<AtomicU64>,
}

impl Server {
    /// Serves `payload` for any path.
    pub fn start(payload: Arc<Vec<u8>>, behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = Server {
            port,
            behaviour: Arc::new(Mutex::new(behaviour)),
            ranges: Arc::default(),
            sent: Arc::default(),
        };
        let (behaviour, ranges, sent) = (
            Arc::clone(&server.behaviour),
            Arc::clone(&server.ranges),
            Arc::clone(&server.sent),
        );
        let requests = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let answer = Answer {
                    payload: Arc::clone(&payload),
                    behaviour: *behaviour.lock().expect("lock"),
                    index: requests.fetch_add(1, Ordering::SeqCst),
                    ranges: Arc::clone(&ranges),
                    sent: Arc::clone(&sent),
                };
                std::thread::spawn(move || answer.serve(stream));
            }
        });
        server
    }

    /// A URL of the payload.
    pub fn url(&self) -> String {
        format!("{}content/file.bin", self.base())
    }

    /// The server's root, as a content base.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// How the next requests are answered.
    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("lock") = behaviour;
    }

    /// The Range header of each request so far.
    pub fn ranges(&self) -> Vec<Option<String>> {
        self.ranges.lock().expect("lock").clone()
    }

    /// Body bytes written so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// One request's answer.
struct Answer {
    payload: Arc<Vec<u8>>,
    behaviour: Behaviour,
    index: usize,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
    sent: Arc<AtomicU64>,
}

impl Answer {
    fn serve(self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut range = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("range")
            {
                range = Some(value.trim().to_owned());
            }
        }
        self.ranges.lock().expect("lock").push(range.clone());
        let mut stream = stream;
        let behaviour = self.behaviour;
        if let Behaviour::Status(status) = behaviour {
            let body = format!("status {status}\n");
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return;
        }
        let wrong;
        let payload: &[u8] = if behaviour == Behaviour::WrongBytes {
            wrong = vec![b'x'; self.payload.len()];
            &wrong
        } else {
            &self.payload
        };
        let start = match (&range, behaviour) {
            (_, Behaviour::IgnoreRange) | (None, _) => None,
            (Some(range), _) => range
                .strip_prefix("bytes=")
                .and_then(|rest| rest.strip_suffix('-'))
                .and_then(|start| start.parse::<usize>().ok()),
        };
        let start = start.unwrap_or(0).min(payload.len());
        let head = if start > 0 {
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len() - 1,
                payload.len(),
                payload.len() - start
            )
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            )
        };
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        let end = match behaviour {
            Behaviour::TruncateFirst(at) if self.index == 0 => at,
            Behaviour::CutAt(at) => at.max(start),
            _ => payload.len(),
        };
        let (piece, pause) = match behaviour {
            Behaviour::Drip => (1, Some(Duration::from_millis(10))),
            Behaviour::Slow => (16 << 10, Some(Duration::from_millis(10))),
            _ => (1 << 20, None),
        };
        for chunk in payload[start..end].chunks(piece) {
            if stream.write_all(chunk).is_err() {
                return;
            }
            self.sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            if let Some(pause) = pause {
                std::thread::sleep(pause);
            }
        }
        let _ = stream.flush();
        // Dropping the stream closes it, short or not.
    }
}

/// Pseudo-random bytes (xorshift), so every offset is distinct.
pub fn payload(length: usize) -> Arc<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes = (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    Arc::new(bytes)
}
