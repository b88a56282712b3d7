//! A running CA follows the store's root rotation state (`root_rotation.rs`) without a
//! restart: every [`POLL`] it reads the state and, when it changed, switches what it serves to
//! the new phase: the bundle (`/api/v1/bundle`, `/api/v1/bundle/spiffe`), the signer of
//! leaves, CRLs and OCSP answers, the roots its API accepts client certificates from, and its
//! own API certificate (docs/operations.md, "Root rotation").
//!
//! Everything the new phase needs is loaded and checked first (the new root's key file, an API
//! certificate issued with it); only then is anything switched. A replica that cannot switch
//! (typically `roots/<sha256>.key` not copied to it before `activate`) keeps serving the phase
//! it had, reports unhealthy on `/healthz` naming the missing file, counts the failure in
//! `mtls_ca_root_switch_failures_total`, logs it once per distinct reason, and tries again on
//! every poll: copying the file is enough to let it catch up.
//!
//! The same poll takes up a renewed intermediate of a two-tier CA (`intermediate_follow.rs`).
//! A two-tier CA's rotation (`root_rotation_two_tier.rs`) switches the same way; there the
//! new phase needs no key file (the intermediate key signs throughout, certified by the
//! active root: `root_serving.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pki::CaMaterial;
use rustls_pki_types::CertificateDer;

use crate::authority::{Authority, RootSet};
use crate::datadir::DataDir;
use crate::intermediate_follow::IntermediateFollower;
use crate::root_rotation::{der_of, load_state, Phase, RotationState};
use crate::root_serving::roots_for;
use crate::store::Store;
use crate::tls::{ApiClientVerifier, ApiIdentity};

/// How often a running CA reads the rotation state: each replica serves a step within about
/// this long of the command that recorded it.
pub const POLL: Duration = Duration::from_secs(1);

/// The operator's `--bundle-extra` roots, as served next to the given active root: (roots
/// trusted for client certificates, certificates the bundle publishes for them).
pub type ExtraRoots = Box<
    dyn Fn(
            &CaMaterial,
        ) -> anyhow::Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>)>
        + Send
        + Sync,
>;

/// What a running CA switches when the rotation state moves.
pub struct RootFollower {
    /// Where the keys of rotated roots are (`roots/<sha256>.key`).
    pub dir: Arc<DataDir>,
    /// The store holding the rotation state.
    pub store: Arc<dyn Store>,
    /// Signs and publishes.
    pub authority: Arc<Authority>,
    /// The API listener's certificate.
    pub api: Arc<ApiIdentity>,
    /// The API listener's client-certificate roots.
    pub verifier: Arc<ApiClientVerifier>,
    /// `--bundle-extra`.
    pub extra: ExtraRoots,
    /// The stored state (raw text) being served; None: no rotation ever ran.
    pub applied: Option<String>,
    /// The last reason a switch failed (logged once per reason).
    last_failure: Option<String>,
    /// A two-tier CA's `intermediate.crt`, looked at on the same poll.
    intermediate: IntermediateFollower,
}

/// The phase a check left the CA in.
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    /// The state did not change.
    Unchanged,
    /// The CA switched to this phase.
    Switched(Phase),
    /// The state changed but the CA could not follow; it serves the phase it had.
    Behind(String),
}

impl RootFollower {
    /// A follower serving `applied` (the raw state the CA started with, None if none).
    pub fn new(
        dir: Arc<DataDir>,
        store: Arc<dyn Store>,
        authority: Arc<Authority>,
        api: Arc<ApiIdentity>,
        verifier: Arc<ApiClientVerifier>,
        extra: ExtraRoots,
        applied: Option<String>,
    ) -> RootFollower {
        RootFollower {
            intermediate: IntermediateFollower::new(dir.clone(), authority.clone(), api.clone()),
            dir,
            store,
            authority,
            api,
            verifier,
            extra,
            applied,
            last_failure: None,
        }
    }

