//! The caller as the verified certificate describes it. Handlers get identity from here only,
//! never from headers or the request body.

use std::net::SocketAddr;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub spiffe_id: Option<pki::SpiffeId>,
    pub client_key: String,
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    pub not_after: OffsetDateTime,
    /// Raw issuer Name and serial octets, for revocation lookups while the connection lives.
    pub issuer_raw: Vec<u8>,
    pub serial_raw: Vec<u8>,
}

impl Peer {
    /// From the end-entity certificate rustls has already verified.
    pub fn from_verified(addr: SocketAddr, cert: &CertificateDer<'_>) -> Option<Peer> {
        let info = pki::CertInfo::from_der(cert).ok()?;
        let (_, parsed) = X509Certificate::from_der(cert).ok()?;
        Some(Peer {
            addr,
            spiffe_id: info.spiffe_id(),
            client_key: info.client_key.clone(),
            serial: info.serial_hex.clone(),
            subject: info.subject.clone(),
            issuer: info.issuer.clone(),
            not_after: info.not_after,
            issuer_raw: parsed.tbs_certificate.issuer.as_raw().to_vec(),
            serial_raw: parsed.tbs_certificate.raw_serial().to_vec(),
        })
    }

    pub fn id_string(&self) -> Option<String> {
        self.spiffe_id.as_ref().map(|i| i.to_string())
    }
}
