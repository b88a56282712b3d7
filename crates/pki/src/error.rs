use thiserror::Error;

/// Every way a PKI operation can fail, worded for the operator who has to fix it.
#[derive(Debug, Error)]
pub enum PkiError {
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("no {expected} found in the input (found: {found})")]
    PemMissing {
        expected: &'static str,
        found: String,
    },
    #[error("invalid private key: {0}")]
    Key(String),
    #[error("unsupported key: {0}; mtls-mesh accepts only ECDSA keys on P-256, P-384 or P-521")]
    UnsupportedKey(String),
    #[error("invalid CSR: {0}")]
    Csr(String),
    #[error("CSR signature does not verify: the CSR was not signed by the key it carries")]
    CsrSignature,
    #[error("the CSR asks for a CA certificate (basicConstraints CA:TRUE); the CA only issues end-entity certificates (CA:FALSE)")]
    CsrRequestsCa,
    #[error("invalid certificate: {0}")]
    Certificate(String),
    #[error("invalid SPIFFE ID {id:?}: {reason}")]
    SpiffeId { id: String, reason: String },
    #[error("the CA key does not match the CA certificate: the certificate's public key is {cert_key}, the key file's is {key_key}")]
    KeyMismatch { cert_key: String, key_key: String },
    #[error("{0}")]
    Policy(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl PkiError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PkiError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, PkiError>;
