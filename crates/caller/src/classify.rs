//! The caller's class from its facts: OpenWUA's rules
//! (`docs/caller-context.md`), as a pure function so every case can be
//! tested without making real sessions.
//!
//! A session counts only when a root-owned record attests it: logind's
//! record of the cgroup's `session-N.scope`, or — for the audit
//! `loginuid`/`sessionid`, which a process whose loginuid is unset may set
//! itself — logind's record with that `AUDIT=` and `UID=`, or a utmp login
//! of that user whose process is alive in that audit session.

use openwua_model::caller::{CallerClass, CallerContext, CallerFact, CallerPermissions};

use super::facts::{
    Ancestor, CONSOLE_LOGIN, Facts, LOGIND_SESSIONS, LOGIND_USERS, Pin, Terminal, UTMP, UtmpEntry,
};
use super::records::{LogindSession, strip_dev, terminal_path};
use crate::CallerSettings;

/// Entry points whose sessions are scheduled jobs.
const BATCH_ENTRIES: &[&str] = &["cron", "crond", "atd", "anacron"];

/// Root programs that open login sessions through PAM (pam_loginuid): a
/// session whose topmost process is one of them, running as root, was set
/// up by it. Only `login`'s own terminal is a line of such a session
/// ([`CONSOLE_LOGIN_PROGRAMS`]); the others give it none.
const LOGIN_ENTRIES: &[&str] = &["sshd", "cron", "crond", "atd", "anacron", "login"];

/// Where the console login program is: a root `login` heading the session
/// must run one of these, not a setuid program started through a link
/// named `login`. It runs on the terminal it logs in (sshd and cron have
/// none of their user's), so that terminal is the session's line.
const CONSOLE_LOGIN_PROGRAMS: &[&str] = &["/usr/bin/login", "/bin/login"];

/// A terminal line of the session and what attests it.
struct Line {
    /// As recorded: `pts/2`, `tty1`, or a `/dev` path.
    name: String,
    /// Where it came from, for the evidence.
    source: String,
}

impl Line {
    fn new(name: impl Into<String>, source: impl Into<String>) -> Line {
        Line {
            name: name.into(),
            source: source.into(),
        }
    }
}

/// The attested session, whoever attested it.
struct Session {
    /// logind's ID, or `audit N`.
    id: String,
    /// The owner (login uid).
    owner: u32,
    /// The terminal lines that belong to it.
    lines: Vec<Line>,
    /// The logind record, when there is one.
    logind: Option<LogindSession>,
    /// Some utmp login of it has a remote host.
    utmp_host: Option<String>,
    /// Found through the user's display session (polkit's fallback for
    /// desktop terminals outside any session): its terminals are the
    /// owner's ptys, not lines logind or utmp know.
    display_fallback: bool,
}

