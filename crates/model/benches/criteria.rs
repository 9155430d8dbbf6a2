//! The criteria language's two figures (foundation issue): evaluating
//! `IsInstalled=0 and Type='Software' and IsHidden=0` over 1,000,000
//! updates (goal ≥ 100 M updates/s on one core) and parsing a 1 KB criteria
//! string (goal ≤ 10 µs).
//!
//! Run with `cargo bench -p openwua-model --bench criteria`; the figures go
//! into `BENCHMARKS.md`, never into pass/fail tests.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion as Bench, Throughput, criterion_group, criterion_main};
use openwua_model::criteria::{Criteria, DEFAULT_CRITERIA, SearchFlags, Searchable};
use openwua_model::enums::{DeploymentAction, UpdateType};
use openwua_model::update::{Category, Update, UpdateIdentity, UpdateState};
use uuid::{Uuid, uuid};

/// How many updates a search runs over.
const UPDATES: usize = 1_000_000;

/// The criteria of the evaluation figure.
const SEARCH: &str = "IsInstalled=0 and Type='Software' and IsHidden=0";

/// A realistic criteria string of about 1 KB: or-ed and-groups with
/// classifications, products, update IDs with revisions, flags, types and
/// deployment actions.
const LONG_CRITERIA: &str = concat!(
    "(IsInstalled=0 and IsHidden=0 and Type='Software' and ",
    "CategoryIDs contains '0fa1201d-4330-4fa8-8ae9-b877473b6441' and ",
    "CategoryIDs contains '72e7624a-5b00-45d2-b92f-e561c0a6a160')",
    " or (IsInstalled=0 and IsHidden=0 and Type='Software' and ",
    "CategoryIDs contains 'e6cf1350-c01b-414d-a61f-263d14d133b4')",
    " or (IsInstalled=0 and IsHidden=0 and Type='Driver' and BrowseOnly=0 and ",
    "CategoryIDs contains 'ebfc1fc5-71a4-4f7b-9aca-3b9a503104a0')",
    " or (IsInstalled=1 and DeploymentAction='Uninstallation' and RebootRequired=0)",
    " or (IsInstalled=0 and DeploymentAction='OptionalInstallation' and ",
    "IsAssigned=0 and Type!='Driver')",
    " or (UpdateID='9f3dd1a4-6c8e-4b1e-a6c2-0d5b7e4f21a3' and RevisionNumber=201)",
    " or (UpdateID='c81e0b7d-2a94-4f35-9d6e-7b13a0c5e8f2' and RevisionNumber=1)",
    " or (UpdateID='5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d' and RevisionNumber=104)",
    " or (IsPresent=1 and IsInstalled=0 and AutoSelectOnWebSites=1 and ",
    "UpdateID!='0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e')",
    " or (DeploymentAction=* and IsAssigned=1 and IsHidden=0)",
);

/// The compact record the agent's index keeps per update: what the criteria
/// language can see, nothing else.
struct IndexRecord {
    identity: UpdateIdentity,
    flags: SearchFlags,
    categories: Box<[Uuid]>,
}

impl Searchable for IndexRecord {
    #[inline]
    fn search_flags(&self) -> SearchFlags {
        self.flags
    }

    #[inline]
    fn identity(&self) -> UpdateIdentity {
        self.identity
    }

    #[inline]
    fn in_category(&self, category: &Uuid) -> bool {
        self.categories.contains(category)
    }
}

/// SplitMix64: deterministic, so every run measures the same updates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn category(id: Uuid, name: &str, category_type: &str) -> Category {
    Category {
        id,
        name: name.to_owned(),
        category_type: category_type.to_owned(),
        parent: None,
    }
}

/// One pseudo-random update and its state. About a third match [`SEARCH`]:
/// 80 % software × 75 % `Installation` × 60 % not installed × 95 % not hidden.
fn update(rng: &mut Rng, index: usize, categories: &[Category]) -> (Update, UpdateState) {
    let (windows_10, windows_11, security, critical, drivers, definitions) = (
        &categories[0],
        &categories[1],
        &categories[2],
        &categories[3],
        &categories[4],
        &categories[5],
    );
    let update_type = if rng.chance(80) {
        UpdateType::Software
    } else {
        UpdateType::Driver
    };
    let deployment_action = match rng.next() % 100 {
        0..75 => DeploymentAction::Installation,
        75..85 => DeploymentAction::OptionalInstallation,
        85..92 => DeploymentAction::Detection,
        92..97 => DeploymentAction::Uninstallation,
        _ => DeploymentAction::None,
    };
    let product = if rng.chance(60) {
        windows_11
    } else {
        windows_10
    };
    let kb = 5_000_000 + rng.next() % 100_000;
    let (title, classification) = match update_type {
        UpdateType::Driver => (
            format!(
                "Contoso Ltd. - Display - 31.0.{}.{}",
                index % 200,
                kb % 10_000
            ),
            drivers,
        ),
        UpdateType::Software => match rng.next() % 3 {
            0 => (
                format!(
                    "2026-11 Cumulative Update for {} for x64-based Systems (KB{kb})",
                    product.name
                ),
                security,
            ),
            1 => (
                format!(
                    "Security Intelligence Update for Microsoft Defender Antivirus - KB{kb} (Version 1.421.{index})"
                ),
                definitions,
            ),
            _ => (
                format!(
                    "2026-11 Servicing Stack Update for {} (KB{kb})",
                    product.name
                ),
                critical,
            ),
        },
    };
    let update = Update {
        identity: UpdateIdentity {
            update_id: Uuid::from_u64_pair(rng.next(), rng.next()),
            revision_number: (rng.next() % 300) as i32 + 1,
        },
        description: format!("Install this update to resolve issues in {}.", product.name),
        title,
        kb_article_ids: vec![kb.to_string()],
        categories: vec![product.clone(), classification.clone()],
        update_type,
        msrc_severity: None,
        cve_ids: Vec::new(),
        security_bulletin_ids: Vec::new(),
        support_url: Some(format!("https://support.microsoft.com/help/{kb}")),
        release_notes: None,
        deployment_action,
        deadline: None,
        is_mandatory: rng.chance(10),
        browse_only: rng.chance(15),
        auto_select_on_web_sites: rng.chance(70),
        superseded_update_ids: Vec::new(),
        bundled_updates: Vec::new(),
        installation_behavior: Default::default(),
        uninstallation_behavior: None,
        eula_text: None,
        download_contents: Vec::new(),
        min_download_size: 0,
        max_download_size: rng.next() % 500_000_000,
    };
    let is_installed = rng.chance(40);
    let state = UpdateState {
        is_installed,
        is_hidden: rng.chance(5),
        is_downloaded: is_installed || rng.chance(20),
        eula_accepted: true,
        reboot_required: is_installed && rng.chance(5),
        is_present: is_installed,
        is_assigned: rng.chance(80),
    };
    (update, state)
}

