//! `wua context`: how the agent sees this process — its class, the facts
//! with their sources, what it may do and, when it may not install updates
//! that ask questions, what to do instead.

use std::io::Write;

use openwua_model::caller::CallerContext;

use crate::agent::Target;
use crate::exit;
use crate::table::{Align, Table};

pub fn run(agent: &Target, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let context = session.caller_context()?;
        if json {
            serde_json::to_writer_pretty(&mut *out, &context)?;
            writeln!(out)?;
        } else {
            write_text(&context, out)?;
        }
        Ok(exit::SUCCESS)
    })
}

fn write_text(context: &CallerContext, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "Class: {}", context.class.describe())?;
    writeln!(out)?;
    let mut summary = Table::new(
        &[
            ("FACT", Align::Left),
            ("VALUE", Align::Left),
            ("SOURCE", Align::Left),
        ],
        2,
    );
    // The source of the first fact named `name`.
    let fact = |name: &str| {
        context
            .facts_named(name)
            .next()
            .map(|fact| fact.source.clone())
    };
    let uid = context.facts_named("uid").next();
    summary.row(
        vec![
            "uid".into(),
            uid.map_or_else(|| context.uid.to_string(), |fact| fact.value.clone()),
            uid.map_or_else(|| "SO_PEERCRED".into(), |fact| fact.source.clone()),
        ],
        None,
    );
    let login = context.facts_named("sessionOwner").next();
    summary.row(
        vec![
            "login uid".into(),
            match (context.login_uid, login) {
                (Some(_), Some(owner)) => owner.value.clone(),
                (Some(uid), None) => uid.to_string(),
                (None, _) => "none attested".into(),
            },
            login.map_or_else(|| "-".into(), |owner| owner.source.clone()),
        ],
        None,
    );
    summary.row(
        vec![
            "session".into(),
            context.session.clone().unwrap_or_else(|| "none".into()),
            context
                .session
                .as_ref()
                .and(fact("session"))
                .unwrap_or_else(|| "-".into()),
        ],
        None,
    );
    let terminal = match &context.terminal {
        Some(path) if context.terminal_verified => format!("{path} (the session's)"),
        Some(path) => format!("{path} (not verified)"),
        None if context.terminal_verified => "verified".into(),
        None => "none".into(),
    };
    summary.row(
        vec![
            "terminal".into(),
            terminal,
            fact("terminal").unwrap_or_else(|| "-".into()),
        ],
        None,
    );
    if context.remote {
        summary.row(
            vec![
                "remote".into(),
                "yes".into(),
                fact("remote").unwrap_or_default(),
            ],
            None,
        );
    }
    if context.weak {
        summary.row(
            vec![
                "pinned".into(),
                "weakly: the kernel has no SO_PEERPIDFD".into(),
                "pidfd_open".into(),
            ],
            None,
        );
    }
    summary.write(out)?;

    let yes = |allowed: bool| if allowed { "yes" } else { "no" };
    let may = &context.may;
    writeln!(out)?;
    writeln!(
        out,
        "May: search {}, download {}, install {}, install updates that ask questions {}",
        yes(may.search),
        yes(may.download),
        yes(may.install),
        yes(may.install_interactive)
    )?;
    if let Some(advice) = &context.advice {
        writeln!(out, "{advice}")?;
    }

    writeln!(out)?;
    writeln!(out, "Evidence:")?;
    let mut evidence = Table::new(&[("FACT", Align::Left), ("VALUE", Align::Left)], 1);
    for fact in &context.facts {
        evidence.row(
            vec![fact.name.clone(), fact.value.clone()],
            Some(format!("from {}", fact.source)),
        );
    }
    evidence.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openwua_model::caller::{CallerClass, CallerFact, CallerPermissions};

    #[test]
    fn text_names_class_sources_and_advice() {
        let context = CallerContext {
            class: CallerClass::SecondaryLogon,
            uid: 1001,
            login_uid: Some(1000),
            session: Some("audit 7".into()),
            terminal: Some("/dev/pts/2".into()),
            terminal_verified: true,
            remote: false,
            weak: false,
            facts: vec![
                CallerFact::new("uid", "1001 (bob)", "SO_PEERCRED"),
                CallerFact::new("session", "audit 7", "utmp /var/run/utmp (pts/2, pid 900)"),
                CallerFact::new(
                    "sessionOwner",
                    "1000 (alice)",
                    "utmp /var/run/utmp (pts/2, pid 900)",
                ),
                CallerFact::new("terminal", "/dev/pts/2", "/proc/4242/stat"),
            ],
            may: CallerPermissions {
                search: true,
                download: true,
                install: true,
                install_interactive: false,
            },
            advice: Some("Run it from bob's own login.".into()),
        };
        let mut out = Vec::new();
        write_text(&context, &mut out).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("secondary logon (Run As"), "{text}");
        assert!(
            text.contains("1001 (bob)") && text.contains("1000 (alice)"),
            "{text}"
        );
        assert!(
            text.contains("utmp /var/run/utmp (pts/2, pid 900)"),
            "{text}"
        );
        assert!(
            text.contains(
                "May: search yes, download yes, install yes, install updates that ask questions no"
            ),
            "{text}"
        );
        assert!(text.contains("Run it from bob's own login."), "{text}");
    }
}
