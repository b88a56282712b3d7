//! The tests that run the mtls-mesh programs (`mtls-ca`, `mtls-server`, `mtls-client`,
//! `mtls-inspect`, `mtls-bench`) as real processes, in one test binary: one module per program,
//! and `e2e` for the tests that drive several programs at once. docs/testing.md maps them.
//!
//! Tests of a library alone live with their crate (`crates/<crate>/tests/it`).

mod manual;
mod programs;
mod settings;
mod venv;

mod agent;
mod bench;
mod ca;
mod ca_replicas;
mod deploy;
mod e2e;
mod inspect;
mod mesh;
mod proxy;
