//! TOML manifests: how update authors write revisions.
//!
//! A service directory holds `service.toml` and one subdirectory per
//! update, each with an `update.toml` and the payload files it names:
//!
//! ```text
//! sample-service/
//!   service.toml            service_id, name, content_url_base, [[categories]]
//!   openssl-3.0.15/
//!     update.toml           title, update_id, [applicability], [handler], files, …
//!     NEWS                  a payload file, listed in `files`
//!   shared/
//!     install.sh            a payload file several updates list
//! ```
//!
//! A name in `files` is looked up beside `update.toml` first, then in the
//! service's `shared/` directory, so one installer can serve many updates.
//!
//! [`load_service_dir`] reads them into [`Revision`]s, hashing every
//! payload file. Keys are snake_case; unknown keys are errors, and every
//! error names the file and the key. `docs/catalog.md` lists every key.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use openwua_model::enums::{
    DeploymentAction, InstallationImpact, InstallationRebootBehavior, UpdateType,
};
use openwua_model::update::{
    Category, DownloadContent, InstallationBehavior, MsrcSeverity, Update, UpdateIdentity,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::CatalogError;
use crate::package::HashingReader;
use crate::revision::{Applicability, ContentFile, Handler, Revision, Rule, check_file_name};

/// The service's manifest, at the top of a service directory.
pub const SERVICE_FILE: &str = "service.toml";
/// An update's manifest, in its own subdirectory.
pub const UPDATE_FILE: &str = "update.toml";
/// The service's subdirectory of payload files that any update may list;
/// it is not an update.
pub const SHARED_DIR: &str = "shared";
/// Where content files live relative to the service, unless
/// `content_url_base` says otherwise.
pub const DEFAULT_CONTENT_URL_BASE: &str = "content/";

/// A service directory, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthoredService {
    /// `service_id` from `service.toml`.
    pub service_id: Uuid,
    /// `name` from `service.toml`.
    pub service_name: String,
    /// One revision per update directory, in directory-name order.
    pub revisions: Vec<Revision>,
    /// Every distinct content file (by digest) and the file it was read from.
    pub payloads: Vec<(ContentFile, PathBuf)>,
}

/// `service.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceManifest {
    service_id: Uuid,
    name: String,
    #[serde(default)]
    content_url_base: Option<String>,
    #[serde(default)]
    categories: Vec<CategoryManifest>,
}

/// One `[[categories]]` entry of `service.toml`: a product, a product
/// family or a company that updates name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryManifest {
    id: Uuid,
    name: String,
    #[serde(rename = "type")]
    category_type: CategoryType,
    /// Another category's name.
    #[serde(default)]
    parent: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum CategoryType {
    Company,
    ProductFamily,
    Product,
}

impl CategoryType {
    fn wua_name(self) -> &'static str {
        match self {
            CategoryType::Company => "Company",
            CategoryType::ProductFamily => "ProductFamily",
            CategoryType::Product => "Product",
        }
    }
}

/// `update.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateManifest {
    update_id: Uuid,
    #[serde(default = "first_revision")]
    revision: i32,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "type")]
    update_type: TypeSpelling,
    #[serde(default)]
    classification: Option<Classification>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    kb_article_ids: Vec<String>,
    #[serde(default)]
    msrc_severity: Option<SeveritySpelling>,
    #[serde(default)]
    cve_ids: Vec<String>,
    #[serde(default)]
    security_bulletin_ids: Vec<String>,
    #[serde(default)]
    support_url: Option<String>,
    #[serde(default)]
    release_notes: Option<String>,
    #[serde(default)]
    deployment_action: ActionSpelling,
    #[serde(default)]
    deadline: Option<toml::value::Datetime>,
    #[serde(default)]
    is_mandatory: bool,
    #[serde(default)]
    browse_only: bool,
    #[serde(default)]
    hidden_by_default: bool,
    #[serde(default)]
    auto_select_on_web_sites: bool,
    #[serde(default)]
    supersedes: Vec<Uuid>,
    #[serde(default)]
    bundled: Vec<Uuid>,
    #[serde(default)]
    can_request_user_input: bool,
    #[serde(default)]
    impact: ImpactSpelling,
    #[serde(default)]
    reboot_behavior: RebootSpelling,
    #[serde(default)]
    requires_network_connectivity: bool,
    #[serde(default)]
    uninstallation: Option<BehaviorManifest>,
    #[serde(default)]
    eula: Option<String>,
    #[serde(default)]
    eula_file: Option<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    applicability: Applicability,
    handler: Handler,
}

