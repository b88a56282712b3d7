//! Every way the mesh library fails, as typed values worded for the operator who has to act on
//! them: what failed, with the expected and presented values, and how to fix it. The category
//! prefix of each message (`configuration:`, `credential:`, `trust:`, `HTTP:`) is what the
//! programs have always printed (docs/troubleshooting.md quotes them).
//!
//! Each message is complete: it includes its cause. So the causes are fields to match on, not
//! `Error::source()` links; a program printing the chain (anyhow's `{:#}`) would otherwise
//! print every cause twice.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::tls::PeerIdentityError;

/// Every way the mesh library can fail.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MeshError {
    /// A setting that cannot work, refused before anything was started.
    #[error("configuration: {0}")]
    Config(ConfigError),
    /// A certificate or key that cannot be used.
    #[error("credential: {0}")]
    Credential(CredentialError),
    /// Roots that cannot be used, or a server that is not the CA.
    #[error("trust: {0}")]
    Trust(TrustError),
    /// A CRL from the CA refused by the strict CRL rules of `pki::crl`.
    #[error("revocation list refused: {0}")]
    CrlRefused(pki::crl::CrlError),
    /// A CRL file (static mode) refused by the strict CRL rules of `pki::crl`.
    #[error("revocation list: {}: {error}", .path.display())]
    CrlFile {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        error: pki::crl::CrlError,
    },
    /// A TLS configuration that cannot be built.
    #[error("TLS: {0}")]
    Tls(wire::tls::TlsConfigError),
    /// A call to the CA got no answer (unreachable, timed out, connection broken).
    #[error("CA request to {url} failed: {error}")]
    Ca {
        /// The endpoint called.
        url: String,
        /// What went wrong.
        error: Unanswered,
    },
    /// The CA answered with an error.
    #[error("the CA refused the request ({status}, {code}): {message}")]
    CaRefused {
        /// The HTTP status.
        status: u16,
        /// The CA's error code (docs/ca-api.md).
        code: String,
        /// The CA's message.
        message: String,
    },
    /// Reaching the CA at start did not succeed within the enrollment time limit.
    #[error("{what}: gave up after {after} (--enroll-timeout), {attempts} attempt(s); last error: {last}")]
    GaveUp {
        /// The step (`downloading the CA root`, `enrolling with the CA`).
        what: String,
        /// The time limit, in words.
        after: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<MeshError>,
    },
    /// A connection could not be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A request on an open connection failed.
    #[error("HTTP: {0}")]
    Http(HttpError),
    /// A certificate, key or CSR problem found by `pki`.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// The Workload API (`--workload-api`) could not be reached, refused this process an
    /// identity, or did not offer the one asked for.
    #[error("Workload API unix://{}: {reason}", .socket.display())]
    WorkloadApi {
        /// The agent's socket.
        socket: PathBuf,
        /// What went wrong, and how to fix it.
        reason: String,
    },
    /// A file or socket operation failed.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        error: std::io::Error,
    },
}

/// `From` for the variants whose message adds a prefix to their cause's (no `#[from]`: that
/// would make the cause a `source()` too).
macro_rules! from_cause {
    ($($variant:ident($cause:ty)),* $(,)?) => {
        $(impl From<$cause> for MeshError {
            fn from(cause: $cause) -> MeshError {
                MeshError::$variant(cause)
            }
        })*
    };
}

from_cause!(
    Config(ConfigError),
    Credential(CredentialError),
    Trust(TrustError),
    CrlRefused(pki::crl::CrlError),
    Tls(wire::tls::TlsConfigError),
    Http(HttpError),
);

