//! Fixtures shared by the CLI's integration tests.

#![allow(dead_code)] // Each test binary uses a different part.

pub mod sessions;
