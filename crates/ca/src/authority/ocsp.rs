//! The OCSP responder (RFC 6960, docs/ca-api.md "OCSP"): the status of any certificate this CA
//! issued, signed by the CA key or, with `--ocsp-responder delegated`, by a delegated responder
//! certificate the CA issues to itself (id-kp-OCSPSigning, id-pkix-ocsp-nocheck, a few hours of
//! life; its key lives in this process's memory only and is never written anywhere). The
//! responder certificate is issued when the authority is built and replaced by a fresh one once
//! less than [`RENEW_BEFORE_CRL_PERIODS`] CRL periods of its life remain, so every answer, valid
//! one CRL period, ends well before its signer's certificate. It answers from the same store as the CRL, so both say the
//! same thing: a revocation made by any replica is in the next answer. Answers to requests
//! without a nonce are kept until the store's revocation epoch moves or half of their validity
//! has passed (the CRL's rule), so a client polling a status costs a store read, not a
//! signature.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pki::ocsp::{self, CertState, DelegatedResponder, OcspError, Signer};
use pki::CaMaterial;
use time::OffsetDateTime;

use super::Authority;
use crate::store::{CertRecord, IssueKind};

/// Signed answers kept at most; the cache starts over when full (a bound, not an LRU: the
/// common case is a few services polling their own certificates).
const CACHED_ANSWERS: usize = 4096;

/// A delegated responder certificate lives this many CRL periods (`--crl-validity`)...
pub const RESPONDER_LIFETIME_CRL_PERIODS: i32 = 4;
/// ... and is replaced once fewer than this many remain.
pub const RENEW_BEFORE_CRL_PERIODS: i32 = 2;

/// Who signs the CA's OCSP answers (`mtls-ca --ocsp-responder`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OcspResponderMode {
    /// The CA key itself; answers carry no certificate (the default).
    #[default]
    Ca,
    /// A delegated responder certificate issued by the CA, sent along in every answer.
    Delegated,
}

/// The OCSP state of an authority: who signs, and the answers signed since the revocation
/// epoch `epoch`, at `signed_at`.
#[derive(Default)]
pub(super) struct OcspCache {
    epoch: u64,
    signed_at: Option<OffsetDateTime>,
    answers: HashMap<String, Arc<Vec<u8>>>,
    /// The delegated responder in use (`OcspResponderMode::Delegated`), with the fingerprint
    /// of the root that certified it: after a root switch it is certified again by the new one.
    responder: Option<(String, Arc<DelegatedResponder>)>,
}

impl Authority {
    /// Signs OCSP answers as `mode` says; for `Delegated`, issues the first responder
    /// certificate now (a CA that cannot do that does not start).
    pub fn with_ocsp_responder(self, mode: OcspResponderMode) -> Result<Authority, OcspError> {
        if mode == OcspResponderMode::Delegated {
            let ca = self.ca();
            let responder = self.issue_responder(&ca, self.clock.now())?;
            self.ocsp
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .responder = Some((ca.root_fingerprint(), responder));
        }
        Ok(self)
    }

    /// After a root switch: no answer signed before it is served again, and a delegated
    /// responder is certified by the new active root (issued on the next answer).
    pub(super) fn reset_ocsp(&self) {
        let mut cache = self.ocsp.lock().unwrap_or_else(|p| p.into_inner());
        cache.answers.clear();
        cache.signed_at = None;
    }

    fn issue_responder(
        &self,
        ca: &CaMaterial,
        now: OffsetDateTime,
    ) -> Result<Arc<DelegatedResponder>, OcspError> {
        let lifetime = self.crl_validity * RESPONDER_LIFETIME_CRL_PERIODS;
        let responder = DelegatedResponder::issue(ca, now, lifetime)
            .map_err(|e| OcspError::Sign(e.to_string()))?;
        // Like every certificate the CA signs, it is stored with its audit entry before it is
        // used: `list` shows it, `audit verify` accounts for it, and `revoke` can name it.
        self.store
            .record_ocsp_responder(&responder_record(&responder, now)?)
            .map_err(|e| OcspError::Sign(format!("recording the responder certificate: {e}")))?;
        tracing::info!(
            event = "ocsp_responder_issued",
            serial = responder.serial_hex(),
            not_after = %pki::timefmt::rfc3339(responder.not_after()),
            "issued the delegated OCSP responder certificate {} (valid until {})",
            responder.serial_hex(),
            pki::timefmt::rfc3339(responder.not_after())
        );
        Ok(Arc::new(responder))
    }

