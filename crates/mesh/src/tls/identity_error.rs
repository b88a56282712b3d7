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