/// Classifies a caller. `is_admin` is its authorization (root or the
/// admin group), which decides `may.download` and `may.install`.
pub fn classify(facts: &Facts, settings: &CallerSettings, is_admin: bool) -> CallerContext {
    let mut evidence = Evidence::default();
    let pid = facts.pid;
    evidence.add(
        "uid",
        with_name(facts.uid, facts.user_name.as_deref()),
        "SO_PEERCRED",
    );
    evidence.add("gid", facts.gid.to_string(), "SO_PEERCRED");
    let weak = matches!(facts.pin, Some(Pin::Opened));
    match &facts.pin {
        Some(Pin::Peer) => evidence.add("process", format!("pid {pid}, pinned"), "SO_PEERPIDFD"),
        Some(Pin::Opened) => evidence.add(
            "process",
            format!("pid {pid}, pinned after it connected (weak: the kernel has no SO_PEERPIDFD)"),
            "pidfd_open",
        ),
        Some(Pin::Missing(why)) => evidence.add(
            "process",
            format!("pid {pid}, not pinned: {why}"),
            "SO_PEERCRED",
        ),
        None => evidence.add("process", format!("pid {pid}"), "SO_PEERCRED"),
    }
    if let Some(problem) = &facts.proc_problem {
        evidence.add(
            "process",
            format!("its /proc entry was not read: {problem}"),
            format!("/proc/{pid}"),
        );
    } else {
        evidence.add("groups", list(&facts.groups), format!("/proc/{pid}/status"));
    }
    if let Some(cgroup) = &facts.cgroup {
        evidence.add("cgroup", cgroup.clone(), format!("/proc/{pid}/cgroup"));
    }
    if let Some(uid) = facts.login_uid {
        evidence.add(
            "loginUid",
            with_name(uid, facts.login_name.as_deref()),
            format!("/proc/{pid}/loginuid"),
        );
    }
    if let Some(session) = facts.audit_session {
        evidence.add(
            "auditSession",
            session.to_string(),
            format!("/proc/{pid}/sessionid"),
        );
    }
    if let Some(terminal) = &facts.terminal {
        describe_terminal(&mut evidence, terminal, &format!("/proc/{pid}/stat"));
    }

    let entry = facts.chain.last().filter(|top| top.uid == 0);
    let session = attest(facts, entry, &mut evidence);
    if let Some(top) = entry {
        evidence.add(
            "entry",
            top.comm.clone(),
            format!(
                "pid {} (uid 0), the topmost process of audit session {}",
                top.pid,
                facts.audit_session.unwrap_or_default()
            ),
        );
    }

    let mut context = CallerContext {
        class: CallerClass::Service,
        uid: facts.uid,
        login_uid: None,
        session: None,
        terminal: facts
            .terminal
            .as_ref()
            .and_then(|terminal| terminal.path.clone()),
        terminal_verified: false,
        remote: false,
        weak,
        facts: Vec::new(),
        may: CallerPermissions {
            search: true,
            download: is_admin,
            install: is_admin,
            install_interactive: false,
        },
        advice: None,
    };

    if let Some(session) = &session {
        context.login_uid = Some(session.owner);
        context.session = Some(session.id.clone());
        context.terminal_verified = verify_terminal(facts, session, &mut evidence);
        let logind = session.logind.as_ref();
        // A closing session's login has ended; what remains (tmux, screen)
        // may since be attached from anywhere: its terminal is nobody's now.
        if logind.is_some_and(|record| record.state.as_deref() == Some("closing")) {
            context.terminal_verified = false;
            evidence.add(
                "terminal",
                "the session is closing (its login ended): its terminal does not count",
                format!("logind {LOGIND_SESSIONS}/{} (STATE=closing)", session.id),
            );
        }
        let entry_name = entry.map(|top| top.comm.as_str());
        let service = logind
            .and_then(|record| record.service.as_deref())
            .or(entry_name);
        context.remote = logind.is_some_and(|record| record.remote)
            || service.is_some_and(|name| name.starts_with("sshd"))
            || session.utmp_host.is_some();
        if context.remote {
            let source = if logind.is_some_and(|record| record.remote) {
                format!("logind {LOGIND_SESSIONS}/{} (REMOTE=1)", session.id)
            } else if let Some(host) = &session.utmp_host {
                format!("utmp {UTMP} (host {host})")
            } else {
                "entry point sshd".to_owned()
            };
            evidence.add("remote", "yes", source);
        }
        let batch = logind
            .and_then(|record| record.class.as_deref())
            .is_some_and(|class| class.starts_with("background"))
            || service.is_some_and(|name| BATCH_ENTRIES.contains(&name));
        context.class = if facts.uid != session.owner && facts.uid != 0 {
            CallerClass::SecondaryLogon
        } else if batch {
            CallerClass::Batch
        } else if context.terminal_verified && facts.uid == session.owner {
            CallerClass::Interactive
        } else if context.terminal_verified {
            CallerClass::Elevated
        } else if context.remote {
            CallerClass::RemoteNoTerminal
        } else {
            CallerClass::Batch
        };
    } else if fallback_applies(facts, settings) {
        fallback(facts, &mut context, &mut evidence);
    }

    let interactive_class = match context.class {
        CallerClass::Interactive => true,
        CallerClass::Elevated => settings.elevation_is_interactive,
        _ => false,
    };
    context.may.install_interactive = is_admin && interactive_class && context.terminal_verified;
    if !context.may.install_interactive {
        context.advice = Some(advice(
            facts,
            &context,
            session.as_ref(),
            settings,
            is_admin,
        ));
    }
    context.facts = evidence.facts;
    context
}

/// The utmp logins of the login user whose process is alive in audit
/// session `audit`.
fn utmp_logins(facts: &Facts, audit: u32) -> impl Iterator<Item = &UtmpEntry> {
    let entries = match &facts.utmp {
        Some(Ok(entries)) => entries.as_slice(),
        _ => &[],
    };
    entries
        .iter()
        .filter(move |entry| entry.for_login_user && entry.pid_session == Some(audit))
}

