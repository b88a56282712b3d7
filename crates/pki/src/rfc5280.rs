//! RFC 5280 profile checks that rustls-webpki does not make: key identifiers, the
//! subjectAltName criticality rule, DNS name syntax and trust-anchor sanity.
//!
//! `pki::verify` applies them to every certificate of a validated path when a `TrustStore` is
//! made strict (`mtls-inspect verify --strict`); `mtls-inspect lint` uses the same functions.
//! Each violation names its RFC clause:
//!
//! | check | clause |
//! |---|---|
//! | authorityKeyIdentifier present on every certificate but a self-signed root, not critical | 4.2.1.1 |
//! | subjectKeyIdentifier present on CA certificates, not critical | 4.2.1.2 |
//! | empty subject: subjectAltName present and critical; otherwise not critical | 4.1.2.6, 4.2.1.6 |
//! | DNS names in the preferred name syntax (letters, digits, hyphens; a leading `*.` allowed) | 4.2.1.6 |
//! | root: self-signature verifies, CA:TRUE, keyUsage with keyCertSign, within its validity | 4.2.1.9, 4.2.1.3, 4.1.2.5, 6.2 |

use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::X509Certificate;

use crate::certinfo::key_usage_names;
use crate::sigalg::{self, AlgorithmPolicy};
use crate::timefmt::rfc3339_ref as rfc3339;

/// One RFC 5280 rule broken by one certificate. The message is a predicate for the
/// certificate (`"has no authorityKeyIdentifier; ..."`), so callers prefix who it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rfc5280Violation {
    /// No authorityKeyIdentifier on a certificate other than a self-signed root.
    #[error(
        "has no authorityKeyIdentifier; RFC 5280 4.2.1.1 requires it on every certificate but a \
         self-signed root"
    )]
    AkiMissing,
    /// authorityKeyIdentifier marked critical.
    #[error("marks authorityKeyIdentifier critical; RFC 5280 4.2.1.1 requires it non-critical")]
    AkiCritical,
    /// A CA certificate without subjectKeyIdentifier.
    #[error("is a CA certificate without subjectKeyIdentifier, which RFC 5280 4.2.1.2 requires")]
    SkiMissing,
    /// subjectKeyIdentifier marked critical.
    #[error("marks subjectKeyIdentifier critical; RFC 5280 4.2.1.2 requires it non-critical")]
    SkiCritical,
    /// An empty subject with a non-critical subjectAltName.
    #[error(
        "has an empty subject and a non-critical subjectAltName; RFC 5280 4.1.2.6 and 4.2.1.6 \
         require subjectAltName to be critical then"
    )]
    SanNotCriticalWithEmptySubject,
    /// An empty subject and no subjectAltName.
    #[error(
        "has an empty subject and no subjectAltName; RFC 5280 4.1.2.6 requires the identity in \
         a critical subjectAltName then"
    )]
    SanMissingWithEmptySubject,
    /// A subject and a critical subjectAltName.
    #[error(
        "has a subject and marks subjectAltName critical; RFC 5280 4.2.1.6 says it should be \
         non-critical when the subject is not empty"
    )]
    SanCriticalWithSubject,
    /// A DNS SAN outside the preferred name syntax.
    #[error(
        "has the DNS SAN {name:?}, which is not a valid host name: {reason} (RFC 5280 4.2.1.6: \
         the preferred name syntax, letters, digits and hyphens)"
    )]
    InvalidDnsName {
        /// The DNS name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A root that does not sign itself.
    #[error("is not self-signed: {detail} (RFC 5280 6.2: a trust anchor signs itself)")]
    RootSelfSignature {
        /// Why the signature does not verify.
        detail: String,
    },
    /// A root without CA:TRUE.
    #[error("lacks basicConstraints CA:TRUE (RFC 5280 4.2.1.9)")]
    RootNotCa,
    /// A root without keyUsage.
    #[error("has no keyUsage extension; RFC 5280 4.2.1.3 requires keyCertSign on a CA key that signs certificates")]
    RootKeyUsageMissing,
    /// A root whose keyUsage lacks keyCertSign.
    #[error("has a keyUsage without keyCertSign (it has [{}]) (RFC 5280 4.2.1.3)", .present.join(", "))]
    RootNoKeyCertSign {
        /// The key usages present.
        present: Vec<String>,
    },
    /// A root past its NotAfter.
    #[error("expired at {}, checked at {} (RFC 5280 4.1.2.5)", rfc3339(.not_after), rfc3339(.checked_at))]
    RootExpired {
        /// Its NotAfter.
        not_after: OffsetDateTime,
        /// The time checked at.
        checked_at: OffsetDateTime,
    },
    /// A root before its NotBefore.
    #[error("is not valid until {}, checked at {} (RFC 5280 4.1.2.5)", rfc3339(.not_before), rfc3339(.checked_at))]
    RootNotYetValid {
        /// Its NotBefore.
        not_before: OffsetDateTime,
        /// The time checked at.
        checked_at: OffsetDateTime,
    },
}

