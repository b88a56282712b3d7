//! Turns a webpki error into a [`VerifyError`] that names the certificate at fault and gives
//! the expected and presented values, read from the certificates themselves.

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::signature::{signature_algorithm_name, signature_verifies};
use super::{from_unix, malformed, webpki_reason, Crl, Purpose, TrustStore, VerifyError};
use crate::certinfo::{colon_hex, CertInfo};
use crate::sigalg::{self, AlgorithmError, KeyKind};

/// A certificate of the presented chain, parsed for explanations.
struct Parsed {
    der: Vec<u8>,
    subject: String,
    issuer: String,
    raw_subject: Vec<u8>,
    raw_issuer: Vec<u8>,
    serial: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    is_ca: bool,
    /// None when there is no EKU extension.
    eku: Option<Vec<String>>,
    critical_oids: Vec<String>,
}

impl Parsed {
    fn parse(der: &[u8], what: &str) -> Result<Parsed, VerifyError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| malformed(what, e.to_string()))?;
        let mut is_ca = false;
        let mut eku = None;
        let mut critical_oids = Vec::new();
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
                ParsedExtension::ExtendedKeyUsage(e) => eku = Some(eku_names(e)),
                _ => {}
            }
            if ext.critical
                && !super::SUPPORTED_EXTENSIONS.contains(&ext.oid.to_id_string().as_str())
            {
                critical_oids.push(ext.oid.to_id_string());
            }
        }
        Ok(Parsed {
            der: der.to_vec(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            raw_subject: cert.subject().as_raw().to_vec(),
            raw_issuer: cert.issuer().as_raw().to_vec(),
            serial: crate::serial::strip_leading_zeros(cert.tbs_certificate.raw_serial()).to_vec(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            is_ca,
            eku,
            critical_oids,
        })
    }
}

/// The EKU purposes of an extension, by their usual names.
pub fn eku_names(e: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut names = Vec::new();
    let flags = [
        (e.any, "anyExtendedKeyUsage"),
        (e.server_auth, "serverAuth"),
        (e.client_auth, "clientAuth"),
        (e.code_signing, "codeSigning"),
        (e.email_protection, "emailProtection"),
        (e.time_stamping, "timeStamping"),
        (e.ocsp_signing, "OCSPSigning"),
    ];
    for (set, name) in flags {
        if set {
            names.push(name.to_string());
        }
    }
    names.extend(e.other.iter().map(|o| o.to_id_string()));
    names
}

/// Everything needed to explain a webpki error in terms of the actual certificates.
pub(super) struct Context<'s> {
    store: &'s TrustStore,
    pub(super) leaf: CertInfo,
    leaf_parsed: Parsed,
    pub(super) leaf_issuer_raw: Vec<u8>,
    intermediates: Vec<Parsed>,
}

impl<'s> Context<'s> {
    pub(super) fn new(
        store: &'s TrustStore,
        end_entity: &[u8],
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Context<'s>, VerifyError> {
        let leaf = CertInfo::from_der(end_entity).map_err(|e| {
            malformed(
                "end-entity certificate",
                e.to_string().trim_start_matches("invalid certificate: "),
            )
        })?;
        let leaf_parsed = Parsed::parse(end_entity, "end-entity certificate")?;
        let mut parsed = Vec::with_capacity(intermediates.len());
        for (i, der) in intermediates.iter().enumerate() {
            parsed.push(Parsed::parse(
                der,
                &format!("intermediate certificate #{}", i + 1),
            )?);
        }
        Ok(Context {
            store,
            leaf_issuer_raw: leaf_parsed.raw_issuer.clone(),
            leaf,
            leaf_parsed,
            intermediates: parsed,
        })
    }

    /// The chain as built by names from the leaf through the given intermediates.
    fn name_chain(&self) -> Vec<&Parsed> {
        let mut chain = vec![&self.leaf_parsed];
        let mut head = &self.leaf_parsed;
        // Self-issued certificates end the walk; a loop cannot form because used certificates
        // are skipped, and the length is bounded by the number of intermediates.
        while head.raw_issuer != head.raw_subject {
            let next = self.intermediates.iter().find(|c| {
                c.raw_subject == head.raw_issuer && !chain.iter().any(|p| p.der == c.der)
            });
            match next {
                Some(c) => {
                    chain.push(c);
                    head = c;
                }
                None => break,
            }
        }
        chain
    }

    fn who(&self, cert: &Parsed) -> String {
        if std::ptr::eq(cert, &self.leaf_parsed) {
            "certificate".to_string()
        } else {
            format!("intermediate certificate {}", cert.subject)
        }
    }

    fn all(&self) -> impl Iterator<Item = &Parsed> {
        std::iter::once(&self.leaf_parsed).chain(self.intermediates.iter())
    }

    fn crl_for(&self, raw_issuer: &[u8]) -> Option<&Crl> {
        self.store.crls.iter().find(|c| c.raw_issuer == raw_issuer)
    }