    /// The delegated responder certified by `ca` to sign with at `now` (renewed when due, or
    /// certified again after a root switch), or None when the CA signs itself.
    fn responder_at(
        &self,
        ca: &CaMaterial,
        now: OffsetDateTime,
    ) -> Result<Option<Arc<DelegatedResponder>>, OcspError> {
        let current = self
            .ocsp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .responder
            .clone();
        let Some((issuer, current)) = current else {
            return Ok(None);
        };
        let fingerprint = ca.root_fingerprint();
        let renew_at = current.not_after() - self.crl_validity * RENEW_BEFORE_CRL_PERIODS;
        if now < renew_at && issuer == fingerprint && !self.revoked(&current)? {
            return Ok(Some(current));
        }
        let fresh = self.issue_responder(ca, now)?;
        let mut state = self.ocsp.lock().unwrap_or_else(|p| p.into_inner());
        // Two answers may have renewed at once: keep whichever was stored first.
        match &state.responder {
            Some((by, r)) if !Arc::ptr_eq(r, &current) && *by == fingerprint => Ok(Some(r.clone())),
            _ => {
                state.responder = Some((fingerprint, fresh.clone()));
                Ok(Some(fresh))
            }
        }
    }

    /// Whether `responder` was revoked (`mtls-ca revoke --serial`): then it signs nothing more
    /// and a new one is issued. One store read per signed answer; cached answers skip it, and
    /// a revocation empties the cache.
    fn revoked(&self, responder: &DelegatedResponder) -> Result<bool, OcspError> {
        let record = self
            .store
            .find_cert(responder.serial_hex())
            .map_err(|e| OcspError::Sign(format!("reading the responder certificate: {e}")))?;
        Ok(record.is_some_and(|r| r.revoked_at.is_some()))
    }

    /// The delegated OCSP responder certificate in use (DER), if answers are delegated.
    pub fn ocsp_responder_cert(&self) -> Option<Vec<u8>> {
        let state = self.ocsp.lock().unwrap_or_else(|p| p.into_inner());
        state.responder.as_ref().map(|(_, r)| r.cert_der().to_vec())
    }

    /// The DER OCSPResponse to the DER OCSPRequest `request`: a signed answer, or an
    /// OCSPResponse carrying only an error status (`malformedRequest`, `unauthorized` for
    /// another CA's certificates, `tryLater` while the store cannot be read, `internalError`).
    /// Never fails: OCSP reports its errors inside the response.
    ///
    /// The answer is signed by the root the request's CertIDs name (issuerNameHash and
    /// issuerKeyHash): the active one, or during a root rotation the old one for its own
    /// leaves, so `openssl ocsp -issuer old-root.crt` verifies it.
    pub fn ocsp(&self, request: &[u8]) -> Vec<u8> {
        let answering = self.roots().answering();
        let named: Vec<&[u8]> = answering.iter().map(|ca| ca.cert_der().as_ref()).collect();
        let (index, query) = match ocsp::read_request_among(&named, request) {
            Ok(q) => q,
            Err(e) => return self.ocsp_refused(&e),
        };
        // A delegated responder is certified by the active root; the old root's answers are
        // signed by the old root itself (RFC 6960 §4.2.2.2: the issuer may always answer).
        match self.ocsp_answer(&query, &answering[index], index == 0) {
            Ok(der) => {
                self.metrics.ocsp_answers.fetch_add(1, Ordering::Relaxed);
                der.as_ref().clone()
            }
            Err(status) => status,
        }
    }

    /// The OCSPResponse for a request refused before it was answered (by `read_request_among`
    /// or, for a GET, by `pki::ocsp::decode_get_path`): its error status, counted in
    /// `mtls_ca_rejected_total`.
    pub fn ocsp_refused(&self, e: &OcspError) -> Vec<u8> {
        tracing::debug!(error = %e, "OCSP request refused");
        self.metrics.reject(match e {
            OcspError::Malformed(_) => "ocsp_malformed",
            OcspError::NotOurs(_) => "ocsp_unauthorized",
            OcspError::Sign(_) => "ocsp_internal",
        });
        e.response_der()
    }

