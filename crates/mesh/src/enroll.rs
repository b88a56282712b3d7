//! Getting certificates from the CA: first with a join token, then by renewal over mTLS. A fresh
//! key is generated in memory for every certificate; only a CSR leaves the process. Each
//! certificate is validated (roots, role, own SPIFFE ID) before the caller may publish it.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use wire::tls::TlsPolicy;

use crate::ca_client::{CaApi, SignResponse};
use crate::clock::Clock;
use crate::config::{Role, TokenSource};
use crate::credentials::Credential;
use crate::error::{CredentialError, MeshError, Result};
use crate::trust::TrustState;

/// A PEM CSR for `id`, signed by `key`. The CA takes only the public key and the identity its
/// token (or, for mtls-agent, the registration entry) allows; the URI SAN is informational.
pub fn make_csr(key: &KeyPair, id: &pki::SpiffeId) -> Result<String> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let id_str = id.to_string();
    if id_str.len() <= 64 {
        dn.push(DnType::CommonName, id_str.as_str());
    }
    params.distinguished_name = dn;
    let csr_error = |step: &'static str| {
        move |e: rcgen::Error| CredentialError::Csr {
            step,
            reason: e.to_string(),
        }
    };
    params.subject_alt_names = vec![SanType::URI(
        id_str
            .as_str()
            .try_into()
            .map_err(csr_error("SPIFFE ID as URI"))?,
    )];
    let csr = params
        .serialize_request(key)
        .map_err(csr_error("creating the CSR"))?;
    Ok(csr.pem().map_err(csr_error("encoding the CSR"))?)
}

/// Gets certificates from the CA for one identity: the first with a join token, the next ones
/// by renewal.
pub(crate) struct Enroller {
    ca: Arc<dyn CaApi>,
    spiffe_id: pki::SpiffeId,
    token: TokenSource,
    curve: pki::Curve,
    /// Requested lifetime; None lets the CA choose (its --cert-duration).
    ttl: Option<Duration>,
    role: Role,
    trust: Arc<TrustState>,
    policy: TlsPolicy,
    clock: Arc<dyn Clock>,
    /// SHA-256 of the last token the CA has given its verdict on, so a used (or refused) token
    /// is not sent again.
    used_token: Mutex<Option<String>>,
    /// The key and CSR of the enrollment under way (for the SHA-256 of its token), reused for
    /// every retry of it.
    pending_enrollment: Mutex<Option<PendingKey>>,
    /// The key and CSR of the renewal under way (for the serial of the certificate renewed),
    /// reused for every retry of it.
    pending_renewal: Mutex<Option<PendingKey>>,
}

/// The new key and its CSR for one request to the CA: one enrollment with one join token, or
/// one renewal of one current certificate. Every retry sends the same CSR until the CA gives
/// its verdict (`ca_decided`), because the first attempt may have reached the CA and only its
/// answer been lost. For an enrollment the CA answers a retry with the same key with the
/// certificate it issued then, where a new key would get `401 token_used` and leave the
/// service waiting for a new token. For a renewal it answers the same key with the same
/// certificate too, but treats a second renewal of one certificate with another key as key
/// theft and revokes the whole lineage.
struct PendingKey {
    /// What the request is for: the token's SHA-256, or the serial being renewed.
    for_request: String,
    key: Arc<KeyPair>,
    csr: String,
}

/// Whether the CA has given its verdict on a request: an answer, or a refusal that asking again
/// will not change (a 4xx other than 408/429). After a transport error, a timeout or a 5xx the
/// CA may never have seen the request, or not finished it.
fn ca_decided<T>(result: &Result<T>) -> bool {
    match result {
        Ok(_) => true,
        Err(e @ MeshError::CaRefused { .. }) => !is_retryable(e),
        Err(_) => false,
    }
}

