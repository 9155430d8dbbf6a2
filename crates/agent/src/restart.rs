//! The restart policy's parts that touch the machine: the maintenance
//! window, who is logged in (utmp, else the kernel's audit facts of the
//! processes on terminals), warning them on their terminals, and running
//! the restart command. `crate::automatic` decides when.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use openwua_caller::{parse_audit_id, parse_stat, parse_utmp, terminal_path};

/// utmp is small; more than this is not read.
const MAX_UTMP_BYTES: u64 = 1 << 20;
/// Processes looked at in `/proc` when there is no utmp.
const MAX_PROCESSES: usize = 100_000;
/// Logged-in users reported or warned.
const MAX_USERS: usize = 256;

/// A maintenance window: days of the week and a time of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    start: Time,
    end: Time,
}

/// Day names as the window is written, Monday first.
const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn day_index(name: &str) -> Option<usize> {
    let name = name.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|(day, _)| name.starts_with(day) && name.len() <= 9)
}

fn parse_time(text: &str) -> Option<Time> {
    let (hour, minute) = text.trim().split_once(':')?;
    let (hour, minute): (i8, i8) = (hour.parse().ok()?, minute.parse().ok()?);
    if hour == 24 && minute == 0 {
        return Time::new(23, 59, 59, 999_999_999).ok();
    }
    Time::new(hour, minute, 0, 0).ok()
}

impl Window {
    /// Reads `Mon-Fri 02:00-04:00`, `Sat,Sun 01:00-05:00` or
    /// `daily 03:00-04:00` (the end after the start, `24:00` at most).
    pub fn parse(text: &str) -> Result<Window, String> {
        let bad = |why: &str| {
            format!(
                "restart window {text:?}: {why}; write it like \"Mon-Fri 02:00-04:00\" or \
                 \"daily 03:00-04:00\""
            )
        };
        let (days_text, times) = text
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("days and hours are missing"))?;
        let mut days = [false; 7];
        if days_text.eq_ignore_ascii_case("daily") || days_text == "*" {
            days = [true; 7];
        } else {
            for part in days_text.split(',') {
                let (first, last) = part.split_once('-').unwrap_or((part, part));
                let first = day_index(first).ok_or_else(|| bad("unknown day"))?;
                let last = day_index(last).ok_or_else(|| bad("unknown day"))?;
                let mut day = first;
                loop {
                    days[day] = true;
                    if day == last {
                        break;
                    }
                    day = (day + 1) % 7;
                }
            }
        }
        let (start, end) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("the hours need a start and an end"))?;
        let start = parse_time(start).ok_or_else(|| bad("bad start time"))?;
        let end = parse_time(end).ok_or_else(|| bad("bad end time"))?;
        if end <= start {
            return Err(bad("the end must come after the start on the same day"));
        }
        Ok(Window { days, start, end })
    }

    /// The window's occurrence that holds `now` or comes next, as (start,
    /// end).
    pub fn next(&self, now: Timestamp, zone: &TimeZone) -> Option<(Timestamp, Timestamp)> {
        let today = now.to_zoned_datetime(zone.clone()).date();
        let mut date = today.yesterday().ok()?;
        for _ in 0..9 {
            if self.holds_day(date)
                && let (Some(start), Some(end)) = (
                    instant(date, self.start, zone),
                    instant(date, self.end, zone),
                )
                && end > now
            {
                return Some((start, end));
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    fn holds_day(&self, date: Date) -> bool {
        let weekday = date.weekday();
        DAYS.iter()
            .position(|(_, day)| *day == weekday)
            .is_some_and(|index| self.days[index])
    }
}

/// A civil date and time in `zone` as an instant (the later one in a
/// fold, the time after a gap).
pub fn instant(date: Date, time: Time, zone: &TimeZone) -> Option<Timestamp> {
    date.to_datetime(time)
        .to_zoned_datetime(zone.clone())
        .ok()
        .map(|zoned: ZonedDateTime| zoned.timestamp())
}

/// A random instant in [from, to).
pub fn random_between(from: Timestamp, to: Timestamp) -> Timestamp {
    let span = to.duration_since(from);
    if span <= jiff::SignedDuration::ZERO {
        return from;
    }
    // Without a random source, the start: the restart still happens.
    let fraction = getrandom::u64().unwrap_or(0) as f64 / u64::MAX as f64;
    let offset = jiff::SignedDuration::from_secs_f64(span.as_secs_f64() * fraction);
    (from + offset)
        .min(to - jiff::SignedDuration::from_secs(1))
        .max(from)
}

/// A logged-in user and the terminal they are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name (or uid when it has none).
    pub user: String,
    /// `/dev/pts/3`, when known.
    pub terminal: Option<String>,
}

/// Who is logged in: utmp's live records when `utmp` exists, else the
/// users whose processes sit on a terminal with an audit login uid and
/// session (set by login, sshd and the like; no logind runs here).
pub fn logged_in(utmp: &Path, proc_root: &Path) -> Vec<Login> {
    let mut logins = match read_utmp(utmp) {
        Some(records) => records
            .into_iter()
            .filter(|record| record.pid > 0 && proc_root.join(record.pid.to_string()).exists())
            .map(|record| Login {
                user: record.user,
                terminal: terminal_of_line(&record.line),
            })
            .collect(),
        None => from_processes(proc_root),
    };
    logins.sort_by(|a, b| (&a.user, &a.terminal).cmp(&(&b.user, &b.terminal)));
    logins.dedup();
    logins.truncate(MAX_USERS);
    logins
}

fn read_utmp(path: &Path) -> Option<Vec<openwua_caller::UtmpLogin>> {
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_UTMP_BYTES).read_to_end(&mut bytes).ok()?;
    Some(parse_utmp(&bytes))
}

