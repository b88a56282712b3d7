//! CSRs on every curve, from our code (rcgen with `pki::keys`) and from `openssl req`, as PEM
//! and DER, plus the ones the CA must refuse (RSA, Ed25519, another curve, a compressed or
//! explicit-parameters key, CA:TRUE, an email name, broken framing).

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, SanType};

use crate::openssl::OpenSsl;
use crate::out::Corpus;

/// CSRs other corpora reuse, as PEM text.
pub struct Csrs {
    /// Acceptable CSRs: (short name, PEM).
    pub good: Vec<(String, String)>,
    /// A CSR asking for CA:TRUE.
    pub ca: String,
    /// Every CSR written, as DER: (file name without extension, DER).
    pub all: Vec<(String, Vec<u8>)>,
}

fn ours(curve: pki::Curve, sans: Vec<SanType>, ca: bool) -> (String, Vec<u8>) {
    let key = pki::keys::generate(curve).unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "api");
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let csr = params.serialize_request(&key).unwrap();
    (csr.pem().unwrap(), csr.der().to_vec())
}

fn workload_sans() -> Vec<SanType> {
    vec![
        SanType::URI("spiffe://mesh.local/service/api".try_into().unwrap()),
        SanType::DnsName("api.mesh.local".try_into().unwrap()),
        SanType::IpAddress("127.0.0.1".parse().unwrap()),
        SanType::IpAddress("::1".parse().unwrap()),
    ]
}

/// `openssl req` with a key of `spec`, digest `md` and extra `-addext` values.
fn openssl_csr(ssl: &OpenSsl, name: &str, spec: &str, md: Option<&str>, exts: &[&str]) -> String {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    ssl.key(&key, spec);
    let mut args = vec!["req", "-new", "-key", &key, "-subj", "/CN=api/O=mtls-mesh"];
    if let Some(md) = md {
        args.push(md);
    }
    for ext in exts {
        args.extend(["-addext", ext]);
    }
    args.extend(["-out", &csr]);
    ssl.run(&args);
    String::from_utf8(ssl.read(&csr)).unwrap()
}

pub fn write(corpus: &Corpus, ssl: &OpenSsl) -> Csrs {
    let mut good = Vec::new();
    let mut all = Vec::new();
    for curve in [pki::Curve::P256, pki::Curve::P384, pki::Curve::P521] {
        let (pem, der) = ours(curve, workload_sans(), false);
        let tag = curve.name().to_lowercase().replace('-', "");
        corpus.write(&format!("ours-{tag}-sans.pem"), &pem);
        corpus.write(&format!("ours-{tag}-sans.der"), &der);
        good.push((format!("ours-{tag}"), pem));
        all.push((format!("ours-{tag}-sans"), der));
        let (_, der) = ours(curve, Vec::new(), false);
        corpus.write(&format!("ours-{tag}-bare.der"), &der);
    }
    let (ca, ca_der) = ours(pki::Curve::P384, Vec::new(), true);
    corpus.write("ours-p384-ca-true.der", &ca_der);
    all.push(("ours-p384-ca-true".into(), ca_der));

    let san = "subjectAltName=URI:spiffe://mesh.local/service/api,DNS:api.mesh.local,IP:10.0.0.1";
    for (name, spec, md, exts) in [
        ("openssl-p256", "ec:P-256", None, vec![san]),
        ("openssl-p384", "ec:P-384", Some("-sha384"), vec![san]),
        ("openssl-p384-sha256", "ec:P-384", Some("-sha256"), vec![]),
        ("openssl-p521", "ec:P-521", Some("-sha512"), vec![san]),
    ] {
        let pem = openssl_csr(ssl, name, spec, md, &exts);
        corpus.write(&format!("{name}.pem"), &pem);
        all.push((
            name.to_string(),
            pki::pem::parse_single(pem.as_bytes(), "CERTIFICATE REQUEST").unwrap(),
        ));
        good.push((name.to_string(), pem));
    }
    corpus.write("openssl-p256.der", ssl.der("req", "openssl-p256.csr"));

    // Refused by the CSR check, each for one reason (the CA flag is reported, and refused by
    // the CA, not by the parser).
    for (name, spec, exts) in [
        ("refused-rsa2048", "rsa:2048", vec![]),
        ("refused-ed25519", "ed25519", vec![]),
        ("refused-secp256k1", "ec:secp256k1", vec![]),
        (
            "openssl-ca-true",
            "ec:P-256",
            vec!["basicConstraints=critical,CA:TRUE"],
        ),
        (
            "refused-email-san",
            "ec:P-256",
            vec!["subjectAltName=email:a@mesh.local"],
        ),
        (
            "refused-othername-san",
            "ec:P-256",
            vec!["subjectAltName=otherName:1.2.3.4;UTF8:x"],
        ),
    ] {
        let pem = openssl_csr(ssl, name, spec, None, &exts);
        corpus.write(&format!("{name}.pem"), &pem);
        all.push((
            name.to_string(),
            pki::pem::parse_single(pem.as_bytes(), "CERTIFICATE REQUEST").unwrap(),
        ));
    }
    // The same P-256 key with a compressed point and with explicit curve parameters.
    ssl.key("p256.key", "ec:P-256");
    for (name, opts) in [
        ("refused-compressed-point", ["-conv_form", "compressed"]),
        ("refused-explicit-params", ["-param_enc", "explicit"]),
    ] {
        let key = format!("{name}.key");
        ssl.run(&["ec", "-in", "p256.key", opts[0], opts[1], "-out", &key]);
        ssl.run(&[
            "req", "-new", "-key", &key, "-subj", "/CN=api", "-out", "x.csr",
        ]);
        corpus.write(&format!("{name}.der"), ssl.der("req", "x.csr"));
    }

    // Framing: truncated, trailing bytes, the wrong PEM label, two blocks, nothing.
    let (pem, der) = ours(pki::Curve::P256, Vec::new(), false);
    corpus.write("refused-truncated.der", &der[..der.len() / 2]);
    let mut trailing = der.clone();
    trailing.extend_from_slice(&[0, 0]);
    corpus.write("refused-trailing.der", trailing);
    corpus.write(
        "refused-label.pem",
        pem.replace("CERTIFICATE REQUEST", "CERTIFICATE"),
    );
    corpus.write("two-blocks.pem", format!("{pem}{pem}"));
    corpus.write("refused-empty", b"");
    Csrs { good, ca, all }
}
