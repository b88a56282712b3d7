//! `mtls-ca root rotate|activate|retire|status`: root rotation without an outage
//! (docs/operations.md, "Root rotation"; the logic is `mtls_ca::root_rotation`).

use anyhow::Context;
use mtls_ca::datadir::DataDir;
use mtls_ca::root_rotation::{self, Phase, RotationState};
use mtls_ca::root_rotation_two_tier;
use mtls_ca::store::Store;
use pki::clock::{Clock, SystemClock};
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
        RootAction::Rotate {
            from: Some(file), ..
        } => {
            let bytes =
                pki::files::read(&file).with_context(|| format!("--from {}", file.display()))?;
            let s = root_rotation_two_tier::rotate_from(dir, store, &bytes, now)
                .with_context(|| format!("--from {}", file.display()))?;
            eprintln!(
                "recorded the rotation to the new root {} with the intermediate it certified \
                 (kept in the store: replicas need no file); the CA still signs with the old \
                 root {}'s intermediate.\nRunning CAs publish both roots within a second. \
                 Next: after --min-overlap, `mtls-ca root activate`",
                s.new_fingerprint()?,
                s.old_fingerprint()?,
            );
            println!("new root fingerprint (SHA-256): {}", s.new_fingerprint()?);
        }
        RootAction::Rotate { .. } => {
            let made = root_rotation::rotate(dir, store, now)?;
            let s = &made.state;
            eprintln!(
                "made the new root {} (key {}) and cross-certificates both ways; the CA still \
                 signs with the old root {}.\nRunning CAs publish both roots within a second \
                 (`mtls-ca root status`: \"new root first published at\"). Next: copy {} to \
                 every other replica's data directory; after --min-overlap, `mtls-ca root \
                 activate`",
                s.new_fingerprint()?,
                made.key_path.display(),
                s.old_fingerprint()?,
                made.key_path.display(),
            );
            println!("new root fingerprint (SHA-256): {}", s.new_fingerprint()?);
        }
        RootAction::Activate {
            min_overlap,
            force,
            wait,
        } => {
            let now = match wait {
                true => wait_for_overlap(store, min_overlap)?,
                false => now,
            };
            let s = root_rotation::activate(dir, store, now, min_overlap, force)?;
            let signer = match s.is_two_tier() {
                true => "the intermediate certified by the new root",
                false => "the new root",
            };
            eprintln!(
                "{signer} {} signs leaves, CRLs and the CA's API certificate (running CAs \
                 switch within a second); the old root {} stays in the bundle until `mtls-ca \
                 root retire`.\nServices move to the new root as they renew",
                s.new_fingerprint()?,
                s.old_fingerprint()?
            );
        }
        RootAction::Retire => {
            let s = root_rotation::retire(dir, store, now)?;
            eprintln!(
                "retired the old root {}: the bundle holds only {} (running CAs switch within a \
                 second); services drop the old root on their next bundle refresh",
                s.old_fingerprint()?,
                s.new_fingerprint()?
            );
        }
        RootAction::Status => status(store, now)?,
    }
    Ok(())
}

/// How long `activate --wait` waits for a running CA to publish the new root: a CA reads the
/// rotation state every second (`mtls_ca::root_follow::POLL`).
const PUBLISH_WAIT: time::Duration = time::Duration::minutes(1);

/// `activate --wait`: blocks until a CA has published the new root for `min_overlap`, then
/// returns the time to activate at. The waits are bounded: a minute for a CA to publish, then
/// the rest of the overlap.
fn wait_for_overlap(
    store: &dyn Store,
    min_overlap: time::Duration,
) -> anyhow::Result<OffsetDateTime> {
    let clock = SystemClock;
    let Some((_, s)) = root_rotation::load_state(store)? else {
        anyhow::bail!("no root rotation to activate: run `mtls-ca root rotate` first");
    };
    let key = format!(
        "{}{}",
        root_rotation::PUBLISHED_PREFIX,
        s.new_fingerprint()?
    );
    let give_up = clock.now() + PUBLISH_WAIT;
    let published = loop {
        if let Some(at) = store.get_meta(&key)?.and_then(|t| t.parse::<i64>().ok()) {
            break OffsetDateTime::from_unix_timestamp(at)?;
        }
        if s.phase != Phase::Rotated || clock.now() > give_up {
            // activate() says why (wrong phase, or no CA published the new root).
            return Ok(clock.now());
        }
        wait(mtls_ca::root_follow::POLL);
    };
    let ready = published + min_overlap;
    let now = clock.now();
    if now < ready {
        eprintln!(
            "waiting until {} (the new root was first published at {}, --min-overlap {})",
            rfc3339(ready),
            rfc3339(published),
            pki::timefmt::human(min_overlap)
        );
        wait((ready - now).unsigned_abs());
    }
    Ok(clock.now())
}

/// A command-line program waiting on other processes (running CAs) and on the wall clock the
/// operator asked for: real time is the point here.
#[allow(clippy::disallowed_methods)]
fn wait(d: std::time::Duration) {
    std::thread::sleep(d);
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
        let blocking = root_rotation::still_on_old_root(store, &s, now)?;
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
