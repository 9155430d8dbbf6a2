//! apt's sources: `sources.list` one-line entries and deb822 `.sources`.
//!
//! Only `deb` entries count (`deb-src` lists source packages, which are not
//! updates). Read from `<root>/etc/apt/sources.list` and, in name order,
//! `<root>/etc/apt/sources.list.d/*.list` and `*.sources`; apt ignores
//! every other name there (`*.disabled`, `*.save`, editors' backups), and
//! names with characters other than letters, digits, `_`, `-` and `.`.

use std::path::{Path, PathBuf};

use crate::deb822::{self, FormatError};

/// The largest sources file read (real ones are a few hundred bytes).
pub const MAX_SOURCES_FILE_BYTES: u64 = 1 << 20;
/// The most entries all sources files may give together.
pub const MAX_ENTRIES: usize = 10_000;

/// One repository suite apt fetches binary package lists for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// The file the entry is in.
    pub file: PathBuf,
    /// The repository's URI, ending in `/` (apt adds it when missing).
    pub uri: String,
    /// The suite (`bookworm`), or a flat repository's path ending in `/`.
    pub suite: String,
    /// The components (`main contrib`); empty for a flat repository.
    pub components: Vec<String>,
    /// `arch=` / `Architectures:`, when the entry restricts them.
    pub architectures: Vec<String>,
    /// `signed-by=` / `Signed-By:` (a key file, or an inline key).
    pub signed_by: Option<String>,
    /// `trusted=yes|no` / `Trusted:`.
    pub trusted: Option<bool>,
}

impl SourceEntry {
    /// A flat repository: its suite is a path ending in `/`, with no
    /// `dists/` and no components.
    pub fn is_flat(&self) -> bool {
        self.suite.ends_with('/')
    }
}

/// Whether apt reads a file of this name in `sources.list.d`.
pub fn is_sources_file_name(name: &str) -> bool {
    let allowed = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    allowed && (name.ends_with(".list") || name.ends_with(".sources"))
}

