#![warn(missing_docs)]

//! `wire`: the one TLS policy and the one connection layer every mtls-mesh TLS listener runs
//! on — the CA's API, `mtls-server`, and next the mTLS proxy (raw L4 byte copying) and the
//! agent. It owns what every listener must get right the same way, so no product re-invents it:
//!
//! * **the TLS policy** (`tls`): TLS 1.3 only, the suites and groups, ECDSA-only signature
//!   verification, no resumption, the server and client configuration builders, the
//!   hot-swapping certificate resolver, and the names of versions, suites, groups and alerts;
//! * **admission** (`admission.rs`): a total connection cap (excess waits in the accept queue),
//!   a per-source-address cap (excess closed at once), room kept for authenticated peers
//!   (connections without a verified client certificate may hold at most
//!   `max_connections - authenticated_reserve` slots; the excess is closed right after the
//!   handshake), and a per-identity cap (excess answered once by the protocol, then closed);
//! * **timeouts** (`limits.rs`, `activity.rs`): TLS handshake, request header (HTTP/1), idle
//!   (no request in flight: protocol frames such as HTTP/2 PING do not count), request (body
//!   and handler; HTTP answers 408), and a grace for closes the peer does not finish;
//! * **graceful drain** (`drain.rs`): on shutdown stop accepting, close idle connections at
//!   once, let in-flight requests finish for the drain time, then cut the rest;
//! * **reporting**: every refusal and close is logged (tracing, with peer address, reason and
//!   identity once known) and counted in `Counters`, which the products render into their
//!   Prometheus endpoints. This crate never prints.
//!
//! The listener (`listener.rs`) is protocol-neutral: the product says who a peer is
//! (`Identify`) and a `Protocol` serves the established connection. `http` is the protocol for
//! HTTP/1.1 and HTTP/2 services; a byte-copying protocol plugs in the same way with `relay`
//! (both directions in one task, half-close, idle timeout, byte counts) and the drain signal.
//! `serve_plain` runs the same accept loop, limits and drain for a plain TCP listener (the
//! proxy's outbound side, which takes plaintext from local applications).
//!
//! Who a peer is (certificate verification, SPIFFE IDs, revocation) is the product's business:
//! crates/mesh for the services, crates/ca for the CA. This crate only runs the handshake with the
//! verifier it is given.

pub mod activity;
pub(crate) mod admission;
pub mod counters;
pub mod drain;
pub mod http;
pub mod limits;
pub mod listener;
pub mod relay;
pub mod tls;

pub use activity::CloseReason;
pub use admission::Refused;
pub use counters::Counters;
pub use drain::{Drain, DrainReport};
pub use limits::{H2Limits, Limits, LimitsError};
pub use listener::{
    serve, serve_plain, BoxFuture, Established, HandshakeError, Identified, Identify, Listener,
    PlainConnection, PlainProtocol, Protocol, Rejected,
};
