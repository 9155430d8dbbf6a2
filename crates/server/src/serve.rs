//! `wua-server serve`: open the store, make or read the data directory's
//! secrets, listen, and stop gracefully on SIGTERM or SIGINT.

use std::num::NonZeroU32;
use std::sync::Arc;

use anyhow::Context;
use axum::middleware;
use tokio::signal::unix::{SignalKind, signal};

use crate::api::{AppState, router};
use crate::config::Config;
use crate::limits::{InFlight, RegistrationLimit, limit_in_flight, limit_registrations};
use crate::setup;
use crate::store::Store;
use crate::tls::{self, ClientAddr, TlsListener};

/// Runs the server until SIGTERM or SIGINT; requests under way finish first.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let prepared = {
        let data_dir = data_dir.clone();
        let token_file = config.admin_token_file.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let content_dir = setup::prepare_data_dir(&data_dir)?;
            let key = setup::signing_key(&data_dir)?;
            let token = setup::admin_token(&data_dir, token_file.as_deref())?;
            Ok((content_dir, key, token))
        })
        .await??
    };
    let (content_dir, signing_key, admin_token) = prepared;

    let store = match &config.database {
        Some(url) => Store::open_postgres(url)
            .await
            .context("opening the PostgreSQL database")?,
        None => Store::open_sqlite(&data_dir.join(setup::SQLITE_FILE))
            .await
            .context("opening the SQLite database")?,
    };
    store
        .add_admin_token(setup::token_hash(&admin_token))
        .await?;
    drop(admin_token);

    let service_id = store.service_id().await?;
    let state = Arc::new(AppState {
        store,
        content_dir,
        public_key: signing_key.public_key(),
        signing_key,
        service_id,
        service_name: config.service_name.clone(),
        snapshot_lifetime: config.snapshot_lifetime,
        freshness: config.freshness,
        max_request_bytes: config.max_request_bytes,
        max_content_bytes: config.max_content_bytes,
        content_base_url: config.content_base_url.clone(),
        sync_cache: crate::sync_cache::SyncCache::new(
            usize::try_from(config.snapshot_cache_bytes).unwrap_or(usize::MAX),
            config.snapshot_lifetime,
        ),
        upstreams: crate::upstream::Upstreams::new(&data_dir),
        maintenance: config.maintenance.clone(),
    });
    tokio::spawn(prune_sync_log(state.store.clone(), config.delta_retention));
    tokio::spawn(crate::rollouts::run_evaluations(
        state.store.clone(),
        config.rollout_check,
    ));
    tokio::spawn(crate::upstream::content::run_fetcher(Arc::clone(&state)));
    tokio::spawn(crate::upstream::schedule::run(
        Arc::clone(&state),
        config.upstream_schedule,
    ));
    tokio::spawn(crate::maintenance::schedule(
        state.store.clone(),
        config
            .content_base_url
            .is_none()
            .then(|| state.content_dir.clone()),
        config.maintenance.clone(),
    ));
    let registrations = NonZeroU32::new(config.registrations_per_minute)
        .context("registrations_per_minute must be above 0")?;
    // The in-flight bound outermost, so a loaded server does no other work
    // for a request it turns away.
    let app = router(Arc::clone(&state), config.request_timeout)
        .merge(crate::console::router(
            Arc::clone(&state),
            config.tls.is_some(),
            config.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::new(RegistrationLimit::new(registrations)),
            limit_registrations,
        ))
        .layer(middleware::from_fn_with_state(
            InFlight::new(config.max_in_flight),
            limit_in_flight,
        ))
        .into_make_service_with_connect_info::<ClientAddr>();
    let tls = match &config.tls {
        Some(files) => {
            let (certificate, private_key) = (files.certificate.clone(), files.private_key.clone());
            Some(
                tokio::task::spawn_blocking(move || tls::server_config(&certificate, &private_key))
                    .await??,
            )
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        scheme = if tls.is_some() { "https" } else { "http" },
        store = state.store.kind(),
        key = %state.public_key,
        service_id = %state.service_id,
        "wua-server ready"
    );
    match tls {
        Some(tls) => axum::serve(TlsListener::new(listener, tls)?, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving")?,
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving")?,
    }
    tracing::info!("wua-server stopped");
    Ok(())
}

/// Drops the change log's rows older than `retention`, at start and every
/// hour after: agents offline longer get a full snapshot.
async fn prune_sync_log(store: Store, retention: std::time::Duration) {
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        let Ok(retention) = jiff::SignedDuration::try_from(retention) else {
            return;
        };
        let cutoff = jiff::Timestamp::now() - retention;
        match store.prune_sync_log(cutoff).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "pruned the sync change log"),
            Err(error) => tracing::warn!(%error, "pruning the sync change log"),
        }
    }
}

async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot watch SIGTERM and SIGINT; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing requests under way"),
        _ = interrupt.recv() => tracing::info!("SIGINT: finishing requests under way"),
    }
}
