//! Certificate revocation lists, checked once per fetch and looked up in O(1) per handshake.
//!
//! webpki would re-verify the CRL signature and hash the whole list on every handshake (see
//! PITFALLS.md), so handshake cost would grow with the CRL. Instead each fetched CRL is parsed and
//! its signature verified here, once, against the trusted root that issued it; the serials go into
//! a hash set keyed by issuer, and the verifiers consult that set.

use std::collections::{HashMap, HashSet};

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::error::{MeshError, Result};

const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";

/// One CRL whose signature has been verified against a trusted root.
#[derive(Clone, Debug)]
pub struct VerifiedCrl {
    /// Raw DER of the issuer Name (matches the `issuer` of the certificates it covers).
    pub issuer_raw: Vec<u8>,
    pub issuer: String,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
    /// Serial content octets with leading zeros stripped.
    pub serials: HashSet<Vec<u8>>,
}

/// The revocation state the verifiers consult: one verified CRL per issuer.
#[derive(Clone, Debug, Default)]
pub struct RevokedSet {
    by_issuer: HashMap<Vec<u8>, VerifiedCrl>,
}

impl RevokedSet {
    pub fn from_crls(crls: Vec<VerifiedCrl>) -> Self {
        let mut by_issuer = HashMap::new();
        for crl in crls {
            by_issuer.insert(crl.issuer_raw.clone(), crl);
        }
        RevokedSet { by_issuer }
    }

    /// True when the certificate with this issuer Name (raw DER) and serial is listed.
    pub fn is_revoked(&self, issuer_raw: &[u8], serial: &[u8]) -> bool {
        self.by_issuer.get(issuer_raw).is_some_and(|crl| {
            crl.serials
                .contains(pki::serial::strip_leading_zeros(serial))
        })
    }

