//! A running two-tier CA takes up a renewed `intermediate.crt` without a restart
//! (docs/operations.md, "Offline root and intermediate"): at every root-rotation poll
//! (`root_follow.rs`, once a second) it compares the file's identity (device, inode, size,
//! modification time) with the one it last took, and when it changed checks the certificate
//! exactly as `intermediate install` does (`DataDir::reread_intermediate`: the same key, the
//! same root, the same trust domain, valid now). Only then is it swapped in, through the one
//! swap of the root set (`Authority::switch_intermediate`): leaves, the chain sent with them
//! and the CA's own API certificate use it from the next request on.
//!
//! A file that does not fit changes nothing: the CA keeps signing with the intermediate it
//! has, `/healthz` is untouched (the CA is as healthy as before), every check that refuses it
//! counts in `mtls_ca_intermediate_reload_failures_total`, and the reason is logged once per
//! distinct reason. The file is checked again at every poll, so fixing it is enough.
//!
//! Every poll also repeats the start-up refusal of a `root.key` in the data directory
//! (`DataDir::refuse_online_root_key`): while one lies there, a changed `intermediate.crt` is
//! refused as above, and `/healthz` answers 503 with the reason (the start-up would refuse this
//! directory; monitoring must see it). The CA keeps signing with the intermediate it loaded,
//! whose key is not the root's: taking the service down would not take the root key back
//! offline. The appearance and the removal of the file are logged once each.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::authority::Authority;
use crate::datadir::DataDir;
use crate::tls::ApiIdentity;

/// What a look at `intermediate.crt` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// Not a two-tier CA, or the file is the one being served.
    Unchanged,
    /// The CA now signs with the renewed intermediate, valid until this NotAfter.
    Switched(OffsetDateTime),
    /// The file changed but does not fit this CA; the current intermediate stays.
    Refused(String),
}

/// The identity of a file: a replaced or rewritten file has another.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        Ok(FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// Follows `intermediate.crt` of one data directory.
pub struct IntermediateFollower {
    dir: Arc<DataDir>,
    authority: Arc<Authority>,
    api: Arc<ApiIdentity>,
    /// The identity of the file whose certificate is served (None: not looked at yet, so
    /// the first check compares the certificate itself with the one loaded at start).
    served: Option<FileStamp>,
    /// The last reason a changed file was refused (logged once per reason).
    last_failure: Option<String>,
    /// Whether the last poll found a `root.key` in the directory.
    root_key_seen: bool,
}

impl IntermediateFollower {
    /// A follower for the intermediate `authority` signs with, kept in `dir`.
    pub fn new(
        dir: Arc<DataDir>,
        authority: Arc<Authority>,
        api: Arc<ApiIdentity>,
    ) -> IntermediateFollower {
        IntermediateFollower {
            dir,
            authority,
            api,
            served: None,
            last_failure: None,
            root_key_seen: false,
        }
    }

    /// Looks at the file once and switches to it when it changed and fits (blocking: reads
    /// the file and signs an API certificate). `from_rotation` is the intermediate a two-tier
    /// root rotation certified by the active root (`RotationState::active_intermediate`):
    /// while the CA signs with it, a file that does not fit is the one it superseded
    /// (certified by the old root), not a failed renewal.
    pub fn check(&mut self, from_rotation: Option<&CertificateDer<'static>>) -> Reloaded {
        let current = self.authority.ca();
        if !current.is_intermediate() {
            return Reloaded::Unchanged;
        }
        let root_key = self.watch_root_key();
        let path = self.dir.intermediate_cert();
        let stamp = match FileStamp::of(&path) {
            Ok(stamp) => stamp,
            Err(e) => return self.refuse(format!("cannot read {}: {e}", path.display())),
        };
        if self.served.as_ref() == Some(&stamp) {
            return Reloaded::Unchanged;
        }
        if let Err(why) = root_key {
            return self.refuse(why);
        }
        let renewed = match self.dir.reread_intermediate(&current, self.authority.now()) {
            Ok(renewed) => renewed,
            Err(_) if from_rotation == Some(current.cert_der()) => {
                tracing::info!(
                    event = "intermediate_superseded",
                    "{} is superseded by the intermediate the root rotation certified with the \
                     new root (served from the store); install a renewal under the new root \
                     there when due (docs/operations.md, \"Root rotation of a two-tier CA\")",
                    path.display()
                );
                self.served = Some(stamp);
                self.last_failure = None;
                return Reloaded::Unchanged;
            }
            Err(e) => return self.refuse(format!("{e:#}")),
        };
        self.served = Some(stamp);
        self.last_failure = None;
        if renewed.cert_der() == current.cert_der() {
            return Reloaded::Unchanged;
        }
        let not_after = renewed.not_after();
        self.authority.switch_intermediate(Arc::new(renewed));
        if let Err(e) = self.api.reissue(&self.authority) {
            // The same key signed fine a moment ago: retried at the next renewal.
            tracing::error!(error = %e, "re-issuing the API certificate under the renewed intermediate failed");
        }
        self.authority
            .metrics
            .intermediate_reloads
            .fetch_add(1, Ordering::Relaxed);
        let not_after_text = pki::timefmt::rfc3339(not_after);
        tracing::info!(
            event = "intermediate_reloaded",
            not_after = %not_after_text,
            "intermediate reloaded from {}: leaves are signed under it from now on; it expires \
             at {not_after_text}",
            path.display()
        );
        // The gauge reads the new certificate from now on; this logs a warning at once if
        // the renewal is already past a threshold.
        self.authority.intermediate_life();
        Reloaded::Switched(not_after)
    }