/// Finds the attested session, saying in the evidence what backed it or
/// why a claimed one was ignored. `entry` is the audit session's topmost
/// process when it runs as root.
fn attest(facts: &Facts, entry: Option<&Ancestor>, evidence: &mut Evidence) -> Option<Session> {
    let utmp_lines = |owner: u32, audit: Option<u32>| -> (Vec<Line>, Option<String>) {
        let mut lines = Vec::new();
        let mut host = None;
        let Some(audit) = audit else {
            return (lines, host);
        };
        if facts.login_uid != Some(owner) {
            return (lines, host);
        }
        for entry in utmp_logins(facts, audit) {
            lines.push(Line::new(entry.login.line.clone(), "utmp ut_line"));
            if is_remote_host(&entry.login.host) {
                host = Some(entry.login.host.clone());
            }
        }
        (lines, host)
    };

    if let (Some(id), Some(record)) = (&facts.cgroup_session, &facts.logind) {
        let source = format!("logind {LOGIND_SESSIONS}/{id}");
        if let Some(owner) = record.uid {
            evidence.add(
                "session",
                id.clone(),
                format!("/proc/{}/cgroup (session-{id}.scope)", facts.pid),
            );
            evidence.add(
                "sessionOwner",
                with_name(owner, record.user.as_deref()),
                source.clone(),
            );
            let mut details = Vec::new();
            for (key, value) in [
                ("class", &record.class),
                ("type", &record.kind),
                ("state", &record.state),
                ("seat", &record.seat),
                ("tty", &record.tty),
                ("service", &record.service),
            ] {
                if let Some(value) = value {
                    details.push(format!("{key} {value}"));
                }
            }
            if !details.is_empty() {
                evidence.add("sessionRecord", details.join(", "), source);
            }
            // utmp lines of the same login (ssh sessions have no TTY= in
            // logind): only when the audit session agrees with logind's.
            let audit = facts
                .audit_session
                .filter(|&audit| record.audit == Some(audit));
            let (mut lines, host) = utmp_lines(owner, audit);
            lines.extend(logind_line(record));
            return Some(Session {
                id: id.clone(),
                owner,
                lines,
                logind: Some(record.clone()),
                utmp_host: host,
                display_fallback: false,
            });
        }
        evidence.add(
            "session",
            format!("{id}: its record names no owner: ignored"),
            source,
        );
    }

    if let Some((id, record)) = &facts.display
        && let Some(owner) = record.uid
    {
        let source =
            format!("logind {LOGIND_USERS}/{owner} (DISPLAY={id}), {LOGIND_SESSIONS}/{id}");
        let local_and_active = record.seat.is_some() && record.state.as_deref() == Some("active");
        if local_and_active {
            evidence.add(
                "session",
                format!("{id}: the display session of the user whose manager runs the caller"),
                source.clone(),
            );
            evidence.add(
                "sessionOwner",
                with_name(owner, record.user.as_deref()),
                source,
            );
            return Some(Session {
                id: id.clone(),
                owner,
                lines: logind_line(record).into_iter().collect(),
                logind: Some(record.clone()),
                utmp_host: None,
                display_fallback: true,
            });
        }
        evidence.add(
            "session",
            format!("{id}: the user's display session is not local and active: ignored"),
            source,
        );
    }
    let (Some(login_uid), Some(audit)) = (facts.login_uid, facts.audit_session) else {
        return None;
    };
    if let Some(record) = &facts.audit_logind
        && record.audit == Some(audit)
        && record.uid == Some(login_uid)
    {
        let source = format!("logind {LOGIND_SESSIONS}/{audit} (AUDIT={audit}, UID={login_uid})");
        evidence.add("session", format!("audit {audit}"), source.clone());
        evidence.add(
            "sessionOwner",
            with_name(login_uid, facts.login_name.as_deref()),
            source,
        );
        let (mut lines, host) = utmp_lines(login_uid, Some(audit));
        lines.extend(logind_line(record));
        return Some(Session {
            id: format!("audit {audit}"),
            owner: login_uid,
            lines,
            logind: Some(record.clone()),
            utmp_host: host,
            display_fallback: false,
        });
    }
    if let Some(first) = utmp_logins(facts, audit).next() {
        let source = format!(
            "utmp {UTMP} ({}, pid {})",
            first.login.line, first.login.pid
        );
        evidence.add("session", format!("audit {audit}"), source.clone());
        evidence.add(
            "sessionOwner",
            with_name(login_uid, facts.login_name.as_deref()),
            source,
        );
        let (lines, host) = utmp_lines(login_uid, Some(audit));
        return Some(Session {
            id: format!("audit {audit}"),
            owner: login_uid,
            lines,
            logind: None,
            utmp_host: host,
            display_fallback: false,
        });
    }
    if let Some(top) = entry.filter(|top| LOGIN_ENTRIES.contains(&top.comm.as_str())) {
        let source = format!(
            "pid {} ({}, uid 0), the topmost process of audit session {audit}",
            top.pid, top.comm
        );
        evidence.add("session", format!("audit {audit}"), source.clone());
        evidence.add(
            "sessionOwner",
            with_name(login_uid, facts.login_name.as_deref()),
            source,
        );
        let lines = console_line(top, evidence).into_iter().collect();
        return Some(Session {
            id: format!("audit {audit}"),
            owner: login_uid,
            lines,
            logind: None,
            utmp_host: None,
            display_fallback: false,
        });
    }
    if let Some(Err(why)) = &facts.utmp {
        evidence.add("utmp", why.clone(), UTMP);
    }
    // The forgery case: a process whose loginuid was unset may set it to
    // anyone, once; without a record or a root entry process that agrees it
    // proves nothing.
    evidence.add(
        "loginUid",
        format!("loginuid {login_uid} is not backed by any login record: ignored"),
        format!("logind {LOGIND_SESSIONS}, utmp {UTMP}, the session's topmost process"),
    );
    None
}

/// logind's `TTY=` of a session, as its line.
fn logind_line(record: &LogindSession) -> Option<Line> {
    record
        .tty
        .as_ref()
        .map(|tty| Line::new(tty.clone(), "logind TTY="))
}

/// The line of a session attested by its root entry process: the
/// controlling terminal of that process when it is the console login
/// program. Only root can run `login` as root, and it runs on the terminal
/// it logs in; sshd and cron entries give no line.
fn console_line(top: &Ancestor, evidence: &mut Evidence) -> Option<Line> {
    if top.comm != CONSOLE_LOGIN || top.tty_nr == 0 {
        return None;
    }
    let exe = top.exe.as_deref().unwrap_or("an unknown program");
    if !CONSOLE_LOGIN_PROGRAMS.contains(&exe) {
        evidence.add(
            "entry",
            format!(
                "pid {} is named login but runs {exe}: its terminal is no line",
                top.pid
            ),
            format!("/proc/{}/exe", top.pid),
        );
        return None;
    }
    let path = terminal_path(top.tty_nr)?;
    let source = format!(
        "the controlling terminal of the session's root login process (pid {}, {exe}), /proc/{}/stat",
        top.pid, top.pid
    );
    evidence.add("sessionLine", path.clone(), source.clone());
    Some(Line::new(path, source))
}

