//! TLS to PostgreSQL: libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` in the
//! `--store postgres://...?...` URL (docs/operations.md, "TLS to the database").
//!
//! `tokio-postgres` parses `sslmode` itself but knows only disable, prefer and require, and no
//! certificate files; so these four parameters are taken out of the URL here, before the
//! driver sees it, and turn into the driver's `SslMode` plus a rustls connector
//! (`tokio-postgres-rustls`) whose verifier does what the mode promises:
//!
//! | `sslmode` | encrypted | server certificate |
//! |---|---|---|
//! | `disable` (also: no `sslmode`) | no | — |
//! | `require` | yes | not checked; with `sslrootcert`, checked as `verify-ca` (as libpq) |
//! | `verify-ca` | yes | signed by a CA in `sslrootcert` |
//! | `verify-full` | yes | signed by a CA in `sslrootcert` and valid for the host connected to |
//!
//! `prefer` and `allow` are refused: they fall back to plain text without a word when the
//! server offers no TLS, and check no certificate, so an attacker on the path gets the
//! connection either way while the URL looks protected. The CA says which mode to use instead.
//! Missing `sslmode` means `disable` (what the CA did before TLS existed), not libpq's
//! `prefer`. Certificates come only from the files named: there is no implicit
//! `~/.postgresql/root.crt` and no system store.
//!
//! The handshake is TLS 1.3 with the aws-lc-rs provider of the rest of the project (the
//! foreign-server profile, `TlsPolicy::probe`: RSA and ECDSA server certificates, X25519 and
//! the NIST groups); every PostgreSQL built with OpenSSL 1.1.1 or newer offers TLS 1.3.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use wire::tls::{CertResolver, TlsPolicy};

use super::{Result, StoreError};

/// The URL parameters this module owns; the driver never sees them.
const OWN_PARAMS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// What the URL asks of the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain TCP (or a unix socket).
    Disable,
    /// Encrypted; the certificate is not checked.
    Require,
    /// Encrypted; the chain must lead to `sslrootcert`.
    VerifyCa,
    /// Encrypted; the chain must lead to `sslrootcert` and name the host.
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Mode> {
        match value {
            "disable" => Ok(Mode::Disable),
            "require" => Ok(Mode::Require),
            "verify-ca" => Ok(Mode::VerifyCa),
            "verify-full" => Ok(Mode::VerifyFull),
            "prefer" | "allow" => Err(setup(format!(
                "sslmode={value} is refused: it silently falls back to an unencrypted \
                 connection and checks no certificate; use sslmode=verify-full with \
                 sslrootcert=FILE (or sslmode=disable on a trusted network)"
            ))),
            other => Err(setup(format!(
                "sslmode={other:?} is not one of disable, require, verify-ca, verify-full"
            ))),
        }
    }

    /// The name as the URL spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS parameters of a `--store` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: Mode,
    /// PEM file of the CA certificate(s) that sign the server's certificate.
    pub root: Option<PathBuf>,
    /// PEM file of a client certificate (chain) presented to the server.
    pub cert: Option<PathBuf>,
    /// PEM file of that certificate's private key.
    pub key: Option<PathBuf>,
}

fn setup(message: String) -> StoreError {
    StoreError::Setup(format!("--store: {message} (docs/operations.md)"))
}

/// Takes the TLS parameters out of a `postgres://` URL: returns the URL for the driver (the
/// same, less those parameters) and the parameters, checked against each other. The URL is
/// cut as `tokio-postgres` cuts it (credentials up to the first `@`, then the query after the
/// first `?`), so both read the same parameters.
pub fn split(url: &str) -> Result<(String, TlsParams)> {
    let Some(after_scheme) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| url.strip_prefix(p))
    else {
        return Err(setup(
            "expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAMETERS]".into(),
        ));
    };
    let scheme = &url[..url.len() - after_scheme.len()];
    let credentials_end = after_scheme.find('@').map_or(0, |at| at + 1);
    let (credentials, rest) = after_scheme.split_at(credentials_end);
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let mut kept = Vec::new();
    let mut mode = None;
    let (mut root, mut cert, mut key) = (None, None, None);
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode_str(name).decode_utf8_lossy();
        if !OWN_PARAMS.contains(&name.as_ref()) {
            kept.push(pair);
            continue;
        }
        let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
        match name.as_ref() {
            "sslmode" => mode = Some(Mode::parse(&value)?),
            "sslrootcert" if value == "system" => {
                return Err(setup(
                    "sslrootcert=system (the operating system's roots) is not supported; name \
                     the PEM file of the CA that signs the database server's certificate"
                        .into(),
                ))
            }
            "sslrootcert" => root = Some(PathBuf::from(value)),
            "sslcert" => cert = Some(PathBuf::from(value)),
            _ => key = Some(PathBuf::from(value)),
        }
    }
    let params = TlsParams {
        mode: mode.unwrap_or(Mode::Disable),
        root,
        cert,
        key,
    };
    params.check()?;
    let mut driver_url = format!("{scheme}{credentials}{location}");
    if !kept.is_empty() {
        driver_url.push('?');
        driver_url.push_str(&kept.join("&"));
    }
    Ok((driver_url, params))
}

