//! Everything `show` prints about a certificate revocation list.

use anyhow::{anyhow, Result};
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::ext::{self, ExtView};
use super::{AlgorithmView, Origin};
use crate::input::Object;
use crate::names::{colon_lower, colon_upper};
use pki::timefmt::{self, human};

/// Everything `show` knows about one CRL.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CrlView {
    /// Where it came from.
    pub origin: Origin,
    /// CRL version (1 or 2).
    pub version: u32,
    /// Issuer distinguished name.
    pub issuer: String,
    /// thisUpdate, RFC 3339 UTC.
    pub this_update: String,
    /// nextUpdate, RFC 3339 UTC, when the CRL has one.
    pub next_update: Option<String>,
    /// True when nextUpdate has passed at `checked_at`.
    pub stale: bool,
    /// "next update in 4m 10s" or "next update was due 3h ago".
    pub relative: Option<String>,
    /// The CRL Number in decimal, when present.
    pub crl_number: Option<String>,
    /// The keyIdentifier of authorityKeyIdentifier, uppercase hex with colons.
    pub authority_key_id: Option<String>,
    /// The issuer's signature algorithm.
    pub signature_algorithm: AlgorithmView,
    /// Every revoked certificate listed.
    pub revoked: Vec<RevokedView>,
    /// The CRL extensions.
    pub extensions: Vec<ExtView>,
    /// The CRL as PEM.
    pub pem: String,
}

/// One entry of a CRL.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RevokedView {
    /// Lowercase hex with colons, as OpenSSL prints serials.
    pub serial: String,
    /// Serial as lowercase hex without separators.
    pub serial_hex: String,
    /// Revocation date, RFC 3339 UTC.
    pub revoked_at: String,
    /// RFC 5280 reason name, when the entry has one.
    pub reason: Option<String>,
}

impl CrlView {
    pub(crate) fn build(obj: &Object, at: OffsetDateTime) -> Result<CrlView> {
        let (_, crl) = CertificateRevocationList::from_der(&obj.der)
            .map_err(|e| anyhow!("cannot parse the CRL: {e}"))?;
        let next = crl.next_update().map(|t| t.to_datetime());
        let mut view = CrlView {
            origin: Origin::of(obj),
            version: crl.version().map_or(1, |v| v.0 + 1),
            issuer: crl.issuer().to_string(),
            this_update: timefmt::rfc3339(crl.last_update().to_datetime()),
            next_update: next.map(timefmt::rfc3339),
            stale: next.is_some_and(|n| n < at),
            relative: next.map(|n| {
                if n < at {
                    format!("next update was due {} ago", human(at - n))
                } else {
                    format!("next update in {}", human(n - at))
                }
            }),
            crl_number: crl.crl_number().map(ToString::to_string),
            authority_key_id: None,
            signature_algorithm: AlgorithmView::of(
                &crl.signature_algorithm.algorithm.to_id_string(),
            ),
            revoked: Vec::new(),
            extensions: Vec::new(),
            pem: pki::pem::encode("X509 CRL", &obj.der),
        };
        for e in crl.extensions() {
            if let ParsedExtension::AuthorityKeyIdentifier(aki) = e.parsed_extension() {
                view.authority_key_id = aki.key_identifier.as_ref().map(|k| colon_upper(k.0));
            }
            view.extensions.push(ext::describe(e));
        }
        for entry in crl.iter_revoked_certificates() {
            let serial = pki::serial::strip_leading_zeros(entry.raw_serial());
            view.revoked.push(RevokedView {
                serial: colon_lower(serial),
                serial_hex: hex::encode(serial),
                revoked_at: timefmt::rfc3339(entry.revocation_date.to_datetime()),
                reason: entry.reason_code().map(|(_, r)| reason_name(r.0)),
            });
        }
        Ok(view)
    }
}

/// The RFC 5280 name of a CRLReason code, from the one table in `pki::crl`.
fn reason_name(code: u8) -> String {
    pki::crl::reason_name(code).map_or_else(|| format!("reason {code}"), str::to_string)
}
