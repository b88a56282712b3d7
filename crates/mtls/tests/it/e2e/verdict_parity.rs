//! One rule set (issue 11): `mtls-inspect verify` and a running `mtls-server` give the same
//! verdict for the same client certificate. Each row is presented by curl (OpenSSL, which will
//! present anything) to an mtls-server in static mode, and verified by `mtls-inspect verify
//! --purpose client --trust-domain mesh.local` (a server requires every client to carry a
//! SPIFFE ID, which `--trust-domain` asks for) against the same root.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::common::require_binaries;
use crate::programs::{self, start_server};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use testkit::{LeafSpec, TestCa};
use time::OffsetDateTime;

const ID: &str = "spiffe://mesh.local/service/parity";
const RUN: Duration = Duration::from_secs(30);

/// A client leaf like the CA's (P-384, both EKUs, critical keyUsage digitalSignature, one
/// SPIFFE ID), for rows to change.
fn base(uris: &[&str]) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "parity");
    p.distinguished_name = dn;
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now + time::Duration::hours(1);
    p.serial_number = Some(SerialNumber::from_slice(
        &pki::serial::random_serial().expect("serial"),
    ));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    p.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().expect("URI")))
        .collect();
    p
}

fn ec_key() -> KeyPair {
    pki::keys::generate(pki::Curve::P384).expect("key")
}

/// (certificate PEM, key PEM) of `params` signed by `ca`.
fn sign(ca: &TestCa, params: CertificateParams, key: KeyPair) -> (String, String) {
    let cert = params.signed_by(&key, ca.ca.issuer()).expect("sign");
    (cert.pem(), key.serialize_pem())
}

struct Row {
    what: &'static str,
    make: fn(&TestCa) -> (String, String),
    accepted: bool,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            what: "issued by the CA's policy (P-384)",
            make: |ca| {
                let leaf = ca.client(ID);
                (leaf.cert_pem, leaf.key_pem)
            },
            accepted: true,
        },
        Row {
            what: "issued by the CA's policy (P-521)",
            make: |ca| {
                let mut spec = LeafSpec::new(ID);
                spec.curve = pki::Curve::P521;
                let leaf = ca.issue_spec(&spec);
                (leaf.cert_pem, leaf.key_pem)
            },
            accepted: true,
        },
        Row {
            what: "SPIFFE ID plus an https:// URI",
            make: |ca| sign(ca, base(&[ID, "https://example.com/"]), ec_key()),
            accepted: false,
        },
        Row {
            what: "SPIFFE ID without keyUsage",
            make: |ca| {
                let mut p = base(&[ID]);
                p.key_usages = vec![];
                sign(ca, p, ec_key())
            },
            accepted: false,
        },
        Row {
            what: "SPIFFE ID with a non-critical keyUsage",
            make: |ca| {
                let mut p = base(&[ID]);
                p.key_usages = vec![];
                // keyUsage digitalSignature, not marked critical.
                p.custom_extensions = vec![CustomExtension::from_oid_content(
                    &[2, 5, 29, 15],
                    vec![0x03, 0x02, 0x07, 0x80],
                )];
                sign(ca, p, ec_key())
            },
            accepted: false,
        },
        Row {
            what: "keyEncipherment only",
            make: |ca| {
                let mut p = base(&[ID]);
                p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
                sign(ca, p, ec_key())
            },
            accepted: false,
        },
        Row {
            what: "keyCertSign and cRLSign on a leaf",
            make: |ca| {
                let mut p = base(&[ID]);
                p.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::CrlSign,
                ];
                sign(ca, p, ec_key())
            },
            accepted: false,
        },
        Row {
            what: "CA:TRUE with a SPIFFE ID",
            make: |ca| {
                let mut p = base(&[ID]);
                p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                sign(ca, p, ec_key())
            },
            accepted: false,
        },
        Row {
            what: "serverAuth only, presented as a client",
            make: |ca| {
                let mut p = base(&[ID]);
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                sign(ca, p, ec_key())
            },
            accepted: false,
        },
        Row {
            what: "no URI SAN at all",
            make: |ca| {
                let mut p = base(&[]);
                p.subject_alt_names =
                    vec![SanType::DnsName("client.example".try_into().expect("dns"))];
                sign(ca, p, ec_key())
            },
            accepted: false,
        },
        Row {
            what: "upper-case SPIFFE:// scheme",
            make: |ca| sign(ca, base(&["SPIFFE://mesh.local/service/parity"]), ec_key()),
            accepted: false,
        },
        Row {
            what: "RSA key under the ECDSA root",
            make: |ca| {
                let key =
                    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                        .expect("rsa key");
                sign(ca, base(&[ID]), key)
            },
            accepted: false,
        },
        Row {
            what: "expired an hour ago",
            make: |ca| {
                let leaf = ca.expired(ID);
                (leaf.cert_pem, leaf.key_pem)
            },
            accepted: false,
        },
    ]
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn inspect_verify_and_a_running_server_agree_on_every_client_certificate() {
    require_binaries();
    programs::require(&["mtls-inspect"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Parity Root");
    let root = ca.write_root(dir.path(), "root.crt");
    let (srv_crt, srv_key) = ca
        .server("spiffe://mesh.local/service/parity-server")
        .write(dir.path(), "server");
    let server = start_server(
        "server",
        &[
            "--cert",
            &s(&srv_crt),
            "--key",
            &s(&srv_key),
            "--ca-cert",
            &s(&root),
        ]
        .map(String::from),
    );
    let mut disagreements = Vec::new();
    for (i, row) in rows().iter().enumerate() {
        let (cert_pem, key_pem) = (row.make)(&ca);
        let cert = dir.path().join(format!("row{i}.crt"));
        let key = dir.path().join(format!("row{i}.key"));
        std::fs::write(&cert, cert_pem).expect("write cert");
        pki::files::write_atomic(&key, key_pem.as_bytes(), pki::files::KEY_MODE).expect("key");

        let mut inspect = Command::new(programs::inspect());
        inspect
            .args([
                "verify",
                "--purpose",
                "client",
                "--trust-domain",
                "mesh.local",
            ])
            .args(["--roots", &s(&root), &s(&cert)]);
        let (status, _, inspect_out) = testkit::run("mtls-inspect", inspect, RUN);
        let inspect_accepts = status.success();
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "{}: inspect must give a verdict, not a usage error:\n{inspect_out}",
            row.what
        );

        let mut curl = Command::new("curl");
        curl.args(["-sS", "--max-time", "20", "--cacert", &s(&root)])
            .args(["--cert", &s(&cert), "--key", &s(&key)])
            .arg(format!("{}/api/status", server.url()));
        let (status, curl_out, curl_all) = testkit::run("curl", curl, RUN);
        let server_accepts = status.success() && curl_out.contains("\"status\":\"healthy\"");

        if inspect_accepts != row.accepted || server_accepts != row.accepted {
            disagreements.push(format!(
                "{}: expected {}, mtls-inspect {}, mtls-server {}\n  inspect: {}\n  curl: {}",
                row.what,
                verdict(row.accepted),
                verdict(inspect_accepts),
                verdict(server_accepts),
                inspect_out.trim(),
                curl_all.trim()
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

fn verdict(accepted: bool) -> &'static str {
    if accepted {
        "accept"
    } else {
        "refuse"
    }
}
