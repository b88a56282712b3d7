//! Strict CSR handling for the CA: parse, check proof of possession with the curve and hash
//! the CSR declares, and keep only the public key and the names it asks for.
//!
//! rcgen's own CSR path is deliberately not used: it copies the requested CA flag, mislabels a
//! P-384 key signed with SHA-256 and rejects P-521 (docs/design.md, "Crate traps", rcgen).

use std::net::IpAddr;

use aws_lc_rs::signature::{UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::curve::Curve;
use crate::error::{PkiError, Result};
use crate::pem;
use crate::sigalg::{self, OID_EC_PUBLIC_KEY, OID_RSA_ENCRYPTION as OID_RSA};

/// A CSR whose signature has been checked. Only these fields ever reach the issuance policy.
#[derive(Clone, Debug)]
pub struct VerifiedCsr {
    /// DER SubjectPublicKeyInfo of the requester's key.
    pub spki_der: Vec<u8>,
    /// The curve of that key.
    pub curve: Curve,
    /// DNS SANs the CSR asks for.
    pub requested_dns: Vec<String>,
    /// IP SANs the CSR asks for.
    pub requested_ips: Vec<IpAddr>,
    /// URI SANs the CSR asks for.
    pub requested_uris: Vec<String>,
    /// basicConstraints CA:TRUE was requested; the CA refuses such CSRs outright.
    pub requests_ca: bool,
}

/// Parses a PEM (`CERTIFICATE REQUEST`) or DER CSR and verifies it.
pub fn parse_and_verify(input: &[u8]) -> Result<VerifiedCsr> {
    let der = pem::parse_single(input, "CERTIFICATE REQUEST")
        .map_err(|e| PkiError::Csr(e.to_string()))?;
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| PkiError::Csr(format!("not a PKCS#10 certification request: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::Csr(format!(
            "{} trailing bytes after the CSR",
            rest.len()
        )));
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let key_oid = spki.algorithm.algorithm.to_id_string();
    if key_oid == OID_RSA {
        return Err(PkiError::UnsupportedKey(
            "the CSR carries an RSA key".into(),
        ));
    }
    if key_oid != OID_EC_PUBLIC_KEY {
        return Err(PkiError::UnsupportedKey(format!(
            "the CSR carries a key of algorithm {key_oid}"
        )));
    }
    let curve_oid = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string())
        .ok_or_else(|| PkiError::Csr("the EC key names no curve".into()))?;
    let curve = Curve::from_oid(&curve_oid)
        .ok_or_else(|| PkiError::UnsupportedKey(format!("EC curve {curve_oid} in the CSR")))?;
    let point = spki.subject_public_key.data.as_ref();
    if point.len() != curve.point_len() || point.first() != Some(&0x04) {
        return Err(PkiError::Csr(format!(
            "the {curve} public key is not an uncompressed point of {} bytes",
            curve.point_len()
        )));
    }

    let sig_oid = csr.signature_algorithm.algorithm.to_id_string();
    let alg = verification_alg(curve, &sig_oid)?;
    UnparsedPublicKey::new(alg, point)
        .verify(info.raw, csr.signature_value.data.as_ref())
        .map_err(|_| PkiError::CsrSignature)?;

    let mut out = VerifiedCsr {
        spki_der: spki.raw.to_vec(),
        curve,
        requested_dns: Vec::new(),
        requested_ips: Vec::new(),
        requested_uris: Vec::new(),
        requests_ca: false,
    };
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(d) => out.requested_dns.push(d.to_string()),
                            GeneralName::URI(u) => out.requested_uris.push(u.to_string()),
                            GeneralName::IPAddress(bytes) => out.requested_ips.push(ip_from_bytes(bytes)?),
                            other => {
                                return Err(PkiError::Csr(format!(
                                    "unsupported subjectAltName entry {other}; only DNS, IP and URI are issued"
                                )))
                            }
                        }
                    }
                }
                ParsedExtension::BasicConstraints(bc) if bc.ca => out.requests_ca = true,
                // Everything else the CSR asks for is ignored: the CA builds every extension
                // from its own policy and copies nothing from the request.
                _ => {}
            }
        }
    }
    Ok(out)
}

fn ip_from_bytes(bytes: &[u8]) -> Result<IpAddr> {
    match bytes.len() {
        4 => Ok(IpAddr::from(
            <[u8; 4]>::try_from(bytes).map_err(|_| PkiError::Csr("bad IPv4".into()))?,
        )),
        16 => Ok(IpAddr::from(
            <[u8; 16]>::try_from(bytes).map_err(|_| PkiError::Csr("bad IPv6".into()))?,
        )),
        n => Err(PkiError::Csr(format!("IP address SAN of {n} bytes"))),
    }
}

/// Proof of possession accepts ECDSA with any SHA-2 hash on the key's curve (the table in
/// `sigalg.rs`); the certificate the CA issues is signed by the CA, so the CSR's hash does not
/// reach any verifier.
fn verification_alg(curve: Curve, sig_oid: &str) -> Result<&'static dyn VerificationAlgorithm> {
    sigalg::ecdsa_algorithm(curve, sig_oid).ok_or_else(|| {
        PkiError::Csr(format!(
            "signature algorithm {} is not ECDSA with SHA-256/384/512",
            sigalg::signature_algorithm_name(sig_oid)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;
    use rcgen::PublicKeyData;

    fn csr_for(curve: Curve, ca: bool) -> (rcgen::KeyPair, String) {
        let key = keys::generate(curve).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let csr = params.serialize_request(&key).unwrap();
        (key, csr.pem().unwrap())
    }

    #[test]
    fn verifies_each_curve() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let (key, pem) = csr_for(curve, false);
            let v = parse_and_verify(pem.as_bytes()).unwrap();
            assert_eq!(v.curve, curve);
            assert_eq!(v.spki_der, key.subject_public_key_info());
            assert_eq!(v.requested_dns, vec!["a.example".to_string()]);
            assert!(!v.requests_ca);
        }
    }

    #[test]
    fn flags_ca_requests() {
        let (_, pem) = csr_for(Curve::P384, true);
        assert!(parse_and_verify(pem.as_bytes()).unwrap().requests_ca);
    }

    #[test]
    fn rejects_tampered_signature() {
        let (_, pem) = csr_for(Curve::P384, false);
        let mut der = crate::pem::parse_single(pem.as_bytes(), "CERTIFICATE REQUEST").unwrap();
        let n = der.len();
        der[n - 3] ^= 0x01;
        let err = parse_and_verify(&der).unwrap_err();
        assert!(
            matches!(err, PkiError::CsrSignature | PkiError::Csr(_)),
            "{err}"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_and_verify(b"").is_err());
        assert!(parse_and_verify(b"\x30\x03\x02\x01\x00").is_err());
        assert!(parse_and_verify(
            b"-----BEGIN CERTIFICATE REQUEST-----\nZm9v\n-----END CERTIFICATE REQUEST-----\n"
        )
        .is_err());
    }
}