impl TlsParams {
    /// Refuses combinations that would not do what they seem to.
    fn check(&self) -> Result<()> {
        let files = [
            ("sslrootcert", &self.root),
            ("sslcert", &self.cert),
            ("sslkey", &self.key),
        ];
        if self.mode == Mode::Disable {
            if let Some((name, _)) = files.iter().find(|(_, f)| f.is_some()) {
                return Err(setup(format!(
                    "{name} is given but sslmode is disable (the default when sslmode is \
                     missing): the connection would not use TLS; add sslmode=verify-full"
                )));
            }
        }
        if matches!(self.mode, Mode::VerifyCa | Mode::VerifyFull) && self.root.is_none() {
            return Err(setup(format!(
                "sslmode={} needs sslrootcert=FILE, the PEM file of the CA that signs the \
                 database server's certificate",
                self.mode.as_str()
            )));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(setup(
                "sslcert and sslkey go together: the client certificate and its private key".into(),
            ));
        }
        Ok(())
    }

    /// The driver's mode: `Require` for every TLS mode (the verifier does the rest).
    pub fn driver_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            _ => SslMode::Require,
        }
    }

    /// The rustls connector for the driver, or None for `disable`. Reads the certificate
    /// files now, so a missing or bad file stops the CA at start, naming the file.
    pub fn connector(&self) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>> {
        if self.mode == Mode::Disable {
            return Ok(None);
        }
        let policy = TlsPolicy::probe();
        let chain = match &self.root {
            None => None,
            Some(root) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(root, "sslrootcert")? {
                    roots.add(cert).map_err(|e| {
                        setup(format!(
                            "sslrootcert {}: not a usable CA certificate: {e}",
                            root.display()
                        ))
                    })?;
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), policy.provider())
                        .build()
                        .map_err(|e| setup(format!("sslrootcert {}: {e}", root.display())))?;
                Some(Chain {
                    webpki,
                    check_name: self.mode == Mode::VerifyFull,
                    root: root.clone(),
                })
            }
        };
        let verifier = Arc::new(DbServerVerifier {
            policy: policy.clone(),
            chain,
        });
        let resolver = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(client_key(&policy, cert, key)?),
            _ => None,
        };
        // ALPN "postgresql", as libpq 17 sends: servers from 17 on check it when given.
        let config = policy
            .client_config(verifier, resolver, &[b"postgresql"])
            .map_err(|e| setup(format!("TLS to the database: {e}")))?;
        Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
    }
}

fn read_certs(path: &Path, param: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect())
        .map_err(|e| setup(format!("{param} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(setup(format!(
            "{param} {}: no PEM CERTIFICATE in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The client certificate and key of `sslcert`/`sslkey`, checked to belong together.
fn client_key(policy: &TlsPolicy, cert: &Path, key: &Path) -> Result<Arc<dyn ResolvesClientCert>> {
    let chain = read_certs(cert, "sslcert")?;
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| setup(format!("sslkey {}: {e}", key.display())))?;
    let certified = rustls::sign::CertifiedKey::from_der(chain, private, &policy.provider())
        .map_err(|e| {
            setup(format!(
                "sslcert {} with sslkey {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    Ok(CertResolver::new(Arc::new(certified)))
}

/// The database server's certificate as the mode asks. Handshake signatures are always
/// checked with the policy's algorithms (so the session is encrypted to whoever holds the
/// certificate's key); the certificate itself only with a `chain` (`require` without
/// `sslrootcert` has none).
#[derive(Debug)]
struct DbServerVerifier {
    policy: TlsPolicy,
    chain: Option<Chain>,
}

/// `verify-ca` (`check_name` false) and `verify-full`: the chain must lead to `sslrootcert`.
#[derive(Debug)]
struct Chain {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
    root: PathBuf,
}

/// A refused server certificate, in words that say which server and what to fix.
#[derive(Debug, thiserror::Error)]
#[error("the certificate of PostgreSQL server {server} {problem}")]
struct Refused {
    server: String,
    problem: String,
}

impl Chain {
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let error =
            match self
                .webpki
                .verify_server_cert(end_entity, intermediates, server_name, &[], now)
            {
                Ok(verified) => return Ok(verified),
                Err(e) => e,
            };
        // webpki checks the name only after the chain: a name error means the chain is good,
        // which is all verify-ca asks.
        let problem = match &error {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) if !self.check_name => return Ok(ServerCertVerified::assertion()),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            }) => format!(
                "is not valid for the host name the URL connects to (it names {}); \
                 sslmode=verify-full checks the name: connect by a name the certificate has",
                presented.join(", ")
            ),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
                "is not valid for the host name the URL connects to; sslmode=verify-full checks \
                 the name: connect by a name the certificate has"
                    .to_string()
            }
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "is not signed by a CA in sslrootcert {}",
                self.root.display()
            ),
            other => format!("was refused: {other}"),
        };
        let refused = Refused {
            server: server_name.to_str().into_owned(),
            problem,
        };
        // `Error::Other` prints its message as it is (an `InvalidCertificate` would print
        // the wrapped error's Debug form).
        Err(rustls::Error::Other(rustls::OtherError(Arc::new(refused))))
    }
}

