//! What `mtls-inspect` reads: certificates (ours, OpenSSL's with many extensions, v1, Ed25519,
//! RSA, TRUSTED CERTIFICATE), CSRs and CRLs, as DER, single PEM blocks, bundles, `openssl x509
//! -text` output around PEM, and PEM framing it must refuse or skip (no real key is written:
//! the PRIVATE KEY block holds junk).

use pki::policy::{IssuancePolicy, LeafRequest};
use pki::{CaMaterial, Curve, SpiffeId};
use time::{Duration, OffsetDateTime};

use crate::crls::Crls;
use crate::csrs::Csrs;
use crate::openssl::OpenSsl;
use crate::out::Corpus;

fn our_leaf(ca: &CaMaterial, curve: Curve) -> Vec<u8> {
    let key = pki::keys::generate(curve).unwrap();
    let id = SpiffeId::parse("spiffe://mesh.local/service/api").unwrap();
    IssuancePolicy::default()
        .issue(
            &LeafRequest {
                spiffe_id: &id,
                dns: &["localhost".to_string()],
                ips: &["127.0.0.1".parse().unwrap()],
                spki_der: &pki::keys::spki_der(&key),
                ttl: Duration::hours(1),
                now: OffsetDateTime::now_utc(),
            },
            ca,
        )
        .unwrap()
        .der
}

/// A leaf signed by the OpenSSL P-256 root (made by the CRL seeds) with many extensions.
fn openssl_leaf(ssl: &OpenSsl) -> String {
    ssl.key("leaf.key", "ec:P-384");
    ssl.run(&[
        "req",
        "-new",
        "-key",
        "leaf.key",
        "-subj",
        "/CN=web/O=mtls-mesh/C=DE",
        "-out",
        "leaf.csr",
    ]);
    ssl.write(
        "leaf.ext",
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth,clientAuth\n\
         subjectAltName=URI:spiffe://mesh.local/service/web,DNS:web.mesh.local,IP:10.1.2.3,email:ops@mesh.local\n\
         authorityKeyIdentifier=keyid\n\
         subjectKeyIdentifier=hash\n\
         crlDistributionPoints=URI:http://ca.mesh.local/crl\n\
         authorityInfoAccess=OCSP;URI:http://ocsp.mesh.local,caIssuers;URI:http://ca.mesh.local/ca.crt\n\
         certificatePolicies=2.23.140.1.2.1\n",
    );
    ssl.run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "openssl-p256.crt",
        "-CAkey",
        "openssl-p256.key",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.crt",
    ]);
    String::from_utf8(ssl.read("leaf.crt")).unwrap()
}

pub fn write(corpus: &Corpus, ssl: &OpenSsl, csrs: &Csrs, crls: &Crls) {
    let ours = CaMaterial::generate_root("Fuzz Inspect Root", OffsetDateTime::now_utc()).unwrap();
    let leaf = our_leaf(&ours, Curve::P256);
    let leaf_pem = pki::pem::encode("CERTIFICATE", &leaf);
    corpus.write("ours-leaf-p256.der", &leaf);
    corpus.write(
        "ours-leaf-p521.pem",
        pki::pem::encode("CERTIFICATE", &our_leaf(&ours, Curve::P521)),
    );
    corpus.write("ours-root.pem", ours.cert_pem());
    corpus.write("ours-chain.pem", format!("{leaf_pem}{}", ours.cert_pem()));

    let web = openssl_leaf(ssl);
    corpus.write("openssl-leaf-many-extensions.pem", &web);
    corpus.write(
        "openssl-leaf-many-extensions.der",
        ssl.der("x509", "leaf.crt"),
    );
    let text = ssl.run(&["x509", "-in", "leaf.crt", "-text"]);
    corpus.write("openssl-x509-text.txt", text);
    corpus.write(
        "openssl-trusted-certificate.pem",
        ssl.run(&[
            "x509",
            "-in",
            "openssl-p256.crt",
            "-trustout",
            "-addtrust",
            "clientAuth",
        ]),
    );
    ssl.run(&[
        "x509", "-req", "-in", "leaf.csr", "-key", "leaf.key", "-days", "1", "-out", "v1.crt",
    ]);
    corpus.write("openssl-v1.der", ssl.der("x509", "v1.crt"));
    ssl.key("ed.key", "ed25519");
    ssl.run(&[
        "req", "-x509", "-new", "-key", "ed.key", "-subj", "/CN=ed", "-days", "1", "-out", "ed.crt",
    ]);
    corpus.write("openssl-ed25519.pem", ssl.read("ed.crt"));
    for (name, pem) in &crls.roots {
        corpus.write(&format!("root-{name}.pem"), pem);
    }

    if let Some((_, csr)) = csrs.good.first() {
        corpus.write("csr.pem", csr);
    }
    corpus.write(
        "csr-new-label.pem",
        csrs.ca
            .replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"),
    );
    for (name, crl) in crls.crls.iter().take(2) {
        corpus.write(&format!("crl-{name}.pem"), crl);
    }
    let crl = &crls.crls[0].1;
    corpus.write(
        "mixed-bundle.pem",
        format!(
            "{leaf_pem}-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n\
             -----BEGIN PUBLIC KEY-----\nAAEC\n-----END PUBLIC KEY-----\n{}{crl}",
            csrs.ca
        ),
    );
    corpus.write(
        "encrypted-key-headers-and-leaf.pem",
        format!(
            "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
             DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nbm90IGEga2V5\n\
             -----END EC PRIVATE KEY-----\n{leaf_pem}"
        ),
    );
    corpus.write("refused-no-end.pem", &leaf_pem[..leaf_pem.len() - 26]);
    corpus.write(
        "refused-end-mismatch.pem",
        leaf_pem.replace("END CERTIFICATE", "END X509 CRL"),
    );
    corpus.write("refused-bad-base64.pem", leaf_pem.replacen('M', "!", 2));
    corpus.write("refused-truncated.der", &leaf[..leaf.len() - 10]);
    let mut trailing = leaf.clone();
    trailing.extend_from_slice(b"\0\0\0");
    corpus.write("refused-trailing.der", trailing);
    corpus.write("refused-text.txt", "hello, this is not a certificate\n");
    // SPIFFE bundles (JSON): the shape GET /api/v1/bundle/spiffe serves, one with a leaf as
    // its authority and a jwt-svid key without kid (lint findings), and JSON that is no bundle.
    let root_jwk = pki::jwt_svid::x509_authority_jwk(ours.cert_der()).unwrap();
    let leaf_jwk = pki::jwt_svid::x509_authority_jwk(&leaf).unwrap();
    let mut jwt = leaf_jwk.clone();
    jwt.use_ = Some("jwt-svid".into());
    jwt.x5c = None;
    corpus.write(
        "spiffe-bundle.json",
        serde_json::json!({"keys": [root_jwk], "spiffe_sequence": 7, "spiffe_refresh_hint": 300})
            .to_string(),
    );
    corpus.write(
        "spiffe-bundle-findings.json",
        serde_json::json!({"keys": [leaf_jwk, jwt, {"use": "enc"}], "spiffe_sequence": "x"})
            .to_string(),
    );
    corpus.write("refused-json-not-a-bundle.json", r#"{"kes": []}"#);
}
