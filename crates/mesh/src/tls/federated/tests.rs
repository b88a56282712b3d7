//! The federation rules of both verifiers, on real certificates from three test CAs: ours
//! (a.example), a federated one (b.example) and a third, not federated (c.example).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, Error};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use testkit::TestCa;
use wire::tls::TlsPolicy;

use crate::federation::{FederatedBundles, FederatedCallers};
use crate::server::AllowList;
use crate::tls::{MeshClientVerifier, MeshServerVerifier, PeerIdentityError};
use crate::trust::{Roots, TrustState};

struct Domains {
    ours: TestCa,
    federated: TestCa,
    third: TestCa,
    trust: Arc<TrustState>,
}

fn td(name: &str) -> pki::TrustDomain {
    pki::TrustDomain::parse(name).unwrap()
}

fn roots(ca: &TestCa) -> Roots {
    Roots::new(vec![ca.ca.cert_der().clone()]).unwrap()
}

/// Our trust in a.example with b.example federated, and `allow` as the server's --allow-id.
fn domains(allow: &[&str]) -> Domains {
    let (ours, federated, third) = (TestCa::new("A"), TestCa::new("B"), TestCa::new("C"));
    let trust = TrustState::new(roots(&ours));
    let bundles =
        FederatedBundles::new(&td("a.example"), vec![(td("b.example"), roots(&federated))])
            .unwrap();
    assert!(trust.set_federated(bundles));
    let allow = AllowList::parse(&allow.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    trust.set_federated_callers(FederatedCallers::from_allow_list(&td("a.example"), &allow));
    Domains {
        ours,
        federated,
        third,
        trust,
    }
}

fn client_check(trust: &Arc<TrustState>, leaf: &testkit::Leaf) -> Result<(), Error> {
    let verifier = MeshClientVerifier::new(trust.clone(), TlsPolicy::default(), true).unwrap();
    verifier
        .verify_client_cert(
            &CertificateDer::from(leaf.der.clone()),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

fn server_check(
    trust: &Arc<TrustState>,
    expected: Option<&str>,
    leaf: &testkit::Leaf,
) -> Result<(), Error> {
    let expected = expected.map(|id| pki::SpiffeId::parse(id).unwrap());
    let verifier = MeshServerVerifier::new(trust.clone(), TlsPolicy::default(), expected).unwrap();
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.der.clone()),
            &[],
            &ServerName::try_from("localhost").unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

fn unknown_issuer(result: Result<(), Error>) -> bool {
    matches!(
        result,
        Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
    )
}

fn identity_error(result: Result<(), Error>) -> Option<PeerIdentityError> {
    match result {
        Err(Error::InvalidCertificate(CertificateError::Other(other))) => {
            other.0.downcast_ref::<PeerIdentityError>().cloned()
        }
        _ => None,
    }
}

#[test]
fn a_federated_caller_is_accepted_only_from_its_own_domain_roots_and_when_allowed() {
    let d = domains(&["spiffe://b.example/service/x"]);
    // Our own callers: unchanged.
    assert!(client_check(&d.trust, &d.ours.client("spiffe://a.example/service/y")).is_ok());
    // The federated caller the server names.
    assert!(client_check(
        &d.trust,
        &d.federated.client("spiffe://b.example/service/x")
    )
    .is_ok());
    // Another caller of the federated domain: its root vouches for it, --allow-id does not.
    let other = client_check(
        &d.trust,
        &d.federated.client("spiffe://b.example/service/z"),
    );
    assert!(
        matches!(
            identity_error(other),
            Some(PeerIdentityError::FederatedCallerNotAllowed { ref presented, .. })
                if presented == "spiffe://b.example/service/z"
        ),
        "a federated caller not named by --allow-id must be refused"
    );
}

#[test]
fn a_federated_root_never_vouches_for_our_domain_or_a_third_one() {
    // Even with every ID allowed, the federated root vouches for b.example only.
    let d = domains(&[
        "spiffe://a.example/service/*",
        "spiffe://b.example/service/*",
        "spiffe://c.example/service/*",
    ]);
    let ours_by_federated = d.federated.client("spiffe://a.example/service/y");
    assert!(
        unknown_issuer(client_check(&d.trust, &ours_by_federated)),
        "a certificate for our own trust domain signed by the federated root must be refused"
    );
    let third_by_federated = d.federated.client("spiffe://c.example/service/x");
    assert!(
        unknown_issuer(client_check(&d.trust, &third_by_federated)),
        "a federated root must not vouch for a third trust domain"
    );
    // The third domain's own CA is not federated.
    let third = d.third.client("spiffe://c.example/service/x");
    assert!(unknown_issuer(client_check(&d.trust, &third)));
    // A CA not federated cannot claim the federated domain's identities.
    let impostor = d.third.client("spiffe://b.example/service/x");
    assert!(unknown_issuer(client_check(&d.trust, &impostor)));
    // The same on the client side: a server certificate for our domain signed by the
    // federated root is refused, --server-id naming it or not.
    let server = d.federated.server("spiffe://a.example/service/web");
    assert!(unknown_issuer(server_check(
        &d.trust,
        Some("spiffe://a.example/service/web"),
        &server
    )));
    assert!(unknown_issuer(server_check(&d.trust, None, &server)));
}

#[test]
fn without_an_allow_id_for_it_no_federated_caller_is_accepted() {
    let d = domains(&[]);
    let result = client_check(
        &d.trust,
        &d.federated.client("spiffe://b.example/service/x"),
    );
    assert!(matches!(
        identity_error(result),
        Some(PeerIdentityError::FederatedCallerNotAllowed { ref allowed, .. }) if allowed.is_empty()
    ));
    // Our own domain's patterns do not admit foreign callers.
    let d = domains(&["spiffe://a.example/service/*"]);
    let result = client_check(
        &d.trust,
        &d.federated.client("spiffe://b.example/service/x"),
    );
    assert!(identity_error(result).is_some());
}

#[test]
fn a_federated_server_is_accepted_only_when_server_id_names_it() {
    let d = domains(&[]);
    let server = d.federated.server("spiffe://b.example/service/x");
    assert!(server_check(&d.trust, Some("spiffe://b.example/service/x"), &server).is_ok());
    assert!(matches!(
        identity_error(server_check(&d.trust, None, &server)),
        Some(PeerIdentityError::FederatedServerNotNamed { .. })
    ));
    assert!(matches!(
        identity_error(server_check(
            &d.trust,
            Some("spiffe://b.example/service/y"),
            &server
        )),
        Some(PeerIdentityError::UnexpectedServerId { .. })
    ));
    // Our own servers: unchanged, --server-id or not.
    let own = d.ours.server("spiffe://a.example/service/web");
    assert!(server_check(&d.trust, None, &own).is_ok());
}

#[test]
fn dropping_the_federation_refuses_the_next_handshake() {
    let d = domains(&["spiffe://b.example/service/x"]);
    let caller = d.federated.client("spiffe://b.example/service/x");
    let verifier = MeshClientVerifier::new(d.trust.clone(), TlsPolicy::default(), true).unwrap();
    let check = || {
        verifier
            .verify_client_cert(
                &CertificateDer::from(caller.der.clone()),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    };
    assert!(check().is_ok());
    let empty = FederatedBundles::new(&td("a.example"), vec![]).unwrap();
    assert!(d.trust.set_federated(empty));
    assert!(unknown_issuer(check()));
}

#[test]
fn a_federated_bundle_for_our_own_domain_is_refused() {
    let other = TestCa::new("B");
    let err = FederatedBundles::new(&td("a.example"), vec![(td("a.example"), roots(&other))])
        .unwrap_err();
    assert!(err.to_string().contains("own trust domain"), "{err}");
}