impl MeshError {
    /// The message without the category prefix, for wrapping in a more specific context.
    pub(crate) fn detail(&self) -> String {
        match self {
            MeshError::Config(e) => e.to_string(),
            MeshError::Credential(e) => e.to_string(),
            MeshError::Trust(e) => e.to_string(),
            MeshError::Http(e) => e.to_string(),
            MeshError::Tls(e) => e.to_string(),
            other => other.to_string(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, error: std::io::Error) -> Self {
        MeshError::Io {
            context: context.into(),
            error,
        }
    }
}

/// A result with [`MeshError`].
pub type Result<T> = std::result::Result<T, MeshError>;

/// A setting that cannot work. The programs refuse most of these on their command line already
/// (naming the option); the library checks again for embedders, naming the configuration field.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not a URL at all.
    #[error("{input:?} is not a URL: {reason}")]
    NotAUrl {
        /// What was given.
        input: String,
        /// The parser's complaint.
        reason: String,
    },
    /// An `http://` URL.
    #[error("{input} uses plain http://; mtls-mesh talks only TLS 1.3 (use https://)")]
    PlainHttp {
        /// What was given.
        input: String,
    },
    /// A URL with another scheme, or none.
    #[error("{input:?} must start with https://")]
    NotHttps {
        /// What was given.
        input: String,
    },
    /// A URL without a host.
    #[error("{input:?} has no host")]
    NoHost {
        /// What was given.
        input: String,
    },
    /// A host that is neither a DNS name nor an IP address.
    #[error("{host:?} is not a valid server name: {reason}")]
    ServerName {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// Enrolled mode without a CA URL.
    #[error("enrolled mode needs at least one CA URL (ca_urls is empty)")]
    NoCaUrl,
    /// Not a SHA-256 fingerprint.
    #[error("{input:?} is not a SHA-256 fingerprint (64 hex digits, as mtls-ca prints at start)")]
    Fingerprint {
        /// What was given.
        input: String,
    },
    /// A rotation point outside (0, 1).
    #[error("{value} must be between 0 and 1 (exclusive), e.g. 0.5")]
    RotateAt {
        /// What was given.
        value: f64,
    },
    /// An interval or time limit below its floor.
    #[error("{setting} {} is too short: the minimum is {}", humantime::format_duration(*.value), humantime::format_duration(*.minimum))]
    TooShort {
        /// The configuration field (`revocation.crl_refresh`, ...).
        setting: &'static str,
        /// What was given.
        value: Duration,
        /// The smallest accepted value.
        minimum: Duration,
    },
    /// An empty join token.
    #[error("the join token is empty ({origin})")]
    EmptyJoinToken {
        /// Where it was read from.
        origin: String,
    },
    /// An allow-list entry that is not a SPIFFE ID or a prefix.
    #[error("{pattern:?}: {reason} (expected a SPIFFE ID or a prefix such as spiffe://mesh.local/service/*)")]
    AllowPattern {
        /// What was given.
        pattern: String,
        /// Why it is not a SPIFFE ID.
        reason: String,
    },
    /// A pin without the `sha256:` prefix.
    #[error("{input:?}: expected sha256:<64 hex digits of the SPKI SHA-256>")]
    PinFormat {
        /// What was given.
        input: String,
    },
    /// A pin whose hash is not 64 hex digits.
    #[error("{input:?}: the hash must be 64 hex digits (SHA-256)")]
    PinHash {
        /// What was given.
        input: String,
    },
    /// Pinned mode without a pin.
    #[error("pinned mode needs at least one pin")]
    NoPins,
    /// A line of a pins file that is not a pin.
    #[error("{} line {line}: {error}", .path.display())]
    PinsFileLine {
        /// The pins file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        error: Box<ConfigError>,
    },
    /// A pins file without a single pin.
    #[error("{}: no pin in the file (one sha256:<hex> per line); an empty pins file would trust no peer and is refused", .path.display())]
    PinsFileEmpty {
        /// The pins file.
        path: PathBuf,
    },
    /// A pins file that is not UTF-8 text.
    #[error("{}: not a text file (expected one sha256:<hex> pin per line)", .path.display())]
    PinsFileEncoding {
        /// The pins file.
        path: PathBuf,
    },
    /// The admin listener on a non-loopback address.
    #[error(
        "{addr}: the admin endpoint is plain HTTP without authentication and must listen on a \
         loopback address (127.0.0.1 or ::1)"
    )]
    AdminNotLoopback {
        /// The address given.
        addr: std::net::SocketAddr,
    },
}

/// A certificate or key that cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// No certificate in the chain.
    #[error("the certificate chain is empty")]
    EmptyChain,
    /// A key rustls cannot use.
    #[error("unusable private key: {reason}")]
    UnusableKey {
        /// Why.
        reason: &'static str,
    },
    /// Key and certificate do not belong together.
    #[error("the private key does not belong to the certificate {serial} ({error})")]
    KeyMismatch {
        /// The certificate's serial.
        serial: String,
        /// What rustls found.
        error: rustls::Error,
    },
    /// The certificate failed validation (roots, validity, EKU, the expected SPIFFE ID).
    #[error("certificate {serial} ({identity}) was not accepted for {eku}: {error}")]
    NotAccepted {
        /// The certificate's serial.
        serial: String,
        /// Its SPIFFE ID, else its subject.
        identity: String,
        /// The EKU the role needs (`serverAuth`, `clientAuth`).
        eku: &'static str,
        /// What `pki::verify` said.
        error: Box<pki::verify::VerifyError>,
    },
    /// The certificate and key files (static and pinned mode) cannot be used.
    #[error("{} + {}: {}", .cert.display(), .key.display(), .error.detail())]
    Files {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        error: Box<MeshError>,
    },
    /// A Workload API message whose certificates do not parse.
    #[error("{reason}")]
    WorkloadApi {
        /// What did not parse.
        reason: String,
    },
    /// The CSR could not be built.
    #[error("{step}: {reason}")]
    Csr {
        /// `SPIFFE ID as URI`, `creating the CSR` or `encoding the CSR`.
        step: &'static str,
        /// rcgen's complaint.
        reason: String,
    },
}

