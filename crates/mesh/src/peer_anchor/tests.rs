//! Open connections against trust changes, on tokio's paused clock: a connection ends
//! ("untrusted") at the trust update that leaves its peer without a trusted root, and only
//! then. Our own domain is the test world's (mesh.local, `testing::World`); b.example and
//! c.example are federated test CAs.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use pki::CaMaterial;
use rustls_pki_types::CertificateDer;
use testkit::{LeafSpec, TestCa};
use tokio::task::JoinHandle;

use crate::federation::FederatedBundles;
use crate::peer_watch::{close_when_invalid, PeerTrust, WatchedCert};
use crate::testing::World;
use crate::trust::{Roots, TrustState};

fn td(name: &str) -> pki::TrustDomain {
    pki::TrustDomain::parse(name).unwrap()
}

fn roots(cas: &[&CaMaterial]) -> Roots {
    Roots::new(cas.iter().map(|c| c.cert_der().clone()).collect()).unwrap()
}

fn federate(trust: &TrustState, domains: &[(&str, &CaMaterial)]) {
    let bundles = domains
        .iter()
        .map(|(name, ca)| (td(name), roots(&[ca])))
        .collect();
    trust.set_federated(FederatedBundles::new(&td("mesh.local"), bundles).unwrap());
}

/// A leaf for `id` issued by `ca` at the world's time, as a one-certificate chain.
fn leaf(w: &World, ca: &TestCa, id: &str) -> Vec<CertificateDer<'static>> {
    let spec = LeafSpec {
        now: w.clock.now(),
        ..LeafSpec::new(id)
    };
    let issued = ca.issue_spec(&spec);
    vec![CertificateDer::from(issued.der)]
}

/// Watches `chain` as an open connection would, from now on.
fn watch(w: &World, chain: &[CertificateDer<'static>]) -> (WatchedCert, JoinHandle<&'static str>) {
    let cert = WatchedCert::from_chain(chain, Some(&w.trust)).unwrap();
    let judge = PeerTrust {
        trust: Some(w.trust.clone()),
        pins: None,
    };
    let task = tokio::spawn({
        let (cert, clock) = (cert.clone(), w.clock.clone());
        async move { close_when_invalid(&cert, judge, &*clock).await }
    });
    (cert, task)
}

/// Lets every woken watcher run, then says whether `task` is still watching.
async fn still_open(task: &JoinHandle<&'static str>) -> bool {
    tokio::time::sleep(Duration::from_secs(1)).await;
    !task.is_finished()
}

#[tokio::test(start_paused = true)]
async fn a_connection_of_a_federated_peer_ends_when_its_domain_is_removed_and_only_then() {
    let w = World::new(time::Duration::hours(1));
    let (b, c) = (TestCa::new("B Root"), TestCa::new("C Root"));
    federate(&w.trust, &[("b.example", &b.ca), ("c.example", &c.ca)]);
    let (_, foreign) = watch(&w, &leaf(&w, &b, "spiffe://b.example/caller"));
    let (_, ours) = watch(&w, w.credential().chain());
    assert!(still_open(&foreign).await && still_open(&ours).await);
    // Another domain removed: both stay.
    federate(&w.trust, &[("b.example", &b.ca)]);
    assert!(
        still_open(&foreign).await,
        "removing c.example closed a b.example peer"
    );
    // Its own domain removed: closed at this trust update, long before its certificate expires.
    federate(&w.trust, &[]);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(1), foreign)
            .await
            .unwrap()
            .unwrap(),
        "untrusted"
    );
    assert!(still_open(&ours).await, "our own peer must not be closed");
}

#[tokio::test(start_paused = true)]
async fn a_domain_federated_again_with_another_root_does_not_keep_the_old_peers() {
    let w = World::new(time::Duration::hours(1));
    let (b_old, b_new) = (TestCa::new("B Root"), TestCa::new("B Root 2"));
    federate(&w.trust, &[("b.example", &b_old.ca)]);
    let (_, old_peer) = watch(&w, &leaf(&w, &b_old, "spiffe://b.example/caller"));
    federate(&w.trust, &[("b.example", &b_new.ca)]);
    assert_eq!(old_peer.await.unwrap(), "untrusted");
}

#[tokio::test(start_paused = true)]
async fn a_connection_ends_when_its_root_is_dropped_from_our_bundle() {
    let w = World::new(time::Duration::hours(1));
    let next = TestCa::new("Next Mesh Root");
    assert!(w.trust.set_roots(roots(&[&w.ca.root, &next.ca])));
    let (_, on_old) = watch(&w, w.credential().chain());
    let (_, on_new) = watch(&w, &leaf(&w, &next, "spiffe://mesh.local/service/new"));
    // The new root leaves again first: only its peer goes.
    assert!(w.trust.set_roots(roots(&[&w.ca.root])));
    assert_eq!(on_new.await.unwrap(), "untrusted");
    assert!(still_open(&on_old).await);
    assert!(w.trust.set_roots(roots(&[&next.ca])));
    assert_eq!(on_old.await.unwrap(), "untrusted");
}