impl ServerCertVerifier for DbServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match &self.chain {
            Some(chain) => chain.verify(end_entity, intermediates, server_name, now),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.policy.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.policy.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.policy.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report
    use super::*;

    fn err(url: &str) -> String {
        split(url).unwrap_err().to_string()
    }

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_is_kept_verbatim() {
        let (url, p) = split(
            "postgres://u:p%3Fw@db1:5432,db2:5433/ca?target_session_attrs=read-write\
             &sslmode=verify-full&sslrootcert=%2Fetc%2Fdb%20ca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://u:p%3Fw@db1:5432,db2:5433/ca?target_session_attrs=read-write&connect_timeout=3"
        );
        assert_eq!(p.mode, Mode::VerifyFull);
        assert_eq!(p.root, Some(PathBuf::from("/etc/db ca.pem")));
        assert_eq!(p.driver_mode(), SslMode::Require);
        // A '?' in the password is not the query (the driver cuts at the first '@' too).
        let (url, p) = split("postgresql://u:a?b@h/db").unwrap();
        assert_eq!(url, "postgresql://u:a?b@h/db");
        assert_eq!(p.mode, Mode::Disable);
        assert_eq!(p.driver_mode(), SslMode::Disable);
        let (url, p) = split("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!((url.as_str(), p.mode), ("postgres://u@h/db", Mode::Require));
    }

    #[test]
    fn modes_that_would_mislead_are_refused_with_what_to_use() {
        for weak in ["prefer", "allow"] {
            let e = err(&format!("postgres://u@h/db?sslmode={weak}"));
            assert!(
                e.contains(&format!("sslmode={weak} is refused")) && e.contains("verify-full"),
                "{e}"
            );
        }
        let e = err("postgres://u@h/db?sslmode=verify-everything");
        assert!(e.contains("not one of disable, require"), "{e}");
        let e = err("postgres://u@h/db?sslmode=verify-full");
        assert!(
            e.contains("sslmode=verify-full needs sslrootcert=FILE"),
            "{e}"
        );
        let e = err("postgres://u@h/db?sslmode=verify-ca");
        assert!(
            e.contains("sslmode=verify-ca needs sslrootcert=FILE"),
            "{e}"
        );
        let e = err("postgres://u@h/db?sslrootcert=/ca.pem");
        assert!(
            e.contains("sslrootcert is given but sslmode is disable"),
            "{e}"
        );
        let e = err("postgres://u@h/db?sslmode=require&sslcert=/c.pem");
        assert!(e.contains("sslcert and sslkey go together"), "{e}");
        let e = err("postgres://u@h/db?sslmode=verify-full&sslrootcert=system");
        assert!(e.contains("sslrootcert=system"), "{e}");
        let e = err("host=h dbname=db sslmode=require");
        assert!(e.contains("expected postgres://"), "{e}");
    }

    #[test]
    fn certificate_files_are_read_at_start_and_named_when_bad() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing.pem");
        let (_, p) = split(&format!(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert={}",
            missing.display()
        ))
        .unwrap();
        let e = p.connector().err().unwrap().to_string();
        assert!(
            e.contains(&format!("sslrootcert {}", missing.display())),
            "{e}"
        );
        let empty = tmp.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let (_, p) = split(&format!(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert={}",
            empty.display()
        ))
        .unwrap();
        let e = p.connector().err().unwrap().to_string();
        assert!(e.contains("no PEM CERTIFICATE"), "{e}");
        let (_, p) = split("postgres://u@h/db?sslmode=disable").unwrap();
        assert!(p.connector().unwrap().is_none());
    }
}
