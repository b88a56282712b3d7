//! Test support: an in-process CA that speaks `CaApi`, issues on the test's clock, records every
//! call and fails on demand, so enrollment, rotation and refresh run against it on tokio's
//! paused clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pki::crl::RevokedEntry;
use pki::CaMaterial;
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use wire::tls::TlsPolicy;

use crate::ca_client::{CaApi, CaFuture, SignResponse};
use crate::clock::{Clock, TokioClock};
use crate::config::{Role, TokenSource};
use crate::credentials::Credential;
use crate::enroll::{Enroller, EnrollerSettings};
use crate::error::{ConnectError, ConnectFailure, MeshError, Unanswered};
use crate::trust::{Roots, TrustState};

/// The identity the fake CA issues for.
pub(crate) const ID: &str = "spiffe://mesh.local/service/worker";

/// How a call to the fake CA fails.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fail {
    /// Nothing answers (connection refused).
    Unreachable,
    /// The connection broke after the request may have arrived.
    Reset,
    /// The CA answered with an error.
    Refused(u16, &'static str),
}

impl Fail {
    pub(crate) fn error(self, endpoint: &str) -> MeshError {
        match self {
            Fail::Unreachable => MeshError::Ca {
                url: format!("https://localhost:1{endpoint}"),
                error: Unanswered::Connect(ConnectError {
                    addr: "localhost:1".into(),
                    failure: ConnectFailure::Tcp(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "Connection refused",
                    )),
                }),
            },
            Fail::Reset => MeshError::Connect(ConnectError {
                addr: "localhost:1".into(),
                failure: ConnectFailure::HttpHandshake {
                    reason: "connection reset by peer".into(),
                },
            }),
            Fail::Refused(status, code) => MeshError::CaRefused {
                status,
                code: code.into(),
                message: "refused".into(),
            },
        }
    }
}

/// One call the fake CA received.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(crate) endpoint: &'static str,
    pub(crate) at: OffsetDateTime,
    pub(crate) token: Option<String>,
    /// The public key of the CSR (sign and renew).
    pub(crate) spki: Option<Vec<u8>>,
}

#[derive(Default)]
struct State {
    /// Outcomes of the next sign/renew calls, front first; empty: issue.
    script: VecDeque<Fail>,
    /// Every call fails as unreachable.
    down: bool,
    calls: Vec<Call>,
    revoked: Vec<RevokedEntry>,
    crl_number: u64,
}

/// An in-process CA.
pub(crate) struct FakeCa {
    pub(crate) root: CaMaterial,
    clock: Arc<dyn Clock>,
    /// Lifetime of issued certificates.
    pub(crate) ttl: time::Duration,
    /// nextUpdate - thisUpdate of its CRLs.
    pub(crate) crl_validity: time::Duration,
    state: Mutex<State>,
}

impl FakeCa {
    pub(crate) fn new(clock: Arc<dyn Clock>, ttl: time::Duration) -> Arc<FakeCa> {
        Arc::new(FakeCa {
            root: CaMaterial::generate_root("Fake Mesh Root", clock.now()).expect("root"),
            clock,
            ttl,
            crl_validity: time::Duration::minutes(10),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake CA state")
    }

    /// The next sign/renew calls fail like this, in order.
    pub(crate) fn script(&self, fails: &[Fail]) {
        self.state().script.extend(fails.iter().copied());
    }

    /// Every call fails as unreachable while `down`.
    pub(crate) fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Lists `serial_hex` on the next CRLs.
    pub(crate) fn revoke(&self, serial_hex: &str) {
        let at = self.clock.now();
        self.state().revoked.push(RevokedEntry {
            serial_hex: serial_hex.to_string(),
            revoked_at: at,
            reason: None,
        });
    }

    /// Every call so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The calls to `endpoint` so far.
    pub(crate) fn calls_to(&self, endpoint: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.endpoint == endpoint)
            .collect()
    }

    pub(crate) fn roots(&self) -> Roots {
        Roots::new(vec![self.root.cert_der().clone()]).expect("roots")
    }

    fn record(
        &self,
        endpoint: &'static str,
        token: Option<&str>,
        csr: Option<&str>,
    ) -> Option<Fail> {
        let spki = csr.map(|c| {
            pki::csr::parse_and_verify(c.as_bytes())
                .expect("a valid CSR")
                .spki_der
        });
        let mut state = self.state();
        state.calls.push(Call {
            endpoint,
            at: self.clock.now(),
            token: token.map(str::to_string),
            spki,
        });
        if state.down {
            return Some(Fail::Unreachable);
        }
        if csr.is_some() {
            return state.script.pop_front();
        }
        None
    }

    /// What mtls-ca would answer: a certificate for the CSR's key, valid from now for `ttl`.
    pub(crate) fn issue(&self, csr: &str) -> SignResponse {
        let csr = pki::csr::parse_and_verify(csr.as_bytes()).expect("a valid CSR");
        let id = pki::SpiffeId::parse(ID).expect("id");
        let issued = pki::IssuancePolicy {
            backdate: time::Duration::ZERO,
            ocsp_url: None,
        }
        .issue(
            &pki::LeafRequest {
                spiffe_id: &id,
                dns: &["localhost".to_string()],
                ips: &[],
                spki_der: &csr.spki_der,
                ttl: self.ttl,
                now: self.clock.now(),
            },
            &self.root,
        )
        .expect("issue");
        SignResponse {
            certificate: issued.pem,
            chain: vec![],
            expires_at: String::new(),
            serial: issued.serial_hex,
            spiffe_id: ID.into(),
        }
    }
}

impl CaApi for FakeCa {
    fn sign<'a>(
        &'a self,
        csr_pem: &'a str,
        token: &'a str,
        _requested_id: &'a pki::SpiffeId,
        _ttl: Option<Duration>,
    ) -> CaFuture<'a, SignResponse> {
        Box::pin(async move {
            match self.record("/api/v1/sign", Some(token), Some(csr_pem)) {
                Some(fail) => Err(fail.error("/api/v1/sign")),
                None => Ok(self.issue(csr_pem)),
            }
        })
    }

    fn renew<'a>(
        &'a self,
        csr_pem: &'a str,
        _ttl: Option<Duration>,
        _current: Arc<CertifiedKey>,
    ) -> CaFuture<'a, SignResponse> {
        Box::pin(async move {
            match self.record("/api/v1/renew", None, Some(csr_pem)) {
                Some(fail) => Err(fail.error("/api/v1/renew")),
                None => Ok(self.issue(csr_pem)),
            }
        })
    }

    fn crl(&self) -> CaFuture<'_, Vec<u8>> {
        Box::pin(async move {
            if let Some(fail) = self.record("/api/v1/crl", None, None) {
                return Err(fail.error("/api/v1/crl"));
            }
            let now = self.clock.now();
            let (revoked, number) = {
                let mut state = self.state();
                state.crl_number += 1;
                (state.revoked.clone(), state.crl_number)
            };
            Ok(
                pki::crl::sign_crl(&self.root, &revoked, number, now, now + self.crl_validity)
                    .expect("CRL"),
            )
        })
    }

    fn bundle(&self) -> CaFuture<'_, Vec<u8>> {
        Box::pin(async move {
            if let Some(fail) = self.record("/api/v1/bundle", None, None) {
                return Err(fail.error("/api/v1/bundle"));
            }
            Ok(self.root.cert_pem().into_bytes())
        })
    }
}