    /// The start-up check of `root.key` again: Err with the reason while the file is there,
    /// which `/healthz` reports; logged when it appears and when it is gone.
    fn watch_root_key(&mut self) -> Result<(), String> {
        let verdict = self
            .dir
            .refuse_online_root_key()
            .map_err(|e| format!("{e:#}"));
        match (&verdict, self.root_key_seen) {
            (Err(why), false) => tracing::error!(
                event = "root_key_online",
                reason = %why,
                "{why} (the running CA keeps signing with its intermediate; /healthz reports \
                 this until root.key is gone)"
            ),
            (Ok(()), true) => tracing::info!(
                event = "root_key_gone",
                "root.key is no longer in {}: /healthz is clear of it",
                self.dir.path.display()
            ),
            _ => {}
        }
        self.root_key_seen = verdict.is_err();
        self.authority.set_datadir_unsafe(verdict.clone().err());
        verdict
    }

    fn refuse(&mut self, why: String) -> Reloaded {
        let reason = format!(
            "not taking up the changed intermediate: {why}; still signing with the current \
             intermediate (docs/operations.md, \"Offline root and intermediate\")"
        );
        self.authority
            .metrics
            .intermediate_reload_failures
            .fetch_add(1, Ordering::Relaxed);
        if self.last_failure.as_deref() != Some(reason.as_str()) {
            tracing::error!(event = "intermediate_reload_refused", reason = %reason, "{reason}");
            self.last_failure = Some(reason.clone());
        }
        Reloaded::Refused(reason)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use std::fs;

    use pki::clock::ManualClock;
    use pki::sealed_key::Passphrase;
    use pki::{CaMaterial, IssuancePolicy, TrustDomain};
    use time::Duration;

    use super::*;
    use crate::authority::AuthorityConfig;
    use crate::datadir_hierarchy::{sign_intermediate, OfflineRoot};
    use crate::store::MemoryStore;

    /// A two-tier CA in a temporary directory, its authority on a manual clock, and a
    /// follower that has looked at the file loaded at start.
    struct Fixture {
        _tmp: tempfile::TempDir,
        dir: Arc<DataDir>,
        offline: OfflineRoot,
        pass: Passphrase,
        /// The intermediate's CSR, for renewals (read while the directory is sound).
        csr: String,
        ca: Arc<CaMaterial>,
        clock: Arc<ManualClock>,
        authority: Arc<Authority>,
        follower: IntermediateFollower,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Arc::new(DataDir::new(&tmp.path().join("ca")));
        dir.ensure().unwrap();
        let offline = OfflineRoot::new(&tmp.path().join("offline"));
        let pass = Passphrase::new(b"a long enough passphrase".to_vec()).unwrap();
        let td = TrustDomain::parse("mesh.local").unwrap();
        let start = OffsetDateTime::now_utc();
        dir.init_two_tier(&offline, &pass, &td, Duration::days(30), true, start)
            .unwrap();
        let (ca, _, sqlite) = dir.open_or_init(None, &td, start).unwrap();
        let ca = Arc::new(ca);
        let clock = Arc::new(ManualClock::new(start));
        let store = Arc::new(MemoryStore::new(
            &[("trust_domain", "mesh.local")],
            clock.clone(),
        ));
        let authority = Arc::new(Authority::new(
            ca.clone(),
            vec![],
            store,
            AuthorityConfig {
                trust_domain: td.clone(),
                default_ttl: Duration::hours(1),
                max_ttl: Duration::hours(24),
                admin_id: None,
                policy: IssuancePolicy::default(),
            },
            clock.clone(),
        ));
        let (api, _) =
            ApiIdentity::issue_first(&ca, td.ca_id(), vec!["localhost".into()], vec![], start)
                .unwrap();
        let mut follower = IntermediateFollower::new(dir.clone(), authority.clone(), api);
        assert_eq!(
            follower.check(None),
            Reloaded::Unchanged,
            "the file loaded at start"
        );
        let csr = dir.intermediate_csr(&sqlite).unwrap();
        Fixture {
            _tmp: tmp,
            dir,
            offline,
            pass,
            csr,
            ca,
            clock,
            authority,
            follower,
        }
    }

    /// Writes an intermediate certificate renewed by the offline root over `intermediate.crt`.
    fn renew(f: &Fixture, lifetime: Duration) -> String {
        let root = f.offline.open(&f.pass).unwrap();
        let (renewed, _) =
            sign_intermediate(&root, f.csr.as_bytes(), lifetime, f.authority.now()).unwrap();
        fs::write(f.dir.intermediate_cert(), &renewed).unwrap();
        renewed
    }

    fn reload_failures(f: &Fixture) -> u64 {
        f.authority
            .metrics
            .intermediate_reload_failures
            .load(Ordering::Relaxed)
    }

    /// Another key's certificate over `intermediate.crt` is refused at every check and changes
    /// nothing (signer, health); the renewed certificate is then taken up once, and the
    /// intermediate-life warnings start again for it.
    #[test]
    fn a_renewed_intermediate_is_taken_up_and_a_foreign_one_changes_nothing() {
        let mut f = fixture();
        let (dir, ca, clock, authority) = (
            f.dir.clone(),
            f.ca.clone(),
            f.clock.clone(),
            f.authority.clone(),
        );

        // Past half of its life: warned once.
        clock.advance(Duration::days(20));
        assert_eq!(authority.intermediate_life().unwrap().crossed, Some(0.5));
        fs::copy(dir.root_cert(), dir.intermediate_cert()).unwrap();
        for failures in 1..=2 {
            let Reloaded::Refused(reason) = f.follower.check(None) else {
                panic!("another key's certificate must be refused");
            };
            assert!(reason.contains("does not fit this CA"), "{reason}");
            assert_eq!(
                authority
                    .metrics
                    .intermediate_reload_failures
                    .load(Ordering::Relaxed),
                failures,
                "each check counts"
            );
        }
        assert_eq!(
            authority.ca().cert_der(),
            ca.cert_der(),
            "still the old signer"
        );
        assert_eq!(authority.health(), Ok(()));

        let renewed = renew(&f, Duration::days(60));
        let Reloaded::Switched(not_after) = f.follower.check(None) else {
            panic!("the renewed intermediate must be taken up");
        };
        assert_eq!(authority.ca().not_after(), not_after);
        assert!(not_after > ca.not_after(), "{not_after}");
        assert_eq!(authority.ca().cert_pem(), renewed);
        assert_eq!(
            authority
                .metrics
                .intermediate_reloads
                .load(Ordering::Relaxed),
            1
        );
        assert_eq!(f.follower.check(None), Reloaded::Unchanged, "taken up once");
        assert_eq!(authority.intermediate_life().unwrap().crossed, None);
        clock.advance(Duration::days(31));
        assert_eq!(
            authority.intermediate_life().unwrap().crossed,
            Some(0.5),
            "the renewed intermediate's life is warned about afresh"
        );
    }

    /// A `root.key` put next to the running intermediate: `/healthz` reports it at once, a
    /// renewed intermediate (one that fits) is refused and counted while it lies there, the
    /// CA keeps signing with its intermediate, and once the file is gone both clear.
    #[test]
    fn a_root_key_appearing_in_the_directory_refuses_the_reload_and_fails_health() {
        let mut f = fixture();
        fs::copy(f.offline.key(), f.dir.root_key()).unwrap();
        assert_eq!(
            f.follower.check(None),
            Reloaded::Unchanged,
            "nothing to reload yet"
        );
        let health = f.authority.health().unwrap_err();
        assert!(health.contains("keeps its root key offline"), "{health}");
        assert_eq!(reload_failures(&f), 0, "no reload was attempted");

        let renewed = renew(&f, Duration::days(60));
        for failures in 1..=2 {
            let Reloaded::Refused(reason) = f.follower.check(None) else {
                panic!("a reload with root.key in the directory must be refused");
            };
            assert!(reason.contains("keeps its root key offline"), "{reason}");
            assert_eq!(reload_failures(&f), failures, "each check counts");
        }
        assert_eq!(
            f.authority.ca().cert_der(),
            f.ca.cert_der(),
            "still the old signer"
        );
        assert!(f.authority.health().is_err());

        fs::remove_file(f.dir.root_key()).unwrap();
        assert!(matches!(f.follower.check(None), Reloaded::Switched(_)));
        assert_eq!(f.authority.ca().cert_pem(), renewed);
        assert_eq!(f.authority.health(), Ok(()));
    }
}
