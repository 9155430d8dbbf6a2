//! Automatic approval rules: what a rule matches ([`ApprovalRule`]), the
//! approvals it gives ([`approvals_for`]), and the admin API that keeps
//! and runs them.
//!
//! A rule matches an update's classification, product, MSRC severity, and
//! glob patterns on its title and source (the `Product` category, which for
//! a Debian update is the source package); every criterion it names must
//! hold. It approves the update for its groups, with a deadline offset from
//! the moment it fires. Rules fire inside the store's publish transaction
//! (`store::Store::publish`, the one path every revision takes, whatever
//! its source), for new updates and, unless a rule says not to, for new
//! revisions of known ones. A rule never replaces a group's own approval:
//! an administrator's decision, or an earlier rule's, stands.

use jiff::{SignedDuration, Timestamp};
use openwua_model::update::{MsrcSeverity, Update};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::fleet::{Approval, ApprovalAction, check_group_name};

/// The most rules a server keeps.
pub const MAX_RULES: usize = 256;
/// The most names one criterion of a rule lists, and groups it approves for.
pub const MAX_RULE_LIST: usize = 64;
/// The longest rule name, pattern or listed name, in characters.
pub const MAX_RULE_TEXT_CHARS: usize = 256;
/// The longest deadline offset: one year, in hours.
pub const MAX_DEADLINE_OFFSET_HOURS: u32 = 366 * 24;

/// One automatic approval rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRule {
    /// Its name, unique on the server.
    pub name: String,
    /// Classification names (`Security Updates`), any of which matches;
    /// empty: any classification.
    #[serde(default)]
    pub classifications: Vec<String>,
    /// Product names (categories of type `Product`, `ProductFamily` or
    /// `Company`: `bookworm`, `Debian`), any of which matches; empty: any.
    #[serde(default)]
    pub products: Vec<String>,
    /// MSRC severities, any of which matches; empty: any, unrated included.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub severities: Vec<MsrcSeverity>,
    /// A glob (`*`, `?`; case-insensitive) the title must match.
    #[serde(default)]
    pub title_pattern: Option<String>,
    /// A glob one of the update's `Product` categories (a Debian update's
    /// source package) must match.
    #[serde(default)]
    pub source_pattern: Option<String>,
    /// The groups it approves for (1 to 64).
    pub groups: Vec<String>,
    /// `install` or `uninstall`.
    pub action: ApprovalAction,
    /// The deadline, in hours after the rule approves; none when absent.
    #[serde(default)]
    pub deadline_offset_hours: Option<u32>,
    /// Whether a new revision of a known update is evaluated too (a revision
    /// that now matches is approved); new updates always are.
    #[serde(default = "yes")]
    pub new_revisions: bool,
    /// A disabled rule fires at no publish; it can still be run by hand.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl ApprovalRule {
    /// Checks every bound; the error says what to change.
    pub fn check(&self) -> Result<(), String> {
        let text = |what: &str, value: &str| {
            let chars = value.chars().count();
            if chars == 0 || chars > MAX_RULE_TEXT_CHARS || value.chars().any(char::is_control) {
                Err(format!(
                    "{what} has 1 to {MAX_RULE_TEXT_CHARS} characters and no control characters"
                ))
            } else {
                Ok(())
            }
        };
        text("a rule name", &self.name)?;
        if self.name.contains('/') {
            return Err("a rule name has no '/'".into());
        }
        for (what, list) in [
            ("classifications", &self.classifications),
            ("products", &self.products),
        ] {
            if list.len() > MAX_RULE_LIST {
                return Err(format!("{what} lists at most {MAX_RULE_LIST} names"));
            }
            for name in list {
                text(what, name)?;
            }
        }
        if self.severities.len() > MAX_RULE_LIST {
            return Err(format!("severities lists at most {MAX_RULE_LIST}"));
        }
        for pattern in [&self.title_pattern, &self.source_pattern]
            .into_iter()
            .flatten()
        {
            text("a pattern", pattern)?;
        }
        if self.groups.is_empty() || self.groups.len() > MAX_RULE_LIST {
            return Err(format!(
                "a rule approves for 1 to {MAX_RULE_LIST} groups (--group)"
            ));
        }
        for group in &self.groups {
            check_group_name(group)?;
        }
        if self.action == ApprovalAction::NotApproved {
            return Err("a rule's action is install or uninstall".into());
        }
        if self
            .deadline_offset_hours
            .is_some_and(|hours| hours > MAX_DEADLINE_OFFSET_HOURS)
        {
            return Err(format!(
                "a deadline offset is at most {MAX_DEADLINE_OFFSET_HOURS} hours"
            ));
        }
        Ok(())
    }

    /// Whether `facts` meet every criterion this rule names.
    pub fn matches(&self, facts: &RuleFacts) -> bool {
        let any_named = |wanted: &[String], have: &[String]| {
            wanted.is_empty()
                || wanted
                    .iter()
                    .any(|name| have.iter().any(|had| had.eq_ignore_ascii_case(name)))
        };
        any_named(&self.classifications, &facts.classifications)
            && any_named(&self.products, &facts.products)
            && (self.severities.is_empty()
                || facts
                    .severity
                    .is_some_and(|severity| self.severities.contains(&severity)))
            && self
                .title_pattern
                .as_deref()
                .is_none_or(|pattern| glob_matches(pattern, &facts.title))
            && self.source_pattern.as_deref().is_none_or(|pattern| {
                facts
                    .sources
                    .iter()
                    .any(|source| glob_matches(pattern, source))
            })
    }

    /// The approvals this rule gives an update it matches, fired `now`.
    pub fn approvals(&self, update_id: Uuid, now: Timestamp) -> Vec<Approval> {
        let deadline = self
            .deadline_offset_hours
            .map(|hours| now + SignedDuration::from_hours(i64::from(hours)));
        self.groups
            .iter()
            .map(|group| Approval {
                update_id,
                group: group.clone(),
                action: self.action,
                deadline,
            })
            .collect()
    }
}

