//! The names apt gives the files in its lists directory.
//!
//! Facts from apt's source (apt-pkg/contrib/strutl.cc `URItoFileName`,
//! `QuoteString`, `URI::CopyFrom`, `URI::operator string`;
//! apt-pkg/deb/debmetaindex.cc `constructMetaIndexURI`; apt-pkg/acquire.cc
//! `URIEncode`; apt-pkg/init.cc the Packages `MetaKey`s):
//!
//! - a file's URI is the entry's URI, then `dists/<suite>/` (a suite ending
//!   in `/` is appended as it is, a suite of just `/` adds nothing), then the
//!   index's path: `InRelease`, `Release`,
//!   `<component>/binary-<arch>/Packages` (flat: `Packages`); the suite is
//!   `URIEncode`d (`+`, `~`, space and the unsafe characters become `%xx`);
//! - the file name drops the scheme, user and password, keeps the host, an
//!   explicit port as `:port` and the path; then quotes `\|{}[]<>"^~_=!@#$%&*`,
//!   `%`, space, control and non-ASCII bytes as lower-case `%xx`, and turns
//!   every `/` into `_` (so a `%` apt already encoded is quoted again);
//! - apt stores a list compressed as it configures (`.lz4` on Debian), with
//!   that extension added.

use crate::sources::SourceEntry;

/// The characters apt's `URItoFileName` quotes besides `%`, space, control
/// characters and bytes ≥ 0x7f.
const FILE_NAME_UNSAFE: &[u8] = b"\\|{}[]<>\"^~_=!@#$%^&*";
/// What `URIEncode` quotes by default (`Acquire::URIEncode`), besides the same.
const URI_ENCODE_UNSAFE: &[u8] = b"+~ ";

fn quote(text: &str, unsafe_bytes: &[u8]) -> String {
    let mut quoted = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if unsafe_bytes.contains(&byte) || byte == b'%' || byte <= 0x20 || byte >= 0x7f {
            quoted.push_str(&format!("%{byte:02x}"));
        } else {
            quoted.push(char::from(byte));
        }
    }
    quoted
}

/// apt's `URItoFileName`: the name of the file apt keeps for `uri`.
pub fn uri_to_file_name(uri: &str) -> String {
    let (host, path) = split_uri(uri);
    quote(&format!("{host}{path}"), FILE_NAME_UNSAFE).replace('/', "_")
}

/// `host[:port]` (without user, password, brackets or scheme) and the path
/// of `uri`, as apt's `URI` class reads and prints them once its scheme
/// and credentials are cleared.
fn split_uri(uri: &str) -> (String, &str) {
    let (after_scheme, double_slash) = match uri.find(':') {
        Some(colon) => match uri[colon + 1..].strip_prefix("//") {
            Some(rest) => (rest, true),
            None => (&uri[colon + 1..], false),
        },
        None => (uri, false),
    };
    if !double_slash {
        // `file:/srv/repo/`: no host, the path as it is.
        let path = if after_scheme.is_empty() {
            "/"
        } else {
            after_scheme
        };
        return (String::new(), path);
    }
    // The host part ends at the first `/` outside brackets.
    let mut in_bracket = false;
    let mut end = after_scheme.len();
    for (index, byte) in after_scheme.bytes().enumerate() {
        match byte {
            b'[' => in_bracket = true,
            b']' => in_bracket = false,
            b'/' if !in_bracket => {
                end = index;
                break;
            }
            _ => {}
        }
    }
    let (authority, path) = after_scheme.split_at(end);
    let path = if path.is_empty() { "/" } else { path };
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    // Brackets go; a port after the last `:` outside them stays (`apt`
    // prints it back as `:port`), as does an IPv6 address's colons.
    let (host, port) = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, rest)) => (address.to_owned(), rest.strip_prefix(':')),
            None => (String::new(), None),
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name.to_owned(), Some(port)),
            None => (host.to_owned(), None),
        },
    };
    // apt reads the port as a number (`atoi`) and prints it only if not 0.
    let port: u32 = port
        .map(|port| {
            port.bytes()
                .take_while(u8::is_ascii_digit)
                .fold(0u32, |n, digit| {
                    n.saturating_mul(10).saturating_add(u32::from(digit - b'0'))
                })
        })
        .unwrap_or(0);
    let host = if port == 0 || host.is_empty() {
        host
    } else {
        format!("{host}:{port}")
    };
    (host, path)
}

