use thiserror::Error;

/// Every way a PKI operation can fail, worded for the operator who has to fix it.
#[derive(Debug, Error)]
pub enum PkiError {
    /// The input is not valid PEM.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// The PEM holds no block of the expected kind.
    #[error("no {expected} found in the input (found: {found})")]
    PemMissing {
        /// The kind of block looked for.
        expected: &'static str,
        /// The blocks found instead.
        found: String,
    },
    /// A private key cannot be read.
    #[error("invalid private key: {0}")]
    Key(String),
    /// A key that is not ECDSA on P-256, P-384 or P-521.
    #[error("unsupported key: {0}; mtls-mesh accepts only ECDSA keys on P-256, P-384 or P-521")]
    UnsupportedKey(String),
    /// A CSR cannot be parsed or is not acceptable.
    #[error("invalid CSR: {0}")]
    Csr(String),
    /// The CSR's proof of possession does not verify.
    #[error("CSR signature does not verify: the CSR was not signed by the key it carries")]
    CsrSignature,
    /// The CSR asks for CA:TRUE.
    #[error("the CSR asks for a CA certificate (basicConstraints CA:TRUE); the CA only issues end-entity certificates (CA:FALSE)")]
    CsrRequestsCa,
    /// A certificate cannot be parsed or built.
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// A SPIFFE ID or trust domain breaks a rule of the SPIFFE ID specification.
    #[error("invalid SPIFFE ID {id:?}: {reason}")]
    SpiffeId {
        /// The ID given.
        id: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A CA key does not belong to the CA certificate.
    #[error("the CA key does not match the CA certificate: the certificate's public key is {cert_key}, the key file's is {key_key}")]
    KeyMismatch {
        /// The certificate's public key (SPKI SHA-256).
        cert_key: String,
        /// The key file's public key (SPKI SHA-256).
        key_key: String,
    },
    /// The issuance policy refuses the request (the message says which rule).
    #[error("{0}")]
    Policy(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// Reading or writing a file failed. The message holds its cause, so the cause is a field,
    /// not a `source()`: a program printing the chain (anyhow's `{:#}`) would print it twice.
    #[error("{context}: {error}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The error of the operating system.
        error: std::io::Error,
    },
}

impl PkiError {
    /// An I/O error with what was being done (naming the file).
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PkiError::Io {
            context: context.into(),
            error: source,
        }
    }
}

/// The result of a PKI operation.
pub type Result<T> = std::result::Result<T, PkiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// Programs print errors with their chain (anyhow's `{:#}`): a message that holds its
    /// cause must not also return it as `source()`, or the cause is printed twice.
    #[test]
    fn an_io_error_holds_its_cause_once() {
        let e = PkiError::io(
            "reading /nonexistent/root.pem",
            std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"),
        );
        assert_eq!(e.to_string(), "reading /nonexistent/root.pem: No such file");
        assert!(e.source().is_none(), "{e} has a source besides its message");
    }
}
