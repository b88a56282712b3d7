//! The certificate authority's decisions: who gets which certificate, renewal, revocation and
//! the CRL. No HTTP types here; the API layer only translates.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use pki::clock::Clock;
use pki::crl::RevokedEntry;
use pki::policy::{IssuancePolicy, IssuedCert, LeafRequest};
use pki::timefmt::rfc3339;
use pki::{CaMaterial, CertInfo, SpiffeId, TrustDomain};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::error::{AuthorityError, Kind};
use crate::metrics::Metrics;
use crate::store::{
    CertRecord, IssueKind, Presented, Redeem, RenewOutcome, RenewalRequest, Revoke, Store,
    StoreError,
};
use crate::tokens;

mod agent;
mod federated;
mod intermediate_life;
mod join_tokens;
mod ocsp;
mod overview;
mod roots;
mod sign_retry;

pub use intermediate_life::{IntermediateLife, THRESHOLDS};
pub use join_tokens::{revoke_outcome, NewToken, TokenRequest, DEFAULT_TOKEN_TTL};
pub use ocsp::OcspResponderMode;
pub use overview::{AuditStatus, CrlStatus, Overview};
pub use roots::RootSet;

pub use agent::{
    AgentEntries, AgentEntry, IssuedJwt, BUNDLE_REFRESH_HINT, JWT_DEFAULT_TTL, JWT_MAX_TTL,
    MAX_AUDIENCES,
};

/// How long a CRL is valid by default (`--crl-validity`); services enforce freshness against
/// nextUpdate.
pub const CRL_VALIDITY: Duration = Duration::hours(1);

/// How long a health probe's verdict is reused: each probe commits a write (an fsync), and
/// `/healthz` is unauthenticated, so polling must not be able to hammer the disk.
pub const HEALTH_CACHE: Duration = Duration::seconds(1);

/// What the operator decided for this CA (the `mtls-ca` serve options).
#[derive(Clone, Debug)]
pub struct AuthorityConfig {
    /// The one trust domain this CA issues for.
    pub trust_domain: TrustDomain,
    /// Lifetime when a request names none (`--cert-duration`).
    pub default_ttl: Duration,
    /// Longest lifetime; longer requests are clamped to it (`--max-duration`).
    pub max_ttl: Duration,
    /// The identity that may list every certificate and revoke any (`--admin-id`).
    pub admin_id: Option<SpiffeId>,
    /// How leaves are built (backdating).
    pub policy: IssuancePolicy,
}

/// A signing request as received (token already extracted from the Authorization header).
pub struct SignInput<'a> {
    /// The join token from the `Authorization: Bearer` header.
    pub token: &'a str,
    /// The CSR, PEM.
    pub csr_pem: &'a str,
    /// The SPIFFE ID asked for; must be the one the token authorises.
    pub requested_id: &'a str,
    /// The lifetime asked for (`"1h"`), if any.
    pub ttl: Option<&'a str>,
}

/// What the caller gets back for a sign or renew.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Issued {
    /// The new certificate, PEM.
    pub certificate: String,
    /// The issuer chain up to the root, PEM: the intermediate then the root for a two-tier
    /// CA, the root alone for a single-tier one. Holders send the certificates that are not
    /// self-signed after their leaf.
    pub chain: Vec<String>,
    /// NotAfter of the certificate.
    #[serde(serialize_with = "pki::timefmt::serialize")]
    pub expires_at: OffsetDateTime,
    /// Serial, lowercase hex.
    pub serial: String,
    /// The SPIFFE ID it carries.
    pub spiffe_id: String,
}

/// How many serials one issuance draws before giving up (each taken one is logged).
const SERIAL_DRAWS: usize = 3;

/// Draws the serial of each new certificate: [`pki::serial::random_serial`], or what a test
/// injects with [`Authority::with_serial_source`].
pub type SerialSource = Arc<dyn Fn() -> Result<[u8; 20], pki::PkiError> + Send + Sync>;

/// Why a CRL could not be made: the store (perhaps unreachable: then the cached one may do) or
/// signing it.
enum CrlError {
    Store(StoreError),
    Signing(AuthorityError),
}

impl From<StoreError> for CrlError {
    fn from(e: StoreError) -> Self {
        CrlError::Store(e)
    }
}

struct CachedCrl {
    /// Fingerprint of the root that signed it: after a root switch the cache of another
    /// signer is never served.
    signer: String,
    epoch: u64,
    this_update: OffsetDateTime,
    der: Arc<Vec<u8>>,
    /// When the first listed certificate expires and must leave the CRL.
    first_expiry: Option<OffsetDateTime>,
}

