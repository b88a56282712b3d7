//! Root rotation without an outage (docs/operations.md, "Root rotation"): three operator steps
//! on a single-tier CA, each one command of `mtls-ca root`.
//!
//! - `rotate` makes a new root (P-384, the profile of `CaMaterial::generate_root`) next to the
//!   active one and cross-certificates both ways; the bundle becomes old + new with the
//!   cross-certificates, so services accept the new root on their next refresh (a service takes a
//!   new root only when a root it trusts vouches for it, `pki::vouch`). The CA still signs with
//!   the old root.
//! - `activate` makes the CA sign leaves and CRLs with the new root; the old root stays in the
//!   bundle and keeps signing its own CRL, so leaves of both roots stay valid and revocable.
//! - `retire` drops the old root from the bundle once no valid certificate chains to it.
//!
//! The state lives in the store (meta `root_rotation`, JSON with both roots and both
//! cross-certificates), changed by compare-and-swap together with its audit entry, so replicas
//! sharing a PostgreSQL store agree on it. Only the new root's private key is a file,
//! `roots/<sha256>.key` in the data directory (copied to the other replicas before `activate`).
//! A data directory that never rotated has no such meta and works as before. A CA reads the
//! state at start (`root_serving.rs`) and, while it runs, every second (`root_follow.rs`): each
//! step is served by every replica within about a second, with no restart.
//!
//! A two-tier CA (offline root) rotates the same way, except that the new root and the
//! cross-certificates come from an offline ceremony and `rotate --from` checks and records
//! them together with the intermediate certified by the new root
//! (`root_rotation_two_tier.rs`); the steps after that are these.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use anyhow::{bail, Context};
use pki::{files, pem, CaMaterial};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::datadir::{exists, DataDir, DIR_MODE};
use crate::store::{CertRecord, IssueKind, Store};

/// Metadata key of the rotation state ([`RotationState`] as JSON).
pub const STATE_KEY: &str = "root_rotation";

/// Metadata key prefix (then the new root's fingerprint) of the time a serving CA first
/// published the bundle with the new root: `activate` waits for the services to have seen it.
pub const PUBLISHED_PREFIX: &str = "root_rotation_published:";

/// Where a rotation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Both roots are published; the CA signs with the old one.
    Rotated,
    /// The CA signs with the new root; the old one is still published and signs its CRL.
    Activated,
    /// The old root is no longer published; the new root is the only one.
    Retired,
}

/// The rotation state kept in the store (all public material: certificates only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationState {
    /// Where the rotation stands.
    pub phase: Phase,
    /// The root being replaced, PEM.
    pub old_root: String,
    /// The new root, PEM.
    pub new_root: String,
    /// The new root's subject and key, issued and signed by the old root (services that trust
    /// the old root accept the new one with it).
    pub old_signs_new: String,
    /// The old root's subject and key, issued and signed by the new root (for services that
    /// start trusting only the new root while the old one is still published).
    pub new_signs_old: String,
    /// Unix time of `rotate`.
    pub rotated_at: i64,
    /// Unix time of `activate`.
    pub activated_at: Option<i64>,
    /// Unix time of `retire`.
    pub retired_at: Option<i64>,
    /// A two-tier CA only (`root rotate --from`, `root_rotation_two_tier.rs`): the
    /// intermediate served when the rotation began, certified by the old root, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_intermediate: Option<String>,
    /// A two-tier CA only: the same intermediate key certified by the new root, PEM. Public,
    /// so it lives here: every replica on the store serves it from `activate` on, with no
    /// file to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_intermediate: Option<String>,
}

/// A certificate still chaining to the old root (why `retire` refuses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Serial, hex.
    pub serial: String,
    /// Its SPIFFE ID.
    pub spiffe_id: String,
    /// Its NotAfter.
    pub not_after: OffsetDateTime,
}

impl RotationState {
    /// Hex SHA-256 of the old root's DER.
    pub fn old_fingerprint(&self) -> anyhow::Result<String> {
        Ok(pki::sha256_hex(&der_of(&self.old_root, "old root")?))
    }

    /// Hex SHA-256 of the new root's DER.
    pub fn new_fingerprint(&self) -> anyhow::Result<String> {
        Ok(pki::sha256_hex(&der_of(&self.new_root, "new root")?))
    }

    /// The root the CA signs with in this phase, PEM.
    pub fn active_root(&self) -> &str {
        match self.phase {
            Phase::Rotated => &self.old_root,
            Phase::Activated | Phase::Retired => &self.new_root,
        }
    }

