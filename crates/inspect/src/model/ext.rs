//! X.509 extensions as name, criticality and readable values; unknown ones by OID.

use x509_parser::extensions::{
    AccessDescription, DistributionPointName, GeneralName, ParsedExtension, X509Extension,
};

use crate::names::{self, colon_upper, general_name, short_hex};

/// One extension as `show` prints it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExtView {
    /// The OID, dotted.
    pub oid: String,
    /// The short name ("keyUsage", ...), or null for an extension `show` does not know.
    pub name: Option<String>,
    /// Whether it is marked critical.
    pub critical: bool,
    /// Readable values, one per line.
    pub value: Vec<String>,
}

/// Criticality plus a list of names: keyUsage and extendedKeyUsage.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UsageView {
    /// Whether it is marked critical.
    pub critical: bool,
    /// The usages by name (`digitalSignature`, `clientAuth`, ...).
    pub usages: Vec<String>,
}

/// basicConstraints.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConstraintsView {
    /// Whether it is marked critical.
    pub critical: bool,
    /// CA:TRUE.
    pub ca: bool,
    /// pathLenConstraint, when given.
    pub path_len: Option<u32>,
}

pub(crate) fn describe(ext: &X509Extension<'_>) -> ExtView {
    let oid = ext.oid.to_id_string();
    ExtView {
        name: names::extension_name(&oid).map(str::to_string),
        critical: ext.critical,
        value: values(ext),
        oid,
    }
}

fn values(ext: &X509Extension<'_>) -> Vec<String> {
    match ext.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(ki) => vec![colon_upper(ki.0)],
        ParsedExtension::AuthorityKeyIdentifier(aki) => {
            let mut v = Vec::new();
            if let Some(ki) = &aki.key_identifier {
                v.push(format!("keyid:{}", colon_upper(ki.0)));
            }
            if let Some(names) = &aki.authority_cert_issuer {
                v.extend(names.iter().map(general_name));
            }
            if let Some(serial) = aki.authority_cert_serial {
                v.push(format!("serial:{}", colon_upper(serial)));
            }
            v
        }
        ParsedExtension::KeyUsage(ku) => key_usage_names(ku),
        ParsedExtension::ExtendedKeyUsage(eku) => pki::verify::eku_names(eku),
        ParsedExtension::BasicConstraints(bc) => vec![match (bc.ca, bc.path_len_constraint) {
            (true, Some(n)) => format!("CA:TRUE, pathlen:{n}"),
            (true, None) => "CA:TRUE".to_string(),
            (false, _) => "CA:FALSE".to_string(),
        }],
        ParsedExtension::SubjectAlternativeName(san) => {
            san.general_names.iter().map(general_name).collect()
        }
        ParsedExtension::IssuerAlternativeName(ian) => {
            ian.general_names.iter().map(general_name).collect()
        }
        ParsedExtension::NameConstraints(nc) => {
            let mut v = Vec::new();
            for (label, subtrees) in [
                ("permitted", &nc.permitted_subtrees),
                ("excluded", &nc.excluded_subtrees),
            ] {
                for s in subtrees.iter().flatten() {
                    v.push(format!("{label}: {}", general_name(&s.base)));
                }
            }
            v
        }
        ParsedExtension::CertificatePolicies(policies) => policies
            .iter()
            .map(|p| policy_name(&p.policy_id.to_id_string()))
            .collect(),
        ParsedExtension::PolicyMappings(pm) => pm
            .mappings
            .iter()
            .map(|m| {
                format!(
                    "{} -> {}",
                    m.issuer_domain_policy.to_id_string(),
                    m.subject_domain_policy.to_id_string()
                )
            })
            .collect(),
        ParsedExtension::PolicyConstraints(pc) => {
            let mut v = Vec::new();
            if let Some(n) = pc.require_explicit_policy {
                v.push(format!("requireExplicitPolicy:{n}"));
            }
            if let Some(n) = pc.inhibit_policy_mapping {
                v.push(format!("inhibitPolicyMapping:{n}"));
            }
            v
        }
        ParsedExtension::InhibitAnyPolicy(i) => vec![format!("skipCerts:{}", i.skip_certs)],
        ParsedExtension::CRLDistributionPoints(points) => points
            .iter()
            .flat_map(|p| match &p.distribution_point {
                Some(name) => distribution_point_names(name),
                None => p
                    .crl_issuer
                    .iter()
                    .flatten()
                    .map(|n| format!("CRL issuer {}", general_name(n)))
                    .collect(),
            })
            .collect(),
        ParsedExtension::AuthorityInfoAccess(aia) => aia.accessdescs.iter().map(access).collect(),
        ParsedExtension::SubjectInfoAccess(sia) => sia.accessdescs.iter().map(access).collect(),
        ParsedExtension::NSCertType(t) => vec![t.to_string()],
        ParsedExtension::NsCertComment(c) => vec![c.to_string()],
        ParsedExtension::IssuingDistributionPoint(idp) => {
            let mut v = idp
                .distribution_point
                .as_ref()
                .map(distribution_point_names)
                .unwrap_or_default();
            for (set, flag) in [
                (idp.only_contains_user_certs, "onlyContainsUserCerts"),
                (idp.only_contains_ca_certs, "onlyContainsCACerts"),
                (idp.indirect_crl, "indirectCRL"),
                (
                    idp.only_contains_attribute_certs,
                    "onlyContainsAttributeCerts",
                ),
            ] {
                if set {
                    v.push(flag.to_string());
                }
            }
            v
        }
        ParsedExtension::CRLNumber(n) => vec![n.to_string()],
        ParsedExtension::ReasonCode(r) => vec![r.to_string()],
        ParsedExtension::InvalidityDate(t) => vec![pki::timefmt::rfc3339(t.to_datetime())],
        ParsedExtension::SCT(scts) => vec![format!("{} signed certificate timestamps", scts.len())],
        ParsedExtension::ParseError { error } => {
            vec![format!("unparsable: {error}"), short_hex(ext.value)]
        }
        ParsedExtension::UnsupportedExtension { .. } | ParsedExtension::Unparsed => {
            vec![short_hex(ext.value)]
        }
    }
}

