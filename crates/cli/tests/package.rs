//! `wua package`, run as a user would run it, on the sample service.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("wua-package-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn wua(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wua"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .expect("wua runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/sample-service")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn keygen_build_verify() {
    let scratch = Scratch::new("round-trip");
    let dir = &scratch.0;
    let keygen = wua(dir, &["package", "keygen", "sample"]);
    assert!(keygen.status.success(), "{}", text(&keygen.stderr));
    let mode = fs::metadata(dir.join("sample.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let public = fs::read_to_string(dir.join("sample.pub")).unwrap();
    assert!(public.starts_with("ed25519:"), "{public}");

    // A key is never replaced.
    let again = wua(dir, &["package", "keygen", "sample"]);
    assert_eq!(again.status.code(), Some(2));

    let sample = sample();
    let build = wua(
        dir,
        &[
            "package",
            "build",
            &sample,
            "-o",
            "sample.pkg",
            "--key",
            "sample.key",
            "--version",
            "42",
        ],
    );
    assert!(build.status.success(), "{}", text(&build.stderr));
    assert!(text(&build.stdout).contains("version:   42"));

    let verify = wua(
        dir,
        &["package", "verify", "sample.pkg", "--pubkey", "sample.pub"],
    );
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    let report = text(&verify.stdout);
    assert!(report.contains("OpenWUA Sample Service"), "{report}");
    assert!(report.contains("revisions: 30"), "{report}");

    let json = wua(
        dir,
        &[
            "package",
            "verify",
            "sample.pkg",
            "--pubkey",
            public.trim(),
            "--json",
        ],
    );
    assert!(json.status.success(), "{}", text(&json.stderr));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["version"], 42);
}

#[test]
fn verify_refusals_carry_the_wua_code() {
    let scratch = Scratch::new("refusals");
    let dir = &scratch.0;
    for prefix in ["right", "wrong"] {
        assert!(wua(dir, &["package", "keygen", prefix]).status.success());
    }
    let sample = sample();
    let build = wua(
        dir,
        &[
            "package",
            "build",
            &sample,
            "-o",
            "sample.pkg",
            "--key",
            "right.key",
            "--no-content",
        ],
    );
    assert!(build.status.success(), "{}", text(&build.stderr));

    let wrong = wua(
        dir,
        &["package", "verify", "sample.pkg", "--pubkey", "wrong.pub"],
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong.stderr).starts_with("wua: 0x80247140 WU_E_METADATA_BAD_SIGNATURE"),
        "{}",
        text(&wrong.stderr)
    );

    let bytes = fs::read(dir.join("sample.pkg")).unwrap();
    fs::write(dir.join("cut.pkg"), &bytes[..bytes.len() / 2]).unwrap();
    let cut = wua(
        dir,
        &[
            "package",
            "verify",
            "cut.pkg",
            "--pubkey",
            "right.pub",
            "--json",
        ],
    );
    assert_eq!(cut.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&cut.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["name"], "WU_E_OL_INVALID_SCANFILE");

    // A manifest error is invalid input, and says where it is.
    fs::create_dir_all(dir.join("service/broken")).unwrap();
    fs::write(
        dir.join("service/service.toml"),
        "service_id = \"6d2c1e7e-0000-4000-8000-000000000001\"\nname = \"Broken\"\n",
    )
    .unwrap();
    fs::write(
        dir.join("service/broken/update.toml"),
        "title = \"No id\"\n",
    )
    .unwrap();
    let broken = wua(
        dir,
        &[
            "package",
            "build",
            "service",
            "-o",
            "broken.pkg",
            "--key",
            "right.key",
        ],
    );
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        text(&broken.stderr).contains("broken/update.toml"),
        "{}",
        text(&broken.stderr)
    );
    assert!(
        text(&broken.stderr).contains("update_id"),
        "{}",
        text(&broken.stderr)
    );
    assert!(!dir.join("broken.pkg").exists());
}
