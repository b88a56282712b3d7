//! `mtls-inspect remote HOST:PORT`: connects with TLS 1.3 and reports the chain the server
//! presented, version, suite and group, whether it asked for a client certificate and whether
//! it accepted us, and the verification result when `--ca-cert` is given.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use pki::verify::{ExpectedIdentity, TrustStore};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use time::OffsetDateTime;

use crate::input::{self, Kind, Object};
use crate::model::{CertView, ObjectView};
use crate::render_json::{self, REMOTE_SCHEMA};
use crate::render_text;
use crate::tls_probe::{self, Probe, ProbeConfig, ServerResponse};
use crate::{Exit, Format};

/// What `mtls-inspect remote` was asked to do.
#[derive(Clone, Debug)]
pub struct RemoteArgs {
    /// `HOST:PORT` or `[IPv6]:PORT`.
    pub target: String,
    /// Server name for SNI and hostname verification (default: HOST).
    pub servername: Option<String>,
    /// Client certificate chain to present (PEM file).
    pub cert: Option<String>,
    /// Its private key (PEM file).
    pub key: Option<String>,
    /// Roots to verify the server's chain with; without them it is shown unverified.
    pub ca_cert: Option<String>,
    /// The SPIFFE ID the server must present.
    pub spiffe_id: Option<String>,
    /// The trust domain the server's SPIFFE ID must be in.
    pub trust_domain: Option<String>,
    /// Bound on connecting, the handshake and waiting for the server's verdict.
    pub timeout: Duration,
    /// The time to verify at.
    pub at: OffsetDateTime,
    /// Text or JSON.
    pub format: Format,
    /// Print each certificate in full rather than one line each.
    pub full: bool,
}

#[derive(Debug, Serialize)]
struct RemoteDocument {
    schema: &'static str,
    target: String,
    address: String,
    server_name: String,
    tls_version: Option<String>,
    cipher_suite: Option<String>,
    key_exchange_group: Option<String>,
    /// Null when the handshake completed.
    handshake_error: Option<String>,
    chain: Vec<CertView>,
    client_certificate: ClientCertView,
    server_response: Option<ServerResponse>,
    verification: VerificationView,
}

#[derive(Debug, Serialize)]
struct ClientCertView {
    requested: bool,
    acceptable_issuers: Vec<String>,
    sent: bool,
}

#[derive(Debug, Serialize)]
struct VerificationView {
    /// False when no --ca-cert was given (the chain was accepted without checks).
    performed: bool,
    valid: Option<bool>,
    error_code: Option<&'static str>,
    error: Option<String>,
    spiffe_id: Option<String>,
}

/// Splits `host:port` (or `[v6]:port`).
pub fn split_target(target: &str) -> Result<(String, u16)> {
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| anyhow!("{target:?}: expected [IPv6]:PORT"))?;
        (h, p)
    } else {
        target
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("{target:?}: expected HOST:PORT"))?
    };
    if host.is_empty() {
        bail!("{target:?}: the host is empty");
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| anyhow!("{target:?}: {port:?} is not a port number"))?;
    Ok((host.to_string(), port))
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok((s, addr)),
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) => Err(anyhow!("cannot connect to {addr}: {e}")),
        None => Err(anyhow!("{host} resolves to no address")),
    }
}

fn client_key(cert: &str, key: &str) -> Result<Arc<CertifiedKey>> {
    let chain: Vec<CertificateDer<'static>> = input::load_certificates(cert, "client certificate")?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key_bytes = input::read_source(key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| anyhow!("{key}: no usable private key: {e}"))?;
    let certified = CertifiedKey::from_der(chain, key_der, &tls_probe::provider())
        .map_err(|e| anyhow!("--cert {cert} / --key {key}: {e}"))?;
    Ok(Arc::new(certified))
}

