#![warn(missing_docs)]

//! The SPIFFE Workload API's wire contract, generated once from the spec's
//! `proto/workload.proto` (origin and license in proto/README.md), with what both of its users
//! need: the socket address syntax, the security metadata, a client over a Unix socket, and
//! splitting the concatenated DER certificates the messages carry.
//!
//! Its users: `mtls-agent` serves the API (crates/agent) and `mesh` takes a service's
//! credentials from it (`--workload-api`, crates/mesh/src/workload). The agent depends on mesh
//! for its own node identity, so the shared code lives here, below both, and the dependency
//! graph stays acyclic: `workload` <- `mesh` <- `mtls-agent`.

pub mod address;
pub mod client;
pub mod der;

/// The messages, client and server stubs generated from proto/workload.proto (build.rs).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("_");
}

pub use address::parse_socket_address;
pub use client::{ClientError, WorkloadClient};
pub use der::split_der_certificates;

/// The metadata every Workload API call must carry (SPIFFE Workload API spec, "Transport").
pub const SECURITY_HEADER: &str = "workload.spiffe.io";
