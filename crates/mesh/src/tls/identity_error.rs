//! Verification failures that rustls has no variant for. They travel inside
//! `CertificateError::Other` so logs and the client can name them precisely.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PeerIdentityError {
    #[error("the server presented {presented}, not the expected {expected}")]
    UnexpectedServerId { expected: String, presented: String },
    #[error(
        "the server presented {presented}, not the CA's identity {expected}: whatever answers at \
         the CA URL is not the CA (a workload whose certificate is valid for that host name?); \
         nothing was sent to it. Check --ca-url and the network path to the CA"
    )]
    NotTheCa { expected: String, presented: String },
    #[error("the certificate's public key (sha256:{presented}) matches none of the pinned keys")]
    PinMismatch { presented: String },
}

/// A peer certificate refused by the X509-SVID rule set (`pki::svid`), carried to the logs and
/// the client inside `CertificateError::Other`.
pub fn svid_violation(v: pki::svid::SvidViolation) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        std::sync::Arc::new(v),
    )))
}

impl PeerIdentityError {
    pub fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(self),
        )))
    }
}