/// utmp's `ut_line` as a device path: a plain terminal name only.
fn terminal_of_line(line: &str) -> Option<String> {
    let valid = !line.is_empty()
        && !line.contains("..")
        && line
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '/' || c == '_');
    valid.then(|| format!("/dev/{line}"))
}

/// Users with a process on a terminal in an audit session of theirs.
fn from_processes(proc_root: &Path) -> Vec<Login> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut logins = Vec::new();
    for entry in entries.flatten().take(MAX_PROCESSES) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let dir = proc_root.join(pid);
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        let Some(stat) = read("stat").as_deref().and_then(parse_stat) else {
            continue;
        };
        if stat.tty_nr == 0 {
            continue;
        }
        let login_uid = read("loginuid").as_deref().and_then(parse_audit_id);
        let session = read("sessionid").as_deref().and_then(parse_audit_id);
        if let (Some(uid), Some(_)) = (login_uid, session) {
            logins.push(Login {
                user: openwua_caller::user_name(uid).unwrap_or_else(|| uid.to_string()),
                terminal: terminal_path(stat.tty_nr),
            });
            if logins.len() >= MAX_USERS * 4 {
                break;
            }
        }
    }
    logins
}

/// Writes `message` to each login's terminal (a character device only,
/// without blocking on a stalled one); returns the terminals reached.
pub fn warn(logins: &[Login], message: &str) -> Vec<String> {
    let mut reached = Vec::new();
    let mut terminals: Vec<&str> = logins
        .iter()
        .filter_map(|login| login.terminal.as_deref())
        .collect();
    terminals.sort_unstable();
    terminals.dedup();
    for terminal in terminals {
        let is_terminal = std::fs::metadata(terminal)
            .map(|meta| meta.file_type().is_char_device())
            .unwrap_or(false);
        if !is_terminal {
            continue;
        }
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc_flags())
            .open(terminal);
        match opened.and_then(|mut file| file.write_all(message.as_bytes())) {
            Ok(()) => reached.push(terminal.to_owned()),
            Err(error) => tracing::warn!("warning {terminal} of the restart: {error}"),
        }
    }
    reached
}

/// `O_NOCTTY | O_NONBLOCK`: never become the agent's terminal, never wait.
fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_NONBLOCK).bits()
}

/// Runs the restart command, then the fallback if it cannot start or
/// fails; Ok with the command that succeeded, or why both failed.
pub fn run(command: &[String], fallback: &[String]) -> Result<Vec<String>, String> {
    let mut failures = Vec::new();
    for candidate in [command, fallback] {
        let Some((program, args)) = candidate.split_first() else {
            continue;
        };
        let status = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => return Ok(candidate.to_vec()),
            Ok(status) => failures.push(format!("{program}: {status}")),
            Err(error) => failures.push(format!("{program}: {error}")),
        }
    }
    Err(if failures.is_empty() {
        "no restart command is configured".to_owned()
    } else {
        failures.join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_read_as_written() {
        let window = Window::parse("Mon-Fri 02:00-04:00").unwrap();
        assert_eq!(window.days, [true, true, true, true, true, false, false]);
        let wrapped = Window::parse("Fri-Mon 01:00-05:00").unwrap();
        assert_eq!(wrapped.days, [true, false, false, false, true, true, true]);
        assert_eq!(Window::parse("daily 03:00-24:00").unwrap().days, [true; 7]);
        for bad in [
            "Mon-Fri",
            "Xyz 02:00-04:00",
            "Mon 04:00-02:00",
            "Mon 25:00-26:00",
            "",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_next_window_is_today_s_or_a_later_day_s() {
        let window = Window::parse("Mon-Fri 02:00-04:00").unwrap();
        let zone = TimeZone::UTC;
        // 2030-01-05 is a Saturday: the next window is Monday's.
        let saturday: Timestamp = "2030-01-05T12:00:00Z".parse().unwrap();
        let (start, end) = window.next(saturday, &zone).unwrap();
        assert_eq!(start.to_string(), "2030-01-07T02:00:00Z");
        assert_eq!(end.to_string(), "2030-01-07T04:00:00Z");
        // Inside Monday's window: that one.
        let inside: Timestamp = "2030-01-07T03:00:00Z".parse().unwrap();
        assert_eq!(window.next(inside, &zone).unwrap().0, start);
        // Just after it: Tuesday's.
        let after: Timestamp = "2030-01-07T04:00:00Z".parse().unwrap();
        assert_eq!(
            window.next(after, &zone).unwrap().0.to_string(),
            "2030-01-08T02:00:00Z"
        );
    }

    #[test]
    fn a_random_time_stays_inside() {
        let from: Timestamp = "2030-01-07T02:00:00Z".parse().unwrap();
        let to: Timestamp = "2030-01-07T04:00:00Z".parse().unwrap();
        for _ in 0..100 {
            let at = random_between(from, to);
            assert!(at >= from && at < to);
        }
    }

    #[test]
    fn utmp_lines_become_device_paths_only_when_plain() {
        assert_eq!(terminal_of_line("pts/3").as_deref(), Some("/dev/pts/3"));
        assert_eq!(terminal_of_line("../etc/passwd"), None);
        assert_eq!(terminal_of_line(""), None);
    }
}