    /// True for the rotation of a two-tier CA (the new root certified the intermediate).
    pub fn is_two_tier(&self) -> bool {
        self.new_intermediate.is_some()
    }

    /// A two-tier CA's intermediate certified by [`RotationState::active_root`], PEM.
    pub fn active_intermediate(&self) -> Option<&str> {
        match self.phase {
            Phase::Rotated => self.old_intermediate.as_deref(),
            Phase::Activated | Phase::Retired => self.new_intermediate.as_deref(),
        }
    }
}

/// The one certificate of `pem_text` (state written by this module).
pub(crate) fn der_of(
    pem_text: &str,
    what: &str,
) -> anyhow::Result<rustls_pki_types::CertificateDer<'static>> {
    pem::parse_certificates(pem_text.as_bytes())
        .ok()
        .and_then(|mut c| (c.len() == 1).then(|| c.remove(0)))
        .with_context(|| format!("the stored root rotation state holds no valid {what}"))
}

/// The rotation state and its stored text (for the compare-and-swap), if a rotation ever ran.
pub fn load_state(store: &dyn Store) -> anyhow::Result<Option<(String, RotationState)>> {
    let Some(raw) = store.get_meta(STATE_KEY)? else {
        return Ok(None);
    };
    let state = serde_json::from_str(&raw)
        .with_context(|| format!("the store's {STATE_KEY} metadata is not a rotation state"))?;
    Ok(Some((raw, state)))
}

impl DataDir {
    /// `roots/`: the keys (0600) and certificates of roots made by `mtls-ca root rotate`.
    pub fn rotated_roots(&self) -> PathBuf {
        self.path.join("roots")
    }

    /// `roots/<fingerprint>.key`.
    pub fn rotated_root_key(&self, fingerprint: &str) -> PathBuf {
        self.rotated_roots().join(format!("{fingerprint}.key"))
    }

    /// `roots/<fingerprint>.crt`.
    pub fn rotated_root_cert(&self, fingerprint: &str) -> PathBuf {
        self.rotated_roots().join(format!("{fingerprint}.crt"))
    }

    /// The root with this certificate (PEM) and its key: `root.crt`/`root.key` when it is
    /// the directory's first root, else `roots/<fingerprint>.key`.
    pub fn load_root_by_pem(&self, cert_pem: &str) -> anyhow::Result<CaMaterial> {
        let der = der_of(cert_pem, "root")?;
        let fingerprint = pki::sha256_hex(&der);
        if exists(&self.root_cert())? && self.stored_root_fingerprint()? == fingerprint {
            return self.load_own_root();
        }
        let key_path = self.rotated_root_key(&fingerprint);
        if !exists(&key_path)? {
            bail!(
                "the root {fingerprint} has no key in this data directory: {} is missing; copy \
                 it (mode 0600) from the data directory where `mtls-ca root rotate` ran",
                key_path.display()
            );
        }
        let (key, _) = pki::keys::parse_private_key_pem(&files::read(&key_path)?)
            .with_context(|| format!("reading {}", key_path.display()))?;
        CaMaterial::from_parts(der, key).with_context(|| format!("loading {}", key_path.display()))
    }

    /// The root the CA signs with now, per the store's rotation state.
    fn active_root(&self, state: Option<&RotationState>) -> anyhow::Result<CaMaterial> {
        match state {
            Some(s) => self.load_root_by_pem(s.active_root()),
            None if !exists(&self.root_key())? => bail!(
                "{} holds no root.key: this CA signs with an external root (--root-cert, \
                 --root-key), whose key `mtls-ca root rotate` cannot use; rotate it by hand with \
                 --bundle-extra (docs/operations.md)",
                self.path.display()
            ),
            None => self.load_own_root(),
        }
    }

    /// Refuses what `root rotate` (without `--from`) cannot rotate: a two-tier CA, whose root
    /// key is offline, and a root whose key is in a token.
    fn refuse_two_tier(&self, step: &str) -> anyhow::Result<()> {
        if exists(&self.intermediate_cert())? {
            bail!(
                "`mtls-ca root {step}` alone works on single-tier CAs only; {} is a two-tier CA \
                 (it holds {}) whose root key is offline: run the ceremony `mtls-ca root rotate \
                 --root-key OLD_DIR --new-offline-root NEW_DIR --csr FILE --out FILE` where the \
                 root is, then `mtls-ca root rotate --from FILE` here (docs/operations.md, \
                 \"Root rotation of a two-tier CA\")",
                self.path.display(),
                self.intermediate_cert().display()
            );
        }
        self.refuse_token_root(step)
    }

