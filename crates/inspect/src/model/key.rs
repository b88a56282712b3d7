//! Public keys: algorithm, curve or size, and the SHA-256 of the SubjectPublicKeyInfo.

use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::names;

/// A public key: algorithm, curve or size, and its pin.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyView {
    /// "EC", "RSA", "Ed25519", ... or the algorithm OID.
    pub algorithm: String,
    /// The algorithm OID, dotted.
    pub algorithm_oid: String,
    /// For EC keys: "P-256", "P-384", "P-521" (or another curve's name or OID).
    pub curve: Option<String>,
    /// For EC keys: the OpenSSL name ("prime256v1", "secp384r1", "secp521r1").
    pub curve_openssl: Option<String>,
    /// Key size in bits (the curve size for EC, the modulus size for RSA).
    pub bits: Option<usize>,
    /// Hex SHA-256 of the DER SubjectPublicKeyInfo (what public-key pinning uses).
    pub spki_sha256: String,
}

impl KeyView {
    pub(crate) fn of(spki: &SubjectPublicKeyInfo<'_>) -> KeyView {
        let oid = spki.algorithm.algorithm.to_id_string();
        let mut view = KeyView {
            algorithm: names::key_algorithm_name(&oid),
            algorithm_oid: oid.clone(),
            curve: None,
            curve_openssl: None,
            bits: None,
            spki_sha256: pki::sha256_hex(spki.raw),
        };
        match oid.as_str() {
            names::OID_EC_PUBLIC_KEY => {
                if let Some(c) = names::curve_of(spki) {
                    view.bits = (c.bits > 0).then_some(c.bits);
                    view.curve = Some(c.name);
                    view.curve_openssl = Some(c.openssl);
                }
            }
            names::OID_ED25519 => view.bits = Some(256),
            names::OID_ED448 => view.bits = Some(456),
            _ => {
                if let Ok(PublicKey::RSA(rsa)) = spki.parsed() {
                    view.bits = Some(rsa.key_size());
                }
            }
        }
        view
    }

    /// "EC P-256 (prime256v1)", "RSA 2048 bits", "Ed25519".
    pub fn describe(&self) -> String {
        match (&self.curve, &self.curve_openssl, self.bits) {
            (Some(c), Some(o), _) if c != o => format!("{} {c} ({o})", self.algorithm),
            (Some(c), _, _) => format!("{} {c}", self.algorithm),
            (None, _, Some(bits)) if self.algorithm.starts_with("RSA") => {
                format!("{} {bits} bits", self.algorithm)
            }
            _ => self.algorithm.clone(),
        }
    }
}
