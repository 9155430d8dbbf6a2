//! Parsers for the text and records the caller's facts come from:
//! `/proc/<pid>/stat` and `cgroup`, logind's session files, utmp, and the
//! kernel's terminal device numbers. Pure functions over bytes: the reading
//! (and deciding whom to trust) is `facts.rs`'s.

/// The fields of `/proc/<pid>/stat` the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The command name (field 2), at most 15 bytes, chosen by the process.
    pub comm: String,
    /// The parent's pid (field 4).
    pub ppid: i32,
    /// The controlling terminal's device number (field 7); 0: none.
    pub tty_nr: u64,
    /// When it started, in clock ticks since boot (field 22).
    pub start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The command name may hold spaces and
/// parentheses of the process's choosing, so the fields are counted from
/// the *last* `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let mut fields = text.get(close + 1..)?.split_whitespace();
    // Fields 3 (state), 4 (ppid), 5 (pgrp), 6 (session), 7 (tty_nr).
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let _pgrp = fields.next()?;
    let _session = fields.next()?;
    // tty_nr is printed as a signed int.
    let tty_nr = fields.next()?.parse::<i64>().ok()?;
    // Fields 8 to 21, then 22 (starttime).
    let start_ticks = fields.nth(14)?.parse().ok()?;
    Some(Stat {
        comm,
        ppid,
        tty_nr: u64::try_from(tty_nr).unwrap_or(0),
        start_ticks,
    })
}

/// The process's systemd cgroup path: the unified hierarchy's `0::` line,
/// else the legacy `name=systemd` one.
pub fn systemd_cgroup(text: &str) -> Option<&str> {
    let mut legacy = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() && line.starts_with("0::") {
            return Some(path);
        }
        if controllers == "name=systemd" {
            legacy = Some(path);
        }
    }
    legacy
}

/// The logind session of a cgroup path, as `sd_pid_get_session` finds it:
/// skip `*.slice` components, and the first unit must be
/// `session-<ID>.scope` (anything under it counts too).
pub fn session_of_cgroup(path: &str) -> Option<&str> {
    let unit = path
        .split('/')
        .filter(|part| !part.is_empty())
        .find(|part| !part.ends_with(".slice"))?;
    let id = unit.strip_prefix("session-")?.strip_suffix(".scope")?;
    valid_session_id(id).then_some(id)
}

/// The uid whose user manager (`user@UID.service`) a cgroup path is under:
/// desktop terminals run their shells there, outside any session scope.
pub fn user_manager_of_cgroup(path: &str) -> Option<u32> {
    path.split('/')
        .filter(|part| !part.is_empty())
        .find(|part| !part.ends_with(".slice"))?
        .strip_prefix("user@")?
        .strip_suffix(".service")?
        .parse()
        .ok()
}

/// `DISPLAY=` of a logind user record (`/run/systemd/users/<UID>`): the
/// user's primary (display) session.
pub fn display_session_of_user(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("DISPLAY="))
        .map(str::trim)
        .filter(|id| valid_session_id(id))
        .map(str::to_owned)
}

/// logind's session IDs are short and alphanumeric ("3", "c2"); anything
/// else is not looked up as a file name.
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

/// A logind session record (`/run/systemd/sessions/<ID>`). The format is
/// logind's private one: every key is optional and a malformed value reads
/// as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogindSession {
    /// `UID`: the session's owner.
    pub uid: Option<u32>,
    /// `USER`.
    pub user: Option<String>,
    /// `REMOTE=1`.
    pub remote: bool,
    /// `REMOTE_HOST`.
    pub remote_host: Option<String>,
    /// `CLASS`: user, background, greeter, …
    pub class: Option<String>,
    /// `TYPE`: tty, x11, wayland, unspecified, …
    pub kind: Option<String>,
    /// `STATE`: online, active, closing.
    pub state: Option<String>,
    /// `TTY`, without a `/dev/` prefix; empty for ssh sessions.
    pub tty: Option<String>,
    /// `SEAT`.
    pub seat: Option<String>,
    /// `SERVICE`: the PAM service that opened it (login, sshd, cron, …).
    pub service: Option<String>,
    /// `AUDIT`: the audit session ID, when logind had a valid one.
    pub audit: Option<u32>,
    /// `LEADER`: the session leader's pid.
    pub leader: Option<i32>,
}

