//! A running service's credential machinery: [`Mesh::start`] turns a [`ServiceConfig`] into the
//! current certificate (behind the TLS resolver), the trust state (roots and revocation list),
//! and the background loops that keep both fresh (`refresh`); then hands out what a listener or
//! a client needs: rustls configurations, the peer identification of the wire layer, the
//! close-when-invalid watch of a peer, readiness and metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, ServerConfig};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wire::tls::TlsPolicy;
use wire::CloseReason;

use crate::ca_client::{fetch_root_by_fingerprint, CaApi, CaClient};
use crate::clock::{Clock, SystemClock};
use crate::config::{
    CaRoot, CredentialSource, Enrollment, Mode, PinSource, Pinned, Role, ServiceConfig,
    StaticFiles, WorkloadApi,
};
use crate::credentials::files::Files;
use crate::credentials::{Credential, Identity};
use crate::crl_freshness::CrlPolicy;
use crate::enroll::{retry_until, Enroller, EnrollerSettings};
use crate::error::{MeshError, Result};
use crate::events::Events;
use crate::federation::FederatedCallers;
use crate::health::{assess, Health};
use crate::metrics::{CrlGauges, Gauges};
use crate::peer_watch::PeerTrust;
use crate::refresh::crl::Refresher;
use crate::refresh::files::FileWatch;
use crate::refresh::pins_file::PinsWatch;
use crate::refresh::rotation::{random_jitter, Rotation};
use crate::refresh::workload_api::{next_message, open, Want, WorkloadStream};
use crate::server::{AllowList, Peer, PeerIdentify};
use crate::stop::Stop;
use crate::tls::{pins_file, LivePins, MeshClientVerifier, MeshServerVerifier, PinnedVerifier};
use crate::trust::{Roots, TrustState};

/// First wait between attempts to reach the CA at start (then doubling, like renewal).
const ENROLL_RETRY_BASE: Duration = Duration::from_secs(1);

/// How long [`Mesh::shutdown`] waits for the background tasks before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long the root download may take per attempt.
const ROOT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A service's credential machinery, started. Dropping it stops the background tasks; call
/// [`Mesh::shutdown`] to let them end cleanly first.
pub struct Mesh {
    mode: Mode,
    role: Role,
    view: MeshView,
    pins: Option<Arc<LivePins>>,
    policy: TlsPolicy,
    next_rotation: Option<watch::Receiver<Option<OffsetDateTime>>>,
    tasks: Vec<JoinHandle<()>>,
    stop: Stop,
}

/// What readers of the running state share: the admin listener, the HTTP layer, clients.
#[derive(Clone)]
pub(crate) struct MeshView {
    identity: Arc<Identity>,
    trust: Option<Arc<TrustState>>,
    events: Arc<Events>,
    clock: Arc<dyn Clock>,
}

impl MeshView {
    pub(crate) fn credential(&self) -> Arc<Credential> {
        self.identity.current()
    }

    pub(crate) fn trust(&self) -> Option<&TrustState> {
        self.trust.as_deref()
    }

    pub(crate) fn health(&self) -> Health {
        assess(
            &self.identity.current(),
            self.trust.as_deref(),
            self.clock.now(),
        )
    }

    /// Prometheus text of the counters and the gauges of this moment.
    pub(crate) fn metrics(&self) -> String {
        let now = self.clock.now();
        let gauges = Gauges {
            certificate_expiry_seconds: Some(
                (self.identity.current().info.not_after - now).whole_seconds(),
            ),
            crl: self.trust.as_deref().map(|trust| {
                let revoked = trust.revoked();
                CrlGauges {
                    age_seconds: revoked
                        .oldest_this_update()
                        .map(|t| (now - t).whole_seconds()),
                    stale: trust
                        .has_crl_policy()
                        .then(|| trust.crl_status_at(now).gauge()),
                    revoked_entries: revoked.len(),
                }
            }),
        };
        self.events.metrics.render(&gauges, now)
    }
}

/// Closes connections whose peer certificate became invalid.
#[derive(Clone)]
pub(crate) struct PeerWatcher {
    judge: PeerTrust,
    clock: Arc<dyn Clock>,
}

