//! The cache on tokio's paused clock with an in-process CA that signs with the real issuance
//! policy: pre-minting, renewal at half the lifetime, deleted entries, a CA that goes away and
//! comes back, and answers that must be refused.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use mesh::clock::TokioClock;
use pki::clock::Clock;
use time::macros::datetime;

use super::*;
use crate::ca::{CaFuture, Entries, JwtAnswer, SvidAnswer};

const START: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

struct FakeCa {
    root: pki::CaMaterial,
    clock: Arc<dyn Clock>,
    entries: Mutex<Vec<Entry>>,
    revision: AtomicUsize,
    down: AtomicBool,
    minted: AtomicUsize,
    /// Issue for this identity instead of the entry's (a CA that answers wrongly).
    wrong_identity: Mutex<Option<String>>,
    /// What `GET /api/v1/bundle/federated` answers.
    federated: Mutex<Option<Vec<u8>>>,
}

impl FakeCa {
    fn new(clock: Arc<dyn Clock>) -> Arc<FakeCa> {
        Arc::new(FakeCa {
            root: pki::CaMaterial::generate_root(
                "agent test root",
                START - time::Duration::hours(1),
            )
            .unwrap(),
            clock,
            entries: Mutex::new(Vec::new()),
            revision: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            minted: AtomicUsize::new(0),
            wrong_identity: Mutex::new(None),
            federated: Mutex::new(None),
        })
    }

    fn set_entries(&self, entries: Vec<Entry>) {
        *self.entries.lock().unwrap() = entries;
        self.revision.fetch_add(1, Ordering::SeqCst);
    }

    fn check_up(&self) -> Result<(), CaCallError> {
        if self.down.load(Ordering::SeqCst) {
            Err(CaCallError::Unreachable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

impl AgentCa for FakeCa {
    fn entries(&self) -> CaFuture<'_, Entries> {
        Box::pin(async move {
            self.check_up()?;
            Ok(Entries {
                revision: self.revision.load(Ordering::SeqCst) as u64,
                entries: self.entries.lock().unwrap().clone(),
            })
        })
    }

    fn svid<'a>(&'a self, entry_id: &'a str, csr_pem: &'a str) -> CaFuture<'a, SvidAnswer> {
        Box::pin(async move {
            self.check_up()?;
            let entry = self
                .entries
                .lock()
                .unwrap()
                .iter()
                .find(|e| e.id == entry_id)
                .cloned()
                .ok_or_else(|| CaCallError::Refused {
                    what: "svid".into(),
                    status: 404,
                    code: "unknown_entry".into(),
                    message: entry_id.into(),
                })?;
            let csr = pki::csr::parse_and_verify(csr_pem.as_bytes()).unwrap();
            let id = self
                .wrong_identity
                .lock()
                .unwrap()
                .clone()
                .unwrap_or(entry.spiffe_id.clone());
            let issued = pki::IssuancePolicy::default()
                .issue(
                    &pki::LeafRequest {
                        spiffe_id: &pki::SpiffeId::parse(&id).unwrap(),
                        dns: &entry.dns,
                        ips: &[],
                        spki_der: &csr.spki_der,
                        ttl: time::Duration::seconds(entry.ttl_seconds as i64),
                        now: self.clock.now(),
                    },
                    &self.root,
                )
                .unwrap();
            self.minted.fetch_add(1, Ordering::SeqCst);
            Ok(SvidAnswer {
                certificate: issued.pem,
                chain: Vec::new(),
            })
        })
    }

    fn jwt<'a>(
        &'a self,
        _entry_id: &'a str,
        _audience: &'a [String],
        _ttl: Option<Duration>,
    ) -> CaFuture<'a, JwtAnswer> {
        Box::pin(async move { Err(CaCallError::Unreachable("not in this test".into())) })
    }

    fn spiffe_bundle(&self) -> CaFuture<'_, Vec<u8>> {
        Box::pin(async move {
            self.check_up()?;
            Ok(br#"{"keys":[]}"#.to_vec())
        })
    }

    fn federated_bundles(&self) -> CaFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            self.check_up()?;
            Ok(self.federated.lock().unwrap().clone())
        })
    }

    fn crl(&self) -> CaFuture<'_, Vec<u8>> {
        Box::pin(async move {
            self.check_up()?;
            let now = self.clock.now();
            let crl = pki::crl::sign_crl(&self.root, &[], 1, now, now + time::Duration::hours(1))
                .unwrap();
            Ok(crl)
        })
    }
}