impl Rfc5280Violation {
    /// A stable, machine-readable name (JSON output).
    pub fn code(&self) -> &'static str {
        match self {
            Rfc5280Violation::AkiMissing => "aki_missing",
            Rfc5280Violation::AkiCritical => "aki_critical",
            Rfc5280Violation::SkiMissing => "ski_missing",
            Rfc5280Violation::SkiCritical => "ski_critical",
            Rfc5280Violation::SanNotCriticalWithEmptySubject => "san_not_critical_empty_subject",
            Rfc5280Violation::SanMissingWithEmptySubject => "san_missing_empty_subject",
            Rfc5280Violation::SanCriticalWithSubject => "san_critical_with_subject",
            Rfc5280Violation::InvalidDnsName { .. } => "invalid_dns_name",
            Rfc5280Violation::RootSelfSignature { .. } => "root_self_signature",
            Rfc5280Violation::RootNotCa => "root_not_ca",
            Rfc5280Violation::RootKeyUsageMissing => "root_key_usage_missing",
            Rfc5280Violation::RootNoKeyCertSign { .. } => "root_no_key_cert_sign",
            Rfc5280Violation::RootExpired { .. } => "root_expired",
            Rfc5280Violation::RootNotYetValid { .. } => "root_not_yet_valid",
        }
    }
}

/// Where a certificate sits in a validated path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathRole {
    /// The certificate verified (the leaf).
    EndEntity,
    /// A CA between the leaf and the root.
    Intermediate,
    /// The trust anchor.
    Root,
}

/// Every strict check for `cert` in `role`: key identifiers, SAN rules, DNS names and, for the
/// root, the trust-anchor sanity checks at `at` with the signature `policy`.
pub(crate) fn path_violations(
    cert: &X509Certificate<'_>,
    role: PathRole,
    at: OffsetDateTime,
    policy: AlgorithmPolicy,
) -> Vec<Rfc5280Violation> {
    let mut out = Vec::new();
    if role != PathRole::Root {
        out.extend(authority_key_id(cert));
    }
    if role != PathRole::EndEntity || is_ca(cert) {
        out.extend(subject_key_id(cert));
    }
    out.extend(san_criticality(cert));
    out.extend(dns_names(cert));
    if role == PathRole::Root {
        out.extend(root_sanity(cert, at, policy));
    }
    out
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

fn find(cert: &X509Certificate<'_>, oid: &str) -> Option<bool> {
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == oid)
        .map(|e| e.critical)
}

/// 4.2.1.1: authorityKeyIdentifier present and non-critical (callers skip self-signed roots).
pub fn authority_key_id(cert: &X509Certificate<'_>) -> Option<Rfc5280Violation> {
    match find(cert, "2.5.29.35") {
        None => Some(Rfc5280Violation::AkiMissing),
        Some(true) => Some(Rfc5280Violation::AkiCritical),
        Some(false) => None,
    }
}

/// 4.2.1.2: subjectKeyIdentifier present and non-critical (callers pass CA certificates).
pub fn subject_key_id(cert: &X509Certificate<'_>) -> Option<Rfc5280Violation> {
    match find(cert, "2.5.29.14") {
        None => Some(Rfc5280Violation::SkiMissing),
        Some(true) => Some(Rfc5280Violation::SkiCritical),
        Some(false) => None,
    }
}

/// 4.1.2.6 / 4.2.1.6: with an empty subject the SAN must be there and critical; with a subject
/// it should not be critical.
pub fn san_criticality(cert: &X509Certificate<'_>) -> Option<Rfc5280Violation> {
    // An empty Name is the two bytes of an empty SEQUENCE.
    let empty_subject = cert.subject().as_raw().len() <= 2;
    match (empty_subject, find(cert, "2.5.29.17")) {
        (true, None) => Some(Rfc5280Violation::SanMissingWithEmptySubject),
        (true, Some(false)) => Some(Rfc5280Violation::SanNotCriticalWithEmptySubject),
        (false, Some(true)) => Some(Rfc5280Violation::SanCriticalWithSubject),
        _ => None,
    }
}

