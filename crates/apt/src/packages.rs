//! Binary package paragraphs: a repository's `Packages` index, and dpkg's
//! `status` database.

use openwua_model::update::Sha256Digest;

use crate::deb822::{self, FormatError, Paragraph};

/// One binary package a `Packages` index offers, borrowed from the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryPackage<'a> {
    /// `Package`.
    pub name: &'a str,
    /// `Architecture` (`amd64`, `all`).
    pub architecture: &'a str,
    /// `Version`.
    pub version: &'a str,
    /// The source package: `Source`'s name, or the package's own name.
    pub source: &'a str,
    /// The source version: `Source`'s `(version)`, or the package's version.
    pub source_version: &'a str,
    /// `Size` of the `.deb`.
    pub size: u64,
    /// `SHA256` of the `.deb`.
    pub sha256: Sha256Digest,
    /// `Filename`: the `.deb`'s path under the repository's root
    /// (`pool/main/h/hello/hello_2.10-3_amd64.deb`), empty when absent.
    /// Not checked here: whoever fetches it must.
    pub filename: &'a str,
    /// The first line of `Description` (the synopsis).
    pub synopsis: &'a str,
    /// It depends (`Depends` or `Pre-Depends`) on `debconf` or
    /// `debconf-2.0`, so installing it may ask questions.
    pub uses_debconf: bool,
}

/// `Source: name (version)` split; the version is absent when it equals the
/// binary's.
fn split_source<'a>(
    field: Option<&'a str>,
    name: &'a str,
    version: &'a str,
) -> Result<(&'a str, &'a str), String> {
    let Some(field) = field else {
        return Ok((name, version));
    };
    match field.split_once('(') {
        None => Ok((field.trim(), version)),
        Some((source, rest)) => {
            let Some(source_version) = rest.strip_suffix(')') else {
                return Err(format!("Source {field:?} is not `name (version)`"));
            };
            Ok((source.trim(), source_version.trim()))
        }
    }
}

fn required<'a>(paragraph: &Paragraph<'a>, name: &str) -> Result<&'a str, FormatError> {
    paragraph
        .first_line(name)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| FormatError::at(paragraph.line, format!("a package without {name}")))
}

/// Whether a relation field names `debconf` or `debconf-2.0` among its
/// alternatives.
fn mentions_debconf(relations: Option<&str>) -> bool {
    relations.is_some_and(|relations| {
        relations.contains("debconf")
            && relations
                .split([',', '|'])
                .filter_map(|relation| relation.split_whitespace().next())
                .map(|name| name.split_once(':').map_or(name, |(name, _)| name))
                .map(|name| name.split_once('(').map_or(name, |(name, _)| name))
                .any(|name| name == "debconf" || name == "debconf-2.0")
    })
}

/// Reads one `Packages` paragraph.
pub fn binary_package<'a>(paragraph: &Paragraph<'a>) -> Result<BinaryPackage<'a>, FormatError> {
    let name = required(paragraph, "Package")?;
    let architecture = required(paragraph, "Architecture")?;
    let version = required(paragraph, "Version")?;
    let (source, source_version) = split_source(paragraph.first_line("Source"), name, version)
        .map_err(|reason| FormatError::at(paragraph.line, reason))?;
    let size = required(paragraph, "Size")?
        .parse()
        .map_err(|_| FormatError::at(paragraph.line, format!("{name}: Size is not a number")))?;
    let sha256 = required(paragraph, "SHA256")?
        .parse()
        .map_err(|_| FormatError::at(paragraph.line, format!("{name}: SHA256 is not a digest")))?;
    Ok(BinaryPackage {
        name,
        architecture,
        version,
        source,
        source_version,
        size,
        sha256,
        filename: paragraph.first_line("Filename").unwrap_or(""),
        synopsis: paragraph.first_line("Description").unwrap_or(""),
        uses_debconf: mentions_debconf(paragraph.get("Pre-Depends"))
            || mentions_debconf(paragraph.get("Depends")),
    })
}

/// Every package of a `Packages` index.
pub fn parse_packages(text: &str) -> Result<Vec<BinaryPackage<'_>>, FormatError> {
    let mut packages = Vec::new();
    for paragraph in deb822::paragraphs(text) {
        packages.push(binary_package(&paragraph?)?);
    }
    Ok(packages)
}

/// Where dpkg is with a package (the third word of `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstalledState {
    /// `installed`: what `deb_installed` rules see.
    Installed,
    /// `triggers-pending`: installed, a trigger still to run.
    TriggersPending,
    /// `triggers-awaited`: installed, waiting for another package's trigger.
    TriggersAwaited,
    /// `half-configured`: configuring it failed or was interrupted.
    HalfConfigured,
    /// `unpacked`: unpacked, not configured.
    Unpacked,
    /// `half-installed`: unpacking it failed or was interrupted.
    HalfInstalled,
}

impl InstalledState {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "installed" => InstalledState::Installed,
            "triggers-pending" => InstalledState::TriggersPending,
            "triggers-awaited" => InstalledState::TriggersAwaited,
            "half-configured" => InstalledState::HalfConfigured,
            "unpacked" => InstalledState::Unpacked,
            "half-installed" => InstalledState::HalfInstalled,
            // not-installed, config-files: nothing of the package is there.
            _ => return None,
        })
    }
}

