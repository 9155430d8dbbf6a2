//! What the handler and prompt tests share.

#![allow(dead_code)]

pub mod dpkg;
pub mod handler_fixture;

/// Whether the tests run as root (dpkg's real database, debconf).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
