//! The X509-SVID rule set: one implementation for `pki::verify` (and so `mtls-inspect verify`),
//! the services' handshake verifiers and `mtls-inspect lint`.
//!
//! Every certificate that carries a `spiffe://` URI SAN (the scheme compared without regard to
//! case, so `SPIFFE://` cannot slip past) is held to the MUSTs of the SPIFFE X509-SVID
//! specification for a leaf:
//! - exactly one URI SAN, and it is a valid SPIFFE ID (section 2);
//! - basicConstraints cA is not true (section 4.1);
//! - a keyUsage extension, marked critical, with digitalSignature and with neither keyCertSign
//!   nor cRLSign (section 4.3).
//!
//! A certificate without one (static mode with plain OpenSSL certificates) is judged by the
//! RFC 5280 / Web PKI rules only: path validation (webpki) decides, and a keyUsage extension,
//! when present, must still allow digitalSignature (a TLS 1.3 end entity signs the handshake)
//! and must not carry keyCertSign or cRLSign. Without a keyUsage extension such a certificate
//! is unrestricted (RFC 5280 4.2.1.3).
//!
//! [`SvidRules::check`] takes a certificate already parsed by x509-parser, so a verifier that
//! needs the parse anyway (revocation lookup, identity) parses each peer certificate once:
//!
//! ```text
//! // after webpki path validation, per handshake:
//! let (_, cert) = X509Certificate::from_der(end_entity)?;
//! if revoked.is_cert_listed(&cert) { /* certificate_revoked */ }       // pki::crl::RevokedSet
//! let rules = if require_id { SvidRules::requiring_spiffe_id() } else { SvidRules::new() };
//! let spiffe_id: Option<SpiffeId> = rules.check(&cert)?;              // SvidViolation
//! ```
//!
//! [`SvidRules::violations`] and [`signing_violations`] list every violation, for lint.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use crate::certinfo::key_usage_names;
use crate::spiffe::{SpiffeId, TrustDomain};

/// One way a certificate breaks the rule set. Messages give what the certificate presents and
/// what the rule requires; [`SvidViolation::code`] is a stable name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SvidViolation {
    /// No URI SAN, so no SPIFFE ID.
    #[error("certificate has no URI SAN, so no SPIFFE ID; an X509-SVID carries exactly one")]
    NoUriSan,
    /// More than one URI SAN.
    #[error("certificate has {} URI SANs [{}]; an X509-SVID carries exactly one", .uris.len(), .uris.join(", "))]
    MultipleUriSans {
        /// The URI SANs found.
        uris: Vec<String>,
    },
    /// The URI SAN is not a valid SPIFFE ID.
    #[error("URI SAN {uri} is not a valid SPIFFE ID: {reason}")]
    InvalidSpiffeId {
        /// The URI SAN.
        uri: String,
        /// The SPIFFE ID rule it breaks.
        reason: String,
    },
    /// A leaf marked CA:TRUE.
    #[error("certificate has basicConstraints CA:TRUE; a leaf X509-SVID must not be a CA")]
    CaLeaf,
    /// No keyUsage extension.
    #[error(
        "certificate has no keyUsage extension; an X509-SVID must have a critical keyUsage with \
         digitalSignature"
    )]
    KeyUsageMissing,
    /// keyUsage is not critical.
    #[error("keyUsage is not marked critical; an X509-SVID must mark it critical")]
    KeyUsageNotCritical,
    /// keyUsage lacks digitalSignature.
    #[error(
        "key usage lacks digitalSignature (it has [{}]); a TLS 1.3 ECDSA end-entity certificate \
         must be able to sign, and SPIFFE X509-SVIDs require digitalSignature",
        .present.join(", ")
    )]
    NoDigitalSignature {
        /// The key usages present.
        present: Vec<String>,
    },
    /// A leaf whose keyUsage allows keyCertSign or cRLSign.
    #[error(
        "key usage allows {usage} (it has [{}]); keyCertSign and cRLSign belong on CA \
         certificates, never on an end-entity certificate",
        .present.join(", ")
    )]
    CaKeyUsage {
        /// The CA usage found (`keyCertSign` or `cRLSign`).
        usage: &'static str,
        /// The key usages present.
        present: Vec<String>,
    },
    /// A signing certificate's SPIFFE ID has a path.
    #[error(
        "signing certificate carries the SPIFFE ID {id}, which has a path; a signing \
         certificate's SPIFFE ID must be the trust domain alone (spiffe://{trust_domain})"
    )]
    SigningIdHasPath {
        /// The SPIFFE ID found.
        id: String,
        /// Its trust domain.
        trust_domain: String,
    },
    /// A signing certificate without CA:TRUE.
    #[error("signing certificate lacks basicConstraints CA:TRUE")]
    SigningNotCa,
    /// A signing certificate's keyUsage lacks keyCertSign.
    #[error("signing certificate's key usage lacks keyCertSign (it has [{}])", .present.join(", "))]
    SigningNoKeyCertSign {
        /// The key usages present.
        present: Vec<String>,
    },
    /// An extension appears twice.
    #[error("certificate has the {extension} extension more than once")]
    DuplicateExtension {
        /// The extension, by name.
        extension: &'static str,
    },
}

