//! `wua-server`: the update server and the commands that administer it.
//! A shim: parse the arguments, run one command, map the result to an exit
//! status (0 done, 1 the request was refused, 2 could not run).

mod cli_automation;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use openwua_dist::ManSection;
use openwua_server::client::{ApiFailure, Client, Source};
use openwua_server::config::{ConfigFile, DEFAULT_CONFIG, DEFAULT_DATA_DIR};
use openwua_server::fleet::{ApprovalAction, Computer};
use openwua_server::fleet_api::{ApprovalRequest, ChangeReport};
use openwua_server::reports::{
    ComputerSummary, GroupFilter, UpdateComputers, UpdateComputersQuery,
};
use openwua_server::setup::{ADMIN_TOKEN_FILE, read_token};
use openwua_server::store::{PublishAction, StoredRevision};

/// OpenWUA's update server (the WSUS role).
#[derive(Parser)]
#[command(name = "wua-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve(ServeArgs),
    /// Prints the running server's public key (what agents pin).
    Key {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Publishes a manifest directory or a scan package: uploads its
    /// content, then its revisions. Publishing the same input again changes
    /// nothing; a changed update gets the next revision number.
    Publish {
        /// A service directory of manifests, or a scan package file.
        source: PathBuf,
        /// The key that signed the scan package (`ed25519:…`).
        #[arg(long)]
        package_key: Option<String>,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Declines (withdraws) an update.
    Decline {
        /// The update's ID.
        update_id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Lists or shows published updates.
    Updates {
        #[command(subcommand)]
        command: UpdatesCommand,
    },
    /// Lists, adds or removes computer groups.
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
    },
    /// Lists, shows or moves registered computers.
    Computers {
        #[command(subcommand)]
        command: ComputersCommand,
    },
    /// Automatic approval rules: add, list, show, remove, run (or dry-run).
    Rules {
        #[command(subcommand)]
        command: cli_automation::RulesCommand,
    },
    /// Staged rollouts that halt themselves: start, list, show, halt, resume.
    Rollouts {
        #[command(subcommand)]
        command: cli_automation::RolloutsCommand,
    },
    /// Status reports: what computers said of their updates.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Runs maintenance now, or lists past runs (the server also runs it
    /// daily: docs/server.md, "Maintenance").
    Maintenance {
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
    /// Air gap: writes what is approved for a group as an offline scan
    /// package, signed with the server's key, which an agent with no route
    /// to this server imports with `wua services add-package FILE --pubkey
    /// KEY` (the key is printed). Deadlines and Install/Uninstall
    /// approvals carry over as at a sync. Without --with-content the agent
    /// needs the content another way: `--content-base file:///…/` over a
    /// copy of the data directory's `content/` (docs/server.md, "Air gap").
    Export {
        /// The group whose approvals (its own and inherited) are exported.
        #[arg(long)]
        group: String,
        /// The package file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Put every content file in the package.
        #[arg(long)]
        with_content: bool,
        /// Days agents accept the package (1 to 366).
        #[arg(long, default_value_t = openwua_server::airgap::DEFAULT_LIFETIME_DAYS)]
        lifetime_days: u32,
        /// Export even when nothing is approved: the empty catalog
        /// withdraws everything the site holds.
        #[arg(long)]
        allow_empty: bool,
        /// Prints what was written as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Air gap: imports the report file that `wua export-reports` wrote on
    /// a disconnected machine. Each report is checked and stored as the
    /// reports endpoint stores a computer's, for the machine's offline
    /// computer (made in the exported group at its first import). The file
    /// is not signed: import only files you carried from the site.
    ImportReports {
        /// The report file.
        file: PathBuf,
        /// Prints the server's answers as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Upstream Debian/Ubuntu repositories the server syncs updates from.
    Upstream {
        #[command(subcommand)]
        command: UpstreamCommand,
    },
    /// Approves an update for a group (and the groups under it that have
    /// no approval of their own), or sets it to uninstall or not approved.
    Approve {
        /// The update's ID.
        update_id: String,
        /// The group.
        #[arg(long)]
        group: String,
        /// install, uninstall or notApproved.
        #[arg(long, default_value = "install")]
        action: String,
        /// When it must be installed by (RFC 3339, e.g. 2027-01-31T18:00:00Z).
        #[arg(long)]
        deadline: Option<String>,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum UpstreamCommand {
    /// Adds an upstream; `upstream sync` fetches it.
    Add {
        /// Its name.
        name: String,
        /// The mirror (`https://deb.debian.org/debian/`).
        #[arg(long)]
        url: String,
        /// A suite (`bookworm`, `bookworm-security`); repeat for more.
        #[arg(long = "suite", required = true)]
        suites: Vec<String>,
        /// A component (`main`); repeat for more.
        #[arg(long = "component", required = true)]
        components: Vec<String>,
        /// An architecture (`amd64`); repeat for more.
        #[arg(long = "arch", required = true)]
        architectures: Vec<String>,
        /// The keyring that signs its InRelease files (binary, as in
        /// /usr/share/keyrings).
        #[arg(long)]
        keyring: PathBuf,
        /// Only source packages matching this pattern (`*`, `?`); repeat.
        #[arg(long = "source")]
        sources: Vec<String>,
        /// Only suites of this kind: security, updates or backports; repeat.
        #[arg(long = "pocket")]
        pockets: Vec<String>,
        /// Prints the upstream as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Every upstream.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Removes an upstream (the updates it published stay).
    Remove {
        /// Its name.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Syncs one upstream, or every one, now.
    Sync {
        /// Its name; every upstream when absent.
        name: Option<String>,
        /// Prints the reports as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Runs maintenance now with the server's policy and prints what it
    /// removed.
    Run {
        /// Change nothing: print what a run would remove now.
        #[arg(long)]
        dry_run: bool,
        /// Prints the run's record as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The newest runs' records.
    Runs {
        /// How many (1 to 1,000).
        #[arg(long, default_value_t = 20)]
        limit: u64,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum GroupsCommand {
    /// Every group, with its parent.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Adds a group.
    Add {
        /// Its name.
        name: String,
        /// Its parent (default "All Computers").
        #[arg(long)]
        parent: Option<String>,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Removes a group that has no computers and no child groups.
    Remove {
        /// Its name.
        name: String,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum ComputersCommand {
    /// Every registered computer.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One computer.
    Show {
        /// Its computer ID.
        computer_id: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Moves a computer to another group.
    Move {
        /// Its computer ID.
        computer_id: String,
        /// The group to move it to.
        #[arg(long)]
        group: String,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// The group filter of `report computers|failures|stale`.
#[derive(Args)]
struct GroupArgs {
    /// Only computers in this group and the groups under it.
    #[arg(long)]
    group: Option<String>,
    /// With --group: not the groups under it.
    #[arg(long, requires = "group")]
    no_subgroups: bool,
}

impl GroupArgs {
    fn filter(&self) -> GroupFilter {
        GroupFilter {
            group: self.group.clone(),
            subgroups: self.no_subgroups.then_some(false),
        }
    }
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Per update, how many computers are in each state (Unknown: in a
    /// group it is approved for Install, with no state sent for it); with
    /// --computers, which computers need one update.
    Updates {
        /// One update's ID; every update when absent.
        update_id: Option<String>,
        /// The update's computers in --state states (default: those that
        /// need it: NotInstalled, Downloaded, Failed), instead of counts.
        #[arg(long, requires = "update_id")]
        computers: bool,
        /// States, separated by commas: Unknown, NotApplicable,
        /// NotInstalled, Downloaded, Installed, InstalledPendingReboot,
        /// Failed.
        #[arg(long, requires = "computers")]
        state: Option<String>,
        /// Only computers in this group and the groups under it.
        #[arg(long, requires = "computers")]
        group: Option<String>,
        /// With --group: not the groups under it.
        #[arg(long, requires = "group")]
        no_subgroups: bool,
        /// The most computers shown (1 to 10,000; default 1,000).
        #[arg(long, requires = "computers")]
        limit: Option<u64>,
        /// How many computers to skip.
        #[arg(long, requires = "computers")]
        offset: Option<u64>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Per computer: its group, last sync, last report, inventory and
    /// counts.
    Computers {
        #[command(flatten)]
        filter: GroupArgs,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Every Failed update on every computer: its code, its name, when.
    Failures {
        #[command(flatten)]
        filter: GroupArgs,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Per group: its computers, and how many are up to date (nothing
    /// approved for Install is NotInstalled, Failed or pending a reboot).
    Groups {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Computers that have not reported for DAYS days, or never have.
    Stale {
        /// How many days without a report make a computer stale.
        #[arg(long)]
        days: u32,
        #[command(flatten)]
        filter: GroupArgs,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum UpdatesCommand {
    /// Every update's current revision.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One update's revisions.
    Show {
        /// The update's ID.
        update_id: String,
        /// JSON instead of a table (with the current revision's catalog JSON).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// The configuration file (default /etc/openwua/server.toml, if present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data directory (signing key, tokens, SQLite, content).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address and port to listen on (default 127.0.0.1:8530).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// A postgres:// URL; SQLite in the data directory when absent.
    #[arg(long)]
    database: Option<String>,
    /// Plain HTTP on a non-loopback address (a TLS proxy must front it).
    #[arg(long)]
    allow_plain_http: bool,
    /// A file holding the admin token, instead of DATA_DIR/admin.token.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// The largest JSON request body, in bytes.
    #[arg(long)]
    max_request_bytes: Option<u64>,
    /// The largest content upload, in bytes.
    #[arg(long)]
    max_content_bytes: Option<u64>,
    /// How long one request may take, in seconds.
    #[arg(long)]
    request_timeout_secs: Option<u64>,
    /// The TLS certificate chain (PEM): the server then speaks HTTPS only.
    #[arg(long, requires = "tls_private_key")]
    tls_certificate: Option<PathBuf>,
    /// The TLS private key (PEM, 0600 or 0400, owned by the server's user).
    #[arg(long, requires = "tls_certificate")]
    tls_private_key: Option<PathBuf>,
    /// Requests handled at once; past it, 503 with Retry-After.
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Registrations per minute from one client address; past it, 429.
    #[arg(long)]
    registrations_per_minute: Option<u32>,
    /// Where agents fetch content (http(s)://…/); the server stores none.
    #[arg(long)]
    content_base_url: Option<String>,
    /// How often running rollouts are weighed without a report (seconds).
    #[arg(long)]
    rollout_check_secs: Option<u64>,
}

#[derive(Args)]
struct ServerArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8530")]
    server: String,
    /// The admin token's file (default DATA_DIR/admin.token).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The server's data directory, for its admin.token.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The CA (PEM) that signed an https:// server's certificate, when not
    /// one of the usual roots.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

impl ServerArgs {
    fn client(&self, needs_token: bool) -> anyhow::Result<Client> {
        let token = if needs_token {
            let path = self
                .token_file
                .clone()
                .unwrap_or_else(|| self.data_dir.join(ADMIN_TOKEN_FILE));
            Some(read_token(&path)?)
        } else {
            None
        };
        match &self.ca_file {
            Some(ca_file) => Client::trusting(&self.server, token, ca_file),
            None => Ok(Client::new(&self.server, token)),
        }
    }
}

fn main() -> ExitCode {
    // Build time: the man pages and completions (scripts/build-deb).
    if let Some(status) =
        openwua_dist::generate_if_asked(Cli::command, ManSection::SystemAdministration)
    {
        return status;
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wua-server: {error:#}");
            let refused = error
                .downcast_ref::<ApiFailure>()
                .is_some_and(|failure| (400..500).contains(&failure.status));
            ExitCode::from(if refused { 1 } else { 2 })
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Key { server } => {
            println!("{}", server.client(false)?.key()?);
            Ok(())
        }
        Command::Publish {
            source,
            package_key,
            json,
            server,
        } => {
            let source = if source.is_dir() {
                Source::Manifests(source)
            } else {
                let key = package_key
                    .context(
                        "a scan package needs --package-key ed25519:… (the key that signed it)",
                    )?
                    .parse()?;
                Source::Package(source, key)
            };
            let report = server.client(true)?.publish(&source)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            let count = |action| report.updates.iter().filter(|u| u.action == action).count();
            if report.changed {
                println!(
                    "published: {} added, {} revised, {} unchanged; catalog version {}",
                    count(PublishAction::Added),
                    count(PublishAction::Revised),
                    count(PublishAction::Unchanged),
                    report.catalog_version
                );
            } else {
                println!(
                    "nothing changed: all {} updates were published already; catalog version {}",
                    report.updates.len(),
                    report.catalog_version
                );
            }
            Ok(())
        }
        Command::Decline { update_id, server } => {
            let report = server.client(true)?.decline(&update_id)?;
            if report.changed {
                println!(
                    "declined {update_id}; catalog version {}",
                    report.catalog_version
                );
            } else {
                println!("{update_id} was declined already; nothing changed");
            }
            Ok(())
        }
        Command::Export {
            group,
            output,
            with_content,
            lifetime_days,
            allow_empty,
            json,
            server,
        } => {
            let request = openwua_server::airgap::ExportRequest {
                group,
                lifetime_days: Some(lifetime_days),
                allow_empty,
            };
            let summary = openwua_server::airgap::export_package(
                &server.client(true)?,
                &request,
                with_content,
                &output,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "wrote {}: {} updates, {} content files; service {}, version {}, valid until {}\n\
                     import it with: wua services add-package {} --pubkey {}",
                    output.display(),
                    summary.updates,
                    summary.content_files,
                    summary.service_id,
                    summary.version,
                    summary.expires,
                    output.display(),
                    summary.public_key
                );
            }
            Ok(())
        }
        Command::ImportReports { file, json, server } => {
            let parts = openwua_server::airgap::import_reports(&server.client(true)?, &file)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&parts)?);
                return Ok(());
            }
            for part in &parts {
                if part.current {
                    println!(
                        "report {} is stored for computer {} (group {:?}); importing it again \
                         changes nothing",
                        part.sequence, part.ack.computer_id, part.ack.group
                    );
                } else {
                    println!(
                        "report {} not stored: computer {} already has report {}, a newer one",
                        part.sequence, part.ack.computer_id, part.ack.acknowledged
                    );
                }
            }
            Ok(())
        }
        Command::Groups { command } => groups(command),
        Command::Maintenance { command } => maintenance(command),
        Command::Report { command } => report(command),
        Command::Rules { command } => cli_automation::rules(command),
        Command::Rollouts { command } => cli_automation::rollouts(command),
        Command::Computers { command } => computers(command),
        Command::Upstream { command } => upstream(command),
        Command::Approve {
            update_id,
            group,
            action,
            deadline,
            json,
            server,
        } => approve(
            &update_id,
            group,
            &action,
            deadline.as_deref(),
            json,
            &server,
        ),
        Command::Updates { command } => match command {
            UpdatesCommand::List { json, server } => {
                let updates = server.client(true)?.list_updates()?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&updates)?);
                } else {
                    print_revisions(&updates);
                }
                Ok(())
            }
            UpdatesCommand::Show {
                update_id,
                json,
                server,
            } => {
                let detail = server.client(true)?.show_update(&update_id)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&detail)?);
                } else {
                    let revisions: Vec<StoredRevision> =
                        serde_json::from_value(detail["revisions"].clone())?;
                    print_revisions(&revisions);
                }
                Ok(())
            }
        },
    }
}

fn print_change(json: bool, report: &ChangeReport, what: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{what}; catalog version {}", report.catalog_version);
    }
    Ok(())
}

fn print_computers(computers: &[Computer]) {
    println!(
        "{:<36}  {:<24}  {:<24}  {:<20}  MACHINE ID",
        "COMPUTER ID", "HOSTNAME", "GROUP", "LAST SYNC"
    );
    for computer in computers {
        println!(
            "{:<36}  {:<24}  {:<24}  {:<20}  {}",
            computer.computer_id,
            computer.hostname,
            computer.group,
            computer.last_sync.map_or_else(
                || "never".to_owned(),
                |time| time.strftime("%Y-%m-%d %H:%M:%S").to_string()
            ),
            computer.machine_id
        );
    }
}

fn report(command: ReportCommand) -> anyhow::Result<()> {
    match command {
        ReportCommand::Updates {
            update_id: Some(update_id),
            computers: true,
            state,
            group,
            no_subgroups,
            limit,
            offset,
            json,
            server,
        } => {
            let query = UpdateComputersQuery {
                state,
                group,
                subgroups: no_subgroups.then_some(false),
                limit,
                offset,
            };
            let page = server.client(true)?.update_computers(&update_id, &query)?;
            print_update_computers(json, &page)
        }
        ReportCommand::Updates {
            update_id,
            json,
            server,
            ..
        } => {
            let client = server.client(true)?;
            let summaries = match update_id {
                Some(id) => vec![client.update_report(&id)?],
                None => client.updates_report()?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&summaries)?);
                return Ok(());
            }
            println!(
                "{:<36}  {:>7}  {:>7}  {:>7}  {:>7}  {:>9}  {:>7}  {:>7}",
                "UPDATE ID", "UNKNOWN", "N/A", "NEEDED", "DOWNLD", "INSTALLED", "REBOOT", "FAILED"
            );
            for summary in &summaries {
                println!(
                    "{:<36}  {:>7}  {:>7}  {:>7}  {:>7}  {:>9}  {:>7}  {:>7}",
                    summary.update_id,
                    summary.unknown,
                    summary.not_applicable,
                    summary.not_installed,
                    summary.downloaded,
                    summary.installed,
                    summary.installed_pending_reboot,
                    summary.failed
                );
            }
            Ok(())
        }
        ReportCommand::Computers {
            filter,
            json,
            server,
        } => {
            let summaries = server.client(true)?.computers_report(&filter.filter())?;
            print_computer_summaries(json, &summaries)
        }
        ReportCommand::Failures {
            filter,
            json,
            server,
        } => {
            let failures = server.client(true)?.failures_report(&filter.filter())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&failures)?);
                return Ok(());
            }
            println!(
                "{:<24}  {:<36}  {:<10}  {:<40}  TIME",
                "HOSTNAME", "UPDATE ID", "HRESULT", "NAME"
            );
            for failure in &failures {
                println!(
                    "{:<24}  {:<36}  {:<10}  {:<40}  {}",
                    failure.hostname,
                    failure.update_id,
                    failure
                        .hresult
                        .map_or_else(|| "-".to_owned(), |code| format!("{code:#}")),
                    failure.name.as_deref().unwrap_or("-"),
                    failure.time.strftime("%Y-%m-%d %H:%M:%S")
                );
            }
            Ok(())
        }
        ReportCommand::Groups { json, server } => {
            let groups = server.client(true)?.groups_report()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&groups)?);
                return Ok(());
            }
            println!("{:<32}  {:>9}  {:>10}", "GROUP", "COMPUTERS", "UP TO DATE");
            for group in &groups {
                println!(
                    "{:<32}  {:>9}  {:>10}",
                    group.group, group.computers, group.up_to_date
                );
            }
            Ok(())
        }
        ReportCommand::Stale {
            days,
            filter,
            json,
            server,
        } => {
            let since =
                jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * i64::from(days));
            let summaries: Vec<ComputerSummary> = server
                .client(true)?
                .computers_report(&filter.filter())?
                .into_iter()
                .filter(|summary| summary.last_report.is_none_or(|time| time < since))
                .collect();
            print_computer_summaries(json, &summaries)
        }
    }
}

fn print_computer_summaries(json: bool, summaries: &[ComputerSummary]) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(summaries)?);
        return Ok(());
    }
    let when = |time: Option<jiff::Timestamp>| {
        time.map_or_else(
            || "never".to_owned(),
            |time| time.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        )
    };
    println!(
        "{:<36}  {:<24}  {:<24}  {:<19}  {:<19}  {:>6}  {:>6}  {:>9}  {:>6}  {:<32}  {:<8}  {:<10}  RESTART",
        "COMPUTER ID",
        "HOSTNAME",
        "GROUP",
        "LAST SYNC",
        "LAST REPORT",
        "NEEDED",
        "FAILED",
        "INSTALLED",
        "REBOOT",
        "OS",
        "ARCH",
        "AGENT"
    );
    for summary in summaries {
        let inventory = summary.inventory.as_ref();
        let text = |field: Option<&String>| {
            field.map_or_else(|| "-".to_owned(), |text| text.chars().take(32).collect())
        };
        let restart = match inventory {
            None => "-",
            Some(inventory) if inventory.reboot_pending => "yes",
            Some(_) => "no",
        };
        println!(
            "{:<36}  {:<24}  {:<24}  {:<19}  {:<19}  {:>6}  {:>6}  {:>9}  {:>6}  {:<32}  {:<8}  {:<10}  {}",
            summary.computer_id,
            summary.hostname,
            summary.group,
            when(summary.last_sync),
            when(summary.last_report),
            summary.needed,
            summary.failed,
            summary.installed,
            summary.pending_reboot,
            text(inventory.and_then(|i| i.os.as_ref())),
            text(inventory.and_then(|i| i.architecture.as_ref())),
            text(inventory.and_then(|i| i.agent_version.as_ref())),
            restart
        );
    }
    Ok(())
}

fn print_update_computers(json: bool, page: &UpdateComputers) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(page)?);
        return Ok(());
    }
    println!(
        "{:<36}  {:<24}  {:<24}  {:<22}  {:<10}  {:<40}  TIME",
        "COMPUTER ID", "HOSTNAME", "GROUP", "STATE", "HRESULT", "NAME"
    );
    for line in &page.computers {
        println!(
            "{:<36}  {:<24}  {:<24}  {:<22}  {:<10}  {:<40}  {}",
            line.computer_id,
            line.hostname,
            line.group,
            line.state.map_or("Unknown", |state| state.as_str()),
            line.hresult
                .map_or_else(|| "-".to_owned(), |code| format!("{code:#}")),
            line.name.as_deref().unwrap_or("-"),
            line.time.map_or_else(
                || "-".to_owned(),
                |time| time.strftime("%Y-%m-%d %H:%M:%S").to_string()
            )
        );
    }
    let shown = page.computers.len() as u64;
    if shown < page.total {
        println!(
            "{} to {} of {} computers; --offset and --limit show others",
            page.offset + u64::from(shown > 0),
            page.offset + shown,
            page.total
        );
    }
    Ok(())
}

fn maintenance(command: MaintenanceCommand) -> anyhow::Result<()> {
    let runs = match command {
        MaintenanceCommand::Run {
            dry_run,
            json,
            server,
        } => {
            let run = server.client(true)?.run_maintenance(dry_run)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
                return Ok(());
            }
            vec![run]
        }
        MaintenanceCommand::Runs {
            limit,
            json,
            server,
        } => {
            let runs = server.client(true)?.maintenance_runs(limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(());
            }
            runs
        }
    };
    println!(
        "{:>6}  {:<19}  {:<8}  {:>6}  {:>9}  {:>7}  {:>7}  {:>12}  {:>10}  ERROR",
        "RUN",
        "STARTED",
        "TRIGGER",
        "STALE",
        "COMPUTERS",
        "UPDATES",
        "CONTENT",
        "BYTES",
        "DB BYTES"
    );
    for run in &runs {
        println!(
            "{:>6}  {:<19}  {:<8}  {:>6}  {:>9}  {:>7}  {:>7}  {:>12}  {:>10}  {}",
            if run.dry_run {
                "dry".to_owned()
            } else {
                run.id.to_string()
            },
            run.started.strftime("%Y-%m-%d %H:%M:%S"),
            match run.trigger {
                openwua_server::maintenance::Trigger::Schedule => "schedule",
                openwua_server::maintenance::Trigger::Request => "request",
            },
            run.stale_marked_count,
            run.removed_computer_count,
            run.removed_update_count,
            run.removed_content_count,
            run.removed_content_bytes,
            run.database_bytes_after,
            run.error.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

fn groups(command: GroupsCommand) -> anyhow::Result<()> {
    match command {
        GroupsCommand::List { json, server } => {
            let groups = server.client(true)?.list_groups()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&groups)?);
            } else {
                println!("{:<32}  PARENT", "GROUP");
                for group in &groups {
                    println!(
                        "{:<32}  {}",
                        group.name,
                        group.parent.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(())
        }
        GroupsCommand::Add {
            name,
            parent,
            json,
            server,
        } => {
            let report = server.client(true)?.add_group(&name, parent.as_deref())?;
            print_change(json, &report, &format!("added group {name:?}"))
        }
        GroupsCommand::Remove { name, json, server } => {
            let report = server.client(true)?.remove_group(&name)?;
            print_change(json, &report, &format!("removed group {name:?}"))
        }
    }
}

fn upstream(command: UpstreamCommand) -> anyhow::Result<()> {
    use openwua_server::upstream::{PocketFilter, UpstreamSpec};
    match command {
        UpstreamCommand::Add {
            name,
            url,
            suites,
            components,
            architectures,
            keyring,
            sources,
            pockets,
            json,
            server,
        } => {
            let keyring = std::fs::read(&keyring)
                .with_context(|| format!("reading the keyring {}", keyring.display()))?;
            let pockets = pockets
                .iter()
                .map(|pocket| match pocket.as_str() {
                    "security" => Ok(PocketFilter::Security),
                    "updates" => Ok(PocketFilter::Updates),
                    "backports" => Ok(PocketFilter::Backports),
                    other => anyhow::bail!("--pocket {other:?}: security, updates or backports"),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let spec = UpstreamSpec {
                name,
                url,
                suites,
                components,
                architectures,
                sources,
                pockets,
                keyring: hex::encode(keyring),
            };
            let added = server.client(true)?.add_upstream(&spec)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&added)?);
            } else {
                println!(
                    "added upstream {:?}; `wua-server upstream sync {}` fetches it",
                    added.name, added.name
                );
            }
            Ok(())
        }
        UpstreamCommand::List { json, server } => {
            let list = server.client(true)?.list_upstreams()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            for upstream in list {
                println!(
                    "{}\t{}\t{}\t{}\t{}\tlast sync {}\t{} updates",
                    upstream.name,
                    upstream.url,
                    upstream.suites.join(","),
                    upstream.components.join(","),
                    upstream.architectures.join(","),
                    upstream
                        .last_sync
                        .map_or_else(|| "never".to_owned(), |when| when.to_string()),
                    upstream.updates
                );
            }
            Ok(())
        }
        UpstreamCommand::Remove { name, server } => {
            let removed = server.client(true)?.remove_upstream(&name)?;
            println!("removed upstream {:?}; its updates stay", removed.removed);
            Ok(())
        }
        UpstreamCommand::Sync { name, json, server } => {
            let client = server.client(true)?;
            let names = match name {
                Some(name) => vec![name],
                None => client
                    .list_upstreams()?
                    .into_iter()
                    .map(|upstream| upstream.name)
                    .collect(),
            };
            for name in names {
                let report = client.sync_upstream(&name)?;
                if json {
                    println!("{}", serde_json::to_string(&report)?);
                } else if report.release_unchanged {
                    println!(
                        "{name}: nothing changed upstream ({} updates)",
                        report.updates
                    );
                } else {
                    println!(
                        "{name}: {} updates, {} added, {} revised; {} indexes fetched, {} from the cache; catalog version {}",
                        report.updates,
                        report.added,
                        report.revised,
                        report.indexes_fetched,
                        report.indexes_cached,
                        report.catalog_version
                    );
                }
            }
            Ok(())
        }
    }
}

fn computers(command: ComputersCommand) -> anyhow::Result<()> {
    match command {
        ComputersCommand::List { json, server } => {
            let computers = server.client(true)?.list_computers()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&computers)?);
            } else {
                print_computers(&computers);
            }
            Ok(())
        }
        ComputersCommand::Show {
            computer_id,
            json,
            server,
        } => {
            let computer = server.client(true)?.show_computer(&computer_id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&computer)?);
            } else {
                print_computers(std::slice::from_ref(&computer));
            }
            Ok(())
        }
        ComputersCommand::Move {
            computer_id,
            group,
            json,
            server,
        } => {
            let report = server.client(true)?.move_computer(&computer_id, &group)?;
            print_change(json, &report, &format!("moved {computer_id} to {group:?}"))
        }
    }
}

