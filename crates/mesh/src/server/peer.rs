//! The caller as its verified certificate describes it. Handlers learn who called from here
//! only, never from headers or the request body.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::peer_watch::WatchedCert;

/// The verified peer of a connection. Cheap to clone: the HTTP layer puts one into every
/// request's extensions (`req.extensions().get::<Peer>()`, or axum's `Extension<Peer>`).
#[derive(Clone, Debug)]
pub struct Peer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    spiffe_id: Option<pki::SpiffeId>,
    client_key: String,
    serial: String,
    subject: String,
    issuer: String,
    not_after: OffsetDateTime,
    /// Raw issuer Name and serial octets, for revocation lookups while the connection lives.
    issuer_raw: Vec<u8>,
    serial_raw: Vec<u8>,
    der: CertificateDer<'static>,
}

impl Peer {
    /// From the end-entity certificate rustls has already verified.
    pub(crate) fn from_verified(addr: SocketAddr, cert: &CertificateDer<'_>) -> Option<Peer> {
        let info = pki::CertInfo::from_der(cert).ok()?;
        let (_, parsed) = X509Certificate::from_der(cert).ok()?;
        Some(Peer {
            inner: Arc::new(Inner {
                addr,
                spiffe_id: info.spiffe_id(),
                client_key: info.client_key.clone(),
                serial: info.serial_hex.clone(),
                subject: info.subject.clone(),
                issuer: info.issuer.clone(),
                not_after: info.not_after,
                issuer_raw: parsed.tbs_certificate.issuer.as_raw().to_vec(),
                serial_raw: parsed.tbs_certificate.raw_serial().to_vec(),
                der: cert.clone().into_owned(),
            }),
        })
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The SPIFFE ID of its certificate, if it carries one (pinned peers may not).
    pub fn spiffe_id(&self) -> Option<&pki::SpiffeId> {
        self.inner.spiffe_id.as_ref()
    }

    /// The SPIFFE ID as text.
    pub fn id_string(&self) -> Option<String> {
        self.inner.spiffe_id.as_ref().map(|i| i.to_string())
    }

    /// The SPIFFE ID, else the subject: the name logs and limits use.
    pub fn identity(&self) -> String {
        self.id_string()
            .unwrap_or_else(|| self.inner.subject.clone())
    }

    /// The client key: hex SHA-256 of the certificate's IssuerAndSerialNumber (docs/design.md
    /// §2).
    pub fn client_key(&self) -> &str {
        &self.inner.client_key
    }

    /// The certificate's serial, lowercase hex.
    pub fn serial(&self) -> &str {
        &self.inner.serial
    }

    /// The certificate's subject DN.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The certificate's issuer DN.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The certificate's NotAfter.
    pub fn not_after(&self) -> OffsetDateTime {
        self.inner.not_after
    }

    /// The verified certificate itself (for a hash of it, as in an X-Forwarded-Client-Cert
    /// header).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.inner.der
    }

    /// What the peer watch needs to close the connection when the certificate becomes invalid.
    pub(crate) fn watched(&self) -> WatchedCert {
        WatchedCert {
            issuer_raw: self.inner.issuer_raw.clone(),
            serial_raw: self.inner.serial_raw.clone(),
            not_after: self.inner.not_after,
        }
    }
}
