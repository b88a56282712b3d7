//! The CA's issuance path (CSR check + sign) and the client key computation.

use criterion::{criterion_group, criterion_main, Criterion};
use pki::policy::{IssuancePolicy, LeafRequest};
use pki::{CaMaterial, Curve, SpiffeId};
use time::{Duration, OffsetDateTime};

fn issuance(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let ca = CaMaterial::generate_root("Bench Root", now).expect("root");
    let id = SpiffeId::parse("spiffe://mesh.local/bench/workload").expect("id");
    let policy = IssuancePolicy::default();
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        let key = pki::keys::generate(curve).expect("key");
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem");
        c.bench_function(&format!("issue/csr_check_and_sign/{curve}"), |b| {
            b.iter(|| {
                let verified = pki::csr::parse_and_verify(csr.as_bytes()).expect("csr verifies");
                policy
                    .issue(
                        &LeafRequest {
                            spiffe_id: &id,
                            dns: &[],
                            ips: &[],
                            spki_der: &verified.spki_der,
                            ttl: Duration::hours(1),
                            now,
                        },
                        &ca,
                    )
                    .expect("issued")
            })
        });
    }
    let key = pki::keys::generate(Curve::P384).expect("key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    c.bench_function("issue/csr_check_only/P-384", |b| {
        b.iter(|| pki::csr::parse_and_verify(csr.as_bytes()).expect("csr verifies"))
    });
}

fn client_key(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let ca = CaMaterial::generate_root("Bench Root", now).expect("root");
    let key = pki::keys::generate(Curve::P384).expect("key");
    let id = SpiffeId::parse("spiffe://mesh.local/bench/workload").expect("id");
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let leaf = IssuancePolicy::default()
        .issue(
            &LeafRequest {
                spiffe_id: &id,
                dns: &[],
                ips: &[],
                spki_der: &spki,
                ttl: Duration::hours(1),
                now,
            },
            &ca,
        )
        .expect("leaf");
    c.bench_function("client_key/P-384 leaf", |b| {
        b.iter(|| pki::client_key(&leaf.der).expect("client key"))
    });
}

criterion_group!(benches, issuance, client_key);
criterion_main!(benches);
