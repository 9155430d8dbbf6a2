//! Automatic Updates (`IAutomaticUpdates`) and the restart policy: the
//! agent's scheduler and the methods that read and change it.
//!
//! The scheduler wakes when something is due, by the configured
//! [`crate::clock::Clock`]: a detection (sync every service, then scan)
//! every `sync_interval_seconds` with a random spread; after it, the
//! downloads the notification level allows; the scheduled installation;
//! deadlines; and the restart. Everything it installs goes through the same
//! engine and the same checks as a caller's install, as the agent itself:
//! a service with no interactive user, so an update that may ask the user
//! is refused, recorded once and listed until an administrator at a
//! terminal installs it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use openwua_model::automatic::{
    AutomaticUpdatesSettings, AutomaticUpdatesState, PendingUpdate, RestartOutcome, RestartRecord,
    RestartState,
};
use openwua_model::caller::{CallerClass, CallerContext, CallerPermissions};
use openwua_model::enums::{
    AutomaticUpdatesNotificationLevel as Level, AutomaticUpdatesScheduledInstallationDay,
    InstallationImpact, OperationResultCode, UpdateOperation, WuaEnum,
};
use openwua_model::hresult::{E_INVALIDARG, WU_E_AU_NOSERVICE, WU_E_AU_PAUSED};
use openwua_model::operation::{JobState, OperationResult};
use uuid::Uuid;

use crate::agent::{Agent, lock, poisoned};
use crate::config::{RestartPolicy, UsersPolicy};
use crate::error::{AgentError, Result};
use crate::operations::{InstallRequest, current_boot};
use crate::policy::{self, Action, Requester};
use crate::restart::{self, Login, Window};
use crate::store::automatic::{AutomaticRecord, StoredRestart};

/// The `ClientApplicationID` of what Automatic Updates does, in history.
pub const CLIENT_APPLICATION_ID: &str = "AutomaticUpdates";
/// The longest pause (Windows allows 35 days).
const MAX_PAUSE: SignedDuration = SignedDuration::from_hours(35 * 24);
/// A pause without an end lasts this long (Windows' 7 days).
const DEFAULT_PAUSE: SignedDuration = SignedDuration::from_hours(7 * 24);
/// How soon to look again when the installer was busy or users held a
/// restart back.
const RETRY: SignedDuration = SignedDuration::from_mins(5);
/// A first detection comes within this (and a tenth more) of the start.
const FIRST_DETECTION: Duration = Duration::from_secs(9 * 60);
/// Restarts shown by `GetAutomaticUpdates`.
const RESTARTS_SHOWN: usize = 10;

/// The scheduler's memory: what is due when. Lost with the agent, and
/// worked out again at start from the store and the settings.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    /// The next detection.
    next_detection: Option<Timestamp>,
    /// The next scheduled installation.
    next_installation: Option<Timestamp>,
    /// `DetectNow` was called.
    detect_now: bool,
    /// An installation refused for a busy installer: try again then.
    retry_installation: Option<Timestamp>,
    /// The restart being planned.
    restart: RestartPlan,
}

#[derive(Debug, Default)]
struct RestartPlan {
    /// When to restart.
    at: Option<Timestamp>,
    /// The end of the window `at` lies in.
    window_end: Option<Timestamp>,
    /// Logged-in users have been warned of `at`.
    warned: bool,
    /// Users who held it back at the last look.
    held_by: Vec<String>,
    /// The restart command ran in this boot: nothing more to do until the
    /// machine is down.
    requested_this_boot: bool,
}

/// Automatic Updates' part of the agent.
#[derive(Debug, Default)]
pub(crate) struct Automatic {
    /// Wakes the scheduler: settings changed, `DetectNow`, `Resume`, a
    /// catalog reloaded.
    pub(crate) wake: tokio::sync::Notify,
    schedule: Mutex<Schedule>,
}

/// What `SetAutomaticUpdates` changes (absent: unchanged).
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    /// `NotificationLevel`.
    pub notification_level: Option<Level>,
    /// `ScheduledInstallationDay`.
    pub scheduled_installation_day: Option<AutomaticUpdatesScheduledInstallationDay>,
    /// `ScheduledInstallationTime`.
    pub scheduled_installation_time: Option<i64>,
    /// `IncludeRecommendedUpdates`.
    pub include_recommended_updates: Option<bool>,
    /// `NonAdministratorsElevated`.
    pub non_administrators_elevated: Option<bool>,
}

