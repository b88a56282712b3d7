//! Group commit of the SQLite store (crates/ca/src/store/sqlite_batch.rs): concurrent
//! issuances share one transaction and one fsync, yet each stays all-or-nothing, and the audit
//! chain stays one chain in commit order.
//!
//! The batch tests build a batch step by step: the store's clock (read once per write call,
//! inside the batch, while the call holds the connection) is a gate the test opens one call at a
//! time, and `SqliteStore::writers_waiting` says when the next caller queues behind the gate.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration as StdDuration, Instant};

use mtls_ca::authority::{Authority, Issued, SignInput};
use mtls_ca::error::AuthorityError;
use mtls_ca::store::{AuditCheck, SqliteStore, Store};
use pki::clock::{Clock, ManualClock};
use pki::{CaMaterial, SpiffeId, TrustDomain};
use time::{Duration, OffsetDateTime};

use crate::harness::{config, csr, full_id, new_key, START, TD};

/// Generous: a step waits for another thread to reach a point it reaches in microseconds.
const STEP: StdDuration = StdDuration::from_secs(20);

/// A clock that, once armed, holds every caller until the test lets it through.
#[derive(Debug)]
struct Gate {
    inner: ManualClock,
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    armed: bool,
    /// Callers that reached the gate since it was armed.
    arrived: usize,
    /// Callers let through since it was armed.
    passed: usize,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            inner: ManualClock::new(START),
            state: Mutex::new(GateState::default()),
            changed: Condvar::new(),
        }
    }

    fn arm(&self) {
        *self.state.lock().unwrap() = GateState {
            armed: true,
            ..GateState::default()
        };
    }

    fn disarm(&self) {
        self.state.lock().unwrap().armed = false;
        self.changed.notify_all();
    }

    /// Waits until the `n`th caller is held at the gate (it holds the store's connection then).
    fn wait_arrived(&self, n: usize) {
        let state = self.state.lock().unwrap();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, STEP, |s| s.arrived < n)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "write call {n} never reached the store: {state:?}"
        );
    }

    /// Lets the next held caller through.
    fn pass_one(&self) {
        self.state.lock().unwrap().passed += 1;
        self.changed.notify_all();
    }
}

impl Clock for Gate {
    fn now(&self) -> OffsetDateTime {
        let mut state = self.state.lock().unwrap();
        if state.armed {
            state.arrived += 1;
            let me = state.arrived;
            self.changed.notify_all();
            while state.armed && state.passed < me {
                state = self.changed.wait(state).unwrap();
            }
        }
        self.inner.now()
    }
}

struct Setup {
    gate: Arc<Gate>,
    sqlite: Arc<SqliteStore>,
    authority: Arc<Authority>,
    _tmp: tempfile::TempDir,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::new());
    let sqlite = Arc::new(
        SqliteStore::create(&tmp.path().join("ca.db"), &[("trust_domain", TD)])
            .unwrap()
            .with_clock(gate.clone()),
    );
    let ca = CaMaterial::generate_root("Group Commit Root", START - Duration::days(1)).unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let authority = Arc::new(Authority::new(ca, vec![], sqlite.clone(), config(), clock));
    Setup {
        gate,
        sqlite,
        authority,
        _tmp: tmp,
    }
}

impl Setup {
    fn token(&self, id: &str) -> String {
        mtls_ca::admin::create_token(
            self.sqlite.as_ref(),
            &TrustDomain::parse(TD).unwrap(),
            &SpiffeId::parse(&full_id(id)).unwrap(),
            &[],
            &[],
            Duration::minutes(10),
            &ManualClock::new(START),
        )
        .unwrap()
    }

    /// Signs `id` with `token` on another thread.
    fn sign_async(
        &self,
        token: String,
        id: &str,
    ) -> thread::JoinHandle<Result<Issued, AuthorityError>> {
        let authority = self.authority.clone();
        let id = full_id(id);
        thread::spawn(move || {
            authority.sign(&SignInput {
                token: &token,
                csr_pem: &csr(&new_key()),
                requested_id: &id,
                ttl: None,
            })
        })
    }

    /// Waits until `n` callers are queued for the store's connection. (A real deadline: the
    /// other thread gets there in microseconds, the bound only turns a hang into a failure.)
    #[allow(clippy::disallowed_methods)]
    fn wait_queued(&self, n: usize) {
        let deadline = Instant::now() + STEP;
        while self.sqlite.writers_waiting() != n {
            assert!(Instant::now() < deadline, "{n} writers never queued");
            thread::yield_now();
        }
    }

    fn audit_entries(&self) -> u64 {
        match self.sqlite.verify_audit().unwrap() {
            AuditCheck::Intact { entries, .. } => entries,
            other => panic!("the audit log does not verify: {other:?}"),
        }
    }
}