fn approve(
    update_id: &str,
    group: String,
    action: &str,
    deadline: Option<&str>,
    json: bool,
    server: &ServerArgs,
) -> anyhow::Result<()> {
    let action = ApprovalAction::parse(action).with_context(|| {
        format!("--action is install, uninstall or notApproved, not {action:?}")
    })?;
    let deadline = deadline
        .map(|text| {
            text.parse::<jiff::Timestamp>()
                .with_context(|| format!("--deadline {text:?} is not RFC 3339"))
        })
        .transpose()?;
    let request = ApprovalRequest {
        group: group.clone(),
        action,
        deadline,
    };
    let report = server.client(true)?.approve(update_id, &request)?;
    print_change(
        json,
        &report,
        &format!("{update_id}: {} for {group:?}", action.as_str()),
    )
}

fn print_revisions(revisions: &[StoredRevision]) {
    println!(
        "{:<36}  {:>8}  {:<8}  {:<20}  TITLE",
        "UPDATE ID", "REVISION", "DECLINED", "PUBLISHED"
    );
    for revision in revisions {
        println!(
            "{:<36}  {:>8}  {:<8}  {:<20}  {}",
            revision.update_id,
            revision.revision_number,
            if revision.declined { "yes" } else { "no" },
            revision.published.strftime("%Y-%m-%d %H:%M:%S"),
            revision.title
        );
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let file = match &args.config {
        Some(path) => ConfigFile::read(path, true)?,
        None => ConfigFile::read(DEFAULT_CONFIG.as_ref(), false)?,
    };
    let config = file.resolve(ConfigFile {
        data_dir: args.data_dir,
        listen: args.listen,
        database: args.database,
        allow_plain_http: args.allow_plain_http.then_some(true),
        admin_token_file: args.admin_token_file,
        max_request_bytes: args.max_request_bytes,
        max_content_bytes: args.max_content_bytes,
        request_timeout_secs: args.request_timeout_secs,
        tls_certificate: args.tls_certificate,
        tls_private_key: args.tls_private_key,
        max_in_flight: args.max_in_flight,
        registrations_per_minute: args.registrations_per_minute,
        content_base_url: args.content_base_url,
        rollout_check_secs: args.rollout_check_secs,
        ..ConfigFile::default()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(openwua_server::serve::run(config))
}
