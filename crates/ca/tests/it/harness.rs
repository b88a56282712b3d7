//! The authority in-process on a `ManualClock`, over the reference `MemoryStore`, a real
//! `SqliteStore` or a real `PostgresStore`: every scenario runs on all three, so both database
//! stores are held to the reference behaviour (one suite, every backend). Nothing here waits: time moves when a test moves the clock.

use std::sync::Arc;

use mtls_ca::authority::{Authority, AuthorityConfig, Issued, SignInput};
use mtls_ca::error::AuthorityError;
use mtls_ca::store::{MemoryStore, PostgresStore, SqliteStore, Store};
use pki::clock::ManualClock;
use pki::{CaMaterial, IssuancePolicy, SpiffeId, TrustDomain};
use rcgen::KeyPair;
use rustls_pki_types::CertificateDer;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Where every test's clock starts: whole seconds, so stored times equal the clock's.
pub const START: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);
pub const TD: &str = "mesh.local";
pub const ADMIN: &str = "spiffe://mesh.local/admin";

pub struct Harness {
    pub name: &'static str,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    pub authority: Authority,
    /// The same store as `store` when it is the memory store (for `set_unavailable`).
    pub memory: Option<Arc<MemoryStore>>,
    tmp: Option<tempfile::TempDir>,
}

/// A certificate the authority issued, with the key it certifies.
pub struct Holder {
    pub issued: Issued,
    pub key: KeyPair,
}

impl Holder {
    pub fn der(&self) -> CertificateDer<'static> {
        der(&self.issued.certificate)
    }
}

pub fn der(pem: &str) -> CertificateDer<'static> {
    pki::pem::parse_certificates(pem.as_bytes())
        .unwrap()
        .remove(0)
}

/// Runs `scenario` on the memory store, a SQLite file and a PostgreSQL database (each in a
/// fresh database of one test cluster, `testkit::postgres`).
pub fn on_each_store(scenario: impl Fn(&Harness)) {
    for h in [Harness::memory(), Harness::sqlite(), Harness::postgres()] {
        scenario(&h);
        // Whatever a scenario did, the audit chain accounts for every row.
        match h.store.verify_audit().unwrap() {
            mtls_ca::store::AuditCheck::Intact { .. } => {}
            other => panic!("{}: the audit log does not verify: {other:?}", h.name),
        }
    }
}

pub fn config() -> AuthorityConfig {
    AuthorityConfig {
        trust_domain: TrustDomain::parse(TD).unwrap(),
        default_ttl: Duration::hours(1),
        max_ttl: Duration::hours(24),
        admin_id: Some(SpiffeId::parse(ADMIN).unwrap()),
        policy: IssuancePolicy::default(),
    }
}

impl Harness {
    pub fn memory() -> Harness {
        let clock = Arc::new(ManualClock::new(START));
        let memory = Arc::new(MemoryStore::new(&[("trust_domain", TD)], clock.clone()));
        let mut h = Harness::with_store("memory", clock, memory.clone(), None);
        h.memory = Some(memory);
        h
    }

    /// `memory()` whose CA is `ca` (e.g. one whose key is in a token).
    pub fn memory_with_ca(ca: CaMaterial) -> Harness {
        let mut h = Harness::memory();
        h.authority = Authority::new(ca, vec![], h.store.clone(), config(), h.clock.clone());
        h
    }

