//! Verification failures that rustls has no variant for. They travel inside
//! `CertificateError::Other` so logs and the client can name them precisely, with the expected
//! and the presented values.

use thiserror::Error;

/// The peer is not the one expected.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerIdentityError {
    /// The server's SPIFFE ID is not `--server-id`.
    #[error("the server presented {presented}, not the expected {expected}")]
    UnexpectedServerId {
        /// The SPIFFE ID required.
        expected: String,
        /// What the certificate carries.
        presented: String,
    },
    /// Whatever answers at the CA's URL does not present the CA's identity.
    #[error(
        "the server presented {presented}, not the CA's identity {expected}: whatever answers at \
         the CA URL is not the CA (a workload whose certificate is valid for that host name?); \
         nothing was sent to it. Check --ca-url and the network path to the CA"
    )]
    NotTheCa {
        /// `spiffe://<td>/ca`.
        expected: String,
        /// What the certificate carries.
        presented: String,
    },
    /// A client from a federated trust domain that no `--allow-id` pattern names.
    #[error(
        "the client presented {presented}, from the federated trust domain {trust_domain}; a \
         caller from another trust domain is accepted only when --allow-id names it (foreign \
         patterns allowed: {})",
        if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
    )]
    FederatedCallerNotAllowed {
        /// The client's SPIFFE ID.
        presented: String,
        /// Its trust domain.
        trust_domain: String,
        /// The `--allow-id` patterns outside our own trust domain.
        allowed: Vec<String>,
    },
    /// A server from a federated trust domain the client did not name with `--server-id`.
    #[error(
        "the server presented {presented}, from the federated trust domain {trust_domain}; a \
         server of another trust domain is accepted only when --server-id names it"
    )]
    FederatedServerNotNamed {
        /// The server's SPIFFE ID.
        presented: String,
        /// Its trust domain.
        trust_domain: String,
    },
    /// The peer's key is not pinned.
    #[error("the certificate's public key (sha256:{presented}) matches none of the pinned keys")]
    PinMismatch {
        /// The hex SHA-256 of the presented SubjectPublicKeyInfo.
        presented: String,
    },
}

/// A peer certificate refused by the X509-SVID rule set (`pki::svid`), carried to the logs and
/// the client inside `CertificateError::Other`.
pub(crate) fn svid_violation(v: pki::svid::SvidViolation) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        std::sync::Arc::new(v),
    )))
}

impl PeerIdentityError {
    /// Wraps the refusal for rustls.
    pub fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(self),
        )))
    }
}
