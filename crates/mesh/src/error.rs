use thiserror::Error;

/// Every way the mesh library can fail, worded for the operator who has to act on it.
#[derive(Debug, Error)]
pub enum MeshError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("credential: {0}")]
    Credential(String),
    #[error("trust: {0}")]
    Trust(String),
    #[error("revocation list: {0}")]
    Crl(String),
    #[error("revocation list refused: {0}")]
    CrlRefused(#[from] pki::crl::CrlError),
    #[error("CA request to {url} failed: {message}")]
    Ca { url: String, message: String },
    #[error("the CA refused the request ({status}, {code}): {message}")]
    CaRefused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("{what}: gave up after {after} (--enroll-timeout), {attempts} attempt(s); last error: {last}")]
    GaveUp {
        what: String,
        after: String,
        attempts: u32,
        last: Box<MeshError>,
    },
    #[error("connection to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("HTTP: {0}")]
    Http(String),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl MeshError {
    /// The message without the category prefix, for wrapping in a more specific context.
    pub fn detail(&self) -> String {
        match self {
            MeshError::Config(m)
            | MeshError::Tls(m)
            | MeshError::Credential(m)
            | MeshError::Trust(m)
            | MeshError::Crl(m)
            | MeshError::Http(m) => m.clone(),
            other => other.to_string(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        MeshError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, MeshError>;