fn first_revision() -> i32 {
    1
}

/// `[uninstallation]`: the same behaviour keys that the top level of
/// `update.toml` has for installing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BehaviorManifest {
    #[serde(default)]
    can_request_user_input: bool,
    #[serde(default)]
    impact: ImpactSpelling,
    #[serde(default)]
    reboot_behavior: RebootSpelling,
    #[serde(default)]
    requires_network_connectivity: bool,
}

impl From<&BehaviorManifest> for InstallationBehavior {
    fn from(manifest: &BehaviorManifest) -> Self {
        InstallationBehavior {
            can_request_user_input: manifest.can_request_user_input,
            impact: manifest.impact.into(),
            reboot_behavior: manifest.reboot_behavior.into(),
            requires_network_connectivity: manifest.requires_network_connectivity,
        }
    }
}

// The snake_case spellings of WUA's enumerations that manifests use, each
// with the model's value it stands for.

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
enum TypeSpelling {
    #[default]
    Software,
    Driver,
}

impl From<TypeSpelling> for UpdateType {
    fn from(spelling: TypeSpelling) -> Self {
        match spelling {
            TypeSpelling::Software => UpdateType::Software,
            TypeSpelling::Driver => UpdateType::Driver,
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum SeveritySpelling {
    Critical,
    Important,
    Moderate,
    Low,
}

impl From<SeveritySpelling> for MsrcSeverity {
    fn from(spelling: SeveritySpelling) -> Self {
        match spelling {
            SeveritySpelling::Critical => MsrcSeverity::Critical,
            SeveritySpelling::Important => MsrcSeverity::Important,
            SeveritySpelling::Moderate => MsrcSeverity::Moderate,
            SeveritySpelling::Low => MsrcSeverity::Low,
        }
    }
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
enum ActionSpelling {
    None,
    #[default]
    Installation,
    Uninstallation,
    Detection,
    OptionalInstallation,
}

impl From<ActionSpelling> for DeploymentAction {
    fn from(spelling: ActionSpelling) -> Self {
        match spelling {
            ActionSpelling::None => DeploymentAction::None,
            ActionSpelling::Installation => DeploymentAction::Installation,
            ActionSpelling::Uninstallation => DeploymentAction::Uninstallation,
            ActionSpelling::Detection => DeploymentAction::Detection,
            ActionSpelling::OptionalInstallation => DeploymentAction::OptionalInstallation,
        }
    }
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
enum ImpactSpelling {
    #[default]
    Normal,
    Minor,
    RequiresExclusiveHandling,
}

impl From<ImpactSpelling> for InstallationImpact {
    fn from(spelling: ImpactSpelling) -> Self {
        match spelling {
            ImpactSpelling::Normal => InstallationImpact::Normal,
            ImpactSpelling::Minor => InstallationImpact::Minor,
            ImpactSpelling::RequiresExclusiveHandling => {
                InstallationImpact::RequiresExclusiveHandling
            }
        }
    }
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
enum RebootSpelling {
    #[default]
    NeverReboots,
    AlwaysRequiresReboot,
    CanRequestReboot,
}

impl From<RebootSpelling> for InstallationRebootBehavior {
    fn from(spelling: RebootSpelling) -> Self {
        match spelling {
            RebootSpelling::NeverReboots => InstallationRebootBehavior::NeverReboots,
            RebootSpelling::AlwaysRequiresReboot => {
                InstallationRebootBehavior::AlwaysRequiresReboot
            }
            RebootSpelling::CanRequestReboot => InstallationRebootBehavior::CanRequestReboot,
        }
    }
}

/// WSUS's update classifications, with their well-known category GUIDs.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Classification {
    Applications,
    Connectors,
    CriticalUpdates,
    DefinitionUpdates,
    DeveloperKits,
    Drivers,
    FeaturePacks,
    Guidance,
    SecurityUpdates,
    ServicePacks,
    Tools,
    UpdateRollups,
    Updates,
    Upgrades,
}

impl Classification {
    fn category(self) -> Category {
        let (id, name) = match self {
            Classification::Applications => {
                (0x5c9376ab_8ce6_464a_b136_22113dd69801, "Applications")
            }
            Classification::Connectors => (0x434de588_ed14_48f5_8eed_a15e09a991f6, "Connectors"),
            Classification::CriticalUpdates => {
                (0xe6cf1350_c01b_414d_a61f_263d14d133b4, "Critical Updates")
            }
            Classification::DefinitionUpdates => {
                (0xe0789628_ce08_4437_be74_2495b842f43b, "Definition Updates")
            }
            Classification::DeveloperKits => {
                (0xe140075d_8433_45c3_ad87_e72345b36078, "Developer Kits")
            }
            Classification::Drivers => (0xebfc1fc5_71a4_4f7b_9aca_3b9a503104a0, "Drivers"),
            Classification::FeaturePacks => {
                (0xb54e7d24_7add_428f_8b75_90a396fa584f, "Feature Packs")
            }
            Classification::Guidance => (0x9511d615_35b2_47bb_927f_f73d8e9260bb, "Guidance"),
            Classification::SecurityUpdates => {
                (0x0fa1201d_4330_4fa8_8ae9_b877473b6441, "Security Updates")
            }
            Classification::ServicePacks => {
                (0x68c5b0a3_d1a6_4553_ae49_01d3a7827828, "Service Packs")
            }
            Classification::Tools => (0xb4832bd8_e735_4761_8daf_37f882276dab, "Tools"),
            Classification::UpdateRollups => {
                (0x28bc880e_0592_4cbf_8f95_c79b17911d5f, "Update Rollups")
            }
            Classification::Updates => (0xcd5ffd1e_e932_4e3a_bf74_18bf0b1bbd83, "Updates"),
            Classification::Upgrades => (0x3689bdc8_b205_4af4_8d4a_a63924c5e9d5, "Upgrades"),
        };
        Category {
            id: Uuid::from_u128(id),
            name: name.into(),
            category_type: "UpdateClassification".into(),
            parent: None,
        }
    }
}

/// Reads the service directory `dir`: `service.toml`, then every
/// subdirectory's `update.toml` (`shared/` and subdirectories whose names
/// start with a dot are skipped), hashing the payload files each one lists.
pub fn load_service_dir(dir: &Path) -> Result<AuthoredService, CatalogError> {
    let service_path = dir.join(SERVICE_FILE);
    let service: ServiceManifest = read_toml(&service_path)?;
    if service.service_id.is_nil() {
        return Err(authoring(
            &service_path,
            "service_id",
            "must not be the nil UUID",
        ));
    }
    if service.name.trim().is_empty() {
        return Err(authoring(&service_path, "name", "must not be empty"));
    }
    let content_url_base = service
        .content_url_base
        .as_deref()
        .unwrap_or(DEFAULT_CONTENT_URL_BASE);
    if !content_url_base.ends_with('/') {
        return Err(authoring(
            &service_path,
            "content_url_base",
            "must end with `/`: a content file's URL is the base followed by its SHA-256",
        ));
    }
    let categories = Categories::new(&service_path, &service.categories)?;

    let mut manifests = Vec::new();
    for update_dir in update_dirs(dir)? {
        let path = update_dir.join(UPDATE_FILE);
        if !path.is_file() {
            return Err(CatalogError::Authoring(format!(
                "{}: every subdirectory of a service is an update and needs its {UPDATE_FILE}",
                update_dir.display()
            )));
        }
        let manifest: UpdateManifest = read_toml(&path)?;
        manifests.push((path, manifest));
    }

    let mut revisions_by_id: HashMap<Uuid, (i32, &Path)> = HashMap::new();
    for (path, manifest) in &manifests {
        if let Some((_, other)) =
            revisions_by_id.insert(manifest.update_id, (manifest.revision, path))
        {
            return Err(authoring(
                path,
                "update_id",
                format!(
                    "{} is also the update_id of {}",
                    manifest.update_id,
                    other.display()
                ),
            ));
        }
    }
    let revision_numbers: HashMap<Uuid, i32> = revisions_by_id
        .iter()
        .map(|(id, (revision, _))| (*id, *revision))
        .collect();
    for (key, edges) in [
        ("bundled", select(&manifests, |manifest| &manifest.bundled)),
        (
            "applicability.prerequisites",
            select(&manifests, |manifest| &manifest.applicability.prerequisites),
        ),
    ] {
        if let Some(update_id) = find_cycle(&edges) {
            let path = revisions_by_id
                .get(&update_id)
                .map_or(dir, |(_, path)| path);
            return Err(authoring(
                path,
                key,
                format!("update {update_id} depends on itself through {key}"),
            ));
        }
    }

    let context = Context {
        categories,
        revision_numbers,
        content_url_base,
    };
    let mut revisions = Vec::with_capacity(manifests.len());
    let mut payloads = Vec::new();
    let mut stored = HashSet::new();
    for (path, manifest) in manifests {
        let (revision, files) = context.revision(&path, manifest)?;
        for (content, source) in files {
            if stored.insert(content.sha256) {
                payloads.push((content, source));
            }
        }
        revisions.push(revision);
    }
    Ok(AuthoredService {
        service_id: service.service_id,
        service_name: service.name.trim().to_owned(),
        revisions,
        payloads,
    })
}

/// What every update of a service is checked against.
struct Context<'a> {
    categories: Categories,
    /// The revision number of every update in the directory.
    revision_numbers: HashMap<Uuid, i32>,
    content_url_base: &'a str,
}

impl Context<'_> {
    /// The revision an `update.toml` describes, with its payload files.
    fn revision(
        &self,
        path: &Path,
        manifest: UpdateManifest,
    ) -> Result<(Revision, Vec<(ContentFile, PathBuf)>), CatalogError> {
        let update_id = manifest.update_id;
        let error = |key: &str, message: String| authoring(path, key, message);
        if update_id.is_nil() {
            return Err(error("update_id", "must not be the nil UUID".into()));
        }
        if manifest.title.trim().is_empty() {
            return Err(error("title", "must not be empty".into()));
        }
        if manifest.revision < 1 {
            return Err(error(
                "revision",
                format!("must be 1 or more, not {}", manifest.revision),
            ));
        }
        let kb_article_ids = manifest
            .kb_article_ids
            .iter()
            .map(|id| {
                kb_article_id(id).ok_or_else(|| {
                    error(
                        "kb_article_ids",
                        format!("{id:?} is not a KB number (5034441 or KB5034441)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(id) = manifest.cve_ids.iter().find(|id| !is_cve_id(id)) {
            return Err(error(
                "cve_ids",
                format!("{id:?} is not a CVE ID (CVE-2024-12345)"),
            ));
        }
        let mut categories = Vec::new();
        if let Some(classification) = manifest.classification {
            categories.push(classification.category());
        }
        self.categories
            .resolve(&manifest.categories, &mut categories)
            .map_err(|message| error("categories", message))?;
        let deadline = manifest
            .deadline
            .map(|deadline| {
                deadline.to_string().parse::<Timestamp>().map_err(|why| {
                    error(
                        "deadline",
                        format!("{deadline} is not a date and time with an offset: {why}"),
                    )
                })
            })
            .transpose()?;
        if manifest.supersedes.contains(&update_id) {
            return Err(error(
                "supersedes",
                "an update cannot supersede itself".into(),
            ));
        }
        let bundled_updates = manifest
            .bundled
            .iter()
            .map(|bundled| {
                self.revision_numbers
                    .get(bundled)
                    .map(|&revision_number| UpdateIdentity {
                        update_id: *bundled,
                        revision_number,
                    })
                    .ok_or_else(|| {
                        error(
                            "bundled",
                            format!("{bundled} is not the update_id of an update in this service"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(missing) = manifest
            .applicability
            .prerequisites
            .iter()
            .find(|id| !self.revision_numbers.contains_key(id))
        {
            return Err(error(
                "applicability.prerequisites",
                format!("{missing} is not the update_id of an update in this service"),
            ));
        }
        for (key, rule) in [
            (
                "applicability.installable",
                &manifest.applicability.installable,
            ),
            ("applicability.installed", &manifest.applicability.installed),
        ] {
            if let Some(rule) = rule {
                check_rule(rule).map_err(|message| error(key, message))?;
            }
        }

        let update_dir = path.parent().unwrap_or(Path::new("."));
        let eula_text = match (manifest.eula, manifest.eula_file) {
            (Some(_), Some(_)) => {
                return Err(error(
                    "eula",
                    "give the licence inline (eula) or in a file (eula_file), not both".into(),
                ));
            }
            (Some(text), None) if text.trim().is_empty() => {
                return Err(error("eula", "must not be empty".into()));
            }
            (Some(text), None) => Some(text),
            (None, Some(name)) => {
                Some(read_eula(update_dir, &name).map_err(|message| error("eula_file", message))?)
            }
            (None, None) => None,
        };

        let files = self.payloads(update_dir, &manifest.files, &error)?;
        check_handler(&manifest.handler, &manifest.files)
            .map_err(|(key, message)| error(key, message))?;
        let uninstallation_behavior =
            match (&manifest.uninstallation, can_uninstall(&manifest.handler)) {
                (Some(behavior), true) => Some(behavior.into()),
                (None, true) => Some(InstallationBehavior::default()),
                (None, false) => None,
                (Some(_), false) => {
                    return Err(error(
                        "uninstallation",
                        "the handler cannot uninstall (give a command handler an `uninstall`, \
                     or a dpkg handler packages to `remove`)"
                            .into(),
                    ));
                }
            };

        let download_contents: Vec<DownloadContent> = files
            .iter()
            .map(|(content, _)| DownloadContent {
                file_name: content.file_name.clone(),
                size: content.size,
                sha256: content.sha256,
            })
            .collect();
        // No express or delta downloads: the least a download fetches is all of it.
        let total_size = files.iter().map(|(content, _)| content.size).sum();
        let update = Update {
            identity: UpdateIdentity {
                update_id,
                revision_number: manifest.revision,
            },
            title: manifest.title.trim().to_owned(),
            description: manifest.description.trim().to_owned(),
            kb_article_ids,
            categories,
            update_type: manifest.update_type.into(),
            msrc_severity: manifest.msrc_severity.map(Into::into),
            cve_ids: manifest.cve_ids,
            security_bulletin_ids: manifest.security_bulletin_ids,
            support_url: manifest.support_url,
            release_notes: manifest.release_notes,
            deployment_action: manifest.deployment_action.into(),
            deadline,
            is_mandatory: manifest.is_mandatory,
            browse_only: manifest.browse_only,
            auto_select_on_web_sites: manifest.auto_select_on_web_sites,
            superseded_update_ids: manifest.supersedes,
            bundled_updates,
            installation_behavior: InstallationBehavior {
                can_request_user_input: manifest.can_request_user_input,
                impact: manifest.impact.into(),
                reboot_behavior: manifest.reboot_behavior.into(),
                requires_network_connectivity: manifest.requires_network_connectivity,
            },
            uninstallation_behavior,
            eula_text,
            download_contents,
            min_download_size: total_size,
            max_download_size: total_size,
        };
        if manifest.hidden_by_default && manifest.is_mandatory {
            return Err(error(
                "hidden_by_default",
                "a mandatory update cannot be hidden (WUA refuses to hide one)".into(),
            ));
        }
        let revision = Revision {
            update,
            hidden_by_default: manifest.hidden_by_default,
            applicability: manifest.applicability,
            handler: manifest.handler,
            content: files.iter().map(|(content, _)| content.clone()).collect(),
        };
        Ok((revision, files))
    }

    /// Hashes the files an update lists, from its directory or `shared/`.
    fn payloads(
        &self,
        update_dir: &Path,
        names: &[String],
        error: &dyn Fn(&str, String) -> CatalogError,
    ) -> Result<Vec<(ContentFile, PathBuf)>, CatalogError> {
        let mut files = Vec::with_capacity(names.len());
        for (index, name) in names.iter().enumerate() {
            // Refused here, not when the package is written: the author
            // learns which file and key.
            check_file_name(name).map_err(|reason| error("files", reason))?;
            if names[..index].contains(name) {
                return Err(error("files", format!("{name:?} is listed twice")));
            }
            let beside = update_dir.join(name);
            let shared = update_dir.parent().map_or_else(
                || beside.clone(),
                |service| service.join(SHARED_DIR).join(name),
            );
            let Some(source) = [beside, shared.clone()]
                .into_iter()
                .find(|path| path.is_file())
            else {
                return Err(error(
                    "files",
                    format!(
                        "payload file {name:?} is neither beside update.toml nor {}",
                        shared.display()
                    ),
                ));
            };
            let (sha256, size) = hash_file(&source)?;
            let content = ContentFile {
                file_name: name.clone(),
                size,
                sha256,
                url: format!("{}{sha256}", self.content_url_base),
            };
            files.push((content, source));
        }
        Ok(files)
    }
}

/// The categories `service.toml` defines, by name.
struct Categories(HashMap<String, Category>);

impl Categories {
    fn new(path: &Path, manifests: &[CategoryManifest]) -> Result<Categories, CatalogError> {
        let mut by_name = HashMap::with_capacity(manifests.len());
        let mut ids = HashSet::with_capacity(manifests.len());
        for manifest in manifests {
            if !ids.insert(manifest.id) {
                return Err(authoring(
                    path,
                    "categories.id",
                    format!("{} is used twice", manifest.id),
                ));
            }
            let category = Category {
                id: manifest.id,
                name: manifest.name.clone(),
                category_type: manifest.category_type.wua_name().into(),
                parent: None,
            };
            if by_name.insert(manifest.name.clone(), category).is_some() {
                return Err(authoring(
                    path,
                    "categories.name",
                    format!("{:?} is used twice", manifest.name),
                ));
            }
        }
        for manifest in manifests {
            if let Some(parent) = &manifest.parent {
                let parent_id =
                    by_name
                        .get(parent)
                        .map(|category| category.id)
                        .ok_or_else(|| {
                            authoring(
                                path,
                                "categories.parent",
                                format!(
                                    "{parent:?} (parent of {:?}) is not a category name",
                                    manifest.name
                                ),
                            )
                        })?;
                if let Some(category) = by_name.get_mut(&manifest.name) {
                    category.parent = Some(parent_id);
                }
            }
        }
        let categories = Categories(by_name);
        for manifest in manifests {
            categories
                .resolve(std::slice::from_ref(&manifest.name), &mut Vec::new())
                .map_err(|message| authoring(path, "categories.parent", message))?;
        }
        Ok(categories)
    }

    /// Adds the named categories and their ancestors to `out`, once each,
    /// so that a search for a product family finds its products' updates.
    fn resolve(&self, names: &[String], out: &mut Vec<Category>) -> Result<(), String> {
        for name in names {
            let mut next = Some(self.0.get(name).ok_or_else(|| {
                format!("{name:?} is not one of the categories service.toml defines")
            })?);
            let mut steps = 0;
            while let Some(category) = next {
                steps += 1;
                if steps > self.0.len() {
                    return Err(format!("the parents of {name:?} form a loop"));
                }
                if !out.iter().any(|known| known.id == category.id) {
                    out.push(category.clone());
                }
                next = category
                    .parent
                    .and_then(|parent| self.0.values().find(|candidate| candidate.id == parent));
            }
        }
        Ok(())
    }
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CatalogError> {
    let text = fs::read_to_string(path).map_err(|error| {
        if error.kind() == io::ErrorKind::NotFound {
            CatalogError::Authoring(format!("{}: not found", path.display()))
        } else {
            CatalogError::io(format!("reading {}", path.display()), error)
        }
    })?;
    toml::from_str(&text)
        .map_err(|error| CatalogError::Authoring(format!("{}: {error}", path.display())))
}

/// The update directories of a service, in name order.
fn update_dirs(dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
    let context = || format!("listing {}", dir.display());
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|error| CatalogError::io(context(), error))? {
        let entry = entry.map_err(|error| CatalogError::io(context(), error))?;
        let name = entry.file_name();
        let skipped = name.to_string_lossy().starts_with('.') || name == SHARED_DIR;
        if !skipped && entry.path().is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn authoring(path: &Path, key: &str, message: impl std::fmt::Display) -> CatalogError {
    CatalogError::Authoring(format!("{}: {key}: {message}", path.display()))
}

/// For each update (in manifest order), the updates one of its keys names.
fn select(
    manifests: &[(PathBuf, UpdateManifest)],
    key: impl Fn(&UpdateManifest) -> &Vec<Uuid>,
) -> Vec<(Uuid, &[Uuid])> {
    manifests
        .iter()
        .map(|(_, manifest)| (manifest.update_id, key(manifest).as_slice()))
        .collect()
}

/// An update on a cycle of `edges`, if there is one.
fn find_cycle(edges: &[(Uuid, &[Uuid])]) -> Option<Uuid> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnPath,
        Done,
    }
    let children: HashMap<Uuid, &[Uuid]> = edges.iter().copied().collect();
    let mut marks = HashMap::with_capacity(edges.len());
    for &(start, _) in edges {
        if marks.contains_key(&start) {
            continue;
        }
        // An explicit stack: dependency chains can be long.
        marks.insert(start, Mark::OnPath);
        let mut path = vec![(start, 0)];
        while let Some(&(node, next)) = path.last() {
            let next_child = children.get(&node).and_then(|list| list.get(next));
            match next_child {
                Some(&child) => {
                    if let Some(top) = path.last_mut() {
                        top.1 += 1;
                    }
                    match marks.get(&child) {
                        Some(Mark::OnPath) => return Some(child),
                        Some(Mark::Done) => {}
                        None => {
                            marks.insert(child, Mark::OnPath);
                            path.push((child, 0));
                        }
                    }
                }
                None => {
                    marks.insert(node, Mark::Done);
                    path.pop();
                }
            }
        }
    }
    None
}

/// Checks what the rule types cannot: paths are absolute, names are not empty.
fn check_rule(rule: &Rule) -> Result<(), String> {
    match rule {
        Rule::All(rules) | Rule::Any(rules) => rules.iter().try_for_each(check_rule),
        Rule::Not(rule) => check_rule(rule),
        Rule::FileExists(path) | Rule::FileSha256 { path, .. } if !path.starts_with('/') => {
            Err(format!("{path:?} must be an absolute path"))
        }
        Rule::DebInstalled { package, .. }
            if package.is_empty() || package.contains(char::is_whitespace) =>
        {
            Err(format!("{package:?} is not a Debian package name"))
        }
        Rule::OsRelease { field, .. }
            if field.is_empty()
                || !field.bytes().all(|byte| {
                    byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_'
                }) =>
        {
            Err(format!(
                "{field:?} is not an os-release field name (ID, VERSION_ID, …)"
            ))
        }
        Rule::Architecture(architecture) if architecture.trim().is_empty() => {
            Err("the architecture must not be empty".into())
        }
        _ => Ok(()),
    }
}

/// Checks that a handler only uses files the update carries. The error
/// names the key at fault.
fn check_handler(handler: &Handler, files: &[String]) -> Result<(), (&'static str, String)> {
    let carried =
        |program: &str| program.starts_with('/') || files.iter().any(|file| file == program);
    match handler {
        Handler::Command {
            program,
            uninstall,
            exit_codes,
            timeout_seconds,
            ..
        } => {
            if program.is_empty() || !carried(program) {
                return Err((
                    "handler.program",
                    format!("{program:?} is neither an absolute path nor one of `files`"),
                ));
            }
            if let Some(uninstall) = uninstall {
                match uninstall.first() {
                    Some(program) if carried(program) => {}
                    Some(program) => {
                        return Err((
                            "handler.uninstall",
                            format!("{program:?} is neither an absolute path nor one of `files`"),
                        ));
                    }
                    None => {
                        return Err((
                            "handler.uninstall",
                            "is empty; give the program and its arguments".into(),
                        ));
                    }
                }
            }
            let codes = &exit_codes.codes;
            for (index, rule) in codes.iter().enumerate() {
                // A Linux exit status is 8 bits: a map entry for 3010 could
                // never match (a script's `exit 3010` ends with 194).
                if !(0..=255).contains(&rule.code) {
                    return Err((
                        "handler.exit_codes",
                        format!(
                            "exit code {} cannot happen: exit statuses are 0 to 255 \
                             (a program that exits {0} ends with {})",
                            rule.code,
                            rule.code.rem_euclid(256)
                        ),
                    ));
                }
                if codes[..index]
                    .iter()
                    .any(|earlier| earlier.code == rule.code)
                {
                    return Err((
                        "handler.exit_codes",
                        format!("exit code {} is mapped twice", rule.code),
                    ));
                }
            }
            if *timeout_seconds == Some(0) {
                return Err(("handler.timeout_seconds", "must be more than 0".into()));
            }
            Ok(())
        }
        Handler::Dpkg { .. } => {
            if files.iter().any(|file| file.ends_with(".deb")) {
                Ok(())
            } else {
                Err((
                    "files",
                    "a dpkg handler installs .deb files: list at least one".into(),
                ))
            }
        }
        Handler::Apt { .. } => Err((
            "handler.type",
            "apt updates come from the machine's repositories (`wua services add-apt`), \
             not from manifests"
                .into(),
        )),
        Handler::Files {
            root,
            files: placements,
        } => {
            if !root.starts_with('/') {
                return Err(("handler.root", format!("{root:?} must be an absolute path")));
            }
            for placement in placements {
                if !files.contains(&placement.source) {
                    return Err((
                        "handler.files.source",
                        format!("{:?} is not one of `files`", placement.source),
                    ));
                }
                let target = Path::new(&placement.target);
                if placement.target.is_empty()
                    || !target
                        .components()
                        .all(|component| matches!(component, std::path::Component::Normal(_)))
                {
                    return Err((
                        "handler.files.target",
                        format!(
                            "{:?} must be a relative path without `..`",
                            placement.target
                        ),
                    ));
                }
                if let Some(mode) = &placement.mode
                    && !u32::from_str_radix(mode, 8).is_ok_and(|bits| bits <= 0o7777)
                {
                    return Err((
                        "handler.files.mode",
                        format!("{mode:?} is not permission bits in octal (\"0644\")"),
                    ));
                }
            }
            Ok(())
        }
    }
}

fn can_uninstall(handler: &Handler) -> bool {
    match handler {
        Handler::Command { uninstall, .. } => uninstall.is_some(),
        Handler::Dpkg { remove } => !remove.is_empty(),
        Handler::Files { .. } => true,
        Handler::Apt { .. } => false,
    }
}

fn read_eula(update_dir: &Path, name: &str) -> Result<String, String> {
    check_file_name(name)?;
    let path = update_dir.join(name);
    let text = fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    if text.trim().is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text)
}

fn hash_file(path: &Path) -> Result<(openwua_model::update::Sha256Digest, u64), CatalogError> {
    let context = || format!("reading payload {}", path.display());
    let file = File::open(path).map_err(|error| CatalogError::io(context(), error))?;
    let mut reader = HashingReader::new(io::BufReader::new(file));
    io::copy(&mut reader, &mut io::sink()).map_err(|error| CatalogError::io(context(), error))?;
    Ok(reader.finish())
}

/// The number of a KB article, written with or without its `KB` prefix.
fn kb_article_id(id: &str) -> Option<String> {
    let digits = id
        .strip_prefix("KB")
        .or_else(|| id.strip_prefix("kb"))
        .unwrap_or(id);
    (!digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
        .then(|| digits.to_owned())
}

/// `CVE-<year>-<at least four digits>`.
fn is_cve_id(id: &str) -> bool {
    let all_digits = |text: &str| text.bytes().all(|byte| byte.is_ascii_digit());
    match id
        .strip_prefix("CVE-")
        .and_then(|rest| rest.split_once('-'))
    {
        Some((year, number)) => {
            year.len() == 4 && all_digits(year) && number.len() >= 4 && all_digits(number)
        }
        None => false,
    }
}