/// Parses a logind session file (`KEY=VALUE` lines, `#` comments).
pub fn parse_logind_session(text: &str) -> LogindSession {
    let mut session = LogindSession::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let text = || (!value.is_empty()).then(|| value.to_owned());
        match key.trim() {
            "UID" => session.uid = value.parse().ok(),
            "USER" => session.user = text(),
            "REMOTE" => session.remote = value == "1",
            "REMOTE_HOST" => session.remote_host = text(),
            "CLASS" => session.class = text(),
            "TYPE" => session.kind = text(),
            "STATE" => session.state = text(),
            "TTY" => session.tty = text().map(|tty| strip_dev(&tty).to_owned()),
            "SEAT" => session.seat = text(),
            "SERVICE" => session.service = text(),
            "AUDIT" => session.audit = value.parse().ok().filter(|&id| id != AUDIT_UNSET),
            "LEADER" => session.leader = value.parse().ok(),
            _ => {}
        }
    }
    session
}

/// `/proc/<pid>/loginuid` and `sessionid` read this when unset.
pub const AUDIT_UNSET: u32 = u32::MAX;

/// An audit value (`loginuid`, `sessionid`): None when unset or unreadable.
pub fn parse_audit_id(text: &str) -> Option<u32> {
    text.trim().parse().ok().filter(|&id| id != AUDIT_UNSET)
}

/// One glibc `struct utmp` on 64-bit Linux (x86-64, aarch64, …): 384 bytes.
pub const UTMP_RECORD_SIZE: usize = 384;
/// `ut_type` of a logged-in user's record.
const USER_PROCESS: i16 = 7;

/// A `USER_PROCESS` record of utmp: who logged in where, by which process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtmpLogin {
    /// `ut_pid`: the login process (login, sshd, a terminal emulator).
    pub pid: i32,
    /// `ut_line`: the terminal without `/dev/` ("pts/2", "tty1").
    pub line: String,
    /// `ut_user`: the user name.
    pub user: String,
    /// `ut_host`: the remote host, or an X display; empty for local logins.
    pub host: String,
}

/// The `USER_PROCESS` records of a utmp file. A trailing partial record
/// (a file being written) is ignored.
pub fn parse_utmp(bytes: &[u8]) -> Vec<UtmpLogin> {
    bytes
        .chunks_exact(UTMP_RECORD_SIZE)
        .filter_map(|record| {
            let kind = i16::from_ne_bytes([record[0], record[1]]);
            if kind != USER_PROCESS {
                return None;
            }
            let pid = i32::from_ne_bytes([record[4], record[5], record[6], record[7]]);
            Some(UtmpLogin {
                pid,
                line: c_string(&record[8..40]),
                user: c_string(&record[44..76]),
                host: c_string(&record[76..332]),
            })
        })
        .collect()
}