/// A paused-clock world: the clock, the fake CA, a trust state holding its root, and a join
/// token file.
pub(crate) struct World {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ca: Arc<FakeCa>,
    pub(crate) trust: Arc<TrustState>,
    pub(crate) token_file: tempfile::NamedTempFile,
}

impl World {
    /// Call inside a paused runtime. Certificates live `ttl`.
    pub(crate) fn new(ttl: time::Duration) -> World {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
        let ca = FakeCa::new(clock.clone(), ttl);
        let trust = TrustState::with_clock(ca.roots(), clock.clone());
        let token_file = tempfile::NamedTempFile::new().expect("token file");
        std::fs::write(token_file.path(), "token-one").expect("token");
        World {
            clock,
            ca,
            trust,
            token_file,
        }
    }

    /// A trust state with a CRL policy (`max_staleness`), on this world's clock.
    pub(crate) fn trust_with_crl_policy(&self, max_staleness: time::Duration) -> Arc<TrustState> {
        TrustState::with_crl_policy(
            self.ca.roots(),
            crate::crl_freshness::CrlPolicy {
                max_staleness,
                no_crl_since: self.clock.now(),
            },
            self.clock.clone(),
        )
    }

    pub(crate) fn enroller(&self) -> Arc<Enroller> {
        Arc::new(Enroller::new(
            self.ca.clone(),
            EnrollerSettings {
                spiffe_id: pki::SpiffeId::parse(ID).expect("id"),
                token: TokenSource::File(self.token_file.path().to_path_buf()),
                curve: pki::Curve::P384,
                ttl: None,
                role: Role::Client,
            },
            self.trust.clone(),
            TlsPolicy::default(),
        ))
    }

    /// A credential issued now by the fake CA, without going through an enroller.
    pub(crate) fn credential(&self) -> Credential {
        let key = pki::keys::generate(pki::Curve::P384).expect("key");
        let csr =
            crate::enroll::make_csr(&key, &pki::SpiffeId::parse(ID).expect("id")).expect("csr");
        let response = self.ca.issue(&csr);
        let chain = pki::pem::parse_certificates(response.certificate.as_bytes()).expect("pem");
        Credential::from_key(&key, chain, &TlsPolicy::default()).expect("credential")
    }
}

/// Static-files configuration for a certificate from `ca`, with the files written into `dir`.
pub(crate) fn static_files_config(ca: &FakeCa, dir: &std::path::Path) -> crate::ServiceConfig {
    let key = pki::keys::generate(pki::Curve::P384).expect("key");
    let id = pki::SpiffeId::parse(ID).expect("id");
    let issued = ca.issue(&crate::enroll::make_csr(&key, &id).expect("csr"));
    std::fs::write(dir.join("live.crt"), &issued.certificate).expect("write");
    std::fs::write(dir.join("live.key"), key.serialize_pem()).expect("write");
    std::fs::write(dir.join("roots.pem"), ca.root.cert_pem()).expect("write");
    crate::ServiceConfig::new(
        Role::Both,
        crate::CredentialSource::StaticFiles(crate::StaticFiles {
            cert: dir.join("live.crt"),
            key: dir.join("live.key"),
            roots: dir.join("roots.pem"),
            crl: None,
            reload_interval: Duration::from_secs(1),
        }),
    )
}
