//! Turns the credential options into a running credential: the identity (certificate
//! resolver), the trust state, and the background tasks that keep them fresh.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use tokio::task::JoinHandle;

use crate::ca_client::{fetch_root_by_fingerprint, CaClient};
use crate::credentials::static_files::ReloadTarget;
use crate::credentials::{Identity, Role, StaticFiles};
use crate::crl_freshness::CrlPolicy;
use crate::enroll::{retry_until, Enroller, TokenSource};
use crate::error::{MeshError, Result};
use crate::events::Events;
use crate::https::HttpsUrl;
use crate::refresh::Refresher;
use crate::rotation::{self, RotationConfig};
use crate::stop::Stop;
use crate::tls::{MeshClientVerifier, MeshServerVerifier, PinSet, PinnedVerifier, TlsPolicy};
use crate::trust::{Roots, TrustState};

/// Where a service's certificate comes from and how it is kept fresh: the values of the
/// credential flags (docs/cli.md; the programs fill it from their command line). The names
/// of the flags appear in the errors, so each field names its flag.
#[derive(Debug, Clone)]
pub struct CredentialOptions {
    /// `--ca-url`: enrolled mode, base URL of the CA (https:// only).
    pub ca_url: Option<String>,
    /// `--ca-fingerprint`: SHA-256 fingerprint of the CA root.
    pub ca_fingerprint: Option<String>,
    /// `--spiffe-id`: this workload's SPIFFE ID (must match the join token).
    pub spiffe_id: Option<String>,
    /// `--join-token`: the one-time join token itself. Never logged.
    pub join_token: Option<String>,
    /// `--join-token-file`: file holding the join token, re-read for a new enrollment.
    pub join_token_file: Option<PathBuf>,
    /// `--curve`: curve of the generated keys (P-384, P-256 or P-521).
    pub curve: String,
    /// `--ttl`: requested certificate lifetime (the CA clamps it; None: the CA's default).
    pub ttl: Option<Duration>,
    /// `--rotate-at`: renew when this fraction of the lifetime has passed.
    pub rotate_at: f64,
    /// `--enroll-timeout`: how long to keep retrying to reach the CA at start.
    pub enroll_timeout: Duration,
    /// `--crl-refresh`: how often to fetch the CA's CRL and trust bundle.
    pub crl_refresh: Duration,
    /// `--crl-max-staleness`: how long past nextUpdate a CRL is still used.
    pub crl_max_staleness: Duration,
    /// `--cert`: static mode, certificate PEM (leaf first).
    pub cert: Option<PathBuf>,
    /// `--key`: static mode, the certificate's private key.
    pub key: Option<PathBuf>,
    /// `--ca-cert`: roots to trust (static mode), or the CA root instead of the fingerprint.
    pub ca_cert: Option<PathBuf>,
    /// `--crl`: static mode, a CRL signed by the `--ca-cert` root.
    pub crl: Option<PathBuf>,
    /// `--trust-pin`: pinned mode, `sha256:<hex>` SPKI hashes of trusted peers.
    pub trust_pin: Vec<String>,
    /// `--reload-interval`: how often the static files are checked for changes.
    pub reload_interval: Duration,
    /// `--groups`: extra key exchange groups besides secp384r1 and secp521r1.
    pub groups: Vec<String>,
}

/// Which of the three credential sources is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enrolled,
    Static,
    Pinned,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enrolled => "enrolled",
            Mode::Static => "static files",
            Mode::Pinned => "pinned",
        }
    }
}

/// A service's credential machinery. Dropping it stops the background tasks.
pub struct Services {
    pub mode: Mode,
    pub identity: Arc<Identity>,
    /// None in pinned mode.
    pub trust: Option<Arc<TrustState>>,
    pub pins: Option<PinSet>,
    pub policy: TlsPolicy,
    pub events: Arc<Events>,
    /// The next planned rotation (enrolled mode).
    pub next_rotation: Option<time::OffsetDateTime>,
    tasks: Vec<JoinHandle<()>>,
    stop: Stop,
}

