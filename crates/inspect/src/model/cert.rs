//! Everything `show` prints about a certificate.

use anyhow::{anyhow, Result};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ext::{self, ConstraintsView, ExtView, UsageView};
use super::key::KeyView;
use super::{AlgorithmView, Origin};
use crate::input::Object;
use crate::names::{colon_lower, colon_upper, ip_bytes};
use crate::validity::{self, ValidityStatus};
use pki::timefmt;

/// Everything `show` knows about one certificate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CertView {
    /// Where it came from.
    pub origin: Origin,
    /// X.509 version (1 to 3).
    pub version: u32,
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Subject and issuer are the same name (a root or other self-issued certificate).
    pub self_issued: bool,
    /// What the certificate is in a hierarchy: "root CA", "intermediate CA" or "end entity",
    /// with what its pathLenConstraint allows (`role_of`).
    pub role: String,
    /// For a file of several certificates (a chain): the one in the same input that issued
    /// this one (same name, and its key verifies the signature), as "#N SUBJECT"; set by
    /// `show`, None when not found there.
    pub issued_by: Option<String>,
    /// Serial as OpenSSL prints it in `-text`: lowercase hex octets with colons.
    pub serial: String,
    /// Serial as lowercase hex without separators (OpenSSL's `-serial` prints it uppercase).
    pub serial_hex: String,
    /// Significant bits of the serial number.
    pub serial_bits: u32,
    /// NotBefore, NotAfter and where the checking time falls.
    pub validity: ValidityView,
    /// The certified public key.
    pub public_key: KeyView,
    /// The issuer's signature algorithm.
    pub signature_algorithm: AlgorithmView,
    /// Subject alternative names.
    pub sans: SansView,
    /// The SPIFFE ID: the only URI SAN, when it is a valid SPIFFE ID.
    pub spiffe_id: Option<String>,
    /// keyUsage, when present.
    pub key_usage: Option<UsageView>,
    /// extendedKeyUsage, when present.
    pub extended_key_usage: Option<UsageView>,
    /// basicConstraints, when present.
    pub basic_constraints: Option<ConstraintsView>,
    /// subjectKeyIdentifier, uppercase hex with colons.
    pub subject_key_id: Option<String>,
    /// The keyIdentifier of authorityKeyIdentifier, uppercase hex with colons.
    pub authority_key_id: Option<String>,
    /// CRL distribution points.
    pub crl_distribution_points: Vec<String>,
    /// Every extension in certificate order, known or not.
    pub extensions: Vec<ExtView>,
    /// OIDs of the extensions `show` does not know.
    pub unknown_extensions: Vec<String>,
    /// SHA-256 of the DER, uppercase with colons (as `openssl x509 -fingerprint -sha256`).
    pub fingerprint_sha256: String,
    /// The client key of docs/design.md §2 (hex SHA-256 of DER IssuerAndSerialNumber).
    pub client_key: String,
    /// The certificate as PEM.
    pub pem: String,
}

/// The validity period and where the checking time falls in it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ValidityView {
    /// NotBefore, RFC 3339 UTC.
    pub not_before: String,
    /// NotAfter, RFC 3339 UTC.
    pub not_after: String,
    /// NotAfter - NotBefore in seconds.
    pub lifetime_seconds: i64,
    /// "valid", "expired" or "not_yet_valid" at `checked_at` of the document.
    pub status: ValidityStatus,
    /// Seconds from `checked_at` until NotAfter (negative once expired).
    pub seconds_remaining: i64,
    /// Share of the lifetime elapsed at `checked_at`, 0 to 100.
    pub lifetime_used_percent: f64,
    /// "expires in 59m 59s", "expired 3h ago", "becomes valid in 2h".
    pub relative: String,
}

impl ValidityView {
    pub(crate) fn of(
        at: OffsetDateTime,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Self {
        let used = validity::percent_used(at, not_before, not_after);
        ValidityView {
            not_before: timefmt::rfc3339(not_before),
            not_after: timefmt::rfc3339(not_after),
            lifetime_seconds: (not_after - not_before).whole_seconds(),
            status: ValidityStatus::of(at, not_before, not_after),
            seconds_remaining: (not_after - at).whole_seconds(),
            lifetime_used_percent: (used * 100.0).round() / 100.0,
            relative: validity::relative(at, not_before, not_after),
        }
    }
}

/// Subject alternative names by type.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SansView {
    /// DNS names.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ip: Vec<String>,
    /// URIs (a SPIFFE ID among them).
    pub uri: Vec<String>,
    /// Email addresses (rfc822Name).
    pub email: Vec<String>,
    /// Any other name type, as OpenSSL would print it.
    pub other: Vec<String>,
    /// Whether the subjectAltName extension is critical.
    pub critical: bool,
}

impl SansView {
    pub(crate) fn is_empty(&self) -> bool {
        self.dns.is_empty()
            && self.ip.is_empty()
            && self.uri.is_empty()
            && self.email.is_empty()
            && self.other.is_empty()
    }

