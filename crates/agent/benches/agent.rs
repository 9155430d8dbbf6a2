//! The agent's figures (BENCHMARKS.md): importing a 100,000-update scan
//! package, a warm search over it through the socket, and a trivial Varlink
//! round trip. Run with `cargo bench -p openwua-agent --bench agent`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use openwua_agent::{Background, Config};
use openwua_catalog::package;
use openwua_catalog::signing::SecretKey;
use openwua_model::search::SearchResult;
use serde_json::{Value, json};

mod common;

use common::{revision, snapshot};

const UPDATES: u128 = 100_000;

struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    buffer: Vec<u8>,
}

impl Client {
    fn connect(path: &std::path::Path) -> Client {
        let stream = UnixStream::connect(path).expect("the agent listens");
        Client {
            reader: BufReader::with_capacity(1 << 20, stream.try_clone().expect("clone")),
            writer: stream,
            buffer: Vec::new(),
        }
    }

    /// Sends a call and returns the raw reply bytes (without the NUL).
    fn call_raw(&mut self, method: &str, parameters: &Value) -> &[u8] {
        let mut message =
            serde_json::to_vec(&json!({ "method": method, "parameters": parameters }))
                .expect("encodable");
        message.push(0);
        self.writer.write_all(&message).expect("write");
        self.buffer.clear();
        self.reader.read_until(0, &mut self.buffer).expect("read");
        self.buffer.pop();
        &self.buffer
    }
}

/// Decodes a Search reply as a client does: straight into the model's types.
fn decode_search(reply: &[u8]) -> SearchResult {
    #[derive(serde::Deserialize)]
    struct Reply {
        parameters: Parameters,
    }
    #[derive(serde::Deserialize)]
    struct Parameters {
        result: SearchResult,
    }
    let reply: Reply = serde_json::from_slice(reply).expect("a Search reply");
    reply.parameters.result
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key = SecretKey::generate().expect("a key");
    let snapshot = snapshot(1, (1..=UPDATES).map(revision).collect());
    let path = dir.path().join("bench.owpkg");
    let started = Instant::now();
    package::write_package(&snapshot, &[], &key, &path).expect("package written");
    let build = started.elapsed();
    let size = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
    println!(
        "build: {UPDATES} updates into {:.1} MB in {build:.2?}",
        size as f64 / 1e6
    );

    let agent = Background::start(Config::under(dir.path())).expect("the agent starts");
    let mut client = Client::connect(agent.socket());
    let started = Instant::now();
    let reply = client.call_raw(
        "org.openwua.Agent.AddScanPackageService",
        &json!({ "path": path, "publicKey": key.public_key().to_string() }),
    );
    let import = started.elapsed();
    let reply: Value = serde_json::from_slice(reply).expect("JSON");
    assert!(reply.get("error").is_none(), "import failed: {reply}");
    println!("import (verify, store, scan) through the socket: {import:.2?} (goal <= 5 s)");

    let criteria = json!({ "criteria": "IsInstalled=0 and Type='Software'" });
    let mut search_times = Vec::new();
    let mut reply_times = Vec::new();
    let mut found = 0;
    let mut reply_size = 0;
    for _ in 0..6 {
        let started = Instant::now();
        let reply = client.call_raw("org.openwua.Agent.Search", &criteria);
        reply_times.push(started.elapsed());
        reply_size = reply.len();
        let result = decode_search(reply);
        search_times.push(started.elapsed());
        found = result.updates.len();
    }
    // The first search is cold.
    search_times.remove(0);
    reply_times.remove(0);
    search_times.sort();
    reply_times.sort();
    let session = openwua_client::blocking::UpdateSession::connect(agent.socket())
        .expect("the client library connects");
    let searcher = session.create_update_searcher();
    let mut library_times = Vec::new();
    for _ in 0..6 {
        let started = Instant::now();
        let result = searcher
            .search("IsInstalled=0 and Type='Software'")
            .expect("a search through the client library");
        library_times.push(started.elapsed());
        assert_eq!(result.updates.len(), found);
    }
    library_times.sort();
    println!(
        "search {found} of {UPDATES} ({:.1} MB reply), warm, median: {:.1?} until the reply is read, \
         {:.1?} decoded into a SearchResult here, {:.1?} through openwua-client's UpdateSearcher (goal <= 200 ms)",
        reply_size as f64 / 1e6,
        reply_times[reply_times.len() / 2],
        search_times[search_times.len() / 2],
        library_times[library_times.len() / 2],
    );

    let rounds = 20_000;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        client.call_raw("org.openwua.Agent.GetAgentInfo", &json!({}));
        times.push(started.elapsed());
    }
    times.sort();
    let mean: Duration = times.iter().sum::<Duration>() / rounds as u32;
    println!(
        "GetAgentInfo round trip over {rounds} calls: median {:.1?}, p99 {:.1?}, mean {mean:.1?} (goal <= 200 µs)",
        times[rounds / 2],
        times[rounds * 99 / 100]
    );
}
