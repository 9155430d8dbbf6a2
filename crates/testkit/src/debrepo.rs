//! A real Debian repository and a sandboxed apt for tests.
//!
//! [`Deb`] describes a binary package that `dpkg-deb --build` makes;
//! [`Repository`] holds several suites of them in one pool, indexed by
//! `apt-ftparchive` and signed (`InRelease`) by a throwaway gpg key;
//! [`Repository::serve`] serves it over HTTP on 127.0.0.1 ([`Server`]);
//! [`AptRoot`] is an apt `Dir` and a dpkg database of the test's own, so
//! `apt-get update` and `apt-get install` work in it as an ordinary user
//! or as root, in parallel, and never touch the machine's apt or dpkg.
//! Everything panics on failure: it is for tests. Package names should
//! start with `owtest-`.
//!
//! ```no_run
//! use openwua_testkit::debrepo::{AptRoot, Deb, Repository};
//! let mut repo = Repository::new();
//! repo.add("owtest", &Deb::new("owtest-hello", "1.0"));
//! repo.publish();
//! let server = repo.serve();
//! let root = AptRoot::new();
//! root.add_source(&server, &repo, &["owtest"]);
//! root.update();
//! ```

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A binary package to build.
#[derive(Debug, Clone)]
pub struct Deb {
    name: String,
    version: String,
    architecture: String,
    fields: Vec<(String, String)>,
    files: Vec<(String, Vec<u8>)>,
    control: Vec<(String, String, bool)>,
}

impl Deb {
    /// `name` at `version`, `Architecture: all`, no files.
    pub fn new(name: &str, version: &str) -> Deb {
        Deb {
            name: name.to_owned(),
            version: version.to_owned(),
            architecture: "all".to_owned(),
            fields: Vec::new(),
            files: Vec::new(),
            control: Vec::new(),
        }
    }

    /// Its architecture (`all` unless set; `dpkg --print-architecture`
    /// for the machine's).
    pub fn architecture(mut self, architecture: &str) -> Deb {
        self.architecture = architecture.to_owned();
        self
    }

