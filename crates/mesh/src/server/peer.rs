//! The caller as its verified certificate describes it. Handlers learn who called from here
//! only, never from headers or the request body.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lc_rs::digest::{digest, SHA256};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::peer_watch::WatchedCert;
use crate::trust::TrustState;

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
    /// Raw issuer Name and serial octets, NotAfter and the roots the chain reached: what the
    /// peer watch needs while the connection lives (it holds this peer, not a copy).
    watched: WatchedCert,
    /// SHA-256 of the certificate's DER. Not the DER itself: rustls keeps the certificate for
    /// as long as the connection lives already, and a second copy per connection is most of a
    /// kilobyte (docs/performance.md "Memory per idle connection").
    cert_sha256: [u8; 32],
}

impl Peer {
    /// From the chain rustls has already verified (end-entity certificate first), and the
    /// trust state it was verified against (None in pinned mode).
    pub(crate) fn from_verified(
        addr: SocketAddr,
        chain: &[CertificateDer<'_>],
        trust: Option<&TrustState>,
    ) -> Option<Peer> {
        let cert = chain.first()?;
        let info = pki::CertInfo::from_der(cert).ok()?;
        let watched = WatchedCert::from_chain(chain, trust)?;
        let mut cert_sha256 = [0u8; 32];
        cert_sha256.copy_from_slice(digest(&SHA256, cert).as_ref());
        Some(Peer {
            inner: Arc::new(Inner {
                addr,
                spiffe_id: info.spiffe_id(),
                client_key: info.client_key.clone(),
                serial: info.serial_hex.clone(),
                subject: info.subject.clone(),
                issuer: info.issuer.clone(),
                watched,
                cert_sha256,
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
        self.inner.watched.not_after
    }

    /// SHA-256 of the verified certificate's DER, lowercase hex (as in an
    /// X-Forwarded-Client-Cert header's `Hash`). The certificate itself stays with the
    /// connection's TLS state (`rustls::ServerConnection::peer_certificates`).
    pub fn certificate_sha256(&self) -> String {
        hex::encode(self.inner.cert_sha256)
    }

    /// What the peer watch needs to close the connection when the certificate becomes invalid.
    pub(crate) fn watched(&self) -> &WatchedCert {
        &self.inner.watched
    }
}