    /// Refuses a step of a rotation that does not fit this directory: a single-tier rotation
    /// on a two-tier CA, or the reverse.
    fn refuse_other_kind(&self, state: &RotationState, step: &str) -> anyhow::Result<()> {
        match (state.is_two_tier(), self.is_two_tier()?) {
            (false, _) => self.refuse_two_tier(step),
            (true, true) => Ok(()),
            (true, false) => bail!(
                "the stored root rotation is a two-tier CA's (it holds a new intermediate), but \
                 {} holds no intermediate.crt: run `mtls-ca root {step}` with the data directory \
                 of the two-tier CA",
                self.path.display()
            ),
        }
    }

    fn refuse_token_root(&self, step: &str) -> anyhow::Result<()> {
        // A new root would be a key file: a CA whose root key is in a token would lose the
        // protection it was set up for.
        if exists(&self.root_token_ref())? {
            bail!(
                "`mtls-ca root {step}` cannot rotate a root whose key is in a PKCS#11 token ({}): \
                 the new root's key would be a file; make a new CA with `init --key pkcs11:…` and \
                 publish its root with --bundle-extra (docs/operations.md, \"Key in an HSM\")",
                self.root_token_ref().display()
            );
        }
        Ok(())
    }
}

/// The subject's CommonName of a root made at `now`: a subject of its own, since CRLs are
/// looked up by issuer name (docs/operations.md, "Root rotation").
pub(crate) fn new_root_name(now: OffsetDateTime) -> String {
    format!(
        "mtls-mesh Root CA {}",
        pki::timefmt::rfc3339(now.replace_nanosecond(0).unwrap_or(now))
    )
}

/// Refuses to begin a rotation while the last one (`state`) is not retired.
pub(crate) fn refuse_pending(state: Option<&RotationState>) -> anyhow::Result<()> {
    let Some(s) = state else {
        return Ok(());
    };
    match s.phase {
        Phase::Retired => Ok(()),
        Phase::Rotated => bail!(
            "a root rotation is pending: the new root {} was made at {} and is not active \
             yet; finish it with `mtls-ca root activate` (then `root retire`) before \
             rotating again",
            s.new_fingerprint()?,
            unix(s.rotated_at)
        ),
        Phase::Activated => bail!(
            "a root rotation is pending: the old root {} is still published; finish it with \
             `mtls-ca root retire` before rotating again",
            s.old_fingerprint()?
        ),
    }
}

/// What `rotate` made.
#[derive(Debug)]
pub struct Rotated {
    /// The state now stored.
    pub state: RotationState,
    /// Where the new root's key was written.
    pub key_path: PathBuf,
}

/// `mtls-ca root rotate`: a new root next to the active one, cross-certificates both ways, the
/// state `rotated` stored with its audit entry. Refused on a two-tier CA and while a rotation
/// is pending (rotated or activated, not yet retired).
pub fn rotate(dir: &DataDir, store: &dyn Store, now: OffsetDateTime) -> anyhow::Result<Rotated> {
    dir.refuse_two_tier("rotate")?;
    let current = load_state(store)?;
    refuse_pending(current.as_ref().map(|(_, s)| s))?;
    let old = dir.active_root(current.as_ref().map(|(_, s)| s))?;
    let name = new_root_name(now);
    let new = CaMaterial::generate_root(&name, now)?;
    let (old_signs_new, new_signs_old) = cross_sign_both(&old, &new, now)?;
    let state = RotationState {
        phase: Phase::Rotated,
        old_root: old.cert_pem(),
        new_root: new.cert_pem(),
        old_signs_new: pem::encode("CERTIFICATE", &old_signs_new),
        new_signs_old: pem::encode("CERTIFICATE", &new_signs_old),
        rotated_at: now.unix_timestamp(),
        activated_at: None,
        retired_at: None,
        old_intermediate: None,
        new_intermediate: None,
    };
    let fingerprint = new.fingerprint();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir.rotated_roots())
        .with_context(|| format!("creating {}", dir.rotated_roots().display()))?;
    let key_path = dir.rotated_root_key(&fingerprint);
    let cert_path = dir.rotated_root_cert(&fingerprint);
    // Key first, then the state: a crash in between leaves an unused key file, never a
    // stored root without its key.
    files::write_atomic(&key_path, new.key_pem()?.as_bytes(), files::KEY_MODE)?;
    files::write_atomic(&cert_path, new.cert_pem().as_bytes(), files::PUBLIC_MODE)?;
    let detail = serde_json::json!({
        "old_root": old.fingerprint(),
        "new_root": fingerprint,
        "new_subject": name,
        "old_signs_new": pki::sha256_hex(&old_signs_new),
        "new_signs_old": pki::sha256_hex(&new_signs_old),
    });
    if let Err(e) = swap(
        store,
        current.as_ref().map(|(r, _)| r.as_str()),
        &state,
        "root_rotate",
        &detail,
    ) {
        // Nothing refers to the new key: take it away again.
        let _ = fs::remove_file(&key_path);
        let _ = fs::remove_file(&cert_path);
        return Err(e);
    }
    Ok(Rotated { state, key_path })
}

