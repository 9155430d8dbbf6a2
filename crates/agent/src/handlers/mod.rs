//! TEMPORARY STUB (replaced by the handlers branch).
#![allow(missing_docs, dead_code)]
use openwua_catalog::revision::Handler;
use openwua_model::enums::UpdateOperation;
use openwua_model::hresult::HResult;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use uuid::Uuid;
#[derive(Debug, Clone, Default)]
pub struct DpkgSettings {
    pub program: PathBuf,
    pub admindir: PathBuf,
    pub instdir: Option<PathBuf>,
    pub extra_args: Vec<String>,
    pub reboot_required_file: PathBuf,
}
pub struct HandlerContext<'a> {
    pub update_id: Uuid,
    pub operation: UpdateOperation,
    pub handler: &'a Handler,
    pub content_dir: &'a Path,
    pub work_dir: &'a Path,
    pub log_path: &'a Path,
    pub backup_dir: &'a Path,
    pub environment: &'a [(String, String)],
    pub dpkg: &'a DpkgSettings,
    pub quiet: bool,
    pub abort: &'a AtomicBool,
    pub grace: Duration,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    SucceededRebootRequired,
    Failed,
    Aborted,
}
#[derive(Debug, Clone)]
pub struct HandlerOutcome {
    pub outcome: Outcome,
    pub hresult: HResult,
    pub exit_code: Option<i32>,
    pub detail: String,
}
pub fn run(context: &HandlerContext<'_>) -> HandlerOutcome {
    let _ = context;
    HandlerOutcome {
        outcome: Outcome::Succeeded,
        hresult: openwua_model::hresult::S_OK,
        exit_code: Some(0),
        detail: String::new(),
    }
}
