//! The process group of an installer that was running when the agent
//! died: it would run on beside the restarted agent, which may start
//! another. The group is recorded while it runs, and the next agent stops
//! what is left of it — the installer and everything it started — before
//! it does anything else.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The record of a running installer's group: written when it starts,
/// emptied when its run ends (dropped). The file is rewritten in place,
/// not created and removed per run: no directory change joins the store's
/// fsyncs on every update.
pub(super) struct RecordedGroup {
    file: File,
}

impl RecordedGroup {
    /// Records `pid`'s group (the installer leads it) and start time.
    pub(super) fn write(path: &Path, pid: u32) -> std::io::Result<RecordedGroup> {
        let started = start_time(pid).ok_or_else(|| {
            std::io::Error::other(format!("the start time of process {pid} cannot be read"))
        })?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)?;
        file.write_all(format!("{pid} {started}\n").as_bytes())?;
        Ok(RecordedGroup { file })
    }
}

impl Drop for RecordedGroup {
    fn drop(&mut self) {
        // A record left behind is harmless: its group is checked before a kill.
        let _ = self.file.set_len(0);
    }
}

/// Stops the group `record` names if any of it is still running, and
/// removes the record; says what it stopped. The kernel does not reuse a
/// pid as a group ID while the group has members, so members found are the
/// installer's — unless the pid now leads a new process of its own, which
/// its start time tells.
pub fn stop_orphaned_group(record: &Path) -> Option<String> {
    let text = std::fs::read_to_string(record).ok()?;
    let _ = std::fs::remove_file(record);
    // An empty record: no installer was running.
    let (pid, started) = text.trim().split_once(' ')?;
    let (pid, started) = (pid.parse::<u32>().ok()?, started.parse::<u64>().ok()?);
    if let Some(now) = start_time(pid)
        && now != started
    {
        return None;
    }
    let members = group_members(pid);
    if members.is_empty() {
        return None;
    }
    let group = Pid::from_raw(i32::try_from(pid).ok()?);
    killpg(group, Signal::SIGKILL).ok()?;
    // A killed process lets go of its locks (dpkg's among them) only when
    // it has exited, after the signal: the repair that follows needs them.
    let deadline = Instant::now() + EXIT_WAIT;
    while group_members(pid).iter().any(|&member| is_alive(member)) {
        if Instant::now() >= deadline {
            return Some(format!(
                "killed installer group {pid} ({members:?}), but some of it was still running \
                 after {} s",
                EXIT_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(format!(
        "stopped {} process(es) left of installer group {pid}: {members:?}",
        members.len()
    ))
}

/// How long a killed group may take to exit.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// Running, or stopped, or anything but exited (a zombie waits only for
/// its parent to reap it and holds nothing).
fn is_alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.state != Some('Z'))
}

/// The processes whose process group is `group`.
fn group_members(group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).and_then(|fields| fields.pgrp) == Some(group))
        .collect()
}

/// A process's start time in clock ticks since boot (stat field 22).
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.start_time
}

struct StatFields {
    state: Option<char>,
    pgrp: Option<u32>,
    start_time: Option<u64>,
}

/// Fields 3 (state), 5 (process group) and 22 (start time) of `/proc/<pid>/stat`,
/// counted after the command name's last `)`, which may hold anything.
fn stat_fields(pid: u32) -> Option<StatFields> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state).
    Some(StatFields {
        state: fields.first().and_then(|field| field.chars().next()),
        pgrp: fields.get(2).and_then(|field| field.parse().ok()),
        start_time: fields.get(19).and_then(|field| field.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    #[test]
    fn a_record_of_a_live_group_stops_it_and_a_stale_one_stops_nothing() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let record = dir.path().join("installer.group");
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .expect("sleep starts");
        {
            let recorded = RecordedGroup::write(&record, child.id()).expect("recorded");
            // The agent "dies": the record stays behind.
            std::mem::forget(recorded);
        }
        let stopped = stop_orphaned_group(&record).expect("the group was stopped");
        assert!(stopped.contains(&child.id().to_string()), "{stopped}");
        let status = child.wait().expect("reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(!record.exists());

        // A record whose group is gone: nothing to stop.
        std::fs::write(&record, format!("{} 1\n", child.id())).expect("written");
        assert_eq!(stop_orphaned_group(&record), None);
    }

    #[test]
    fn a_stopped_group_has_let_go_of_its_locks_when_the_stop_returns() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let record = dir.path().join("installer.group");
        let lock = dir.path().join("lock");
        // As dpkg holds its lock: a process of the group with the lock
        // file open and locked.
        let mut child = std::process::Command::new("flock")
            .arg(&lock)
            .args(["sleep", "60"])
            .process_group(0)
            .spawn()
            .expect("flock starts");
        let held = || {
            !std::process::Command::new("flock")
                .args(["-n"])
                .arg(&lock)
                .arg("true")
                .status()
                .expect("flock runs")
                .success()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !held() {
            assert!(Instant::now() < deadline, "the lock was never taken");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::mem::forget(RecordedGroup::write(&record, child.id()).expect("recorded"));
        stop_orphaned_group(&record).expect("the group was stopped");
        assert!(!held(), "the lock was still held after the stop returned");
        child.wait().expect("reaped");
    }
}
