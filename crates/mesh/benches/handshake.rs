//! In-memory mTLS handshakes through the mesh's own TLS policy and verifiers (both sides on one
//! thread, so the figure is the crypto ceiling of one core for a client+server pair), with
//! P-384 and P-521, and with revocation lists of 0, 1k and 10k entries.
//!
//! cargo bench -p mesh --bench handshake

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use mesh::credentials::Credential;
use mesh::tls::{MeshClientVerifier, MeshServerVerifier};
use mesh::trust::{Roots, TrustState};
use pki::crl::{sign_crl, RevokedEntry};
use pki::crl::{verify_crl, RevokedSet};
use pki::{CaMaterial, Curve, IssuancePolicy, LeafRequest, SpiffeId};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use time::{Duration, OffsetDateTime};
use wire::tls::{CertResolver, TlsPolicy};

fn leaf(ca: &CaMaterial, id: &str, dns: &[String], curve: Curve) -> Credential {
    let key = pki::keys::generate(curve).expect("key");
    let spiffe = SpiffeId::parse(id).expect("id");
    let spki = pki::keys::spki_der(&key);
    let issued = IssuancePolicy::default()
        .issue(
            &LeafRequest {
                spiffe_id: &spiffe,
                dns,
                ips: &[],
                spki_der: &spki,
                ttl: Duration::hours(1),
                now: OffsetDateTime::now_utc(),
            },
            ca,
        )
        .expect("issue");
    Credential::from_key(&key, vec![issued.der.into()], &TlsPolicy::default()).expect("credential")
}

/// Drives one full handshake between fresh connections until both sides are done.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) {
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut c = ClientConnection::new(client.clone(), name).expect("client");
    let mut s = ServerConnection::new(server.clone()).expect("server");
    let mut buf = Vec::new();
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("client write");
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).expect("server read");
        }
        s.process_new_packets().expect("server handshake");
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("server write");
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).expect("client read");
        }
        c.process_new_packets().expect("client handshake");
    }
}

struct Pair {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    trust: Arc<TrustState>,
    roots: Roots,
}

/// A server and a client of the mesh on `curve` keys; the client offers only `client_group`.
fn pair(
    ca: &CaMaterial,
    curve: Curve,
    client_group: &'static dyn rustls::crypto::SupportedKxGroup,
) -> Pair {
    let roots = Roots::new(vec![ca.cert_der().clone()]).expect("roots");
    let trust = TrustState::new(roots.clone());
    let policy = TlsPolicy::default();
    let server_cred = leaf(
        ca,
        "spiffe://mesh.local/service/api",
        &["localhost".into()],
        curve,
    );
    let client_cred = leaf(ca, "spiffe://mesh.local/service/worker", &[], curve);
    let server = Arc::new(
        policy
            .server_config(
                MeshClientVerifier::new(trust.clone(), policy.clone(), true).expect("verifier"),
                CertResolver::new(server_cred.certified_key()),
                wire::tls::ALPN_HTTP,
            )
            .expect("server config"),
    );
    let mut provider = (*policy.provider()).clone();
    provider.kx_groups = vec![client_group];
    let mut client = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .dangerous()
        .with_custom_certificate_verifier(
            MeshServerVerifier::new(trust.clone(), policy.clone(), None).expect("verifier"),
        )
        .with_client_cert_resolver(CertResolver::new(client_cred.certified_key()));
    client.resumption = rustls::client::Resumption::disabled();
    Pair {
        client: Arc::new(client),
        server,
        trust,
        roots,
    }
}

fn revoked_entries(n: usize, now: OffsetDateTime) -> Vec<RevokedEntry> {
    (0..n)
        .map(|i| RevokedEntry {
            serial_hex: format!("7f{:038x}", i + 1),
            revoked_at: now,
            reason: None,
        })
        .collect()
}

/// Plain rustls with its stock webpki verifiers and the same provider, certificates and group:
/// the ceiling our verifiers and policy are measured against.
fn baseline_pair(ca: &CaMaterial) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let policy = TlsPolicy::default();
    let provider = policy.provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der().clone()).expect("root");
    let roots = Arc::new(roots);
    let server_cred = leaf(
        ca,
        "spiffe://mesh.local/service/api",
        &["localhost".into()],
        Curve::P384,
    );
    let client_cred = leaf(ca, "spiffe://mesh.local/service/worker", &[], Curve::P384);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(CertResolver::new(server_cred.certified_key()));
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_client_cert_resolver(CertResolver::new(client_cred.certified_key()));
    client.resumption = rustls::client::Resumption::disabled();
    (Arc::new(client), Arc::new(server))
}

fn handshakes(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let ca = CaMaterial::generate_root("Bench Root", now).expect("root");
    let mut group = c.benchmark_group("handshake");
    let (client, server) = baseline_pair(&ca);
    handshake(&client, &server);
    group.bench_function("rustls baseline, P-384", |b| {
        b.iter(|| handshake(&client, &server))
    });
    for (label, curve, kx) in [
        (
            "P-384 keys, secp384r1",
            Curve::P384,
            rustls::crypto::aws_lc_rs::kx_group::SECP384R1,
        ),
        (
            "P-521 keys, secp521r1",
            Curve::P521,
            pki::tls_p521::SECP521R1,
        ),
    ] {
        let p = pair(&ca, curve, kx);
        handshake(&p.client, &p.server);
        group.bench_function(label, |b| b.iter(|| handshake(&p.client, &p.server)));
    }
    group.finish();

    let mut group = c.benchmark_group("handshake_with_crl");
    let p = pair(
        &ca,
        Curve::P384,
        rustls::crypto::aws_lc_rs::kx_group::SECP384R1,
    );
    for size in [0usize, 1_000, 10_000] {
        let der = sign_crl(
            &ca,
            &revoked_entries(size, now),
            1,
            now,
            now + Duration::hours(1),
        )
        .expect("crl");
        let crl = verify_crl(&der, p.roots.certs()).expect("verify");
        p.trust.set_revoked(RevokedSet::from_crls(vec![crl]), true);
        handshake(&p.client, &p.server);
        group.bench_function(format!("{size} entries"), |b| {
            b.iter(|| handshake(&p.client, &p.server))
        });
    }
    group.finish();
}

fn revocation_lookup(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let ca = CaMaterial::generate_root("Bench Root", now).expect("root");
    let cred = leaf(&ca, "spiffe://mesh.local/service/api", &[], Curve::P384);
    let mut group = c.benchmark_group("revocation_check");
    for size in [0usize, 1_000, 10_000] {
        let der = sign_crl(
            &ca,
            &revoked_entries(size, now),
            1,
            now,
            now + Duration::hours(1),
        )
        .expect("crl");
        let set = RevokedSet::from_crls(vec![
            verify_crl(&der, &[ca.cert_der().clone()]).expect("verify")
        ]);
        group.bench_function(format!("{size} entries"), |b| {
            b.iter(|| set.is_cert_revoked(&cred.chain()[0]))
        });
    }
    group.finish();
}

criterion_group!(benches, handshakes, revocation_lookup);
criterion_main!(benches);
