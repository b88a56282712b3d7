//! Group commit of the SQLite and PostgreSQL stores (crates/ca/src/store/group_commit.rs,
//! sqlite_batch.rs, postgres_batch.rs): concurrent issuances share one transaction and one
//! durable commit, yet each stays all-or-nothing, and the audit chain stays one chain in commit
//! order. Every test runs on both stores (PostgreSQL: a fresh database of the test cluster,
//! `testkit::postgres`).
//!
//! The batch tests build a batch step by step: the store's clock (read once per write call,
//! inside the batch, while the call holds the connection) is a gate the test opens one call at a
//! time, and `writers_waiting` says when the next caller queues behind the gate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration as StdDuration, Instant};

use mtls_ca::authority::{Authority, Issued, SignInput};
use mtls_ca::error::{AuthorityError, STORE_UNREACHABLE};
use mtls_ca::store::{AuditCheck, PostgresStore, SqliteStore, Store, StoreError};
use pki::clock::{Clock, ManualClock};
use pki::{CaMaterial, SpiffeId, TrustDomain};
use time::{Duration, OffsetDateTime};

use crate::harness::{config, csr, full_id, new_key, START, TD};

/// Generous: a step waits for another thread to reach a point it reaches in microseconds.
pub(crate) const STEP: StdDuration = StdDuration::from_secs(20);

/// A clock that, once armed, holds every caller until the test lets it through.
#[derive(Debug)]
pub(crate) struct Gate {
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

    pub(crate) fn arm(&self) {
        *self.state.lock().unwrap() = GateState {
            armed: true,
            ..GateState::default()
        };
    }

    pub(crate) fn disarm(&self) {
        self.state.lock().unwrap().armed = false;
        self.changed.notify_all();
    }

    /// Waits until the `n`th caller is held at the gate (it holds the store's connection then).
    pub(crate) fn wait_arrived(&self, n: usize) {
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
    pub(crate) fn pass_one(&self) {
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

/// The store under test, with its group commit's counters.
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres {
        store: Arc<PostgresStore>,
        /// The database's name in the shared test cluster.
        database: String,
    },
}

impl Backend {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(s) => s.clone(),
            Backend::Postgres { store, .. } => store.clone(),
        }
    }

    fn writers_waiting(&self) -> usize {
        match self {
            Backend::Sqlite(s) => s.writers_waiting(),
            Backend::Postgres { store, .. } => store.writers_waiting(),
        }
    }

    pub(crate) fn batches_committed(&self) -> usize {
        match self {
            Backend::Sqlite(s) => s.batches_committed(),
            Backend::Postgres { store, .. } => store.batches_committed(),
        }
    }
}

pub(crate) struct Setup {
    pub(crate) gate: Arc<Gate>,
    pub(crate) backend: Backend,
    /// The backend's store.
    pub(crate) store: Arc<dyn Store>,
    pub(crate) authority: Arc<Authority>,
    _tmp: tempfile::TempDir,
}

pub(crate) fn setup(postgres: bool) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::new());
    let backend = if postgres {
        let url = testkit::postgres::PgCluster::shared().new_database();
        let database = url.rsplit('/').next().unwrap().to_string();
        let store = PostgresStore::connect(&url)
            .unwrap()
            .with_clock(gate.clone());
        store.init_meta("trust_domain", TD).unwrap();
        Backend::Postgres {
            store: Arc::new(store),
            database,
        }
    } else {
        Backend::Sqlite(Arc::new(
            SqliteStore::create(&tmp.path().join("ca.db"), &[("trust_domain", TD)])
                .unwrap()
                .with_clock(gate.clone()),
        ))
    };
    let store = backend.store();
    let ca = CaMaterial::generate_root("Group Commit Root", START - Duration::days(1)).unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let authority = Arc::new(Authority::new(ca, vec![], store.clone(), config(), clock));
    Setup {
        gate,
        backend,
        store,
        authority,
        _tmp: tmp,
    }
}

/// Runs `test` on a SQLite store, then on a PostgreSQL one.
pub(crate) fn on_both(test: impl Fn(Setup)) {
    for postgres in [false, true] {
        test(setup(postgres));
    }
}