/// The certificate authority: every decision about tokens, identities, lifetimes, renewal,
/// revocation and the CRL, against a [`Store`] and by an injected [`Clock`]. No HTTP here; the
/// API layer (`crate::api`) only translates.
pub struct Authority {
    /// The root that signs, the old one of a rotation and what the bundle publishes after the
    /// active root: swapped whole when the store's rotation state moves (`root_follow.rs`).
    roots: ArcSwap<RootSet>,
    /// The old root's CRL, cached like `crl`.
    previous_crl: Mutex<Option<CachedCrl>>,
    /// Why the roots served lag behind the store's rotation state, if they do (`/healthz`).
    roots_behind: Mutex<Option<String>>,
    /// What is wrong with the data directory while the CA runs, if anything: a `root.key`
    /// next to the intermediate (`intermediate_follow.rs`, `/healthz`).
    datadir_unsafe: Mutex<Option<String>>,
    store: Arc<dyn Store>,
    cfg: AuthorityConfig,
    /// Counters rendered by `/metrics`.
    pub metrics: Arc<Metrics>,
    crl: Mutex<Option<CachedCrl>>,
    /// Signed OCSP answers of the current revocation epoch (`authority/ocsp.rs`).
    ocsp: Mutex<ocsp::OcspCache>,
    /// nextUpdate - thisUpdate of every CRL; re-signed at half of it.
    crl_validity: Duration,
    /// The last health verdict and when it was reached.
    health: Mutex<Option<(OffsetDateTime, Result<(), String>)>>,
    /// Every decision by time (issuance, token expiry, CRL dates, health cache) reads it.
    clock: Arc<dyn Clock>,
    /// Signs JWT-SVIDs (`<data-dir>/jwt.key`, or the token key `jwt.pkcs11` names); None: the
    /// CA issues none.
    jwt: Option<Arc<pki::jwt_svid::JwtSigner>>,
    /// `spiffe_sequence` of the SPIFFE bundle: the Unix time this authority was built, so it
    /// grows with every start (when the roots or the JWT key can change), and raised again at
    /// every root switch.
    bundle_sequence: AtomicU64,
    /// Where serials come from.
    serials: SerialSource,
    /// Which intermediate-life warnings were logged (`authority/intermediate_life.rs`).
    life_warnings: intermediate_life::LifeWarnings,
}

type Res<T> = Result<T, AuthorityError>;

impl Authority {
    /// An authority signing with `ca`, publishing `extra_roots` in the bundle, recording in
    /// `store` and reading the time from `clock`.
    pub fn new(
        ca: impl Into<Arc<CaMaterial>>,
        extra_roots: Vec<CertificateDer<'static>>,
        store: Arc<dyn Store>,
        cfg: AuthorityConfig,
        clock: Arc<dyn Clock>,
    ) -> Authority {
        Authority {
            roots: ArcSwap::from_pointee(RootSet {
                active: ca.into(),
                previous: None,
                bundle_extra: extra_roots,
            }),
            previous_crl: Mutex::new(None),
            roots_behind: Mutex::new(None),
            datadir_unsafe: Mutex::new(None),
            store,
            cfg,
            metrics: Arc::new(Metrics::default()),
            crl: Mutex::new(None),
            ocsp: Mutex::default(),
            crl_validity: CRL_VALIDITY,
            health: Mutex::new(None),
            bundle_sequence: AtomicU64::new(clock.now().unix_timestamp().max(0) as u64),
            clock,
            jwt: None,
            serials: Arc::new(pki::serial::random_serial),
            life_warnings: Default::default(),
        }
    }

    /// Signs JWT-SVIDs with `signer` (the CA's `jwt.key` or token key) and publishes its public key in the
    /// SPIFFE bundle.
    pub fn with_jwt_signer(mut self, signer: pki::jwt_svid::JwtSigner) -> Authority {
        self.jwt = Some(Arc::new(signer));
        self
    }

