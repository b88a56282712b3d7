//! `mtls-agent` as a process: the Workload API served to independent clients (the Rust
//! `spiffe` crate, py-spiffe), attestation (another uid, missing metadata), the CA going away,
//! the `write` mode, the services' `--workload-api` credential source, settings refused
//! before the join token is redeemed, and `mtls-bench --mode workload-fetch` against it.

mod common;

mod api;
mod bench_fetch;
mod outage;
mod python;
mod settings;
mod workload_source;
mod write;
