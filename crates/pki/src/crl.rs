//! Certificate revocation lists: signing ours, verifying anyone's strictly, and the O(1)
//! revocation lookup the services do per handshake.
//!
//! [`verify_crl`] is the one CRL path of mtls-mesh. It parses a DER CRL, applies the rules below
//! and verifies its signature once; the revoked serials then go into a [`RevokedSet`] keyed by
//! issuer, so a handshake costs one hash lookup however long the list is (rustls-webpki would
//! re-verify the signature and scan the list on every handshake). `pki::verify::TrustStore`
//! applies the same rules to the CRLs it is given.
//!
//! A CRL is refused, with a [`CrlError`] naming what is wrong, when:
//! - it does not parse, or bytes follow it, or it is not strict DER (rustls-webpki must parse
//!   it too; a missing nextUpdate, which RFC 5280 5.1.2.5 requires, counts here);
//! - its outer signatureAlgorithm differs from `tbsCertList.signature` (RFC 5280 5.1.1.2);
//! - it has no CRL Number, or the CRL Number is critical, negative or longer than 20 octets
//!   (RFC 5280 5.2.3; `openssl ca -gencrl` omits it unless a crlnumber file is configured);
//! - it has a critical extension other than issuingDistributionPoint, or an entry has a
//!   critical extension (e.g. certificateIssuer: indirect CRLs are not supported), or its
//!   issuingDistributionPoint limits it to CA certificates, attribute certificates or some
//!   reasons, or makes it indirect (such a list is not complete for end entities);
//! - no given issuer certificate has the CRL's issuer Name;
//! - its signature algorithm does not fit the issuer's key (an RSA or Ed25519 algorithm over an
//!   EC key, say) or is not allowed by the [`AlgorithmPolicy`];
//! - the signature does not verify with the issuer's key;
//! - the issuer certificate has no keyUsage extension, or one without cRLSign. This holds for
//!   trust anchors too (rustls-webpki checks intermediates only): RFC 5280 4.2.1.3 requires
//!   keyUsage on CA certificates whose key verifies CRL signatures, with cRLSign asserted.
//!
//! The CRL's dates are reported, not judged: the services keep using a list past its
//! nextUpdate rather than refuse every peer while the CA is down (docs/security.md).

use std::collections::{HashMap, HashSet};

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::error::{PkiError, Result};
use crate::root::CaMaterial;
use crate::sigalg::{self, AlgorithmError, AlgorithmPolicy, KeyKind};

mod error;
mod reasons;

pub use error::CrlError;
pub use reasons::{
    canonical_reason, parse_reason, reason_code, reason_name, REASONS, REASON_CODES,
};

/// One revoked certificate as the store keeps it.
#[derive(Clone, Debug)]
pub struct RevokedEntry {
    /// Serial of the revoked certificate, hex.
    pub serial_hex: String,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// The RFC 5280 reason name, if any.
    pub reason: Option<String>,
}

/// Signs a v2 CRL listing `revoked` (the caller passes only unexpired certificates). It carries
/// a (non-critical) CRL Number and an authorityKeyIdentifier, so [`verify_crl`] accepts it.
pub fn sign_crl(
    ca: &CaMaterial,
    revoked: &[RevokedEntry],
    crl_number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<Vec<u8>> {
    let mut revoked_certs = Vec::with_capacity(revoked.len());
    for entry in revoked {
        let bytes = hex::decode(&entry.serial_hex).map_err(|e| {
            PkiError::Policy(format!(
                "stored serial {:?} is not hex: {e}",
                entry.serial_hex
            ))
        })?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: entry.revoked_at,
            reason_code: entry.reason.as_deref().and_then(parse_reason),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        // The authorityKeyIdentifier must be the issuer's own subjectKeyIdentifier, whatever
        // method made it (OpenSSL roots use SHA-1): OpenSSL finds a CRL's issuer by it.
        key_identifier_method: ca
            .subject_key_id()
            .map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified),
    };
    let crl = params
        .signed_by(ca.issuer())
        .map_err(|e| crate::ca_key::sign_error("signing the CRL", e))?;
    Ok(crl.der().to_vec())
}

/// A CRL that passed every rule of this module and whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCrl {
    /// Raw DER of the issuer Name (equal to the `issuer` of the certificates it covers).
    pub issuer_raw: Vec<u8>,
    /// The issuer name, readable.
    pub issuer: String,
    /// Hex SHA-256 of the issuer certificate whose key verified the signature.
    pub issuer_fingerprint: String,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate, when present (a CRL past it is stale).
    pub next_update: Option<OffsetDateTime>,
    /// The CRL Number: big-endian octets without leading zeros (`[0]` for zero).
    pub crl_number: Vec<u8>,
    /// Serial content octets with leading zeros stripped.
    pub serials: HashSet<Vec<u8>>,
}