    /// The authority's current time (its clock's).
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Draws serials from `serials` instead of the random source (tests that need a
    /// collision).
    pub fn with_serial_source(mut self, serials: SerialSource) -> Authority {
        self.serials = serials;
        self
    }

    /// Sets how long each CRL is valid (`--crl-validity`, default [`CRL_VALIDITY`]).
    pub fn with_crl_validity(mut self, validity: Duration) -> Authority {
        self.crl_validity = validity;
        self
    }

    /// The CA material that signs now (certificate and key); after a root switch, the new one.
    pub fn ca(&self) -> Arc<CaMaterial> {
        self.roots.load().active.clone()
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &AuthorityConfig {
        &self.cfg
    }

    /// Audits the issuance of the CA's own API certificate (kept in memory, never stored).
    pub fn record_api_cert(&self, leaf_der: &[u8]) -> Res<()> {
        let info = CertInfo::from_der(leaf_der).map_err(AuthorityError::internal)?;
        self.store.record_event(
            "api_cert",
            &serde_json::json!({
                "v": crate::store::details::VERSION,
                "serial": info.serial_hex,
                "spiffe_id": info.spiffe_id().map(|i| i.to_string()),
                "dns": info.dns,
                "ips": info.ips,
                "not_after": info.not_after.unix_timestamp(),
                "fingerprint": info.fingerprint,
            }),
        )?;
        Ok(())
    }

    /// `GET /api/v1/bundle`: our root first, then `extra_roots` as `serve` prepared them from
    /// `--bundle-extra`: each extra self-signed root followed by a cross-certificate for it
    /// signed by our root, then any certificates the operator gave that are not self-signed
    /// (their own cross-certificates). Services trust only the self-signed roots, and a new one
    /// only when a cross-certificate from a root they already trust vouches for it
    /// (docs/ca-api.md).
    pub fn bundle_pem(&self) -> String {
        let roots = self.roots.load();
        let mut out = roots.active.root_pem();
        for root in &roots.bundle_extra {
            out.push_str(&pki::pem::encode("CERTIFICATE", root));
        }
        out
    }

    /// Whether the CA can record what it issues right now (see `Store::health_probe`); Err is
    /// the reason. Verdicts are reused for `HEALTH_CACHE`; concurrent callers wait for one probe.
    /// A clock that went backwards since the verdict gets a fresh probe.
    pub fn health(&self) -> Result<(), String> {
        self.roots_current()?;
        self.keys_sign()?;
        self.datadir_safe()?;
        let mut cache = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now();
        if let Some((at, verdict)) = cache.as_ref() {
            let age = now - *at;
            if !age.is_negative() && age < HEALTH_CACHE {
                return verdict.clone();
            }
        }
        let verdict = self
            .keys_present()
            .and_then(|()| self.store.health_probe(now));
        if let Err(reason) = &verdict {
            tracing::warn!(reason = %reason, "health probe failed");
        }
        *cache = Some((now, verdict.clone()));
        verdict
    }

    /// Err naming the token problem while the CA key's (or the JWT-SVID key's) device failed
    /// its last signature: the CA cannot sign until the operator fixes the token. Cleared by
    /// the next signature that succeeds (the token came back).
    fn keys_sign(&self) -> Result<(), String> {
        if let Some(reason) = self.ca().key().device_failure() {
            return Err(format!("the CA key's last signature failed: {reason}"));
        }
        match self.jwt.as_ref().and_then(|j| j.device_failure()) {
            Some(reason) => Err(format!(
                "the JWT-SVID key's last signature failed: {reason}"
            )),
            None => Ok(()),
        }
    }

    /// Err naming the token problem when the device holding the CA key (or the JWT-SVID key)
    /// no longer has it or does not answer: looked up without signing, so `/healthz` tells
    /// before the first request fails (at most once per `HEALTH_CACHE`, with the store probe).
    fn keys_present(&self) -> Result<(), String> {
        self.ca()
            .key()
            .device_probe()
            .map_err(|reason| format!("the CA key cannot be used: {reason}"))?;
        match self.jwt.as_ref().map(|j| j.device_probe()) {
            Some(Err(reason)) => Err(format!("the JWT-SVID key cannot be used: {reason}")),
            _ => Ok(()),
        }
    }

    /// Sequence number of the audit chain's last entry (0 when empty), for the metric.
    pub fn audit_head_seq(&self) -> Res<i64> {
        Ok(self.store.audit_head()?.map(|h| h.seq).unwrap_or(0))
    }

    /// Runs `f`, counting a refusal under its code.
    fn counted<T>(&self, f: impl FnOnce() -> Res<T>) -> Res<T> {
        let out = f();
        if let Err(e) = &out {
            self.metrics.reject(e.code);
            self.metrics
                .recent_refusals
                .record(self.clock.now(), e.code, &e.message);
            if e.kind != Kind::Internal {
                tracing::warn!(code = e.code, reason = %e.message, "request refused");
            }
        }
        out
    }

    /// First issuance against a one-time join token.
    pub fn sign(&self, input: &SignInput<'_>) -> Res<Issued> {
        self.counted(|| self.sign_inner(input, self.clock.now()))
    }

    fn sign_inner(&self, input: &SignInput<'_>, now: OffsetDateTime) -> Res<Issued> {
        let token_hash = tokens::hash(input.token);
        let token = self.store.find_token(&token_hash)?.ok_or_else(|| {
            AuthorityError::unauthenticated(
                "token_unknown",
                "the join token is not known to this CA",
            )
        })?;
        // `mtls-ca token` refuses reserved IDs, but a token written by an older version or
        // straight into the database must not mint the CA's own identity either.
        refuse_reserved(&parse_id(&token.spiffe_id)?)?;
        // A used token is not refused yet: a retry whose first answer was lost gets the
        // certificate issued then (`sign_retried`), once its CSR is checked like a first one.
        let used = token.used_at.is_some();
        if !used && token.revoked_at.is_some() {
            return Err(token_revoked(&token));
        }
        if !used && token.expires_at <= now {
            return Err(AuthorityError::unauthenticated(
                "token_expired",
                format!("the join token expired at {}", rfc3339(token.expires_at)),
            ));
        }
        let requested = parse_id(input.requested_id)?;
        if used && requested.to_string() != token.spiffe_id {
            return Err(sign_retry::token_used(Some(format!(
                "it was for {}, not {requested}",
                token.spiffe_id
            ))));
        }
        if requested.to_string() != token.spiffe_id {
            return Err(AuthorityError::forbidden(
                "identity_not_authorised",
                format!(
                    "the join token is for {}, not {}",
                    token.spiffe_id, requested
                ),
            ));
        }
        let ttl = self.ttl(input.ttl)?;
        let csr = verify_csr(input.csr_pem)?;
        check_requested_names(&csr, &token.spiffe_id, &token.dns, &token.ips)?;
        if used {
            return self.sign_retried(&token, &requested, &csr.spki_der, now);
        }

        let req = self.leaf_request(&requested, &token.dns, &token.ips, &csr.spki_der, ttl, now)?;
        // The serial is not looked up before signing (a store read per certificate, a round
        // trip on PostgreSQL): a taken one is refused by the store's primary key, the
        // redemption then stores nothing, and the certificate is signed again under another.
        for _ in 0..SERIAL_DRAWS {
            let issued = self.sign_leaf(&req)?;
            let record = record_of(
                &issued,
                &requested,
                &token.dns,
                &token.ips,
                now,
                IssueKind::Sign,
                None,
            )?;
            match self.store.redeem_token(&token_hash, now, &record) {
                Err(e) if e.is_taken_serial() => serial_taken(&issued.serial_hex),
                outcome => {
                    return self.redeemed(&token_hash, outcome?, issued, &requested, &csr, now)
                }
            }
        }
        Err(serials_exhausted())
    }

    /// The answer to a join-token issuance whose redemption had `outcome`. When another
    /// request redeemed the token first, the certificate just signed is dropped (never stored,
    /// never returned) and a duplicate with the same CSR key gets the winner's.
    fn redeemed(
        &self,
        token_hash: &str,
        outcome: Redeem,
        issued: IssuedCert,
        requested: &SpiffeId,
        csr: &pki::VerifiedCsr,
        now: OffsetDateTime,
    ) -> Res<Issued> {
        match outcome {
            Redeem::Done => {}
            Redeem::AlreadyUsed => {
                drop(issued);
                return match self.store.find_token(token_hash)? {
                    // Revoked between the check above and the redemption: say so.
                    Some(token) if token.revoked_at.is_some() => Err(token_revoked(&token)),
                    Some(token) if token.used_at.is_some() => {
                        self.sign_retried(&token, requested, &csr.spki_der, now)
                    }
                    _ => Err(sign_retry::token_used(None)),
                };
            }
        }
        self.metrics.issued.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            event = "issue",
            serial = %issued.serial_hex,
            spiffe_id = %requested,
            not_after = %rfc3339(issued.not_after),
            "certificate issued"
        );
        Ok(self.response(issued, requested))
    }

    /// Renewal authenticated by the caller's current certificate (already verified against our
    /// roots and validity period by the TLS layer).
    pub fn renew(&self, peer: Option<&[u8]>, csr_pem: &str, ttl: Option<&str>) -> Res<Issued> {
        self.counted(|| self.renew_inner(peer, csr_pem, ttl, self.clock.now()))
    }

    fn renew_inner(
        &self,
        peer: Option<&[u8]>,
        csr_pem: &str,
        ttl: Option<&str>,
        now: OffsetDateTime,
    ) -> Res<Issued> {
        let (current, presented) = self.current_record(peer, now, "renewal")?;
        if current.kind == IssueKind::Agent {
            // An agent SVID lives only while its entry does: the agent mints a new one for as
            // long as the entry exists. Renewing it would let a workload keep the identity
            // after the entry is deleted.
            return Err(AuthorityError::forbidden(
                "not_renewable",
                format!(
                    "certificate {} is an agent-issued SVID; it is not renewed over /api/v1/renew: \
                     its agent obtains a new one while the registration entry exists",
                    current.serial
                ),
            ));
        }
        let id = parse_id(&current.spiffe_id)?;
        let ttl = self.ttl(ttl)?;
        let csr = verify_csr(csr_pem)?;
        let new_key = pki::sha256_hex(&csr.spki_der);
        if new_key == presented.spki_sha256 {
            return Err(AuthorityError::bad_request(
                "key_reused",
                format!(
                    "renewal needs a fresh key: the CSR carries the public key of certificate {} \
                     itself; generate a new key pair for the renewal",
                    current.serial
                ),
            ));
        }
        check_requested_names(&csr, &current.spiffe_id, &current.dns, &current.ips)?;
        let issued = self.issue(&id, &current.dns, &current.ips, &csr.spki_der, ttl, now)?;
        let record = record_of(
            &issued,
            &id,
            &current.dns,
            &current.ips,
            now,
            IssueKind::Renew,
            Some(current.serial.clone()),
        )?;
        let outcome = self.store.record_renewal(&RenewalRequest {
            presented_serial: &current.serial,
            presented_fingerprint: &presented.fingerprint,
            new_key_sha256: &new_key,
            cert: &record,
            now,
        })?;
        // In every case but Recorded the certificate just signed is dropped: never stored,
        // never returned.
        match outcome {
            RenewOutcome::Recorded => {
                self.metrics.renewed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    event = "renew",
                    old_serial = %current.serial,
                    serial = %issued.serial_hex,
                    spiffe_id = %id,
                    not_after = %rfc3339(issued.not_after),
                    "certificate renewed"
                );
                Ok(self.response(issued, &id))
            }
            RenewOutcome::Existing(earlier) => {
                tracing::info!(
                    event = "renew_retried",
                    old_serial = %current.serial,
                    serial = %earlier.serial,
                    "renewal repeated with the same key: returning the certificate issued then"
                );
                self.stored_response(*earlier)
            }
            RenewOutcome::ExistingRevoked { serial } => Err(AuthorityError::forbidden(
                "certificate_revoked",
                format!(
                    "certificate {} was already renewed with this key as {serial}, which has \
                     been revoked; enroll again with a new join token",
                    current.serial
                ),
            )),
            RenewOutcome::Replayed {
                renewed_as,
                revoked,
            } => {
                self.metrics
                    .revoked
                    .fetch_add(revoked.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    event = "suspected_key_theft",
                    presented_serial = %current.serial,
                    renewed_as = %renewed_as.join(","),
                    spiffe_id = %id,
                    revoked = %revoked.join(","),
                    "a certificate was renewed a second time with a different key: two parties \
                     hold its key; the whole lineage was revoked"
                );
                Err(AuthorityError::forbidden(
                    "renewal_replayed",
                    format!(
                        "certificate {} was already renewed (as {}) with a different key: \
                         suspected key theft. The lineage was revoked ({} certificate(s), the \
                         newest included); the workload must enroll again with a new join token",
                        current.serial,
                        renewed_as.join(", "),
                        revoked.len()
                    ),
                ))
            }
            RenewOutcome::Refused(state) => Err(presented_error(&state, &current.serial)),
        }
    }