fn updates() -> Vec<(Update, UpdateState)> {
    let categories = [
        category(
            uuid!("a3c2375d-0c8a-42f9-bce0-28333e198407"),
            "Windows 10",
            "Product",
        ),
        category(
            uuid!("72e7624a-5b00-45d2-b92f-e561c0a6a160"),
            "Windows 11",
            "Product",
        ),
        category(
            uuid!("0fa1201d-4330-4fa8-8ae9-b877473b6441"),
            "Security Updates",
            "UpdateClassification",
        ),
        category(
            uuid!("e6cf1350-c01b-414d-a61f-263d14d133b4"),
            "Critical Updates",
            "UpdateClassification",
        ),
        category(
            uuid!("ebfc1fc5-71a4-4f7b-9aca-3b9a503104a0"),
            "Drivers",
            "UpdateClassification",
        ),
        category(
            uuid!("e0789628-ce08-4437-be74-2495b842f43b"),
            "Definition Updates",
            "UpdateClassification",
        ),
    ];
    let mut rng = Rng(0x5EED_2026_1125_0003);
    (0..UPDATES)
        .map(|index| update(&mut rng, index, &categories))
        .collect()
}

fn evaluate(c: &mut Bench) {
    let criteria = Criteria::parse(SEARCH).expect("the search criteria parse");
    let full = updates();
    let index: Vec<IndexRecord> = full
        .iter()
        .map(|(update, state)| IndexRecord {
            identity: update.identity,
            flags: SearchFlags::of(update, state),
            categories: update.categories.iter().map(|each| each.id).collect(),
        })
        .collect();

    let matching = full
        .iter()
        .filter(|(update, state)| criteria.matches_update(update, state))
        .count();
    let share = matching as f64 / UPDATES as f64;
    assert!(
        (0.28..0.40).contains(&share),
        "about a third should match, not {share}"
    );
    assert_eq!(
        index
            .iter()
            .filter(|record| criteria.matches(*record))
            .count(),
        matching,
        "the index and the full updates agree"
    );

    let mut group = c.benchmark_group("evaluate 1M updates");
    group
        .throughput(Throughput::Elements(UPDATES as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("index record", |b| {
        b.iter(|| {
            let criteria = black_box(&criteria);
            let count = black_box(&index)
                .iter()
                .filter(|record| criteria.matches(*record))
                .count();
            black_box(count)
        })
    });
    group.bench_function("Update + UpdateState", |b| {
        b.iter(|| {
            let criteria = black_box(&criteria);
            let count = black_box(&full)
                .iter()
                .filter(|(update, state)| criteria.matches_update(update, state))
                .count();
            black_box(count)
        })
    });
    group.finish();
}

fn parse(c: &mut Bench) {
    assert!(
        (1000..=1100).contains(&LONG_CRITERIA.len()),
        "the long criteria are {} bytes",
        LONG_CRITERIA.len()
    );
    let long = Criteria::parse(LONG_CRITERIA).expect("the long criteria parse");
    assert_eq!(long.groups().len(), 10);
    Criteria::parse(DEFAULT_CRITERIA).expect("the default criteria parse");

    let mut group = c.benchmark_group("parse");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(LONG_CRITERIA.len() as u64));
    group.bench_function("1 KB criteria", |b| {
        b.iter(|| Criteria::parse(black_box(LONG_CRITERIA)))
    });
    group.throughput(Throughput::Bytes(DEFAULT_CRITERIA.len() as u64));
    group.bench_function("default criteria", |b| {
        b.iter(|| Criteria::parse(black_box(DEFAULT_CRITERIA)))
    });
    group.finish();
}

criterion_group!(benches, evaluate, parse);
criterion_main!(benches);
