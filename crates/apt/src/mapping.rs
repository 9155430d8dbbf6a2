//! From what the lists offer and what dpkg has, to WUA update revisions.
//!
//! A pure function over parsed data ([`map_updates`]): the agent's scan
//! and, later, the update server's upstream import call it with what they
//! read. The rules, and why, are in `docs/apt.md`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use openwua_catalog::revision::{
    Applicability, AptPackage, Handler, Revision, Rule, VersionConstraint, VersionOp,
};
use openwua_model::enums::{
    DeploymentAction, InstallationImpact, InstallationRebootBehavior, UpdateType,
};
use openwua_model::update::{Category, InstallationBehavior, Update, UpdateIdentity};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::packages::{BinaryPackage, InstalledPackage};

/// OpenWUA's namespace for the UUIDv5s of apt updates and their categories.
/// Fixed forever: changing it would give every apt update a new `UpdateID`.
pub const APT_NAMESPACE: Uuid = Uuid::from_u128(0x721f2613_2492_4d3b_a235_49f9a5a3508b);

/// WUA's Security Updates classification.
pub const SECURITY_UPDATES: Uuid = Uuid::from_u128(0x0fa1201d_4330_4fa8_8ae9_b877473b6441);
/// WUA's Updates classification.
pub const UPDATES: Uuid = Uuid::from_u128(0xcd5ffd1e_e932_4e3a_bf74_18bf0b1bbd83);

/// The most binary packages named, one synopsis each, in a Description.
const DESCRIBED_BINARIES: usize = 12;
/// The longest synopsis kept, in characters.
const SYNOPSIS_CHARS: usize = 100;

/// The suite a list comes from, as its Release names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pocket<'a> {
    /// `Origin` (`Debian`).
    pub origin: &'a str,
    /// `Suite` (`stable-security`).
    pub suite: &'a str,
    /// `Codename` (`bookworm-security`).
    pub codename: &'a str,
}

/// One verified list's packages and the suite they come from.
#[derive(Debug, Clone, Copy)]
pub struct OfferedList<'a> {
    /// Its suite.
    pub pocket: Pocket<'a>,
    /// Its packages.
    pub packages: &'a [BinaryPackage<'a>],
}

/// What kind of update a pocket's packages are, from the least to the most
/// pressing (an update offered by several pockets takes the most pressing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PocketClass {
    /// `*-backports`: Updates, installed only when chosen.
    Backports,
    /// The release itself (point releases), `*-updates`,
    /// `*-proposed-updates`: Updates.
    Updates,
    /// `*-security`: Security Updates.
    Security,
}

impl Pocket<'_> {
    /// The kind of its updates, from its suite and codename.
    pub fn class(&self) -> PocketClass {
        let ends = |suffix: &str| self.suite.ends_with(suffix) || self.codename.ends_with(suffix);
        if ends("-security") {
            PocketClass::Security
        } else if ends("-backports") || ends("-backports-sloppy") {
            PocketClass::Backports
        } else {
            PocketClass::Updates
        }
    }

    /// How people name it: the codename (`bookworm-security`), else the
    /// suite.
    pub fn name(&self) -> &str {
        if self.codename.is_empty() {
            self.suite
        } else {
            self.codename
        }
    }

    /// The release's codename without its pocket (`bookworm` for
    /// `bookworm-security`); the suite when there is no codename.
    pub fn family(&self) -> &str {
        let name = if self.codename.is_empty() {
            self.suite
        } else {
            self.codename
        };
        [
            "-proposed-updates",
            "-updates",
            "-security",
            "-backports-sloppy",
            "-backports",
        ]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
    }
}

/// An update's `UpdateID`: UUIDv5 of `origin\0source\0version`.
pub fn update_id(origin: &str, source: &str, version: &str) -> Uuid {
    Uuid::new_v5(
        &APT_NAMESPACE,
        format!("{origin}\0{source}\0{version}").as_bytes(),
    )
}