/// What an enroller needs besides the CA.
pub(crate) struct EnrollerSettings {
    pub(crate) spiffe_id: pki::SpiffeId,
    pub(crate) token: TokenSource,
    pub(crate) curve: pki::Curve,
    pub(crate) ttl: Option<Duration>,
    pub(crate) role: Role,
}

impl Enroller {
    pub(crate) fn new(
        ca: Arc<dyn CaApi>,
        settings: EnrollerSettings,
        trust: Arc<TrustState>,
        policy: TlsPolicy,
    ) -> Enroller {
        let clock = trust.clock().clone();
        Enroller {
            ca,
            spiffe_id: settings.spiffe_id,
            token: settings.token,
            curve: settings.curve,
            ttl: settings.ttl,
            role: settings.role,
            trust,
            policy,
            clock,
            used_token: Mutex::new(None),
            pending_enrollment: Mutex::new(None),
            pending_renewal: Mutex::new(None),
        }
    }

    /// True when the token source holds a token not used yet (re-enrollment is possible).
    pub(crate) fn fresh_token_available(&self) -> bool {
        let Ok(token) = self.token.read() else {
            return false;
        };
        let used = self.used_token.lock().unwrap_or_else(|p| p.into_inner());
        used.as_deref() != Some(pki::sha256_hex(token.as_bytes()).as_str())
    }

    /// First issuance: `POST /api/v1/sign` with the join token and a CSR for a new key,
    /// generated for this token and reused by the retries of this enrollment.
    pub(crate) async fn enroll(&self) -> Result<Credential> {
        let token = self.token.read()?;
        let token_hash = pki::sha256_hex(token.as_bytes());
        let (key, csr) = self.pending_key(&self.pending_enrollment, &token_hash)?;
        let response = self.ca.sign(&csr, &token, &self.spiffe_id, self.ttl).await;
        // The token counts as used only once the CA has decided on it: it issued (the token is
        // spent) or refused it for good (used, unknown, expired, another identity: sending it
        // again cannot help). After a transport error or a 5xx the CA may never have seen it;
        // marking it used then would leave a service whose certificate expired during a CA
        // outage waiting for a new token although the one in its file is still good. If the
        // CA did spend it before the connection broke, the next attempt sends the same CSR
        // and gets the certificate issued then.
        if ca_decided(&response) {
            *self.used_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token_hash.clone());
            settle(&self.pending_enrollment, &token_hash);
        }
        self.finish(&key, response?)
    }

    /// Renewal: `POST /api/v1/renew` authenticated by `current`, with a new key generated for
    /// this renewal and reused by its retries (`PendingKey`).
    pub(crate) async fn renew(&self, current: &Credential) -> Result<Credential> {
        let serial = current.info.serial_hex.clone();
        let (key, csr) = self.pending_key(&self.pending_renewal, &serial)?;
        let response = self
            .ca
            .renew(&csr, self.ttl, current.certified.clone())
            .await;
        if ca_decided(&response) {
            // Issued or refused for good: the next renewal (of the next certificate, or a new
            // attempt after a refusal) starts with a fresh key.
            settle(&self.pending_renewal, &serial);
        }
        self.finish(&key, response?)
    }

    /// The key and CSR of the request `for_request` kept in `slot`: the pending ones if that
    /// request is under way, else new ones, remembered until the CA decides.
    fn pending_key(
        &self,
        slot: &Mutex<Option<PendingKey>>,
        for_request: &str,
    ) -> Result<(Arc<KeyPair>, String)> {
        let mut pending = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pending.as_ref().filter(|p| p.for_request == for_request) {
            return Ok((p.key.clone(), p.csr.clone()));
        }
        let key = Arc::new(pki::keys::generate(self.curve)?);
        let csr = make_csr(&key, &self.spiffe_id)?;
        *pending = Some(PendingKey {
            for_request: for_request.to_string(),
            key: key.clone(),
            csr: csr.clone(),
        });
        Ok((key, csr))
    }

    fn finish(&self, key: &KeyPair, response: SignResponse) -> Result<Credential> {
        // The leaf, then the intermediates of the CA's `chain` (its roots stay out: peers
        // have them), so peers can build the path to the root (docs/ca-api.md).
        let chain = pki::intermediate::presented_chain(&response.certificate, &response.chain)?;
        let credential = Credential::from_key(key, chain, &self.policy)?;
        if credential.info.serial_hex != response.serial.to_ascii_lowercase() {
            tracing::warn!(
                event = "ca_response_mismatch",
                certificate_serial = %credential.info.serial_hex,
                response_serial = %response.serial,
                "the CA's serial field does not match the certificate it returned"
            );
        }
        credential.validate(
            &self.trust.roots(),
            self.role,
            Some(&self.spiffe_id),
            self.clock.now(),
        )?;
        self.trust.learn_intermediates(&credential.chain()[1..]);
        Ok(credential)
    }
}