/// Refuses a configuration whose time zone or restart window cannot be
/// read, at start rather than at the first restart.
pub(crate) fn check_config(config: &crate::config::Config) -> Result<()> {
    let invalid = |why: String| AgentError::new(E_INVALIDARG, why);
    config
        .automatic_updates
        .time_zone()
        .map_err(|error| invalid(error.to_string()))?;
    if config.restart.policy == RestartPolicy::Window {
        Window::parse(&config.restart.window).map_err(invalid)?;
    }
    if config.automatic_updates.scheduled_installation_time > 23 {
        return Err(invalid(format!(
            "automatic_updates.scheduled_installation_time {} is not an hour (0-23)",
            config.automatic_updates.scheduled_installation_time
        )));
    }
    Ok(())
}

/// A `SetAutomaticUpdates` call's parameters, checked: enumerations by
/// number or name.
pub(crate) fn settings_change(
    parameters: openwua_varlink::parameters::SetAutomaticUpdatesParameters,
) -> Result<SettingsChange> {
    fn member<E: WuaEnum + std::fmt::Debug>(text: Option<String>) -> Result<Option<E>> {
        let Some(text) = text else {
            return Ok(None);
        };
        policy::check_length(E::WUA_NAME, &text, 64)?;
        E::parse(&text).map(Some).ok_or_else(|| {
            AgentError::new(
                E_INVALIDARG,
                format!(
                    "{text:?} is not a member of {}; give its number or name",
                    E::WUA_NAME
                ),
            )
        })
    }
    Ok(SettingsChange {
        notification_level: member(parameters.notification_level)?,
        scheduled_installation_day: member(parameters.scheduled_installation_day)?,
        scheduled_installation_time: parameters.scheduled_installation_time,
        include_recommended_updates: parameters.include_recommended_updates,
        non_administrators_elevated: parameters.non_administrators_elevated,
    })
}

/// A `PauseAutomaticUpdates` call's end, checked.
pub(crate) fn pause_end(until: Option<&str>) -> Result<Option<Timestamp>> {
    let Some(text) = until else {
        return Ok(None);
    };
    policy::check_length("until", text, 64)?;
    text.parse().map(Some).map_err(|error| {
        AgentError::new(
            E_INVALIDARG,
            format!("until {text:?} is not an RFC 3339 time ({error}); write 2030-01-31T00:00:00Z"),
        )
    })
}

impl SettingsChange {
    fn apply(self, settings: &mut AutomaticUpdatesSettings, hour: Option<u8>) {
        if let Some(level) = self.notification_level {
            settings.notification_level = level;
        }
        if let Some(day) = self.scheduled_installation_day {
            settings.scheduled_installation_day = day;
        }
        if let Some(hour) = hour {
            settings.scheduled_installation_time = hour;
        }
        if let Some(include) = self.include_recommended_updates {
            settings.include_recommended_updates = include;
        }
        if let Some(elevated) = self.non_administrators_elevated {
            settings.non_administrators_elevated = elevated;
        }
    }
}

/// The agent itself as a caller: an administrator with no interactive user.
fn automatic_requester() -> Requester {
    let uid = nix::unistd::geteuid().as_raw();
    Requester {
        uid,
        pid: std::process::id().cast_signed(),
        is_admin: true,
        context: CallerContext {
            class: CallerClass::Service,
            uid,
            login_uid: None,
            session: None,
            terminal: None,
            terminal_verified: false,
            remote: false,
            weak: false,
            facts: Vec::new(),
            may: CallerPermissions {
                search: true,
                download: true,
                install: true,
                install_interactive: false,
            },
            advice: Some(
                "Automatic Updates never runs an installer that may ask the user something: \
                 an administrator installs it from a terminal (`wua install`)"
                    .to_owned(),
            ),
        },
        client_application_id: CLIENT_APPLICATION_ID.to_owned(),
    }
}

/// The next scheduled installation strictly after `after`.
fn next_installation(
    settings: &AutomaticUpdatesSettings,
    after: Timestamp,
    zone: &jiff::tz::TimeZone,
) -> Option<Timestamp> {
    let hour = i8::try_from(settings.scheduled_installation_time.min(23)).ok()?;
    let time = jiff::civil::Time::new(hour, 0, 0, 0).ok()?;
    let mut date = after.to_zoned_datetime(zone.clone()).date();
    for _ in 0..9 {
        let day = settings.scheduled_installation_day.value();
        let weekday_matches = day == 0 || i32::from(date.weekday().to_sunday_one_offset()) == day;
        if weekday_matches
            && let Some(at) = restart::instant(date, time, zone)
            && at > after
        {
            return Some(at);
        }
        date = date.tomorrow().ok()?;
    }
    None
}

/// `interval` plus up to a tenth more, at random.
fn spread(interval: Duration) -> SignedDuration {
    let fraction = getrandom::u64().unwrap_or(0) as f64 / u64::MAX as f64;
    let total = interval + (interval / 10).mul_f64(fraction);
    SignedDuration::try_from(total).unwrap_or(SignedDuration::MAX)
}

