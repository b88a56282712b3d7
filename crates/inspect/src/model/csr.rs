//! Everything `show` prints about a certificate signing request (PKCS#10).

use anyhow::{anyhow, Result};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use super::cert::SansView;
use super::ext::{self, ExtView};
use super::key::KeyView;
use super::{AlgorithmView, Origin};
use crate::input::Object;

/// Everything `show` knows about one certificate signing request.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CsrView {
    /// Where it came from.
    pub origin: Origin,
    /// Subject distinguished name.
    pub subject: String,
    /// The public key to be certified.
    pub public_key: KeyView,
    /// The algorithm of the CSR's self-signature.
    pub signature_algorithm: AlgorithmView,
    /// Whether the CSR is signed by the key it carries (null: algorithm not checkable).
    pub signature_valid: Option<bool>,
    /// Names requested in the subjectAltName extension request.
    pub sans: SansView,
    /// The requested SPIFFE ID: the only URI SAN, when it is a valid SPIFFE ID.
    pub spiffe_id: Option<String>,
    /// basicConstraints CA:TRUE is requested (the mtls-mesh CA refuses such CSRs).
    pub requests_ca: bool,
    /// Every extension in the extension request.
    pub requested_extensions: Vec<ExtView>,
    /// OIDs of attributes other than the extension request.
    pub other_attributes: Vec<String>,
    /// The CSR as PEM.
    pub pem: String,
}

impl CsrView {
    pub(crate) fn build(obj: &Object) -> Result<CsrView> {
        let (_, csr) = X509CertificationRequest::from_der(&obj.der)
            .map_err(|e| anyhow!("cannot parse the certificate request: {e}"))?;
        let info = &csr.certification_request_info;
        let sig_oid = csr.signature_algorithm.algorithm.to_id_string();
        let mut view = CsrView {
            origin: Origin::of(obj),
            subject: info.subject.to_string(),
            public_key: KeyView::of(&info.subject_pki),
            signature_algorithm: AlgorithmView::of(&sig_oid),
            signature_valid: pki::verify::verify_signed(
                info.raw,
                csr.signature_value.data.as_ref(),
                &sig_oid,
                info.subject_pki.raw,
            ),
            sans: SansView::default(),
            spiffe_id: None,
            requests_ca: false,
            requested_extensions: Vec::new(),
            other_attributes: Vec::new(),
            pem: pki::pem::encode("CERTIFICATE REQUEST", &obj.der),
        };
        for attr in info.attributes() {
            match attr.parsed_attribute() {
                ParsedCriAttribute::ExtensionRequest(req) => {
                    for e in &req.extensions {
                        match e.parsed_extension() {
                            ParsedExtension::SubjectAlternativeName(san) => {
                                view.sans.critical = e.critical;
                                for n in &san.general_names {
                                    view.sans.add(n);
                                }
                            }
                            ParsedExtension::BasicConstraints(bc) => view.requests_ca = bc.ca,
                            _ => {}
                        }
                        view.requested_extensions.push(ext::describe(e));
                    }
                }
                _ => view.other_attributes.push(attr.oid.to_id_string()),
            }
        }
        view.spiffe_id = view.sans.spiffe_id();
        Ok(view)
    }
}