/// Forgets the key in `slot` once the CA decided on the request `for_request`: the next
/// request starts with a fresh key.
fn settle(slot: &Mutex<Option<PendingKey>>, for_request: &str) {
    let mut pending = slot.lock().unwrap_or_else(|p| p.into_inner());
    if pending
        .as_ref()
        .is_some_and(|p| p.for_request == for_request)
    {
        *pending = None;
    }
}

/// Whether a failed first enrollment (or root bootstrap) is worth retrying: the CA could not be
/// reached, the connection broke, or the CA had a temporary problem (5xx, 408, 429). Refusals
/// (400 bad request, 401 token used/unknown/expired, 403 identity not authorised, other 4xx),
/// a root that does not match the fingerprint, bad configuration and a certificate that fails
/// validation will not change by asking again.
pub(crate) fn is_retryable(err: &MeshError) -> bool {
    match err {
        MeshError::Ca { .. } | MeshError::Connect(_) | MeshError::Http(_) => true,
        // The agent may be starting, or not have minted this process's SVID yet (an entry
        // just created reaches it within its --entry-refresh).
        MeshError::WorkloadApi { .. } => true,
        MeshError::CaRefused { status, .. } => *status >= 500 || *status == 408 || *status == 429,
        _ => false,
    }
}

/// Runs `op` (root bootstrap, first enrollment) until it succeeds, a non-retryable error comes
/// back, or `deadline` passes. Waits between attempts with the renewal backoff
/// (`pki::renewal::retry_delay`: doubling from `base`, never more than a quarter of the time
/// left before the deadline) and logs every failure. `what` names the step in the logs; `limit`
/// is the configured time limit, for the final error.
pub(crate) async fn retry_until<T, F, Fut>(
    what: &str,
    deadline: tokio::time::Instant,
    limit: Duration,
    base: Duration,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt: u32 = 0;
    loop {
        let err = match op().await {
            Ok(v) => {
                if attempt > 0 {
                    tracing::info!(
                        event = "enroll_recovered",
                        attempts = attempt + 1,
                        "{what}: succeeded after {} attempts",
                        attempt + 1
                    );
                }
                return Ok(v);
            }
            Err(e) if !is_retryable(&e) => return Err(e),
            Err(e) => e,
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(MeshError::GaveUp {
                what: what.to_string(),
                after: pki::timefmt::human_std(limit),
                attempts: attempt + 1,
                last: Box::new(err),
            });
        }
        let base_t = time::Duration::try_from(base).unwrap_or(time::Duration::SECOND);
        let left_t = time::Duration::try_from(left).unwrap_or(time::Duration::ZERO);
        let delay = Duration::try_from(pki::renewal::retry_delay(attempt, base_t, left_t))
            .unwrap_or(base)
            .min(left);
        tracing::warn!(
            event = "enroll_failed",
            attempt = attempt + 1,
            error = %err,
            retry_in_ms = delay.as_millis() as u64,
            "{what} failed: {err}; retrying in {delay:?} (giving up {}s from now, --enroll-timeout)",
            left.as_secs()
        );
        tokio::time::sleep(delay).await;
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests;
