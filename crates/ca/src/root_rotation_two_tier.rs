//! Root rotation of a two-tier CA (docs/operations.md, "Root rotation of a two-tier CA"): the
//! root key is offline, so the new root, the cross-certificates and the new certificate of the
//! intermediate are made in one offline ceremony ([`ceremony`], `mtls-ca root rotate
//! --root-key OLD --new-offline-root NEW --csr FILE --out FILE`) whose output is one public
//! file. On the CA host, [`rotate_from`] (`mtls-ca root rotate --from FILE`) checks all of it
//! before it records phase `rotated`; `activate` and `retire` are then those of
//! `root_rotation.rs`, and the running CAs follow them as for a single-tier CA
//! (`root_serving.rs`, `root_follow.rs`).
//!
//! The intermediate key never moves and is certified again by the new root (the same name and
//! key: leaves issued before and after verify with either certificate, and one CRL signed by
//! the key covers both). The new intermediate certificate is public and lives in the store's
//! rotation state, so replicas sharing one PostgreSQL database need no file copied.

use anyhow::{bail, Context};
use pki::sealed_key::Passphrase;
use pki::{intermediate, pem, vouch, CaMaterial};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::datadir::DataDir;
use crate::datadir_hierarchy::{fitting_under, sign_intermediate, OfflineRoot};
use crate::root_rotation::{
    blocks_retire, cross_sign_both, load_state, new_root_name, refuse_pending, swap, Blocking,
    Phase, RotationState,
};
use crate::store::Store;

/// The comment line before each certificate of the ceremony's file, in this order.
const PARTS: [&str; 5] = [
    "old root",
    "new root",
    "cross-certificate: the new root's subject and key, signed by the old root",
    "cross-certificate: the old root's subject and key, signed by the new root",
    "the intermediate key certified by the new root",
];

/// How long after `activate` a replica may still hand out the old chain: replicas read the
/// rotation state every second (`root_follow::POLL`); `retire` also waits for the leaves
/// issued in this margin. Leaves of a two-tier CA carry no sign of the chain they were
/// delivered with (both intermediates have one name and key), so time is what tells.
pub const SWITCH_MARGIN: Duration = Duration::seconds(5);

/// The ceremony's file, read: each certificate in [`PARTS`] order.
struct RotationFile {
    old_root: CertificateDer<'static>,
    new_root: CertificateDer<'static>,
    old_signs_new: CertificateDer<'static>,
    new_signs_old: CertificateDer<'static>,
    intermediate: CertificateDer<'static>,
}

impl RotationFile {
    fn text(&self) -> String {
        [
            &self.old_root,
            &self.new_root,
            &self.old_signs_new,
            &self.new_signs_old,
            &self.intermediate,
        ]
        .iter()
        .zip(PARTS)
        .map(|(cert, what)| format!("# {what}\n{}", pem::encode("CERTIFICATE", cert)))
        .collect()
    }

