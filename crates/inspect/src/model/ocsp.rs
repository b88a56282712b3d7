//! Everything `show` prints about an OCSP response (RFC 6960), read by `pki::ocsp`, the
//! module the CA answers with. The signature is not checked here: `show` describes.

use anyhow::{anyhow, Result};
use time::OffsetDateTime;

use super::{AlgorithmView, Origin};
use crate::input::Object;
use crate::names::colon_lower;
use pki::ocsp::CertState;
use pki::timefmt::{self, human};

/// Everything `show` knows about one OCSP response.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OcspView {
    /// Where it came from.
    pub origin: Origin,
    /// responseStatus: `successful`, `malformedRequest`, `internalError`, `tryLater`,
    /// `sigRequired` or `unauthorized`.
    pub status: String,
    /// Who signed (`by key hash …` or `by name …`), for a successful response.
    pub responder: Option<String>,
    /// `issuer` when the CA signed itself (no certificate along), `delegated` when a
    /// certificate sent along holds the responder's key, `unknown` otherwise.
    pub signed_by: Option<&'static str>,
    /// The certificates sent along (a delegated responder's), described.
    pub signers: Vec<OcspSignerView>,
    /// producedAt, RFC 3339 UTC.
    pub produced_at: Option<String>,
    /// The responder's signature algorithm.
    pub signature_algorithm: Option<AlgorithmView>,
    /// The nonce, lowercase hex, when the response carries one.
    pub nonce: Option<String>,
    /// Certificates included (a delegated responder's chain); 0 when the CA signed itself.
    pub certificates: usize,
    /// One entry per certificate asked about.
    pub answers: Vec<OcspAnswerView>,
    /// The response as PEM (label `OCSP RESPONSE`).
    pub pem: String,
}

/// A certificate sent along in a response.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OcspSignerView {
    /// Subject.
    pub subject: String,
    /// Issuer (the CA whose certificates the responder may answer for).
    pub issuer: String,
    /// Serial, lowercase hex.
    pub serial_hex: String,
    /// notBefore, RFC 3339 UTC.
    pub not_before: String,
    /// notAfter, RFC 3339 UTC.
    pub not_after: String,
    /// True when notAfter has passed at `checked_at` (clients then refuse the answer).
    pub expired: bool,
    /// Extended key usage includes id-kp-OCSPSigning (required of a delegated responder).
    pub ocsp_signing: bool,
    /// Carries id-pkix-ocsp-nocheck (clients do not ask about the responder itself).
    pub nocheck: bool,
    /// Its key is the one the responder ID names: this certificate signed the answer.
    pub signed_this: bool,
}

/// The status of one certificate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OcspAnswerView {
    /// Lowercase hex with colons, as OpenSSL prints serials.
    pub serial: String,
    /// Serial as lowercase hex without separators.
    pub serial_hex: String,
    /// `good`, `revoked` or `unknown`.
    pub status: &'static str,
    /// When it was revoked, RFC 3339 UTC.
    pub revoked_at: Option<String>,
    /// The RFC 5280 reason, when given.
    pub reason: Option<String>,
    /// The hash the CertID names its issuer with (`SHA-1`, `SHA-256`).
    pub issuer_hash: String,
    /// thisUpdate, RFC 3339 UTC.
    pub this_update: String,
    /// nextUpdate, RFC 3339 UTC, when given.
    pub next_update: Option<String>,
    /// True when nextUpdate has passed at `checked_at`.
    pub stale: bool,
    /// "next update in 4m 10s" or "next update was due 3h ago".
    pub relative: Option<String>,
}

impl OcspView {
    pub(crate) fn build(obj: &Object, at: OffsetDateTime) -> Result<OcspView> {
        let summary = pki::ocsp::read_response(&obj.der)
            .map_err(|e| anyhow!("cannot parse the OCSP response: {e}"))?;
        let mut view = OcspView {
            origin: Origin::of(obj),
            status: summary.status.to_string(),
            responder: None,
            signed_by: None,
            signers: Vec::new(),
            produced_at: None,
            signature_algorithm: None,
            nonce: None,
            certificates: 0,
            answers: Vec::new(),
            pem: pki::pem::encode("OCSP RESPONSE", &obj.der),
        };
        let Some(answer) = summary.answer else {
            return Ok(view);
        };
        view.responder = Some(answer.responder);
        view.signed_by = Some(if answer.signers.iter().any(|c| c.is_responder) {
            "delegated"
        } else if answer.signers.is_empty() {
            "issuer"
        } else {
            "unknown"
        });
        view.signers = answer
            .signers
            .iter()
            .map(|c| OcspSignerView {
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                serial_hex: c.serial_hex.clone(),
                not_before: timefmt::rfc3339(c.not_before),
                not_after: timefmt::rfc3339(c.not_after),
                expired: c.not_after < at,
                ocsp_signing: c.ocsp_signing,
                nocheck: c.nocheck,
                signed_this: c.is_responder,
            })
            .collect();
        view.produced_at = Some(timefmt::rfc3339(answer.produced_at));
        view.signature_algorithm = Some(AlgorithmView::of(&answer.signature_algorithm));
        view.nonce = answer.nonce.map(hex::encode);
        view.certificates = answer.certificates;
        for a in answer.answers {
            let bytes = hex::decode(&a.serial_hex).unwrap_or_default();
            let (status, revoked_at, reason) = match a.state {
                CertState::Good => ("good", None, None),
                CertState::Unknown => ("unknown", None, None),
                CertState::Revoked { at, reason } => {
                    ("revoked", Some(timefmt::rfc3339(at)), reason)
                }
            };
            view.answers.push(OcspAnswerView {
                serial: colon_lower(&bytes),
                serial_hex: a.serial_hex,
                status,
                revoked_at,
                reason,
                issuer_hash: a.hash_algorithm,
                this_update: timefmt::rfc3339(a.this_update),
                next_update: a.next_update.map(timefmt::rfc3339),
                stale: a.next_update.is_some_and(|n| n < at),
                relative: a.next_update.map(|n| {
                    if n < at {
                        format!("next update was due {} ago", human(at - n))
                    } else {
                        format!("next update in {}", human(n - at))
                    }
                }),
            });
        }
        Ok(view)
    }
}
