//! The display model: what `show` knows about a certificate, CSR, CRL, OCSP response or SPIFFE
//! bundle, as plain data that the text and JSON renderers share. Field names here are the JSON schema (docs/cli.md).

pub mod bundle;
pub mod cert;
pub mod crl;
pub mod csr;
pub mod ext;
pub mod key;
pub mod ocsp;

use anyhow::Result;
use time::OffsetDateTime;

use crate::input::{Kind, Object};

pub use bundle::BundleView;
pub use cert::CertView;
pub use crl::CrlView;
pub use csr::CsrView;
pub use ocsp::OcspView;

/// One object of a `show` run.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ObjectView {
    /// A certificate.
    Certificate(Box<CertView>),
    /// A certificate signing request.
    Csr(Box<CsrView>),
    /// A certificate revocation list.
    Crl(Box<CrlView>),
    /// An OCSP response.
    #[serde(rename = "ocsp_response")]
    OcspResponse(Box<OcspView>),
    /// A SPIFFE bundle (JWK set).
    #[serde(rename = "spiffe_bundle")]
    SpiffeBundle(Box<BundleView>),
}

impl ObjectView {
    /// Builds the view of `obj`; times relative to `at`.
    pub fn build(obj: &Object, at: OffsetDateTime) -> Result<ObjectView> {
        Ok(match obj.kind {
            Kind::Certificate => ObjectView::Certificate(Box::new(CertView::build(obj, at)?)),
            Kind::Csr => ObjectView::Csr(Box::new(CsrView::build(obj)?)),
            Kind::Crl => ObjectView::Crl(Box::new(CrlView::build(obj, at)?)),
            Kind::OcspResponse => ObjectView::OcspResponse(Box::new(OcspView::build(obj, at)?)),
            Kind::SpiffeBundle => ObjectView::SpiffeBundle(Box::new(BundleView::build(obj, at)?)),
        })
    }
}

/// Where an object came from.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Origin {
    /// File name, or `-` for stdin.
    pub file: String,
    /// 1-based position among the objects of that file.
    pub index: usize,
}

impl Origin {
    pub(crate) fn of(obj: &Object) -> Origin {
        Origin {
            file: obj.source.clone(),
            index: obj.index,
        }
    }
}

/// A signature algorithm by name and OID.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AlgorithmView {
    /// The name OpenSSL uses (`ecdsa-with-SHA384`), or the OID when unknown.
    pub name: String,
    /// The OID, dotted.
    pub oid: String,
}

impl AlgorithmView {
    pub(crate) fn of(oid: &str) -> AlgorithmView {
        AlgorithmView {
            name: crate::names::signature_algorithm_name(oid),
            oid: oid.to_string(),
        }
    }
}