/// 4.2.1.6: every DNS SAN in the preferred name syntax.
pub fn dns_names(cert: &X509Certificate<'_>) -> Vec<Rfc5280Violation> {
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                if let GeneralName::DNSName(d) = name {
                    if let Some(reason) = dns_name_problem(d) {
                        out.push(Rfc5280Violation::InvalidDnsName {
                            name: d.to_string(),
                            reason,
                        });
                    }
                }
            }
        }
    }
    out
}

/// What is wrong with a DNS name under the preferred name syntax (RFC 1034 3.5 as relaxed by
/// RFC 1123 2.1, which RFC 5280 4.2.1.6 requires), or None. A leftmost `*` label (a wildcard,
/// RFC 6125 6.4.3) is allowed.
pub fn dns_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > 253 {
        return Some(format!(
            "it is {} characters long; the limit is 253",
            name.len()
        ));
    }
    if name == "*" {
        return Some("a wildcard needs a name after it (*.example.com)".into());
    }
    for (i, label) in name.split('.').enumerate() {
        if i == 0 && label == "*" {
            continue;
        }
        if label.is_empty() {
            return Some("it has an empty label (.. or a leading or trailing dot)".into());
        }
        if label.len() > 63 {
            return Some(format!(
                "the label {label:?} is {} characters long; the limit is 63",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "the character {c:?} is not allowed (letters, digits and hyphens only)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("the label {label:?} starts or ends with a hyphen"));
        }
    }
    None
}

/// The trust-anchor checks webpki skips (it uses only a root's name and key): it signs
/// itself, is a CA allowed to sign certificates, and is within its validity period at `at`.
pub(crate) fn root_sanity(
    cert: &X509Certificate<'_>,
    at: OffsetDateTime,
    policy: AlgorithmPolicy,
) -> Vec<Rfc5280Violation> {
    let mut out = Vec::new();
    if let Err(e) = sigalg::verify_signature(
        cert.tbs_certificate.as_ref(),
        cert.signature_value.data.as_ref(),
        &cert.signature_algorithm.algorithm.to_id_string(),
        cert.public_key(),
        policy,
    ) {
        out.push(Rfc5280Violation::RootSelfSignature {
            detail: e.to_string(),
        });
    }
    if !is_ca(cert) {
        out.push(Rfc5280Violation::RootNotCa);
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() => {}
        Ok(Some(ku)) => out.push(Rfc5280Violation::RootNoKeyCertSign {
            present: key_usage_names(ku.value),
        }),
        Ok(None) | Err(_) => out.push(Rfc5280Violation::RootKeyUsageMissing),
    }
    let validity = cert.validity();
    let not_before = validity.not_before.to_datetime();
    let not_after = validity.not_after.to_datetime();
    if at < not_before {
        out.push(Rfc5280Violation::RootNotYetValid {
            not_before,
            checked_at: at,
        });
    } else if at > not_after {
        out.push(Rfc5280Violation::RootExpired {
            not_after,
            checked_at: at,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_name_syntax() {
        for ok in [
            "localhost",
            "a.example",
            "x-1.example.org",
            "*.example.org",
            "A.B",
        ] {
            assert_eq!(dns_name_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("my_host.example", "the character '_' is not allowed"),
            ("a b", "the character ' ' is not allowed"),
            ("", "it is empty"),
            ("*", "a wildcard needs a name after it"),
            ("a..b", "it has an empty label"),
            ("example.", "it has an empty label"),
            (
                "-a.example",
                "the label \"-a\" starts or ends with a hyphen",
            ),
            ("a.*.example", "the character '*' is not allowed"),
            ("é.example", "the character 'é' is not allowed"),
        ] {
            let problem = dns_name_problem(bad).unwrap_or_default();
            assert!(problem.starts_with(why), "{bad:?}: {problem}");
        }
        assert!(dns_name_problem(&"a".repeat(64))
            .unwrap()
            .contains("limit is 63"));
        let long = vec!["a".repeat(60); 5].join(".");
        assert!(dns_name_problem(&long).unwrap().contains("limit is 253"));
    }
}