    /// True when the DER certificate is listed.
    pub fn is_cert_revoked(&self, cert_der: &[u8]) -> bool {
        match X509Certificate::from_der(cert_der) {
            Ok((_, cert)) => self.is_revoked(
                cert.tbs_certificate.issuer.as_raw(),
                cert.tbs_certificate.raw_serial(),
            ),
            Err(_) => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }

    /// Total number of revoked serials across issuers.
    pub fn len(&self) -> usize {
        self.by_issuer.values().map(|c| c.serials.len()).sum()
    }

    /// The oldest thisUpdate among the CRLs held (for the "revocation list age" metric).
    pub fn oldest_this_update(&self) -> Option<OffsetDateTime> {
        self.by_issuer.values().map(|c| c.this_update).min()
    }

    pub fn crls(&self) -> impl Iterator<Item = &VerifiedCrl> {
        self.by_issuer.values()
    }
}

/// Parses a DER CRL and verifies its signature with the trusted root whose subject is the CRL's
/// issuer. A CRL from anyone else is refused (it would otherwise make every peer of that issuer
/// unverifiable or, worse, let a forged list through).
pub fn verify_crl(der: &[u8], roots: &[CertificateDer<'_>]) -> Result<VerifiedCrl> {
    let (rest, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| MeshError::Crl(format!("cannot parse the CRL: {e}")))?;
    if !rest.is_empty() {
        return Err(MeshError::Crl(format!(
            "{} trailing bytes after the CRL",
            rest.len()
        )));
    }
    let issuer_raw = crl.tbs_cert_list.issuer.as_raw();
    let mut issuer_found = false;
    for root_der in roots {
        let Ok((_, root)) = X509Certificate::from_der(root_der) else {
            continue;
        };
        if root.tbs_certificate.subject.as_raw() != issuer_raw {
            continue;
        }
        issuer_found = true;
        if check_signature(&crl, &root).is_ok() {
            return Ok(VerifiedCrl {
                issuer_raw: issuer_raw.to_vec(),
                issuer: crl.tbs_cert_list.issuer.to_string(),
                this_update: crl.last_update().to_datetime(),
                next_update: crl.next_update().map(|t| t.to_datetime()),
                serials: crl
                    .iter_revoked_certificates()
                    .map(|r| pki::serial::strip_leading_zeros(r.raw_serial()).to_vec())
                    .collect(),
            });
        }
    }
    Err(MeshError::Crl(if issuer_found {
        format!(
            "the CRL signature does not verify with the trusted root {}; refusing it",
            crl.tbs_cert_list.issuer
        )
    } else {
        format!(
            "the CRL is issued by {}, which is not a trusted root; refusing it",
            crl.tbs_cert_list.issuer
        )
    }))
}

fn check_signature(crl: &CertificateRevocationList<'_>, root: &X509Certificate<'_>) -> Result<()> {
    let spki = &root.tbs_certificate.subject_pki;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .and_then(|oid| pki::Curve::from_oid(&oid.to_id_string()))
        .ok_or_else(|| MeshError::Crl("the root's key is not an ECDSA key".into()))?;
    let sig_oid = crl.signature_algorithm.algorithm.to_id_string();
    let alg: &'static dyn VerificationAlgorithm = match (curve, sig_oid.as_str()) {
        (pki::Curve::P256, OID_ECDSA_SHA256) => &signature::ECDSA_P256_SHA256_ASN1,
        (pki::Curve::P256, OID_ECDSA_SHA384) => &signature::ECDSA_P256_SHA384_ASN1,
        (pki::Curve::P384, OID_ECDSA_SHA256) => &signature::ECDSA_P384_SHA256_ASN1,
        (pki::Curve::P384, OID_ECDSA_SHA384) => &signature::ECDSA_P384_SHA384_ASN1,
        (pki::Curve::P384, OID_ECDSA_SHA512) => &signature::ECDSA_P384_SHA512_ASN1,
        (pki::Curve::P521, OID_ECDSA_SHA256) => &signature::ECDSA_P521_SHA256_ASN1,
        (pki::Curve::P521, OID_ECDSA_SHA384) => &signature::ECDSA_P521_SHA384_ASN1,
        (pki::Curve::P521, OID_ECDSA_SHA512) => &signature::ECDSA_P521_SHA512_ASN1,
        (c, oid) => {
            return Err(MeshError::Crl(format!(
                "unsupported CRL signature algorithm {oid} for a {c} key"
            )))
        }
    };
    UnparsedPublicKey::new(alg, &spki.subject_public_key.data[..])
        .verify(crl.tbs_cert_list.as_ref(), &crl.signature_value.data[..])
        .map_err(|_| MeshError::Crl("bad signature".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pki::crl::{sign_crl, RevokedEntry};
    use pki::CaMaterial;
    use time::Duration;

    #[test]
    fn verifies_and_indexes_a_crl() {
        let now = OffsetDateTime::now_utc();
        let ca = CaMaterial::generate_root("Root A", now).unwrap();
        let other = CaMaterial::generate_root("Root A", now).unwrap();
        let entry = RevokedEntry {
            serial_hex: "00ab01".into(),
            revoked_at: now,
            reason: Some("keyCompromise".into()),
        };
        let der = sign_crl(&ca, &[entry], 1, now, now + Duration::hours(1)).unwrap();
        let crl = verify_crl(&der, &[ca.cert_der().clone()]).unwrap();
        assert!(crl.serials.contains(&vec![0xab, 0x01]));
        let set = RevokedSet::from_crls(vec![crl.clone()]);
        assert!(set.is_revoked(&crl.issuer_raw, &[0x00, 0xab, 0x01]));
        assert!(!set.is_revoked(&crl.issuer_raw, &[0xab, 0x02]));
        assert_eq!(set.len(), 1);

        // Same subject name, different key: the signature must not verify.
        let err = verify_crl(&der, &[other.cert_der().clone()]).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        let stranger = CaMaterial::generate_root("Stranger", now).unwrap();
        let err = verify_crl(&der, &[stranger.cert_der().clone()]).unwrap_err();
        assert!(err.to_string().contains("not a trusted root"), "{err}");
        let mut tampered = der.clone();
        let n = tampered.len();
        tampered[n - 3] ^= 1;
        assert!(verify_crl(&tampered, &[ca.cert_der().clone()]).is_err());
        assert!(verify_crl(b"junk", &[ca.cert_der().clone()]).is_err());
    }
}