/// What rules look at in a revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFacts {
    /// The title.
    pub title: String,
    /// The `UpdateClassification` categories' names.
    pub classifications: Vec<String>,
    /// The `Product`, `ProductFamily` and `Company` categories' names.
    pub products: Vec<String>,
    /// The `Product` categories' names (a Debian update's source package).
    pub sources: Vec<String>,
    /// `MsrcSeverity`.
    pub severity: Option<MsrcSeverity>,
}

/// The part of a stored revision's JSON rules read; the rest is skipped,
/// which keeps running rules over a large catalog cheap.
#[derive(Deserialize)]
struct StoredFacts {
    update: StoredUpdateFacts,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredUpdateFacts {
    title: String,
    #[serde(default)]
    categories: Vec<StoredCategory>,
    #[serde(default)]
    msrc_severity: Option<MsrcSeverity>,
}

#[derive(Deserialize)]
struct StoredCategory {
    name: String,
    #[serde(rename = "type")]
    category_type: String,
}

impl RuleFacts {
    /// The facts of an update being published.
    pub fn of(update: &Update) -> Self {
        Self::from_parts(
            update.title.clone(),
            update
                .categories
                .iter()
                .map(|category| (category.name.as_str(), category.category_type.as_str())),
            update.msrc_severity,
        )
    }

    /// The facts of a stored revision's JSON.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let stored: StoredFacts = serde_json::from_str(json)?;
        let update = stored.update;
        Ok(Self::from_parts(
            update.title,
            update
                .categories
                .iter()
                .map(|category| (category.name.as_str(), category.category_type.as_str())),
            update.msrc_severity,
        ))
    }

    fn from_parts<'a>(
        title: String,
        categories: impl Iterator<Item = (&'a str, &'a str)>,
        severity: Option<MsrcSeverity>,
    ) -> Self {
        let mut facts = RuleFacts {
            title,
            severity,
            ..RuleFacts::default()
        };
        for (name, kind) in categories {
            match kind {
                "UpdateClassification" => facts.classifications.push(name.to_owned()),
                "Product" => {
                    facts.products.push(name.to_owned());
                    facts.sources.push(name.to_owned());
                }
                "ProductFamily" | "Company" => facts.products.push(name.to_owned()),
                _ => {}
            }
        }
        facts
    }
}

