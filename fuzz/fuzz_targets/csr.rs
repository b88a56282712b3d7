//! CSR parsing and checking: `pki::csr::parse_and_verify` on PEM or DER bytes, the check the CA
//! runs on the `csr` of every sign and renew body. Beyond "never panics": a CSR that verifies
//! must be issuable (the CA signs a leaf for its key without an internal error) and the leaf
//! must carry exactly that key.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pki::policy::{IssuancePolicy, LeafRequest};
use pki::{CaMaterial, CertInfo, SpiffeId};
use time::{Duration, OffsetDateTime};

static CA: LazyLock<CaMaterial> = LazyLock::new(|| {
    CaMaterial::generate_root("Fuzz Root", OffsetDateTime::now_utc())
        .unwrap_or_else(|e| panic!("cannot make the fuzz root: {e}"))
});

fuzz_target!(|data: &[u8]| {
    let Ok(csr) = pki::csr::parse_and_verify(data) else {
        return;
    };
    let id = SpiffeId::parse("spiffe://mesh.local/service/fuzz").unwrap_or_else(|e| panic!("{e}"));
    let issued = IssuancePolicy::default()
        .issue(
            &LeafRequest {
                spiffe_id: &id,
                dns: &[],
                ips: &[],
                spki_der: &csr.spki_der,
                ttl: Duration::hours(1),
                now: OffsetDateTime::now_utc(),
            },
            &CA,
        )
        .unwrap_or_else(|e| panic!("a verified {} CSR cannot be issued: {e}", csr.curve));
    let info = CertInfo::from_der(&issued.der).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.spki_sha256, pki::sha256_hex(&csr.spki_der));
    assert!(!info.is_ca);
});
