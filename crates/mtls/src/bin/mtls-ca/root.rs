//! `mtls-ca root rotate|activate|retire|status`: root rotation without an outage
//! (docs/operations.md, "Root rotation"; the logic is `mtls_ca::root_rotation`).

use mtls_ca::datadir::DataDir;
use mtls_ca::root_rotation::{self, Phase, RotationState};
use mtls_ca::store::Store;
use pki::timefmt::rfc3339;
use time::OffsetDateTime;

use crate::cli::RootAction;

pub fn run(
    dir: &DataDir,
    store: &dyn Store,
    action: RootAction,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    match action {
        RootAction::Rotate => {
            let made = root_rotation::rotate(dir, store, now)?;
            let s = &made.state;
            eprintln!(
                "made the new root {} (key {}) and cross-certificates both ways; the CA still \
                 signs with the old root {}.\nNext: restart every CA replica (copy {} to each \
                 replica's data directory first), so /api/v1/bundle serves both roots; after \
                 the services' bundle refresh, `mtls-ca root activate`",
                s.new_fingerprint()?,
                made.key_path.display(),
                s.old_fingerprint()?,
                made.key_path.display(),
            );
            println!("new root fingerprint (SHA-256): {}", s.new_fingerprint()?);
        }
        RootAction::Activate { min_overlap, force } => {
            let s = root_rotation::activate(dir, store, now, min_overlap, force)?;
            eprintln!(
                "the new root {} signs leaves and CRLs from the CA's next start; the old root \
                 {} stays in the bundle until `mtls-ca root retire`.\nNext: restart every CA \
                 replica; services move to the new root as they renew",
                s.new_fingerprint()?,
                s.old_fingerprint()?
            );
        }
        RootAction::Retire => {
            let s = root_rotation::retire(dir, store, now)?;
            eprintln!(
                "retired the old root {}: from the CA's next start the bundle holds only {}.\n\
                 Next: restart every CA replica; services drop the old root on their next \
                 bundle refresh",
                s.old_fingerprint()?,
                s.new_fingerprint()?
            );
        }
        RootAction::Status => status(store, now)?,
    }
    Ok(())
}

fn status(store: &dyn Store, now: OffsetDateTime) -> anyhow::Result<()> {
    let Some((_, s)) = root_rotation::load_state(store)? else {
        println!("phase: none (this CA never rotated its root)");
        return Ok(());
    };
    let at = |t: Option<i64>| {
        t.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .map(rfc3339)
            .unwrap_or_else(|| "-".into())
    };
    println!("phase: {}", phase_name(&s));
    println!("old root: {}", s.old_fingerprint()?);
    println!("new root: {}", s.new_fingerprint()?);
    println!("rotated at: {}", at(Some(s.rotated_at)));
    let published = store.get_meta(&format!(
        "{}{}",
        root_rotation::PUBLISHED_PREFIX,
        s.new_fingerprint()?
    ))?;
    println!(
        "new root first published at: {}",
        at(published.and_then(|p| p.parse().ok()))
    );
    println!("activated at: {}", at(s.activated_at));
    println!("retired at: {}", at(s.retired_at));
    if s.phase != Phase::Retired {
        let blocking = root_rotation::chaining_to(store, &s.old_root, now)?;
        println!(
            "valid certificates chaining to the old root: {}",
            blocking.len()
        );
        for b in blocking {
            println!(
                "  serial {}  {}  not after {}",
                b.serial,
                b.spiffe_id,
                rfc3339(b.not_after)
            );
        }
    }
    Ok(())
}

fn phase_name(s: &RotationState) -> &'static str {
    match s.phase {
        Phase::Rotated => "rotated (both roots published; the old root signs)",
        Phase::Activated => "activated (both roots published; the new root signs)",
        Phase::Retired => "retired (only the new root is published)",
    }
}
