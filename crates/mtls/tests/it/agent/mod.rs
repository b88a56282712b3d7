//! `mtls-agent` as a process: the Workload API served to independent clients (the Rust
//! `spiffe` crate, py-spiffe), attestation (another uid, missing metadata), the CA going away,
//! the `write` mode, the services' `--workload-api` credential source, and settings refused
//! before the join token is redeemed.

mod common;

mod api;
mod outage;
mod python;
mod settings;
mod workload_source;
mod write;
