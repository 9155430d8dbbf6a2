//! Shipping OpenWUA: the man pages and shell completions of its programs,
//! generated from their clap definitions at build time, and (in this
//! crate's `Cargo.toml`) the Debian package's metadata for `cargo deb`.
//!
//! Each program (`wua`, `wua-agent`, `wua-server`) calls [`generate_if_asked`]
//! first thing in `main`: `PROGRAM __generate-docs DIR` writes
//! `DIR/man/*.{1,8}` and `DIR/completions/{bash,zsh,fish}/…` and exits.
//! It is a build step (`scripts/build-deb`), not a command: clap never sees
//! it, so it appears in no help, man page or completion. Nothing generated
//! is committed.

#![deny(missing_docs)]

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;

/// The first argument that asks a program for its documentation.
pub const GENERATE_DOCS: &str = "__generate-docs";

/// Where a program's man pages go: users' commands or the administrator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManSection {
    /// Section 1: `wua`.
    UserCommands,
    /// Section 8: the daemons, `wua-agent` and `wua-server`.
    SystemAdministration,
}

impl ManSection {
    fn number(self) -> &'static str {
        match self {
            ManSection::UserCommands => "1",
            ManSection::SystemAdministration => "8",
        }
    }
}

/// When the program was run as `PROGRAM __generate-docs DIR`, writes its
/// documentation into `DIR` and returns the exit status to end with;
/// otherwise `None`, and the program goes on as usual.
pub fn generate_if_asked(
    command: impl FnOnce() -> clap::Command,
    section: ManSection,
) -> Option<ExitCode> {
    let dir = requested_dir(std::env::args_os())?;
    let command = command();
    let name = command.get_name().to_owned();
    Some(match generate(command, section, &dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {GENERATE_DOCS} {}: {error}", dir.display());
            ExitCode::FAILURE
        }
    })
}

/// `DIR` of `PROGRAM __generate-docs DIR`, and nothing else.
fn requested_dir(mut args: impl Iterator<Item = OsString>) -> Option<PathBuf> {
    let _program = args.next()?;
    if args.next()? != GENERATE_DOCS {
        return None;
    }
    let dir = args.next()?;
    args.next().is_none().then(|| PathBuf::from(dir))
}

/// Writes `command`'s man pages (one for it and one for each visible
/// subcommand, `wua-search.1` and so on) to `dir/man` and its completions
/// to `dir/completions/{bash,zsh,fish}`, named as Debian's shells look them
/// up: `bash/wua`, `zsh/_wua`, `fish/wua.fish`.
pub fn generate(mut command: clap::Command, section: ManSection, dir: &Path) -> io::Result<()> {
    // clap's `help` subcommand gets no pages of its own (`wua-help.1`).
    let mut pages = command.clone().disable_help_subcommand(true);
    pages.build();
    let man_dir = dir.join("man");
    std::fs::create_dir_all(&man_dir)?;
    write_man_pages(&pages, section, &man_dir)?;

    let name = command.get_name().to_owned();
    for (shell, file_name) in [
        (Shell::Bash, name.clone()),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let shell_dir = dir.join("completions").join(shell.to_string());
        std::fs::create_dir_all(&shell_dir)?;
        write_file(&shell_dir.join(file_name), |out| {
            clap_complete::generate(shell, &mut command, &name, out);
            Ok(())
        })?;
    }
    Ok(())
}

fn write_man_pages(command: &clap::Command, section: ManSection, dir: &Path) -> io::Result<()> {
    for subcommand in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_man_pages(subcommand, section, dir)?;
    }
    let page = clap_mangen::Man::new(command.clone()).section(section.number());
    write_file(&dir.join(page.get_filename()), |out| page.render(out))
}

fn write_file(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    write(&mut out)?;
    out.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = OsString> {
        list.iter()
            .map(OsString::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn only_the_exact_request_generates() {
        assert_eq!(
            requested_dir(args(&["wua", GENERATE_DOCS, "out"])),
            Some(PathBuf::from("out"))
        );
        for ordinary in [
            &["wua"][..],
            &["wua", "search"],
            &["wua", GENERATE_DOCS],
            &["wua", GENERATE_DOCS, "out", "more"],
            &["wua", "--socket", GENERATE_DOCS, "out"],
        ] {
            assert_eq!(requested_dir(args(ordinary)), None, "{ordinary:?}");
        }
    }

    #[test]
    fn writes_a_page_per_visible_subcommand_but_help_and_three_completions() {
        let command = clap::Command::new("demo")
            .subcommand(clap::Command::new("run").about("Runs."))
            .subcommand(clap::Command::new("secret").hide(true));
        let dir = tempfile::tempdir().unwrap();
        generate(command, ManSection::SystemAdministration, dir.path()).unwrap();
        let mut pages: Vec<_> = std::fs::read_dir(dir.path().join("man"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        pages.sort();
        assert_eq!(pages, ["demo-run.8", "demo.8"]);
        let page = std::fs::read_to_string(dir.path().join("man/demo-run.8")).unwrap();
        assert!(page.starts_with(".ie"), "{page}");
        assert!(page.contains(".TH demo-run 8"), "{page}");
        for completion in ["bash/demo", "zsh/_demo", "fish/demo.fish"] {
            let text =
                std::fs::read_to_string(dir.path().join("completions").join(completion)).unwrap();
            assert!(text.contains("run"), "{completion}: {text}");
        }
    }
}