/// keyUsage bits by their RFC 5280 names (the list of `pki::certinfo`).
pub use pki::certinfo::key_usage_names;

fn distribution_point_names(name: &DistributionPointName<'_>) -> Vec<String> {
    match name {
        DistributionPointName::FullName(names) => names.iter().map(general_name).collect(),
        DistributionPointName::NameRelativeToCRLIssuer(rdn) => {
            vec![format!("relative name {} attributes", rdn.iter().count())]
        }
    }
}

fn access(a: &AccessDescription<'_>) -> String {
    let method = match a.access_method.to_id_string().as_str() {
        "1.3.6.1.5.5.7.48.1" => "OCSP".to_string(),
        "1.3.6.1.5.5.7.48.2" => "caIssuers".to_string(),
        "1.3.6.1.5.5.7.48.5" => "caRepository".to_string(),
        other => other.to_string(),
    };
    format!("{method} - {}", general_name(&a.access_location))
}

fn policy_name(oid: &str) -> String {
    let name = match oid {
        "2.5.29.32.0" => "anyPolicy",
        "2.23.140.1.2.1" => "CA/B domain validated",
        "2.23.140.1.2.2" => "CA/B organization validated",
        "2.23.140.1.2.3" => "CA/B individual validated",
        "2.23.140.1.1" => "CA/B extended validation",
        _ => return oid.to_string(),
    };
    format!("{oid} ({name})")
}

/// The URIs of cRLDistributionPoints, for the structured field.
pub fn crl_uris(ext: &X509Extension<'_>) -> Vec<String> {
    match ext.parsed_extension() {
        ParsedExtension::CRLDistributionPoints(points) => points
            .iter()
            .filter_map(|p| match &p.distribution_point {
                Some(DistributionPointName::FullName(names)) => Some(names),
                _ => None,
            })
            .flatten()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
