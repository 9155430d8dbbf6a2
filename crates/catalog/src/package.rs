//! Offline scan packages: one compressed, signed file (WUA's
//! `AddScanPackageService`).