/// The caller's terminal counts when it is one of the session's lines and
/// owned by the session's owner — or, for root, when it is the pty sudo
/// made over such a terminal.
fn verify_terminal(facts: &Facts, session: &Session, evidence: &mut Evidence) -> bool {
    let Some(terminal) = &facts.terminal else {
        evidence.add("terminal", "none", format!("/proc/{}/stat", facts.pid));
        return false;
    };
    if terminal_of_session(terminal, session, evidence) {
        return true;
    }
    if let Some((ancestor, relayed)) = &facts.relay {
        let source = format!(
            "pid {} ({}, uid 0, same audit session)",
            ancestor.pid, ancestor.comm
        );
        describe_terminal(evidence, relayed, &source);
        if terminal_of_session(relayed, session, evidence) {
            evidence.add(
                "terminal",
                format!(
                    "{} relays the session's {}",
                    terminal.path.as_deref().unwrap_or("the caller's terminal"),
                    relayed.path.as_deref().unwrap_or("terminal")
                ),
                source,
            );
            return true;
        }
    }
    false
}

fn terminal_of_session(terminal: &Terminal, session: &Session, evidence: &mut Evidence) -> bool {
    let Some(path) = &terminal.path else {
        return false;
    };
    if terminal.owner != Some(session.owner) {
        evidence.add(
            "terminal",
            format!(
                "{path} is not owned by the session's owner (uid {}): not the session's",
                session.owner
            ),
            format!("stat of {path}"),
        );
        return false;
    }
    let line = session
        .lines
        .iter()
        .find(|line| strip_dev(&line.name) == strip_dev(path));
    if session.display_fallback && path.starts_with("/dev/pts/") && line.is_none() {
        evidence.add(
            "terminal",
            format!(
                "{path} is the owner's, in their local, active display session {} (a desktop terminal)",
                session.id
            ),
            format!("stat of {path}, logind"),
        );
        return true;
    }
    let Some(line) = line else {
        let lines = if session.lines.is_empty() {
            "none known".to_owned()
        } else {
            let names: Vec<&str> = session
                .lines
                .iter()
                .map(|line| line.name.as_str())
                .collect();
            names.join(", ")
        };
        evidence.add(
            "terminal",
            format!(
                "{path} is not a line of session {} (its lines: {lines})",
                session.id
            ),
            "logind TTY=, utmp ut_line, the terminal of a root login heading the session",
        );
        return false;
    };
    evidence.add(
        "terminal",
        format!("{path} is the session's, owned by its owner"),
        line.source.clone(),
    );
    true
}

fn fallback_applies(facts: &Facts, settings: &CallerSettings) -> bool {
    settings
        .terminal_fallback
        .unwrap_or(!facts.logind_running && !facts.audit_available)
}

/// No logind and no audit (containers): the controlling terminal's owner is
/// the only login evidence there is.
fn fallback(facts: &Facts, context: &mut CallerContext, evidence: &mut Evidence) {
    let why = if facts.logind_running || facts.audit_available {
        "configured ([caller] terminal_fallback = true)"
    } else {
        "no logind and no audit on this machine"
    };
    let owned = facts
        .terminal
        .as_ref()
        .and_then(|terminal| Some((terminal.path.as_ref()?, terminal.owner?)));
    let Some((path, owner)) = owned else {
        evidence.add(
            "fallback",
            format!("{why}; no controlling terminal: no login"),
            "terminal fallback",
        );
        return;
    };
    let class = if owner == facts.uid {
        CallerClass::Interactive
    } else if facts.uid == 0 {
        CallerClass::Elevated
    } else {
        evidence.add(
            "fallback",
            format!("{why}; {path} belongs to uid {owner}, not the caller: no login"),
            format!("stat of {path}"),
        );
        return;
    };
    evidence.add(
        "fallback",
        format!("{why}: classified by the owner of {path} (uid {owner})"),
        format!("stat of {path}"),
    );
    context.class = class;
    context.terminal_verified = true;
}

