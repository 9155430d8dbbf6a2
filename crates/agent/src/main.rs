//! `wua-agent`: reads its configuration, opens the store and serves the
//! Varlink socket until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use openwua_agent::config::{Config, DEFAULT_CONFIG_PATH};
use openwua_agent::{Agent, varlink};
use openwua_dist::ManSection;

/// OpenWUA's agent service.
#[derive(Debug, Parser)]
#[command(name = "wua-agent", version, about)]
struct Args {
    /// The configuration file; missing is fine at the default path.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Overrides `state_dir` (the store).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Overrides `cache_dir` (downloaded content).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Overrides `socket`.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Overrides `admin_group`.
    #[arg(long, value_name = "GROUP")]
    admin_group: Option<String>,
    /// Overrides `facts.root`: where file rules look.
    #[arg(long, value_name = "DIR")]
    facts_root: Option<PathBuf>,
    /// Overrides `facts.dpkg_admindir`.
    #[arg(long, value_name = "DIR")]
    dpkg_admindir: Option<PathBuf>,
    /// Overrides `facts.os_release`.
    #[arg(long, value_name = "FILE")]
    os_release: Option<PathBuf>,
}

fn config(args: Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(std::path::Path::new(DEFAULT_CONFIG_PATH), false)?,
    };
    let overrides = [
        (args.state_dir, &mut config.state_dir),
        (args.cache_dir, &mut config.cache_dir),
        (args.socket, &mut config.socket),
        (args.facts_root, &mut config.facts.root),
        (args.dpkg_admindir, &mut config.facts.dpkg_admindir),
        (args.os_release, &mut config.facts.os_release),
    ];
    for (value, setting) in overrides {
        if let Some(value) = value {
            *setting = value;
        }
    }
    if args.admin_group.is_some() {
        config.admin_group = args.admin_group;
    }
    Ok(config)
}

fn main() -> std::process::ExitCode {
    // Build time: the man pages and completions (scripts/build-deb).
    if let Some(status) =
        openwua_dist::generate_if_asked(Args::command, ManSection::SystemAdministration)
    {
        return status;
    }
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line, with the HRESULT and its advice when it is ours.
            eprintln!("wua-agent: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WUA_AGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = config(Args::parse())?;
    varlink::raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async move {
        let socket = config.socket.clone();
        let agent = Arc::new(Agent::open(config)?);
        let (listener, activated) = listener(&socket)?;
        tracing::info!("serving org.openwua.Agent on {}", socket.display());
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            () = varlink::serve(Arc::clone(&agent), listener) => {}
            () = Arc::clone(&agent).run_automatic_updates() => {}
            () = Arc::clone(&agent).send_reports() => {}
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        }
        // Running jobs stop at their next safe point and say so in history.
        agent.shut_down().await;
        // The socket is systemd's when it was passed in. Otherwise removal
        // is best effort: a stale socket is replaced at the next start anyway.
        if !activated {
            let _ = std::fs::remove_file(&socket);
        }
        Ok(())
    });
    // Dropping the runtime would wait for every blocking task, so a job
    // still running past the grace period would keep the process alive:
    // leave it instead. Its journal entry records the update it was
    // installing as interrupted at the next start.
    runtime.shutdown_background();
    outcome
}

/// The socket systemd passed (socket activation, `LISTEN_FDS`), else one
/// bound at `socket`; true when it was passed.
fn listener(socket: &std::path::Path) -> anyhow::Result<(tokio::net::UnixListener, bool)> {
    match listenfd::ListenFd::from_env().take_unix_listener(0)? {
        Some(listener) => {
            listener.set_nonblocking(true)?;
            Ok((tokio::net::UnixListener::from_std(listener)?, true))
        }
        None => Ok((varlink::bind(socket)?, false)),
    }
}