/// The updates Automatic Updates looks after, as the index has them now.
struct Candidate {
    update_id: Uuid,
    title: String,
    deadline: Option<Timestamp>,
    may_ask: bool,
    is_downloaded: bool,
    exclusive: bool,
}

impl Agent {
    fn zone(&self) -> jiff::tz::TimeZone {
        self.config
            .automatic_updates
            .time_zone()
            .unwrap_or(jiff::tz::TimeZone::UTC)
    }

    fn settings_of(&self, record: &AutomaticRecord) -> AutomaticUpdatesSettings {
        record
            .settings
            .unwrap_or_else(|| self.config.automatic_updates.settings())
    }

    async fn automatic_record(&self) -> Result<AutomaticRecord> {
        self.with_store(|store| store.automatic()).await
    }

    /// Changes the stored row in one step under the store's lock, so the
    /// scheduler and an administrator's call never undo each other.
    async fn update_automatic(
        &self,
        change: impl FnOnce(&mut AutomaticRecord) + Send + 'static,
    ) -> Result<AutomaticRecord> {
        self.with_store(move |store| {
            let before = store.automatic()?;
            let mut record = before.clone();
            change(&mut record);
            // An unchanged row is not written: a look that changes nothing
            // leaves the store's bytes alone.
            if record != before {
                store.set_automatic(&record)?;
            }
            Ok(record)
        })
        .await
    }

    /// What the level and deadlines make Automatic Updates look after:
    /// applicable, not installed, not hidden, not superseded, licence
    /// accepted; important (auto-selected or mandatory), recommended when
    /// included, or with a deadline.
    fn candidates(&self, settings: &AutomaticUpdatesSettings) -> Result<Vec<Candidate>> {
        let index = self.index.read().map_err(|_| poisoned())?;
        Ok(index
            .entries()
            .filter(|entry| {
                let update = &entry.update;
                let wanted = update.auto_select_on_web_sites
                    || update.is_mandatory
                    || update.deadline.is_some()
                    || (settings.include_recommended_updates && !update.browse_only);
                entry.applicable
                    && entry.installable
                    && !entry.state.is_installed
                    && !entry.state.is_hidden
                    && entry.state.eula_accepted
                    && !entry.is_superseded()
                    && wanted
            })
            .map(|entry| Candidate {
                update_id: entry.update.identity.update_id,
                title: entry.update.title.clone(),
                deadline: entry.update.deadline,
                may_ask: entry.update.installation_behavior.can_request_user_input,
                is_downloaded: entry.state.is_downloaded,
                exclusive: entry.update.installation_behavior.impact
                    == InstallationImpact::RequiresExclusiveHandling,
            })
            .collect())
    }

    /// Authorizes a download or an installation: an administrator's, or,
    /// with `NonAdministratorsElevated` set, an interactive user's at the
    /// verified terminal of their own login (never an uninstallation, a
    /// setting or a service).
    pub(crate) async fn authorize_elevated(
        &self,
        requester: &Requester,
        action: Action,
    ) -> Result<()> {
        let denied = match policy::authorize(requester, action, None) {
            Ok(()) => return Ok(()),
            Err(denied) => denied,
        };
        let context = &requester.context;
        let may_be_elevated = matches!(action, Action::Download | Action::Install)
            && context.class == CallerClass::Interactive
            && context.terminal_verified;
        if !may_be_elevated {
            return Err(denied);
        }
        policy::check_length(
            "ClientApplicationID",
            &requester.client_application_id,
            policy::MAX_CLIENT_ID_BYTES,
        )?;
        let record = self.automatic_record().await?;
        if !self.settings_of(&record).non_administrators_elevated {
            return Err(denied);
        }
        tracing::info!(
            uid = requester.uid,
            pid = requester.pid,
            "{action:?} by an interactive user (NonAdministratorsElevated)"
        );
        Ok(())
    }

    /// `GetAutomaticUpdates`.
    pub async fn automatic_updates(&self, requester: &Requester) -> Result<AutomaticUpdatesState> {
        policy::authorize(requester, Action::Search, None)?;
        self.automatic_state().await
    }