fn advice(
    facts: &Facts,
    context: &CallerContext,
    session: Option<&Session>,
    settings: &CallerSettings,
    is_admin: bool,
) -> String {
    let caller = facts
        .user_name
        .clone()
        .unwrap_or_else(|| format!("uid {}", facts.uid));
    let owner = session.map(|session| {
        facts
            .login_name
            .clone()
            .filter(|_| facts.login_uid == Some(session.owner))
            .unwrap_or_else(|| format!("uid {}", session.owner))
    });
    match context.class {
        CallerClass::SecondaryLogon => format!(
            "Run it from {caller}'s own login (log in as {caller}), or from {}'s login elevate with `sudo wua install …` there.",
            owner.unwrap_or_else(|| "the session owner".into())
        ),
        CallerClass::RemoteNoTerminal => "Connect with a terminal (`ssh -t host wua install …`), or leave the update for the next administrator at a terminal (`wua status` lists it).".into(),
        CallerClass::Batch => "A scheduled or detached job cannot answer an installer's questions: run `wua install …` at the session's own terminal, or leave the update for the next administrator there (`wua status` lists it).".into(),
        CallerClass::Service => "Without a login session nobody can answer an installer's questions: run `wua install …` from a login at a terminal (the console or `ssh -t`), as an administrator or with sudo there.".into(),
        CallerClass::Elevated if !settings.elevation_is_interactive => "Elevation is not interactive on this machine ([caller] elevation_is_interactive = false): install it from root's own login at a terminal.".into(),
        CallerClass::Interactive | CallerClass::Elevated if !is_admin => format!(
            "{caller} may not install updates: elevate at this terminal with `sudo wua install …`."
        ),
        CallerClass::Interactive | CallerClass::Elevated => "Run `wua install …` at the session's own terminal.".into(),
    }
}

fn is_remote_host(host: &str) -> bool {
    // An X display (":0") is a local graphical login.
    !host.is_empty() && !host.starts_with(':')
}

fn describe_terminal(evidence: &mut Evidence, terminal: &Terminal, source: &str) {
    let value = terminal.path.clone().unwrap_or_else(|| {
        let (major, minor) = super::records::device_numbers(terminal.tty_nr);
        format!("device {major}:{minor}")
    });
    evidence.add("terminal", value, source.to_owned());
    if let (Some(path), Some(owner)) = (&terminal.path, terminal.owner) {
        evidence.add(
            "terminalOwner",
            owner.to_string(),
            format!("stat of {path}"),
        );
    }
    if let Some(problem) = &terminal.problem {
        evidence.add("terminalOwner", format!("unknown: {problem}"), "stat");
    }
}

fn with_name(uid: u32, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{uid} ({name})"),
        None => uid.to_string(),
    }
}

fn list(values: &[u32]) -> String {
    if values.is_empty() {
        return "none".into();
    }
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Default)]
struct Evidence {
    facts: Vec<CallerFact>,
}

impl Evidence {
    fn add(&mut self, name: &str, value: impl Into<String>, source: impl Into<String>) {
        self.facts.push(CallerFact::new(name, value, source));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::UtmpLogin;

    const ALICE: u32 = 1000;
    const BOB: u32 = 1001;
    const PTS2: u64 = (136 << 8) | 2;
    const PTS5: u64 = (136 << 8) | 5;

    fn terminal(tty_nr: u64, owner: u32) -> Terminal {
        Terminal {
            tty_nr,
            path: super::super::records::terminal_path(tty_nr),
            owner: Some(owner),
            problem: None,
        }
    }

    fn utmp(user: &str, line: &str, pid: i32, host: &str, session: Option<u32>) -> UtmpEntry {
        UtmpEntry {
            login: UtmpLogin {
                pid,
                line: line.into(),
                user: user.into(),
                host: host.into(),
            },
            for_login_user: user == "alice",
            pid_session: session,
        }
    }

    /// A process of the chain; a root `login` runs the real program, as
    /// the agent reads it (`exe`).
    fn ancestor(pid: i32, uid: u32, comm: &str, tty_nr: u64) -> Ancestor {
        Ancestor {
            pid,
            uid,
            comm: comm.into(),
            tty_nr,
            exe: (uid == 0 && comm == CONSOLE_LOGIN).then(|| "/usr/bin/login".into()),
        }
    }

    /// Alice logged in with `login` on pts/2 (audit session 7, utmp record),
    /// no logind; the caller runs as `uid` on `tty`.
    fn audit_login(uid: u32, tty: Option<Terminal>) -> Facts {
        Facts {
            uid,
            gid: uid,
            pid: 4242,
            pin: Some(Pin::Peer),
            audit_available: true,
            user_name: Some(if uid == BOB { "bob" } else { "alice" }.into()),
            login_uid: Some(ALICE),
            audit_session: Some(7),
            login_name: Some("alice".into()),
            utmp: Some(Ok(vec![utmp("alice", "pts/2", 900, "", Some(7))])),
            terminal: tty,
            chain: vec![
                ancestor(950, ALICE, "bash", PTS2),
                ancestor(900, 0, "login", PTS2),
            ],
            ..Facts::default()
        }
    }

    fn settings() -> CallerSettings {
        CallerSettings::default()
    }

    #[test]
    fn interactive_session_owner_at_its_terminal() {
        let context = classify(
            &audit_login(ALICE, Some(terminal(PTS2, ALICE))),
            &settings(),
            true,
        );
        assert_eq!(context.class, CallerClass::Interactive);
        assert_eq!(context.login_uid, Some(ALICE));
        assert_eq!(context.session.as_deref(), Some("audit 7"));
        assert_eq!(context.terminal.as_deref(), Some("/dev/pts/2"));
        assert!(context.terminal_verified);
        assert!(context.may.install_interactive);
        assert_eq!(context.advice, None);
        assert!(
            context
                .facts_named("entry")
                .any(|fact| fact.value == "login")
        );
        assert!(
            context
                .facts_named("session")
                .any(|fact| fact.source.contains("utmp /var/run/utmp (pts/2, pid 900)"))
        );
    }

    #[test]
    fn interactive_but_not_an_administrator_is_told_to_elevate() {
        let context = classify(
            &audit_login(ALICE, Some(terminal(PTS2, ALICE))),
            &settings(),
            false,
        );
        assert_eq!(context.class, CallerClass::Interactive);
        assert!(!context.may.install && !context.may.install_interactive);
        assert!(context.advice.is_some_and(|advice| advice.contains("sudo")));
    }

    #[test]
    fn elevated_root_at_the_owners_terminal() {
        let mut facts = audit_login(0, Some(terminal(PTS2, ALICE)));
        facts.chain.insert(0, ancestor(960, 0, "sudo", PTS2));
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::Elevated);
        assert!(context.may.install_interactive);

        let not_interactive = CallerSettings {
            elevation_is_interactive: false,
            ..settings()
        };
        let context = classify(&facts, &not_interactive, true);
        assert_eq!(context.class, CallerClass::Elevated);
        assert!(!context.may.install_interactive);
        assert!(
            context
                .advice
                .is_some_and(|advice| advice.contains("elevation_is_interactive"))
        );
    }