    /// Reads the state once and switches if it moved (blocking: store reads and key files).
    /// Err only when the store could not be read (nothing changes then).
    pub fn check(&mut self) -> anyhow::Result<Followed> {
        let Some((raw, state)) = load_state(self.store.as_ref())? else {
            return Ok(Followed::Unchanged);
        };
        if self.applied.as_deref() == Some(raw.as_str()) {
            return Ok(Followed::Unchanged);
        }
        match self.switch(&state) {
            Ok(()) => {
                self.applied = Some(raw);
                self.last_failure = None;
                self.authority.set_roots_behind(None);
                self.authority
                    .metrics
                    .root_switches
                    .fetch_add(1, Ordering::Relaxed);
                let active = self.authority.ca().root_fingerprint();
                tracing::info!(
                    event = "root_switched",
                    phase = ?state.phase,
                    active_root = %active,
                    "root rotation: now serving phase {:?}, signing with the root {active}",
                    state.phase
                );
                Ok(Followed::Switched(state.phase))
            }
            Err(e) => {
                let reason = format!(
                    "cannot follow the root rotation to phase {:?}: {e:#}; still serving the \
                     previous phase (docs/operations.md, \"Root rotation\")",
                    state.phase
                );
                self.authority
                    .metrics
                    .root_switch_failures
                    .fetch_add(1, Ordering::Relaxed);
                if self.last_failure.as_deref() != Some(reason.as_str()) {
                    tracing::error!(event = "root_switch_failed", reason = %reason, "{reason}");
                    self.last_failure = Some(reason.clone());
                }
                self.authority.set_roots_behind(Some(reason.clone()));
                Ok(Followed::Behind(reason))
            }
        }
    }

    /// Loads and checks everything of the phase `state` describes, then switches all of it.
    fn switch(&self, state: &RotationState) -> anyhow::Result<()> {
        let now = self.authority.now();
        let current = self.authority.roots();
        let known = current.answering();
        let serving = roots_for(&self.dir, self.store.as_ref(), Some(state), &known, now)?;
        let (extra_roots, extra_published) = (self.extra)(&serving.active)?;
        self.api
            .check_issuer(&serving.active, now)
            .context("issuing the API certificate with the new root")?;
        let mut trusted = vec![serving.active.root_der().clone()];
        trusted.extend(serving.trusted_extra.iter().cloned());
        trusted.extend(extra_roots);
        let mut bundle_extra = serving.bundle_extra;
        bundle_extra.extend(extra_published);
        let signer_changed = serving.active.root_fingerprint() != current.active.root_fingerprint();
        // Checked above; from here on every step is a swap that cannot fail halfway except
        // the verifier's build, done first so a failure leaves everything as it was.
        self.verifier.set_roots(&trusted)?;
        self.authority.switch_roots(RootSet {
            active: serving.active,
            previous: serving.previous,
            bundle_extra,
        });
        if signer_changed {
            if let Err(e) = self.api.reissue(&self.authority) {
                // Issued fine a moment ago with the same key: retried at the next renewal.
                tracing::error!(error = %e, "re-issuing the API certificate with the new root failed");
            }
        }
        Ok(())
    }

    /// Reads the rotation state, then looks at a two-tier CA's `intermediate.crt`
    /// (`intermediate_follow.rs`): a renewed intermediate is taken up on the same poll.
    fn poll(&mut self) -> anyhow::Result<Followed> {
        let followed = self.check();
        let from_rotation = self
            .applied
            .as_deref()
            .and_then(|raw| serde_json::from_str::<RotationState>(raw).ok())
            .and_then(|s| s.active_intermediate().map(str::to_owned))
            .and_then(|pem| der_of(&pem, "intermediate").ok());
        self.intermediate.check(from_rotation.as_ref());
        followed
    }

    /// Checks every [`POLL`] until the process ends.
    pub async fn run(mut self) {
        loop {
            tokio::time::sleep(POLL).await;
            let outcome = tokio::task::spawn_blocking(move || {
                let outcome = self.poll();
                (self, outcome)
            })
            .await;
            match outcome {
                Ok((follower, outcome)) => {
                    self = follower;
                    if let Err(e) = outcome {
                        tracing::warn!(error = %e, "reading the root rotation state failed; retrying");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "the root rotation follower stopped");
                    return;
                }
            }
        }
    }
}
