//! The in-process tests of the `mtls_ca` library, in one test binary: the authority on a
//! `ManualClock` over the reference `MemoryStore` and a real `SqliteStore` (`harness.rs`), so
//! every time rule is tested at the exact second without waiting. (The tests that run the
//! `mtls-ca` program are in crates/mtls/tests/it/ca.)

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

mod agent;
mod crl;
mod crl_number;
mod group_commit;
mod health;
mod ocsp;
mod racing_store;
mod redeem_pipeline;
mod renew;
mod revoke;
mod root_rotation;
mod root_rotation_two_tier;
mod serial_collision;
mod sign;
mod sign_retry;
mod token_failure;
mod token_revoke;