/// Runs `remote`: connects, reports the chain, the negotiated parameters and the verdict.
/// Exit 1 when the handshake failed or the chain is invalid, 2 when the server is unreachable.
pub fn run(args: &RemoteArgs, out: &mut dyn Write) -> Result<Exit> {
    let (host, port) = split_target(&args.target)?;
    let sni = args.servername.clone().unwrap_or_else(|| host.clone());
    let server_name = ServerName::try_from(sni.clone())
        .map_err(|_| anyhow!("{sni:?} is not a valid server name (DNS name or IP address)"))?;
    let client_key = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => Some(client_key(c, k)?),
        (None, None) => None,
        _ => bail!("--cert and --key go together"),
    };
    let trust = match &args.ca_cert {
        Some(file) => {
            let roots: Vec<CertificateDer<'static>> =
                input::load_certificates(file, "CA certificates")?
                    .into_iter()
                    .map(CertificateDer::from)
                    .collect();
            Some(TrustStore::new(&roots, &[] as &[Vec<u8>]).map_err(|e| anyhow!("{file}: {e}"))?)
        }
        None => None,
    };
    let identity = match (&args.spiffe_id, &args.trust_domain) {
        (Some(_), Some(_)) => bail!("give either --spiffe-id or --trust-domain, not both"),
        (Some(id), None) => Some(ExpectedIdentity::SpiffeId(
            pki::SpiffeId::parse(id).map_err(|e| anyhow!("--spiffe-id: {e}"))?,
        )),
        (None, Some(td)) => Some(ExpectedIdentity::TrustDomain(
            pki::TrustDomain::parse(td).map_err(|e| anyhow!("--trust-domain: {e}"))?,
        )),
        (None, None) => None,
    };
    if identity.is_some() && trust.is_none() {
        bail!("--spiffe-id and --trust-domain need --ca-cert (the chain must be verified first)");
    }
    let (mut sock, addr) = connect(&host, port, args.timeout)?;
    let probe = tls_probe::probe(
        &mut sock,
        ProbeConfig {
            server_name,
            hostname: Some(sni.clone()),
            trust,
            identity,
            client_key,
            at: args.at,
            timeout: args.timeout,
        },
    );
    let doc = document(args, addr, &sni, &probe)?;
    match args.format {
        Format::Json => out.write_all(render_json::to_json(&doc)?.as_bytes())?,
        _ => out.write_all(text(&doc, args.full).as_bytes())?,
    }
    let verified_ok = doc.verification.valid != Some(false);
    Ok(if doc.handshake_error.is_none() && verified_ok {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn document(
    args: &RemoteArgs,
    addr: SocketAddr,
    sni: &str,
    probe: &Probe,
) -> Result<RemoteDocument> {
    let mut chain = Vec::new();
    for (i, der) in probe.chain.iter().enumerate() {
        let obj = Object {
            kind: Kind::Certificate,
            der: der.to_vec(),
            source: args.target.clone(),
            index: i + 1,
        };
        chain.push(CertView::build(&obj, args.at)?);
    }
    let verification = match &probe.verification {
        None => VerificationView {
            performed: false,
            valid: None,
            error_code: None,
            error: None,
            spiffe_id: None,
        },
        Some(Ok(v)) => VerificationView {
            performed: true,
            valid: Some(true),
            error_code: None,
            error: None,
            spiffe_id: v.spiffe_id.as_ref().map(ToString::to_string),
        },
        Some(Err(e)) => VerificationView {
            performed: true,
            valid: Some(false),
            error_code: Some(e.code()),
            error: Some(e.to_string()),
            spiffe_id: None,
        },
    };
    Ok(RemoteDocument {
        schema: REMOTE_SCHEMA,
        target: args.target.clone(),
        address: addr.to_string(),
        server_name: sni.to_string(),
        tls_version: probe.version.clone(),
        cipher_suite: probe.cipher_suite.clone(),
        key_exchange_group: probe.group.clone(),
        handshake_error: probe.handshake_error.clone(),
        chain,
        client_certificate: ClientCertView {
            requested: probe.client_cert_requested,
            acceptable_issuers: probe.acceptable_issuers.clone(),
            sent: probe.client_cert_sent,
        },
        server_response: probe.server_response.clone(),
        verification,
    })
}

fn text(doc: &RemoteDocument, full: bool) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let sni_note = if doc.server_name.parse::<IpAddr>().is_ok() {
        " (IP address: no SNI sent)"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "Connected to {} ({}), server name {}{sni_note}",
        doc.target, doc.address, doc.server_name
    );
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(s, "  TLS version:   {}", show(&doc.tls_version));
    let _ = writeln!(s, "  Cipher suite:  {}", show(&doc.cipher_suite));
    let _ = writeln!(s, "  Key exchange:  {}", show(&doc.key_exchange_group));
    if let Some(e) = &doc.handshake_error {
        let _ = writeln!(s, "  Handshake:     FAILED: {e}");
    } else {
        let _ = writeln!(s, "  Handshake:     completed");
    }
    let cc = &doc.client_certificate;
    let requested = if !cc.requested {
        "not requested by the server".to_string()
    } else if cc.sent {
        "requested; ours was sent".to_string()
    } else {
        "requested; none sent (no --cert/--key)".to_string()
    };
    let _ = writeln!(s, "  Client cert:   {requested}");
    if !cc.acceptable_issuers.is_empty() {
        let _ = writeln!(s, "  Accepted CAs:  {}", cc.acceptable_issuers.join("; "));
    }
    match &doc.server_response {
        Some(ServerResponse::Closed) => {
            let _ = writeln!(
                s,
                "  Server:        accepted the connection (closed it cleanly)"
            );
        }
        Some(ServerResponse::Alert(a)) => {
            let _ = writeln!(s, "  Server:        REJECTED the connection: alert {a}");
        }
        Some(ServerResponse::Timeout) => {
            let _ = writeln!(
                s,
                "  Server:        no rejection before the timeout (connection left open)"
            );
        }
        None => {}
    }
    let v = &doc.verification;
    let verdict = match (v.performed, v.valid, &v.error) {
        (false, ..) => {
            "not verified (no --ca-cert: the chain was accepted without checks)".to_string()
        }
        (true, Some(true), _) => match &v.spiffe_id {
            Some(id) => format!("OK (server certificate for {id})"),
            None => "OK".to_string(),
        },
        (true, _, Some(e)) => format!("INVALID: {e}"),
        _ => "INVALID".to_string(),
    };
    let _ = writeln!(s, "  Verification:  {verdict}");
    let _ = writeln!(
        s,
        "Chain presented by the server ({} certificate{}):",
        doc.chain.len(),
        if doc.chain.len() == 1 { "" } else { "s" }
    );
    for c in &doc.chain {
        let view = ObjectView::Certificate(Box::new(c.clone()));
        if full {
            s.push('\n');
            s.push_str(&render_text::render(&view));
        } else {
            let _ = writeln!(s, "  {}", render_text::short(&view));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            split_target("localhost:443").unwrap(),
            ("localhost".into(), 443)
        );
        assert_eq!(split_target("[::1]:8443").unwrap(), ("::1".into(), 8443));
        assert!(split_target("localhost").is_err());
        assert!(split_target(":443").is_err());
        assert!(split_target("host:http").is_err());
    }
}
