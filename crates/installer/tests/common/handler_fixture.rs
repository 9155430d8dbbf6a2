//! One update's directories, as the install engine stages them, and a
//! handler run over them: the fixture of the handler and prompt tests.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openwua_catalog::revision::Handler;
use openwua_installer::handlers::{self, DpkgSettings, HandlerContext, HandlerOutcome};
use openwua_installer::prompts::Prompter;
use openwua_model::enums::UpdateOperation;
use uuid::Uuid;

use super::dpkg::Dpkg;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub content: PathBuf,
    pub work: PathBuf,
    pub backup: PathBuf,
    pub log: PathBuf,
    pub sandbox: PathBuf,
    pub environment: Vec<(String, String)>,
    pub dpkg: DpkgSettings,
    pub apt: handlers::AptSettings,
    pub abort: AtomicBool,
    pub update_id: Uuid,
    /// ForceQuiet: no prompter reaches the handler, dpkg non-interactive.
    pub quiet: bool,
    /// What the handler is told of its progress, in percent.
    pub progress: Option<Box<dyn Fn(u8) + Sync>>,
}

impl Fixture {
    /// A quiet run's fixture, as unattended installs run.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let (content, work, backup, sandbox) = (
            path("content"),
            path("work"),
            path("backup"),
            path("sandbox"),
        );
        for d in [&content, &work, &backup, &sandbox] {
            std::fs::create_dir(d).unwrap();
        }
        let environment = vec![("OPENWUA_SANDBOX".to_string(), sandbox.display().to_string())];
        Fixture {
            log: path("install.log"),
            dpkg: DpkgSettings {
                reboot_required_file: path("reboot-required"),
                // Never the system's prompt directory.
                prompt_dir: path("prompts"),
                ..DpkgSettings::default()
            },
            apt: handlers::AptSettings::default(),
            dir,
            content,
            work,
            backup,
            sandbox,
            environment,
            abort: AtomicBool::new(false),
            update_id: random_uuid(),
            quiet: true,
            progress: None,
        }
    }

    /// A fixture whose runs may ask (not ForceQuiet).
    pub fn interactive() -> Fixture {
        Fixture {
            quiet: false,
            ..Fixture::new()
        }
    }

    /// Points the dpkg settings at a throwaway database and root under
    /// the fixture's directory, and returns them.
    pub fn throwaway_dpkg(&mut self) -> Dpkg {
        let dpkg = Dpkg::throwaway(self.dir.path());
        self.dpkg.admindir = dpkg.admindir.clone();
        self.dpkg.instdir = Some(dpkg.instdir.clone());
        self.dpkg.extra_args = dpkg.extra_args.clone();
        dpkg
    }

    /// Runs `handler` without a prompter.
    pub fn run(&self, handler: &Handler, operation: UpdateOperation) -> HandlerOutcome {
        self.run_with(handler, operation, None)
    }

    /// Installs with `prompter` standing in for the connection.
    pub fn install(&self, handler: &Handler, prompter: Option<&Prompter>) -> HandlerOutcome {
        self.run_with(handler, UpdateOperation::Installation, prompter)
    }

    fn run_with(
        &self,
        handler: &Handler,
        operation: UpdateOperation,
        prompter: Option<&Prompter>,
    ) -> HandlerOutcome {
        handlers::run(&HandlerContext {
            update_id: self.update_id,
            operation,
            handler,
            content_dir: &self.content,
            work_dir: &self.work,
            log_path: &self.log,
            backup_dir: &self.backup,
            environment: &self.environment,
            dpkg: &self.dpkg,
            apt: &self.apt,
            quiet: self.quiet,
            abort: &self.abort,
            grace: Duration::from_millis(300),
            prompter,
            group_record: None,
            progress: self.progress.as_deref(),
        })
    }

    /// A shell script in the content directory, mode 0755 as staged.
    pub fn script(&self, name: &str, body: &str) {
        self.content_file(name, format!("#!/bin/sh\n{body}\n").as_bytes());
    }

    /// The same with bash.
    pub fn bash_script(&self, name: &str, body: &str) {
        self.content_file(name, format!("#!/bin/bash\n{body}\n").as_bytes());
    }

    /// A content file, mode 0755 as staged.
    pub fn content_file(&self, name: &str, bytes: &[u8]) {
        let path = self.content.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn sandbox_file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.sandbox.join(name)).ok()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Unique enough for one test run (the uuid crate here has no `v4`).
pub fn random_uuid() -> Uuid {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mixed = nanos
        ^ (u128::from(std::process::id()) << 64)
        ^ (u128::from(COUNTER.fetch_add(1, Ordering::SeqCst)) << 96);
    // Reverse the bits so the changing low bits lead the simple form.
    Uuid::from_u128(mixed.reverse_bits())
}
