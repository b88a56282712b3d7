//! Rounds of pipelined token redemptions on PostgreSQL (crates/ca/src/store/postgres_pipeline.rs):
//! redemptions queued while a round runs are sent together in the next one, and every caller is
//! answered as if they had run one at a time: a used token or a failing call in the middle of a
//! round changes nothing for the others, and the audit chain has no gap. The outcome tests run
//! on SQLite too (one batch call at a time there), so both stores answer alike.
//!
//! A round is built step by step with the store's clock as a gate (`group_commit.rs`): the first
//! caller leads a round and is held at the gate, the others queue one by one in a known order,
//! then the gate opens and the first queued caller leads the next round with all of them.

use std::sync::Arc;
use std::thread;

use mtls_ca::authority::SignInput;
use mtls_ca::store::{CertRecord, Redeem, Store, StoreError};

use crate::group_commit::{on_both, setup, token_hash, Backend, Setup};
use crate::harness::{csr, full_id, new_key, START};

/// What one queued call redeems: a token's hash and the certificate to record with it.
type Call = (String, CertRecord);

/// A certificate record no store holds yet, signed by `donor`'s CA (its own store keeps it;
/// the store under test only sees the record).
fn fresh_record(donor: &Setup, id: &str) -> CertRecord {
    let issued = donor
        .authority
        .sign(&SignInput {
            token: &donor.token(id),
            csr_pem: &csr(&new_key()),
            requested_id: &full_id(id),
            ttl: None,
        })
        .unwrap();
    donor.store.find_cert(&issued.serial).unwrap().unwrap()
}

/// A new token of `s` for `id` and a fresh certificate record to redeem it with.
fn fresh_call(s: &Setup, donor: &Setup, id: &str) -> Call {
    (token_hash(&s.token(id)), fresh_record(donor, id))
}

/// Runs `lead` in a round of its own, held at the gate until `queued` have all queued behind
/// it in order, then lets everything through; returns the queued calls' answers in order.
fn in_one_round(s: &Setup, lead: Call, queued: Vec<Call>) -> Vec<Result<Redeem, StoreError>> {
    let redeem = |(hash, cert): Call| {
        let store: Arc<dyn Store> = s.store.clone();
        thread::spawn(move || store.redeem_token(&hash, START, &cert))
    };
    s.gate.arm();
    let leader = redeem(lead);
    s.gate.wait_arrived(1);
    let mut followers = Vec::new();
    for (i, call) in queued.into_iter().enumerate() {
        followers.push(redeem(call));
        s.wait_queued(i + 1);
    }
    s.gate.disarm();
    assert_eq!(leader.join().unwrap().unwrap(), Redeem::Done);
    followers.into_iter().map(|t| t.join().unwrap()).collect()
}

fn rounds(s: &Setup) -> Option<usize> {
    match &s.backend {
        Backend::Postgres { store, .. } => Some(store.redemption_rounds()),
        Backend::Sqlite(_) => None,
    }
}

fn stored(s: &Setup, cert: &CertRecord) -> bool {
    s.store.find_cert(&cert.serial).unwrap().is_some()
}

fn token_used(s: &Setup, hash: &str) -> bool {
    s.store.find_token(hash).unwrap().unwrap().used_at.is_some()
}

#[test]
fn redemptions_queued_behind_a_round_go_in_the_next_one_and_commit_together() {
    const QUEUED: usize = 20;
    let s = setup(true);
    let donor = setup(false);
    let lead = fresh_call(&s, &donor, "lead");
    let queued: Vec<Call> = (0..QUEUED)
        .map(|i| fresh_call(&s, &donor, &format!("q{i}")))
        .collect();
    let certs: Vec<CertRecord> = queued.iter().map(|(_, c)| c.clone()).collect();
    let entries_before = s.audit_entries();
    let (batches_before, rounds_before) = (s.backend.batches_committed(), rounds(&s));

    let answers = in_one_round(&s, lead, queued);

    for (answer, cert) in answers.iter().zip(&certs) {
        assert!(matches!(answer, Ok(Redeem::Done)), "{answer:?}");
        assert!(stored(&s, cert), "{}", cert.serial);
    }
    // The leader's round, then one round with all twenty, in one batch with one commit.
    assert_eq!(rounds(&s).unwrap() - rounds_before.unwrap(), 2);
    assert_eq!(s.backend.batches_committed() - batches_before, 1);
    assert_eq!(s.audit_entries(), entries_before + QUEUED as u64 + 1);
}