    fn read(bytes: &[u8]) -> anyhow::Result<RotationFile> {
        let certs = pem::parse_only_certificates(bytes)
            .context("a root rotation file holds certificates only")?;
        let Ok([old_root, new_root, old_signs_new, new_signs_old, intermediate]) =
            <[CertificateDer<'static>; 5]>::try_from(certs.clone())
        else {
            bail!(
                "a root rotation file holds five certificates ({}); this one holds {}",
                PARTS.join(", "),
                certs.len()
            );
        };
        Ok(RotationFile {
            old_root,
            new_root,
            old_signs_new,
            new_signs_old,
            intermediate,
        })
    }
}

/// What the ceremony made.
#[derive(Debug)]
pub struct Ceremony {
    /// The public file for `root rotate --from`.
    pub file: String,
    /// The new root's fingerprint.
    pub new_fingerprint: String,
}

/// The offline ceremony, on the machine holding `old` (opened from its directory): a new
/// offline root (the profile of `init --offline-root`, a subject of its own) sealed with
/// `passphrase` into `new_dir` (new or empty), cross-certificates both ways, and the
/// intermediate key of the CSR `csr_pem` (from `mtls-ca intermediate csr`; its signature
/// proves possession) certified by the new root for `lifetime`. Nothing is written when a
/// check fails; `new_dir` is written before the file is returned.
pub fn ceremony(
    old: &CaMaterial,
    new_dir: &OfflineRoot,
    passphrase: &Passphrase,
    csr_pem: &[u8],
    lifetime: Duration,
    now: OffsetDateTime,
) -> anyhow::Result<Ceremony> {
    if !vouch::is_self_signed(old.cert_der()) {
        bail!("--root-key holds no self-signed root");
    }
    new_dir.check_new()?;
    let new = CaMaterial::generate_offline_root(&new_root_name(now), now)?;
    let (old_signs_new, new_signs_old) = cross_sign_both(old, &new, now)?;
    let (intermediate, _) = sign_intermediate(&new, csr_pem, lifetime, now)
        .context("certifying the intermediate with the new root")?;
    let intermediate = pem::parse_certificates(intermediate.as_bytes())?
        .into_iter()
        .next()
        .context("the new intermediate was not encoded")?;
    new_dir.create()?;
    new_dir.seal(&new, passphrase)?;
    let file = RotationFile {
        old_root: old.cert_der().clone(),
        new_root: new.cert_der().clone(),
        old_signs_new,
        new_signs_old,
        intermediate,
    };
    Ok(Ceremony {
        file: file.text(),
        new_fingerprint: new.fingerprint(),
    })
}

/// `mtls-ca root rotate --from FILE` on a two-tier CA: checks the ceremony's file against this
/// CA (the old root is the CA's current root; each cross-certificate is signed by the right
/// root and names the other's subject and key; the intermediate has this CA's intermediate
/// key, subject and trust domain, is certified by the new root and valid now), then records
/// phase `rotated` with its audit entry. A refusal changes nothing.
pub fn rotate_from(
    dir: &DataDir,
    store: &dyn Store,
    file: &[u8],
    now: OffsetDateTime,
) -> anyhow::Result<RotationState> {
    if !dir.is_two_tier()? {
        bail!(
            "`mtls-ca root rotate --from` is for a two-tier CA; {} is single-tier: rotate its \
             root with `mtls-ca root rotate` alone",
            dir.path.display()
        );
    }
    let current_state = load_state(store)?;
    refuse_pending(current_state.as_ref().map(|(_, s)| s))?;
    let current = dir.serving_intermediate(store)?;
    let file = RotationFile::read(file)?;
    let ours = current.root_der();
    if file.old_root != *ours {
        bail!(
            "the file's old root {} is not this CA's current root {}: the ceremony ran with \
             another CA's root directory",
            pki::sha256_hex(&file.old_root),
            pki::sha256_hex(ours)
        );
    }
    if !vouch::is_self_signed(&file.new_root) {
        bail!("the file's new root is not a self-signed certificate");
    }
    if file.new_root == file.old_root || vouch::same_subject_and_key(&file.new_root, ours) {
        bail!("the file's new root is the current root again");
    }
    intermediate::check_root_can_sign_intermediates(&file.new_root)
        .context("the file's new root")?;
    check_cross(
        &file.old_signs_new,
        &file.old_root,
        &file.new_root,
        now,
        "the cross-certificate for the new root",
    )?;
    check_cross(
        &file.new_signs_old,
        &file.new_root,
        &file.old_root,
        now,
        "the cross-certificate for the old root",
    )?;
    let new_intermediate = fitting_under(&current, &file.new_root, file.intermediate.clone(), now)
        .context("the file's intermediate")?;
    let subject = |der: &[u8]| pki::CertInfo::from_der(der).map(|c| c.subject);
    if subject(new_intermediate.cert_der())? != subject(current.cert_der())? {
        bail!(
            "the file's intermediate names {}, not this CA's intermediate {}",
            subject(new_intermediate.cert_der())?,
            subject(current.cert_der())?
        );
    }
    let state = RotationState {
        phase: Phase::Rotated,
        old_root: pem::encode("CERTIFICATE", &file.old_root),
        new_root: pem::encode("CERTIFICATE", &file.new_root),
        old_signs_new: pem::encode("CERTIFICATE", &file.old_signs_new),
        new_signs_old: pem::encode("CERTIFICATE", &file.new_signs_old),
        rotated_at: now.unix_timestamp(),
        activated_at: None,
        retired_at: None,
        old_intermediate: Some(current.cert_pem()),
        new_intermediate: Some(new_intermediate.cert_pem()),
    };
    let detail = serde_json::json!({
        "two_tier": true,
        "old_root": pki::sha256_hex(&file.old_root),
        "new_root": pki::sha256_hex(&file.new_root),
        "new_subject": pki::CertInfo::from_der(&file.new_root)?.subject,
        "old_signs_new": pki::sha256_hex(&file.old_signs_new),
        "new_signs_old": pki::sha256_hex(&file.new_signs_old),
        "old_intermediate": pki::sha256_hex(current.cert_der()),
        "new_intermediate": pki::sha256_hex(new_intermediate.cert_der()),
    });
    swap(
        store,
        current_state.as_ref().map(|(raw, _)| raw.as_str()),
        &state,
        "root_rotate",
        &detail,
    )?;
    Ok(state)
}

/// Checks that `cross` vouches for `named` (same subject and key) and is issued by `signer`,
/// valid now.
fn check_cross(
    cross: &[u8],
    signer: &[u8],
    named: &[u8],
    now: OffsetDateTime,
    what: &str,
) -> anyhow::Result<()> {
    vouch::check_cross_certificate(cross, [signer], now)
        .with_context(|| format!("{what} in the file"))?;
    if !vouch::same_subject_and_key(cross, named) {
        bail!("{what} in the file does not name that root's subject and key");
    }
    Ok(())
}

/// `activate` on a two-tier CA: the new intermediate recorded at `rotate --from` must still be
/// valid (its key and profile were checked then).
pub(crate) fn check_still_valid(
    intermediate_pem: &str,
    new_root_pem: &str,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let cert = crate::root_rotation::der_of(intermediate_pem, "new intermediate")?;
    let root = crate::root_rotation::der_of(new_root_pem, "new root")?;
    let info = pki::CertInfo::from_der(&cert)?;
    if now < info.not_before || now >= info.not_after {
        bail!(
            "the new intermediate is valid from {} to {}, not now: run the ceremony again",
            pki::timefmt::rfc3339(info.not_before),
            pki::timefmt::rfc3339(info.not_after)
        );
    }
    intermediate::check_issued_by(&cert, &root)?;
    Ok(())
}

/// The valid (unexpired, unrevoked) leaves of a two-tier CA handed out with the old chain:
/// those issued before `activated_at` plus [`SWITCH_MARGIN`] (every valid leaf when the
/// rotation is not activated).
pub(crate) fn issued_before_activation(
    store: &dyn Store,
    activated_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<Blocking>> {
    let mut out: Vec<Blocking> = store
        .list_certs()?
        .into_iter()
        .filter(|c| blocks_retire(c, now))
        .filter(|c| activated_at.is_none_or(|at| c.issued_at <= at + SWITCH_MARGIN))
        .map(|c| Blocking {
            serial: c.serial,
            spiffe_id: c.spiffe_id,
            not_after: c.not_after,
        })
        .collect();
    out.sort_by_key(|b| b.not_after);
    Ok(out)
}
