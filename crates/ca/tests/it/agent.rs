//! Agent issuance against a deletion or revocation racing it: the store's hook runs the rival
//! change after the authority's own checks and signature, right before the transaction that
//! records the SVID. That transaction must see the change and refuse, so no certificate or
//! token is handed out after a deletion or revocation committed (docs/ca-api.md "Agent API").

use std::sync::Arc;

use mtls_ca::authority::Authority;
use mtls_ca::error::Kind;
use mtls_ca::registration::{create_entry, NewEntry};
use mtls_ca::store::*;
use pki::clock::ManualClock;
use pki::selector::Selector;
use pki::{CaMaterial, SpiffeId, TrustDomain};
use time::Duration;

use crate::harness::{config, csr, der, new_key, START, TD};
use crate::racing_store::RacingStore;

const AGENT: &str = "spiffe://mesh.local/agent/node1";

struct Setup {
    store: Arc<RacingStore>,
    authority: Authority,
    clock: Arc<ManualClock>,
    agent_cert: Vec<u8>,
    agent_serial: String,
    entry: String,
    _tmp: tempfile::TempDir,
}

fn setup(sqlite: bool) -> Setup {
    let clock = Arc::new(ManualClock::new(START));
    let tmp = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Store> = if sqlite {
        Arc::new(
            SqliteStore::create(&tmp.path().join("ca.db"), &[("trust_domain", TD)])
                .unwrap()
                .with_clock(clock.clone()),
        )
    } else {
        Arc::new(MemoryStore::new(&[("trust_domain", TD)], clock.clone()))
    };
    let store = Arc::new(RacingStore::new(inner));
    let ca = CaMaterial::generate_root("Agent Race Root", START - Duration::days(1)).unwrap();
    let authority = Authority::new(ca, vec![], store.clone(), config(), clock.clone())
        .with_jwt_signer(pki::jwt_svid::JwtSigner::from_pkcs8(&new_key().serialize_der()).unwrap());
    let td = TrustDomain::parse(TD).unwrap();
    let agent = SpiffeId::parse(AGENT).unwrap();
    let token = mtls_ca::admin::create_token(
        store.as_ref(),
        &td,
        &agent,
        &[],
        &[],
        Duration::minutes(5),
        clock.as_ref(),
    )
    .unwrap();
    let issued = authority
        .sign(&mtls_ca::authority::SignInput {
            token: &token,
            csr_pem: &csr(&new_key()),
            requested_id: AGENT,
            ttl: None,
        })
        .unwrap();
    let entry = create_entry(
        store.as_ref(),
        &td,
        &NewEntry {
            parent: agent,
            spiffe_id: SpiffeId::parse("spiffe://mesh.local/service/web").unwrap(),
            selectors: vec![Selector::parse("unix:uid:1000").unwrap()],
            ttl: Duration::minutes(30),
            dns: vec![],
        },
        clock.as_ref(),
    )
    .unwrap();
    Setup {
        store,
        authority,
        clock,
        agent_cert: der(&issued.certificate).to_vec(),
        agent_serial: issued.serial,
        entry: entry.id,
        _tmp: tmp,
    }
}

fn agent_certs(store: &dyn Store) -> usize {
    store
        .list_certs()
        .unwrap()
        .iter()
        .filter(|c| c.kind == IssueKind::Agent)
        .count()
}

fn intact(store: &dyn Store) {
    match store.verify_audit().unwrap() {
        AuditCheck::Intact { .. } => {}
        other => panic!("the audit log does not verify: {other:?}"),
    }
}

#[test]
fn an_entry_deleted_while_an_svid_is_signed_yields_no_svid() {
    for sqlite in [false, true] {
        let s = setup(sqlite);
        let entry = s.entry.clone();
        let now = pki::clock::Clock::now(s.clock.as_ref());
        s.store.arm(move |store| {
            assert!(store.delete_entry(&entry, "cli", now).unwrap());
        });
        let e = s
            .authority
            .agent_svid(Some(&s.agent_cert), &s.entry, &csr(&new_key()))
            .unwrap_err();
        assert_eq!(
            (e.kind, e.code),
            (Kind::NotFound, "unknown_entry"),
            "{sqlite}: {e}"
        );
        assert_eq!(
            agent_certs(s.store.as_ref()),
            0,
            "sqlite={sqlite}: nothing stored"
        );
        intact(s.store.as_ref());
    }
}