    #[test]
    fn elevated_through_sudos_own_pty() {
        // sudo (use_pty) runs the command on pts/5, owned by root; sudo
        // itself is on alice's pts/2.
        let mut facts = audit_login(0, Some(terminal(PTS5, 0)));
        facts.relay = Some((ancestor(960, 0, "sudo", PTS2), terminal(PTS2, ALICE)));
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::Elevated);
        assert!(context.terminal_verified);
        assert_eq!(context.terminal.as_deref(), Some("/dev/pts/5"));
    }

    #[test]
    fn secondary_logon() {
        let context = classify(
            &audit_login(BOB, Some(terminal(PTS2, ALICE))),
            &settings(),
            true,
        );
        assert_eq!(context.class, CallerClass::SecondaryLogon);
        assert_eq!(context.login_uid, Some(ALICE));
        assert!(context.may.install && !context.may.install_interactive);
        let advice = context.advice.expect("advice");
        assert!(
            advice.contains("bob's own login") && advice.contains("alice's login"),
            "{advice}"
        );
    }

    #[test]
    fn remote_without_a_terminal() {
        let mut facts = audit_login(ALICE, None);
        facts.utmp = Some(Ok(vec![utmp("alice", "pts/3", 800, "192.0.2.7", Some(7))]));
        facts.chain = vec![ancestor(800, 0, "sshd", 0)];
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::RemoteNoTerminal);
        assert!(context.remote);
        assert!(!context.may.install_interactive);
        assert!(
            context
                .advice
                .is_some_and(|advice| advice.contains("ssh -t"))
        );
    }

    #[test]
    fn remote_with_its_terminal_is_interactive() {
        let mut facts = audit_login(ALICE, Some(terminal(PTS2, ALICE)));
        facts.utmp = Some(Ok(vec![utmp("alice", "pts/2", 800, "192.0.2.7", Some(7))]));
        facts.chain = vec![ancestor(800, 0, "sshd", 0)];
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::Interactive);
        assert!(context.remote);
    }

    #[test]
    fn batch_from_cron_and_from_logind_background() {
        let mut facts = audit_login(ALICE, None);
        facts.utmp = Some(Ok(vec![utmp("alice", "pts/2", 900, "", Some(7))]));
        facts.chain = vec![ancestor(600, 0, "cron", 0)];
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::Batch);

        let logind = Facts {
            uid: ALICE,
            pid: 10,
            pin: Some(Pin::Peer),
            logind_running: true,
            cgroup: Some("/user.slice/user-1000.slice/session-c3.scope".into()),
            cgroup_session: Some("c3".into()),
            logind: Some(LogindSession {
                uid: Some(ALICE),
                class: Some("background".into()),
                service: Some("crond".into()),
                ..LogindSession::default()
            }),
            ..Facts::default()
        };
        let context = classify(&logind, &settings(), true);
        assert_eq!(context.class, CallerClass::Batch);
        assert_eq!(context.session.as_deref(), Some("c3"));
        assert!(!context.may.install_interactive);
    }

    #[test]
    fn local_session_away_from_its_terminal_is_batch() {
        let context = classify(&audit_login(ALICE, None), &settings(), true);
        assert_eq!(context.class, CallerClass::Batch);
    }

    #[test]
    fn logind_session_with_its_tty() {
        let facts = Facts {
            uid: ALICE,
            pid: 10,
            pin: Some(Pin::Peer),
            logind_running: true,
            audit_available: true,
            cgroup_session: Some("3".into()),
            logind: Some(LogindSession {
                uid: Some(ALICE),
                class: Some("user".into()),
                seat: Some("seat0".into()),
                tty: Some("tty1".into()),
                service: Some("login".into()),
                ..LogindSession::default()
            }),
            terminal: Some(terminal((4 << 8) | 1, ALICE)),
            ..Facts::default()
        };
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::Interactive);
        assert_eq!(context.session.as_deref(), Some("3"));
        assert!(!context.remote);
        // The same session after its login ended (a tmux left behind).
        let mut closing = facts;
        if let Some(record) = closing.logind.as_mut() {
            record.state = Some("closing".into());
        }
        let context = classify(&closing, &settings(), true);
        assert!(!context.terminal_verified);
        assert!(!context.may.install_interactive);
    }

    #[test]
    fn a_desktop_terminal_outside_any_session_uses_the_display_session() {
        // GNOME Terminal's shell: under alice's user manager, no session
        // scope; alice's display session 2 is on seat0 and active.
        let desktop = |uid: u32, state: &str| Facts {
            uid,
            pid: 10,
            pin: Some(Pin::Peer),
            logind_running: true,
            audit_available: true,
            cgroup: Some(
                "/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope".into(),
            ),
            display: Some((
                "2".into(),
                LogindSession {
                    uid: Some(ALICE),
                    class: Some("user".into()),
                    kind: Some("wayland".into()),
                    seat: Some("seat0".into()),
                    state: Some(state.into()),
                    ..LogindSession::default()
                },
            )),
            terminal: Some(terminal(PTS5, ALICE)),
            ..Facts::default()
        };
        let context = classify(&desktop(ALICE, "active"), &settings(), true);
        assert_eq!(context.class, CallerClass::Interactive);
        assert!(context.may.install_interactive);
        assert_eq!(context.session.as_deref(), Some("2"));
        // `su bob` in that terminal: a secondary logon.
        let context = classify(&desktop(BOB, "active"), &settings(), true);
        assert_eq!(context.class, CallerClass::SecondaryLogon);
        assert!(!context.may.install_interactive);
        // Not in front of the seat (switched away, or locked out): nothing.
        let context = classify(&desktop(ALICE, "online"), &settings(), true);
        assert_eq!(context.class, CallerClass::Service);
        assert!(!context.may.install_interactive);
    }

    #[test]
    fn service_without_a_login() {
        let facts = Facts {
            uid: 0,
            pid: 10,
            pin: Some(Pin::Peer),
            audit_available: true,
            cgroup: Some("/system.slice/x.service".into()),
            ..Facts::default()
        };
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::Service);
        assert_eq!(context.login_uid, None);
        assert!(!context.may.install_interactive);
        assert!(context.advice.is_some());
    }

    #[test]
    fn a_root_entry_process_attests_a_session_without_records() {
        // cron's job: loginuid set by pam_loginuid, no utmp, no terminal.
        let mut facts = audit_login(ALICE, None);
        facts.utmp = Some(Ok(Vec::new()));
        facts.chain = vec![ancestor(40, 0, "cron", 0)];
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::Batch);
        assert_eq!(context.login_uid, Some(ALICE));
        assert!(!context.may.install_interactive);
        // A non-root top, or a root program that opens no logins, is not.
        facts.chain = vec![ancestor(40, 0, "passwd", 0)];
        assert_eq!(
            classify(&facts, &settings(), true).class,
            CallerClass::Service
        );
    }

    /// Alice's `login -f` on pts/2 with neither logind nor utmp: only the
    /// root `login` heading audit session 7 attests it; the caller runs as
    /// `uid` on `tty`.
    fn console_login(uid: u32, tty: Option<Terminal>) -> Facts {
        Facts {
            utmp: Some(Err("/var/run/utmp: No such file or directory".into())),
            ..audit_login(uid, tty)
        }
    }

    #[test]
    fn a_console_login_without_records_is_interactive_at_its_login_s_terminal() {
        let context = classify(
            &console_login(ALICE, Some(terminal(PTS2, ALICE))),
            &settings(),
            true,
        );
        assert_eq!(context.class, CallerClass::Interactive);
        assert!(context.terminal_verified && context.may.install_interactive);
        assert_eq!(context.session.as_deref(), Some("audit 7"));
        let source = "the controlling terminal of the session's root login process (pid 900, /usr/bin/login), /proc/900/stat";
        assert!(
            context
                .facts_named("sessionLine")
                .any(|fact| fact.value == "/dev/pts/2" && fact.source == source)
        );
        assert!(
            context
                .facts_named("terminal")
                .any(|fact| fact.value.contains("is the session's") && fact.source == source)
        );
        // root through sudo's own pty there: elevated, by the relay.
        let mut facts = console_login(0, Some(terminal(PTS5, 0)));
        facts.relay = Some((ancestor(960, 0, "sudo", PTS2), terminal(PTS2, ALICE)));
        assert_eq!(
            classify(&facts, &settings(), true).class,
            CallerClass::Elevated
        );
    }

    #[test]
    fn su_bob_at_a_console_login_s_terminal_is_a_secondary_logon() {
        let context = classify(
            &console_login(BOB, Some(terminal(PTS2, ALICE))),
            &settings(),
            true,
        );
        assert_eq!(context.class, CallerClass::SecondaryLogon);
        assert_eq!(context.login_uid, Some(ALICE));
        assert!(!context.may.install_interactive);
    }

    #[test]
    fn only_the_console_login_s_own_terminal_is_a_line() {
        // sshd heading the session gives no line, even on a terminal.
        let mut facts = console_login(ALICE, Some(terminal(PTS2, ALICE)));
        facts.chain = vec![
            ancestor(950, ALICE, "bash", PTS2),
            ancestor(800, 0, "sshd", PTS2),
        ];
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::RemoteNoTerminal);
        assert!(!context.terminal_verified);
        assert_eq!(context.facts_named("sessionLine").count(), 0);
        // login on pts/2, the caller on a pty of alice's own: not it.
        let context = classify(
            &console_login(ALICE, Some(terminal(PTS5, ALICE))),
            &settings(),
            true,
        );
        assert_eq!(context.class, CallerClass::Batch);
        assert!(!context.terminal_verified && !context.may.install_interactive);
        // A setuid program started through a link named login (its comm):
        // not the login program, so its terminal is no line.
        let mut facts = console_login(ALICE, Some(terminal(PTS2, ALICE)));
        facts.chain[1].exe = Some("/usr/bin/su".into());
        let context = classify(&facts, &settings(), true);
        assert!(!context.terminal_verified && !context.may.install_interactive);
        assert!(
            context
                .facts_named("entry")
                .any(|fact| fact.value.contains("runs /usr/bin/su"))
        );
        // login without a terminal of its own gives none.
        let mut facts = console_login(ALICE, Some(terminal(PTS2, ALICE)));
        facts.chain[1].tty_nr = 0;
        assert!(!classify(&facts, &settings(), true).terminal_verified);
    }

    #[test]
    fn forged_loginuid_is_ignored() {
        // A service process set its unset loginuid to alice's: it got a
        // fresh audit session no record knows, and a pty of its own.
        let mut facts = audit_login(ALICE, Some(terminal(PTS5, ALICE)));
        facts.audit_session = Some(99);
        facts.chain.clear();
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::Service);
        assert_eq!(context.login_uid, None);
        assert!(!context.may.install_interactive);
        assert!(context.facts_named("loginUid").any(|fact| {
            fact.value == "loginuid 1000 is not backed by any login record: ignored"
        }));
        // Same with a utmp record whose process is gone (and no root entry
        // process above the caller).
        let mut facts = audit_login(ALICE, Some(terminal(PTS2, ALICE)));
        facts.utmp = Some(Ok(vec![utmp("alice", "pts/2", 900, "", None)]));
        facts.chain.clear();
        assert_eq!(
            classify(&facts, &settings(), true).class,
            CallerClass::Service
        );
    }

    #[test]
    fn a_terminal_that_is_not_the_sessions_gets_no_interaction() {
        // Alice's own new pty (script, a pty she opened): hers, but not a
        // line of her login.
        let context = classify(
            &audit_login(ALICE, Some(terminal(PTS5, ALICE))),
            &settings(),
            true,
        );
        assert_eq!(context.class, CallerClass::Batch);
        assert!(!context.terminal_verified);
        // The session's line, but owned by someone else.
        let context = classify(
            &audit_login(ALICE, Some(terminal(PTS2, BOB))),
            &settings(),
            true,
        );
        assert!(!context.terminal_verified);
        assert!(!context.may.install_interactive);
        // Root on a pty of its own without sudo's relay.
        let context = classify(&audit_login(0, Some(terminal(PTS5, 0))), &settings(), true);
        assert!(!context.may.install_interactive);
    }

    #[test]
    fn fallback_without_logind_and_audit() {
        let facts = Facts {
            uid: ALICE,
            pid: 10,
            pin: Some(Pin::Peer),
            terminal: Some(terminal(PTS2, ALICE)),
            ..Facts::default()
        };
        let context = classify(&facts, &settings(), true);
        assert_eq!(context.class, CallerClass::Interactive);
        assert!(context.terminal_verified);
        assert!(
            context
                .facts_named("fallback")
                .any(|fact| fact.value.contains("no logind and no audit"))
        );

        let root = Facts {
            uid: 0,
            ..facts.clone()
        };
        assert_eq!(
            classify(&root, &settings(), true).class,
            CallerClass::Elevated
        );

        let other = Facts {
            uid: BOB,
            ..facts.clone()
        };
        assert_eq!(
            classify(&other, &settings(), true).class,
            CallerClass::Service
        );

        // Switched off, or not applicable on a machine with audit.
        let off = CallerSettings {
            terminal_fallback: Some(false),
            ..settings()
        };
        assert_eq!(classify(&facts, &off, true).class, CallerClass::Service);
        let with_audit = Facts {
            audit_available: true,
            ..facts.clone()
        };
        assert_eq!(
            classify(&with_audit, &settings(), true).class,
            CallerClass::Service
        );
        let forced = CallerSettings {
            terminal_fallback: Some(true),
            ..settings()
        };
        assert_eq!(
            classify(&with_audit, &forced, true).class,
            CallerClass::Interactive
        );
    }

    #[test]
    fn weak_pin_is_reported() {
        let facts = Facts {
            pin: Some(Pin::Opened),
            audit_available: true,
            ..Facts::default()
        };
        let context = classify(&facts, &settings(), false);
        assert!(context.weak);
        assert!(
            context
                .facts_named("process")
                .any(|fact| fact.source == "pidfd_open")
        );
    }
}
