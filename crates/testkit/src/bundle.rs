//! Large certificate bundles for the lint scaling test (crates/mtls/tests/it/inspect/lint_scale.rs)
//! and its measurement (`cargo run --release -p mtls-inspect --example lint_bundle`): leaves
//! issued by the CA's policy, the root last, so that every leaf's issuer is found only at the
//! end of the file.

use pki::policy::{IssuancePolicy, LeafRequest};
use pki::{CaMaterial, Curve, SpiffeId};
use time::{Duration, OffsetDateTime};

/// A PEM bundle: `leaves` leaves of `root` (one shared key: lint does not care), then the root.
pub fn leaf_bundle(root: &CaMaterial, leaves: usize, now: OffsetDateTime) -> String {
    let key = pki::keys::generate(Curve::P256).expect("key");
    let spki = pki::keys::spki_der(&key);
    let policy = IssuancePolicy::default();
    let mut out = String::new();
    for i in 0..leaves {
        let id = SpiffeId::parse(&format!("spiffe://mesh.local/service/s{i}")).expect("id");
        let issued = policy
            .issue(
                &LeafRequest {
                    spiffe_id: &id,
                    dns: &[],
                    ips: &[],
                    spki_der: &spki,
                    ttl: Duration::hours(1),
                    now,
                },
                root,
            )
            .expect("issue");
        out.push_str(&issued.pem);
    }
    out.push_str(&root.cert_pem());
    out
}

/// A bundle of at least `bytes` bytes (and at most one certificate more).
pub fn bundle_of_size(root: &CaMaterial, bytes: usize, now: OffsetDateTime) -> String {
    let one = leaf_bundle(root, 1, now).len() - root.cert_pem().len();
    leaf_bundle(root, bytes.div_ceil(one), now)
}
