//! TOML manifests: how update authors write revisions.