impl SvidViolation {
    /// A stable, machine-readable name (JSON output, logs, metrics).
    pub fn code(&self) -> &'static str {
        match self {
            SvidViolation::NoUriSan => "no_uri_san",
            SvidViolation::MultipleUriSans { .. } => "multiple_uri_sans",
            SvidViolation::InvalidSpiffeId { .. } => "invalid_spiffe_id",
            SvidViolation::CaLeaf => "svid_ca",
            SvidViolation::KeyUsageMissing => "key_usage_missing",
            SvidViolation::KeyUsageNotCritical => "key_usage_not_critical",
            SvidViolation::NoDigitalSignature { .. } => "key_usage_no_digital_signature",
            SvidViolation::CaKeyUsage { .. } => "key_usage_ca_bits",
            SvidViolation::SigningIdHasPath { .. } => "signing_id_has_path",
            SvidViolation::SigningNotCa => "signing_not_ca",
            SvidViolation::SigningNoKeyCertSign { .. } => "signing_no_key_cert_sign",
            SvidViolation::DuplicateExtension { .. } => "duplicate_extension",
        }
    }
}

/// What the rules found in an end-entity certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeafFindings {
    /// The SPIFFE ID, when the certificate's only URI SAN is a valid SPIFFE ID (reported even
    /// when other rules are broken; [`SvidRules::check`] then refuses the certificate).
    pub spiffe_id: Option<SpiffeId>,
    /// True when the certificate was judged as an X509-SVID.
    pub judged_as_svid: bool,
    /// Every violation, in the order [`SvidRules::check`] reports them.
    pub violations: Vec<SvidViolation>,
}

/// The rule set for end-entity certificates (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvidRules {
    require_spiffe_id: bool,
}

impl SvidRules {
    /// X509-SVID MUSTs for certificates carrying a `spiffe://` URI SAN, the Web PKI key usage
    /// rule for the others.
    pub const fn new() -> SvidRules {
        SvidRules {
            require_spiffe_id: false,
        }
    }

    /// Every certificate is judged as an X509-SVID, so one without a SPIFFE ID is refused (a
    /// server that requires client identities; `verify --spiffe-id`).
    pub const fn requiring_spiffe_id() -> SvidRules {
        SvidRules {
            require_spiffe_id: true,
        }
    }

    /// Whether a certificate without a SPIFFE ID is refused.
    pub fn requires_spiffe_id(&self) -> bool {
        self.require_spiffe_id
    }

    /// The verdict: `Ok(Some(id))` for a conforming X509-SVID, `Ok(None)` for a certificate
    /// without a SPIFFE ID that passes the Web PKI rule, else the first violation.
    pub fn check(&self, cert: &X509Certificate<'_>) -> Result<Option<SpiffeId>, SvidViolation> {
        let findings = self.violations(cert);
        match findings.violations.into_iter().next() {
            Some(v) => Err(v),
            None => Ok(findings.spiffe_id),
        }
    }