    /// Revocation by the admin identity or by a holder of the same identity. Returns every
    /// serial revoked: the one named (unless it already was) and those renewed from it.
    pub fn revoke(
        &self,
        peer: Option<&[u8]>,
        serial: &str,
        reason: Option<&str>,
    ) -> Res<Vec<String>> {
        let now = self.clock.now();
        self.counted(|| {
            let (caller, _) = self.current_record(peer, now, "revocation")?;
            let serial = revoke_fields(serial, reason)?;
            let is_admin = self.is_admin(&caller.spiffe_id);
            let target = self.store.find_cert(&serial)?;
            // Authorise before revealing anything: to a non-admin an unknown serial and
            // someone else's serial look the same.
            if !is_admin && target.as_ref().is_none_or(|t| t.spiffe_id != caller.spiffe_id) {
                return Err(AuthorityError::forbidden(
                    "not_allowed",
                    format!(
                        "{} may revoke only certificates of its own identity, and serial {serial} \
                         is not one of them; only the admin identity or the holder may revoke a \
                         certificate",
                        caller.spiffe_id
                    ),
                ));
            }
            let unknown = || {
                AuthorityError::new(
                    Kind::NotFound,
                    "unknown_serial",
                    format!("no certificate with serial {serial} was issued by this CA"),
                )
            };
            target.ok_or_else(unknown)?;
            let actor = if is_admin { format!("admin {}", caller.spiffe_id) } else { format!("holder {}", caller.spiffe_id) };
            match self.store.revoke(&serial, reason, &actor, now)? {
                Revoke::Done { revoked } => {
                    self.metrics.revoked.fetch_add(revoked.len() as u64, Ordering::Relaxed);
                    for s in &revoked {
                        tracing::info!(event = "revoke", serial = %s, requested = %serial, actor = %actor, "certificate revoked");
                    }
                    Ok(revoked)
                }
                Revoke::AlreadyRevoked => Err(AuthorityError::new(
                    Kind::Conflict,
                    "already_revoked",
                    format!("certificate {serial} is already revoked"),
                )),
                Revoke::UnknownSerial => Err(unknown()),
            }
        })
    }