impl VerifiedCrl {
    /// True when `other` is a later CRL of the same issuer (a higher CRL Number, RFC 5280
    /// 5.2.3: numbers increase monotonically).
    pub fn is_superseded_by(&self, other: &VerifiedCrl) -> bool {
        compare_numbers(&other.crl_number, &self.crl_number) == std::cmp::Ordering::Greater
    }
}

fn compare_numbers(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Parses a DER CRL and verifies it against `issuers` (trusted roots and, when the caller has
/// validated them, intermediates) under the default algorithm policy (the services'). See the
/// module documentation for every rule.
pub fn verify_crl(
    der: &[u8],
    issuers: &[CertificateDer<'_>],
) -> std::result::Result<VerifiedCrl, CrlError> {
    verify_crl_with_policy(der, issuers, AlgorithmPolicy::default())
}

/// [`verify_crl`] with an explicit algorithm policy.
pub fn verify_crl_with_policy(
    der: &[u8],
    issuers: &[CertificateDer<'_>],
    policy: AlgorithmPolicy,
) -> std::result::Result<VerifiedCrl, CrlError> {
    let crl = parse_strict(der)?;
    let crl_number = check_structure(&crl)?;
    let candidates: Vec<&[u8]> = issuers.iter().map(|c| c.as_ref()).collect();
    let found = find_issuer(&crl, &candidates, policy)?;
    parse_webpki(&crl, der)?;
    Ok(VerifiedCrl {
        issuer_raw: crl.tbs_cert_list.issuer.as_raw().to_vec(),
        issuer: crl.tbs_cert_list.issuer.to_string(),
        issuer_fingerprint: crate::sha256_hex(candidates[found]),
        this_update: crl.last_update().to_datetime(),
        next_update: crl.next_update().map(|t| t.to_datetime()),
        crl_number,
        serials: crl
            .iter_revoked_certificates()
            .map(|r| crate::serial::strip_leading_zeros(r.raw_serial()).to_vec())
            .collect(),
    })
}

/// Finds the certificate among `issuers` (DER) that issued `crl` and passes [`check_issuer`];
/// returns its index. Certificates that do not parse are skipped.
pub(crate) fn find_issuer(
    crl: &CertificateRevocationList<'_>,
    issuers: &[&[u8]],
    policy: AlgorithmPolicy,
) -> std::result::Result<usize, CrlError> {
    let issuer_raw = crl.tbs_cert_list.issuer.as_raw();
    let mut known = Vec::with_capacity(issuers.len());
    let mut best: Option<CrlError> = None;
    for (i, der) in issuers.iter().enumerate() {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            continue;
        };
        if cert.subject().as_raw() != issuer_raw {
            known.push(cert.subject().to_string());
            continue;
        }
        match check_issuer(crl, &cert, policy) {
            Ok(()) => return Ok(i),
            // Several certificates may carry the issuer's name (a re-created CA): report the
            // failure that got furthest.
            Err(e) => {
                if best.as_ref().is_none_or(|b| e.stage() > b.stage()) {
                    best = Some(e);
                }
            }
        }
    }
    Err(best.unwrap_or(CrlError::UnknownIssuer {
        issuer: crl.tbs_cert_list.issuer.to_string(),
        known,
    }))
}

/// Parses a DER CRL, refusing trailing bytes.
pub(crate) fn parse_strict(
    der: &[u8],
) -> std::result::Result<CertificateRevocationList<'_>, CrlError> {
    let (rest, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| CrlError::Malformed {
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(CrlError::TrailingData { count: rest.len() });
    }
    Ok(crl)
}

/// rustls-webpki's parse of the same bytes, after the rules above (whose errors say more).
/// x509-parser, which the rules read, tolerates encodings DER forbids where the signature does
/// not reach (it checks a tag's number but not its class, x509-parser issue 248): a CRL whose
/// outer signatureAlgorithm or signatureValue was re-tagged kept verifying here while
/// rustls-webpki refused it. A CRL must pass both, so `verify_crl` (the services) and
/// `TrustStore` (mtls-inspect, the TLS verifiers) never disagree about one.
pub(crate) fn parse_webpki(
    crl: &CertificateRevocationList<'_>,
    der: &[u8],
) -> std::result::Result<webpki::OwnedCertRevocationList, CrlError> {
    webpki::OwnedCertRevocationList::from_der(der).map_err(|e| CrlError::NotStrictDer {
        issuer: crl.tbs_cert_list.issuer.to_string(),
        reason: if crl.next_update().is_none() {
            "it has no nextUpdate, which RFC 5280 5.1.2.5 requires".into()
        } else {
            crate::verify::webpki_reason(&e)
        },
    })
}

const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
const OID_CERTIFICATE_ISSUER: &str = "2.5.29.29";

/// The rules that do not need the issuer: algorithm identifiers agree, a valid non-critical
/// CRL Number, no critical extension we cannot honour. Returns the CRL Number.
pub(crate) fn check_structure(
    crl: &CertificateRevocationList<'_>,
) -> std::result::Result<Vec<u8>, CrlError> {
    let issuer = || crl.tbs_cert_list.issuer.to_string();
    if crl.signature_algorithm != crl.tbs_cert_list.signature {
        return Err(CrlError::AlgorithmMismatch {
            outer: sigalg::signature_algorithm_name(
                &crl.signature_algorithm.algorithm.to_id_string(),
            ),
            inner: sigalg::signature_algorithm_name(
                &crl.tbs_cert_list.signature.algorithm.to_id_string(),
            ),
        });
    }
    let mut number = None;
    let mut unsupported = Vec::new();
    for ext in crl.extensions() {
        let oid = ext.oid.to_id_string();
        match oid.as_str() {
            OID_CRL_NUMBER => {
                if number.is_some() {
                    return Err(CrlError::InvalidCrlNumber {
                        issuer: issuer(),
                        reason: "the extension appears twice".into(),
                    });
                }
                if ext.critical {
                    return Err(CrlError::CrlNumberCritical { issuer: issuer() });
                }
                number = Some(crl_number_octets(ext.value).map_err(|reason| {
                    CrlError::InvalidCrlNumber {
                        issuer: issuer(),
                        reason,
                    }
                })?);
            }
            OID_ISSUING_DISTRIBUTION_POINT => {
                if let ParsedExtension::IssuingDistributionPoint(idp) = ext.parsed_extension() {
                    let scope = [
                        (idp.only_contains_ca_certs, "onlyContainsCACerts"),
                        (
                            idp.only_contains_attribute_certs,
                            "onlyContainsAttributeCerts",
                        ),
                        (idp.only_some_reasons.is_some(), "onlySomeReasons"),
                        (idp.indirect_crl, "indirectCRL"),
                    ];
                    if let Some((_, what)) = scope.iter().find(|(set, _)| *set) {
                        return Err(CrlError::PartialScope {
                            issuer: issuer(),
                            scope: (*what).to_string(),
                        });
                    }
                } else {
                    return Err(CrlError::Malformed {
                        reason: "its issuingDistributionPoint extension does not parse".into(),
                    });
                }
            }
            _ if ext.critical => unsupported.push(oid),
            _ => {}
        }
    }
    for entry in crl.iter_revoked_certificates() {
        for ext in entry.extensions() {
            let oid = ext.oid.to_id_string();
            if ext.critical || oid == OID_CERTIFICATE_ISSUER {
                unsupported.push(format!(
                    "{oid} (in the entry for serial {})",
                    entry.raw_serial_as_string()
                ));
            }
        }
    }
    if !unsupported.is_empty() {
        return Err(CrlError::UnsupportedCriticalExtension {
            issuer: issuer(),
            oids: unsupported,
        });
    }
    number.ok_or_else(|| CrlError::NoCrlNumber { issuer: issuer() })
}

/// The content octets of the CRL Number INTEGER, refusing negative and over-long values.
fn crl_number_octets(value: &[u8]) -> std::result::Result<Vec<u8>, String> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (rest, obj) = x509_parser::der_parser::der::parse_der_integer(value)
        .map_err(|_| "it is not a DER INTEGER".to_string())?;
    if !rest.is_empty() {
        return Err("bytes follow the INTEGER".into());
    }
    let BerObjectContent::Integer(bytes) = obj.content else {
        return Err("it is not a DER INTEGER".into());
    };
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        return Err("it is negative".into());
    }
    let stripped = crate::serial::strip_leading_zeros(bytes);
    if stripped.len() > 20 {
        return Err(format!(
            "it is {} octets long; RFC 5280 allows at most 20",
            stripped.len()
        ));
    }
    Ok(stripped.to_vec())
}

/// The rules that involve the issuer certificate: the algorithm fits its key and the policy,
/// the signature verifies, and its keyUsage allows signing CRLs.
pub(crate) fn check_issuer(
    crl: &CertificateRevocationList<'_>,
    issuer: &X509Certificate<'_>,
    policy: AlgorithmPolicy,
) -> std::result::Result<(), CrlError> {
    let name = || issuer.subject().to_string();
    let sig_oid = crl.signature_algorithm.algorithm.to_id_string();
    let algorithm = sigalg::signature_algorithm_name(&sig_oid);
    let spki = issuer.public_key();
    sigalg::verify_signature(
        crl.tbs_cert_list.as_ref(),
        crl.signature_value.data.as_ref(),
        &sig_oid,
        spki,
        policy,
    )
    .map_err(|e| match e {
        AlgorithmError::Unsupported { .. } => CrlError::UnsupportedAlgorithm {
            issuer: name(),
            algorithm: algorithm.clone(),
        },
        AlgorithmError::KeyMismatch { key, .. } => CrlError::AlgorithmKeyMismatch {
            issuer: name(),
            algorithm: algorithm.clone(),
            key: key.to_string(),
        },
        AlgorithmError::NotAllowed { key, policy, .. } => CrlError::AlgorithmNotAllowed {
            issuer: name(),
            algorithm: algorithm.clone(),
            key: key.to_string(),
            policy,
        },
        AlgorithmError::BadKey | AlgorithmError::BadSignature => CrlError::BadSignature {
            issuer: name(),
            key: KeyKind::of(spki).to_string(),
            fingerprint: crate::sha256_hex(issuer.as_ref()),
        },
    })?;
    match issuer.key_usage() {
        Ok(Some(ku)) if ku.value.crl_sign() => Ok(()),
        Ok(Some(ku)) => Err(CrlError::IssuerNotCrlSigner {
            issuer: name(),
            present: crate::certinfo::key_usage_names(ku.value),
        }),
        // Absent, or present twice (which no conforming certificate does).
        Ok(None) | Err(_) => Err(CrlError::IssuerWithoutKeyUsage { issuer: name() }),
    }
}

/// The revocation state the verifiers consult: one verified CRL per issuer, looked up by the
/// issuer's raw Name and the serial's content octets in O(1).
#[derive(Clone, Debug, Default)]
pub struct RevokedSet {
    by_issuer: HashMap<Vec<u8>, VerifiedCrl>,
}

impl RevokedSet {
    /// A set holding `crls`; of two CRLs from one issuer the one with the higher CRL Number
    /// is kept.
    pub fn from_crls(crls: Vec<VerifiedCrl>) -> Self {
        let mut set = RevokedSet::default();
        for crl in crls {
            set.insert(crl);
        }
        set
    }

    /// Adds `crl`, replacing the held CRL of the same issuer unless that one is newer.
    pub fn insert(&mut self, crl: VerifiedCrl) {
        match self.by_issuer.get(&crl.issuer_raw) {
            Some(held) if crl.is_superseded_by(held) => {}
            _ => {
                self.by_issuer.insert(crl.issuer_raw.clone(), crl);
            }
        }
    }

    /// True when the certificate with this issuer Name (raw DER) and serial (with or without
    /// leading zero octets) is listed.
    pub fn is_revoked(&self, issuer_raw: &[u8], serial: &[u8]) -> bool {
        self.by_issuer.get(issuer_raw).is_some_and(|crl| {
            crl.serials
                .contains(crate::serial::strip_leading_zeros(serial))
        })
    }

    /// True when the parsed certificate is listed (no second parse in a verifier).
    pub fn is_cert_listed(&self, cert: &X509Certificate<'_>) -> bool {
        self.is_revoked(
            cert.tbs_certificate.issuer.as_raw(),
            cert.tbs_certificate.raw_serial(),
        )
    }

    /// True when the DER certificate is listed (false when it does not parse).
    pub fn is_cert_revoked(&self, cert_der: &[u8]) -> bool {
        match X509Certificate::from_der(cert_der) {
            Ok((_, cert)) => self.is_cert_listed(&cert),
            Err(_) => false,
        }
    }

    /// True when a CRL from this issuer (raw Name) is held.
    pub fn covers(&self, issuer_raw: &[u8]) -> bool {
        self.by_issuer.contains_key(issuer_raw)
    }

    /// True when the set holds no CRL.
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

    /// The CRLs in the set, one per issuer.
    pub fn crls(&self) -> impl Iterator<Item = &VerifiedCrl> {
        self.by_issuer.values()
    }
}

#[cfg(test)]
mod tests;
