//! Measures the cost of a full mTLS handshake (P-384, TLS 1.3, in memory, both sides on this
//! thread) with revocation lists of growing size, to show that it does not grow with the CRL:
//! the CRL signature is verified once when it is loaded and each handshake does one hash lookup.
//!
//! Run in release mode (debug builds of aws-lc are several times slower):
//!   cargo run --release -p mesh --example crl_handshake_cost [-- HANDSHAKES]

use std::sync::Arc;
use std::time::Instant;

use mesh::credentials::Credential;
use mesh::revocation::{verify_crl, RevokedSet};
use mesh::tls::{CertResolver, MeshClientVerifier, MeshServerVerifier, TlsPolicy};
use mesh::trust::{Roots, TrustState};
use pki::crl::{sign_crl, RevokedEntry};
use pki::{CaMaterial, Curve, IssuancePolicy, LeafRequest, SpiffeId};
use rustls::{ClientConnection, ServerConnection};
use time::{Duration, OffsetDateTime};

fn leaf(ca: &CaMaterial, id: &str, dns: &[String]) -> Credential {
    let key = pki::keys::generate(Curve::P384).expect("key");
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

fn handshake(client: Arc<rustls::ClientConfig>, server: Arc<rustls::ServerConfig>) {
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut c = ClientConnection::new(client, name).expect("client");
    let mut s = ServerConnection::new(server).expect("server");
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

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let now = OffsetDateTime::now_utc();
    let ca = CaMaterial::generate_root("Bench Root", now).expect("root");
    let roots = Roots::new(vec![ca.cert_der().clone()]).expect("roots");
    let policy = TlsPolicy::default();
    let server_cred = leaf(
        &ca,
        "spiffe://mesh.local/service/api",
        &["localhost".into()],
    );
    let client_cred = leaf(&ca, "spiffe://mesh.local/service/worker", &[]);

    println!("in-memory P-384 mTLS handshakes, {rounds} per row (release build recommended)");
    println!(
        "{:>10} {:>14} {:>16}",
        "CRL size", "CRL load (ms)", "handshake (ms)"
    );
    for size in [0usize, 1_000, 10_000, 100_000] {
        let entries: Vec<RevokedEntry> = (0..size)
            .map(|i| RevokedEntry {
                serial_hex: format!("7f{:038x}", i + 1),
                revoked_at: now,
                reason: None,
            })
            .collect();
        let der = sign_crl(&ca, &entries, 1, now, now + Duration::hours(1)).expect("crl");
        let trust = TrustState::new(roots.clone());
        let load = Instant::now();
        let crl = verify_crl(&der, roots.certs()).expect("verify");
        trust.set_revoked(RevokedSet::from_crls(vec![crl]), true);
        let load_ms = load.elapsed().as_secs_f64() * 1e3;

        let server = Arc::new(
            policy
                .server_config(
                    MeshClientVerifier::new(trust.clone(), policy.clone(), true).expect("verifier"),
                    CertResolver::new(server_cred.certified.clone()),
                )
                .expect("server config"),
        );
        let client = Arc::new(
            policy
                .client_config(
                    MeshServerVerifier::new(trust.clone(), policy.clone(), None).expect("verifier"),
                    Some(CertResolver::new(client_cred.certified.clone())),
                )
                .expect("client config"),
        );
        handshake(client.clone(), server.clone()); // warm-up
        let start = Instant::now();
        for _ in 0..rounds {
            handshake(client.clone(), server.clone());
        }
        let per = start.elapsed().as_secs_f64() * 1e3 / f64::from(rounds);
        println!("{size:>10} {load_ms:>14.1} {per:>16.3}");
    }
}