    /// Every violation of the rules by `cert`, and its SPIFFE ID.
    pub fn violations(&self, cert: &X509Certificate<'_>) -> LeafFindings {
        let mut out = LeafFindings::default();
        let uris = match uri_sans(cert) {
            Ok(uris) => uris,
            Err(v) => {
                out.violations.push(v);
                return out;
            }
        };
        out.judged_as_svid = self.require_spiffe_id || uris.iter().any(|u| is_spiffe_uri(u));
        if out.judged_as_svid {
            match uris.as_slice() {
                [] => out.violations.push(SvidViolation::NoUriSan),
                [one] => match SpiffeId::parse(one) {
                    Ok(id) => out.spiffe_id = Some(id),
                    Err(e) => out.violations.push(invalid_id(one, e)),
                },
                many => out.violations.push(SvidViolation::MultipleUriSans {
                    uris: many.iter().map(|u| u.to_string()).collect(),
                }),
            }
            match cert.basic_constraints() {
                Ok(Some(bc)) if bc.value.ca => out.violations.push(SvidViolation::CaLeaf),
                Ok(_) => {}
                Err(_) => out.violations.push(SvidViolation::DuplicateExtension {
                    extension: "basicConstraints",
                }),
            }
        }
        match cert.key_usage() {
            Ok(Some(ku)) => {
                if out.judged_as_svid && !ku.critical {
                    out.violations.push(SvidViolation::KeyUsageNotCritical);
                }
                let present = || key_usage_names(ku.value);
                if !ku.value.digital_signature() {
                    out.violations
                        .push(SvidViolation::NoDigitalSignature { present: present() });
                }
                let usage = match (ku.value.key_cert_sign(), ku.value.crl_sign()) {
                    (true, true) => Some("keyCertSign and cRLSign"),
                    (true, false) => Some("keyCertSign"),
                    (false, true) => Some("cRLSign"),
                    (false, false) => None,
                };
                if let Some(usage) = usage {
                    out.violations.push(SvidViolation::CaKeyUsage {
                        usage,
                        present: present(),
                    });
                }
            }
            Ok(None) if out.judged_as_svid => out.violations.push(SvidViolation::KeyUsageMissing),
            Ok(None) => {}
            Err(_) => out.violations.push(SvidViolation::DuplicateExtension {
                extension: "keyUsage",
            }),
        }
        out
    }
}

/// Every violation of the X509-SVID rules for a signing (CA) certificate: CA:TRUE, a critical
/// keyUsage with keyCertSign, at most one URI SAN, and a SPIFFE ID, if any, without a path.
pub fn signing_violations(cert: &X509Certificate<'_>) -> Vec<SvidViolation> {
    let mut out = Vec::new();
    match uri_sans(cert) {
        Ok(uris) => {
            if uris.len() > 1 {
                out.push(SvidViolation::MultipleUriSans {
                    uris: uris.iter().map(|u| u.to_string()).collect(),
                });
            }
            for uri in uris.iter().filter(|u| is_spiffe_uri(u)) {
                if let Some(v) = signing_id_violation(uri) {
                    out.push(v);
                }
            }
        }
        Err(v) => out.push(v),
    }
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        Ok(_) => out.push(SvidViolation::SigningNotCa),
        Err(_) => out.push(SvidViolation::DuplicateExtension {
            extension: "basicConstraints",
        }),
    }
    match cert.key_usage() {
        Ok(Some(ku)) => {
            if !ku.critical {
                out.push(SvidViolation::KeyUsageNotCritical);
            }
            if !ku.value.key_cert_sign() {
                out.push(SvidViolation::SigningNoKeyCertSign {
                    present: key_usage_names(ku.value),
                });
            }
        }
        Ok(None) => out.push(SvidViolation::KeyUsageMissing),
        Err(_) => out.push(SvidViolation::DuplicateExtension {
            extension: "keyUsage",
        }),
    }
    out
}

/// A signing certificate's SPIFFE URI must be `spiffe://<trust domain>`, with no path.
fn signing_id_violation(uri: &str) -> Option<SvidViolation> {
    let rest = match uri.strip_prefix("spiffe://") {
        Some(rest) => rest,
        // Wrong-case scheme: let the ID parser word the problem.
        None => return SpiffeId::parse(uri).err().map(|e| invalid_id(uri, e)),
    };
    match rest.split_once('/') {
        None => TrustDomain::parse(rest).err().map(|e| invalid_id(uri, e)),
        Some((td, _)) => match SpiffeId::parse(uri) {
            Ok(id) => Some(SvidViolation::SigningIdHasPath {
                id: id.to_string(),
                trust_domain: td.to_string(),
            }),
            Err(e) => Some(invalid_id(uri, e)),
        },
    }
}

fn invalid_id(uri: &str, e: crate::PkiError) -> SvidViolation {
    SvidViolation::InvalidSpiffeId {
        uri: uri.to_string(),
        reason: match e {
            crate::PkiError::SpiffeId { reason, .. } => reason,
            other => other.to_string(),
        },
    }
}

/// True for a URI whose scheme is `spiffe`, in any case.
pub fn is_spiffe_uri(uri: &str) -> bool {
    uri.split_once(':')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("spiffe"))
}

/// The URI SANs of a certificate, in order.
fn uri_sans<'a>(cert: &'a X509Certificate<'_>) -> Result<Vec<&'a str>, SvidViolation> {
    let san = cert
        .subject_alternative_name()
        .map_err(|_| SvidViolation::DuplicateExtension {
            extension: "subjectAltName",
        })?;
    Ok(san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests;