/// A category's ID: UUIDv5 of its type and the names that lead to it.
fn category_id(kind: &str, names: &[&str]) -> Uuid {
    let mut key = kind.to_owned();
    for name in names {
        key.push('\0');
        key.push_str(name);
    }
    Uuid::new_v5(&APT_NAMESPACE, key.as_bytes())
}

/// The `RevisionNumber` of an update holding `packages` (sorted): 31 bits
/// of the SHA-256 of their canonical text, at least 1. The same on every
/// machine that sees the same packages, and new when they change.
pub fn revision_number(packages: &[AptPackage]) -> i32 {
    let mut hasher = Sha256::new();
    for package in packages {
        hasher.update(
            format!(
                "{}\0{}\0{}\0{}\n",
                package.name, package.architecture, package.version, package.sha256
            )
            .as_bytes(),
        );
    }
    let digest = hasher.finalize();
    let bits = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff;
    i32::try_from(bits.max(1)).unwrap_or(1)
}

/// One source version's binaries, gathered from every list that has it.
struct Gathered<'a> {
    binaries: BTreeMap<(&'a str, &'a str, &'a str, [u8; 32]), &'a BinaryPackage<'a>>,
    class: PocketClass,
    family: &'a str,
    suites: BTreeSet<&'a str>,
}

/// A source version: parsed, as written, and its binaries.
type Versioned<'a> = (debversion::Version, &'a str, Gathered<'a>);

