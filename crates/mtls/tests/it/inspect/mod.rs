//! `mtls-inspect` as a process: output against OpenSSL, snapshots, exit codes, malformed input.
//! (The in-process property tests are in crates/inspect/tests/it.)

mod common;

mod fixtures;
mod fuzz;
mod lint;
mod lint_scale;
mod malformed;
mod remote;
mod renewal;
mod show;
mod snapshots;
mod spiffe_bundle;
mod verify;
mod verify_rules;