impl Setup {
    pub(crate) fn token(&self, id: &str) -> String {
        mtls_ca::admin::create_token(
            self.store.as_ref(),
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
    pub(crate) fn wait_queued(&self, n: usize) {
        let deadline = Instant::now() + STEP;
        while self.backend.writers_waiting() != n {
            assert!(Instant::now() < deadline, "{n} writers never queued");
            thread::yield_now();
        }
    }

    pub(crate) fn audit_entries(&self) -> u64 {
        match self.store.verify_audit().unwrap() {
            AuditCheck::Intact { entries, .. } => entries,
            other => panic!(
                "{}: the audit log does not verify: {other:?}",
                self.backend.name()
            ),
        }
    }
}

/// Waits until a write call is queued for the connection. (A real deadline: the signers get
/// there in milliseconds, the bound only turns a hang into a failure.)
#[allow(clippy::disallowed_methods)]
fn wait_for_queue(backend: &Backend) {
    let deadline = Instant::now() + STEP;
    while backend.writers_waiting() == 0 {
        assert!(Instant::now() < deadline, "no writer ever queued");
        thread::yield_now();
    }
}

pub(crate) fn token_hash(token: &str) -> String {
    mtls_ca::tokens::hash(token)
}

#[test]
fn concurrent_issuances_from_threads_all_land_with_one_valid_chain() {
    on_both(|s| {
        const N: usize = 48;
        let tokens: Vec<String> = (0..N).map(|i| s.token(&format!("w{i}"))).collect();
        let before = s.backend.batches_committed();
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
            assert!(s.store.find_cert(serial).unwrap().is_some(), "{serial}");
        }
        // N token entries and N issue entries, one chain that replays against the tables.
        assert_eq!(s.audit_entries(), 2 * N as u64);
        assert!(s.backend.batches_committed() - before <= N);
    });
}

#[test]
fn many_concurrent_issuances_with_failing_ones_among_them_commit_all_the_others() {
    on_both(|s| {
        const N: usize = 48;
        // A certificate already stored: redeeming a token with it again fails on its serial.
        let taken = s
            .authority
            .sign(&SignInput {
                token: &s.token("taken"),
                csr_pem: &csr(&new_key()),
                requested_id: &full_id("taken"),
                ttl: None,
            })
            .unwrap();
        let taken = s.store.find_cert(&taken.serial).unwrap().unwrap();
        let tokens: Vec<String> = (0..N).map(|i| s.token(&format!("m{i}"))).collect();
        let entries_before = s.audit_entries();
        let start = Arc::new(std::sync::Barrier::new(N));
        let threads: Vec<_> = tokens
            .into_iter()
            .enumerate()
            .map(|(i, token)| {
                let authority = s.authority.clone();
                let store = s.store.clone();
                let taken = taken.clone();
                let start = start.clone();
                let backend = s.backend.clone();
                let id = full_id(&format!("m{i}"));
                let csr_pem = csr(&new_key());
                thread::spawn(move || {
                    start.wait();
                    if i % 8 == 3 {
                        // Every eighth call fails inside the batch: its token is marked used,
                        // then the certificate's serial is refused. It goes in once signers
                        // queue for the connection, so that its batch has others in it (the
                        // signers reach the store later: they check a CSR and sign first).
                        wait_for_queue(&backend);
                        let hash = token_hash(&token);
                        let failed = store.redeem_token(&hash, START, &taken);
                        (hash, Err(failed))
                    } else {
                        let issued = authority.sign(&SignInput {
                            token: &token,
                            csr_pem: &csr_pem,
                            requested_id: &id,
                            ttl: None,
                        });
                        (token_hash(&token), Ok(issued))
                    }
                })
            })
            .collect();
        let mut issued = 0;
        for t in threads {
            let (hash, outcome) = t.join().unwrap();
            match outcome {
                Ok(signed) => {
                    let signed = signed.unwrap();
                    assert!(s.store.find_cert(&signed.serial).unwrap().is_some());
                    issued += 1;
                }
                Err(failed) => {
                    assert!(
                        matches!(
                            failed,
                            Err(StoreError::Db { .. }) | Err(StoreError::Postgres { .. })
                        ),
                        "{}: {failed:?}",
                        s.backend.name()
                    );
                    let token = s.store.find_token(&hash).unwrap().unwrap();
                    assert_eq!(token.used_at, None, "a failed call's token use was kept");
                }
            }
        }
        assert_eq!(issued, N - N / 8);
        // One token entry and one issue entry per issued certificate, nothing of the failed.
        assert_eq!(s.audit_entries(), entries_before + issued as u64);
        assert_eq!(s.store.list_certs().unwrap().len(), issued + 1);
    });
}

#[test]
fn a_batch_of_three_issuances_commits_once_with_each_in_the_chain() {
    on_both(|s| {
        let tokens: Vec<String> = (0..3).map(|i| s.token(&format!("b{i}"))).collect();
        let before = s.backend.batches_committed();
        s.gate.arm();
        let mut threads = Vec::new();
        for (i, token) in tokens.into_iter().enumerate() {
            threads.push(s.sign_async(token, &format!("b{i}")));
            if i > 0 {
                // The previous caller holds the connection at the gate; this one queues behind
                // it, then the previous one goes through and leaves the batch open for it.
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
            s.backend.batches_committed() - before,
            1,
            "{}: one batch, one commit",
            s.backend.name()
        );
        assert_eq!(s.audit_entries(), 6);
    });
}

#[test]
fn a_failing_call_in_the_middle_of_a_batch_fails_alone() {
    on_both(|s| {
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
        let earlier = s.store.find_cert(&earlier.serial).unwrap().unwrap();
        let middle = s.token("middle");
        let last = s.token("last");
        let entries_before = s.audit_entries();
        let certs_before = s.store.list_certs().unwrap().len();
        let batches_before = s.backend.batches_committed();
        s.gate.arm();

        // 1. A sign holds the connection in a new batch.
        let a = s.sign_async(first, "first");
        s.gate.wait_arrived(1);
        // 2. A redemption that marks its token used, then fails: its certificate's serial is
        //    taken.
        let store = s.store.clone();
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
        // The batch is still open: its first call is not answered yet, and reads (which see
        // only committed data) do not see it.
        assert!(
            !a.is_finished(),
            "a call was answered before its batch committed"
        );
        assert_eq!(s.store.list_certs().unwrap().len(), certs_before);
        s.gate.pass_one();

        let a = a.join().unwrap().unwrap();
        let failed = b.join().unwrap();
        let c = c.join().unwrap().unwrap();
        assert!(
            matches!(
                failed,
                Err(StoreError::Db { .. }) | Err(StoreError::Postgres { .. })
            ),
            "{}: {failed:?}",
            s.backend.name()
        );
        assert_eq!(s.backend.batches_committed() - batches_before, 1);
        // The calls before and after it are stored; its token use was rolled back with it.
        assert!(s.store.find_cert(&a.serial).unwrap().is_some());
        assert!(s.store.find_cert(&c.serial).unwrap().is_some());
        let token = s.store.find_token(&middle_hash).unwrap().unwrap();
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
    });
}

/// Ends the session holding the write lock of `database` (the open batch's connection), as a
/// database restart or failover would, and waits until it is gone. Returns how many sessions
/// were ended ("0" or "1").
fn end_batch_session(database: &str) -> String {
    testkit::postgres::PgCluster::shared().psql(
        "postgres",
        &format!(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(l.pid, 20000))
             FROM pg_locks l JOIN pg_database d ON d.oid = l.database
             WHERE l.locktype = 'advisory' AND l.granted AND d.datname = '{database}'"
        ),
    )
}

fn postgres_database(s: &Setup) -> String {
    match &s.backend {
        Backend::Postgres { database, .. } => database.clone(),
        Backend::Sqlite(_) => panic!("a PostgreSQL test on SQLite"),
    }
}

fn refused_as_unreachable(outcome: &Result<Issued, AuthorityError>) -> bool {
    matches!(outcome, Err(e) if e.code == STORE_UNREACHABLE)
}

#[test]
fn a_batch_cut_by_a_lost_database_connection_answers_nobody_and_stores_nothing() {
    let s = setup(true);
    let database = postgres_database(&s);
    let first = s.token("first");
    let second = s.token("second");
    let entries_before = s.audit_entries();
    let certs_before = s.store.list_certs().unwrap().len();
    s.gate.arm();
    // 1. A sign runs its call in a new batch, which stays open for the caller queued behind.
    let a = s.sign_async(first.clone(), "first");
    s.gate.wait_arrived(1);
    let b = s.sign_async(second.clone(), "second");
    s.wait_queued(1);
    s.gate.pass_one();
    // 2. The second holds the connection: the first's certificate is written but not committed.
    s.gate.wait_arrived(2);
    assert!(!a.is_finished(), "answered before its batch committed");
    // 3. The connection is lost before the batch commits.
    assert_eq!(end_batch_session(&database), "1", "no batch held the lock");
    s.gate.pass_one();
    let a = a.join().unwrap();
    let b = b.join().unwrap();
    // Nobody is answered with a certificate; both are told to retry (503), nothing is stored.
    assert!(refused_as_unreachable(&a), "{a:?}");
    assert!(refused_as_unreachable(&b), "{b:?}");
    assert_eq!(s.store.list_certs().unwrap().len(), certs_before);
    for token in [&first, &second] {
        let stored = s.store.find_token(&token_hash(token)).unwrap().unwrap();
        assert_eq!(stored.used_at, None, "a lost batch's token use was kept");
    }
    assert_eq!(s.audit_entries(), entries_before);
    // The retry works, on a new connection.
    s.gate.disarm();
    for (token, name) in [(&first, "first"), (&second, "second")] {
        let retried = s.authority.sign(&SignInput {
            token,
            csr_pem: &csr(&new_key()),
            requested_id: &full_id(name),
            ttl: None,
        });
        let retried = retried.unwrap();
        assert!(s.store.find_cert(&retried.serial).unwrap().is_some());
    }
    assert_eq!(s.audit_entries(), entries_before + 2);
}

#[test]
#[allow(clippy::disallowed_methods)] // a real deadline: it only turns a hang into a failure
fn connections_lost_during_a_burst_of_issuances_lose_no_acknowledged_certificate() {
    const SIGNERS: usize = 16;
    const KILLS: usize = 3;
    let s = setup(true);
    let database = postgres_database(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let signers: Vec<_> = (0..SIGNERS)
        .map(|i| {
            let authority = s.authority.clone();
            let store = s.store.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut outcomes = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let name = format!("s{i}-{n}");
                    let id = SpiffeId::parse(&full_id(&name)).unwrap();
                    // Token creation goes through the batches too, and may be cut as well.
                    let Ok(token) = mtls_ca::admin::create_token(
                        store.as_ref(),
                        &TrustDomain::parse(TD).unwrap(),
                        &id,
                        &[],
                        &[],
                        Duration::minutes(10),
                        &ManualClock::new(START),
                    ) else {
                        outcomes.push(None);
                        continue;
                    };
                    let signed = authority.sign(&SignInput {
                        token: &token,
                        csr_pem: &csr(&new_key()),
                        requested_id: &full_id(&name),
                        ttl: None,
                    });
                    outcomes.push(Some((token_hash(&token), name, signed)));
                }
                outcomes
            })
        })
        .collect();
    // Cut the batch connection whenever one holds the lock, until it happened KILLS times.
    let deadline = Instant::now() + StdDuration::from_secs(120);
    let mut kills = 0;
    while kills < KILLS {
        assert!(
            Instant::now() < deadline,
            "only {kills} batches were cut in time"
        );
        if end_batch_session(&database) == "1" {
            kills += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let outcomes: Vec<_> = signers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let (mut acknowledged, mut refused) = (0, 0);
    for outcome in &outcomes {
        match outcome {
            None => refused += 1,
            Some((_, _, Ok(issued))) => {
                acknowledged += 1;
                let stored = s.store.find_cert(&issued.serial).unwrap();
                assert!(stored.is_some(), "acknowledged {} is lost", issued.serial);
            }
            Some((hash, name, Err(e))) => {
                refused += 1;
                assert_eq!(e.code, STORE_UNREACHABLE, "{e:?}");
                // A commit cut after it reached the disk is refused yet stored: then all of it
                // is (the token used and its certificate recorded), never a part.
                let token = s.store.find_token(hash).unwrap().unwrap();
                if token.used_at.is_some() {
                    let id = full_id(name);
                    let certs = s.store.list_certs().unwrap();
                    assert!(certs.iter().any(|c| c.spiffe_id == id), "{name}");
                }
            }
        }
    }
    assert!(acknowledged > 0, "no issuance succeeded");
    assert!(refused > 0, "{kills} cut batches refused nobody");
    // The chain replays against the tables: every stored certificate has its entry.
    s.audit_entries();
}

#[test]
fn a_batch_on_a_server_turned_read_only_fails_and_the_next_one_connects_afresh() {
    let s = setup(true);
    let database = postgres_database(&s);
    let cluster = testkit::postgres::PgCluster::shared();
    let token = s.token("after-failover");
    let sign = || {
        s.authority.sign(&SignInput {
            token: &token,
            csr_pem: &csr(&new_key()),
            requested_id: &full_id("after-failover"),
            ttl: None,
        })
    };
    // A failover demotes the server under the CA's connections: every new session is
    // read-only, and the sessions the CA had are gone.
    cluster.psql(
        "postgres",
        &format!("ALTER DATABASE {database} SET default_transaction_read_only = on"),
    );
    cluster.psql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid, 20000)) FROM pg_stat_activity
             WHERE datname = '{database}'"
        ),
    );
    for _ in 0..3 {
        let refused = sign();
        assert!(refused_as_unreachable(&refused), "{refused:?}");
    }
    // The primary is writable again: the CA must not keep a read-only session as its batch
    // connection (each refused batch closed its own), so a client retrying gets through once
    // the read-only sessions in the pool have been tried (at most one per pool slot).
    cluster.psql(
        "postgres",
        &format!("ALTER DATABASE {database} RESET default_transaction_read_only"),
    );
    let mut outcome = sign();
    for _ in 0..20 {
        if outcome.is_ok() {
            break;
        }
        assert!(refused_as_unreachable(&outcome), "{outcome:?}");
        outcome = sign();
    }
    let issued = outcome.unwrap();
    assert!(s.store.find_cert(&issued.serial).unwrap().is_some());
    s.audit_entries();
}