fn token_hash(token: &str) -> String {
    mtls_ca::tokens::hash(token)
}

#[test]
fn concurrent_issuances_from_threads_all_land_with_one_valid_chain() {
    let s = setup();
    const N: usize = 48;
    let tokens: Vec<String> = (0..N).map(|i| s.token(&format!("w{i}"))).collect();
    let before = s.sqlite.batches_committed();
    let threads: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| s.sign_async(t, &format!("w{i}")))
        .collect();
    let mut serials: Vec<String> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap().serial)
        .collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), N);
    for serial in &serials {
        assert!(s.sqlite.find_cert(serial).unwrap().is_some(), "{serial}");
    }
    // N token entries and N issue entries, one chain that replays against the tables.
    assert_eq!(s.audit_entries(), 2 * N as u64);
    assert!(s.sqlite.batches_committed() - before <= N);
}

#[test]
fn a_batch_of_three_issuances_commits_once_with_each_in_the_chain() {
    let s = setup();
    let tokens: Vec<String> = (0..3).map(|i| s.token(&format!("b{i}"))).collect();
    let before = s.sqlite.batches_committed();
    s.gate.arm();
    let mut threads = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        threads.push(s.sign_async(token, &format!("b{i}")));
        if i > 0 {
            // The previous caller holds the connection at the gate; this one queues behind it,
            // then the previous one goes through and leaves the batch open for it.
            s.wait_queued(1);
            s.gate.pass_one();
        }
        s.gate.wait_arrived(i + 1);
    }
    // Nobody queued behind the last one: it commits the batch.
    s.gate.pass_one();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(
        s.sqlite.batches_committed() - before,
        1,
        "one batch, one commit"
    );
    assert_eq!(s.audit_entries(), 6);
}

#[test]
fn a_failing_call_in_the_middle_of_a_batch_fails_alone() {
    let s = setup();
    let first = s.token("first");
    let earlier = s
        .authority
        .sign(&SignInput {
            token: &s.token("earlier"),
            csr_pem: &csr(&new_key()),
            requested_id: &full_id("earlier"),
            ttl: None,
        })
        .unwrap();
    let earlier = s.sqlite.find_cert(&earlier.serial).unwrap().unwrap();
    let middle = s.token("middle");
    let last = s.token("last");
    let entries_before = s.audit_entries();
    let certs_before = s.sqlite.list_certs().unwrap().len();
    let batches_before = s.sqlite.batches_committed();
    s.gate.arm();

    // 1. A sign holds the connection in a new batch.
    let a = s.sign_async(first, "first");
    s.gate.wait_arrived(1);
    // 2. A redemption that marks its token used, then fails: its certificate's serial is taken.
    let store = s.sqlite.clone();
    let middle_hash = token_hash(&middle);
    let b = {
        let hash = middle_hash.clone();
        let cert = earlier.clone();
        thread::spawn(move || store.redeem_token(&hash, START, &cert))
    };
    s.wait_queued(1);
    s.gate.pass_one();
    s.gate.wait_arrived(2);
    // 3. Another sign queues behind the failing one, and commits the batch.
    let c = s.sign_async(last, "last");
    s.wait_queued(1);
    s.gate.pass_one();
    s.gate.wait_arrived(3);
    // The batch is still open: its first call is not answered yet, and reads (which see only
    // committed data) do not see it.
    assert!(
        !a.is_finished(),
        "a call was answered before its batch committed"
    );
    assert_eq!(s.sqlite.list_certs().unwrap().len(), certs_before);
    s.gate.pass_one();

    let a = a.join().unwrap().unwrap();
    let failed = b.join().unwrap();
    let c = c.join().unwrap().unwrap();
    assert!(
        matches!(failed, Err(mtls_ca::store::StoreError::Db { .. })),
        "{failed:?}"
    );
    assert_eq!(s.sqlite.batches_committed() - batches_before, 1);
    // The calls before and after it are stored; its token use was rolled back with it.
    assert!(s.sqlite.find_cert(&a.serial).unwrap().is_some());
    assert!(s.sqlite.find_cert(&c.serial).unwrap().is_some());
    let token = s.sqlite.find_token(&middle_hash).unwrap().unwrap();
    assert_eq!(
        token.used_at, None,
        "the failed call's token use must be undone"
    );
    assert_eq!(s.audit_entries(), entries_before + 2);
    // And the token still works.
    s.gate.disarm();
    let redone = s.authority.sign(&SignInput {
        token: &middle,
        csr_pem: &csr(&new_key()),
        requested_id: &full_id("middle"),
        ttl: None,
    });
    assert!(redone.is_ok(), "{redone:?}");
}