#[test]
fn an_entry_deleted_while_a_jwt_is_signed_yields_no_jwt() {
    for sqlite in [false, true] {
        let s = setup(sqlite);
        let entry = s.entry.clone();
        let now = pki::clock::Clock::now(s.clock.as_ref());
        s.store.arm(move |store| {
            assert!(store.delete_entry(&entry, "cli", now).unwrap());
        });
        let e = s
            .authority
            .agent_jwt(Some(&s.agent_cert), &s.entry, &["db".to_string()], None)
            .unwrap_err();
        assert_eq!(e.code, "unknown_entry", "sqlite={sqlite}: {e}");
        intact(s.store.as_ref());
    }
}

#[test]
fn an_agent_revoked_while_an_svid_is_signed_yields_no_svid() {
    for sqlite in [false, true] {
        let s = setup(sqlite);
        let serial = s.agent_serial.clone();
        let now = pki::clock::Clock::now(s.clock.as_ref());
        s.store.arm(move |store| {
            assert!(matches!(
                store.revoke(&serial, None, "cli", now).unwrap(),
                Revoke::Done { .. }
            ));
        });
        let e = s
            .authority
            .agent_svid(Some(&s.agent_cert), &s.entry, &csr(&new_key()))
            .unwrap_err();
        assert_eq!(e.code, "certificate_revoked", "sqlite={sqlite}: {e}");
        assert_eq!(
            agent_certs(s.store.as_ref()),
            0,
            "sqlite={sqlite}: nothing stored"
        );
        intact(s.store.as_ref());
    }
}

#[test]
fn without_a_race_the_svid_is_recorded_and_audited() {
    for sqlite in [false, true] {
        let s = setup(sqlite);
        let issued = s
            .authority
            .agent_svid(Some(&s.agent_cert), &s.entry, &csr(&new_key()))
            .unwrap();
        assert_eq!(issued.spiffe_id, "spiffe://mesh.local/service/web");
        assert_eq!(issued.expires_at, START + Duration::minutes(30));
        assert_eq!(agent_certs(s.store.as_ref()), 1);
        // Expired agent certificates are refused like revoked ones.
        s.clock.advance(Duration::hours(2));
        let e = s
            .authority
            .agent_svid(Some(&s.agent_cert), &s.entry, &csr(&new_key()))
            .unwrap_err();
        assert_eq!(e.code, "certificate_expired", "sqlite={sqlite}: {e}");
        intact(s.store.as_ref());
    }
}

/// `audit verify` replays registration entries too: rows edited, added, removed or restored
/// behind the chain's back are named.
#[test]
fn audit_verify_names_tampered_entries() {
    let cases: [(&str, &str); 4] = [
        (
            "UPDATE entries SET selectors = '[\"unix:uid:0\"]'",
            "selectors is [\"unix:uid:0\"], but entry",
        ),
        (
            "INSERT INTO entries VALUES ('00000000000000000000000000000000', \
             'spiffe://mesh.local/service/x', 'spiffe://mesh.local/agent/node1', \
             '[\"unix:uid:0\"]', 60, '[]', 0)",
            "entries row 00000000000000000000000000000000: stored, but no audit entry created it",
        ),
        (
            "DELETE FROM entries",
            "but the entries table has no such row",
        ),
        ("RESTORE", "stored, but entry"),
    ];
    for (sql, problem) in cases {
        let s = setup(true);
        s.authority
            .agent_svid(Some(&s.agent_cert), &s.entry, &csr(&new_key()))
            .unwrap();
        intact(s.store.as_ref());
        let conn = rusqlite::Connection::open(s._tmp.path().join("ca.db")).unwrap();
        if sql == "RESTORE" {
            // Delete through the store (audited), then put the row back by hand.
            let row: (String, String, String, String, i64, String, i64) = conn
                .query_row("SELECT * FROM entries", [], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })
                .unwrap();
            let now = pki::clock::Clock::now(s.clock.as_ref());
            assert!(s.store.delete_entry(&s.entry, "cli", now).unwrap());
            conn.execute(
                "INSERT INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![row.0, row.1, row.2, row.3, row.4, row.5, row.6],
            )
            .unwrap();
        } else {
            conn.execute(sql, []).unwrap();
        }
        match s.store.verify_audit().unwrap() {
            AuditCheck::Mismatch { problems, .. } => assert!(
                problems.iter().any(|p| p.contains(problem)),
                "{sql}: {problems:?}"
            ),
            other => panic!("{sql}: not detected: {other:?}"),
        }
    }
}
