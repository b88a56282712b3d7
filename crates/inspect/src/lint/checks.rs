//! The checks: one certificate against the leaf or the signing-certificate profile.

use anyhow::Result;
use time::Duration;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::rules::*;
use super::Report;
use crate::model::cert::significant_bits;
use crate::names;
use crate::timefmt::human_duration;

/// Settings a certificate is judged by.
pub struct Policy {
    pub trust_domain: Option<pki::TrustDomain>,
    pub max_lifetime: Duration,
    pub max_ca_lifetime: Duration,
    pub profile: ProfileChoice,
}

/// Which rules a certificate is judged by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProfileChoice {
    /// CA profile for CA:TRUE certificates, unless they carry a workload SPIFFE ID and a TLS
    /// EKU (a leaf wrongly marked CA); leaf profile for everything else.
    #[default]
    Auto,
    Leaf,
    Ca,
}

/// Lints one DER certificate. `issuers` are candidate issuer certificates (DER).
pub fn lint_certificate(der: &[u8], issuers: &[Vec<u8>], policy: &Policy) -> Result<Report> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| anyhow::anyhow!("cannot parse the certificate: {e}"))?;
    let mut f = Vec::new();

    let mut is_ca = false;
    let mut bc_present = false;
    let mut ku = None;
    let mut eku = None;
    let mut san = None;
    let mut aki = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                bc_present = true;
                is_ca = bc.ca;
            }
            ParsedExtension::KeyUsage(k) => ku = Some((ext.critical, *k)),
            ParsedExtension::ExtendedKeyUsage(e) => eku = Some(pki::verify::eku_names(e)),
            ParsedExtension::SubjectAlternativeName(s) => san = Some((ext.critical, s.clone())),
            ParsedExtension::AuthorityKeyIdentifier(_) => aki = true,
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
    let uris: Vec<String> = san
        .as_ref()
        .map(|(_, s)| {
            s.general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();

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
                crate::timefmt::rfc3339(nb),
                crate::timefmt::rfc3339(na)
            ),
        ));
    }
    serial_findings(cert.tbs_certificate.raw_serial(), &mut f);
    let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
    if !self_issued && !aki {
        f.push(Finding::new(
            AUTHORITY_KEY_ID,
            "the certificate has no authorityKeyIdentifier, so its issuer is found by name only",
        ));
    }
    if cert.subject().as_raw().len() <= 2 {
        match &san {
            Some((false, _)) => f.push(Finding::new(
                SAN_CRITICAL_EMPTY_SUBJECT,
                "the subject is empty and subjectAltName is not critical",
            )),
            None => f.push(Finding::new(
                SAN_CRITICAL_EMPTY_SUBJECT,
                "the subject is empty and there is no subjectAltName",
            )),
            _ => {}
        }
    }

    // Key usage: both profiles need it present and critical.
    match ku {
        None => f.push(Finding::new(
            KEY_USAGE_PRESENT,
            "the certificate has no keyUsage extension",
        )),
        Some((false, _)) => f.push(Finding::new(
            KEY_USAGE_CRITICAL,
            "keyUsage is not marked critical",
        )),
        _ => {}
    }

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
        if !is_ca {
            f.push(Finding::new(
                CA_TRUE,
                "the certificate is linted as a CA but has no basicConstraints CA:TRUE",
            ));
        }
        ca_rules(&uris, ku.map(|(_, k)| k), &mut f);
    } else {
        if is_ca {
            f.push(Finding::new(
                LEAF_CA_FALSE,
                "basicConstraints is CA:TRUE on a certificate linted as a leaf",
            ));
        }
        leaf_rules(
            &uris,
            ku.map(|(_, k)| k),
            eku.as_deref(),
            bc_present,
            policy,
            &mut f,
        );
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
    signature_findings(&cert, der, issuers, self_issued, &mut f);

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
                human_duration(lifetime),
                human_duration(max)
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

fn leaf_rules(
    uris: &[String],
    ku: Option<x509_parser::extensions::KeyUsage>,
    eku: Option<&[String]>,
    bc_present: bool,
    policy: &Policy,
    f: &mut Vec<Finding>,
) {
    if !bc_present {
        f.push(Finding::new(
            LEAF_BASIC_CONSTRAINTS,
            "basicConstraints is absent (not a CA by default, but not explicit)",
        ));
    }
    match uris {
        [one] => match pki::SpiffeId::parse(one) {
            Ok(id) => {
                if let Some(td) = &policy.trust_domain {
                    if id.trust_domain() != td {
                        f.push(Finding::new(
                            TRUST_DOMAIN,
                            format!("{id} is not in trust domain {td}"),
                        ));
                    }
                }
            }
            Err(e) => f.push(Finding::new(
                SPIFFE_ID_SYNTAX,
                match e {
                    pki::PkiError::SpiffeId { id, reason } => {
                        format!("{id} is not a SPIFFE ID: {reason}")
                    }
                    other => other.to_string(),
                },
            )),
        },
        [] => f.push(Finding::new(
            URI_SAN_COUNT,
            "the certificate has no URI SAN",
        )),
        many => f.push(Finding::new(
            URI_SAN_COUNT,
            format!(
                "the certificate has {} URI SANs [{}]",
                many.len(),
                many.join(", ")
            ),
        )),
    }
    if let Some(ku) = ku {
        if !ku.digital_signature() {
            f.push(Finding::new(
                LEAF_DIGITAL_SIGNATURE,
                "keyUsage lacks digitalSignature",
            ));
        }
        let mut bad = Vec::new();
        if ku.key_cert_sign() {
            bad.push("keyCertSign");
        }
        if ku.crl_sign() {
            bad.push("cRLSign");
        }
        if !bad.is_empty() {
            f.push(Finding::new(
                LEAF_NO_CERT_SIGN,
                format!("keyUsage of a leaf has {}", bad.join(" and ")),
            ));
        }
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

fn ca_rules(uris: &[String], ku: Option<x509_parser::extensions::KeyUsage>, f: &mut Vec<Finding>) {
    if let Some(ku) = ku {
        if !ku.key_cert_sign() {
            f.push(Finding::new(
                CA_KEY_CERT_SIGN,
                "keyUsage of a CA lacks keyCertSign",
            ));
        }
    }
    for uri in uris {
        let ok = uri
            .strip_prefix("spiffe://")
            .is_some_and(|td| pki::TrustDomain::parse(td).is_ok());
        if !ok {
            f.push(Finding::new(
                CA_URI_SAN,
                format!("URI SAN {uri} is not a trust domain ID (spiffe://<trust domain>)"),
            ));
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
    der: &[u8],
    issuers: &[Vec<u8>],
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
    // subject is our issuer and whose key verifies our signature.
    let issuer_curve = if self_issued {
        crate::model::key::KeyView::of(cert.public_key()).curve
    } else {
        issuers.iter().find_map(|cand| {
            let (_, c) = X509Certificate::from_der(cand).ok()?;
            if c.subject().as_raw() != cert.issuer().as_raw() {
                return None;
            }
            if pki::verify::signature_verifies(der, c.public_key().raw) != Some(true) {
                return None;
            }
            crate::model::key::KeyView::of(c.public_key()).curve
        })
    };
    if issuer_curve.as_deref() == Some("P-384") && sig_name != "ecdsa-with-SHA384" {
        f.push(Finding::new(
            SIGNATURE_ALGORITHM,
            format!("the issuer's key is P-384 but the certificate is signed with {sig_name}"),
        ));
    }
}
