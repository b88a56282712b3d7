//! Errors of the authority, classified without HTTP types; the API maps each kind to a status.

use thiserror::Error;

/// What kind of refusal this is; the API layer turns it into a status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Malformed or unacceptable input (400).
    BadRequest,
    /// Missing, unknown, used or expired credentials (401).
    Unauthenticated,
    /// Authenticated but not allowed (403).
    Forbidden,
    /// No such object (404).
    NotFound,
    /// The request body is larger than the API accepts (413).
    PayloadTooLarge,
    /// The object is not in a state that allows it (409).
    Conflict,
    /// Our fault; details are logged, not sent (500).
    Internal,
    /// The CA cannot serve this now (its database file was removed or replaced) (503).
    Unavailable,
}

/// A refusal with a stable machine code and a message for the caller.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct AuthorityError {
    /// The kind of refusal (the HTTP status follows from it).
    pub kind: Kind,
    /// Stable snake_case code, e.g. `token_used`; also the `reason` label in metrics.
    pub code: &'static str,
    /// What was refused and how to fix it; sent to the caller, so never an internal cause.
    pub message: String,
}

impl AuthorityError {
    /// A refusal of `kind` with a stable `code` and a message for the caller.
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Self {
        AuthorityError {
            kind,
            code,
            message: message.into(),
        }
    }

    /// Malformed or unacceptable input (400).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::BadRequest, code, message)
    }

    /// Missing, unknown, used or expired credentials (401).
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Unauthenticated, code, message)
    }

    /// Authenticated, but not allowed (403).
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, code, message)
    }

    /// Logs the internal cause and returns an error that reveals nothing of it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(Kind::Internal, "internal", "internal error; see the CA log")
    }
}

/// The code of a refusal because the database cannot be reached (answered with `Retry-After`).
pub const STORE_UNREACHABLE: &str = "store_unreachable";

impl From<crate::store::StoreError> for AuthorityError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            // The store has already logged the cause (with the path) loudly, once.
            crate::store::StoreError::Unavailable(_) => Self::new(
                Kind::Unavailable,
                "store_unavailable",
                "the CA's database file was removed or replaced while the CA was running, so \
                 the CA cannot record anything and refuses to issue, renew or revoke; nothing \
                 was stored. The operator must restore ca.db from a backup and restart the CA",
            ),
            // Logged with its cause by the store; the replica can serve again once the
            // database is back, so the client may retry.
            crate::store::StoreError::Unreachable(_) => Self::new(
                Kind::Unavailable,
                STORE_UNREACHABLE,
                "the CA's database cannot be reached, so the CA cannot record anything and \
                 refuses to issue, renew or revoke; nothing was stored. Retry in a few seconds",
            ),
            other => AuthorityError::internal(other),
        }
    }
}