/// Parses a one-line-style file (`sources.list`, `*.list`).
pub fn parse_one_line(file: &Path, text: &str) -> Result<Vec<SourceEntry>, FormatError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (kind, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        match kind {
            "deb" => {}
            "deb-src" => continue,
            other => {
                return Err(FormatError::at(
                    number,
                    format!("unknown type {other:?} (deb or deb-src)"),
                ));
            }
        }
        let mut options = Vec::new();
        let rest = if let Some(bracketed) = rest.strip_prefix('[') {
            let Some((inside, after)) = bracketed.split_once(']') else {
                return Err(FormatError::at(
                    number,
                    "an option list `[` without its `]`",
                ));
            };
            options.extend(inside.split_whitespace());
            after
        } else {
            rest
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            return Err(FormatError::at(
                number,
                "expected `deb [options] uri suite [component…]`",
            ));
        };
        let mut entry = SourceEntry {
            file: file.to_owned(),
            uri: with_slash(uri),
            suite: suite.to_owned(),
            components: words.map(str::to_owned).collect(),
            architectures: Vec::new(),
            signed_by: None,
            trusted: None,
        };
        for option in options {
            let Some((key, value)) = option.split_once('=') else {
                return Err(FormatError::at(
                    number,
                    format!("option {option:?} is not key=value"),
                ));
            };
            match key {
                "arch" => entry.architectures = value.split(',').map(str::to_owned).collect(),
                "signed-by" => entry.signed_by = Some(value.to_owned()),
                "trusted" => entry.trusted = Some(yes(value)),
                // Other options (lang=, target=, arch+=, …) change nothing
                // about which binary lists exist.
                _ => {}
            }
        }
        check_entry(&entry, number)?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Parses a deb822-style `.sources` file: each paragraph gives an entry
/// for every URI × suite, unless it says `Enabled: no`.
pub fn parse_deb822(file: &Path, text: &str) -> Result<Vec<SourceEntry>, FormatError> {
    let mut entries = Vec::new();
    for paragraph in deb822::paragraphs(text) {
        let paragraph = paragraph?;
        let list = |name: &str| -> Vec<String> {
            paragraph
                .get(name)
                .map(|value| value.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        if paragraph
            .first_line("Enabled")
            .is_some_and(|value| !yes(value))
        {
            continue;
        }
        let types = list("Types");
        if types.is_empty() {
            return Err(FormatError::at(paragraph.line, "an entry without Types"));
        }
        if !types.iter().any(|kind| kind == "deb") {
            continue;
        }
        let uris = list("URIs");
        let suites = list("Suites");
        if uris.is_empty() || suites.is_empty() {
            return Err(FormatError::at(
                paragraph.line,
                "an entry without URIs or Suites",
            ));
        }
        for uri in &uris {
            for suite in &suites {
                let entry = SourceEntry {
                    file: file.to_owned(),
                    uri: with_slash(uri),
                    suite: suite.clone(),
                    components: list("Components"),
                    architectures: list("Architectures"),
                    signed_by: paragraph.get("Signed-By").map(str::to_owned),
                    trusted: paragraph.first_line("Trusted").map(yes),
                };
                check_entry(&entry, paragraph.line)?;
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

/// apt's rule: a flat repository has no components, any other suite has
/// at least one.
fn check_entry(entry: &SourceEntry, line: usize) -> Result<(), FormatError> {
    if entry.is_flat() && !entry.components.is_empty() {
        return Err(FormatError::at(
            line,
            format!(
                "suite {:?} is a flat repository's path, which takes no components",
                entry.suite
            ),
        ));
    }
    if !entry.is_flat() && entry.components.is_empty() {
        return Err(FormatError::at(
            line,
            format!("suite {:?} without a component", entry.suite),
        ));
    }
    Ok(())
}

fn yes(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "yes" | "true" | "with" | "on" | "enable"
    )
}

fn with_slash(uri: &str) -> String {
    if uri.ends_with('/') {
        uri.to_owned()
    } else {
        format!("{uri}/")
    }
}

/// Why the sources could not be read.
#[derive(Debug)]
pub enum SourcesError {
    /// A file could not be read.
    Io(PathBuf, std::io::Error),
    /// A file is not in the format its name says.
    Format(PathBuf, FormatError),
}

/// Every `deb` entry of the sources under `root` (`/` for the machine's
/// own), in apt's order. A missing `sources.list` or `sources.list.d` is
/// not an error (apt treats it as empty).
pub fn read_sources(root: &Path) -> Result<Vec<SourceEntry>, SourcesError> {
    let apt = root.join("etc/apt");
    let mut files = vec![apt.join("sources.list")];
    let directory = apt.join("sources.list.d");
    match std::fs::read_dir(&directory) {
        Ok(listing) => {
            let mut names = Vec::new();
            for item in listing {
                let item = item.map_err(|error| SourcesError::Io(directory.clone(), error))?;
                if let Some(name) = item
                    .file_name()
                    .to_str()
                    .filter(|name| is_sources_file_name(name))
                {
                    names.push(name.to_owned());
                }
            }
            names.sort();
            files.extend(names.into_iter().map(|name| directory.join(name)));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(SourcesError::Io(directory, error)),
    }
    let mut entries = Vec::new();
    for file in files {
        let text = match read_small(&file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(SourcesError::Io(file, error)),
        };
        let text =
            deb822::text(&text).map_err(|error| SourcesError::Format(file.clone(), error))?;
        let found = if file
            .extension()
            .is_some_and(|extension| extension == "sources")
        {
            parse_deb822(&file, text)
        } else {
            parse_one_line(&file, text)
        }
        .map_err(|error| SourcesError::Format(file.clone(), error))?;
        entries.extend(found);
        if entries.len() > MAX_ENTRIES {
            return Err(SourcesError::Format(
                file,
                FormatError::at(0, format!("more than {MAX_ENTRIES} source entries in all")),
            ));
        }
    }
    Ok(entries)
}

fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SOURCES_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SOURCES_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_SOURCES_FILE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_line(text: &str) -> Vec<SourceEntry> {
        parse_one_line(Path::new("t.list"), text).unwrap()
    }

    #[test]
    fn one_line_entries_with_options_and_comments() {
        let entries = one_line(
            "# a comment\n\
             deb [arch=amd64,arm64 signed-by=/k.gpg trusted=yes] http://deb.example/debian bookworm main contrib # tail\n\
             deb-src http://deb.example/debian bookworm main\n\
             deb [ arch=i386 ] https://u:p@repo.example:8080/d/ stable/updates main\n\
             deb file:/srv/repo ./\n",
        );
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].uri, "http://deb.example/debian/");
        assert_eq!(entries[0].suite, "bookworm");
        assert_eq!(entries[0].components, ["main", "contrib"]);
        assert_eq!(entries[0].architectures, ["amd64", "arm64"]);
        assert_eq!(entries[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(entries[0].trusted, Some(true));
        assert_eq!(entries[1].architectures, ["i386"]);
        assert_eq!(entries[1].uri, "https://u:p@repo.example:8080/d/");
        assert!(entries[2].is_flat());
        assert!(entries[2].components.is_empty());
    }

    #[test]
    fn one_line_mistakes_are_refused_with_their_line() {
        for (text, line) in [
            ("deb http://x/\n", 1),
            ("\nrpm http://x/ a main\n", 2),
            ("deb [arch=amd64 http://x/ a main\n", 1),
            ("deb http://x/ bookworm\n", 1),
            ("deb http://x/ ./ main\n", 1),
            ("deb [trusted] http://x/ a main\n", 1),
        ] {
            assert_eq!(
                parse_one_line(Path::new("t"), text).unwrap_err().line,
                line,
                "{text}"
            );
        }
    }

    #[test]
    fn deb822_entries_multiply_uris_and_suites() {
        let text = "Types: deb deb-src\n# mirror\nURIs: http://a.example/debian http://b.example/debian\n\
                    Suites: bookworm bookworm-updates\nComponents: main\nArchitectures: amd64\n\
                    Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n xsBN\n\n\
                    Types: deb\nURIs: http://c.example/\nSuites: x\nComponents: main\nEnabled: no\n\n\
                    Types: deb-src\nURIs: http://d.example/\nSuites: x\nComponents: main\n\n\
                    Types: deb\nURIs: http://e.example/flat\nSuites: /\nTrusted: yes\n";
        let entries = parse_deb822(Path::new("t.sources"), text).unwrap();
        let pairs: Vec<_> = entries
            .iter()
            .map(|e| (e.uri.as_str(), e.suite.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("http://a.example/debian/", "bookworm"),
                ("http://a.example/debian/", "bookworm-updates"),
                ("http://b.example/debian/", "bookworm"),
                ("http://b.example/debian/", "bookworm-updates"),
                ("http://e.example/flat/", "/"),
            ]
        );
        assert!(
            entries[0]
                .signed_by
                .as_deref()
                .unwrap()
                .starts_with("-----BEGIN")
        );
        assert_eq!(entries[4].trusted, Some(true));
        assert!(parse_deb822(Path::new("t"), "URIs: http://x/\nSuites: a\n").is_err());
    }

    #[test]
    fn only_list_and_sources_files_are_read_in_name_order() {
        let root = tempfile::tempdir().unwrap();
        let directory = root.path().join("etc/apt/sources.list.d");
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(
            root.path().join("etc/apt/sources.list"),
            "deb http://main/ a main\n",
        )
        .unwrap();
        std::fs::write(directory.join("b.list"), "deb http://b/ a main\n").unwrap();
        std::fs::write(
            directory.join("a.sources"),
            "Types: deb\nURIs: http://a/\nSuites: a\nComponents: main\n",
        )
        .unwrap();
        std::fs::write(
            directory.join("c.list.disabled-by-farm"),
            "deb http://c/ a main\n",
        )
        .unwrap();
        std::fs::write(directory.join("d.sources.save"), "garbage").unwrap();
        std::fs::write(directory.join("e~.list"), "garbage").unwrap();
        let uris: Vec<_> = read_sources(root.path())
            .unwrap()
            .into_iter()
            .map(|entry| entry.uri)
            .collect();
        assert_eq!(uris, ["http://main/", "http://a/", "http://b/"]);
        // Nothing configured at all is not an error.
        assert!(
            read_sources(&root.path().join("nowhere"))
                .unwrap()
                .is_empty()
        );
    }
}
