//! Strict CSR handling for the CA: parse, check proof of possession with the curve and hash
//! the CSR declares, and keep only the public key and the names it asks for.
//!
//! rcgen's own CSR path is deliberately not used: it copies the requested CA flag, mislabels a
//! P-384 key signed with SHA-256 and rejects P-521 (docs/design.md, "Crate traps", rcgen).

use std::net::IpAddr;

use aws_lc_rs::signature::{UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certification_request::{X509CertificationRequest, X509CertificationRequestInfo};
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::der_parser::der::der_read_element_header;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};
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
    for ext in requested_extensions(info)? {
        match ext.parsed_extension() {
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
            // A request the CA cannot read could hide a CA flag or a name.
            ParsedExtension::ParseError { error } => {
                return Err(PkiError::Csr(format!(
                    "the requested extension {} does not parse ({error}); fix or remove it",
                    ext.oid.to_id_string()
                )))
            }
            // Everything else the CSR asks for is ignored: the CA builds every extension
            // from its own policy and copies nothing from the request.
            _ => {}
        }
    }
    Ok(out)
}

/// The extensions the CSR requests. x509-parser's `requested_extensions` reads only the first
/// extensionRequest attribute, and of it only the first value, so a CSR could hide a second
/// request (CA:TRUE, more names) behind them (found by fuzzing, docs/fuzzing.md). PKCS#9
/// (RFC 2985 5.4.2) defines extensionRequest as one single-valued attribute: more is refused.
fn requested_extensions<'a>(
    info: &'a X509CertificationRequestInfo<'a>,
) -> Result<&'a [X509Extension<'a>]> {
    let mut requests = Vec::new();
    for attr in info.iter_attributes() {
        if let ParsedCriAttribute::ExtensionRequest(request) = attr.parsed_attribute() {
            // `value` spans the SET's header and the one value x509-parser read.
            let (content, header) = der_read_element_header(attr.value)
                .map_err(|e| PkiError::Csr(format!("the extensionRequest attribute: {e}")))?;
            if header.length().definite().ok() != Some(content.len()) {
                return Err(PkiError::Csr(
                    "the extensionRequest attribute has more than one value; PKCS#9 allows one"
                        .into(),
                ));
            }
            requests.push(request.extensions.as_slice());
        }
    }
    match requests.as_slice() {
        [] => Ok(&[]),
        [one] => Ok(one),
        more => Err(PkiError::Csr(format!(
            "the CSR carries {} extensionRequest attributes; PKCS#9 allows one",
            more.len()
        ))),
    }
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

/// CSRs whose attributes hide a request from x509-parser's convenience view: found by the fuzz
/// target `csr_signed` (docs/fuzzing.md), which signs arbitrary attributes. Each CSR is
/// correctly signed; pki accepted every one of them without seeing what it asks for.
#[cfg(test)]
mod hidden_request_tests {
    use super::*;
    use crate::keys;
    use rcgen::{PublicKeyData, SigningKey};

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        assert!(content.len() < 0x80, "short forms only in these tests");
        let mut out = vec![tag, content.len() as u8];
        out.extend_from_slice(content);
        out
    }

    /// A P-256 CSR signed by its own key whose attributes field holds `attributes`.
    fn signed_with_attributes(attributes: &[u8]) -> Vec<u8> {
        let key = keys::generate(Curve::P256).unwrap();
        let subject = tlv(
            0x30,
            &tlv(
                0x31,
                &tlv(
                    0x30,
                    &[&[0x06, 0x03, 0x55, 0x04, 0x03][..], &tlv(0x0c, b"x")].concat(),
                ),
            ),
        );
        let mut info = vec![0x02, 0x01, 0x00];
        info.extend(subject);
        info.extend(key.subject_public_key_info());
        info.extend(tlv(0xa0, attributes));
        let info = [&[0x30, 0x81, info.len() as u8][..], &info].concat();
        let mut bits = vec![0];
        bits.extend(key.sign(&info).unwrap());
        let alg = [
            0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
        ];
        let body = [&info[..], &alg, &tlv(0x03, &bits)].concat();
        [
            &[0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8][..],
            &body,
        ]
        .concat()
    }

    const EXTENSION_REQUEST: [u8; 11] = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e,
    ];

    /// An extensionRequest attribute with these values (each a DER `Extensions`).
    fn extension_request(values: &[Vec<u8>]) -> Vec<u8> {
        tlv(
            0x30,
            &[&EXTENSION_REQUEST[..], &tlv(0x31, &values.concat())].concat(),
        )
    }

    fn extensions(list: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &list.concat())
    }

    fn extension(oid_last: u8, value: &[u8]) -> Vec<u8> {
        tlv(
            0x30,
            &[&[0x06, 0x03, 0x55, 0x1d, oid_last][..], &tlv(0x04, value)].concat(),
        )
    }

    fn ca_true() -> Vec<u8> {
        extension(0x13, &[0x30, 0x03, 0x01, 0x01, 0xff])
    }

    fn dns_san() -> Vec<u8> {
        extension(0x11, &[0x30, 0x03, 0x82, 0x01, b'a'])
    }

    #[test]
    fn the_helper_makes_csrs_pki_reads() {
        let csr =
            signed_with_attributes(&extension_request(&[extensions(&[dns_san(), ca_true()])]));
        let v = parse_and_verify(&csr).unwrap();
        assert!(v.requests_ca);
        assert_eq!(v.requested_dns, vec!["a".to_string()]);
    }

    #[test]
    fn a_second_extension_request_attribute_is_refused() {
        let attrs = [
            extension_request(&[extensions(&[dns_san()])]),
            extension_request(&[extensions(&[ca_true()])]),
        ]
        .concat();
        let err = parse_and_verify(&signed_with_attributes(&attrs)).unwrap_err();
        assert!(
            err.to_string().contains("2 extensionRequest attributes"),
            "{err}"
        );
    }

    #[test]
    fn a_second_value_of_the_extension_request_is_refused() {
        let attrs = extension_request(&[extensions(&[dns_san()]), extensions(&[ca_true()])]);
        let err = parse_and_verify(&signed_with_attributes(&attrs)).unwrap_err();
        assert!(err.to_string().contains("more than one value"), "{err}");
    }

    #[test]
    fn a_requested_extension_that_does_not_parse_is_refused() {
        // subjectAltName whose GeneralNames holds a SEQUENCE, which is no GeneralName (the
        // fuzzer's input, reduced); basicConstraints that is a bare BOOLEAN.
        for (bad, oid) in [
            (
                extension(0x11, &[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00]),
                "2.5.29.17",
            ),
            (extension(0x13, &[0x01, 0x01, 0xff]), "2.5.29.19"),
        ] {
            let attrs = extension_request(&[extensions(&[bad])]);
            let err = parse_and_verify(&signed_with_attributes(&attrs)).unwrap_err();
            assert!(err.to_string().contains(oid), "{err}");
        }
    }
}
