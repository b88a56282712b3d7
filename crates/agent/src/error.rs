//! The agent library's errors.

use std::path::PathBuf;

use thiserror::Error;

/// Why the agent could not start or serve.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The Workload API socket cannot be used.
    #[error("Workload API socket {path}: {reason}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// What is wrong, and how to fix it.
        reason: String,
    },
    /// The gRPC server failed.
    #[error("Workload API server: {0}")]
    Serve(String),
}

/// Why a caller could not be attested (it then gets PERMISSION_DENIED; the detail is logged).
#[derive(Debug, Error)]
pub enum AttestError {
    /// The kernel gave no pid for the connection.
    #[error("the connection's peer credentials carry no process id")]
    NoPid,
    /// Reading `/proc` failed (the process may have exited).
    #[error("{what} ({path}): {reason}")]
    Proc {
        /// What was being read.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// The process start time changed while attesting: another process took the pid.
    #[error("process {pid} changed while it was attested (its start time differs): pid reused")]
    PidReused {
        /// The pid.
        pid: i32,
    },
    /// A full attestation ended without an answer (a bug: every step runs when blocking is
    /// allowed); the caller is refused rather than attested on partial evidence.
    #[error("attestation of process {pid} ended early")]
    Incomplete {
        /// The pid.
        pid: i32,
    },
    /// The process's uid/gid are no longer the connection's.
    #[error("process {pid} runs as uid/gid {now:?}, but connected as {connected:?}: not attested")]
    CredentialsChanged {
        /// The pid.
        pid: i32,
        /// uid, gid of the connection.
        connected: (u32, u32),
        /// uid, gid of the process now.
        now: (u32, u32),
    },
}

/// A failed call to the CA's agent endpoints.
#[derive(Debug, Error)]
pub enum CaCallError {
    /// No answer (connection, TLS, timeout).
    #[error("CA unreachable: {0}")]
    Unreachable(String),
    /// The CA refused the request.
    #[error("CA refused {what}: HTTP {status} {code}: {message}")]
    Refused {
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// The API error code (`not_agent`, `unknown_entry`, ...).
        code: String,
        /// The CA's message.
        message: String,
    },
    /// The answer could not be understood.
    #[error("CA answer to {what} is invalid: {reason}")]
    BadAnswer {
        /// The request.
        what: String,
        /// What is wrong.
        reason: String,
    },
}
