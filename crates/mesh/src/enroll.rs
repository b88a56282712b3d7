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
    /// SHA-256 of the last token the CA has given its verdict on, so a used (or refused) token
    /// is not sent again.
    used_token: Mutex<Option<String>>,
    /// The key and CSR of the renewal under way, reused for every retry of it.
    pending_renewal: Mutex<Option<PendingRenewal>>,
}

/// One renewal of one current certificate: the new key and its CSR. Every retry sends the same
/// CSR until the CA gives its verdict. The CA answers a retried renewal with the same key with
/// the same certificate, but treats a second renewal of one certificate with a different key as
/// key theft and revokes the whole lineage; so a fresh key for a retry whose first attempt did
/// reach the CA (the answer lost on the way back) would get the service revoked.
struct PendingRenewal {
    /// Serial of the certificate being renewed.
    for_serial: String,
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
            pending_renewal: Mutex::new(None),
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
        self.enroll_with(|csr, token| async move {
            self.ca.sign(&csr, &token, &self.spiffe_id, self.ttl).await
        })
        .await
    }

    /// `enroll` with the CA call given (tests pass a fake CA).
    pub(crate) async fn enroll_with<F, Fut>(&self, sign: F) -> Result<Credential>
    where
        F: FnOnce(String, String) -> Fut,
        Fut: Future<Output = Result<SignResponse>>,
    {
        let token = self.token.read()?;
        let token_hash = pki::sha256_hex(token.as_bytes());
        let key = pki::keys::generate(self.curve)?;
        let csr = make_csr(&key, &self.spiffe_id)?;
        let response = sign(csr, token).await;
        // The token counts as used only once the CA has decided on it: it issued (the token is
        // spent) or refused it for good (used, unknown, expired, another identity: sending it
        // again cannot help). After a transport error or a 5xx the CA may never have seen it;
        // marking it used then would leave a service whose certificate expired during a CA
        // outage waiting for a new token although the one in its file is still good. If the
        // CA did spend it before the connection broke, the next attempt gets 401 token_used
        // and marks it then.
        if ca_decided(&response) {
            *self.used_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token_hash);
        }
        self.finish(&key, response?)
    }

    /// Renewal: `POST /api/v1/renew` authenticated by `current`, with a new key generated for
    /// this renewal and reused by its retries (`PendingRenewal`).
    pub async fn renew(&self, current: &Credential) -> Result<Credential> {
        let certified = current.certified.clone();
        self.renew_with(current, |csr| async move {
            self.ca.renew(&csr, self.ttl, certified).await
        })
        .await
    }

    /// `renew` with the CA call given (tests pass a fake CA).
    pub(crate) async fn renew_with<F, Fut>(
        &self,
        current: &Credential,
        renew: F,
    ) -> Result<Credential>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<SignResponse>>,
    {
        let serial = current.info.serial_hex.clone();
        let (key, csr) = self.renewal_key(&serial)?;
        let response = renew(csr).await;
        if ca_decided(&response) {
            // Issued or refused for good: the next renewal (of the next certificate, or a new
            // attempt after a refusal) starts with a fresh key.
            let mut pending = self
                .pending_renewal
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if pending.as_ref().is_some_and(|p| p.for_serial == serial) {
                *pending = None;
            }
        }
        self.finish(&key, response?)
    }

    /// The key and CSR for renewing the certificate `serial`: the pending ones if a renewal of
    /// it is under way, else new ones, remembered until the CA decides.
    fn renewal_key(&self, serial: &str) -> Result<(Arc<KeyPair>, String)> {
        let mut pending = self
            .pending_renewal
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pending.as_ref().filter(|p| p.for_serial == serial) {
            return Ok((p.key.clone(), p.csr.clone()));
        }
        let key = Arc::new(pki::keys::generate(self.curve)?);
        let csr = make_csr(&key, &self.spiffe_id)?;
        *pending = Some(PendingRenewal {
            for_serial: serial.to_string(),
            key: key.clone(),
            csr: csr.clone(),
        });
        Ok((key, csr))
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

    use crate::https::HttpsUrl;
    use crate::trust::Roots;
    use pki::CaMaterial;
    use x509_parser::prelude::{FromDer, X509Certificate};

    const ID: &str = "spiffe://mesh.local/service/worker";

    /// An enroller whose token comes from a file, and the CA that plays the fake CA's part.
    struct Fixture {
        ca: CaMaterial,
        enroller: Enroller,
        token_file: tempfile::NamedTempFile,
    }

    fn fixture() -> Fixture {
        let ca =
            CaMaterial::generate_root("Enroll Test Root", time::OffsetDateTime::now_utc()).unwrap();
        let trust = TrustState::new(Roots::new(vec![ca.cert_der().clone()]).unwrap());
        let id = pki::SpiffeId::parse(ID).unwrap();
        let token_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token_file.path(), "token-one").unwrap();
        let client = CaClient::new(
            HttpsUrl::parse("https://localhost:1").unwrap(),
            trust.clone(),
            TlsPolicy::default(),
            id.trust_domain(),
        );
        let enroller = Enroller::new(
            client,
            id,
            TokenSource::File(token_file.path().to_path_buf()),
            pki::Curve::P384,
            None,
            Role::Client,
            trust,
            TlsPolicy::default(),
        );
        Fixture {
            ca,
            enroller,
            token_file,
        }
    }

    /// What the real CA would answer: a certificate for the CSR's key.
    fn issue(ca: &CaMaterial, csr: &str) -> SignResponse {
        let csr = pki::csr::parse_and_verify(csr.as_bytes()).unwrap();
        let id = pki::SpiffeId::parse(ID).unwrap();
        let issued = pki::IssuancePolicy::default()
            .issue(
                &pki::LeafRequest {
                    spiffe_id: &id,
                    dns: &[],
                    ips: &[],
                    spki_der: &csr.spki_der,
                    ttl: time::Duration::hours(1),
                    now: time::OffsetDateTime::now_utc(),
                },
                ca,
            )
            .unwrap();
        SignResponse {
            certificate: issued.pem,
            chain: vec![],
            expires_at: String::new(),
            serial: issued.serial_hex,
            spiffe_id: ID.into(),
        }
    }

    fn refused(status: u16, code: &str) -> MeshError {
        MeshError::CaRefused {
            status,
            code: code.into(),
            message: "refused".into(),
        }
    }

    fn csr_key(csr: &str) -> Vec<u8> {
        pki::csr::parse_and_verify(csr.as_bytes()).unwrap().spki_der
    }

    #[tokio::test(start_paused = true)]
    async fn a_ca_outage_does_not_burn_the_join_token() {
        let f = fixture();
        let calls = AtomicU32::new(0);
        let tokens = Mutex::new(Vec::new());
        let limit = Duration::from_secs(120);
        let deadline = tokio::time::Instant::now() + limit;
        let started = tokio::time::Instant::now();
        let credential = retry_until("enrolling", deadline, limit, Duration::from_secs(1), || {
            // Before every attempt: no earlier failure has used the token up.
            assert!(f.enroller.fresh_token_available());
            f.enroller.enroll_with(|csr, token| {
                tokens.lock().unwrap().push(token);
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let ca = &f.ca;
                async move {
                    match n {
                        0 => Err(unreachable()),
                        1 => Err(MeshError::Connect {
                            addr: "localhost:1".into(),
                            message: "connection reset by peer".into(),
                        }),
                        2 => Err(refused(503, "internal")),
                        _ => Ok(issue(ca, &csr)),
                    }
                }
            })
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(started.elapsed(), Duration::from_secs(1 + 2 + 4));
        assert_eq!(*tokens.lock().unwrap(), vec!["token-one"; 4]);
        assert_eq!(credential.spiffe_id().unwrap().to_string(), ID);
        // Issued: now it is spent.
        assert!(!f.enroller.fresh_token_available());
        std::fs::write(f.token_file.path(), "token-two").unwrap();
        assert!(f.enroller.fresh_token_available());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_marks_the_token_used_and_a_throttle_does_not() {
        let f = fixture();
        let err = f
            .enroller
            .enroll_with(|_, _| async { Err(refused(429, "too_many_requests")) })
            .await
            .unwrap_err();
        assert!(is_retryable(&err));
        assert!(f.enroller.fresh_token_available());
        for (status, code) in [(401, "token_used"), (403, "identity_not_authorised")] {
            std::fs::write(f.token_file.path(), format!("token-{code}")).unwrap();
            assert!(f.enroller.fresh_token_available());
            f.enroller
                .enroll_with(|_, _| async move { Err(refused(status, code)) })
                .await
                .unwrap_err();
            assert!(!f.enroller.fresh_token_available(), "{status} {code}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_of_one_renewal_reuse_its_key_until_the_ca_decides() {
        let f = fixture();
        let ca = &f.ca;
        let current = f
            .enroller
            .enroll_with(|csr, _| async move { Ok(issue(ca, &csr)) })
            .await
            .unwrap();
        let keys = Mutex::new(Vec::new());
        let renew = |n: u32| {
            let keys = &keys;
            let ca = &f.ca;
            move |csr: String| async move {
                keys.lock().unwrap().push(csr_key(&csr));
                match n {
                    0 => Err(unreachable()),
                    1 => Err(refused(502, "http")),
                    2 => Err(refused(408, "http")),
                    _ => Ok(issue(ca, &csr)),
                }
            }
        };
        for n in 0..3 {
            f.enroller.renew_with(&current, renew(n)).await.unwrap_err();
        }
        let renewed = f.enroller.renew_with(&current, renew(3)).await.unwrap();
        let keys = keys.into_inner().unwrap();
        assert_eq!(keys.len(), 4);
        assert!(
            keys.iter().all(|k| k == &keys[0]),
            "one key for all retries"
        );
        let (_, cert) = X509Certificate::from_der(&renewed.chain[0]).unwrap();
        assert_eq!(cert.tbs_certificate.subject_pki.raw, keys[0].as_slice());

        // The next renewal (of the new certificate) starts with a fresh key.
        let next_keys = Mutex::new(Vec::new());
        let record = |status: u16| {
            let next_keys = &next_keys;
            move |csr: String| async move {
                next_keys.lock().unwrap().push(csr_key(&csr));
                Err::<SignResponse, _>(refused(status, "certificate_revoked"))
            }
        };
        f.enroller
            .renew_with(&renewed, record(403))
            .await
            .unwrap_err();
        // Refused for good: the attempt after that uses another key again.
        f.enroller
            .renew_with(&renewed, record(403))
            .await
            .unwrap_err();
        let next_keys = next_keys.into_inner().unwrap();
        assert_ne!(next_keys[0], keys[0]);
        assert_ne!(next_keys[1], next_keys[0]);
    }

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
