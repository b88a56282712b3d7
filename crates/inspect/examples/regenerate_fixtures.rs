//! The committed test certificates in tests/data, made once with fixed dates so snapshot tests
//! are deterministic. Regenerate (then review and accept the snapshots) with:
//!
//!     cargo run -p mtls-inspect --example regenerate_fixtures
//!
//! Only certificates, CSRs and CRLs are written; the keys that made them are thrown away.

#![allow(clippy::unwrap_used)] // a developer tool: a panic is the error report

use std::net::IpAddr;
use std::path::Path;

use pki::crl::{sign_crl, RevokedEntry};
use pki::policy::{IssuancePolicy, LeafRequest};
use pki::{CaMaterial, Curve, SpiffeId};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// The moment every fixture is issued at; tests check at 2026-01-01T00:30:00Z.
const T0: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

fn issue(ca: &CaMaterial, id: &str, curve: Curve) -> Vec<u8> {
    let key = pki::keys::generate(curve).unwrap();
    let spki = key.subject_public_key_info();
    let id = SpiffeId::parse(id).unwrap();
    let dns = vec!["localhost".to_string()];
    let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
    IssuancePolicy::default()
        .issue(
            &LeafRequest {
                spiffe_id: &id,
                dns: &dns,
                ips: &ips,
                spki_der: &spki,
                ttl: Duration::hours(1),
                now: T0,
            },
            ca,
        )
        .unwrap()
        .der
}

fn pem(label: &str, der: &[u8]) -> String {
    pki::pem::encode(label, der)
}

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data");
    std::fs::create_dir_all(&data).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(data.join(name), bytes).unwrap();

    let root = CaMaterial::generate_root("Fixture Root A", T0).unwrap();
    let other = CaMaterial::generate_root("Fixture Root B", T0).unwrap();
    write("root.pem", root.cert_pem().as_bytes());
    write("other-root.pem", other.cert_pem().as_bytes());

    let leaf = issue(&root, "spiffe://mesh.local/service/api", Curve::P256);
    write("leaf.pem", pem("CERTIFICATE", &leaf).as_bytes());
    write("leaf.der", &leaf);
    let mut bundle = pem("CERTIFICATE", &leaf);
    bundle.push_str(&root.cert_pem());
    write("bundle.pem", bundle.as_bytes());

    let revoked = issue(&root, "spiffe://mesh.local/service/revoked", Curve::P384);
    write("revoked.pem", pem("CERTIFICATE", &revoked).as_bytes());
    let crl = sign_crl(
        &root,
        &[RevokedEntry {
            serial_hex: pki::CertInfo::from_der(&revoked).unwrap().serial_hex,
            revoked_at: T0 + Duration::minutes(10),
            reason: Some("keyCompromise".into()),
        }],
        1,
        T0 + Duration::minutes(10),
        T0 + Duration::minutes(70),
    )
    .unwrap();
    write("crl.pem", pem("X509 CRL", &crl).as_bytes());
    write("crl.der", &crl);

    // A leaf for servers only (EKU serverAuth), otherwise like the CA's.
    let key = pki::keys::generate(Curve::P256).unwrap();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "web");
    p.distinguished_name = dn;
    p.not_before = T0;
    p.not_after = T0 + Duration::hours(1);
    p.serial_number = Some(SerialNumber::from_slice(
        &pki::serial::random_serial().unwrap(),
    ));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.subject_alt_names = vec![SanType::URI(
        "spiffe://mesh.local/service/web".try_into().unwrap(),
    )];
    p.use_authority_key_identifier_extension = true;
    let server_only = p.signed_by(&key, root.issuer()).unwrap();
    write("server-only.pem", server_only.pem().as_bytes());

    // A CSR as a service would send it (P-384, SPIFFE ID and a DNS name).
    let key = pki::keys::generate(Curve::P384).unwrap();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "api");
    p.distinguished_name = dn;
    p.subject_alt_names = vec![
        SanType::URI("spiffe://mesh.local/service/api".try_into().unwrap()),
        SanType::DnsName("api.mesh.local".try_into().unwrap()),
    ];
    let csr = p.serialize_request(&key).unwrap();
    write("csr.pem", csr.pem().unwrap().as_bytes());

    // Made by OpenSSL: a leaf breaking many rules, and an RSA certificate.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("root.pem"), root.cert_pem()).unwrap();
    std::fs::write(dir.join("root.key"), root.key_pem().unwrap()).unwrap();
    std::fs::write(
        dir.join("bad.ext"),
        "keyUsage=digitalSignature,keyCertSign\n\
         extendedKeyUsage=serverAuth,codeSigning\n\
         subjectAltName=URI:spiffe://mesh.local/a,URI:spiffe://Mesh.local/b\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "bad.key",
            "-subj",
            "/CN=bad",
            "-out",
            "bad.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "bad.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "4660",
            "-days",
            "90",
            "-sha256",
            "-extfile",
            "bad.ext",
            "-out",
            "bad.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "rsa.key",
            "-days",
            "365",
            "-subj",
            "/CN=rsa.example",
            "-addext",
            "subjectAltName=DNS:rsa.example",
            "-out",
            "rsa.pem",
        ],
    );
    for name in ["bad.pem", "rsa.pem"] {
        std::fs::copy(dir.join(name), data.join(name)).unwrap();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