    /// All issued certificates, for the admin identity only.
    pub fn list(&self, peer: Option<&[u8]>) -> Res<Vec<CertRecord>> {
        let now = self.clock.now();
        self.counted(|| {
            self.require_admin(peer, now, "listing certificates")?;
            Ok(self.store.list_certs()?)
        })
    }

    /// The caller's standing certificate record, if it carries the admin identity: else 401
    /// (no certificate) or 403 `not_admin`, naming `what` was asked.
    fn require_admin(
        &self,
        peer: Option<&[u8]>,
        now: OffsetDateTime,
        what: &str,
    ) -> Res<CertRecord> {
        let (caller, _) = self.current_record(peer, now, what)?;
        if !self.is_admin(&caller.spiffe_id) {
            return Err(AuthorityError::forbidden(
                "not_admin",
                match &self.cfg.admin_id {
                    Some(admin) => format!(
                        "{what} needs the admin identity {admin}, not {}",
                        caller.spiffe_id
                    ),
                    None => {
                        format!("{what} needs an admin identity; start mtls-ca with --admin-id")
                    }
                },
            ));
        }
        Ok(caller)
    }

    /// Also signs a CRL with `previous`, the old root of a root rotation whose leaves may still
    /// be valid (`root_serving::ServingRoots::previous`).
    pub fn with_previous_root(self, previous: Option<Arc<CaMaterial>>) -> Authority {
        let roots = self.roots.load_full();
        self.roots.store(Arc::new(RootSet {
            active: roots.active.clone(),
            previous,
            bundle_extra: roots.bundle_extra.clone(),
        }));
        self
    }