/// `mtls-ca root activate`: running CAs sign leaves and CRLs with the new root from their next
/// check of the state (within a second, `root_follow.rs`).
/// Refused unless a rotation is in phase `rotated`, unless the new root's key is in this data
/// directory, and (unless `force`) until a serving CA published the new bundle at least
/// `min_overlap` ago: services that never saw the new root would refuse leaves signed by it.
pub fn activate(
    dir: &DataDir,
    store: &dyn Store,
    now: OffsetDateTime,
    min_overlap: Duration,
    force: bool,
) -> anyhow::Result<RotationState> {
    let Some((raw, mut state)) = load_state(store)? else {
        dir.refuse_two_tier("activate")?;
        bail!("no root rotation to activate: run `mtls-ca root rotate` first");
    };
    dir.refuse_other_kind(&state, "activate")?;
    match state.phase {
        Phase::Rotated => {}
        Phase::Activated => bail!(
            "the new root {} is already active; what remains is `mtls-ca root retire`",
            state.new_fingerprint()?
        ),
        Phase::Retired => bail!(
            "no root rotation to activate (the last one was retired at {}): run `mtls-ca root \
             rotate` first",
            unix(state.retired_at.unwrap_or_default())
        ),
    }
    let new_fp = state.new_fingerprint()?;
    match &state.new_intermediate {
        // The new intermediate was checked at `rotate --from`; it must still be valid.
        Some(intermediate) => {
            crate::root_rotation_two_tier::check_still_valid(intermediate, &state.new_root, now)?
        }
        None => {
            dir.load_root_by_pem(&state.new_root)?;
        }
    }
    let published = store.get_meta(&format!("{PUBLISHED_PREFIX}{new_fp}"))?;
    let published_at = published
        .as_deref()
        .and_then(|t| t.parse::<i64>().ok())
        .map(unix);
    match (published_at, force) {
        (_, true) => {}
        (None, false) => bail!(
            "no CA has published the new root {new_fp} yet: a running CA does within a second \
             (is one running on this store?); then wait --min-overlap ({}) for the services' \
             trust bundle refresh and activate (`--wait` does both), or pass --force if you \
             know every service has it",
            pki::timefmt::human(min_overlap)
        ),
        (Some(at), false) if now < at + min_overlap => bail!(
            "the new root {new_fp} has been published only since {} ({} ago); services refresh \
             their trust bundle every --crl-refresh (5s by default) and must all have it \
             before leaves are signed with it: activate after {} (--min-overlap {}), or pass \
             --force if you know every service has it",
            pki::timefmt::rfc3339(at),
            pki::timefmt::human(now - at),
            pki::timefmt::rfc3339(at + min_overlap),
            pki::timefmt::human(min_overlap)
        ),
        (Some(_), false) => {}
    }
    state.phase = Phase::Activated;
    state.activated_at = Some(now.unix_timestamp());
    let detail = serde_json::json!({
        "old_root": state.old_fingerprint()?,
        "new_root": new_fp,
        "published_at": published_at.map(pki::timefmt::rfc3339),
        "forced": force,
    });
    swap(store, Some(&raw), &state, "root_activate", &detail)?;
    Ok(state)
}