    pub fn sqlite() -> Harness {
        let clock = Arc::new(ManualClock::new(START));
        let tmp = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::create(&tmp.path().join("ca.db"), &[("trust_domain", TD)])
                .unwrap()
                .with_clock(clock.clone()),
        );
        Harness::with_store("sqlite", clock, store, Some(tmp))
    }

    pub fn postgres() -> Harness {
        let clock = Arc::new(ManualClock::new(START));
        let url = testkit::postgres::PgCluster::shared().new_database();
        let store = PostgresStore::connect(&url)
            .unwrap()
            .with_clock(clock.clone());
        store.init_meta("trust_domain", TD).unwrap();
        Harness::with_store("postgres", clock, Arc::new(store), None)
    }

    fn with_store(
        name: &'static str,
        clock: Arc<ManualClock>,
        store: Arc<dyn Store>,
        tmp: Option<tempfile::TempDir>,
    ) -> Harness {
        let ca =
            CaMaterial::generate_root("Authority Test Root", START - Duration::days(1)).unwrap();
        let authority = Authority::new(ca, vec![], store.clone(), config(), clock.clone());
        Harness {
            name,
            clock,
            store,
            authority,
            memory: None,
            tmp,
        }
    }

    /// The directory of the SQLite store's files.
    pub fn store_dir(&self) -> std::path::PathBuf {
        self.tmp
            .as_ref()
            .expect("a SQLite harness")
            .path()
            .to_path_buf()
    }

    pub fn now(&self) -> OffsetDateTime {
        pki::clock::Clock::now(self.clock.as_ref())
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// A join token for `spiffe://mesh.local/service/NAME` (or the full ID given) that lives
    /// `ttl`, created now.
    pub fn token(&self, id: &str, ttl: Duration) -> String {
        mtls_ca::admin::create_token(
            self.store.as_ref(),
            &TrustDomain::parse(TD).unwrap(),
            &SpiffeId::parse(&full_id(id)).unwrap(),
            &["svc.local".to_string()],
            &[],
            ttl,
            self.clock.as_ref(),
        )
        .unwrap()
    }

    /// Redeems `token` for `id` with a CSR for `key`.
    pub fn sign_with(
        &self,
        token: &str,
        id: &str,
        key: &KeyPair,
        ttl: Option<&str>,
    ) -> Result<Issued, AuthorityError> {
        let csr = csr(key);
        let id = full_id(id);
        self.authority.sign(&SignInput {
            token,
            csr_pem: &csr,
            requested_id: &id,
            ttl,
        })
    }

    /// A token and a first certificate for `id`.
    pub fn enroll(&self, id: &str, ttl: Option<&str>) -> Holder {
        let token = self.token(id, Duration::minutes(10));
        let key = new_key();
        let issued = self
            .sign_with(&token, id, &key, ttl)
            .unwrap_or_else(|e| panic!("{}: enrolling {id}: {e}", self.name));
        Holder { issued, key }
    }

    /// Renews as `holder` with a CSR for `key`.
    pub fn renew(&self, holder: &Holder, key: &KeyPair) -> Result<Issued, AuthorityError> {
        self.authority
            .renew(Some(holder.der().as_ref()), &csr(key), None)
    }

    /// Renews as `holder` with a fresh key; panics on refusal.
    pub fn renewed(&self, holder: &Holder) -> Holder {
        let key = new_key();
        let issued = self
            .renew(holder, &key)
            .unwrap_or_else(|e| panic!("{}: renewing: {e}", self.name));
        Holder { issued, key }
    }

    pub fn cert_count(&self) -> usize {
        self.store.list_certs().unwrap().len()
    }

    /// The serials the current CRL lists (its signature verified against the root), and the CRL.
    pub fn crl(&self) -> (Vec<String>, pki::crl::VerifiedCrl) {
        let der = self.authority.crl().unwrap();
        let crl = pki::crl::verify_crl(&der, &[self.authority.ca().cert_der().clone()]).unwrap();
        let mut serials: Vec<String> = crl.serials.iter().map(hex::encode).collect();
        serials.sort();
        (serials, crl)
    }

    pub fn crls_signed(&self) -> u64 {
        self.authority
            .metrics
            .crl_generated
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

pub fn full_id(id: &str) -> String {
    if id.starts_with("spiffe://") {
        id.to_string()
    } else {
        format!("spiffe://{TD}/service/{id}")
    }
}

pub fn new_key() -> KeyPair {
    pki::keys::generate(pki::Curve::P384).unwrap()
}

/// A CSR for `key` (a new one each call: ECDSA signatures are randomised).
pub fn csr(key: &KeyPair) -> String {
    rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

/// `serials` sorted, for comparing with a CRL's list.
pub fn sorted(serials: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = serials.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
