//! The facts about a certificate that the CA, the services and the inspector need.

use std::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{PkiError, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
/// The facts about a certificate the services, the CA and the inspector act on.
pub struct CertInfo {
    /// Lowercase hex of the serial's content octets, no separators.
    pub serial_hex: String,
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// NotBefore.
    pub not_before: OffsetDateTime,
    /// NotAfter.
    pub not_after: OffsetDateTime,
    /// URI SANs (an X509-SVID has exactly one, its SPIFFE ID).
    pub uris: Vec<String>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// The EKU allows serverAuth (or there is no EKU).
    pub server_auth: bool,
    /// The EKU allows clientAuth (or there is no EKU).
    pub client_auth: bool,
    /// Hex SHA-256 of the DER.
    pub fingerprint: String,
    /// Hex SHA-256 of the SubjectPublicKeyInfo DER: identifies the key (the value
    /// `--trust-pin sha256:` takes, and what the CA compares to tell renewal keys apart).
    pub spki_sha256: String,
    /// The client key: hex SHA-256 of DER IssuerAndSerialNumber (`crate::client_key`).
    pub client_key: String,
}

impl CertInfo {
    /// Reads the facts from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| PkiError::Certificate(format!("cannot parse certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(PkiError::Certificate(format!(
                "{} trailing bytes after the certificate",
                rest.len()
            )));
        }
        let validity = cert.validity();
        let mut info = CertInfo {
            serial_hex: hex::encode(crate::serial::strip_leading_zeros(
                cert.tbs_certificate.raw_serial(),
            )),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            uris: Vec::new(),
            dns: Vec::new(),
            ips: Vec::new(),
            is_ca: false,
            server_auth: false,
            client_auth: false,
            fingerprint: crate::sha256_hex(der),
            spki_sha256: crate::sha256_hex(cert.tbs_certificate.subject_pki.raw),
            client_key: crate::client_key::client_key_of(&cert),
        };
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::URI(u) => info.uris.push(u.to_string()),
                            GeneralName::DNSName(d) => info.dns.push(d.to_string()),
                            GeneralName::IPAddress(b) if b.len() == 4 => info
                                .ips
                                .push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                            GeneralName::IPAddress(b) if b.len() == 16 => info
                                .ips
                                .push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                            _ => {}
                        }
                    }
                }
                ParsedExtension::BasicConstraints(bc) => info.is_ca = bc.ca,
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    info.server_auth = eku.server_auth || eku.any;
                    info.client_auth = eku.client_auth || eku.any;
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// The SPIFFE ID: the certificate's only URI SAN, when it is a valid SPIFFE ID. A SPIFFE ID
    /// next to another URI SAN is no X509-SVID (`pki::svid`), so it gives None.
    pub fn spiffe_id(&self) -> Option<crate::SpiffeId> {
        match self.uris.as_slice() {
            [one] => crate::SpiffeId::parse(one).ok(),
            _ => None,
        }
    }

    /// Total lifetime in seconds.
    pub fn lifetime(&self) -> time::Duration {
        self.not_after - self.not_before
    }
}

/// The keyUsage bits by their RFC 5280 names, in bit order (`digitalSignature`, ...,
/// `keyCertSign`, `cRLSign`, ...).
pub fn key_usage_names(ku: &x509_parser::extensions::KeyUsage) -> Vec<String> {
    [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, n)| n.to_string())
    .collect()
}

/// SHA-256 fingerprint, uppercase hex with colons, as `openssl x509 -fingerprint -sha256` shows.
pub(crate) fn colon_hex(hex_lower: &str) -> String {
    hex_lower
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts a fingerprint in any common spelling (colons, `sha256:` prefix, any case) and
/// returns lowercase hex, or None when it is not 32 bytes of hex.
pub fn normalize_fingerprint(input: &str) -> Option<String> {
    let s = input.trim();
    let s = s
        .strip_prefix("sha256:")
        .or_else(|| s.strip_prefix("SHA256:"))
        .unwrap_or(s);
    let cleaned: String = s
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (cleaned.len() == 64 && cleaned.chars().all(|c| c.is_ascii_hexdigit())).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        assert_eq!(colon_hex("ab01"), "AB:01");
        let fp = "ab".repeat(32);
        assert_eq!(normalize_fingerprint(&colon_hex(&fp)).unwrap(), fp);
        assert_eq!(normalize_fingerprint(&format!("sha256:{fp}")).unwrap(), fp);
        assert!(normalize_fingerprint("abc").is_none());
    }

    /// The issued certificate carries exactly the SPKI the request named, so hashing either
    /// identifies the same key (the CA compares a CSR's key with stored certificates).
    #[test]
    fn spki_hash_names_the_certified_key() {
        let now = time::OffsetDateTime::now_utc();
        let ca = crate::CaMaterial::generate_root("SPKI Test Root", now).unwrap();
        let id = crate::SpiffeId::parse("spiffe://mesh.local/service/x").unwrap();
        for curve in [crate::Curve::P256, crate::Curve::P384, crate::Curve::P521] {
            let key = crate::keys::generate(curve).unwrap();
            let spki = crate::keys::spki_der(&key);
            let issued = crate::IssuancePolicy::default()
                .issue(
                    &crate::LeafRequest {
                        spiffe_id: &id,
                        dns: &[],
                        ips: &[],
                        spki_der: &spki,
                        ttl: time::Duration::hours(1),
                        now,
                    },
                    &ca,
                )
                .unwrap();
            let info = CertInfo::from_der(&issued.der).unwrap();
            assert_eq!(info.spki_sha256, crate::sha256_hex(&spki), "{curve}");
        }
    }
}