/// Roots that cannot be used, or a CA that is not the one configured.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A trust bundle without certificates.
    #[error("the trust bundle holds no certificate")]
    EmptyBundle,
    /// A root rustls cannot use.
    #[error("trust bundle certificate #{index}: {error}")]
    BadRoot {
        /// 1-based position in the bundle.
        index: usize,
        /// What rustls found.
        error: rustls::Error,
    },
    /// A roots file that cannot be used.
    #[error("{}: {}", .path.display(), .error.detail())]
    RootsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: Box<MeshError>,
    },
    /// The certificate verifier could not be built from the roots.
    #[error("building the {side} certificate verifier: {reason}")]
    Verifier {
        /// `client` or `server`.
        side: &'static str,
        /// What rustls said.
        reason: String,
    },
    /// The root downloaded for `--ca-fingerprint` has another fingerprint.
    #[error(
        "the CA at {url} served a root whose SHA-256 fingerprint is not {expected} (it served \
         {}); refusing it (wrong --ca-fingerprint, or someone is intercepting the connection)",
        presented.join(", ")
    )]
    RootFingerprint {
        /// The CA URL.
        url: String,
        /// The fingerprint configured.
        expected: String,
        /// The fingerprints of the certificates served.
        presented: Vec<String>,
    },
    /// A federated bundle for our own trust domain: only our own roots vouch for it.
    #[error(
        "refusing a federated bundle for {trust_domain}: that is this service's own trust \
         domain, which only its own CA's roots vouch for"
    )]
    FederatedOwnDomain {
        /// The trust domain.
        trust_domain: String,
    },
    /// Whatever answers at the CA's URL is not the CA: nothing was sent to it.
    #[error("refusing to talk to {url}: server identity mismatch: {error}")]
    NotTheCa {
        /// The endpoint called.
        url: String,
        /// Which identity was expected and which was presented.
        error: PeerIdentityError,
    },
}

/// Why a call to the CA got no answer.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Unanswered {
    /// Nothing within the time limit.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection could not be opened.
    #[error("{0}")]
    Connect(ConnectError),
    /// The request failed on the connection.
    #[error("{0}")]
    Http(HttpError),
}

/// A connection that could not be opened.
#[derive(Debug, Error)]
#[error("connection to {addr}: {failure}")]
pub struct ConnectError {
    /// host:port.
    pub addr: String,
    /// What failed.
    pub failure: ConnectFailure,
}

/// The step of opening a connection that failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// TCP connect took too long.
    #[error("TCP connect timed out after {0:?}")]
    TcpTimeout(Duration),
    /// TCP connect failed.
    #[error("TCP connect: {0}")]
    Tcp(std::io::Error),
    /// The TLS handshake took too long.
    #[error("TLS handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// The TLS handshake failed; `reason` says why in words (`tls::describe`).
    #[error("TLS handshake failed: {reason}")]
    Handshake {
        /// Why, in words.
        reason: String,
        /// The error, with the rustls error inside when there is one.
        error: std::io::Error,
    },
    /// The HTTP/1.1 handshake failed.
    #[error("HTTP handshake: {reason}")]
    HttpHandshake {
        /// Why, in words.
        reason: String,
    },
}

/// A request on an open connection that failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The request could not be built.
    #[error("building the request: {0}")]
    Request(hyper::http::Error),
    /// The body could not be encoded.
    #[error("encoding the request: {0}")]
    Encode(serde_json::Error),
    /// The connection failed during the exchange; in TLS 1.3 this is where the server's refusal
    /// of our certificate arrives (`reason` names its alert).
    #[error("{reason}")]
    Exchange {
        /// Why, in words.
        reason: String,
        /// The TLS error, when the failure was one.
        tls: Option<rustls::Error>,
    },
    /// The response body could not be read.
    #[error("reading the response body: {reason}")]
    Body {
        /// Why.
        reason: String,
    },
    /// No response in time.
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// Printing an error with its chain (anyhow's `{:#}`, as the programs do) must not repeat
    /// the cause the message already contains.
    #[test]
    fn every_message_holds_its_cause_once() {
        let errors: Vec<MeshError> = vec![
            ConfigError::NoCaUrl.into(),
            CredentialError::KeyMismatch {
                serial: "01".into(),
                error: rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch),
            }
            .into(),
            TrustError::BadRoot {
                index: 1,
                error: rustls::Error::General("bad".into()),
            }
            .into(),
            MeshError::io(
                "reading the key file k.pem",
                std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"),
            ),
            MeshError::Ca {
                url: "https://localhost:1/api/v1/crl".into(),
                error: Unanswered::Connect(ConnectError {
                    addr: "localhost:1".into(),
                    failure: ConnectFailure::Tcp(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "Connection refused",
                    )),
                }),
            },
            HttpError::Timeout(Duration::from_secs(10)).into(),
            wire::tls::TlsConfigError::NoGroups.into(),
        ];
        for e in errors {
            assert!(e.source().is_none(), "{e} has a source besides its message");
        }
        let http: MeshError = HttpError::Exchange {
            reason: "server rejected our certificate: revoked".into(),
            tls: None,
        }
        .into();
        assert_eq!(
            http.to_string(),
            "HTTP: server rejected our certificate: revoked"
        );
    }
}