    pub(crate) fn add(&mut self, name: &GeneralName<'_>) {
        match name {
            GeneralName::DNSName(d) => self.dns.push(d.to_string()),
            GeneralName::IPAddress(b) => self.ip.push(ip_bytes(b)),
            GeneralName::URI(u) => self.uri.push(u.to_string()),
            GeneralName::RFC822Name(e) => self.email.push(e.to_string()),
            other => self.other.push(crate::names::general_name(other)),
        }
    }

    /// The SPIFFE ID of an X509-SVID: exactly one URI SAN, and it parses.
    pub fn spiffe_id(&self) -> Option<String> {
        match self.uri.as_slice() {
            [one] => pki::SpiffeId::parse(one).ok().map(|id| id.to_string()),
            _ => None,
        }
    }
}

impl CertView {
    pub(crate) fn build(obj: &Object, at: OffsetDateTime) -> Result<CertView> {
        let (_, cert) = X509Certificate::from_der(&obj.der)
            .map_err(|e| anyhow!("cannot parse the certificate: {e}"))?;
        let serial = pki::serial::strip_leading_zeros(cert.tbs_certificate.raw_serial());
        let validity = cert.validity();
        let mut view = CertView {
            origin: Origin::of(obj),
            version: cert.version().0 + 1,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
            role: String::new(),
            issued_by: None,
            serial: colon_lower(serial),
            serial_hex: hex::encode(serial),
            serial_bits: significant_bits(serial),
            validity: ValidityView::of(
                at,
                validity.not_before.to_datetime(),
                validity.not_after.to_datetime(),
            ),
            public_key: KeyView::of(cert.public_key()),
            signature_algorithm: AlgorithmView::of(
                &cert.signature_algorithm.algorithm.to_id_string(),
            ),
            sans: SansView::default(),
            spiffe_id: None,
            key_usage: None,
            extended_key_usage: None,
            basic_constraints: None,
            subject_key_id: None,
            authority_key_id: None,
            crl_distribution_points: Vec::new(),
            extensions: Vec::new(),
            unknown_extensions: Vec::new(),
            fingerprint_sha256: colon_upper(&digest(&obj.der)),
            client_key: pki::client_key::client_key_of(&cert),
            pem: pki::pem::encode("CERTIFICATE", &obj.der),
        };
        for e in cert.extensions() {
            let described = ext::describe(e);
            if described.name.is_none() {
                view.unknown_extensions.push(described.oid.clone());
            }
            match e.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    view.sans.critical = e.critical;
                    for n in &san.general_names {
                        view.sans.add(n);
                    }
                }
                ParsedExtension::KeyUsage(ku) => {
                    view.key_usage = Some(UsageView {
                        critical: e.critical,
                        usages: ext::key_usage_names(ku),
                    })
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    view.extended_key_usage = Some(UsageView {
                        critical: e.critical,
                        usages: pki::verify::eku_names(eku),
                    })
                }
                ParsedExtension::BasicConstraints(bc) => {
                    view.basic_constraints = Some(ConstraintsView {
                        critical: e.critical,
                        ca: bc.ca,
                        path_len: bc.path_len_constraint,
                    })
                }
                ParsedExtension::SubjectKeyIdentifier(ki) => {
                    view.subject_key_id = Some(colon_upper(ki.0))
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    view.authority_key_id = aki.key_identifier.as_ref().map(|k| colon_upper(k.0))
                }
                ParsedExtension::CRLDistributionPoints(_) => {
                    view.crl_distribution_points = ext::crl_uris(e)
                }
                _ => {}
            }
            view.extensions.push(described);
        }
        view.spiffe_id = view.sans.spiffe_id();
        view.role = role_of(view.basic_constraints.as_ref(), view.self_issued);
        Ok(view)
    }
}

/// The role line of `show`: a CA certificate is a root when self-issued, else an intermediate;
/// its pathLenConstraint says how many CAs may follow it.
pub fn role_of(bc: Option<&ConstraintsView>, self_issued: bool) -> String {
    let Some(bc) = bc.filter(|bc| bc.ca) else {
        return "end entity (not a CA)".into();
    };
    let kind = if self_issued {
        "root CA (self-signed)"
    } else {
        "intermediate CA"
    };
    let below = match bc.path_len {
        Some(0) => "pathLenConstraint 0: signs end-entity certificates only".to_string(),
        Some(n) => format!("pathLenConstraint {n}: up to {n} intermediate(s) below it"),
        None => "no pathLenConstraint: any number of intermediates below it".to_string(),
    };
    format!("{kind}, {below}")
}

/// Number of significant bits of a big-endian unsigned integer.
pub fn significant_bits(bytes: &[u8]) -> u32 {
    let bytes = pki::serial::strip_leading_zeros(bytes);
    match bytes.first() {
        None | Some(0) => 0,
        Some(first) => (bytes.len() as u32 - 1) * 8 + (8 - first.leading_zeros()),
    }
}

fn digest(der: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_bits() {
        assert_eq!(significant_bits(&[0x00, 0x01]), 1);
        assert_eq!(significant_bits(&[0x40, 0, 0]), 23);
        assert_eq!(significant_bits(&[0xff]), 8);
        assert_eq!(significant_bits(&[0]), 0);
        assert_eq!(significant_bits(&[]), 0);
    }
}
