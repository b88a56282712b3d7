//! mtls-inspect: shows certificates, CSRs and CRLs, verifies chains with the verifier the
//! services use (`pki::verify`), lints X509-SVIDs, fetches a live server's chain and says
//! whether renewal is due. The command line is the `mtls-inspect` program in crates/mtls; each
//! command lives in its own module here and writes to the writers it is given, so tests can run
//! it in-process.

pub mod input;
pub mod kx;
pub mod lint;
pub mod model;
pub mod names;
pub mod remote;
pub mod render_json;
pub mod render_text;
pub mod renewal;
pub mod show;
pub mod tls_probe;
pub mod validity;
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
    #[default]
    Text,
    Json,
    Pem,
}
