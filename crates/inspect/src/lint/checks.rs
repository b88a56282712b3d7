//! The checks: one certificate against the leaf or the signing-certificate profile.
//!
//! The X509-SVID rules come from `pki::svid` and the RFC 5280 profile checks from
//! `pki::rfc5280`, the code `mtls-inspect verify` and the services use; this file maps their
//! violations to lint rule ids and adds the checks only lint makes (serials, lifetimes, EKU,
//! the issuance policy's key and signature choices).

use anyhow::Result;
use pki::rfc5280::Rfc5280Violation;
use pki::svid::{SvidRules, SvidViolation};
use time::Duration;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::issuers::IssuerIndex;
use super::rules::*;
use super::Report;
use crate::model::cert::significant_bits;
use crate::names;
use pki::timefmt::human;

/// Settings a certificate is judged by.
pub struct Policy {
    /// The trust domain every SPIFFE ID must be in, if one is required.
    pub trust_domain: Option<pki::TrustDomain>,
    /// Longest acceptable lifetime of a leaf.
    pub max_lifetime: Duration,
    /// Longest acceptable lifetime of a CA certificate.
    pub max_ca_lifetime: Duration,
    /// Which rules apply to which certificate.
    pub profile: ProfileChoice,
}

/// Which rules a certificate is judged by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProfileChoice {
    /// CA profile for CA:TRUE certificates, unless they carry a workload SPIFFE ID and a TLS
    /// EKU (a leaf wrongly marked CA); leaf profile for everything else.
    #[default]
    Auto,
    /// Every certificate as a leaf X509-SVID.
    Leaf,
    /// Every certificate as a signing (CA) certificate.
    Ca,
}

/// Lints one DER certificate. `issuers` indexes the candidate issuer certificates.
pub fn lint_certificate(der: &[u8], issuers: &IssuerIndex, policy: &Policy) -> Result<Report> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| anyhow::anyhow!("cannot parse the certificate: {e}"))?;
    let mut f = Vec::new();

    let mut is_ca = false;
    let mut bc_present = false;
    let mut eku = None;
    let mut uris = Vec::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                bc_present = true;
                is_ca = bc.ca;
            }
            ParsedExtension::ExtendedKeyUsage(e) => eku = Some(pki::verify::eku_names(e)),
            ParsedExtension::SubjectAlternativeName(s) => {
                uris.extend(s.general_names.iter().filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                    _ => None,
                }))
            }
            _ => {}
        }
        let oid = ext.oid.to_id_string();
        if ext.critical && !pki::verify::SUPPORTED_EXTENSIONS.contains(&oid.as_str()) {
            let name = names::extension_name(&oid).unwrap_or("unknown");
            f.push(Finding::new(
                UNKNOWN_CRITICAL,
                format!("extension {oid} ({name}) is critical; the mtls-mesh verifier rejects it"),
            ));
        }
    }

    // X.509 basics.
    if cert.version().0 != 2 {
        f.push(Finding::new(
            VERSION,
            format!("the certificate is version {}", cert.version().0 + 1),
        ));
    }
    let nb = cert.validity().not_before.to_datetime();
    let na = cert.validity().not_after.to_datetime();
    if nb > na {
        f.push(Finding::new(
            VALIDITY_ORDER,
            format!(
                "NotBefore {} is after NotAfter {}",
                pki::timefmt::rfc3339(nb),
                pki::timefmt::rfc3339(na)
            ),
        ));
    }
    serial_findings(cert.tbs_certificate.raw_serial(), &mut f);

    // The RFC 5280 profile checks shared with `verify --strict`.
    let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
    let mut rfc = Vec::new();
    if !self_issued {
        rfc.extend(pki::rfc5280::authority_key_id(&cert));
    }
    rfc.extend(pki::rfc5280::san_criticality(&cert));
    rfc.extend(pki::rfc5280::dns_names(&cert));

    // Profile-specific rules.
    // A CA:TRUE certificate with a workload SPIFFE ID and a TLS EKU is a leaf marked CA by
    // mistake; judge it as the leaf it was meant to be.
    let workload_id = uris.iter().any(|u| pki::SpiffeId::parse(u).is_ok());
    let tls_eku = eku
        .as_ref()
        .is_some_and(|e| e.iter().any(|u| u == "serverAuth" || u == "clientAuth"));
    let as_ca = match policy.profile {
        ProfileChoice::Auto => is_ca && !(workload_id && tls_eku),
        ProfileChoice::Leaf => false,
        ProfileChoice::Ca => true,
    };
    if as_ca {
        rfc.extend(pki::rfc5280::subject_key_id(&cert));
        for v in pki::svid::signing_violations(&cert) {
            f.push(Finding::new(svid_rule(&v), v.to_string()));
        }
    } else {
        // Lint judges every leaf as an X509-SVID, with or without a SPIFFE ID.
        let findings = SvidRules::requiring_spiffe_id().violations(&cert);
        for v in &findings.violations {
            f.push(Finding::new(svid_rule(v), v.to_string()));
        }
        if let (Some(id), Some(td)) = (&findings.spiffe_id, &policy.trust_domain) {
            if id.trust_domain() != td {
                f.push(Finding::new(
                    TRUST_DOMAIN,
                    format!("{id} is not in trust domain {td}"),
                ));
            }
        }
        leaf_rules(eku.as_deref(), bc_present, &mut f);
    }
    for v in rfc {
        if let Some(rule) = rfc5280_rule(&v) {
            f.push(Finding::new(rule, format!("the certificate {v}")));
        }
    }

    // Keys and signatures.
    let key = crate::model::key::KeyView::of(cert.public_key());
    let key_is_ecdsa =
        key.algorithm == "EC" && matches!(key.curve.as_deref(), Some("P-256" | "P-384" | "P-521"));
    if !key_is_ecdsa {
        f.push(Finding::new(
            ECDSA_KEY,
            format!("the key is {}", key.describe()),
        ));
    }
    if as_ca && key_is_ecdsa && key.curve.as_deref() != Some("P-384") {
        f.push(Finding::new(
            CA_KEY_P384,
            format!("the CA key is {}", key.describe()),
        ));
    }
    signature_findings(&cert, issuers, self_issued, &mut f);

    // Lifetime.
    let lifetime = na - nb;
    let max = if as_ca {
        policy.max_ca_lifetime
    } else {
        policy.max_lifetime
    };
    if lifetime > max {
        f.push(Finding::new(
            LIFETIME,
            format!(
                "the lifetime is {}, above the {} threshold",
                human(lifetime),
                human(max)
            ),
        ));
    }

    f.sort_by_key(|x| x.severity);
    Ok(Report {
        file: String::new(),
        index: 0,
        subject: cert.subject().to_string(),
        profile: if as_ca { "ca" } else { "leaf" },
        findings: f,
    })
}

