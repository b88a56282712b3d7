//! The load generator behind `mtls-bench` (crates/mtls holds its command line): TLS client
//! setup, the request loops of each mode and the measurements. Loopback targets (or an agent's
//! Unix socket) only. Every response is checked (status and caller identity), so a fast wrong
//! answer never counts.

pub mod cpu;
pub mod options;
pub mod stats;
pub mod target;
pub mod tls;
pub mod worker;
pub mod workload_fetch;

pub use options::{Mode, Options};