impl PeerWatcher {
    pub(crate) fn closed_when_invalid(
        &self,
        peer: &Peer,
    ) -> impl Future<Output = CloseReason> + Send + 'static {
        // The peer itself (a reference count), not a copy of what the watch reads from it:
        // this future lives as long as the connection.
        let peer = peer.clone();
        let (judge, clock) = (self.judge.clone(), self.clock.clone());
        async move {
            let reason =
                crate::peer_watch::close_when_invalid(peer.watched(), judge, &*clock).await;
            let serial = peer.serial();
            CloseReason::new(reason, format!("peer certificate {serial} {reason}"))
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // Request the stop first: a task being polled right now on another worker sees it and
        // stays quiet about errors caused by the teardown.
        self.stop.request();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// How old a CRL may get; until the first one arrives, the service's start stands in for its
/// nextUpdate.
fn crl_policy(config: &ServiceConfig, started: OffsetDateTime) -> CrlPolicy {
    CrlPolicy {
        max_staleness: time::Duration::try_from(config.revocation.max_staleness)
            .unwrap_or(time::Duration::MAX),
        no_crl_since: started,
    }
}

impl Mesh {
    /// Checks `config`, loads or obtains the first certificate (an enrolled service retries
    /// reaching the CA for `enroll_timeout`) and starts the background tasks, on the system
    /// clock.
    pub async fn start(config: ServiceConfig) -> Result<Mesh> {
        Mesh::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`Mesh::start`] on `clock` (tests pass `clock::TokioClock` to run on tokio's paused
    /// time).
    pub async fn start_with_clock(config: ServiceConfig, clock: Arc<dyn Clock>) -> Result<Mesh> {
        config.validate()?;
        let started = clock.now();
        let policy = TlsPolicy::mesh().with_extra_groups(&config.tls.extra_groups)?;
        let events = Events::new();
        let mut mesh = match &config.credentials {
            CredentialSource::Enrolled(e) => {
                Self::start_enrolled(&config, e, policy, events, clock, started).await?
            }
            CredentialSource::StaticFiles(f) => {
                Self::start_static(&config, f, policy, events, clock, started)?
            }
            CredentialSource::Pinned(p) => Self::start_pinned(&config, p, policy, events, clock)?,
            CredentialSource::WorkloadApi(w) => {
                Self::start_workload_api(&config, w, policy, events, clock, started).await?
            }
        };
        let health = mesh.stop.spawn(crate::health::log_transitions(
            mesh.view.identity.clone(),
            mesh.view.trust.clone(),
            mesh.view.clock.clone(),
        ));
        mesh.tasks.push(health);
        Ok(mesh)
    }

    fn assemble(
        mode: Mode,
        role: Role,
        view: MeshView,
        pins: Option<Arc<LivePins>>,
        policy: TlsPolicy,
    ) -> Mesh {
        Mesh {
            mode,
            role,
            view,
            pins,
            policy,
            next_rotation: None,
            tasks: Vec::new(),
            stop: Stop::new(),
        }
    }

    fn start_static(
        config: &ServiceConfig,
        files: &StaticFiles,
        policy: TlsPolicy,
        events: Arc<Events>,
        clock: Arc<dyn Clock>,
        started: OffsetDateTime,
    ) -> Result<Mesh> {
        let watched = Files {
            cert: files.cert.clone(),
            key: files.key.clone(),
            roots: Some(files.roots.clone()),
            crl: files.crl.clone(),
        };
        let first = watched.load(&policy, config.role, clock.now())?;
        let trust = first.roots.clone().map(|roots| match &files.crl {
            // A CRL file makes the service answer "revoked?", so it must not go stale.
            Some(_) => {
                TrustState::with_crl_policy(roots, crl_policy(config, started), clock.clone())
            }
            None => TrustState::with_clock(roots, clock.clone()),
        });
        if let (Some(trust), Some(revoked)) = (&trust, first.revoked.clone()) {
            trust.set_revoked(revoked, true);
        }
        let view = MeshView {
            identity: Identity::new(first.credential.clone()),
            trust,
            events,
            clock,
        };
        let mut mesh = Mesh::assemble(Mode::Static, config.role, view, None, policy);
        mesh.watch_files(watched, first.digest, files.reload_interval, None);
        Ok(mesh)
    }

    fn start_pinned(
        config: &ServiceConfig,
        pinned: &Pinned,
        policy: TlsPolicy,
        events: Arc<Events>,
        clock: Arc<dyn Clock>,
    ) -> Result<Mesh> {
        let watched = Files {
            cert: pinned.cert.clone(),
            key: pinned.key.clone(),
            roots: None,
            crl: None,
        };
        // A pins file that cannot be used stops the start, like the certificate files.
        let (live, pins_watch) = match &pinned.pins {
            PinSource::List(pins) => (LivePins::new(pins.clone()), None),
            PinSource::File(path) => {
                let file = pins_file::read(path)?;
                let live = LivePins::new(file.pins);
                let watch = PinsWatch {
                    path: path.clone(),
                    live: live.clone(),
                    published: file.digest,
                    last_failed: None,
                };
                (live, Some(watch))
            }
        };
        let first = watched.load(&policy, config.role, clock.now())?;
        let view = MeshView {
            identity: Identity::new(first.credential.clone()),
            trust: None,
            events,
            clock,
        };
        let mut mesh = Mesh::assemble(Mode::Pinned, config.role, view, Some(live), policy);
        mesh.watch_files(watched, first.digest, pinned.reload_interval, pins_watch);
        Ok(mesh)
    }

    fn watch_files(
        &mut self,
        files: Files,
        digest: String,
        interval: Duration,
        pins: Option<PinsWatch>,
    ) {
        let role = self.role;
        let watch = FileWatch {
            files,
            identity: self.view.identity.clone(),
            trust: self.view.trust.clone(),
            policy: self.policy.clone(),
            role,
            events: self.view.events.clone(),
            clock: self.view.clock.clone(),
            interval,
            published: digest,
            last_failed: None,
            pins,
        };
        let task = self
            .stop
            .spawn(crate::refresh::run(watch, self.stop.clone()));
        self.tasks.push(task);
    }

    /// Workload API mode: waits (up to `start_timeout`, retrying with backoff) for the agent
    /// to offer this process an SVID, then follows the stream. A workload no registration
    /// entry matches is retried too: an entry created at the same time as the workload reaches
    /// the agent within its entry refresh; after the time limit the start fails with the
    /// agent's PERMISSION_DENIED and the selectors it saw.
    async fn start_workload_api(
        config: &ServiceConfig,
        source: &WorkloadApi,
        policy: TlsPolicy,
        events: Arc<Events>,
        clock: Arc<dyn Clock>,
        started: OffsetDateTime,
    ) -> Result<Mesh> {
        let want = Want {
            socket: source.socket.clone(),
            spiffe_id: source.spiffe_id.clone(),
            policy: policy.clone(),
            role: config.role,
        };
        let limit = source.start_timeout;
        let deadline = tokio::time::Instant::now() + limit;
        let (stream, first) = retry_until(
            "getting an SVID from the Workload API",
            deadline,
            limit,
            ENROLL_RETRY_BASE,
            || {
                let (want, clock) = (want.clone(), clock.clone());
                async move {
                    let mut stream = open(&want.socket).await?;
                    let message = next_message(&mut stream, &want.socket).await?;
                    let loaded = want.load(&message, clock.now())?;
                    Ok((stream, loaded))
                }
            },
        )
        .await?;
        let Some(roots) = first.roots.clone() else {
            // `credentials::workload_api::load` always returns the bundle's roots.
            return Err(MeshError::WorkloadApi {
                socket: source.socket.clone(),
                reason: "the agent sent no bundle".into(),
            });
        };
        let trust = TrustState::with_crl_policy(roots, crl_policy(config, started), clock.clone());
        if let Some(revoked) = first.revoked.clone() {
            trust.set_revoked(revoked, false);
        }
        let identity = Identity::new(first.credential.clone());
        let follow = WorkloadStream {
            want,
            stream: Some(stream),
            identity: identity.clone(),
            trust: trust.clone(),
            events: events.clone(),
            clock: clock.clone(),
            published: first.digest,
            attempt: 0,
        };
        let view = MeshView {
            identity,
            trust: Some(trust),
            events,
            clock,
        };
        let mut mesh = Mesh::assemble(Mode::WorkloadApi, config.role, view, None, policy);
        let task = mesh
            .stop
            .spawn(crate::refresh::run(follow, mesh.stop.clone()));
        mesh.tasks.push(task);
        Ok(mesh)
    }

    async fn start_enrolled(
        config: &ServiceConfig,
        enrollment: &Enrollment,
        policy: TlsPolicy,
        events: Arc<Events>,
        clock: Arc<dyn Clock>,
        started: OffsetDateTime,
    ) -> Result<Mesh> {
        // The join token is read (an empty one refused) before the CA is contacted: a wrong
        // token path fails at once with its cause, not after --enroll-timeout spent reaching
        // the CA. It is read again when the CA is asked (docs/cli.md).
        enrollment.token.read()?;
        let urls = enrollment.ca_urls.clone();
        // The CA may not be up yet (services started together): retry reaching it, bounded.
        let limit = enrollment.enroll_timeout;
        let deadline = tokio::time::Instant::now() + limit;
        let roots = match &enrollment.root {
            CaRoot::Fingerprint(fp) => {
                retry_until(
                    "downloading the CA root",
                    deadline,
                    limit,
                    ENROLL_RETRY_BASE,
                    || fetch_root_by_fingerprint(&urls, fp, &policy, ROOT_FETCH_TIMEOUT),
                )
                .await?
            }
            CaRoot::File(path) => Roots::from_pem(&pki::files::read(path)?)?,
        };
        // Before the first CRL arrives, the service's start stands in for its nextUpdate.
        let trust = TrustState::with_crl_policy(roots, crl_policy(config, started), clock.clone());
        let ca: Arc<dyn CaApi> = Arc::new(CaClient::new(
            urls,
            trust.clone(),
            policy.clone(),
            enrollment.spiffe_id.trust_domain(),
        ));
        let enroller = Arc::new(Enroller::new(
            ca.clone(),
            EnrollerSettings {
                spiffe_id: enrollment.spiffe_id.clone(),
                token: enrollment.token.clone(),
                curve: enrollment.curve,
                ttl: enrollment.ttl,
                role: config.role,
            },
            trust.clone(),
            policy.clone(),
        ));
        let credential = retry_until(
            "enrolling with the CA",
            deadline,
            limit,
            ENROLL_RETRY_BASE,
            || enroller.enroll(),
        )
        .await?;
        let identity = Identity::new(credential);
        let interval = config.revocation.crl_refresh;
        let mut refresher = Refresher::new(ca, trust.clone(), events.clone(), interval)
            .with_federation(enrollment.spiffe_id.trust_domain().clone());
        if let Err(e) = refresher.refresh_once().await {
            tracing::warn!(event = "refresh_failed", error = %e, "first CRL/bundle fetch failed: {e}; retrying every {}", pki::timefmt::human_std(interval));
        }
        let rotation = Rotation::new(
            enroller,
            identity.clone(),
            events.clone(),
            clock.clone(),
            enrollment.rotate_at.get(),
            random_jitter(),
        );
        let view = MeshView {
            identity,
            trust: Some(trust),
            events,
            clock,
        };
        let mut mesh = Mesh::assemble(Mode::Enrolled, config.role, view, None, policy);
        mesh.next_rotation = Some(rotation.next_rotation());
        let rotate = mesh
            .stop
            .spawn(crate::refresh::run(rotation, mesh.stop.clone()));
        let refresh = mesh
            .stop
            .spawn(crate::refresh::run(refresher, mesh.stop.clone()));
        mesh.tasks.extend([rotate, refresh]);
        Ok(mesh)
    }

    /// Stops the background tasks and waits for them to end (aborting any that take longer
    /// than a moment). Call it before the runtime goes away, so that no refresh or renewal is
    /// torn down half-way and reported as a failure.
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        crate::stop::stop_and_join(&self.stop, tasks, SHUTDOWN_GRACE).await;
    }

    /// Where the certificate comes from.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The role the certificate is validated for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The certificate presented now.
    pub fn credential(&self) -> Arc<Credential> {
        self.view.identity.current()
    }

    /// A receiver that changes whenever a new certificate is published (rotation, re-enrollment,
    /// file reload); connection pools use it to stop reusing connections made with the old one.
    pub fn credential_changes(&self) -> watch::Receiver<u64> {
        self.view.identity.subscribe()
    }

    /// The roots and revocation list trusted now (None in pinned mode).
    pub fn trust(&self) -> Option<&Arc<TrustState>> {
        self.view.trust.as_ref()
    }

    /// Accepts, as callers from federated trust domains, exactly the IDs of `allow` outside
    /// this service's own trust domain (an empty list: none). `serve_http` calls it with its
    /// `--allow-id` list; a program serving raw streams calls it itself.
    pub fn accept_federated_callers(&self, allow: &AllowList) {
        let (Some(trust), Some(own)) = (self.trust(), self.view.credential().spiffe_id()) else {
            return;
        };
        trust.set_federated_callers(FederatedCallers::from_allow_list(own.trust_domain(), allow));
    }

    /// The pins trusted now (pinned mode only).
    pub fn pins(&self) -> Option<&Arc<LivePins>> {
        self.pins.as_ref()
    }

    /// The TLS policy (the mesh's, plus the configured extra groups).
    pub fn policy(&self) -> &TlsPolicy {
        &self.policy
    }

    /// The next planned rotation (enrolled mode).
    pub fn next_rotation(&self) -> Option<OffsetDateTime> {
        self.next_rotation.as_ref().and_then(|rx| *rx.borrow())
    }

    /// Readiness now (what `/readyz` answers).
    pub fn health(&self) -> Health {
        self.view.health()
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        self.view.metrics()
    }

    /// The counters of this service's listeners (`mesh_connections_*`); give them to a
    /// `wire::Listener` so its refusals and closes show in [`Mesh::metrics`].
    pub fn connection_counters(&self) -> Arc<wire::Counters> {
        self.view.events.metrics.connections.clone()
    }

    /// The verifier a server uses for client certificates.
    fn client_cert_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>> {
        match (&self.view.trust, &self.pins) {
            (_, Some(pins)) => Ok(PinnedVerifier::new(pins.clone(), self.policy.clone())),
            (Some(trust), None) => Ok(MeshClientVerifier::new(
                trust.clone(),
                self.policy.clone(),
                true,
            )?),
            // Every mode has either roots or pins (the configuration types say so).
            (None, None) => Err(MeshError::Config(crate::error::ConfigError::NoPins)),
        }
    }

    /// The verifier a client uses for servers; `server_id` additionally pins the SPIFFE ID.
    fn server_cert_verifier(
        &self,
        server_id: Option<pki::SpiffeId>,
    ) -> Result<Arc<dyn ServerCertVerifier>> {
        match (&self.view.trust, &self.pins) {
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
            (None, None) => Err(MeshError::Config(crate::error::ConfigError::NoPins)),
        }
    }

    /// A rustls server configuration: client certificates required and verified against the
    /// current trust (or pins), our certificate from the hot-swapping resolver, the policy of
    /// `wire::tls` (TLS 1.3 only, no resumption), and `alpn` (`wire::tls::ALPN_HTTP` for HTTP,
    /// `ALPN_NONE` for raw streams).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<ServerConfig> {
        Ok(self.policy.server_config(
            self.client_cert_verifier()?,
            self.view.identity.resolver(),
            alpn,
        )?)
    }

    /// A rustls client configuration presenting our certificate and verifying the server:
    /// chain to the current roots (or pins), its DNS/IP name, revocation, and `server_id` when
    /// given.
    pub fn client_config(
        &self,
        server_id: Option<pki::SpiffeId>,
        alpn: &[&[u8]],
    ) -> Result<ClientConfig> {
        Ok(self.policy.client_config(
            self.server_cert_verifier(server_id)?,
            Some(self.view.identity.resolver()),
            alpn,
        )?)
    }

    /// The peer identification for a `wire::Listener` running another protocol than HTTP
    /// (log lines and `mesh_handshakes_total` like the HTTP server's).
    pub fn identify(&self) -> PeerIdentify {
        PeerIdentify {
            events: self.view.events.clone(),
            trust: self.view.trust.clone(),
        }
    }

    /// Resolves once `peer`'s certificate expires, is revoked, no longer chains to a trusted
    /// root or is unpinned (with the reason: `expired`, `revoked`, `untrusted`, `unpinned`); a
    /// connection's protocol closes the connection then.
    pub fn close_when_invalid(
        &self,
        peer: &Peer,
    ) -> impl Future<Output = CloseReason> + Send + 'static {
        self.watcher().closed_when_invalid(peer)
    }

    pub(crate) fn events(&self) -> &Arc<Events> {
        &self.view.events
    }

    pub(crate) fn view(&self) -> MeshView {
        self.view.clone()
    }

    pub(crate) fn watcher(&self) -> PeerWatcher {
        PeerWatcher {
            judge: self.peer_trust(),
            clock: self.view.clock.clone(),
        }
    }

    /// What the open-connection watchers judge a peer against.
    pub(crate) fn peer_trust(&self) -> PeerTrust {
        PeerTrust {
            trust: self.view.trust.clone(),
            pins: self.pins.clone(),
        }
    }

    pub(crate) fn identity(&self) -> &Arc<Identity> {
        &self.view.identity
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.view.clock
    }
}
