//! Candidate issuers, parsed once and indexed by subject Name.
//!
//! `mesh-signature-algorithm` needs the key of each certificate's issuer. Lint used to parse
//! every candidate again for every certificate it judged (quadratic: 2,000 certificates took
//! 19 s, a 15 MiB bundle did not finish; docs/performance.md). Now every candidate is parsed
//! once, and a certificate's issuer is looked up by its issuer Name in a hash map; only
//! candidates with that exact Name have their key tried against the signature.

use std::cell::Cell;
use std::collections::HashMap;

use pki::sigalg::{self, AlgorithmPolicy};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::model::key::KeyView;

/// One candidate: its SubjectPublicKeyInfo (DER) and curve name, if EC.
struct Candidate {
    spki: Vec<u8>,
    curve: Option<String>,
}

/// Work done, for the test that proves lint linear.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Candidate certificates parsed (each exactly once).
    pub parses: usize,
    /// Signatures checked against a candidate key.
    pub signature_checks: usize,
}

/// Candidate issuer certificates by subject Name (raw DER).
#[derive(Default)]
pub struct IssuerIndex {
    by_subject: HashMap<Vec<u8>, Vec<Candidate>>,
    parses: usize,
    signature_checks: Cell<usize>,
}

impl IssuerIndex {
    /// Parses every candidate once; ones that do not parse are skipped, a key seen twice under
    /// one Name is kept once.
    pub fn new<'a>(candidates: impl IntoIterator<Item = &'a [u8]>) -> IssuerIndex {
        let mut index = IssuerIndex::default();
        for der in candidates {
            index.parses += 1;
            let Ok((_, cert)) = X509Certificate::from_der(der) else {
                continue;
            };
            let spki = cert.public_key().raw.to_vec();
            let bucket = index
                .by_subject
                .entry(cert.subject().as_raw().to_vec())
                .or_default();
            if !bucket.iter().any(|c| c.spki == spki) {
                bucket.push(Candidate {
                    curve: KeyView::of(cert.public_key()).curve,
                    spki,
                });
            }
        }
        index
    }

    /// The curve of the key that issued `cert`: a candidate whose subject is `cert`'s issuer
    /// and whose key verifies `cert`'s signature. None when no candidate does.
    pub fn issuer_curve(&self, cert: &X509Certificate<'_>) -> Option<String> {
        let bucket = self.by_subject.get(cert.issuer().as_raw())?;
        let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
        bucket.iter().find_map(|cand| {
            self.signature_checks.set(self.signature_checks.get() + 1);
            sigalg::verify_signature_spki_der(
                cert.tbs_certificate.as_ref(),
                cert.signature_value.data.as_ref(),
                &sig_oid,
                &cand.spki,
                AlgorithmPolicy::WebPki,
            )
            .ok()
            .and(cand.curve.clone())
        })
    }

    /// How much work the index has done so far (the lint scaling test counts it).
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            parses: self.parses,
            signature_checks: self.signature_checks.get(),
        }
    }
}
