//! Getting certificates from the CA: first with a join token, then by renewal over mTLS. A fresh
//! key is generated in memory for every certificate; only a CSR leaves the process. Each
//! certificate is validated (roots, role, own SPIFFE ID) before the caller may publish it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

use crate::ca_client::{CaClient, SignResponse};
use crate::credentials::{Credential, Role};
use crate::error::{MeshError, Result};
use crate::tls::TlsPolicy;
use crate::trust::TrustState;

/// Where the join token comes from. A file is re-read whenever a token is needed, so an
/// operator can drop a fresh token there for re-enrollment after an expiry.
#[derive(Clone)]
pub enum TokenSource {
    Literal(String),
    File(PathBuf),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print a token.
            TokenSource::Literal(_) => f.write_str("TokenSource::Literal(<redacted>)"),
            TokenSource::File(p) => write!(f, "TokenSource::File({})", p.display()),
        }
    }
}

impl TokenSource {
    pub fn read(&self) -> Result<String> {
        let token = match self {
            TokenSource::Literal(t) => t.clone(),
            TokenSource::File(p) => std::fs::read_to_string(p).map_err(|e| {
                MeshError::io(format!("reading the join token file {}", p.display()), e)
            })?,
        };
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err(MeshError::Config("the join token is empty".into()));
        }
        Ok(token)
    }
}

/// A PEM CSR for `id`, signed by `key`. The CA takes only the public key and the identity its
/// token allows; the URI SAN is informational.
pub fn make_csr(key: &KeyPair, id: &pki::SpiffeId) -> Result<String> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let id_str = id.to_string();
    if id_str.len() <= 64 {
        dn.push(DnType::CommonName, id_str.as_str());
    }
    params.distinguished_name = dn;
    params.subject_alt_names =
        vec![SanType::URI(id_str.as_str().try_into().map_err(|e| {
            MeshError::Credential(format!("SPIFFE ID as URI: {e}"))
        })?)];
    let csr = params
        .serialize_request(key)
        .map_err(|e| MeshError::Credential(format!("creating the CSR: {e}")))?;
    csr.pem()
        .map_err(|e| MeshError::Credential(format!("encoding the CSR: {e}")))
}

pub struct Enroller {
    pub ca: CaClient,
    pub spiffe_id: pki::SpiffeId,
    pub token: TokenSource,
    pub curve: pki::Curve,
    /// Requested lifetime; None lets the CA choose (its --cert-duration).
    pub ttl: Option<Duration>,
    pub role: Role,
    pub trust: Arc<TrustState>,
    pub policy: TlsPolicy,
    /// SHA-256 of the last token sent, so a used token is not sent again.
    used_token: Mutex<Option<String>>,
}

impl Enroller {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ca: CaClient,
        spiffe_id: pki::SpiffeId,
        token: TokenSource,
        curve: pki::Curve,
        ttl: Option<Duration>,
        role: Role,
        trust: Arc<TrustState>,
        policy: TlsPolicy,
    ) -> Enroller {
        Enroller {
            ca,
            spiffe_id,
            token,
            curve,
            ttl,
            role,
            trust,
            policy,
            used_token: Mutex::new(None),
        }
    }

    /// True when the token source holds a token not used yet (re-enrollment is possible).
    pub fn fresh_token_available(&self) -> bool {
        let Ok(token) = self.token.read() else {
            return false;
        };
        let used = self.used_token.lock().unwrap_or_else(|p| p.into_inner());
        used.as_deref() != Some(pki::sha256_hex(token.as_bytes()).as_str())
    }

    /// First issuance: fresh key, CSR, `POST /api/v1/sign` with the join token.
    pub async fn enroll(&self) -> Result<Credential> {
        let token = self.token.read()?;
        let key = pki::keys::generate(self.curve)?;
        let csr = make_csr(&key, &self.spiffe_id)?;
        *self.used_token.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(pki::sha256_hex(token.as_bytes()));
        let response = self
            .ca
            .sign(&csr, &token, &self.spiffe_id, self.ttl)
            .await?;
        self.finish(&key, response)
    }

    /// Renewal: fresh key, CSR, `POST /api/v1/renew` authenticated by `current`.
    pub async fn renew(&self, current: &Credential) -> Result<Credential> {
        let key = pki::keys::generate(self.curve)?;
        let csr = make_csr(&key, &self.spiffe_id)?;
        let response = self
            .ca
            .renew(&csr, self.ttl, current.certified.clone())
            .await?;
        self.finish(&key, response)
    }

    fn finish(&self, key: &KeyPair, response: SignResponse) -> Result<Credential> {
        let leaf = pki::pem::parse_certificates(response.certificate.as_bytes())?;
        let credential = Credential::from_key(key, leaf, &self.policy)?;
        if credential.info.serial_hex != response.serial.to_ascii_lowercase() {
            tracing::warn!(
                event = "ca_response_mismatch",
                certificate_serial = %credential.info.serial_hex,
                response_serial = %response.serial,
                "the CA's serial field does not match the certificate it returned"
            );
        }
        credential.validate(&self.trust.roots(), self.role, Some(&self.spiffe_id))?;
        Ok(credential)
    }
}

