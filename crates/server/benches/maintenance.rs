//! Issue 16's figure: the database's size after a simulated year (12
//! monthly batches of 1,000 updates, each superseding the last, 10,000
//! computers reporting; tests/year), with maintenance and without it, on
//! SQLite and (with OPENWUA_TEST_POSTGRES_URL) PostgreSQL.
//! `cargo bench -p openwua-server --bench maintenance`; smaller with
//! MAINTENANCE_BENCH_COMPUTERS, _UPDATES, _MONTHS.

#[path = "../tests/year/mod.rs"]
mod year;

// Only its PostgreSQL and environment helpers: no server process here.
#[allow(dead_code)]
mod support;

use std::time::Instant;

use openwua_server::clock::Clock;
use openwua_server::store::Store;
use support::{env_number, with_postgres};
use year::{Month, Shape, Year};

fn shape(maintain: bool) -> Shape {
    Shape {
        computers: env_number("MAINTENANCE_BENCH_COMPUTERS", 10_000) as usize,
        updates: env_number("MAINTENANCE_BENCH_UPDATES", 1_000) as usize,
        groups: 20,
        months: env_number("MAINTENANCE_BENCH_MONTHS", 12) as usize,
        content_bytes: 4096,
        maintain,
        check: false,
    }
}

fn simulate(store_kind: &str, database: Option<&str>, maintain: bool) -> Vec<Month> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir(&content).unwrap();
    let started = Instant::now();
    let months = runtime.block_on(async {
        let clock = Clock::manual(year::start());
        let store = match database {
            Some(url) => Store::open_postgres(url).await.unwrap(),
            None => Store::open_sqlite(&dir.path().join("server.sqlite"))
                .await
                .unwrap(),
        }
        .with_clock(clock.clone());
        let mut simulation = Year::new(shape(maintain), store, clock, &content).await;
        simulation.vacuum_url = database.map(str::to_owned);
        simulation.run().await
    });
    eprintln!(
        "maintenance/{store_kind}: {} simulated in {:.0} s",
        if maintain {
            "with maintenance"
        } else {
            "without maintenance"
        },
        started.elapsed().as_secs_f64()
    );
    months
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn bench(store_kind: &str, database: Option<&str>, database_without: Option<&str>) {
    let with = simulate(store_kind, database, true);
    let without = simulate(store_kind, database_without, false);
    let shape = shape(true);
    println!(
        "maintenance/{store_kind}: {} computers, {} updates a month, {} months",
        shape.computers, shape.updates, shape.months
    );
    println!(
        "{:>5}  {:>10}  {:>10}  {:>9}  {:>9}  {:>12}  {:>12}",
        "MONTH", "DB MiB", "DB MiB", "UPDATES", "UPDATES", "CONTENT MiB", "CONTENT MiB"
    );
    println!(
        "{:>5}  {:>10}  {:>10}  {:>9}  {:>9}  {:>12}  {:>12}",
        "", "with", "without", "with", "without", "with", "without"
    );
    for (index, (with, without)) in with.iter().zip(&without).enumerate() {
        println!(
            "{:>5}  {:>10.1}  {:>10.1}  {:>9}  {:>9}  {:>12.1}  {:>12.1}",
            index + 1,
            mib(with.database_bytes),
            mib(without.database_bytes),
            with.updates,
            without.updates,
            mib(with.content_bytes),
            mib(without.content_bytes)
        );
    }
    let runs: Vec<_> = with.iter().filter_map(|month| month.run.as_ref()).collect();
    println!(
        "maintenance/{store_kind}: runs removed {} updates, {} content files ({:.1} MiB), {} computers, {} states",
        runs.iter().map(|run| run.removed_update_count).sum::<u64>(),
        runs.iter()
            .map(|run| run.removed_content_count)
            .sum::<u64>(),
        mib(runs
            .iter()
            .map(|run| run.removed_content_bytes)
            .sum::<u64>()),
        runs.iter()
            .map(|run| run.removed_computer_count)
            .sum::<u64>(),
        runs.iter().map(|run| run.removed_state_count).sum::<u64>(),
    );
    let slowest = with.iter().map(|month| month.run_time).max();
    if let Some(slowest) = slowest {
        println!(
            "maintenance/{store_kind}: slowest run {:.1} s",
            slowest.as_secs_f64()
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then this is not run (it takes minutes and measures nothing there).
    if !std::env::args().any(|argument| argument == "--bench") {
        return;
    }
    bench("sqlite", None, None);
    match std::env::var("OPENWUA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => with_postgres(&url, |with| {
            with_postgres(&url, |without| {
                bench("postgresql", Some(with), Some(without))
            })
        }),
        _ => println!("maintenance/postgresql: skipped, OPENWUA_TEST_POSTGRES_URL is not set"),
    }
}
