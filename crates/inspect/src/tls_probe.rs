//! The TLS 1.3 client behind `remote`: records the chain the server presents and whether it
//! asks for a client certificate, checks the handshake signature always and the chain (with
//! `pki::verify`) when trust anchors are given, then learns whether the server accepted us.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pki::clock::Deadline;
use pki::verify::{ExpectedIdentity, Purpose, TrustStore, VerifyError, VerifyOptions};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConnection, DigitallySignedStruct, OtherError, SignatureScheme,
};
use time::OffsetDateTime;
use wire::tls::{alert_name, TlsPolicy, ALPN_NONE};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// What the handshake revealed.
#[derive(Debug, Default)]
pub struct Probe {
    /// The chain as the server sent it, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Set when trust anchors were given: the verdict of `pki::verify`.
    pub verification: Option<Result<pki::verify::Verified, VerifyError>>,
    /// The server sent a CertificateRequest.
    pub client_cert_requested: bool,
    /// Distinguished names of the CAs the server said it accepts.
    pub acceptable_issuers: Vec<String>,
    /// We answered the request with a certificate.
    pub client_cert_sent: bool,
    pub version: Option<String>,
    pub cipher_suite: Option<String>,
    pub group: Option<String>,
    pub handshake_error: Option<String>,
    /// How the server reacted after the handshake (our close_notify).
    pub server_response: Option<ServerResponse>,
}

/// What the server did after our side of the handshake completed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ServerResponse {
    /// The server answered our close_notify or closed the connection: it accepted us.
    Closed,
    /// The server sent an alert: it rejected the connection (usually the client certificate).
    Alert(String),
    /// The server kept the connection open without answering before the timeout.
    Timeout,
}

/// Settings of one probe.
pub struct ProbeConfig {
    pub server_name: ServerName<'static>,
    /// Hostname to check against the SANs when verifying (DNS name or IP), if any.
    pub hostname: Option<String>,
    pub trust: Option<TrustStore>,
    pub identity: Option<ExpectedIdentity>,
    pub client_key: Option<Arc<CertifiedKey>>,
    pub at: OffsetDateTime,
    pub timeout: Duration,
}

#[derive(Debug, Default)]
struct Shared {
    chain: Vec<CertificateDer<'static>>,
    verification: Option<Result<pki::verify::Verified, VerifyError>>,
    requested: bool,
    issuers: Vec<String>,
    sent: bool,
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding the lock cannot leave Shared inconsistent (plain assignments).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The crypto provider of the probe: the project's one TLS policy layer (`wire::tls`) in its
/// probe profile: TLS 1.3 only and no resumption like every mesh endpoint, but every TLS 1.3
/// suite, secp384r1 first then X25519, secp521r1, secp256r1 and X25519MLKEM768, and the Web PKI
/// signature algorithms, so servers outside the mesh can be probed. The chain is judged by
/// `pki::verify` (ECDSA only unless asked otherwise), not by the provider.
pub fn provider() -> Arc<CryptoProvider> {
    TlsPolicy::probe().provider()
}

#[derive(Debug)]
struct Recorder {
    shared: Arc<Mutex<Shared>>,
    policy: TlsPolicy,
    trust: Option<TrustStore>,
    identity: Option<ExpectedIdentity>,
    hostname: Option<String>,
    at: OffsetDateTime,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut shared = lock(&self.shared);
        shared.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        let Some(trust) = &self.trust else {
            // No trust anchors: record the chain and continue, so it can be shown.
            return Ok(ServerCertVerified::assertion());
        };
        let opts = VerifyOptions {
            time: self.at,
            purpose: Purpose::Server,
            hostname: self.hostname.as_deref(),
            identity: self.identity.as_ref(),
        };
        let result = trust.verify(end_entity, intermediates, &opts);
        let verdict = match &result {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(e.clone())),
            ))),
        };
        shared.verification = Some(result);
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.policy.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.policy.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.policy.supported_schemes()
    }
}

#[derive(Debug)]
struct ClientAuth {
    shared: Arc<Mutex<Shared>>,
    key: Option<Arc<CertifiedKey>>,
}

impl ResolvesClientCert for ClientAuth {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let mut shared = lock(&self.shared);
        shared.requested = true;
        shared.issuers = root_hint_subjects
            .iter()
            .map(|dn| match X509Name::from_der(dn) {
                Ok((_, name)) => name.to_string(),
                Err(_) => format!("(unparsable name, {} bytes)", dn.len()),
            })
            .collect();
        let key = self.key.clone()?;
        shared.sent = key.key.choose_scheme(sigschemes).is_some();
        Some(key)
    }

    fn has_certs(&self) -> bool {
        // Always true, so that a CertificateRequest reaches `resolve` and is recorded.
        true
    }
}

