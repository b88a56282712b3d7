//! How the proxy fails, worded for the operator: what is wrong, where it was set (the flag, or
//! the file, line and key), and what would work.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::config::Origin;

/// A configuration that cannot work, refused before anything touches the network or the CA.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither an inbound side nor a route.
    #[error("nothing to proxy: give an inbound side ([inbound] / `mtls-proxy inbound`) or at least one route ([[route]] / --route)")]
    NothingToDo,
    /// A value that does not parse or is out of range.
    #[error("{origin}: {message}")]
    Invalid {
        /// Where it was set.
        origin: Origin,
        /// What is wrong and what would work.
        message: String,
    },
    /// The configuration file itself (syntax, unknown keys, types), as the TOML parser says it.
    #[error("{}: {message}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A file that cannot be read.
    #[error("{origin}: cannot read {}: {error}", .path.display())]
    Unreadable {
        /// Where the file was named.
        origin: Origin,
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// An outbound listener on a non-loopback address without the explicit permission.
    #[error(
        "{origin}: {addr} is not a loopback address. An outbound listener takes plaintext and \
         speaks with this workload's identity, so anyone who can reach it acts as this workload; \
         listen on 127.0.0.1 or ::1, or allow it explicitly with {permission}"
    )]
    NotLoopback {
        /// Where the listener was set.
        origin: Origin,
        /// The address.
        addr: SocketAddr,
        /// The flag or key that allows it.
        permission: Origin,
    },
    /// The admin listener on a non-loopback address.
    #[error("{origin}: {addr}: {reason}")]
    AdminNotLoopback {
        /// Where it was set.
        origin: Origin,
        /// The address.
        addr: SocketAddr,
        /// Why, naming what would allow it (`mesh::server::admin::Exposure::check`).
        reason: String,
    },
    /// Two listeners on one address.
    #[error("{second}: {addr} is already used by {first}")]
    SameAddress {
        /// The address.
        addr: SocketAddr,
        /// The first listener.
        first: Origin,
        /// The second.
        second: Origin,
    },
    /// Per-path rules in L4 mode.
    #[error("{origin}: per-path rules ([[path]]) need HTTP mode (--http / http = true): in L4 mode the proxy sees bytes, not paths")]
    PathRulesNeedHttp {
        /// Where the policy was set.
        origin: Origin,
    },
    /// A listener that cannot be bound.
    #[error("{origin}: cannot listen on {addr}: {error}")]
    Bind {
        /// Where it was set.
        origin: Origin,
        /// The address.
        addr: SocketAddr,
        /// The error.
        error: std::io::Error,
    },
}

/// Why the proxy stopped after it started.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The mesh library (credentials, TLS configuration).
    #[error(transparent)]
    Mesh(#[from] mesh::MeshError),
    /// A socket operation after start.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        error: std::io::Error,
    },
}