/// Whether a failed first enrollment (or root bootstrap) is worth retrying: the CA could not be
/// reached, the connection broke, or the CA had a temporary problem (5xx, 408, 429). Refusals
/// (400 bad request, 401 token used/unknown/expired, 403 identity not authorised, other 4xx),
/// a root that does not match the fingerprint, bad configuration and a certificate that fails
/// validation will not change by asking again.
pub fn is_retryable(err: &MeshError) -> bool {
    match err {
        MeshError::Ca { .. } | MeshError::Connect { .. } | MeshError::Http(_) => true,
        MeshError::CaRefused { status, .. } => *status >= 500 || *status == 408 || *status == 429,
        _ => false,
    }
}

/// Runs `op` (root bootstrap, first enrollment) until it succeeds, a non-retryable error comes
/// back, or `deadline` passes. Waits between attempts with the renewal backoff
/// (`pki::renewal::retry_delay`: doubling from `base`, never more than a quarter of the time
/// left before the deadline) and logs every failure. `what` names the step in the logs; `limit`
/// is the configured time limit, for the final error.
pub async fn retry_until<T, F, Fut>(
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
                after: humantime::format_duration(limit).to_string(),
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
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn unreachable() -> MeshError {
        MeshError::Ca {
            url: "https://localhost:1/api/v1/sign".into(),
            message: "connection to localhost:1: TCP connect: Connection refused".into(),
        }
    }

    #[test]
    fn classification() {
        assert!(is_retryable(&unreachable()));
        assert!(is_retryable(&MeshError::Connect {
            addr: "localhost:1".into(),
            message: "refused".into()
        }));
        let refused = |status| MeshError::CaRefused {
            status,
            code: "x".into(),
            message: "y".into(),
        };
        for status in [400, 401, 403, 404, 413] {
            assert!(!is_retryable(&refused(status)), "{status}");
        }
        for status in [408, 429, 500, 502, 503] {
            assert!(is_retryable(&refused(status)), "{status}");
        }
        assert!(!is_retryable(&MeshError::Trust("wrong fingerprint".into())));
        assert!(!is_retryable(&MeshError::Config("bad".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_the_ca_answers() {
        let calls = AtomicU32::new(0);
        let limit = Duration::from_secs(120);
        let deadline = tokio::time::Instant::now() + limit;
        let started = tokio::time::Instant::now();
        let got = retry_until("enrolling", deadline, limit, Duration::from_secs(1), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 4 {
                    Err(unreachable())
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 4);
        // 1 + 2 + 4 + 8 s of backoff.
        assert_eq!(started.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_fail_at_once() {
        let calls = AtomicU32::new(0);
        let limit = Duration::from_secs(120);
        let deadline = tokio::time::Instant::now() + limit;
        let started = tokio::time::Instant::now();
        let err = retry_until("enrolling", deadline, limit, Duration::from_secs(1), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err::<(), _>(MeshError::CaRefused {
                    status: 401,
                    code: "token_used".into(),
                    message: "the join token has already been used".into(),
                })
            }
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(err.to_string().contains("(401, token_used)"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_with_the_cause() {
        let calls = AtomicU32::new(0);
        let limit = Duration::from_secs(120);
        let deadline = tokio::time::Instant::now() + limit;
        let err = retry_until("enrolling", deadline, limit, Duration::from_secs(1), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(unreachable()) }
        })
        .await
        .unwrap_err();
        assert_eq!(tokio::time::Instant::now(), deadline);
        assert!(calls.load(Ordering::SeqCst) > 5);
        let text = err.to_string();
        assert!(
            text.contains("gave up after 2m (--enroll-timeout)"),
            "{text}"
        );
        assert!(text.contains("Connection refused"), "{text}");
    }
}