    async fn automatic_state(&self) -> Result<AutomaticUpdatesState> {
        let (record, awaiting, restarts) = self
            .with_store(|store| {
                Ok((
                    store.automatic()?,
                    store.awaiting_interactive_user()?,
                    store.restarts()?,
                ))
            })
            .await?;
        let settings = self.settings_of(&record);
        let pending = self
            .candidates(&settings)?
            .into_iter()
            .map(|candidate| PendingUpdate {
                update_id: candidate.update_id,
                title: candidate.title,
                deadline: candidate.deadline,
                may_ask: candidate.may_ask,
                is_downloaded: candidate.is_downloaded,
            })
            .collect();
        let reboot_required = self.index.read().map_err(|_| poisoned())?.reboot_required();
        let schedule = lock(&self.automatic.schedule);
        let enabled = settings.notification_level != Level::Disabled;
        Ok(AutomaticUpdatesState {
            settings,
            service_enabled: enabled,
            paused_until: record.paused_until,
            results: record.results,
            next_detection: schedule.next_detection.filter(|_| enabled),
            next_scheduled_installation: schedule
                .next_installation
                .filter(|_| settings.notification_level == Level::ScheduledInstallation),
            pending_updates: pending,
            awaiting_interactive_user: awaiting,
            restart: RestartState {
                policy: self.restart_policy_text(),
                pending: reboot_required,
                scheduled_for: schedule.restart.at.filter(|_| reboot_required),
                deadline: record.restart_limit.filter(|_| reboot_required),
                held_by_users: schedule.restart.held_by.clone(),
                history: restarts
                    .into_iter()
                    .take(RESTARTS_SHOWN)
                    .map(|restart| restart.record)
                    .collect(),
            },
        })
    }

    fn restart_policy_text(&self) -> String {
        let restart = &self.config.restart;
        match restart.policy {
            RestartPolicy::Never => "never".to_owned(),
            RestartPolicy::Window => match restart.users {
                UsersPolicy::Ignore => format!("in the window {}", restart.window),
                UsersPolicy::Wait => format!(
                    "in the window {}, when no user is logged in",
                    restart.window
                ),
                UsersPolicy::Warn => format!(
                    "in the window {}, warning logged-in users {} minutes ahead",
                    restart.window, restart.warn_minutes
                ),
            },
        }
    }

    /// `SetAutomaticUpdates` (`IAutomaticUpdatesSettings.Save`).
    pub async fn set_automatic_updates(
        &self,
        requester: &Requester,
        change: SettingsChange,
    ) -> Result<AutomaticUpdatesState> {
        policy::authorize(requester, Action::ChangeAutomaticUpdates, None)?;
        if change.notification_level == Some(Level::NotConfigured) {
            return Err(AgentError::new(
                E_INVALIDARG,
                "aunlNotConfigured cannot be set; choose aunlDisabled (1) to \
                 aunlScheduledInstallation (4)",
            ));
        }
        let hour = match change.scheduled_installation_time {
            Some(hour @ 0..=23) => Some(u8::try_from(hour).unwrap_or(0)),
            Some(hour) => {
                return Err(AgentError::new(
                    E_INVALIDARG,
                    format!("ScheduledInstallationTime {hour} is not an hour; give 0 to 23"),
                ));
            }
            None => None,
        };
        let defaults = self.config.automatic_updates.settings();
        let record = self
            .update_automatic(move |record| {
                let settings = record.settings.get_or_insert(defaults);
                change.apply(settings, hour);
            })
            .await?;
        let settings = self.settings_of(&record);
        tracing::info!(?settings, "Automatic Updates settings changed");
        {
            let mut schedule = lock(&self.automatic.schedule);
            schedule.next_installation =
                next_installation(&settings, self.config.clock.now(), &self.zone());
        }
        self.automatic.wake.notify_one();
        self.automatic_state().await
    }

    /// `DetectNow`: a detection as soon as the scheduler can, then what
    /// the level allows.
    pub async fn detect_now(&self, requester: &Requester) -> Result<()> {
        policy::authorize(requester, Action::Sync, None)?;
        let record = self.automatic_record().await?;
        if self.settings_of(&record).notification_level == Level::Disabled {
            return Err(AgentError::new(
                WU_E_AU_NOSERVICE,
                "Automatic Updates is disabled (aunlDisabled); `wua auto set --level` turns it on, \
                 or `wua sync` syncs now",
            ));
        }
        if let Some(until) = record.paused_until {
            return Err(AgentError::new(
                WU_E_AU_PAUSED,
                format!("Automatic Updates is paused until {until}; `wua auto resume` resumes it"),
            ));
        }
        lock(&self.automatic.schedule).detect_now = true;
        self.automatic.wake.notify_one();
        Ok(())
    }

    /// `PauseAutomaticUpdates`: no detection, download or installation
    /// (deadlines included) until `until` (default 7 days, at most 35).
    pub async fn pause_automatic_updates(
        &self,
        requester: &Requester,
        until: Option<Timestamp>,
    ) -> Result<AutomaticUpdatesState> {
        policy::authorize(requester, Action::ChangeAutomaticUpdates, None)?;
        let now = self.config.clock.now();
        let until = until.unwrap_or(now + DEFAULT_PAUSE);
        let until = until.round(jiff::Unit::Second).unwrap_or(until);
        if until <= now || until > now + MAX_PAUSE {
            return Err(AgentError::new(
                E_INVALIDARG,
                format!("a pause must end after now and within 35 days, not at {until}"),
            ));
        }
        self.update_automatic(move |record| record.paused_until = Some(until))
            .await?;
        tracing::info!(%until, "Automatic Updates paused");
        self.automatic.wake.notify_one();
        self.automatic_state().await
    }