/// The lint rule of an X509-SVID violation found by `pki::svid`.
fn svid_rule(v: &SvidViolation) -> Rule {
    match v {
        SvidViolation::NoUriSan | SvidViolation::MultipleUriSans { .. } => URI_SAN_COUNT,
        SvidViolation::InvalidSpiffeId { .. } => SPIFFE_ID_SYNTAX,
        SvidViolation::CaLeaf => LEAF_CA_FALSE,
        SvidViolation::KeyUsageMissing => KEY_USAGE_PRESENT,
        SvidViolation::KeyUsageNotCritical => KEY_USAGE_CRITICAL,
        SvidViolation::NoDigitalSignature { .. } => LEAF_DIGITAL_SIGNATURE,
        SvidViolation::CaKeyUsage { .. } => LEAF_NO_CERT_SIGN,
        SvidViolation::SigningIdHasPath { .. } => CA_URI_SAN,
        SvidViolation::SigningNotCa => CA_TRUE,
        SvidViolation::SigningNoKeyCertSign { .. } => CA_KEY_CERT_SIGN,
        SvidViolation::DuplicateExtension { .. } => DUPLICATE_EXTENSION,
    }
}

/// The lint rule of an RFC 5280 violation found by `pki::rfc5280`; None for the ones another
/// rule already reports (a critical key identifier is an unknown critical extension to the
/// verifier) or that concern trust anchors only (`verify --strict` checks those).
fn rfc5280_rule(v: &Rfc5280Violation) -> Option<Rule> {
    Some(match v {
        Rfc5280Violation::AkiMissing => AUTHORITY_KEY_ID,
        Rfc5280Violation::SkiMissing => SUBJECT_KEY_ID,
        Rfc5280Violation::SanNotCriticalWithEmptySubject
        | Rfc5280Violation::SanMissingWithEmptySubject => SAN_CRITICAL_EMPTY_SUBJECT,
        Rfc5280Violation::SanCriticalWithSubject => SAN_NONCRITICAL_WITH_SUBJECT,
        Rfc5280Violation::InvalidDnsName { .. } => DNS_NAME_SYNTAX,
        Rfc5280Violation::AkiCritical | Rfc5280Violation::SkiCritical => return None,
        Rfc5280Violation::RootSelfSignature { .. }
        | Rfc5280Violation::RootNotCa
        | Rfc5280Violation::RootKeyUsageMissing
        | Rfc5280Violation::RootNoKeyCertSign { .. }
        | Rfc5280Violation::RootExpired { .. }
        | Rfc5280Violation::RootNotYetValid { .. } => return None,
    })
}

