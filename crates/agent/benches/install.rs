//! The installation engine's overhead (BENCHMARKS.md): installing 1,000
//! small `command` updates through a real agent, in one Install call over
//! the socket, against running the same installer 1,000 times directly.
//! Run with `cargo bench -p openwua-agent --bench install`.

use std::process::Command;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use openwua_agent::{Background, Config};
use openwua_catalog::package;
use openwua_catalog::revision::{Applicability, ContentFile, Handler, Revision};
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_client::varlink::Connection;
use openwua_model::update::Sha256Digest;
use serde_json::{Value, json};
use sha2::Digest as _;
use uuid::Uuid;

const UPDATES: u128 = 1_000;
const INSTALLER: &str = "#!/bin/sh\necho \"installed $1\" >/dev/null\n";

fn revision(id: u128, content: &ContentFile) -> Revision {
    let update = json!({
        "identity": { "updateId": Uuid::from_u128(id), "revisionNumber": 1 },
        "title": format!("Small update {id}"),
        "type": "Software",
        "deploymentAction": "Installation",
        "downloadContents": [{
            "fileName": content.file_name, "size": content.size, "sha256": content.sha256,
        }],
    });
    Revision {
        update: serde_json::from_value(update).expect("a valid update"),
        hidden_by_default: false,
        applicability: Applicability::default(),
        handler: Handler::Command {
            program: "install.sh".into(),
            args: vec![format!("{id}")],
            uninstall: None,
            exit_codes: Default::default(),
            timeout_seconds: None,
        },
        content: vec![content.clone()],
    }
}

async fn call(connection: &mut Connection, method: &str, parameters: Value) -> Value {
    connection
        .call::<_, Value>(method, &parameters)
        .await
        .unwrap_or_else(|error| panic!("{method}: {error}"))
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("install.sh");
    std::fs::write(&script, INSTALLER)?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let bytes = std::fs::read(&script)?;
    let sha256 = Sha256Digest(sha2::Sha256::digest(&bytes).into());
    let content = ContentFile {
        file_name: "install.sh".into(),
        size: bytes.len() as u64,
        sha256,
        url: format!("content/{sha256}"),
    };
    let created = Timestamp::now();
    let snapshot = Snapshot {
        format: FORMAT_VERSION,
        service_id: Uuid::from_u128(0xBE7C4),
        service_name: "Install benchmark".into(),
        version: 1,
        created,
        expires: created + SignedDuration::from_hours(1),
        revisions: (1..=UPDATES).map(|id| revision(id, &content)).collect(),
    };
    let key = SecretKey::generate()?;
    let package_path = dir.path().join("bench.owpkg");
    package::write_package(&snapshot, &[(content, script.clone())], &key, &package_path)?;

    let mut config = Config::under(dir.path());
    config.owner_is_admin = true;
    let agent = Background::start(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ids: Vec<Uuid> = (1..=UPDATES).map(Uuid::from_u128).collect();
    let agent_time = runtime.block_on(async {
        let mut connection = Connection::connect(agent.socket()).await?;
        call(
            &mut connection,
            "org.openwua.Agent.AddScanPackageService",
            json!({ "path": package_path, "publicKey": key.public_key().to_string() }),
        )
        .await;
        call(
            &mut connection,
            "org.openwua.Agent.Download",
            json!({ "updateIds": ids }),
        )
        .await;
        let start = Instant::now();
        let reply = call(
            &mut connection,
            "org.openwua.Agent.Install",
            json!({ "updateIds": ids }),
        )
        .await;
        let elapsed = start.elapsed();
        assert_eq!(reply["job"]["result"]["resultCode"], "Succeeded", "{reply}");
        Ok::<Duration, anyhow::Error>(elapsed)
    })?;

    // The same installer, run directly the same number of times.
    let start = Instant::now();
    for id in 1..=UPDATES {
        let status = Command::new(&script).arg(id.to_string()).status()?;
        assert!(status.success());
    }
    let direct_time = start.elapsed();

    let per_update = |time: Duration| time.as_secs_f64() * 1000.0 / UPDATES as f64;
    println!(
        "install {UPDATES} command updates: agent {:.2} s ({:.2} ms each), direct {:.2} s ({:.2} ms each)",
        agent_time.as_secs_f64(),
        per_update(agent_time),
        direct_time.as_secs_f64(),
        per_update(direct_time),
    );
    println!(
        "agent overhead per update: {:.2} ms (goal <= 5 ms)",
        per_update(agent_time) - per_update(direct_time)
    );
    Ok(())
}