/// The URI of a suite's directory (`…/dists/<suite>/`, or the flat path).
pub fn suite_uri(entry: &SourceEntry) -> String {
    let suite = &entry.suite;
    if suite == "/" {
        entry.uri.clone()
    } else if suite.ends_with('/') {
        format!("{}{}", entry.uri, quote(suite, URI_ENCODE_UNSAFE))
    } else {
        format!("{}dists/{}/", entry.uri, quote(suite, URI_ENCODE_UNSAFE))
    }
}

/// The names of the files apt keeps for the suite's `InRelease` and
/// `Release`, in the order apt prefers them.
pub fn release_file_names(entry: &SourceEntry) -> [String; 2] {
    let base = suite_uri(entry);
    [
        uri_to_file_name(&format!("{base}InRelease")),
        uri_to_file_name(&format!("{base}Release")),
    ]
}

/// The index path a Release lists for a Packages file:
/// `<component>/binary-<arch>/Packages`, or `Packages` in a flat repository.
pub fn packages_index_path(component: Option<&str>, architecture: &str) -> String {
    match component {
        Some(component) => format!("{component}/binary-{architecture}/Packages"),
        None => "Packages".to_owned(),
    }
}

/// The name (without a compression extension) of the list apt keeps for
/// the index at `index_path` of `entry`'s suite.
pub fn list_file_name(entry: &SourceEntry, index_path: &str) -> String {
    uri_to_file_name(&format!("{}{index_path}", suite_uri(entry)))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn entry(uri: &str, suite: &str) -> SourceEntry {
        SourceEntry {
            file: PathBuf::from("t.list"),
            uri: uri.to_owned(),
            suite: suite.to_owned(),
            components: vec![],
            architectures: vec![],
            signed_by: None,
            trusted: None,
        }
    }

    #[test]
    fn debian_names_as_apt_writes_them() {
        let debian = entry("http://deb.debian.org/debian/", "bookworm");
        assert_eq!(
            list_file_name(&debian, &packages_index_path(Some("main"), "amd64")),
            "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"
        );
        assert_eq!(
            release_file_names(&debian),
            [
                "deb.debian.org_debian_dists_bookworm_InRelease",
                "deb.debian.org_debian_dists_bookworm_Release"
            ]
        );
        let security = entry(
            "http://deb.debian.org/debian-security/",
            "bookworm-security",
        );
        assert_eq!(
            release_file_names(&security)[0],
            "deb.debian.org_debian-security_dists_bookworm-security_InRelease"
        );
    }

    #[test]
    fn scheme_credentials_and_brackets_go_the_port_stays() {
        assert_eq!(
            uri_to_file_name("https://user:pw@repo.example:8080/a/b"),
            "repo.example:8080_a_b"
        );
        assert_eq!(
            uri_to_file_name("http://[::1]:3142/debian/"),
            "::1:3142_debian_"
        );
        assert_eq!(uri_to_file_name("http://[::1]/debian/"), "::1_debian_");
        assert_eq!(
            uri_to_file_name("file:/srv/repo/Packages"),
            "_srv_repo_Packages"
        );
        assert_eq!(
            uri_to_file_name("file:///srv/repo/Packages"),
            "_srv_repo_Packages"
        );
        assert_eq!(uri_to_file_name("http://host"), "host_");
    }

    #[test]
    fn unsafe_characters_are_quoted_and_encoded_suites_quoted_again() {
        assert_eq!(
            uri_to_file_name("http://h/a_b~c d%e"),
            "h_a%5fb%7ec%20d%25e"
        );
        assert_eq!(uri_to_file_name("http://h/é"), "h_%c3%a9");
        let plus = entry("http://h/debian/", "bookworm+1");
        assert_eq!(
            release_file_names(&plus)[1],
            "h_debian_dists_bookworm%252b1_Release"
        );
    }

    #[test]
    fn flat_repositories() {
        let flat = entry("http://h/repo/", "./");
        assert_eq!(
            list_file_name(&flat, &packages_index_path(None, "amd64")),
            "h_repo_._Packages"
        );
        assert_eq!(release_file_names(&flat)[0], "h_repo_._InRelease");
        let root = entry("file:/srv/repo/", "/");
        assert_eq!(list_file_name(&root, "Packages"), "_srv_repo_Packages");
        let sub = entry("http://h/repo/", "sub/dir/");
        assert_eq!(list_file_name(&sub, "Packages"), "h_repo_sub_dir_Packages");
    }
}
