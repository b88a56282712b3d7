#![warn(missing_docs)]

//! `mtls-proxy` as a library: the sidecar that puts a service we did not write into the mesh.
//!
//! * **inbound** (`inbound`): mTLS in, plaintext to a local application. After the handshake
//!   (the mesh's server configuration: TLS 1.3, client certificate required and verified) the
//!   caller is checked against the policy; a refused caller gets close_notify and the
//!   application never sees a connection. An allowed caller's bytes are copied both ways
//!   (`wire::relay`: half-close, backpressure, idle timeout) until either side ends, the
//!   caller's certificate expires or is revoked, or a reloaded policy refuses the caller.
//! * **outbound** (`outbound`): plaintext from local applications on loopback listeners, mTLS
//!   to a remote service whose SPIFFE ID and DNS/IP name are verified (`mesh::MeshConnector`).
//! * **policy** (`policy`): `--allow-id` patterns or a TOML file reloaded when it changes
//!   (a reload applies to open L4 connections too).
//! * **records** (`record`): one log line per connection at its close, and the counters of
//!   `/metrics` (`metrics`).
//!
//! [`Proxy::bind`] validates the whole configuration and binds every listener before anything
//! reaches the CA; [`Proxy::serve`] then runs on a started [`mesh::Mesh`]. The program
//! (`mtls-proxy` in crates/mtls) adds the command line; docs/proxy.md is the user's guide.

pub mod config;
pub mod error;
pub mod file;
pub mod inbound;
pub mod metrics;
pub mod outbound;
pub mod policy;
pub mod record;
mod run;
mod splice;

pub use config::{Access, Destination, InboundConfig, LimitSettings, ProxyConfig, RouteConfig};
pub use error::{ConfigError, ProxyError};
pub use run::{Proxy, POLICY_CHECK_INTERVAL};
