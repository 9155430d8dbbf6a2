//! The Debian package's `/etc/openwua/agent.toml` (packaging/agent.toml):
//! it loads, it changes only `admin_group`, and the defaults it shows in
//! comments are the agent's real defaults.

use std::path::Path;

use openwua_agent::config::Config;

const PACKAGED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../packaging/agent.toml");

fn packaged_defaults() -> Config {
    Config {
        admin_group: Some("wua".to_owned()),
        ..Config::default()
    }
}

#[test]
fn packaged_config_sets_only_the_admin_group() {
    assert_eq!(
        Config::load(Path::new(PACKAGED), true).unwrap(),
        packaged_defaults()
    );
}

#[test]
fn packaged_config_shows_the_real_defaults() {
    // "#key = value" and "#[section]" are settings shown commented out;
    // "# text" is prose.
    let text = std::fs::read_to_string(PACKAGED).unwrap();
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with(' ') => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let shown: Config = toml::from_str(&uncommented).unwrap();
    assert_eq!(shown, packaged_defaults());
}
