//! Which roots a CA signs with, trusts and publishes, per the store's root rotation state
//! (`root_rotation.rs`): read at start, and again by a running CA whenever the state changes
//! (`root_follow.rs`). Without a rotation: the data directory's own root, as before.

use std::sync::Arc;

use anyhow::Context;
use pki::CaMaterial;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::datadir::DataDir;
use crate::root_rotation::{der_of, load_state, Phase, RotationState, PUBLISHED_PREFIX};
use crate::store::Store;

/// The roots of a CA in one rotation phase.
pub struct ServingRoots {
    /// The root that signs leaves, the CRL and the CA's own certificates.
    pub active: Arc<CaMaterial>,
    /// After `activate`, before `retire`: the old root, which signs the CRL for its own
    /// leaves (`GET /api/v1/crl?issuer=<sha256>`), since a CRL covers only its issuer's
    /// certificates.
    pub previous: Option<Arc<CaMaterial>>,
    /// Other roots whose leaves the CA accepts on its API (renewal, revocation).
    pub trusted_extra: Vec<CertificateDer<'static>>,
    /// What `/api/v1/bundle` publishes after the active root: the other root and the
    /// cross-certificates both ways.
    pub bundle_extra: Vec<CertificateDer<'static>>,
    /// The rotation phase, if a rotation ever ran.
    pub phase: Option<Phase>,
}

/// The roots to serve with at start, given `loaded` (the root `open_or_init_store` loaded
/// from the directory's `root.crt`/`root.key`). In phase `rotated` this also records, once,
/// when a CA first published the new root (what `activate` waits on).
pub fn serving_roots(
    dir: &DataDir,
    store: &dyn Store,
    loaded: CaMaterial,
    now: OffsetDateTime,
) -> anyhow::Result<ServingRoots> {
    let loaded = Arc::new(loaded);
    let state = load_state(store)?.map(|(_, s)| s);
    roots_for(dir, store, state.as_ref(), &[loaded], now)
}

/// The roots to serve with in `state` (None: no rotation ever ran, so the first of `known`),
/// taking each root's key from `known` (the materials already loaded) or else from the data
/// directory; an error names a key file that is missing. In phase `rotated` this records,
/// once, when a CA first published the new root (what `activate` waits on).
pub fn roots_for(
    dir: &DataDir,
    store: &dyn Store,
    state: Option<&RotationState>,
    known: &[Arc<CaMaterial>],
    now: OffsetDateTime,
) -> anyhow::Result<ServingRoots> {
    let Some(state) = state else {
        let Some(first) = known.first() else {
            anyhow::bail!("no root loaded to serve with");
        };
        return Ok(ServingRoots {
            active: first.clone(),
            previous: None,
            trusted_extra: Vec::new(),
            bundle_extra: Vec::new(),
            phase: None,
        });
    };
    let load = |pem: &str| -> anyhow::Result<Arc<CaMaterial>> {
        let fingerprint = pki::sha256_hex(&der_of(pem, "root")?);
        match known.iter().find(|ca| ca.root_fingerprint() == fingerprint) {
            Some(ca) => Ok(ca.clone()),
            None => dir.load_root_by_pem(pem).map(Arc::new),
        }
    };
    if state.is_two_tier() {
        return two_tier(store, state, known, now);
    }
    let (active, previous) = match state.phase {
        Phase::Rotated => (load(&state.old_root)?, None),
        Phase::Activated => (load(&state.new_root)?, Some(load(&state.old_root)?)),
        Phase::Retired => (load(&state.new_root)?, None),
    };
    in_phase(store, state, active, previous, now)
}

/// The roots served in `state`'s phase with `active` signing (and `previous` signing its own
/// CRL): the same trust and bundle for single-tier and two-tier CAs. In phase `rotated` this
/// records, once, when a CA first published the new root (what `activate` waits on).
fn in_phase(
    store: &dyn Store,
    state: &RotationState,
    active: Arc<CaMaterial>,
    previous: Option<Arc<CaMaterial>>,
    now: OffsetDateTime,
) -> anyhow::Result<ServingRoots> {
    let old = der_of(&state.old_root, "old root")?;
    let new = der_of(&state.new_root, "new root")?;
    let old_signs_new = der_of(&state.old_signs_new, "cross-certificate")?;
    let new_signs_old = der_of(&state.new_signs_old, "cross-certificate")?;
    let (trusted_extra, bundle_extra) = match state.phase {
        Phase::Rotated => {
            store.init_meta(
                &format!("{PUBLISHED_PREFIX}{}", pki::sha256_hex(&new)),
                &now.unix_timestamp().to_string(),
            )?;
            (vec![new.clone()], vec![new, old_signs_new, new_signs_old])
        }
        Phase::Activated => (vec![old.clone()], vec![old, new_signs_old, old_signs_new]),
        Phase::Retired => (Vec::new(), Vec::new()),
    };
    Ok(ServingRoots {
        active,
        previous,
        trusted_extra,
        bundle_extra,
        phase: Some(state.phase),
    })
}

/// [`roots_for`] for a two-tier CA (`root_rotation_two_tier.rs`): the intermediate key signs
/// in every phase, certified by the active root: an intermediate of `known` already certified
/// by it (loaded at start, or a renewal taken up from `intermediate.crt`), else the state's
/// certificate for it. The bundle and the trusted roots are those of a single-tier rotation.
/// No previous signer: old and new intermediate share name and key, so the one CRL and the
/// OCSP answers it signs cover the leaves issued under either chain.
fn two_tier(
    store: &dyn Store,
    state: &RotationState,
    known: &[Arc<CaMaterial>],
    now: OffsetDateTime,
) -> anyhow::Result<ServingRoots> {
    let active_root = der_of(state.active_root(), "active root")?;
    let active_fp = pki::sha256_hex(&active_root);
    let Some(holder) = known.iter().find(|ca| ca.is_intermediate()) else {
        anyhow::bail!(
            "the stored root rotation is a two-tier CA's, but this CA signs with no \
             intermediate"
        );
    };
    let active = match known
        .iter()
        .find(|ca| ca.is_intermediate() && ca.root_fingerprint() == active_fp)
    {
        Some(ca) => ca.clone(),
        None => {
            let stored = state.active_intermediate().with_context(|| {
                format!("the stored root rotation keeps no intermediate for the root {active_fp}")
            })?;
            let cert = der_of(stored, "intermediate")?;
            Arc::new(
                CaMaterial::intermediate_from_key(cert, holder.key().clone(), active_root)
                    .context(
                        "the intermediate of the stored root rotation does not fit this CA's \
                         intermediate key",
                    )?,
            )
        }
    };
    in_phase(store, state, active, None, now)
}