/// A fixed-size, NUL-padded C string field.
fn c_string(field: &[u8]) -> String {
    let end = field
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// `/dev/pts/3` → `pts/3`: how logind and utmp name terminals.
pub fn strip_dev(path: &str) -> &str {
    path.strip_prefix("/dev/").unwrap_or(path)
}

/// A device number's major and minor, in the kernel's `new_encode_dev`
/// form that both `/proc/<pid>/stat` and glibc's `st_rdev` use.
pub fn device_numbers(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// The `/dev` path of a terminal device number: pseudo-terminals
/// (majors 136–143) and virtual consoles and serial lines (major 4).
pub fn terminal_path(tty_nr: u64) -> Option<String> {
    let (major, minor) = device_numbers(tty_nr);
    match major {
        136..=143 => Some(format!("/dev/pts/{}", (major - 136) * 256 + minor)),
        4 if minor < 64 => Some(format!("/dev/tty{minor}")),
        4 => Some(format!("/dev/ttyS{}", minor - 64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real stat line's fields 8 to 23 (start time 615225).
    const TAIL: &str = " -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 615225 3133440 383";

    #[test]
    fn stat_counts_fields_after_the_last_parenthesis() {
        let stat =
            parse_stat(&format!("1234 (a) b (c) S 77 1234 1234 34818{TAIL}")).expect("parses");
        assert_eq!(stat.comm, "a) b (c");
        assert_eq!(stat.ppid, 77);
        assert_eq!(stat.tty_nr, 34818);
        assert_eq!(stat.start_ticks, 615225);
        assert_eq!(terminal_path(stat.tty_nr).as_deref(), Some("/dev/pts/2"));
    }

    #[test]
    fn stat_with_a_fake_field_list_in_comm_is_not_fooled() {
        // comm tries to make "1" the ppid and a tty of its choosing.
        let stat =
            parse_stat(&format!("99 (x) R 1 1 1 34816 ) S 500 99 99 0{TAIL}")).expect("parses");
        assert_eq!(stat.comm, "x) R 1 1 1 34816 ");
        assert_eq!(stat.ppid, 500);
        assert_eq!(stat.tty_nr, 0);
    }

    #[test]
    fn stat_rejects_garbage() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x"), None);
        assert_eq!(parse_stat("12 (x) S"), None);
        assert_eq!(
            parse_stat(&format!("12 (x) S notanumber 1 1 0{TAIL}")),
            None
        );
        // No start time: cut short.
        assert_eq!(parse_stat("12 (x) S 1 1 1 0 -1 4194304"), None);
        // A negative tty_nr is no terminal.
        assert_eq!(
            parse_stat(&format!("12 (x) S 1 1 1 -5{TAIL}")).map(|stat| stat.tty_nr),
            Some(0)
        );
    }

    #[test]
    fn user_manager_cgroups_and_display_sessions() {
        let terminal = "/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope";
        assert_eq!(user_manager_of_cgroup(terminal), Some(1000));
        assert_eq!(
            user_manager_of_cgroup("/user.slice/user-1000.slice/session-3.scope"),
            None
        );
        assert_eq!(user_manager_of_cgroup("/system.slice/cron.service"), None);
        assert_eq!(
            display_session_of_user("NAME=alice\nSTATE=active\nDISPLAY=2\n").as_deref(),
            Some("2")
        );
        assert_eq!(display_session_of_user("DISPLAY=../../etc\n"), None);
        assert_eq!(display_session_of_user("STATE=online\n"), None);
    }

    #[test]
    fn cgroup_lines() {
        let unified = "0::/user.slice/user-1000.slice/session-3.scope\n";
        let path = systemd_cgroup(unified).expect("has a path");
        assert_eq!(session_of_cgroup(path), Some("3"));

        let legacy = "12:pids:/\n1:name=systemd:/user.slice/user-0.slice/session-c2.scope\n0::/\n";
        // The unified line wins when both exist, as in hybrid setups.
        assert_eq!(systemd_cgroup(legacy), Some("/"));
        let only_legacy =
            "4:memory:/x\n1:name=systemd:/user.slice/user-0.slice/session-c2.scope/sub";
        assert_eq!(
            systemd_cgroup(only_legacy).and_then(session_of_cgroup),
            Some("c2")
        );

        for outside in [
            "/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope",
            "/system.slice/cron.service",
            "/init.scope",
            "/",
            "/user.slice/session-../x",
            "/user.slice/session-3.scope.evil",
            "/system.slice/evil.service/session-3.scope",
        ] {
            assert_eq!(session_of_cgroup(outside), None, "{outside}");
        }
        assert_eq!(systemd_cgroup("garbage\n"), None);
    }

    #[test]
    fn logind_file() {
        let text = "# This is private data. Do not parse.\nUID=1000\nUSER=alice\nACTIVE=1\n\
                    IS_DISPLAY=0\nSTATE=active\nREMOTE=1\nTYPE=tty\nORIGINAL_TYPE=tty\n\
                    CLASS=user\nSCOPE=session-3.scope\nFIFO=/run/systemd/sessions/3.ref\n\
                    REMOTE_HOST=192.0.2.7\nSERVICE=sshd\nLEADER=812\nAUDIT=3\n\
                    REALTIME=1700000000\nMONOTONIC=12345\nTTY=\n";
        let session = parse_logind_session(text);
        assert_eq!(session.uid, Some(1000));
        assert_eq!(session.user.as_deref(), Some("alice"));
        assert!(session.remote);
        assert_eq!(session.remote_host.as_deref(), Some("192.0.2.7"));
        assert_eq!(session.class.as_deref(), Some("user"));
        assert_eq!(session.service.as_deref(), Some("sshd"));
        assert_eq!(session.audit, Some(3));
        assert_eq!(session.leader, Some(812));
        assert_eq!(session.tty, None);

        let local = parse_logind_session("UID=0\nTTY=/dev/tty1\nSEAT=seat0\nAUDIT=4294967295\n");
        assert_eq!(local.tty.as_deref(), Some("tty1"));
        assert_eq!(local.audit, None);
        assert!(!local.remote);

        let hostile = parse_logind_session("UID=-1\nUID\n=\nLEADER=x\nREMOTE=yes\n\u{0}\n");
        assert_eq!(hostile, LogindSession::default());
    }

    fn utmp_record(kind: i16, pid: i32, line: &str, user: &str, host: &str) -> Vec<u8> {
        let mut record = vec![0u8; UTMP_RECORD_SIZE];
        record[0..2].copy_from_slice(&kind.to_ne_bytes());
        record[4..8].copy_from_slice(&pid.to_ne_bytes());
        record[8..8 + line.len()].copy_from_slice(line.as_bytes());
        record[44..44 + user.len()].copy_from_slice(user.as_bytes());
        record[76..76 + host.len()].copy_from_slice(host.as_bytes());
        record
    }

    #[test]
    fn utmp_records() {
        let mut file = Vec::new();
        file.extend(utmp_record(2, 0, "~", "reboot", "6.18.0")); // BOOT_TIME
        file.extend(utmp_record(6, 700, "tty1", "LOGIN", "")); // LOGIN_PROCESS
        file.extend(utmp_record(7, 812, "pts/2", "alice", "192.0.2.7"));
        // A user name filling its whole field has no NUL.
        file.extend(utmp_record(7, 900, "tty2", &"b".repeat(32), ""));
        file.extend(utmp_record(8, 901, "pts/3", "", "")); // DEAD_PROCESS
        file.extend([7, 0, 0]); // a partial record being written
        let logins = parse_utmp(&file);
        assert_eq!(
            logins,
            vec![
                UtmpLogin {
                    pid: 812,
                    line: "pts/2".into(),
                    user: "alice".into(),
                    host: "192.0.2.7".into(),
                },
                UtmpLogin {
                    pid: 900,
                    line: "tty2".into(),
                    user: "b".repeat(32),
                    host: String::new(),
                },
            ]
        );
        assert!(parse_utmp(&[]).is_empty());
    }

    #[test]
    fn terminal_paths() {
        assert_eq!(terminal_path(0), None);
        assert_eq!(terminal_path((136 << 8) | 5).as_deref(), Some("/dev/pts/5"));
        // pts 300: major 137, minor 44.
        assert_eq!(
            terminal_path((137 << 8) | 44).as_deref(),
            Some("/dev/pts/300")
        );
        assert_eq!(terminal_path((4 << 8) | 1).as_deref(), Some("/dev/tty1"));
        assert_eq!(terminal_path((4 << 8) | 65).as_deref(), Some("/dev/ttyS1"));
        assert_eq!(terminal_path(5 << 8), None); // /dev/tty itself: not a line
        // A large minor: pts 4096 under major 136 with the high minor bits.
        assert_eq!(device_numbers((136 << 8) | (0x1000 << 12)), (136, 0x1000));
        assert_eq!(parse_audit_id("4294967295"), None);
        assert_eq!(parse_audit_id("1000\n"), Some(1000));
        assert_eq!(parse_audit_id("x"), None);
    }
}