/// `mtls-ca root retire`: the old root leaves the bundle of running CAs (within a second). Refused
/// unless a rotation is in phase `activated`, and while any valid (unexpired, unrevoked)
/// certificate in the store chains to the old root: the error lists them.
pub fn retire(
    dir: &DataDir,
    store: &dyn Store,
    now: OffsetDateTime,
) -> anyhow::Result<RotationState> {
    let Some((raw, mut state)) = load_state(store)? else {
        dir.refuse_two_tier("retire")?;
        bail!("no root rotation to retire: run `mtls-ca root rotate` first");
    };
    dir.refuse_other_kind(&state, "retire")?;
    match state.phase {
        Phase::Activated => {}
        Phase::Rotated => bail!(
            "the new root {} is not active yet, so the old root still signs every leaf: run \
             `mtls-ca root activate` first",
            state.new_fingerprint()?
        ),
        Phase::Retired => bail!(
            "the old root {} was already retired at {}",
            state.old_fingerprint()?,
            unix(state.retired_at.unwrap_or_default())
        ),
    }
    let blocking = still_on_old_root(store, &state, now)?;
    if !blocking.is_empty() {
        let lines: Vec<String> = blocking
            .iter()
            .map(|b| {
                format!(
                    "  serial {}  {}  not after {}",
                    b.serial,
                    b.spiffe_id,
                    pki::timefmt::rfc3339(b.not_after)
                )
            })
            .collect();
        let last = blocking.iter().map(|b| b.not_after).max().unwrap_or(now);
        bail!(
            "{} valid certificate(s) still chain to the old root {}; services would refuse them \
             once it is retired. Wait until they are renewed under the new root or expire (the \
             last expires at {}), or revoke them:\n{}",
            blocking.len(),
            state.old_fingerprint()?,
            pki::timefmt::rfc3339(last),
            lines.join("\n")
        );
    }
    state.phase = Phase::Retired;
    state.retired_at = Some(now.unix_timestamp());
    let detail = serde_json::json!({
        "old_root": state.old_fingerprint()?,
        "new_root": state.new_fingerprint()?,
    });
    swap(store, Some(&raw), &state, "root_retire", &detail)?;
    Ok(state)
}

/// The valid (unexpired, unrevoked) certificates that services still verify through the old
/// root of `state`: signed by it (single tier), or issued before `activate` and so handed out
/// with the old chain (two tiers, `root_rotation_two_tier::issued_before_activation`).
pub fn still_on_old_root(
    store: &dyn Store,
    state: &RotationState,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<Blocking>> {
    if state.is_two_tier() {
        return crate::root_rotation_two_tier::issued_before_activation(
            store,
            state.activated_at.map(unix),
            now,
        );
    }
    chaining_to(store, &state.old_root, now)
}

/// The valid (unexpired, unrevoked) certificates of the store signed by `root_pem`'s key.
pub fn chaining_to(
    store: &dyn Store,
    root_pem: &str,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<Blocking>> {
    let root = der_of(root_pem, "old root")?;
    let mut out = Vec::new();
    for cert in store.list_certs()? {
        if !blocks_retire(&cert, now) {
            continue;
        }
        let Some(der) = pem::parse_certificates(cert.pem.as_bytes())
            .ok()
            .and_then(|c| c.into_iter().next())
        else {
            bail!("the stored certificate {} cannot be read", cert.serial);
        };
        if pki::intermediate::check_issued_by(&der, &root).is_ok() {
            out.push(Blocking {
                serial: cert.serial,
                spiffe_id: cert.spiffe_id,
                not_after: cert.not_after,
            });
        }
    }
    out.sort_by_key(|b| b.not_after);
    Ok(out)
}

/// Whether `cert` keeps its root from being retired: a valid (unexpired, unrevoked)
/// certificate handed out to a service. A delegated OCSP responder certificate does not: it
/// only signs answers about its root's leaves, which are all expired or revoked once nothing
/// else blocks, and a retired root answers no OCSP request at all.
pub(crate) fn blocks_retire(cert: &CertRecord, now: OffsetDateTime) -> bool {
    cert.status(now) == "valid" && cert.kind != IssueKind::OcspResponder
}

/// Stores `state` in place of `expected` with its audit entry, or explains that another
/// process changed the rotation first.
pub(crate) fn swap(
    store: &dyn Store,
    expected: Option<&str>,
    state: &RotationState,
    event: &str,
    detail: &serde_json::Value,
) -> anyhow::Result<()> {
    let text = serde_json::to_string(state)?;
    if !store.swap_meta(STATE_KEY, expected, &text, event, detail)? {
        bail!(
            "the root rotation state changed while this command ran (another `mtls-ca root` \
             command, perhaps on another replica); nothing was changed here: run it again"
        );
    }
    Ok(())
}

/// The two cross-certificates of a rotation from `old` to `new`: old signs new (services that
/// trust the old root accept the new one), new signs old (services that trust only the new root
/// keep accepting the old one's leaves). Both tiers' rotations make them here.
pub(crate) fn cross_sign_both(
    old: &CaMaterial,
    new: &CaMaterial,
    now: OffsetDateTime,
) -> anyhow::Result<(CertificateDer<'static>, CertificateDer<'static>)> {
    let old_signs_new = old
        .cross_sign(new.cert_der(), now)
        .context("cross-signing the new root with the old one")?;
    let new_signs_old = new
        .cross_sign(old.cert_der(), now)
        .context("cross-signing the old root with the new one")?;
    Ok((old_signs_new, new_signs_old))
}

pub(crate) fn unix(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