    /// `GET /api/v1/crl?issuer=<sha256>`: the CRL signed by the root with this fingerprint:
    /// the active one, or the old root during a rotation (a CRL covers only its issuer's
    /// certificates, so services fetch one per trusted root). None for any other root.
    pub fn crl_of_root(&self, fingerprint: &str) -> Res<Option<Arc<Vec<u8>>>> {
        let fingerprint = fingerprint.to_ascii_lowercase();
        let roots = self.roots.load_full();
        if fingerprint == roots.active.root_fingerprint() {
            return self.crl_signed_by(&roots.active, &self.crl).map(Some);
        }
        match &roots.previous {
            Some(old) if old.root_fingerprint() == fingerprint => {
                self.crl_signed_by(old, &self.previous_crl).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The current DER CRL: re-signed after every revocation (by any process sharing the store)
    /// and whenever half of its validity has passed.
    ///
    /// While the database cannot be reached, the last CRL signed is served as long as it is
    /// still valid (its nextUpdate is ahead): services keep enforcing what was revoked, and
    /// a CRL's validity is exactly how long it may be served from a copy (docs/operations.md).
    pub fn crl(&self) -> Res<Arc<Vec<u8>>> {
        self.crl_signed_by(&self.ca(), &self.crl)
    }

    fn crl_signed_by(
        &self,
        signer: &CaMaterial,
        cache: &Mutex<Option<CachedCrl>>,
    ) -> Res<Arc<Vec<u8>>> {
        let now = self.clock.now();
        match self.crl_current(signer, cache, now) {
            Err(CrlError::Store(StoreError::Unreachable(cause))) => {
                let cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                match cache.as_ref() {
                    Some(c)
                        if now < c.this_update + self.crl_validity
                            && c.signer == signer.root_fingerprint() =>
                    {
                        self.metrics
                            .crl_served_stale
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            reason = %cause,
                            "the CA database cannot be reached: serving the last good CRL"
                        );
                        Ok(c.der.clone())
                    }
                    _ => Err(StoreError::Unreachable(cause).into()),
                }
            }
            other => other.map_err(|e| match e {
                CrlError::Store(e) => e.into(),
                CrlError::Signing(e) => e,
            }),
        }
    }

    fn crl_current(
        &self,
        signer: &CaMaterial,
        cache: &Mutex<Option<CachedCrl>>,
        now: OffsetDateTime,
    ) -> Result<Arc<Vec<u8>>, CrlError> {
        let epoch = self.store.revocation_epoch()?;
        let signer_fingerprint = signer.root_fingerprint();
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref() {
            let entry_expired = c.first_expiry.is_some_and(|t| t <= now);
            if c.epoch == epoch
                && now - c.this_update < self.crl_validity / 2
                && !entry_expired
                && c.signer == signer_fingerprint
            {
                return Ok(c.der.clone());
            }
        }
        let records = self.store.revoked_unexpired(now)?;
        let first_expiry = records.iter().map(|r| r.not_after).min();
        let revoked: Vec<RevokedEntry> = records
            .into_iter()
            .filter_map(|r| {
                r.revoked_at.map(|at| RevokedEntry {
                    serial_hex: r.serial,
                    revoked_at: at,
                    reason: r.revoke_reason,
                })
            })
            .collect();
        // CRL numbers must only grow: milliseconds since the epoch, raised by the store above
        // every number it handed out before (to any replica), so a clock that steps back or
        // disagrees with another replica's never makes a smaller one.
        let millis = (now.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
        let number = self.store.next_crl_number(millis)?;
        // The list is every revoked, unexpired certificate whatever its issuer: serials are
        // random and a verifier looks a certificate up under its own issuer's CRL only.
        let der = pki::crl::sign_crl(signer, &revoked, number, now, now + self.crl_validity)
            .map_err(|e| CrlError::Signing(AuthorityError::internal(e)))?;
        let der = Arc::new(der);
        *cache = Some(CachedCrl {
            signer: signer_fingerprint,
            epoch,
            this_update: now,
            der: der.clone(),
            first_expiry,
        });
        self.metrics.crl_generated.fetch_add(1, Ordering::Relaxed);
        Ok(der)
    }

    fn is_admin(&self, id: &str) -> bool {
        self.cfg
            .admin_id
            .as_ref()
            .is_some_and(|a| a.to_string() == id)
    }

    /// The stored record of the certificate the caller presented (and what it says), refusing
    /// unknown, revoked or expired ones. The TLS layer has already checked chain and validity;
    /// revocation is ours.
    fn current_record(
        &self,
        peer: Option<&[u8]>,
        now: OffsetDateTime,
        what: &str,
    ) -> Res<(CertRecord, CertInfo)> {
        let der = peer.ok_or_else(|| {
            AuthorityError::unauthenticated(
                "client_certificate_required",
                format!(
                    "{what} requires a client certificate issued by this CA, presented over mTLS"
                ),
            )
        })?;
        let info = CertInfo::from_der(der).map_err(AuthorityError::internal)?;
        let record = self
            .store
            .find_cert(&info.serial_hex)?
            .ok_or_else(|| presented_error(&Presented::Unknown, &info.serial_hex))?;
        record
            .standing(&info.fingerprint, now)
            .map_err(|state| presented_error(&state, &info.serial_hex))?;
        Ok((record, info))
    }

    fn ttl(&self, requested: Option<&str>) -> Res<Duration> {
        parse_ttl(requested, self.cfg.default_ttl, self.cfg.max_ttl)
    }

    fn issue(
        &self,
        id: &SpiffeId,
        dns: &[String],
        ips: &[IpAddr],
        spki: &[u8],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Res<IssuedCert> {
        let req = self.leaf_request(id, dns, ips, spki, ttl, now)?;
        // Serials are random (158 bits): a collision with a stored certificate is not expected,
        // but if one happens the certificate is signed again under a new serial rather than
        // refused. (Two replicas drawing the same new serial at once would still meet the
        // store's primary key: 500, nothing stored.) Join-token issuance skips this lookup and
        // retries on the primary key instead (`sign_inner`).
        for _ in 0..SERIAL_DRAWS {
            let serial = (self.serials)().map_err(AuthorityError::internal)?;
            let serial_hex = hex::encode(serial);
            if self.store.find_cert(&serial_hex)?.is_some() {
                serial_taken(&serial_hex);
                continue;
            }
            return self
                .cfg
                .policy
                .issue_with_serial(&req, &self.ca(), serial)
                .map_err(AuthorityError::internal);
        }
        Err(serials_exhausted())
    }

    /// The leaf `id` would get, refused when `id` may not be certified. Every issuance (sign,
    /// renew, agent) passes here: the last line of defence for the identity every CA client
    /// requires of the CA.
    fn leaf_request<'r>(
        &self,
        id: &'r SpiffeId,
        dns: &'r [String],
        ips: &'r [IpAddr],
        spki: &'r [u8],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Res<LeafRequest<'r>> {
        check_issuable(id, &self.cfg.trust_domain)?;
        self.intermediate_life();
        Ok(LeafRequest {
            spiffe_id: id,
            dns,
            ips,
            spki_der: spki,
            ttl,
            now,
        })
    }

    /// Signs `req` under a newly drawn serial, not looked up: the caller records it where a
    /// taken serial is refused.
    fn sign_leaf(&self, req: &LeafRequest<'_>) -> Res<IssuedCert> {
        let serial = (self.serials)().map_err(AuthorityError::internal)?;
        self.cfg
            .policy
            .issue_with_serial(req, &self.ca(), serial)
            .map_err(AuthorityError::internal)
    }

    fn response(&self, issued: IssuedCert, id: &SpiffeId) -> Issued {
        Issued {
            certificate: issued.pem,
            chain: self.chain_of(&issued.der),
            expires_at: issued.not_after,
            serial: issued.serial_hex,
            spiffe_id: id.to_string(),
        }
    }
}

/// Logs a drawn serial that a stored certificate already has (another is drawn).
fn serial_taken(serial: &str) {
    tracing::warn!(
        serial = %serial,
        "serial collision with a stored certificate: drawing another"
    );
}

fn serials_exhausted() -> AuthorityError {
    AuthorityError::internal(format!(
        "{SERIAL_DRAWS} serials drawn in a row were all taken: the serial source is broken"
    ))
}

/// The refusal for a presented certificate that no longer authorises its holder.
fn presented_error(state: &Presented, serial: &str) -> AuthorityError {
    match state {
        Presented::Unknown => AuthorityError::forbidden(
            "certificate_unknown",
            format!("certificate serial {serial} is not in this CA's records"),
        ),
        Presented::Mismatch => AuthorityError::forbidden(
            "certificate_unknown",
            format!("certificate serial {serial} does not match this CA's records"),
        ),
        Presented::Revoked => AuthorityError::forbidden(
            "certificate_revoked",
            format!("certificate {serial} is revoked"),
        ),
        Presented::Expired { not_after } => AuthorityError::unauthenticated(
            "certificate_expired",
            format!(
                "certificate {serial} expired at {}; enroll again with a join token",
                rfc3339(*not_after)
            ),
        ),
    }
}

/// The lifetime a request asks for (`ttl`), as the authority grants it: the default when absent
/// or blank, refused when not a duration or under one second, capped at `max_ttl`.
pub(crate) fn parse_ttl(
    requested: Option<&str>,
    default_ttl: Duration,
    max_ttl: Duration,
) -> Res<Duration> {
    let ttl = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => default_ttl,
        Some(s) => pki::duration::parse_time(s)
            .map_err(|e| AuthorityError::bad_request("bad_ttl", format!("ttl {e}")))?,
    };
    Ok(ttl.min(max_ttl))
}

pub(crate) fn parse_id(id: &str) -> Res<SpiffeId> {
    SpiffeId::parse(id).map_err(|e| AuthorityError::bad_request("bad_spiffe_id", e.to_string()))
}

/// An identity this CA may certify: not reserved for the CA and in its trust domain.
pub(crate) fn check_issuable(id: &SpiffeId, trust_domain: &TrustDomain) -> Res<()> {
    refuse_reserved(id)?;
    if id.trust_domain() != trust_domain {
        return Err(AuthorityError::forbidden(
            "wrong_trust_domain",
            format!(
                "this CA serves trust domain {trust_domain}, not {}",
                id.trust_domain()
            ),
        ));
    }
    Ok(())
}

/// `spiffe://<td>/ca` and everything under it belong to the CA's own API certificate; a
/// workload holding one could impersonate the CA to every service.
pub(crate) fn refuse_reserved(id: &SpiffeId) -> Res<()> {
    if id.is_reserved_for_ca() {
        return Err(AuthorityError::forbidden(
            "reserved_identity",
            format!(
                "{id} is reserved for the CA's own API certificate ({} and every ID under it); \
                 no workload certificate is issued for it",
                id.trust_domain().ca_id()
            ),
        ));
    }
    Ok(())
}

/// The serial (normalised to lowercase hex) and the reason of a revocation request, checked.
/// The refusal of a join token the operator revoked before use.
fn token_revoked(token: &crate::store::TokenRecord) -> AuthorityError {
    AuthorityError::unauthenticated(
        "token_revoked",
        format!(
            "the join token was revoked by the operator at {}; ask the operator for a new one (mtls-ca token)",
            token.revoked_at.map(rfc3339).unwrap_or_default()
        ),
    )
}

pub(crate) fn revoke_fields(serial: &str, reason: Option<&str>) -> Res<String> {
    let serial = pki::serial::normalize_hex(serial)
        .map_err(|e| AuthorityError::bad_request("bad_serial", e.to_string()))?;
    if let Some(r) = reason {
        if pki::crl::parse_reason(r).is_none() {
            return Err(AuthorityError::bad_request(
                "bad_reason",
                format!(
                    "unknown revocation reason {r:?}; use one of {}",
                    pki::crl::REASONS.join(", ")
                ),
            ));
        }
    }
    Ok(serial)
}

pub(crate) fn verify_csr(pem: &str) -> Res<pki::VerifiedCsr> {
    let csr = pki::csr::parse_and_verify(pem.as_bytes())
        .map_err(|e| AuthorityError::bad_request("bad_csr", e.to_string()))?;
    if csr.requests_ca {
        return Err(AuthorityError::bad_request(
            "csr_requests_ca",
            pki::PkiError::CsrRequestsCa.to_string(),
        ));
    }
    Ok(csr)
}

/// A CSR may repeat the authorised names or omit them, but may not ask for anything else.
fn check_requested_names(
    csr: &pki::VerifiedCsr,
    id: &str,
    dns: &[String],
    ips: &[IpAddr],
) -> Res<()> {
    let mut refused = Vec::new();
    refused.extend(
        csr.requested_dns
            .iter()
            .filter(|d| !dns.iter().any(|a| a.eq_ignore_ascii_case(d)))
            .map(|d| format!("DNS:{d}")),
    );
    refused.extend(
        csr.requested_ips
            .iter()
            .filter(|i| !ips.contains(i))
            .map(|i| format!("IP:{i}")),
    );
    refused.extend(
        csr.requested_uris
            .iter()
            .filter(|u| u.as_str() != id)
            .map(|u| format!("URI:{u}")),
    );
    if refused.is_empty() {
        return Ok(());
    }
    let allowed: Vec<String> = std::iter::once(format!("URI:{id}"))
        .chain(dns.iter().map(|d| format!("DNS:{d}")))
        .chain(ips.iter().map(|i| format!("IP:{i}")))
        .collect();
    Err(AuthorityError::forbidden(
        "san_not_allowed",
        format!(
            "the CSR asks for {} which the authorisation does not allow (allowed: {})",
            refused.join(", "),
            allowed.join(", ")
        ),
    ))
}

fn record_of(
    issued: &IssuedCert,
    id: &SpiffeId,
    dns: &[String],
    ips: &[IpAddr],
    now: OffsetDateTime,
    kind: IssueKind,
    renewed_from: Option<String>,
) -> Res<CertRecord> {
    Ok(CertRecord {
        serial: issued.serial_hex.clone(),
        spiffe_id: id.to_string(),
        dns: dns.to_vec(),
        ips: ips.to_vec(),
        not_before: issued.not_before,
        not_after: issued.not_after,
        issued_at: now,
        kind,
        renewed_from,
        fingerprint: pki::sha256_hex(&issued.der),
        pem: issued.pem.clone(),
        revoked_at: None,
        revoke_reason: None,
    })
}