    /// `ResumeAutomaticUpdates`.
    pub async fn resume_automatic_updates(
        &self,
        requester: &Requester,
    ) -> Result<AutomaticUpdatesState> {
        policy::authorize(requester, Action::ChangeAutomaticUpdates, None)?;
        self.update_automatic(|record| record.paused_until = None)
            .await?;
        tracing::info!("Automatic Updates resumed");
        self.automatic.wake.notify_one();
        self.automatic_state().await
    }

    /// The scheduler: runs what is due, sleeps until the next thing is
    /// (or a change wakes it); never returns.
    pub async fn run_automatic_updates(self: Arc<Self>) {
        let clock = self.config.clock.clone();
        let now = clock.now();
        match self.automatic_record().await {
            Ok(record) => {
                let settings = self.settings_of(&record);
                let mut schedule = lock(&self.automatic.schedule);
                // The first detection comes a few minutes after the first
                // start, so a fleet installed at once does not sync at once.
                schedule.next_detection = self.config.sync_interval().map(|interval| {
                    record
                        .last_detection
                        .map_or_else(
                            || now + spread(FIRST_DETECTION),
                            |last| last + spread(interval),
                        )
                        .min(now + spread(interval))
                });
                schedule.next_installation = next_installation(&settings, now, &self.zone());
            }
            Err(error) => tracing::warn!("Automatic Updates: {error}"),
        }
        loop {
            let wake = match self.automatic_tick().await {
                Ok(wake) => wake,
                Err(error) => {
                    tracing::warn!("Automatic Updates: {error}");
                    Some(clock.now() + RETRY)
                }
            };
            let notified = self.automatic.wake.notified();
            match wake {
                Some(wake) => tokio::select! {
                    () = clock.sleep_until(wake) => {}
                    () = notified => {}
                },
                None => notified.await,
            }
        }
    }

    /// Runs what is due now; returns when to look again.
    async fn automatic_tick(self: &Arc<Self>) -> Result<Option<Timestamp>> {
        let now = self.config.clock.now();
        let record = self
            .update_automatic(move |record| {
                if record.paused_until.is_some_and(|until| until <= now) {
                    tracing::info!("Automatic Updates' pause ended");
                    record.paused_until = None;
                }
            })
            .await?;
        let settings = self.settings_of(&record);
        let level = settings.notification_level;
        let paused = record.paused_until.is_some();
        let active = level != Level::Disabled && !paused;
        let (detect, install_due) = {
            let mut schedule = lock(&self.automatic.schedule);
            let detect = active
                && (std::mem::take(&mut schedule.detect_now)
                    || schedule.next_detection.is_some_and(|next| next <= now));
            // A retry that has come is taken now, whatever the level: left
            // in place, it would wake the scheduler again at once.
            let retry_due = schedule
                .retry_installation
                .take_if(|retry| *retry <= now)
                .is_some();
            let install_due = active
                && level == Level::ScheduledInstallation
                && (schedule.next_installation.is_some_and(|next| next <= now) || retry_due);
            (detect, install_due)
        };
        if detect {
            self.detect(now).await;
            let mut schedule = lock(&self.automatic.schedule);
            schedule.next_detection = self
                .config
                .sync_interval()
                .map(|interval| now + spread(interval));
        }
        if detect
            && matches!(
                level,
                Level::NotifyBeforeInstallation | Level::ScheduledInstallation
            )
        {
            let ids: Vec<Uuid> = self
                .candidates(&settings)?
                .into_iter()
                .filter(|candidate| !candidate.is_downloaded)
                .map(|candidate| candidate.update_id)
                .collect();
            self.automatic_download(ids).await;
        }
        // Nothing installs while a restart is pending (WUA refuses it):
        // the installations wait for the restart.
        let restart_first = self.index.read().map_err(|_| poisoned())?.reboot_required();
        if install_due {
            let candidates = self.candidates(&settings)?;
            let mut busy = false;
            if restart_first {
                tracing::info!("scheduled installation: a restart must come first");
            } else if !candidates.is_empty() {
                tracing::info!(updates = candidates.len(), "scheduled installation");
                busy = !self.automatic_install(candidates, now).await;
            }
            let mut schedule = lock(&self.automatic.schedule);
            schedule.retry_installation = busy.then_some(now + RETRY);
            schedule.next_installation = next_installation(&settings, now, &self.zone());
        }
        // Deadlines hold whatever the level; a pause holds them back.
        if !paused && !restart_first {
            let due: Vec<Candidate> = self
                .candidates(&settings)?
                .into_iter()
                .filter(|candidate| candidate.deadline.is_some_and(|deadline| deadline <= now))
                .collect();
            if !due.is_empty() {
                tracing::info!(
                    updates = due.len(),
                    "installing updates whose deadline has come"
                );
                if !self.automatic_install(due, now).await {
                    lock(&self.automatic.schedule).retry_installation = Some(now + RETRY);
                }
            }
        }
        let restart_wake = self.restart_tick(now).await?;
        let schedule = lock(&self.automatic.schedule);
        let mut wakes = vec![restart_wake, schedule.retry_installation];
        if level != Level::Disabled {
            wakes.push(record.paused_until);
            if !paused {
                wakes.push(schedule.next_detection);
                if level == Level::ScheduledInstallation {
                    wakes.push(schedule.next_installation);
                }
            }
        }
        drop(schedule);
        if !paused {
            // The next deadline of an update not installed yet.
            let next_deadline = self
                .candidates(&settings)?
                .into_iter()
                .filter_map(|candidate| candidate.deadline)
                .filter(|deadline| *deadline > now)
                .min();
            wakes.push(next_deadline);
        }
        Ok(wakes.into_iter().flatten().min())
    }