/// The leaf rules only lint makes: an explicit basicConstraints and the TLS EKUs.
fn leaf_rules(eku: Option<&[String]>, bc_present: bool, f: &mut Vec<Finding>) {
    if !bc_present {
        f.push(Finding::new(
            LEAF_BASIC_CONSTRAINTS,
            "basicConstraints is absent (not a CA by default, but not explicit)",
        ));
    }
    match eku {
        None => f.push(Finding::new(
            LEAF_EKU_PRESENT,
            "the leaf has no extendedKeyUsage",
        )),
        Some(ekus) => {
            let missing: Vec<&str> = ["serverAuth", "clientAuth"]
                .into_iter()
                .filter(|want| !ekus.iter().any(|e| e == want))
                .collect();
            if !missing.is_empty() {
                f.push(Finding::new(
                    LEAF_EKU_TLS,
                    format!(
                        "extendedKeyUsage [{}] lacks {}",
                        ekus.join(", "),
                        missing.join(" and ")
                    ),
                ));
            }
            let extra: Vec<&str> = ekus
                .iter()
                .map(String::as_str)
                .filter(|e| !matches!(*e, "serverAuth" | "clientAuth"))
                .collect();
            if !extra.is_empty() {
                f.push(Finding::new(
                    LEAF_EKU_EXTRA,
                    format!("extendedKeyUsage also has {}", extra.join(", ")),
                ));
            }
        }
    }
}

fn serial_findings(raw: &[u8], f: &mut Vec<Finding>) {
    if raw.first().is_some_and(|b| b & 0x80 != 0) {
        f.push(Finding::new(SERIAL_FORMAT, "the serial is negative"));
        return;
    }
    let content = pki::serial::strip_leading_zeros(raw);
    if content.iter().all(|b| *b == 0) {
        f.push(Finding::new(SERIAL_FORMAT, "the serial is zero"));
        return;
    }
    if raw.len() > 20 {
        f.push(Finding::new(
            SERIAL_FORMAT,
            format!("the serial is encoded in {} octets", raw.len()),
        ));
    }
    let bits = significant_bits(content);
    if bits < 64 {
        f.push(Finding::new(
            SERIAL_MINIMUM,
            format!("the serial has {bits} significant bits"),
        ));
    } else if bits < 120 {
        f.push(Finding::new(
            SERIAL_ENTROPY,
            format!("the serial has {bits} significant bits, so at most {bits} random bits"),
        ));
    }
}

fn signature_findings(
    cert: &X509Certificate<'_>,
    issuers: &IssuerIndex,
    self_issued: bool,
    f: &mut Vec<Finding>,
) {
    let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
    let sig_name = names::signature_algorithm_name(&sig_oid);
    if !sig_name.starts_with("ecdsa-with-SHA") {
        f.push(Finding::new(
            SIGNATURE_ALGORITHM,
            format!("the certificate is signed with {sig_name}"),
        ));
        return;
    }
    // The issuer's key: the certificate's own for a self-issued one, else a candidate whose
    // subject is our issuer and whose key verifies our signature (one hash lookup).
    let issuer_curve = if self_issued {
        crate::model::key::KeyView::of(cert.public_key()).curve
    } else {
        issuers.issuer_curve(cert)
    };
    if issuer_curve.as_deref() == Some("P-384") && sig_name != "ecdsa-with-SHA384" {
        f.push(Finding::new(
            SIGNATURE_ALGORITHM,
            format!("the issuer's key is P-384 but the certificate is signed with {sig_name}"),
        ));
    }
}