/// The updates the lists offer for the source packages the machine has at
/// least one binary of: one per (origin, source, version), ordered by
/// source, then version (Debian's order), then origin. Binaries whose
/// source version is not a Debian version are left out.
pub fn map_updates(lists: &[OfferedList<'_>], installed: &[InstalledPackage]) -> Vec<Revision> {
    let wanted: HashSet<&str> = installed
        .iter()
        .map(|package| package.source.as_str())
        .collect();
    map_sources(lists, &|source| wanted.contains(source))
}

/// [`map_updates`] for the source packages `wanted` accepts, whatever a
/// machine has: the update server's upstream import, which serves many
/// machines, maps every source its filters let through. The identities are
/// the same as [`map_updates`] gives a machine.
pub fn map_sources(lists: &[OfferedList<'_>], wanted: &dyn Fn(&str) -> bool) -> Vec<Revision> {
    let mut gathered: BTreeMap<(&str, &str, &str), Gathered<'_>> = BTreeMap::new();
    for list in lists {
        let class = list.pocket.class();
        for package in list.packages {
            if !wanted(package.source) {
                continue;
            }
            let key = (list.pocket.origin, package.source, package.source_version);
            let entry = gathered.entry(key).or_insert_with(|| Gathered {
                binaries: BTreeMap::new(),
                class,
                family: list.pocket.family(),
                suites: BTreeSet::new(),
            });
            entry.suites.insert(list.pocket.name());
            entry.class = entry.class.max(class);
            entry.family = entry.family.min(list.pocket.family());
            entry.binaries.insert(
                (
                    package.name,
                    package.architecture,
                    package.version,
                    package.sha256.0,
                ),
                package,
            );
        }
    }
    // Each (origin, source)'s versions in Debian's order.
    let mut by_source: BTreeMap<(&str, &str), Vec<Versioned<'_>>> = BTreeMap::new();
    for ((origin, source, version_text), group) in gathered {
        let Ok(version) = version_text.parse::<debversion::Version>() else {
            continue;
        };
        by_source
            .entry((origin, source))
            .or_default()
            .push((version, version_text, group));
    }
    let mut ordered: Vec<(&str, debversion::Version, &str, Revision)> = Vec::new();
    for ((origin, source), mut versions) in by_source {
        versions.sort_by(|a, b| a.0.cmp(&b.0));
        let mut older = Vec::new();
        for (version, version_text, group) in versions {
            let id = update_id(origin, source, version_text);
            let revision = revision_for(origin, source, version_text, id, &group, older.clone());
            older.push(id);
            ordered.push((source, version, origin, revision));
        }
    }
    ordered.sort_by(|a, b| {
        a.0.cmp(b.0)
            .then_with(|| a.1.cmp(&b.1))
            .then_with(|| a.2.cmp(b.2))
    });
    ordered
        .into_iter()
        .map(|(_, _, _, revision)| revision)
        .collect()
}

fn revision_for(
    origin: &str,
    source: &str,
    version: &str,
    update_id: Uuid,
    group: &Gathered<'_>,
    superseded: Vec<Uuid>,
) -> Revision {
    let packages: Vec<AptPackage> = group
        .binaries
        .values()
        .map(|binary| AptPackage {
            name: binary.name.to_owned(),
            architecture: binary.architecture.to_owned(),
            version: binary.version.to_owned(),
            size: binary.size,
            sha256: binary.sha256,
            uses_debconf: binary.uses_debconf,
        })
        .collect();
    let company = category_id("Company", &[origin]);
    let family = category_id("ProductFamily", &[origin, group.family]);
    let (classification, classification_name) = match group.class {
        PocketClass::Security => (SECURITY_UPDATES, "Security Updates"),
        PocketClass::Updates | PocketClass::Backports => (UPDATES, "Updates"),
    };
    let categories = vec![
        Category {
            id: classification,
            name: classification_name.to_owned(),
            category_type: "UpdateClassification".to_owned(),
            parent: None,
        },
        Category {
            id: company,
            name: origin.to_owned(),
            category_type: "Company".to_owned(),
            parent: None,
        },
        Category {
            id: family,
            name: group.family.to_owned(),
            category_type: "ProductFamily".to_owned(),
            parent: Some(company),
        },
        Category {
            id: category_id("Product", &[origin, group.family, source]),
            name: source.to_owned(),
            category_type: "Product".to_owned(),
            parent: Some(family),
        },
    ];
    let update = Update {
        identity: UpdateIdentity {
            update_id,
            revision_number: revision_number(&packages),
        },
        title: format!("{source} {version}"),
        description: describe(group),
        kb_article_ids: Vec::new(),
        categories,
        update_type: UpdateType::Software,
        msrc_severity: None,
        cve_ids: Vec::new(),
        security_bulletin_ids: Vec::new(),
        support_url: (origin == "Debian")
            .then(|| format!("https://tracker.debian.org/pkg/{source}")),
        release_notes: None,
        deployment_action: if group.class == PocketClass::Backports {
            DeploymentAction::OptionalInstallation
        } else {
            DeploymentAction::Installation
        },
        deadline: None,
        is_mandatory: false,
        browse_only: false,
        auto_select_on_web_sites: false,
        superseded_update_ids: superseded,
        bundled_updates: Vec::new(),
        installation_behavior: InstallationBehavior {
            can_request_user_input: packages.iter().any(|package| package.uses_debconf),
            impact: InstallationImpact::Normal,
            reboot_behavior: InstallationRebootBehavior::CanRequestReboot,
            requires_network_connectivity: false,
        },
        uninstallation_behavior: None,
        eula_text: None,
        download_contents: Vec::new(),
        min_download_size: packages
            .iter()
            .map(|package| package.size)
            .min()
            .unwrap_or(0),
        max_download_size: packages.iter().map(|package| package.size).sum(),
    };
    Revision {
        update,
        hidden_by_default: false,
        applicability: applicability(&packages),
        handler: Handler::Apt {
            packages,
            suites: group.suites.iter().map(|&suite| suite.to_owned()).collect(),
        },
        content: Vec::new(),
    }
}

/// `deb_installed`'s package: `name:arch`, except for `all` packages,
/// which dpkg lists under their name alone for every architecture.
fn rule_package(package: &AptPackage) -> String {
    if package.architecture == "all" {
        package.name.clone()
    } else {
        format!("{}:{}", package.name, package.architecture)
    }
}

fn applicability(packages: &[AptPackage]) -> Applicability {
    let named: BTreeMap<String, &str> = packages
        .iter()
        .map(|package| (rule_package(package), package.version.as_str()))
        .collect();
    let installable = named
        .keys()
        .map(|package| Rule::DebInstalled {
            package: package.clone(),
            version: None,
        })
        .collect();
    let installed = named
        .iter()
        .filter_map(|(package, version)| {
            let version = version.parse().ok()?;
            Some(Rule::Any(vec![
                Rule::Not(Box::new(Rule::DebInstalled {
                    package: package.clone(),
                    version: None,
                })),
                Rule::DebInstalled {
                    package: package.clone(),
                    version: Some(VersionConstraint {
                        op: VersionOp::LaterOrEqual,
                        version,
                    }),
                },
            ]))
        })
        .collect();
    Applicability {
        installable: Some(Rule::Any(installable)),
        installed: Some(Rule::All(installed)),
        prerequisites: Vec::new(),
    }
}

/// One line per binary package: `name: synopsis`, bounded.
fn describe(group: &Gathered<'_>) -> String {
    let mut lines = BTreeSet::new();
    for binary in group.binaries.values() {
        let synopsis: String = binary.synopsis.chars().take(SYNOPSIS_CHARS).collect();
        lines.insert(format!("{}: {synopsis}", binary.name));
    }
    let total = lines.len();
    let mut text: Vec<String> = lines.into_iter().take(DESCRIBED_BINARIES).collect();
    if total > DESCRIBED_BINARIES {
        text.push(format!(
            "… and {} more binary packages",
            total - DESCRIBED_BINARIES
        ));
    }
    text.join("\n")
}

#[cfg(test)]
mod tests {
    use openwua_model::update::Sha256Digest;

    use super::*;
    use crate::packages::InstalledState;

    fn binary<'a>(
        name: &'a str,
        arch: &'a str,
        source: &'a str,
        version: &'a str,
        size: u64,
    ) -> BinaryPackage<'a> {
        BinaryPackage {
            name,
            architecture: arch,
            version,
            source,
            source_version: version,
            size,
            sha256: Sha256Digest([size as u8; 32]),
            filename: "",
            synopsis: "a package",
            uses_debconf: false,
        }
    }

    fn installed(name: &str, source: &str, version: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.to_owned(),
            architecture: "amd64".to_owned(),
            version: version.to_owned(),
            source: source.to_owned(),
            source_version: version.to_owned(),
            state: InstalledState::Installed,
        }
    }

    const STABLE: Pocket<'static> = Pocket {
        origin: "Debian",
        suite: "stable",
        codename: "bookworm",
    };
    const SECURITY: Pocket<'static> = Pocket {
        origin: "Debian",
        suite: "stable-security",
        codename: "bookworm-security",
    };
    const BACKPORTS: Pocket<'static> = Pocket {
        origin: "Debian Backports",
        suite: "stable-backports",
        codename: "bookworm-backports",
    };

    #[test]
    fn pockets_classify_and_name_their_family() {
        assert_eq!(STABLE.class(), PocketClass::Updates);
        assert_eq!(SECURITY.class(), PocketClass::Security);
        assert_eq!(BACKPORTS.class(), PocketClass::Backports);
        let updates = Pocket {
            suite: "stable-updates",
            codename: "bookworm-updates",
            ..STABLE
        };
        assert_eq!(updates.class(), PocketClass::Updates);
        assert_eq!(SECURITY.family(), "bookworm");
        assert_eq!(updates.family(), "bookworm");
        assert_eq!(
            Pocket {
                codename: "",
                ..STABLE
            }
            .family(),
            "stable"
        );
    }

    #[test]
    fn one_update_per_source_version_merged_across_pockets() {
        let stable = [
            binary("libssl3", "amd64", "openssl", "3.0.11-1", 10),
            binary("openssl", "amd64", "openssl", "3.0.11-1", 20),
            binary("unrelated", "amd64", "unrelated", "1", 1),
        ];
        let security = [
            binary("libssl3", "amd64", "openssl", "3.0.15-1", 30),
            binary("libssl3", "i386", "openssl", "3.0.15-1", 31),
            binary("openssl-doc", "all", "openssl", "3.0.15-1", 40),
        ];
        let updates = [binary("libssl3", "amd64", "openssl", "3.0.15-1", 30)];
        let lists = [
            OfferedList {
                pocket: STABLE,
                packages: &stable,
            },
            OfferedList {
                pocket: SECURITY,
                packages: &security,
            },
            OfferedList {
                pocket: Pocket {
                    suite: "stable-updates",
                    codename: "bookworm-updates",
                    ..STABLE
                },
                packages: &updates,
            },
        ];
        let revisions = map_updates(&lists, &[installed("libssl3", "openssl", "3.0.11-1")]);
        assert_eq!(revisions.len(), 2);
        let (old, new) = (&revisions[0], &revisions[1]);
        assert_eq!(old.update.title, "openssl 3.0.11-1");
        assert_eq!(new.update.title, "openssl 3.0.15-1");
        assert_eq!(
            new.update.identity.update_id,
            update_id("Debian", "openssl", "3.0.15-1")
        );
        assert_eq!(
            new.update.superseded_update_ids,
            [old.update.identity.update_id]
        );
        assert!(old.update.superseded_update_ids.is_empty());
        assert_eq!(new.update.categories[0].id, SECURITY_UPDATES);
        assert_eq!(old.update.categories[0].id, UPDATES);
        let names: Vec<_> = new
            .update
            .categories
            .iter()
            .map(|c| (c.category_type.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("UpdateClassification", "Security Updates"),
                ("Company", "Debian"),
                ("ProductFamily", "bookworm"),
                ("Product", "openssl")
            ]
        );
        let Handler::Apt { packages, .. } = &new.handler else {
            panic!()
        };
        let listed: Vec<_> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.architecture.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("libssl3", "amd64"),
                ("libssl3", "i386"),
                ("openssl-doc", "all")
            ]
        );
        assert_eq!(new.update.max_download_size, 30 + 31 + 40);
        assert_eq!(new.update.min_download_size, 30);
        assert_eq!(
            new.update.support_url.as_deref(),
            Some("https://tracker.debian.org/pkg/openssl")
        );
        assert_eq!(new.update.deployment_action, DeploymentAction::Installation);
        assert_eq!(
            new.update.installation_behavior.reboot_behavior,
            InstallationRebootBehavior::CanRequestReboot
        );
        assert!(new.update.uninstallation_behavior.is_none());
        assert!(new.update.description.contains("libssl3: a package"));
    }

    #[test]
    fn applicability_names_packages_with_their_architecture() {
        let security = [
            binary("libssl3", "amd64", "openssl", "3.0.15-1", 30),
            binary("openssl-doc", "all", "openssl", "3.0.15-1", 40),
        ];
        let lists = [OfferedList {
            pocket: SECURITY,
            packages: &security,
        }];
        let revision = &map_updates(&lists, &[installed("libssl3", "openssl", "3.0.11-1")])[0];
        let json = serde_json::to_value(&revision.applicability).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "installable": {"any": [
                    {"deb_installed": {"package": "libssl3:amd64"}},
                    {"deb_installed": {"package": "openssl-doc"}},
                ]},
                "installed": {"all": [
                    {"any": [
                        {"not": {"deb_installed": {"package": "libssl3:amd64"}}},
                        {"deb_installed": {"package": "libssl3:amd64", "version": ">= 3.0.15-1"}},
                    ]},
                    {"any": [
                        {"not": {"deb_installed": {"package": "openssl-doc"}}},
                        {"deb_installed": {"package": "openssl-doc", "version": ">= 3.0.15-1"}},
                    ]},
                ]},
            })
        );
    }

    #[test]
    fn backports_are_optional_and_debconf_asks() {
        let mut tzdata = binary("tzdata", "all", "tzdata", "2026a-1~bpo12+1", 5);
        tzdata.uses_debconf = true;
        let backports = [tzdata];
        let lists = [OfferedList {
            pocket: BACKPORTS,
            packages: &backports,
        }];
        let revisions = map_updates(&lists, &[installed("tzdata", "tzdata", "2025b-0+deb12u1")]);
        let update = &revisions[0].update;
        assert_eq!(
            update.deployment_action,
            DeploymentAction::OptionalInstallation
        );
        assert_eq!(update.categories[0].id, UPDATES);
        assert!(update.installation_behavior.can_request_user_input);
        assert!(update.support_url.is_none(), "not Debian's own origin");
        let Handler::Apt { packages, .. } = &revisions[0].handler else {
            panic!()
        };
        assert!(packages[0].uses_debconf);
    }

    #[test]
    fn revision_numbers_follow_the_packages_only() {
        let a = [binary("a", "amd64", "a", "1", 1)];
        let b = [binary("a", "amd64", "a", "1", 2)];
        let installed = [installed("a", "a", "1")];
        let first = map_updates(
            &[OfferedList {
                pocket: STABLE,
                packages: &a,
            }],
            &installed,
        );
        let again = map_updates(
            &[OfferedList {
                pocket: SECURITY,
                packages: &a,
            }],
            &installed,
        );
        let changed = map_updates(
            &[OfferedList {
                pocket: STABLE,
                packages: &b,
            }],
            &installed,
        );
        let id = |r: &[Revision]| r[0].update.identity;
        assert_eq!(id(&first), id(&again));
        assert_eq!(id(&first).update_id, id(&changed).update_id);
        assert_ne!(id(&first).revision_number, id(&changed).revision_number);
        assert!(id(&first).revision_number >= 1);
    }

    #[test]
    fn output_is_ordered_by_source_then_debian_version() {
        let list = [
            binary("z", "amd64", "z", "1.10", 1),
            binary("z", "amd64", "z", "1.9", 2),
            binary("z", "amd64", "z", "1.10~rc1", 3),
            binary("a", "amd64", "a", "2", 4),
            binary("bad", "amd64", "bad", "not a version!", 5),
        ];
        let lists = [OfferedList {
            pocket: STABLE,
            packages: &list,
        }];
        let installed = [
            installed("z", "z", "1.9"),
            installed("a", "a", "1"),
            installed("bad", "bad", "1"),
        ];
        let titles: Vec<_> = map_updates(&lists, &installed)
            .into_iter()
            .map(|r| r.update.title)
            .collect();
        assert_eq!(titles, ["a 2", "z 1.9", "z 1.10~rc1", "z 1.10"]);
        let revisions = map_updates(&lists, &installed);
        assert_eq!(revisions[3].update.superseded_update_ids.len(), 2);
    }

    #[test]
    fn descriptions_are_bounded() {
        let names: Vec<String> = (0..30).map(|n| format!("bin{n:02}")).collect();
        let list: Vec<_> = names
            .iter()
            .map(|name| binary(name, "amd64", "big", "1", 1))
            .collect();
        let lists = [OfferedList {
            pocket: STABLE,
            packages: &list,
        }];
        let revisions = map_updates(&lists, &[installed("bin00", "big", "1")]);
        let description = &revisions[0].update.description;
        assert_eq!(description.lines().count(), DESCRIBED_BINARIES + 1);
        assert!(description.ends_with("… and 18 more binary packages"));
    }
}