    /// A detection: syncs every service that is not a scan package (apt
    /// services read apt's lists as they are), then scans the machine.
    async fn detect(&self, now: Timestamp) {
        let services = match self.with_store(|store| store.services()).await {
            Ok(services) => services,
            Err(error) => {
                tracing::warn!("detection: {error}");
                return;
            }
        };
        let mut succeeded = true;
        for service in services
            .iter()
            .filter(|service| !service.is_scan_package_service)
        {
            let service_id = service.service_id;
            match self.sync_services(Some(service_id), false, |_| {}).await {
                Ok(_) => tracing::info!(service = %service_id, "detection: synced"),
                Err(error) => {
                    succeeded = false;
                    tracing::warn!(service = %service_id, "detection: {error}");
                }
            }
        }
        if let Err(error) = self.rescan().await {
            succeeded = false;
            tracing::warn!("detection: scanning the machine: {error}");
        }
        let recorded = self
            .update_automatic(move |record| {
                record.last_detection = Some(now);
                if succeeded {
                    record.results.last_search_success_date = Some(now);
                }
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!("detection: {error}");
        }
    }

    async fn automatic_download(self: &Arc<Self>, update_ids: Vec<Uuid>) {
        if update_ids.is_empty() {
            return;
        }
        match self
            .start_download(&automatic_requester(), update_ids, false)
            .await
        {
            Ok(job) => {
                let result = finished(&job).await;
                tracing::info!(result = ?result.map(|result| result.result_code), "automatic download");
            }
            Err(error) => tracing::warn!("automatic download: {error}"),
        }
    }

    /// Downloads what is missing and installs `candidates`: those that may
    /// ask only when not already waiting (so each is refused and recorded
    /// once), updates needing exclusive handling each on their own. An
    /// installed update with a deadline that needs a restart makes its
    /// deadline the restart's limit. Returns false when the installer was
    /// busy (nothing ran).
    async fn automatic_install(
        self: &Arc<Self>,
        candidates: Vec<Candidate>,
        now: Timestamp,
    ) -> bool {
        let waiting: HashSet<Uuid> = match self
            .with_store(|store| store.awaiting_interactive_user())
            .await
        {
            Ok(entries) => entries
                .iter()
                .map(|entry| entry.update_identity.update_id)
                .collect(),
            Err(error) => {
                tracing::warn!("automatic installation: {error}");
                return false;
            }
        };
        let candidates: Vec<Candidate> = candidates
            .into_iter()
            .filter(|candidate| !(candidate.may_ask && waiting.contains(&candidate.update_id)))
            .collect();
        if candidates.is_empty() {
            return true;
        }
        let missing: Vec<Uuid> = candidates
            .iter()
            .filter(|candidate| !candidate.is_downloaded)
            .map(|candidate| candidate.update_id)
            .collect();
        self.automatic_download(missing).await;
        let deadlines: std::collections::HashMap<Uuid, Timestamp> = candidates
            .iter()
            .filter_map(|candidate| Some((candidate.update_id, candidate.deadline?)))
            .collect();
        let (exclusive, shared): (Vec<Candidate>, Vec<Candidate>) = candidates
            .into_iter()
            .partition(|candidate| candidate.exclusive);
        let mut calls: Vec<Vec<Uuid>> = exclusive
            .into_iter()
            .map(|candidate| vec![candidate.update_id])
            .collect();
        if !shared.is_empty() {
            calls.push(shared.iter().map(|candidate| candidate.update_id).collect());
        }
        let mut ran = true;
        let mut installed_some = false;
        let mut limit: Option<Timestamp> = None;
        for update_ids in calls {
            let request = InstallRequest {
                operation: UpdateOperation::Installation,
                update_ids,
                force_quiet: false,
                is_forced: false,
                client_answers: false,
            };
            match self.start_install(&automatic_requester(), request).await {
                Ok(started) => {
                    if let Some(result) = finished(&started.job).await {
                        tracing::info!(result = ?result.result_code, "automatic installation");
                        for update in &result.updates {
                            let succeeded = matches!(
                                update.result_code,
                                OperationResultCode::Succeeded
                                    | OperationResultCode::SucceededWithErrors
                            );
                            installed_some |= succeeded;
                            if let (true, true, Some(deadline)) = (
                                succeeded,
                                update.reboot_required,
                                deadlines.get(&update.update_id),
                            ) {
                                limit = Some(limit.map_or(*deadline, |limit| limit.min(*deadline)));
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!("automatic installation: {error}");
                    ran = false;
                }
            }
        }
        if installed_some || limit.is_some() {
            let recorded = self
                .update_automatic(move |record| {
                    if installed_some {
                        record.results.last_installation_success_date = Some(now);
                    }
                    if let Some(limit) = limit {
                        record.restart_limit =
                            Some(record.restart_limit.map_or(limit, |old| old.min(limit)));
                    }
                })
                .await;
            if let Err(error) = recorded {
                tracing::warn!("automatic installation: {error}");
            }
        }
        ran
    }

    /// The restart policy at `now`: plans the window's restart, warns,
    /// restarts; returns when to look again.
    async fn restart_tick(self: &Arc<Self>, now: Timestamp) -> Result<Option<Timestamp>> {
        let settings = &self.config.restart;
        let pending = self.index.read().map_err(|_| poisoned())?.reboot_required();
        let record = self.automatic_record().await?;
        if !pending {
            if record.restart_limit.is_some() {
                self.update_automatic(|record| record.restart_limit = None)
                    .await?;
            }
            let mut schedule = lock(&self.automatic.schedule);
            let requested = schedule.restart.requested_this_boot;
            schedule.restart = RestartPlan {
                requested_this_boot: requested,
                ..RestartPlan::default()
            };
            return Ok(None);
        }
        if settings.policy == RestartPolicy::Never
            || lock(&self.automatic.schedule).restart.requested_this_boot
        {
            return Ok(None);
        }
        let window =
            Window::parse(&settings.window).map_err(|why| AgentError::new(E_INVALIDARG, why))?;
        let zone = self.zone();
        let utmp = settings.utmp.clone();
        let users = move || restart::logged_in(&utmp, std::path::Path::new("/proc"));
        if let Some(limit) = record.restart_limit
            && now >= limit
        {
            let logins = tokio::task::spawn_blocking(users.clone()).await?;
            if settings.users != UsersPolicy::Ignore && !logins.is_empty() {
                warn_users(&logins, "now, for an update's deadline".to_owned()).await;
            }
            self.restart(now, format!("the deadline {limit} of an installed update"))
                .await?;
            return Ok(None);
        }
        let warn_ahead = SignedDuration::from_mins(i64::from(settings.warn_minutes));
        let (at, warned) = {
            let mut schedule = lock(&self.automatic.schedule);
            let plan = &mut schedule.restart;
            let stale = plan.window_end.is_none_or(|end| end <= now) || plan.at.is_none();
            if stale {
                let Some((start, end)) = window.next(now, &zone) else {
                    return Ok(record.restart_limit);
                };
                plan.at = Some(restart::random_between(start.max(now), end));
                plan.window_end = Some(end);
                plan.warned = false;
                tracing::info!(at = ?plan.at, "restart planned in the maintenance window");
            }
            let mut at = plan.at.unwrap_or(now);
            if let Some(limit) = record.restart_limit {
                at = at.min(limit);
            }
            (at, plan.warned)
        };
        let mut wake = vec![Some(at), record.restart_limit];
        if settings.users == UsersPolicy::Warn && !warned {
            let warn_at = at - warn_ahead;
            if now >= warn_at {
                let logins = tokio::task::spawn_blocking(users.clone()).await?;
                if !logins.is_empty() {
                    let minutes = at.duration_since(now).as_secs().max(0) / 60;
                    warn_users(&logins, format!("in {minutes} minutes ({at})")).await;
                }
                lock(&self.automatic.schedule).restart.warned = true;
            } else {
                wake.push(Some(warn_at));
            }
        }
        if now < at {
            return Ok(wake.into_iter().flatten().min());
        }
        if settings.users == UsersPolicy::Wait {
            let logins = tokio::task::spawn_blocking(users).await?;
            if !logins.is_empty() {
                let mut names: Vec<String> = logins.into_iter().map(|login| login.user).collect();
                names.dedup();
                tracing::info!(users = ?names, "restart held back: users are logged in");
                let mut schedule = lock(&self.automatic.schedule);
                let plan = &mut schedule.restart;
                plan.held_by = names;
                let retry = now + RETRY;
                if plan.window_end.is_some_and(|end| retry < end) {
                    plan.at = Some(retry);
                } else {
                    plan.at = None;
                    plan.window_end = None;
                }
                let next = plan.at.unwrap_or(retry);
                return Ok([Some(next), record.restart_limit]
                    .into_iter()
                    .flatten()
                    .min());
            }
        }
        self.restart(now, format!("the maintenance window {}", settings.window))
            .await?;
        Ok(None)
    }

    /// Records the restart, runs the command (then its fallback) and
    /// records the outcome.
    async fn restart(&self, now: Timestamp, reason: String) -> Result<()> {
        let settings = self.config.restart.clone();
        let boot = current_boot(&self.config.install.boot_id_file);
        let record = RestartRecord {
            requested: now,
            reason,
            command: settings.command.clone(),
            boot_id: boot.0,
            outcome: RestartOutcome::Requested,
            detail: None,
            confirmed: None,
        };
        tracing::warn!(reason = record.reason, command = ?record.command, "restarting the machine");
        let stored = record.clone();
        let id = self
            .with_store(move |store| store.add_restart(&stored))
            .await?;
        lock(&self.automatic.schedule).restart.requested_this_boot = true;
        let outcome = tokio::task::spawn_blocking(move || {
            restart::run(&settings.command, &settings.fallback_command)
        })
        .await?;
        let mut restart = StoredRestart { id, record };
        match outcome {
            Ok(command) => restart.record.command = command,
            Err(detail) => {
                tracing::error!("the restart failed: {detail}");
                restart.record.outcome = RestartOutcome::Failed;
                restart.record.detail = Some(detail);
                let mut schedule = lock(&self.automatic.schedule);
                schedule.restart = RestartPlan::default();
            }
        }
        self.with_store(move |store| store.update_restart(&restart))
            .await
    }
}

async fn warn_users(logins: &[Login], when: String) {
    let message = format!(
        "\r\n*** OpenWUA: this machine restarts {when} to finish installing updates. \
         Save your work. ***\r\n"
    );
    let logins = logins.to_vec();
    let reached = tokio::task::spawn_blocking(move || restart::warn(&logins, &message)).await;
    tracing::info!(terminals = ?reached.unwrap_or_default(), "warned logged-in users of the restart");
}

/// The job's result once it completes.
async fn finished(job: &crate::jobs::Job) -> Option<OperationResult> {
    let mut changes = job.subscribe();
    let done = changes
        .wait_for(|info| info.state == JobState::Completed)
        .await
        .ok()?;
    done.result.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_window_or_time_zone_is_refused_at_start() {
        let mut config = crate::config::Config::default();
        assert!(check_config(&config).is_ok());
        config.restart.policy = RestartPolicy::Window;
        config.restart.window = "sometimes".into();
        assert!(check_config(&config).is_err());
        config.restart.window = "Mon-Fri 02:00-04:00".into();
        config.automatic_updates.time_zone = Some("Mars/Olympus_Mons".into());
        assert!(check_config(&config).is_err());
        config.automatic_updates.time_zone = Some("UTC".into());
        assert!(check_config(&config).is_ok());
    }

    #[test]
    fn the_spread_adds_at_most_a_tenth() {
        let interval = Duration::from_secs(1000);
        for _ in 0..100 {
            let waited = spread(interval);
            assert!(
                waited >= SignedDuration::from_secs(1000)
                    && waited <= SignedDuration::from_secs(1100)
            );
        }
    }

    #[test]
    fn the_scheduled_installation_is_the_next_day_and_hour_asked_for() {
        let zone = jiff::tz::TimeZone::UTC;
        let mut settings = AutomaticUpdatesSettings {
            scheduled_installation_day: AutomaticUpdatesScheduledInstallationDay::EveryWednesday,
            scheduled_installation_time: 3,
            ..AutomaticUpdatesSettings::default()
        };
        // 2030-01-07 is a Monday.
        let monday: Timestamp = "2030-01-07T12:00:00Z".parse().unwrap();
        let next = next_installation(&settings, monday, &zone).unwrap();
        assert_eq!(next.to_string(), "2030-01-09T03:00:00Z");
        // At that very time, the next is a week on.
        let after = next_installation(&settings, next, &zone).unwrap();
        assert_eq!(after.to_string(), "2030-01-16T03:00:00Z");
        settings.scheduled_installation_day = AutomaticUpdatesScheduledInstallationDay::EveryDay;
        let daily = next_installation(&settings, monday, &zone).unwrap();
        assert_eq!(daily.to_string(), "2030-01-08T03:00:00Z");
    }
}