fn entry(id: &str, spiffe_id: &str, ttl_seconds: u64) -> Entry {
    Entry {
        id: id.into(),
        spiffe_id: spiffe_id.into(),
        parent_id: "spiffe://mesh.local/agent/node1".into(),
        selectors: vec![pki::selector::Selector::Uid(1000)],
        ttl_seconds,
        dns: Vec::new(),
    }
}

fn setup() -> (Arc<FakeCa>, Arc<SvidCache>) {
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(START));
    let ca = FakeCa::new(clock.clone());
    let root = ca.root.cert_der().as_ref().to_vec();
    let cache = SvidCache::new(
        ca.clone(),
        clock,
        CacheConfig {
            entry_refresh: Duration::from_secs(5),
            curve: pki::Curve::P256,
        },
        Arc::new(move || vec![root.clone()]),
    );
    (ca, cache)
}

/// Waits (on the paused clock, which jumps to the next timer) until `pred` holds.
async fn wait_for(
    rx: &mut watch::Receiver<Arc<Snapshot>>,
    within: Duration,
    pred: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    tokio::time::timeout(within, async {
        loop {
            let s = rx.borrow_and_update().clone();
            if pred(&s) {
                return s;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the cache did not reach the expected state in time")
}

#[tokio::test(start_paused = true)]
async fn svids_are_minted_in_advance_and_renewed_at_half_life() {
    let (ca, cache) = setup();
    ca.set_entries(vec![entry("e1", "spiffe://mesh.local/service/web", 60)]);
    let mut rx = cache.subscribe();
    let task = tokio::spawn(cache.clone().run());
    let first = wait_for(&mut rx, Duration::from_secs(1), |s| {
        s.svids.contains_key("e1")
    })
    .await;
    let svid = first.svids["e1"].clone();
    assert!(first.crl.is_some(), "the CRL is part of the snapshot");
    assert_eq!(first.roots.len(), 1);
    let key = pki::keys::parse_private_key_pem(
        pki::pem::encode("PRIVATE KEY", &svid.key_pkcs8).as_bytes(),
    )
    .unwrap()
    .0;
    let info = pki::CertInfo::from_der(&svid.chain[0]).unwrap();
    assert_eq!(
        info.spki_sha256,
        pki::sha256_hex(&pki::keys::spki_der(&key))
    );

    let started = tokio::time::Instant::now();
    let second = wait_for(&mut rx, Duration::from_secs(60), |s| {
        s.svids.get("e1").is_some_and(|n| n.serial != svid.serial)
    })
    .await;
    let renewed_after = started.elapsed();
    let half = (svid.not_after - svid.not_before) / 2;
    let due = Duration::try_from(svid.not_before + half - START).unwrap();
    assert!(
        renewed_after >= due && renewed_after <= due + Duration::from_secs(1),
        "renewed after {renewed_after:?}, due at {due:?}"
    );
    assert_ne!(
        second.svids["e1"].key_pkcs8, svid.key_pkcs8,
        "a new key each time"
    );
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn deleted_entries_lose_their_svids_and_changed_ones_are_reminted() {
    let (ca, cache) = setup();
    ca.set_entries(vec![
        entry("e1", "spiffe://mesh.local/service/web", 3600),
        entry("e2", "spiffe://mesh.local/service/db", 3600),
    ]);
    let mut rx = cache.subscribe();
    let task = tokio::spawn(cache.clone().run());
    let s = wait_for(&mut rx, Duration::from_secs(1), |s| s.svids.len() == 2).await;
    let e1_serial = s.svids["e1"].serial.clone();
    let mut changed = entry("e1", "spiffe://mesh.local/service/web", 3600);
    changed.dns = vec!["web.local".into()];
    ca.set_entries(vec![changed]);
    let s = wait_for(&mut rx, Duration::from_secs(10), |s| {
        s.svids.len() == 1 && s.svids.get("e1").is_some_and(|n| n.serial != e1_serial)
    })
    .await;
    assert_eq!(s.svids["e1"].entry.dns, vec!["web.local".to_string()]);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn cached_svids_are_served_while_the_ca_is_down_until_they_expire() {
    let (ca, cache) = setup();
    ca.set_entries(vec![entry("e1", "spiffe://mesh.local/service/web", 60)]);
    let mut rx = cache.subscribe();
    let task = tokio::spawn(cache.clone().run());
    let s = wait_for(&mut rx, Duration::from_secs(1), |s| {
        s.svids.contains_key("e1")
    })
    .await;
    let svid = s.svids["e1"].clone();
    ca.down.store(true, Ordering::SeqCst);
    // Past the renewal time the old SVID is still there (renewal fails)...
    tokio::time::sleep(
        Duration::try_from(svid.renew_at() - START).unwrap() + Duration::from_secs(2),
    )
    .await;
    let now = cache.current();
    assert_eq!(now.svids["e1"].serial, svid.serial);
    assert_eq!(
        now.entries.len(),
        1,
        "entries kept while the CA is unreachable"
    );
    // ...until it expires.
    let s = wait_for(&mut rx, Duration::from_secs(60), |s| s.svids.is_empty()).await;
    assert!(cache.clock().now() >= svid.not_after);
    assert_eq!(s.entries.len(), 1);
    // The CA comes back: a new SVID within a refresh interval.
    ca.down.store(false, Ordering::SeqCst);
    wait_for(&mut rx, Duration::from_secs(6), |s| {
        s.svids.contains_key("e1")
    })
    .await;
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_certificate_for_another_identity_is_refused() {
    let (ca, cache) = setup();
    ca.set_entries(vec![entry("e1", "spiffe://mesh.local/service/web", 60)]);
    *ca.wrong_identity.lock().unwrap() = Some("spiffe://mesh.local/service/admin".into());
    cache.refresh().await;
    assert_eq!(ca.minted.load(Ordering::SeqCst), 1);
    assert!(
        cache.current().svids.is_empty(),
        "the wrong certificate was kept"
    );
}

#[tokio::test(start_paused = true)]
async fn federated_bundles_reach_the_snapshot_and_leave_it_when_the_ca_drops_them() {
    let (ca, cache) = setup();
    ca.set_entries(vec![entry("e1", "spiffe://mesh.local/service/web", 600)]);
    let other = pki::CaMaterial::generate_root("b.example root", START).unwrap();
    let jwk = pki::jwt_svid::x509_authority_jwk(other.cert_der()).unwrap();
    let answer = serde_json::json!({"federated_bundles": {
        "b.example": {"keys": [jwk], "spiffe_sequence": 1, "spiffe_refresh_hint": 300},
        "broken.example": {"keys": []},
    }});
    *ca.federated.lock().unwrap() = Some(answer.to_string().into_bytes());
    let mut rx = cache.subscribe();
    let task = tokio::spawn(cache.clone().run());
    let with = wait_for(&mut rx, Duration::from_secs(1), |s| !s.federated.is_empty()).await;
    assert_eq!(
        with.federated,
        BTreeMap::from([("spiffe://b.example".to_string(), other.cert_der().to_vec())]),
        "b.example's root, keyed by its trust domain ID; the unusable bundle left out"
    );
    *ca.federated.lock().unwrap() = Some(br#"{"federated_bundles": {}}"#.to_vec());
    wait_for(&mut rx, Duration::from_secs(30), |s| s.federated.is_empty()).await;
    task.abort();
}
