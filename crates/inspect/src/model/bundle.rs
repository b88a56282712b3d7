//! Everything `show` prints about a SPIFFE bundle (the JWK set of `GET /api/v1/bundle/spiffe`
//! and of federation), read by `pki::spiffe_bundle`, the reader federation and the services
//! use, with the `spiffe-bundle-*` lint findings.

use anyhow::{anyhow, Result};
use time::OffsetDateTime;

use super::cert::CertView;
use super::Origin;
use crate::input::{Kind, Object};
use crate::lint::{self, Finding};
use pki::spiffe_bundle::BundleDocument;
use pki::timefmt::human;

/// Everything `show` knows about one SPIFFE bundle.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BundleView {
    /// Where it came from.
    pub origin: Origin,
    /// `spiffe_sequence`, when an unsigned integer.
    pub sequence: Option<u64>,
    /// `spiffe_refresh_hint` in seconds, when an unsigned integer.
    pub refresh_hint_seconds: Option<u64>,
    /// The refresh hint in words ("5m").
    pub refresh_hint: Option<String>,
    /// How many `x509-svid` keys a reader takes as X.509 authorities.
    pub x509_authorities: usize,
    /// Every key, in bundle order.
    pub keys: Vec<BundleKeyView>,
    /// The `spiffe-bundle-*` findings about the bundle and its keys, errors first.
    pub findings: Vec<Finding>,
    /// The `x5c` certificates of the `x509-svid` keys as PEM (`show --format pem`).
    pub pem: String,
}

/// One key of the bundle.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BundleKeyView {
    /// 1-based position in `keys`.
    pub index: usize,
    /// `use`: `x509-svid`, `jwt-svid`, or another (ignored by readers).
    #[serde(rename = "use")]
    pub use_: Option<String>,
    /// `kty`.
    pub kty: Option<String>,
    /// `crv`.
    pub crv: Option<String>,
    /// `kid`.
    pub kid: Option<String>,
    /// RFC 7638 thumbprint (SHA-256, base64url) of an EC key.
    pub thumbprint: Option<String>,
    /// The `x5c` certificates of an `x509-svid` key, as `show` describes a certificate.
    pub certificates: Vec<CertView>,
}

impl BundleView {
    pub(crate) fn build(obj: &Object, at: OffsetDateTime) -> Result<BundleView> {
        let doc = BundleDocument::read(&obj.der)
            .map_err(|e| anyhow!("cannot read the SPIFFE bundle: {e}"))?;
        let mut keys = Vec::with_capacity(doc.keys.len());
        let mut pem = String::new();
        for key in &doc.keys {
            let mut certificates = Vec::new();
            if key.is_x509_svid() {
                for der in &key.x5c {
                    // An x5c entry that is not a certificate is a finding, not a failure.
                    let cert = Object {
                        kind: Kind::Certificate,
                        der: der.clone(),
                        source: obj.source.clone(),
                        index: key.index,
                    };
                    if let Ok(view) = CertView::build(&cert, at) {
                        pem.push_str(&view.pem);
                        certificates.push(view);
                    }
                }
            }
            keys.push(BundleKeyView {
                index: key.index,
                use_: key.use_.clone(),
                kty: key.kty.clone(),
                crv: key.crv.clone(),
                kid: key.kid.clone(),
                thumbprint: key.thumbprint.clone(),
                certificates,
            });
        }
        let refresh = doc.refresh_hint_seconds.value();
        Ok(BundleView {
            origin: Origin::of(obj),
            sequence: doc.sequence.value(),
            refresh_hint_seconds: refresh,
            refresh_hint: refresh.map(|s| {
                human(time::Duration::seconds(
                    i64::try_from(s).unwrap_or(i64::MAX),
                ))
            }),
            x509_authorities: pki::spiffe_bundle::SpiffeBundle::parse(&obj.der)
                .map_or(0, |b| b.x509_authorities.len()),
            keys,
            findings: lint::bundle_findings(&doc),
            pem,
        })
    }
}