/// Runs the handshake over `sock` and reports what happened; TLS and I/O failures are part of
/// the report (`handshake_error`), not errors.
pub fn probe(sock: &mut TcpStream, cfg: ProbeConfig) -> Probe {
    let policy = TlsPolicy::probe();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let recorder = Recorder {
        shared: shared.clone(),
        policy: policy.clone(),
        trust: cfg.trust,
        identity: cfg.identity,
        hostname: cfg.hostname,
        at: cfg.at,
    };
    let mut probe = Probe::default();
    let config = policy.client_config(
        Arc::new(recorder),
        Some(Arc::new(ClientAuth {
            shared: shared.clone(),
            key: cfg.client_key,
        })),
        ALPN_NONE,
    );
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            probe.handshake_error = Some(format!("TLS configuration: {e}"));
            return probe;
        }
    };
    let deadline = Deadline::after(cfg.timeout);
    let result = ClientConnection::new(Arc::new(config), cfg.server_name)
        .map_err(|e| e.to_string())
        .and_then(|mut conn| {
            handshake(&mut conn, sock, deadline)?;
            Ok(conn)
        });
    match result {
        Ok(mut conn) => {
            // OpenSSL's spelling of the version and rustls' names of the suite and group
            // (`TLS13_AES_256_GCM_SHA384`, `secp384r1`), as the JSON schema documents them;
            // code points rustls has no name for are shown in hex.
            probe.version = conn.protocol_version().map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                other => wire::tls::version_name(other).into_owned(),
            });
            probe.cipher_suite = conn.negotiated_cipher_suite().map(|s| {
                let suite = s.suite();
                suite
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| wire::tls::suite_name(suite).into_owned())
            });
            probe.group = conn.negotiated_key_exchange_group().map(|g| {
                let group = g.name();
                group
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| wire::tls::group_name(group).into_owned())
            });
            probe.server_response = Some(after_handshake(&mut conn, sock, deadline));
        }
        Err(e) => probe.handshake_error = Some(e),
    }
    let shared = std::mem::take(&mut *lock(&shared));
    probe.chain = shared.chain;
    probe.verification = shared.verification;
    probe.client_cert_requested = shared.requested;
    probe.acceptable_issuers = shared.issuers;
    probe.client_cert_sent = shared.sent;
    probe
}

fn set_timeout(sock: &TcpStream, deadline: Deadline) -> Result<(), String> {
    let left = Some(deadline.remaining())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "timed out".to_string())?;
    sock.set_read_timeout(Some(left))
        .and_then(|()| sock.set_write_timeout(Some(left)))
        .map_err(|e| format!("setting socket timeouts: {e}"))
}

fn handshake(
    conn: &mut ClientConnection,
    sock: &mut TcpStream,
    deadline: Deadline,
) -> Result<(), String> {
    while conn.is_handshaking() {
        set_timeout(sock, deadline)?;
        if let Err(e) = conn.complete_io(sock) {
            return Err(describe_io_error(&e));
        }
    }
    // Flush our Finished (and client certificate) to the server.
    while conn.wants_write() {
        conn.write_tls(sock).map_err(|e| describe_io_error(&e))?;
    }
    Ok(())
}

/// Sends close_notify and waits for the server's reaction: its own close_notify or EOF means
/// it accepted the handshake, an alert means it rejected it (TLS 1.3 clients finish before the
/// server has judged their certificate).
fn after_handshake(
    conn: &mut ClientConnection,
    sock: &mut TcpStream,
    deadline: Deadline,
) -> ServerResponse {
    conn.send_close_notify();
    while conn.wants_write() {
        if conn.write_tls(sock).is_err() {
            break;
        }
    }
    let mut buf = [0u8; 4096];
    loop {
        if set_timeout(sock, deadline).is_err() {
            return ServerResponse::Timeout;
        }
        match conn.read_tls(sock) {
            Ok(0) => return ServerResponse::Closed,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return ServerResponse::Timeout
            }
            Err(_) => return ServerResponse::Closed,
        }
        match conn.process_new_packets() {
            Ok(state) => {
                if state.peer_has_closed() {
                    return ServerResponse::Closed;
                }
                // Application data (e.g. an HTTP server's greeting) is read and dropped.
                while let Ok(n) = conn.reader().read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
            Err(rustls::Error::AlertReceived(alert)) => {
                return ServerResponse::Alert(alert_name(alert).into_owned())
            }
            Err(e) => return ServerResponse::Alert(e.to_string()),
        }
        let _ = sock.flush();
    }
}

fn describe_io_error(e: &std::io::Error) -> String {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::AlertReceived(a) => format!("the server sent alert {}", alert_name(*a)),
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                format!("server certificate rejected: {}", other.0)
            }
            other => other.to_string(),
        };
    }
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => "timed out during the handshake".into(),
        ErrorKind::UnexpectedEof => {
            "the server closed the connection during the handshake (not a TLS 1.3 server?)".into()
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_are_snake_case() {
        assert_eq!(
            alert_name(rustls::AlertDescription::CertificateRequired),
            "certificate_required"
        );
        assert_eq!(
            alert_name(rustls::AlertDescription::BadCertificate),
            "bad_certificate"
        );
        assert_eq!(
            alert_name(rustls::AlertDescription::UnknownCA),
            "unknown_ca"
        );
    }

    #[test]
    fn provider_is_tls13_only() {
        let p = provider();
        assert!(p
            .cipher_suites
            .iter()
            .all(|s| s.version() == &rustls::version::TLS13));
        assert!(p
            .kx_groups
            .iter()
            .any(|g| g.name() == rustls::NamedGroup::secp521r1));
    }
}