#[tokio::test(start_paused = true)]
async fn a_chain_reaching_a_remaining_root_through_a_cross_certificate_stays() {
    let w = World::new(time::Duration::hours(1));
    let next = TestCa::new("Next Mesh Root");
    let cross = next
        .ca
        .cross_sign(w.ca.root.cert_der(), w.clock.now())
        .unwrap();
    assert!(w.trust.set_roots(roots(&[&w.ca.root, &next.ca])));
    // Issued by the old root's key, presented with the new root's cross-certificate for it.
    let mut chain = w.credential().chain().to_vec();
    chain.push(cross);
    let (cert, task) = watch(&w, &chain);
    assert!(w.trust.set_roots(roots(&[&next.ca])));
    assert!(
        still_open(&task).await,
        "the chain still reaches the new root"
    );
    assert_eq!(
        cert.invalid_at(
            &PeerTrust {
                trust: Some(w.trust.clone()),
                pins: None
            },
            w.clock.now()
        ),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn a_forged_cross_certificate_does_not_keep_a_connection_open() {
    let w = World::new(time::Duration::hours(1));
    let next = TestCa::new("Next Mesh Root");
    // Same name as the new root, another key: its "cross-certificate" names the old root's
    // subject and key, but the new root never signed it.
    let impostor = TestCa::new("Next Mesh Root");
    let forged = impostor
        .ca
        .cross_sign(w.ca.root.cert_der(), w.clock.now())
        .unwrap();
    assert!(w.trust.set_roots(roots(&[&w.ca.root, &next.ca])));
    let mut chain = w.credential().chain().to_vec();
    chain.push(forged);
    let (_, task) = watch(&w, &chain);
    assert!(w.trust.set_roots(roots(&[&next.ca])));
    assert_eq!(task.await.unwrap(), "untrusted");
}

#[tokio::test(start_paused = true)]
async fn a_peer_behind_an_intermediate_is_judged_by_the_intermediates_root() {
    let w = World::new(time::Duration::hours(1));
    let (root, inter) = TestCa::two_tier("b.example");
    federate(&w.trust, &[("b.example", &root.ca)]);
    let mut chain = leaf(&w, &inter, "spiffe://b.example/caller");
    chain.push(inter.ca.cert_der().clone());
    let (_, task) = watch(&w, &chain);
    assert!(still_open(&task).await);
    federate(&w.trust, &[]);
    assert_eq!(task.await.unwrap(), "untrusted");
}

#[tokio::test(start_paused = true)]
async fn a_peer_whose_root_left_before_the_watch_started_is_closed_at_once() {
    let w = World::new(time::Duration::hours(1));
    let b = TestCa::new("B Root");
    // Verified while b.example was federated; the removal came before the watch began.
    let chain = leaf(&w, &b, "spiffe://b.example/caller");
    let (_, task) = watch(&w, &chain);
    assert_eq!(task.await.unwrap(), "untrusted");
    // Without a trust state (pinned mode) roots are not the judge.
    let cert = WatchedCert::from_chain(&chain, None).unwrap();
    assert_eq!(cert.invalid_at(&PeerTrust::default(), w.clock.now()), None);
}

#[test]
fn roots_are_compared_by_key_not_by_object_or_name() {
    // Roots are compared by key, not by the Roots object: a refresh bringing the same roots
    // (a new object) keeps the connection.
    let ca = TestCa::new("Mesh Root");
    let trust = TrustState::new(roots(&[&ca.ca]));
    let chain = vec![CertificateDer::from(ca.client("spiffe://mesh.local/x").der)];
    let anchors = super::Anchors::of(&chain, &trust);
    assert!(anchors.still_trusted(&trust));
    let again = TrustState::new(roots(&[&ca.ca]));
    assert!(anchors.still_trusted(&again));
    let other = TrustState::new(roots(&[&TestCa::new("Mesh Root").ca]));
    assert!(!anchors.still_trusted(&other), "same name, another key");
}

/// A remembered signature check vouches for exactly the certificate and the key it was made
/// with: the same certificate against another key, or another certificate of the same name
/// against the same key, is checked anew and fails.
#[test]
fn a_remembered_signature_vouches_only_for_its_certificate_and_key() {
    let now = time::OffsetDateTime::now_utc();
    let old = TestCa::new("Old Mesh Root");
    let next = TestCa::new("Next Mesh Root");
    let impostor = TestCa::new("Next Mesh Root");
    let cross = next.ca.cross_sign(old.ca.cert_der(), now).unwrap();
    let forged = impostor.ca.cross_sign(old.ca.cert_der(), now).unwrap();
    let key_of = |ca: &CaMaterial| super::RootKey::of(ca.cert_der()).unwrap().spki_raw;
    let (next_key, impostor_key) = (key_of(&next.ca), key_of(&impostor.ca));
    for _ in 0..2 {
        assert!(super::signature_checked(&cross, &next_key));
        assert!(!super::signature_checked(&cross, &impostor_key));
        assert!(!super::signature_checked(&forged, &next_key));
        assert!(super::signature_checked(&forged, &impostor_key));
    }
}