    /// Another control field (`Source`, `Depends`, ...).
    pub fn field(mut self, name: &str, value: &str) -> Deb {
        self.fields.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A file the package installs, at `path` relative to the root.
    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Deb {
        self.files.push((path.to_owned(), contents.into()));
        self
    }

    /// A maintainer script (`postinst`, debconf's `config`, ...) run by
    /// `sh -e`. dpkg gives it `DPKG_ROOT`, the sandbox's root.
    pub fn script(mut self, name: &str, body: &str) -> Deb {
        self.control.push((
            name.to_owned(),
            format!("#!/bin/sh\nset -e\n{body}\n"),
            true,
        ));
        self
    }

    /// A control file that is not a script (debconf's `templates`).
    pub fn control_file(mut self, name: &str, contents: &str) -> Deb {
        self.control
            .push((name.to_owned(), contents.to_owned(), false));
        self
    }

    /// The package's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its file name in a pool, as Debian's: `name_version_arch.deb`
    /// without the version's epoch.
    pub fn file_name(&self) -> String {
        let version = self
            .version
            .split_once(':')
            .map_or(self.version.as_str(), |(_, rest)| rest);
        format!("{}_{version}_{}.deb", self.name, self.architecture)
    }

    /// Builds it into `dir` (under [`Deb::file_name`]); its path.
    pub fn build(&self, dir: &Path) -> PathBuf {
        let tree = tempfile::tempdir().unwrap();
        let debian = tree.path().join("DEBIAN");
        std::fs::create_dir_all(&debian).unwrap();
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\n\
             Maintainer: OpenWUA tests <tests@example.invalid>\n",
            self.name, self.version, self.architecture
        );
        for (name, value) in &self.fields {
            control.push_str(&format!("{name}: {value}\n"));
        }
        control.push_str("Description: an OpenWUA test package\n");
        std::fs::write(debian.join("control"), control).unwrap();
        for (name, contents, executable) in &self.control {
            let path = debian.join(name);
            std::fs::write(&path, contents).unwrap();
            let mode = if *executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        for (path, contents) in &self.files {
            // Under the build tree whether or not the path starts with `/`
            // (joined as it is, an absolute path would be written onto
            // the machine itself); `..` is refused for the same reason.
            let relative = Path::new(path.trim_start_matches('/'));
            assert!(
                relative
                    .components()
                    .all(|part| matches!(part, std::path::Component::Normal(_))),
                "a package file's path is plain: {path}"
            );
            let path = tree.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        std::fs::create_dir_all(dir).unwrap();
        let deb = dir.join(self.file_name());
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(tree.path())
            .arg(&deb));
        deb
    }
}

/// A gzip-compressed Debian changelog whose newest entry mentions `text`,
/// for `usr/share/doc/<package>/changelog.Debian.gz`.
pub fn changelog_gz(source: &str, newest: &str, text: &str, older: &str) -> Vec<u8> {
    let changelog = format!(
        "{source} ({newest}) owtest-security; urgency=high\n\n  * {text}\n\n \
         -- OpenWUA tests <tests@example.invalid>  Mon, 01 Jan 2024 00:00:00 +0000\n\n\
         {source} ({older}) owtest; urgency=medium\n\n  * Fix CVE-2001-0001.\n\n \
         -- OpenWUA tests <tests@example.invalid>  Sun, 01 Jan 2023 00:00:00 +0000\n"
    );
    let mut child = Command::new("gzip")
        .args(["-9n"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(changelog.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    output.stdout
}

/// `owtest-conf`: version 1.0 in suite `owtest`, and in `owtest-security`
/// a version 2.0 that asks which edition (debconf, default `home`) and
/// whose postinst writes the answer to `$DPKG_ROOT/answer`. Its relations
/// do not name debconf, so the mapping does not mark it as asking.
pub fn debconf_question_packages() -> Vec<(&'static str, Deb)> {
    let name = "owtest-conf";
    vec![
        ("owtest", Deb::new(name, "1.0")),
        (
            "owtest-security",
            Deb::new(name, "2.0")
                .control_file(
                    "templates",
                    &format!(
                        "Template: {name}/edition\nType: select\nChoices: home, pro\n\
                         Default: home\nDescription: Which edition?\n Pick one.\n"
                    ),
                )
                .script(
                    "config",
                    &format!(
                        ". /usr/share/debconf/confmodule\n\
                         db_input high {name}/edition || true\ndb_go || true"
                    ),
                )
                .script(
                    "postinst",
                    &format!(
                        ". /usr/share/debconf/confmodule\n\
                         db_get {name}/edition\nprintf '%s' \"$RET\" > \"$DPKG_ROOT/answer\""
                    ),
                ),
        ),
    ]
}

/// One package as a suite's `Packages` index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// `Package`.
    pub name: String,
    /// `Architecture`.
    pub architecture: String,
    /// `Version`.
    pub version: String,
    /// `Size`.
    pub size: u64,
    /// `SHA256`, hex.
    pub sha256: String,
    /// `Filename`, relative to the repository.
    pub filename: String,
}

/// A signed repository with several suites, in a temporary directory.
pub struct Repository {
    dir: tempfile::TempDir,
    suites: Vec<String>,
}

impl Default for Repository {
    fn default() -> Self {
        Repository::new()
    }
}

impl Repository {
    /// An empty repository and its throwaway signing key.
    pub fn new() -> Repository {
        let dir = tempfile::tempdir().unwrap();
        let gnupg = dir.path().join("gnupg");
        std::fs::create_dir(&gnupg).unwrap();
        std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).unwrap();
        let repository = Repository {
            dir,
            suites: Vec::new(),
        };
        run(repository
            .gpg()
            .args(["--passphrase", "", "--quick-gen-key"])
            .args(["OpenWUA test repository <tests@example.invalid>"])
            .args(["ed25519", "sign", "never"]));
        let key = run(repository.gpg().arg("--export"));
        std::fs::write(repository.keyring(), key.stdout).unwrap();
        repository
    }

    fn gpg(&self) -> Command {
        let mut command = Command::new("gpg");
        command
            .env("GNUPGHOME", self.dir.path().join("gnupg"))
            .args(["--batch", "--quiet", "--no-tty"]);
        command
    }

    /// The public key, for a sources entry's `Signed-By`.
    pub fn keyring(&self) -> PathBuf {
        self.dir.path().join("keyring.gpg")
    }

    /// What [`Repository::serve`] serves.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// Builds `deb` into `suite`'s pool; publish afterwards.
    pub fn add(&mut self, suite: &str, deb: &Deb) -> PathBuf {
        if !self.suites.iter().any(|known| known == suite) {
            self.suites.push(suite.to_owned());
        }
        deb.build(&self.root().join("pool").join(suite))
    }

    /// Writes every suite's `Packages`, `Release` (Origin `OpenWUA-tests`,
    /// Suite and Codename the suite's name, Valid-Until in 30 days) and
    /// `InRelease`.
    pub fn publish(&self) {
        let root = self.root();
        for suite in &self.suites {
            let dist = root.join("dists").join(suite);
            let binary = dist.join("main/binary-").to_string_lossy().into_owned();
            let packages = run(Command::new("apt-ftparchive")
                .current_dir(&root)
                .args(["packages", &format!("pool/{suite}")]));
            for architecture in ["amd64", "arm64", "all"] {
                let dir = PathBuf::from(format!("{binary}{architecture}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("Packages"), &packages.stdout).unwrap();
            }
            let _ = std::fs::remove_file(dist.join("Release"));
            let _ = std::fs::remove_file(dist.join("InRelease"));
            let option = |name: &str, value: &str| {
                [
                    "-o".to_owned(),
                    format!("APT::FTPArchive::Release::{name}={value}"),
                ]
            };
            let release = run(Command::new("apt-ftparchive")
                .args(option("Origin", "OpenWUA-tests"))
                .args(option("Label", "OpenWUA-tests"))
                .args(option("Suite", suite))
                .args(option("Codename", suite))
                .args(option("ValidTime", "2592000"))
                .args(option("Architectures", "amd64 arm64 all"))
                .args(option("Components", "main"))
                .arg("release")
                .arg(&dist));
            std::fs::write(dist.join("Release"), release.stdout).unwrap();
            run(self
                .gpg()
                .args(["--yes", "--clearsign", "-o"])
                .arg(dist.join("InRelease"))
                .arg(dist.join("Release")));
        }
        // gpg leaves an agent behind; it has nothing more to sign.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.dir.path().join("gnupg"))
            .args(["--kill", "all"])
            .status();
    }

    /// Rewrites `suite`'s published `Release` with `edit` and signs it
    /// again as `InRelease` (for Releases that are expired, dated in the
    /// past, or otherwise odd, yet properly signed).
    pub fn resign(&self, suite: &str, edit: impl Fn(&str) -> String) {
        let dist = self.root().join("dists").join(suite);
        let text = std::fs::read_to_string(dist.join("Release")).unwrap();
        std::fs::write(dist.join("Release"), edit(&text)).unwrap();
        run(self
            .gpg()
            .args(["--yes", "--clearsign", "-o"])
            .arg(dist.join("InRelease"))
            .arg(dist.join("Release")));
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.dir.path().join("gnupg"))
            .args(["--kill", "all"])
            .status();
    }

    /// The index entry of `name` at `version` in `suite` (after
    /// [`Repository::publish`]).
    pub fn entry(&self, suite: &str, name: &str, version: &str) -> IndexEntry {
        let packages = std::fs::read_to_string(
            self.root()
                .join("dists")
                .join(suite)
                .join("main/binary-all/Packages"),
        )
        .unwrap();
        for stanza in packages.split("\n\n") {
            let field = |key: &str| {
                stanza
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("{key}: ")))
                    .unwrap_or_default()
                    .to_owned()
            };
            if field("Package") == name && field("Version") == version {
                return IndexEntry {
                    name: field("Package"),
                    architecture: field("Architecture"),
                    version: field("Version"),
                    size: field("Size").parse().unwrap(),
                    sha256: field("SHA256"),
                    filename: field("Filename"),
                };
            }
        }
        panic!("{name} {version} is not in {suite}");
    }

    /// Serves the repository over HTTP on 127.0.0.1 until the server is
    /// dropped.
    pub fn serve(&self) -> Server {
        Server::start(self.root())
    }
}

/// A static HTTP/1.1 file server on 127.0.0.1 (GET only, one request per
/// connection), stopped on drop.
pub struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves the files beneath `root` (a mirror laid out by hand).
    pub fn serve_directory(root: &Path) -> Server {
        Server::start(root.to_owned())
    }

