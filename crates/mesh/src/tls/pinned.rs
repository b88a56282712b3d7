//! Pinned mode (docs/design.md §1, note 002 Method II): instead of a CA, each peer trusts a list
//! of public key hashes, `--trust-pin sha256:<hex SHA-256 of the SubjectPublicKeyInfo DER>`. Several pins
//! may be given so a peer can rotate its key: pin old and new, roll, then drop the old pin.
//!
//! The pins may also come from a file (`--trust-pins-file`, `tls::pins_file`) that is reloaded
//! on change: the verifier reads the pins of the moment ([`LivePins`]) at each handshake.
//!
//! A pinned peer is accepted when its end-entity key hash is pinned and the certificate is within
//! its validity period; there is no chain and no hostname check (the pin names the exact key).
//! Compute a pin with
//! `openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{ConfigError, Result};
use crate::tls::identity_error::svid_violation;
use crate::tls::identity_error::PeerIdentityError;
use crate::tls::live_pins::LivePins;
use wire::tls::TlsPolicy;

/// Hex SHA-256 of a certificate's SubjectPublicKeyInfo: the value a pin takes.
pub fn spki_pin_of(cert_der: &[u8]) -> Result<String> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| pki::PkiError::Certificate(e.to_string()))?;
    Ok(pki::sha256_hex(cert.tbs_certificate.subject_pki.raw))
}

/// One pinned key: `sha256:<hex SHA-256 of the SubjectPublicKeyInfo DER>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    /// Parses `sha256:<64 hex>` (colons and case ignored).
    pub fn parse(input: &str) -> std::result::Result<Pin, ConfigError> {
        let body = input
            .trim()
            .strip_prefix("sha256:")
            .ok_or_else(|| ConfigError::PinFormat {
                input: input.to_string(),
            })?;
        pki::certinfo::normalize_fingerprint(body)
            .map(Pin)
            .ok_or_else(|| ConfigError::PinHash {
                input: input.to_string(),
            })
    }

    /// The 64 lowercase hex digits.
    pub fn as_hex(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Pin {
    type Err = ConfigError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Pin::parse(s)
    }
}

/// The accepted key hashes (a set: order and duplicates do not matter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinSet {
    pins: BTreeSet<String>,
}

impl PinSet {
    /// The set of `pins` (duplicates dropped); at least one is needed.
    pub fn new(pins: Vec<Pin>) -> std::result::Result<PinSet, ConfigError> {
        if pins.is_empty() {
            return Err(ConfigError::NoPins);
        }
        Ok(PinSet {
            pins: pins.into_iter().map(|Pin(hex)| hex).collect(),
        })
    }

    /// Whether the key with this SPKI hash (64 lowercase hex digits) is pinned.
    pub fn contains_hex(&self, spki_sha256: &str) -> bool {
        self.pins.contains(spki_sha256)
    }

    /// How many keys are pinned.
    pub fn len(&self) -> usize {
        self.pins.len()
    }

    /// Never true: a pin set holds at least one pin.
    pub fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }

    /// The pins of `self` that `other` lacks, as `sha256:<hex>` (for the reload log).
    pub fn missing_from(&self, other: &PinSet) -> Vec<String> {
        self.pins
            .difference(&other.pins)
            .map(|hex| format!("sha256:{hex}"))
            .collect()
    }

    /// Parses `sha256:<64 hex>` values.
    pub fn parse(values: &[String]) -> std::result::Result<PinSet, ConfigError> {
        PinSet::new(
            values
                .iter()
                .map(|v| Pin::parse(v))
                .collect::<std::result::Result<_, _>>()?,
        )
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        now: UnixTime,
    ) -> std::result::Result<(), Error> {
        let (_, cert) = X509Certificate::from_der(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let presented = pki::sha256_hex(cert.tbs_certificate.subject_pki.raw);
        if !self.pins.contains(&presented) {
            return Err(PeerIdentityError::PinMismatch { presented }.into_rustls());
        }
        let now_secs = now.as_secs() as i64;
        let validity = cert.validity();
        if now_secs < validity.not_before.timestamp() {
            return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
        }
        if now_secs > validity.not_after.timestamp() {
            return Err(Error::InvalidCertificate(CertificateError::Expired));
        }
        pki::svid::SvidRules::new()
            .check(&cert)
            .map_err(svid_violation)?;
        Ok(())
    }
}

/// Verifies peers (clients on a server, servers on a client) by pinned key.
#[derive(Debug)]
pub struct PinnedVerifier {
    pins: Arc<LivePins>,
    policy: TlsPolicy,
}

impl PinnedVerifier {
    /// Accepts peers whose key is in `pins` at the time of the handshake.
    pub fn new(pins: Arc<LivePins>, policy: TlsPolicy) -> Arc<PinnedVerifier> {
        Arc::new(PinnedVerifier { pins, policy })
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, Error> {
        self.pins.current().check(end_entity, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, Error> {
        self.policy.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, Error> {
        self.policy.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.policy.supported_schemes()
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, Error> {
        self.pins.current().check(end_entity, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, Error> {
        self.policy.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, Error> {
        self.policy.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.policy.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pins_and_refuses_bad_ones() {
        let hex = "ab".repeat(32);
        let set = PinSet::parse(&[
            format!("sha256:{hex}"),
            format!("sha256:{}", hex.to_uppercase()),
        ])
        .unwrap();
        assert_eq!(set.pins.len(), 1);
        assert!(PinSet::parse(std::slice::from_ref(&hex)).is_err());
        assert!(PinSet::parse(&["sha256:abcd".into()]).is_err());
        assert!(PinSet::parse(&[]).is_err());
    }
}