/// One package dpkg has (some of) on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    /// `Package`.
    pub name: String,
    /// `Architecture`.
    pub architecture: String,
    /// `Version`.
    pub version: String,
    /// The source package it was built from.
    pub source: String,
    /// The source's version.
    pub source_version: String,
    /// Where dpkg is with it.
    pub state: InstalledState,
}

/// The packages of dpkg's `status` file that are on the machine (fully or
/// partly): `config-files` and `not-installed` entries are left out.
pub fn parse_status(text: &str) -> Result<Vec<InstalledPackage>, FormatError> {
    let mut installed = Vec::new();
    for paragraph in deb822::paragraphs(text) {
        let paragraph = paragraph?;
        let status = required(&paragraph, "Status")?;
        let words: Vec<&str> = status.split_whitespace().collect();
        let [_want, _flag, state] = words[..] else {
            return Err(FormatError::at(
                paragraph.line,
                format!("Status {status:?} is not `want flag state`"),
            ));
        };
        let Some(state) = InstalledState::from_word(state) else {
            continue;
        };
        let name = required(&paragraph, "Package")?;
        let version = required(&paragraph, "Version")?;
        let (source, source_version) = split_source(paragraph.first_line("Source"), name, version)
            .map_err(|reason| FormatError::at(paragraph.line, reason))?;
        installed.push(InstalledPackage {
            name: name.to_owned(),
            architecture: required(&paragraph, "Architecture")?.to_owned(),
            version: version.to_owned(),
            source: source.to_owned(),
            source_version: source_version.to_owned(),
            state,
        });
    }
    Ok(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f";

    #[test]
    fn packages_with_and_without_source() {
        let text = format!(
            "Package: libssl3\nSource: openssl (3.0.15-1~deb12u1)\nVersion: 3.0.15-1~deb12u1+b1\n\
             Architecture: amd64\nPre-Depends: libc6 (>= 2.34)\nDepends: debconf (>= 0.5) | debconf-2.0\n\
             Size: 2030104\nSHA256: {DIGEST}\nDescription: Secure Sockets Layer toolkit\n long text\n\n\
             Package: openssl\nSource: openssl\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\n\
             Depends: libdebconfclient0, debconf-utils\nSize: 1\nSHA256: {DIGEST}\n\n\
             Package: tzdata\nVersion: 2025b-0+deb12u1\nArchitecture: all\nPre-Depends: debconf:any\n\
             Size: 2\nSHA256: {DIGEST}\n"
        );
        let packages = parse_packages(&text).unwrap();
        assert_eq!(packages.len(), 3);
        assert_eq!(packages[0].source, "openssl");
        assert_eq!(packages[0].source_version, "3.0.15-1~deb12u1");
        assert_eq!(packages[0].version, "3.0.15-1~deb12u1+b1");
        assert_eq!(packages[0].synopsis, "Secure Sockets Layer toolkit");
        assert!(packages[0].uses_debconf);
        assert_eq!(packages[1].source_version, "3.0.15-1~deb12u1");
        assert!(
            !packages[1].uses_debconf,
            "libdebconfclient0 is not debconf"
        );
        assert_eq!(packages[2].source, "tzdata");
        assert_eq!(packages[2].source_version, "2025b-0+deb12u1");
        assert!(packages[2].uses_debconf);
        assert_eq!(packages[2].size, 2);
        assert_eq!(packages[2].sha256.to_string(), DIGEST);
    }

    #[test]
    fn incomplete_packages_are_refused() {
        for text in [
            "Package: a\nVersion: 1\nArchitecture: all\nSize: 1\n",
            &format!("Package: a\nVersion: 1\nArchitecture: all\nSize: x\nSHA256: {DIGEST}\n"),
            "Package: a\nVersion: 1\nArchitecture: all\nSize: 1\nSHA256: 00\n",
            &format!(
                "Package: a\nSource: b (1\nVersion: 1\nArchitecture: all\nSize: 1\nSHA256: {DIGEST}\n"
            ),
        ] {
            assert!(parse_packages(text).is_err(), "{text}");
        }
    }

    #[test]
    fn status_keeps_packages_on_the_machine_with_their_state() {
        let text = "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b8\n\n\
                    Package: libssl3\nStatus: install ok half-configured\nArchitecture: amd64\n\
                    Source: openssl (3.0.11-1~deb12u2)\nVersion: 3.0.11-1~deb12u2+b1\n\n\
                    Package: old\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\n\
                    Package: gone\nStatus: purge ok not-installed\nArchitecture: amd64\n\n\
                    Package: u\nStatus: install reinstreq unpacked\nArchitecture: all\nSource: usrc\nVersion: 2\n";
        let installed = parse_status(text).unwrap();
        let summary: Vec<_> = installed
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.source.as_str(),
                    p.source_version.as_str(),
                    p.state,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("bash", "bash", "5.2.15-2+b8", InstalledState::Installed),
                (
                    "libssl3",
                    "openssl",
                    "3.0.11-1~deb12u2",
                    InstalledState::HalfConfigured
                ),
                ("u", "usrc", "2", InstalledState::Unpacked),
            ]
        );
        assert!(parse_status("Package: a\nStatus: broken\n").is_err());
    }
}
