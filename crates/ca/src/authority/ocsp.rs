//! The OCSP responder (RFC 6960, docs/ca-api.md "OCSP"): the status of any certificate this CA
//! issued, signed by the CA key. It answers from the same store as the CRL, so both say the
//! same thing: a revocation made by any replica is in the next answer. Answers to requests
//! without a nonce are kept until the store's revocation epoch moves or half of their validity
//! has passed (the CRL's rule), so a client polling a status costs a store read, not a
//! signature.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pki::ocsp::{self, CertState, OcspError};
use time::OffsetDateTime;

use super::Authority;

/// Signed answers kept at most; the cache starts over when full (a bound, not an LRU: the
/// common case is a few services polling their own certificates).
const CACHED_ANSWERS: usize = 4096;

/// Answers signed since the revocation epoch `epoch`, at `signed_at`.
#[derive(Default)]
pub(super) struct OcspCache {
    epoch: u64,
    signed_at: Option<OffsetDateTime>,
    answers: HashMap<String, Arc<Vec<u8>>>,
}

impl Authority {
    /// The DER OCSPResponse to the DER OCSPRequest `request`: a signed answer, or an
    /// OCSPResponse carrying only an error status (`malformedRequest`, `unauthorized` for
    /// another CA's certificates, `tryLater` while the store cannot be read, `internalError`).
    /// Never fails: OCSP reports its errors inside the response.
    pub fn ocsp(&self, request: &[u8]) -> Vec<u8> {
        let query = match ocsp::read_request(&self.ca, request) {
            Ok(q) => q,
            Err(e) => {
                self.metrics.reject(match e {
                    OcspError::Malformed(_) => "ocsp_malformed",
                    OcspError::NotOurs(_) => "ocsp_unauthorized",
                    OcspError::Sign(_) => "ocsp_internal",
                });
                return e.response_der();
            }
        };
        match self.ocsp_answer(&query) {
            Ok(der) => {
                self.metrics.ocsp_answers.fetch_add(1, Ordering::Relaxed);
                der.as_ref().clone()
            }
            Err(status) => status,
        }
    }

    fn ocsp_answer(&self, query: &ocsp::OcspQuery) -> Result<Arc<Vec<u8>>, Vec<u8>> {
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
                *cache = OcspCache {
                    epoch,
                    signed_at: Some(now),
                    answers: HashMap::new(),
                };
            } else if let Some(der) = cache.answers.get(key) {
                return Ok(der.clone());
            }
        }
        let mut states = Vec::with_capacity(query.serials().len());
        for serial in query.serials() {
            let record = self.store.find_cert(serial).map_err(|e| {
                tracing::warn!(error = %e, "OCSP: the store cannot be read; answering tryLater");
                self.metrics.reject("ocsp_try_later");
                ocsp::try_later_response()
            })?;
            states.push(match record {
                None => CertState::Unknown,
                Some(r) => match r.revoked_at {
                    Some(at) => CertState::Revoked {
                        at,
                        reason: r.revoke_reason,
                    },
                    None => CertState::Good,
                },
            });
        }
        let der = ocsp::sign_response(&self.ca, query, &states, now, now + self.crl_validity)
            .map_err(|e| {
                tracing::error!(error = %e, "OCSP: signing the answer failed");
                self.metrics.reject("ocsp_internal");
                e.response_der()
            })?;
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