/// Whether `text` matches `pattern`, where `*` is any run of characters and
/// `?` any one, ignoring ASCII case. The two-pointer walk with one
/// backtrack point: no recursion, at worst pattern × text steps (a pattern
/// is at most 256 characters).
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let text: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The approvals `rules` give one published revision: `is_new` is true for
/// an update not known before (else a new revision of a known one, which
/// only rules with `new_revisions` evaluate). Disabled rules give none.
pub fn approvals_for(
    rules: &[ApprovalRule],
    update: &Update,
    is_new: bool,
    now: Timestamp,
) -> Vec<(String, Approval)> {
    let facts = RuleFacts::of(update);
    let mut out = Vec::new();
    for rule in rules {
        if rule.enabled && (is_new || rule.new_revisions) && rule.matches(&facts) {
            for approval in rule.approvals(update.identity.update_id, now) {
                out.push((rule.name.clone(), approval));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> ApprovalRule {
        serde_json::from_value(serde_json::json!({
            "name": "critical security",
            "classifications": ["Security Updates"],
            "severities": ["Critical"],
            "groups": ["All Computers"],
            "action": "install",
            "deadlineOffsetHours": 72
        }))
        .unwrap()
    }

    fn facts(classification: &str, severity: Option<MsrcSeverity>) -> RuleFacts {
        RuleFacts {
            title: "OpenSSL 3.0.15 security update".into(),
            classifications: vec![classification.into()],
            products: vec!["bookworm".into(), "openssl".into()],
            sources: vec!["openssl".into()],
            severity,
        }
    }

    #[test]
    fn every_named_criterion_must_hold() {
        let mut rule = rule();
        assert!(rule.check().is_ok());
        assert!(rule.matches(&facts("security updates", Some(MsrcSeverity::Critical))));
        assert!(!rule.matches(&facts("Security Updates", Some(MsrcSeverity::Important))));
        assert!(!rule.matches(&facts("Security Updates", None)));
        assert!(!rule.matches(&facts("Updates", Some(MsrcSeverity::Critical))));
        rule.source_pattern = Some("open*".into());
        rule.title_pattern = Some("*3.0.1?*".into());
        rule.products = vec!["Bookworm".into()];
        assert!(rule.matches(&facts("Security Updates", Some(MsrcSeverity::Critical))));
        rule.source_pattern = Some("libxml*".into());
        assert!(!rule.matches(&facts("Security Updates", Some(MsrcSeverity::Critical))));
    }

    #[test]
    fn a_rule_with_no_criteria_matches_everything_and_bounds_are_checked() {
        let mut rule = rule();
        rule.classifications.clear();
        rule.severities.clear();
        assert!(rule.matches(&RuleFacts::default()));
        rule.groups.clear();
        assert!(rule.check().is_err());
        let mut rule = self::rule();
        rule.action = ApprovalAction::NotApproved;
        assert!(rule.check().is_err());
        let mut rule = self::rule();
        rule.name = "a/b".into();
        assert!(rule.check().is_err());
        let mut rule = self::rule();
        rule.deadline_offset_hours = Some(MAX_DEADLINE_OFFSET_HOURS + 1);
        assert!(rule.check().is_err());
    }

    #[test]
    fn globs_match_like_a_shell_without_blowing_up() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("open*", "OpenSSL"));
        assert!(glob_matches("*ss?", "openssl"));
        assert!(!glob_matches("*ss?", "openss"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxbyy"));
        assert!(!glob_matches("openssl", "openssl3"));
        assert!(!glob_matches("?", ""));
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(100));
        assert!(!glob_matches(&pattern, &text));
    }

    #[test]
    fn deadlines_are_offset_from_when_the_rule_fires() {
        let now: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let approvals = rule().approvals(Uuid::nil(), now);
        assert_eq!(
            approvals[0].deadline,
            Some("2027-01-04T00:00:00Z".parse().unwrap())
        );
    }
}