    pub(super) fn explain(&self, err: webpki::Error, purpose: Purpose) -> VerifyError {
        use webpki::Error as E;
        match err {
            E::CertExpired { time, not_after } => {
                let t = from_unix(time);
                let na = from_unix(not_after);
                let cert = self
                    .all()
                    .find(|c| c.not_after.unix_timestamp() == na.unix_timestamp())
                    .unwrap_or(&self.leaf_parsed);
                VerifyError::Expired {
                    who: self.who(cert),
                    not_after: cert.not_after,
                    checked_at: t,
                }
            }
            E::CertNotValidYet { time, not_before } => {
                let t = from_unix(time);
                let nb = from_unix(not_before);
                let cert = self
                    .all()
                    .find(|c| c.not_before.unix_timestamp() == nb.unix_timestamp())
                    .unwrap_or(&self.leaf_parsed);
                VerifyError::NotYetValid {
                    who: self.who(cert),
                    not_before: cert.not_before,
                    checked_at: t,
                }
            }
            E::InvalidCertValidity => {
                let cert = self
                    .all()
                    .find(|c| c.not_before > c.not_after)
                    .unwrap_or(&self.leaf_parsed);
                VerifyError::InvalidValidity {
                    who: self.who(cert),
                }
            }
            E::UnknownIssuer => self.unknown_issuer(),
            E::InvalidSignatureForPublicKey => self.bad_signature(),
            E::SignatureAlgorithmMismatch => VerifyError::Other {
                detail: "a certificate's inner and outer signature algorithms differ".into(),
            },
            E::UnsupportedSignatureAlgorithmContext(_)
            | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
                self.unsupported_signature()
            }
            E::CaUsedAsEndEntity => VerifyError::CaUsedAsLeaf {
                subject: self.leaf.subject.clone(),
            },
            E::EndEntityUsedAsCa => {
                let subject = self
                    .name_chain()
                    .into_iter()
                    .skip(1)
                    .find(|c| !c.is_ca)
                    .or_else(|| self.intermediates.iter().find(|c| !c.is_ca))
                    .map(|c| c.subject.clone())
                    .unwrap_or_else(|| self.leaf.issuer.clone());
                VerifyError::NotACa { subject }
            }
            E::PathLenConstraintViolated => VerifyError::PathLen {
                chain: self
                    .name_chain()
                    .iter()
                    .map(|c| c.subject.clone())
                    .collect(),
            },
            E::RequiredEkuNotFoundContext(_) => self.missing_eku(purpose),
            E::EmptyEkuExtension => {
                let cert = self
                    .all()
                    .find(|c| c.eku.as_ref().is_some_and(Vec::is_empty))
                    .unwrap_or(&self.leaf_parsed);
                VerifyError::EmptyEku {
                    who: self.who(cert),
                }
            }
            E::CertRevoked => self.revoked(),
            E::UnknownRevocationStatus => self.unknown_revocation(),
            E::CrlExpired { time, next_update } => {
                let issuer = self
                    .crl_for(&self.leaf_issuer_raw)
                    .map(|c| c.issuer.clone())
                    .unwrap_or_else(|| self.leaf.issuer.clone());
                VerifyError::CrlExpired {
                    issuer,
                    next_update: from_unix(next_update),
                    checked_at: from_unix(time),
                }
            }
            E::InvalidCrlSignatureForPublicKey
            | E::UnsupportedCrlSignatureAlgorithmContext(_)
            | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => {
                VerifyError::CrlSignature {
                    issuer: self.leaf.issuer.clone(),
                }
            }
            E::IssuerNotCrlSigner => VerifyError::CrlIssuerNotSigner {
                issuer: self.leaf.issuer.clone(),
            },
            E::NameConstraintViolation => VerifyError::NameConstraint {
                subject: self.leaf.subject.clone(),
            },
            E::UnsupportedCriticalExtension => {
                let cert = self
                    .all()
                    .find(|c| !c.critical_oids.is_empty())
                    .unwrap_or(&self.leaf_parsed);
                VerifyError::UnsupportedCriticalExtension {
                    who: self.who(cert),
                    oids: cert.critical_oids.clone(),
                }
            }
            E::BadDer | E::BadDerTime | E::TrailingData(_) | E::MalformedExtensions => {
                malformed("certificate chain", webpki_reason(&err))
            }
            other => VerifyError::Other {
                detail: format!("{other:?}"),
            },
        }
    }

    fn unknown_issuer(&self) -> VerifyError {
        let chain = self.name_chain();
        let head = chain.last().copied().unwrap_or(&self.leaf_parsed);
        VerifyError::UnknownIssuer {
            issuer: head.issuer.clone(),
            roots: self.store.root_subjects(),
        }
    }

    /// Finds the first link whose signature does not verify and names both ends.
    fn bad_signature(&self) -> VerifyError {
        let chain = self.name_chain();
        for (i, child) in chain.iter().enumerate() {
            let issuer_spki: Option<(String, Vec<u8>)> = match chain.get(i + 1) {
                Some(parent) => X509Certificate::from_der(&parent.der)
                    .ok()
                    .map(|(_, c)| (parent.subject.clone(), c.public_key().raw.to_vec())),
                None => self
                    .store
                    .roots
                    .iter()
                    .find(|r| r.raw_subject == child.raw_issuer)
                    .map(|r| (r.subject.clone(), r.spki.clone())),
            };
            let Some((issuer, spki)) = issuer_spki else {
                continue;
            };
            if signature_verifies(&child.der, &spki) == Some(false) {
                return VerifyError::BadSignature {
                    subject: child.subject.clone(),
                    issuer,
                };
            }
        }
        VerifyError::BadSignature {
            subject: self.leaf.subject.clone(),
            issuer: self.leaf.issuer.clone(),
        }
    }

    /// Finds the first link whose signature algorithm the store's policy refuses for its
    /// issuer's key, and says whether the policy or the pairing is at fault.
    fn unsupported_signature(&self) -> VerifyError {
        let policy = self.store.options.algorithms;
        let chain = self.name_chain();
        for (i, child) in chain.iter().enumerate() {
            let Ok((_, c)) = X509Certificate::from_der(&child.der) else {
                continue;
            };
            let oid = c.signature_algorithm.algorithm.to_id_string();
            let issuer_spki = match chain.get(i + 1) {
                Some(parent) => X509Certificate::from_der(&parent.der)
                    .ok()
                    .map(|(_, p)| p.public_key().raw.to_vec()),
                None => self
                    .store
                    .roots
                    .iter()
                    .find(|r| r.raw_subject == child.raw_issuer)
                    .map(|r| r.spki.clone()),
            };
            let Some(key) = issuer_spki.as_deref().and_then(KeyKind::of_der) else {
                continue;
            };
            match sigalg::verification_algorithm(&oid, &key, policy) {
                Ok(_) => continue,
                Err(AlgorithmError::NotAllowed { .. }) => {
                    return VerifyError::AlgorithmNotAllowed {
                        subject: child.subject.clone(),
                        algorithm: signature_algorithm_name(&oid),
                        key: key.to_string(),
                        policy,
                    }
                }
                Err(_) => {
                    return VerifyError::UnsupportedSignature {
                        subject: child.subject.clone(),
                        algorithm: signature_algorithm_name(&oid),
                    }
                }
            }
        }
        let algorithm = X509Certificate::from_der(&self.leaf_parsed.der)
            .map(|(_, c)| signature_algorithm_name(&c.signature_algorithm.algorithm.to_id_string()))
            .unwrap_or_else(|_| "an unknown algorithm".into());
        VerifyError::UnsupportedSignature {
            subject: self.leaf.subject.clone(),
            algorithm,
        }
    }

    fn missing_eku(&self, purpose: Purpose) -> VerifyError {
        let required = purpose.eku_name();
        let has = |ekus: &Vec<String>| {
            ekus.iter()
                .any(|e| e == required || e == "anyExtendedKeyUsage")
        };
        match &self.leaf_parsed.eku {
            Some(ekus) if !has(ekus) => VerifyError::MissingEku {
                required,
                present: ekus.clone(),
            },
            _ => {
                let restricting = self
                    .intermediates
                    .iter()
                    .find(|c| c.eku.as_ref().is_some_and(|e| !has(e)));
                match restricting {
                    Some(c) => VerifyError::IssuerEkuRestriction {
                        issuer: c.subject.clone(),
                        required,
                        present: c.eku.clone().unwrap_or_default(),
                    },
                    None => VerifyError::MissingEku {
                        required,
                        present: self.leaf_parsed.eku.clone().unwrap_or_default(),
                    },
                }
            }
        }
    }

    fn revoked(&self) -> VerifyError {
        for cert in self.name_chain() {
            let Some(crl) = self.crl_for(&cert.raw_issuer) else {
                continue;
            };
            if let Ok(Some(entry)) = crl.list.find_serial(&cert.serial) {
                return VerifyError::Revoked {
                    who: self.who(cert),
                    serial: colon_hex(&hex::encode(&cert.serial)).to_ascii_lowercase(),
                    revoked_at: Some(from_unix(entry.revocation_date)),
                    reason: entry.reason_code.map(reason_name),
                };
            }
        }
        VerifyError::Revoked {
            who: "certificate".into(),
            serial: colon_hex(&self.leaf.serial_hex).to_ascii_lowercase(),
            revoked_at: None,
            reason: None,
        }
    }

    fn unknown_revocation(&self) -> VerifyError {
        let crl_issuers: Vec<String> = self.store.crls.iter().map(|c| c.issuer.clone()).collect();
        let chain = self.name_chain();
        let cert = chain
            .iter()
            .find(|c| self.crl_for(&c.raw_issuer).is_none())
            .copied()
            .unwrap_or(&self.leaf_parsed);
        VerifyError::RevocationUnknown {
            who: self.who(cert),
            issuer: cert.issuer.clone(),
            crl_issuers,
        }
    }
}

/// The RFC 5280 name of a webpki reason, from the one table in `crl.rs`.
fn reason_name(r: webpki::RevocationReason) -> String {
    let code = r as u8;
    crate::crl::reason_name(code).map_or_else(|| format!("reason {code}"), str::to_string)
}