/// First wait between attempts to reach the CA at start (then doubling, like renewal).
const ENROLL_RETRY_BASE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long `Services::shutdown` waits for the background tasks before aborting them.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for Services {
    fn drop(&mut self) {
        // Request the stop first: a task being polled right now on another worker sees it and
        // stays quiet about errors caused by the teardown.
        self.stop.request();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// How old a CRL may get (`--crl-max-staleness`); until the first one arrives, the service's
/// start stands in for its nextUpdate.
fn crl_policy(args: &CredentialOptions, started: time::OffsetDateTime) -> CrlPolicy {
    CrlPolicy {
        max_staleness: time::Duration::try_from(args.crl_max_staleness)
            .unwrap_or(time::Duration::MAX),
        no_crl_since: started,
    }
}

fn mode_of(args: &CredentialOptions) -> Result<Mode> {
    let enrolled = args.ca_url.is_some();
    let files = args.cert.is_some() || args.key.is_some();
    if enrolled && files {
        return Err(MeshError::Config(
            "--ca-url (enrolled mode) and --cert/--key (static mode) exclude each other".into(),
        ));
    }
    if enrolled {
        if !args.trust_pin.is_empty() || args.crl.is_some() {
            return Err(MeshError::Config(
                "--trust-pin and --crl are for static/pinned mode, not with --ca-url".into(),
            ));
        }
        return Ok(Mode::Enrolled);
    }
    if !files {
        return Err(MeshError::Config(
            "no credentials: give --ca-url ... (enrolled), --cert/--key/--ca-cert (static files) \
             or --cert/--key/--trust-pin (pinned); see --help"
                .into(),
        ));
    }
    if args.cert.is_none() || args.key.is_none() {
        return Err(MeshError::Config("--cert and --key go together".into()));
    }
    match (args.ca_cert.is_some(), !args.trust_pin.is_empty()) {
        (true, false) => Ok(Mode::Static),
        (false, true) => Ok(Mode::Pinned),
        (true, true) => Err(MeshError::Config(
            "--ca-cert and --trust-pin exclude each other: trust a CA or pinned keys, not both"
                .into(),
        )),
        (false, false) => Err(MeshError::Config(
            "static files need --ca-cert (the CA to trust) or --trust-pin (pinned peer keys)"
                .into(),
        )),
    }
}

impl Services {
    /// Loads or obtains the first certificate and starts the background tasks.
    pub async fn start(args: &CredentialOptions, role: Role) -> Result<Services> {
        let started = time::OffsetDateTime::now_utc();
        let policy = TlsPolicy::with_extra_groups(TlsPolicy::parse_groups(&args.groups)?);
        let events = Events::new();
        let mut services = match mode_of(args)? {
            Mode::Enrolled => Self::start_enrolled(args, role, policy, events, started).await?,
            mode => Self::start_files(args, role, policy, events, mode, started)?,
        };
        let health = services.stop.spawn(crate::health::log_transitions(
            services.identity.clone(),
            services.trust.clone(),
        ));
        services.tasks.push(health);
        Ok(services)
    }

    /// Stops the background tasks and waits for them to end (aborting any that take longer
    /// than a moment). Call it before the runtime goes away, so that no refresh or renewal is
    /// torn down half-way and reported as a failure.
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        crate::stop::stop_and_join(&self.stop, tasks, SHUTDOWN_GRACE).await;
    }

    fn start_files(
        args: &CredentialOptions,
        role: Role,
        policy: TlsPolicy,
        events: Arc<Events>,
        mode: Mode,
        started: time::OffsetDateTime,
    ) -> Result<Services> {
        let files = StaticFiles {
            // mode_of checked that both are present.
            cert: args.cert.clone().unwrap_or_default(),
            key: args.key.clone().unwrap_or_default(),
            ca_cert: args.ca_cert.clone(),
            crl: args.crl.clone(),
        };
        let first = files.load(&policy, role)?;
        let pins = if mode == Mode::Pinned {
            Some(PinSet::parse(&args.trust_pin)?)
        } else {
            None
        };
        let trust = first.roots.clone().map(|roots| match &args.crl {
            // A CRL file makes the service answer "revoked?", so it must not go stale.
            Some(_) => TrustState::with_crl_policy(roots, crl_policy(args, started)),
            None => TrustState::new(roots),
        });
        if let (Some(trust), Some(revoked)) = (&trust, first.revoked.clone()) {
            trust.set_revoked(revoked, true);
        }
        let identity = Identity::new(first.credential.clone());
        let target = ReloadTarget {
            identity: identity.clone(),
            trust: trust.clone(),
            policy: policy.clone(),
            role,
            events: events.clone(),
        };
        let interval = args.reload_interval;
        let stop = Stop::new();
        let task = stop.spawn(async move { files.watch(&first, target, interval).await });
        Ok(Services {
            mode,
            identity,
            trust,
            pins,
            policy,
            events,
            next_rotation: None,
            tasks: vec![task],
            stop,
        })
    }

    async fn start_enrolled(
        args: &CredentialOptions,
        role: Role,
        policy: TlsPolicy,
        events: Arc<Events>,
        started: time::OffsetDateTime,
    ) -> Result<Services> {
        let url = HttpsUrl::parse(args.ca_url.as_deref().unwrap_or_default())?;
        let spiffe_id = pki::SpiffeId::parse(args.spiffe_id.as_deref().ok_or_else(|| {
            MeshError::Config(
                "--ca-url needs --spiffe-id (the identity the join token allows)".into(),
            )
        })?)?;
        let token = match (&args.join_token, &args.join_token_file) {
            (Some(t), None) => TokenSource::Literal(t.clone()),
            (None, Some(f)) => TokenSource::File(f.clone()),
            (Some(_), Some(_)) => {
                return Err(MeshError::Config(
                    "give --join-token or --join-token-file, not both".into(),
                ))
            }
            (None, None) => {
                return Err(MeshError::Config(
                    "--ca-url needs a join token: --join-token-file FILE (or --join-token); \
                     create one with `mtls-ca token --spiffe-id ...`"
                        .into(),
                ))
            }
        };
        if !(args.rotate_at > 0.0 && args.rotate_at < 1.0) {
            return Err(MeshError::Config(format!(
                "--rotate-at {} must be between 0 and 1 (exclusive), e.g. 0.5",
                args.rotate_at
            )));
        }
        let curve: pki::Curve = args.curve.parse()?;
        // The CA may not be up yet (services started together): retry reaching it, bounded.
        let deadline = tokio::time::Instant::now() + args.enroll_timeout;
        let limit = args.enroll_timeout;
        let roots = match (&args.ca_fingerprint, &args.ca_cert) {
            (Some(fp), None) => {
                let what = "downloading the CA root";
                retry_until(what, deadline, limit, ENROLL_RETRY_BASE, || {
                    fetch_root_by_fingerprint(&url, fp, &policy, std::time::Duration::from_secs(10))
                })
                .await?
            }
            (None, Some(path)) => Roots::from_pem(&pki::files::read(path)?)?,
            (Some(_), Some(_)) => {
                return Err(MeshError::Config(
                    "give --ca-fingerprint or --ca-cert, not both".into(),
                ))
            }
            (None, None) => {
                return Err(MeshError::Config(
                    "--ca-url needs --ca-fingerprint SHA256 (printed by mtls-ca at start) or \
                     --ca-cert FILE to authenticate the CA"
                        .into(),
                ))
            }
        };
        // Before the first CRL arrives, the service's start stands in for its nextUpdate.
        let trust = TrustState::with_crl_policy(roots, crl_policy(args, started));
        let ca = CaClient::new(url, trust.clone(), policy.clone(), spiffe_id.trust_domain());
        let enroller = Arc::new(Enroller::new(
            ca.clone(),
            spiffe_id,
            token,
            curve,
            args.ttl,
            role,
            trust.clone(),
            policy.clone(),
        ));
        let what = "enrolling with the CA";
        let credential = retry_until(what, deadline, limit, ENROLL_RETRY_BASE, || {
            enroller.enroll()
        })
        .await?;
        let identity = Identity::new(credential);
        let mut refresher = Refresher::new(ca, trust.clone(), events.clone());
        if let Err(e) = refresher.refresh_once().await {
            tracing::warn!(event = "refresh_failed", error = %e, "first CRL/bundle fetch failed: {e}; retrying every {:?}", args.crl_refresh);
        }
        let config = RotationConfig {
            rotate_at: args.rotate_at,
            ..RotationConfig::default()
        };
        let jitter = rotation::random_jitter();
        let next = rotation::next_rotation(&identity.current(), config.rotate_at, jitter);
        let stop = Stop::new();
        let rotate = stop.spawn(rotation::run(
            enroller,
            identity.clone(),
            events.clone(),
            config,
            jitter,
            stop.clone(),
        ));
        let refresh = stop.spawn(refresher.run(args.crl_refresh, stop.clone()));
        Ok(Services {
            mode: Mode::Enrolled,
            identity,
            trust: Some(trust),
            pins: None,
            policy,
            events,
            next_rotation: Some(next),
            tasks: vec![rotate, refresh],
            stop,
        })
    }

    /// The verifier a server uses for client certificates.
    pub fn client_cert_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>> {
        match (&self.trust, &self.pins) {
            (_, Some(pins)) => Ok(PinnedVerifier::new(pins.clone(), self.policy.clone())),
            (Some(trust), None) => Ok(MeshClientVerifier::new(
                trust.clone(),
                self.policy.clone(),
                true,
            )?),
            (None, None) => Err(MeshError::Config("no trust configured".into())),
        }
    }

    /// The verifier a client uses for servers; `server_id` additionally pins the SPIFFE ID.
    pub fn server_cert_verifier(
        &self,
        server_id: Option<pki::SpiffeId>,
    ) -> Result<Arc<dyn ServerCertVerifier>> {
        match (&self.trust, &self.pins) {
            (_, Some(pins)) => {
                if server_id.is_some() {
                    tracing::warn!(
                        "--server-id is not checked in pinned mode: the pin names the exact key"
                    );
                }
                Ok(PinnedVerifier::new(pins.clone(), self.policy.clone()))
            }
            (Some(trust), None) => Ok(MeshServerVerifier::new(
                trust.clone(),
                self.policy.clone(),
                server_id,
            )?),
            (None, None) => Err(MeshError::Config("no trust configured".into())),
        }
    }
}