    fn start(root: PathBuf) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    let root = root.clone();
                    std::thread::spawn(move || serve_one(&root, stream));
                }
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_one(root: &Path, stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let mut words = request.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let relative = Path::new(
        target
            .split('?')
            .next()
            .unwrap_or("")
            .trim_start_matches('/'),
    );
    let safe = relative
        .components()
        .all(|component| matches!(component, Component::Normal(_)));
    let file = safe
        .then(|| std::fs::read(root.join(relative)).ok())
        .flatten()
        .filter(|_| method == "GET");
    let mut stream = &stream;
    let _ = match file {
        Some(body) => stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .and_then(|()| stream.write_all(&body)),
        None => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    // Drain what the client still sends so the close is not a reset.
    let _ = reader.read_to_end(&mut Vec::new());
}

/// apt's `Dir` and a dpkg database of a test's own, in a temporary
/// directory.
///
/// Layout: `apt/` (apt's root: `etc/apt/apt.conf` with `Dir` and
/// `Dir::State::status`, `sources.list.d`, lists, cache, `var/log/apt`),
/// `dpkg/` (the database: `status`, `info/`, `updates/`), `root/` (dpkg's
/// instdir, with `run/`, and debconf's configuration and database, which
/// debconf finds through the `DPKG_ROOT` dpkg gives maintainer scripts).
pub struct AptRoot {
    dir: tempfile::TempDir,
}

impl Default for AptRoot {
    fn default() -> Self {
        AptRoot::new()
    }
}

impl AptRoot {
    /// The empty sandbox.
    pub fn new() -> AptRoot {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = AptRoot { dir };
        let apt = sandbox.apt_dir();
        for path in [
            "etc/apt/sources.list.d",
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/log/apt",
        ] {
            std::fs::create_dir_all(apt.join(path)).unwrap();
        }
        for path in [
            sandbox.admindir().join("info"),
            sandbox.admindir().join("updates"),
            sandbox.instdir().join("run"),
        ] {
            std::fs::create_dir_all(path).unwrap();
        }
        std::fs::write(sandbox.admindir().join("status"), "").unwrap();
        std::fs::write(sandbox.admindir().join("available"), "").unwrap();
        // Read through APT_CONFIG, before anything of the machine's: `Dir`
        // first so the sandbox's apt.conf.d is read instead of /etc's.
        // Root's apt would drop to _apt, which cannot enter a temporary
        // directory.
        let mut conf = format!(
            "Dir \"{}/\";\nDir::State::status \"{}\";\n",
            apt.display(),
            sandbox.admindir().join("status").display()
        );
        if nix::unistd::geteuid().is_root() {
            conf.push_str("APT::Sandbox::User \"root\";\n");
        }
        std::fs::write(apt.join("etc/apt/apt.conf"), conf).unwrap();
        // dpkg gives maintainer scripts DPKG_ROOT (the instdir), and
        // debconf then reads its configuration and databases beneath it.
        std::fs::create_dir_all(sandbox.instdir().join("etc")).unwrap();
        std::fs::create_dir_all(sandbox.instdir().join("var/cache/debconf")).unwrap();
        std::fs::write(
            sandbox.instdir().join("etc/debconf.conf"),
            "Config: configdb\nTemplates: templatedb\n\n\
             Name: configdb\nDriver: File\nFilename: /var/cache/debconf/config.dat\n\n\
             Name: templatedb\nDriver: File\nFilename: /var/cache/debconf/templates.dat\n",
        )
        .unwrap();
        sandbox
    }

    /// The whole sandbox's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// apt's `Dir`.
    pub fn apt_dir(&self) -> PathBuf {
        self.dir.path().join("apt")
    }

    /// dpkg's `--admindir`.
    pub fn admindir(&self) -> PathBuf {
        self.dir.path().join("dpkg")
    }

    /// dpkg's `--instdir` (maintainer scripts see it as `DPKG_ROOT`).
    pub fn instdir(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Debian's restart flag inside the instdir.
    pub fn reboot_required_file(&self) -> PathBuf {
        self.instdir().join("run/reboot-required")
    }

    /// apt's cache of downloaded packages.
    pub fn archives(&self) -> PathBuf {
        self.apt_dir().join("var/cache/apt/archives")
    }

    /// What dpkg needs besides admindir and instdir: not root, scripts
    /// outside the instdir (it holds no shell), its log in the sandbox.
    pub fn dpkg_extra_args(&self) -> Vec<String> {
        vec![
            "--force-not-root".to_owned(),
            "--force-script-chrootless".to_owned(),
            format!("--log={}", self.dir.path().join("dpkg.log").display()),
        ]
    }

    /// Adds a deb822 sources entry for `suites` of `repository` served by
    /// `server`, signed by the repository's key.
    pub fn add_source(&self, server: &Server, repository: &Repository, suites: &[&str]) {
        let entry = format!(
            "Types: deb\nURIs: {}\nSuites: {}\nComponents: main\nSigned-By: {}\n",
            server.url(),
            suites.join(" "),
            repository.keyring().display()
        );
        let path = self.apt_dir().join("etc/apt/sources.list.d/owtest.sources");
        std::fs::write(path, entry).unwrap();
    }

    /// `apt-get update` in the sandbox; panics unless it succeeds without
    /// errors or warnings.
    pub fn update(&self) {
        let output = run(self.apt_get().args(["update", "-q"]));
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(
            !text
                .lines()
                .any(|line| line.starts_with("W:") || line.starts_with("E:")),
            "apt-get update: {text}"
        );
    }

    /// `apt-get` with the sandbox's configuration.
    pub fn apt_get(&self) -> Command {
        let mut command = Command::new("apt-get");
        command
            .env("PATH", SYSTEM_PATH)
            .env("APT_CONFIG", self.apt_dir().join("etc/apt/apt.conf"));
        command
    }

    /// `dpkg` on the sandbox's database and root, non-interactive.
    pub fn dpkg(&self) -> Command {
        let mut command = Command::new("dpkg");
        command
            .env("PATH", SYSTEM_PATH)
            .arg(format!("--admindir={}", self.admindir().display()))
            .arg(format!("--instdir={}", self.instdir().display()))
            .args(self.dpkg_extra_args())
            .env("DEBIAN_FRONTEND", "noninteractive");
        command
    }

    /// Installs `deb` with dpkg directly: what the machine has before a
    /// test.
    pub fn dpkg_install(&self, deb: &Path) {
        run(self.dpkg().arg("--install").arg(deb));
    }

    /// dpkg-query's `${Status}` and `${Version}` of a package, "" when the
    /// database does not know it.
    pub fn status(&self, package: &str) -> String {
        let output = Command::new("dpkg-query")
            .arg(format!("--admindir={}", self.admindir().display()))
            .args(["-W", "-f=${Status} ${Version}", package])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// dpkg wants ldconfig and start-stop-daemon on its `PATH`, which an
/// ordinary user's may lack.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs a command; its output, or a panic with it.
fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?}: {output:?}");
    output
}
