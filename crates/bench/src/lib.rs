//! The load generator behind `mtls-bench` (crates/mtls holds its command line): TLS client
//! setup, the request loops of each mode and the measurements. Loopback targets only. Every
//! response is checked (status and caller identity), so a fast wrong answer never counts.

pub mod options;
pub mod stats;
pub mod target;
pub mod tls;
pub mod worker;

pub use options::{Mode, Options};