    fn ocsp_answer(
        &self,
        query: &ocsp::OcspQuery,
        issuer: &CaMaterial,
        delegate: bool,
    ) -> Result<Arc<Vec<u8>>, Vec<u8>> {
        let now = self.clock.now();
        let epoch = self.store.revocation_epoch().map_err(|e| {
            tracing::warn!(error = %e, "OCSP: the store cannot be read; answering tryLater");
            self.metrics.reject("ocsp_try_later");
            ocsp::try_later_response()
        })?;
        let key = query.cache_key();
        if let Some(key) = &key {
            let mut cache = self.ocsp.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = cache.epoch == epoch
                && cache
                    .signed_at
                    .is_some_and(|t| now - t < self.crl_validity / 2 && t <= now);
            if !fresh {
                cache.epoch = epoch;
                cache.signed_at = Some(now);
                cache.answers = HashMap::new();
            } else if let Some(der) = cache.answers.get(key) {
                return Ok(der.clone());
            }
        }
        let issuer_subject = pki::CertInfo::from_der(issuer.cert_der())
            .map(|c| c.subject)
            .unwrap_or_default();
        let mut states = Vec::with_capacity(query.serials().len());
        for serial in query.serials() {
            let record = self.store.find_cert(serial).map_err(|e| {
                tracing::warn!(error = %e, "OCSP: the store cannot be read; answering tryLater");
                self.metrics.reject("ocsp_try_later");
                ocsp::try_later_response()
            })?;
            states.push(match record {
                None => CertState::Unknown,
                // A serial of another of this CA's roots: not one the named issuer signed.
                Some(r) if !issued_by(&r.pem, &issuer_subject) => CertState::Unknown,
                Some(r) => match r.revoked_at {
                    Some(at) => CertState::Revoked {
                        at,
                        reason: r.revoke_reason,
                    },
                    None => CertState::Good,
                },
            });
        }
        let internal = |e: OcspError| {
            tracing::error!(error = %e, "OCSP: signing the answer failed");
            self.metrics.reject("ocsp_internal");
            e.response_der()
        };
        let responder = match delegate {
            true => self.responder_at(issuer, now).map_err(internal)?,
            false => None,
        };
        let signer = match &responder {
            Some(r) => Signer::Delegated(r),
            None => Signer::Ca(issuer),
        };
        let der = ocsp::sign_response(signer, query, &states, now, now + self.crl_validity)
            .map_err(internal)?;
        let der = Arc::new(der);
        if let Some(key) = key {
            let mut cache = self.ocsp.lock().unwrap_or_else(|p| p.into_inner());
            // Only into the generation it was computed for: a revocation in between started a
            // new one, which must not get an answer read before it.
            if cache.epoch == epoch {
                if cache.answers.len() >= CACHED_ANSWERS {
                    cache.answers.clear();
                }
                cache.answers.insert(key, der.clone());
            }
        }
        Ok(der)
    }
}

/// The store row of a delegated responder certificate: no SPIFFE ID, no names.
fn responder_record(
    responder: &DelegatedResponder,
    now: OffsetDateTime,
) -> Result<CertRecord, OcspError> {
    let der = responder.cert_der();
    let info = pki::CertInfo::from_der(der).map_err(|e| OcspError::Sign(e.to_string()))?;
    Ok(CertRecord {
        serial: responder.serial_hex().to_string(),
        spiffe_id: String::new(),
        dns: Vec::new(),
        ips: Vec::new(),
        not_before: info.not_before,
        not_after: info.not_after,
        issued_at: now,
        kind: IssueKind::OcspResponder,
        renewed_from: None,
        fingerprint: pki::sha256_hex(der),
        pem: pki::pem::encode("CERTIFICATE", der),
        revoked_at: None,
        revoke_reason: None,
    })
}

/// Whether the stored certificate `pem` names `subject` as its issuer (the roots of a rotation
/// have subjects of their own, `root_rotation.rs`).
fn issued_by(pem: &str, subject: &str) -> bool {
    pki::pem::parse_certificates(pem.as_bytes())
        .ok()
        .and_then(|certs| certs.into_iter().next())
        .and_then(|der| pki::CertInfo::from_der(&der).ok())
        .is_some_and(|info| info.issuer == subject)
}