#[test]
fn a_used_token_in_the_middle_of_a_round_is_refused_and_the_calls_after_it_still_land() {
    on_both(|s| {
        let donor = setup(false);
        let used = fresh_call(&s, &donor, "used");
        let lead = fresh_call(&s, &donor, "lead");
        // The used token is redeemed first, so it is refused in the round; the calls behind
        // it were sent chained on its audit entry, which is never stored.
        assert_eq!(
            s.store.redeem_token(&used.0, START, &used.1).unwrap(),
            Redeem::Done
        );
        let again = (used.0.clone(), fresh_record(&donor, "used"));
        let queued = vec![
            fresh_call(&s, &donor, "a"),
            again.clone(),
            fresh_call(&s, &donor, "b"),
            fresh_call(&s, &donor, "c"),
            again.clone(),
            fresh_call(&s, &donor, "d"),
        ];
        let expected: Vec<bool> = queued.iter().map(|(h, _)| *h != used.0).collect();
        let certs: Vec<CertRecord> = queued.iter().map(|(_, c)| c.clone()).collect();
        let entries_before = s.audit_entries();

        let answers = in_one_round(&s, lead, queued);

        for ((answer, cert), lands) in answers.iter().zip(&certs).zip(expected) {
            let want = if lands {
                Redeem::Done
            } else {
                Redeem::AlreadyUsed
            };
            assert_eq!(answer.as_ref().unwrap(), &want, "{}", s.backend.name());
            assert_eq!(stored(&s, cert), lands, "{}", cert.serial);
        }
        // The leader and four others, each with its entry; the chain replays.
        assert_eq!(s.audit_entries(), entries_before + 5);
    });
}

#[test]
fn a_failing_redemption_in_the_middle_of_a_round_fails_alone() {
    on_both(|s| {
        let donor = setup(false);
        let lead = fresh_call(&s, &donor, "lead");
        // A record whose serial the store holds: its redemption fails on the primary key.
        let taken = fresh_call(&s, &donor, "taken");
        s.store.redeem_token(&taken.0, START, &taken.1).unwrap();
        let failing = (token_hash(&s.token("failing")), taken.1.clone());
        let before = fresh_call(&s, &donor, "before");
        let after: Vec<Call> = (0..3)
            .map(|i| fresh_call(&s, &donor, &format!("after{i}")))
            .collect();
        let mut queued = vec![before.clone(), failing.clone()];
        queued.extend(after.iter().cloned());
        let entries_before = s.audit_entries();

        let answers = in_one_round(&s, lead, queued);

        assert_eq!(answers[0].as_ref().unwrap(), &Redeem::Done);
        let failed = &answers[1];
        assert!(
            failed.as_ref().is_err_and(StoreError::is_taken_serial),
            "{}: {failed:?}",
            s.backend.name()
        );
        assert!(
            !token_used(&s, &failing.0),
            "the failed call's token use was kept"
        );
        for (answer, (hash, cert)) in answers[2..].iter().zip(&after) {
            assert_eq!(answer.as_ref().unwrap(), &Redeem::Done);
            assert!(stored(&s, cert) && token_used(&s, hash));
        }
        assert!(stored(&s, &before.1));
        assert_eq!(s.audit_entries(), entries_before + 5);
    });
}

#[test]
fn one_token_redeemed_many_times_in_one_round_is_used_once() {
    on_both(|s| {
        let donor = setup(false);
        let lead = fresh_call(&s, &donor, "lead");
        let hash = token_hash(&s.token("contested"));
        let mut queued: Vec<Call> = (0..10)
            .map(|i| (hash.clone(), fresh_record(&donor, &format!("contested{i}"))))
            .collect();
        let last = fresh_call(&s, &donor, "last");
        queued.push(last.clone());
        let certs: Vec<CertRecord> = queued.iter().map(|(_, c)| c.clone()).collect();
        let entries_before = s.audit_entries();

        let answers = in_one_round(&s, lead, queued);

        let done: Vec<usize> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Ok(Redeem::Done)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(done.len(), 2, "{}: {answers:?}", s.backend.name());
        assert_eq!(done[1], 10, "the call after the contested ones lands");
        for (i, (answer, cert)) in answers.iter().zip(&certs).enumerate() {
            let winner = done.contains(&i);
            if !winner {
                assert_eq!(answer.as_ref().unwrap(), &Redeem::AlreadyUsed);
            }
            assert_eq!(stored(&s, cert), winner, "{i}");
        }
        assert_eq!(s.audit_entries(), entries_before + 3);
    });
}
