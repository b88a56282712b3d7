//! mtls-inspect: shows certificates, CSRs and CRLs, verifies chains with the verifier the
//! services use (`pki::verify`), lints X509-SVIDs, fetches a live server's chain and says
//! whether renewal is due. The command line is the `mtls-inspect` program in crates/mtls; each
//! command lives in its own module here and writes to the writers it is given, so tests can run
//! it in-process.

#![warn(missing_docs)]

pub mod input;
pub mod lint;
pub mod model;
mod names;
pub mod remote;
pub mod render_json;
pub mod render_text;
pub mod renewal;
pub mod show;
mod tls_probe;
mod validity;
pub mod verify;

/// How a command ended; the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: shown / valid / clean / renewal due.
    Success,
    /// 1: invalid / error-level lint findings / renewal not due.
    Failure,
    /// 2: usage or read error.
    Error,
}

impl Exit {
    /// The process exit code (0, 1 or 2).
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Error => 2,
        }
    }
}

/// Output format of the commands that have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Human-readable text (the default).
    #[default]
    Text,
    /// One JSON document with a versioned `schema` name (docs/cli.md).
    Json,
    /// The objects re-encoded as PEM (`show` only).
    Pem,
}
