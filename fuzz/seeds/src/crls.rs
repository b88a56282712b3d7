//! The CRL issuers (written to fuzz/fixtures/crl_issuers, which the crl target embeds) and CRLs
//! they signed: ours (`pki::crl::sign_crl`, rcgen with an issuingDistributionPoint) and
//! OpenSSL's (`openssl ca -gencrl` with reasons, extensions and digests), plus the ones the
//! strict path refuses (no CRL Number, partial scope, unknown critical extension, an issuer
//! without cRLSign, an unknown issuer, RSA under the services' policy).

use std::path::Path;

use pki::crl::{sign_crl, RevokedEntry};
use pki::CaMaterial;
use rcgen::{
    CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint, CrlScope,
    KeyIdMethod, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::openssl::OpenSsl;
use crate::out::Corpus;

/// PEM CRLs and issuer certificates other corpora reuse: (short name, PEM).
pub struct Crls {
    pub crls: Vec<(String, String)>,
    pub roots: Vec<(String, String)>,
}

fn entry(serial_hex: &str, reason: Option<&str>, at: OffsetDateTime) -> RevokedEntry {
    RevokedEntry {
        serial_hex: serial_hex.into(),
        revoked_at: at,
        reason: reason.map(Into::into),
    }
}

fn random_serial_hex() -> String {
    pki::serial::random_serial()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A CRL by rcgen directly, to reach what `sign_crl` never writes.
fn rcgen_crl(
    ca: &CaMaterial,
    scope: Option<CrlScope>,
    number: &[u8],
    now: OffsetDateTime,
) -> Vec<u8> {
    CertificateRevocationListParams {
        this_update: now,
        next_update: now + Duration::hours(1),
        crl_number: SerialNumber::from_slice(number),
        issuing_distribution_point: Some(CrlIssuingDistributionPoint {
            distribution_point: CrlDistributionPoint {
                uris: vec!["https://ca.mesh.local/api/v1/crl".into()],
            },
            scope,
        }),
        revoked_certs: Vec::new(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(ca.issuer())
    .unwrap()
    .der()
    .to_vec()
}

/// `openssl ca -gencrl` by the root `name` (files `name.crt`, `name.key`), revoking a few
/// serials with reasons; `number` adds a crlnumber file, `crlexts` an extensions section.
fn openssl_crl(
    ssl: &OpenSsl,
    name: &str,
    md: &str,
    number: bool,
    crlexts: Option<&str>,
) -> Vec<u8> {
    let dir = ssl.dir();
    std::fs::write(
        dir.join("index.txt"),
        "R\t301231235959Z\t260101000000Z,keyCompromise\t4F1A\tunknown\t/CN=leaf1\n\
         R\t301231235959Z\t260102000000Z\t0A\tunknown\t/CN=leaf2\n\
         R\t301231235959Z\t260103000000Z,superseded\t40F3A9C2D1E0B7A6958473625140FEDCBA987654\tunknown\t/CN=leaf3\n\
         R\t301231235959Z\t260104000000Z,cessationOfOperation\t00FF\tunknown\t/CN=leaf4\n\
         V\t301231235959Z\t\t0B\tunknown\t/CN=leaf5\n",
    )
    .unwrap();
    let mut cnf = format!(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ndefault_md = {md}\ndefault_crl_days = 1\n"
    );
    if number {
        std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();
        cnf.push_str("crlnumber = crlnumber\n");
    }
    if let Some(exts) = crlexts {
        cnf.push_str("crl_extensions = crlext\n[crlext]\n");
        cnf.push_str(exts);
    }
    std::fs::write(dir.join("ca.cnf"), cnf).unwrap();
    let key = format!("{name}.key");
    let crt = format!("{name}.crt");
    ssl.run(&[
        "ca", "-gencrl", "-config", "ca.cnf", "-keyfile", &key, "-cert", &crt, "-out", "crl.pem",
    ]);
    ssl.der("crl", "crl.pem")
}

pub fn write(corpus: &Corpus, issuers_dir: &Path, ssl: &OpenSsl) -> Crls {
    let now = OffsetDateTime::now_utc();
    let ours = CaMaterial::generate_root("Fuzz CRL Root", now).unwrap();
    let p256 = ssl.root(
        "openssl-p256",
        "ec:P-256",
        "OpenSSL P-256 Root",
        "keyCertSign,cRLSign",
    );
    let no_crl_sign = ssl.root(
        "openssl-p384-no-crlsign",
        "ec:P-384",
        "OpenSSL Cert Signer Only",
        "keyCertSign",
    );
    let rsa = ssl.root(
        "openssl-rsa2048",
        "rsa:2048",
        "OpenSSL RSA Root",
        "keyCertSign,cRLSign",
    );
    std::fs::create_dir_all(issuers_dir).unwrap();
    std::fs::write(issuers_dir.join("ours-p384.der"), ours.cert_der()).unwrap();
    for name in ["openssl-p256", "openssl-p384-no-crlsign", "openssl-rsa2048"] {
        let der = ssl.der("x509", &format!("{name}.crt"));
        std::fs::write(issuers_dir.join(format!("{name}.der")), der).unwrap();
    }

    let mut pems = Vec::new();
    let mut both = |name: &str, der: &[u8]| {
        corpus.write(&format!("{name}.der"), der);
        let pem = pki::pem::encode("X509 CRL", der);
        corpus.write(&format!("{name}.pem"), &pem);
        pems.push((name.to_string(), pem));
    };

    // Ours: empty, with reasons, long.
    both(
        "ours-empty",
        &sign_crl(&ours, &[], 1, now, now + Duration::hours(1)).unwrap(),
    );
    let revoked = [
        entry(&random_serial_hex(), Some("keyCompromise"), now),
        entry(&random_serial_hex(), Some("superseded"), now),
        entry("4f1a", None, now),
    ];
    both(
        "ours-revoked",
        &sign_crl(
            &ours,
            &revoked,
            1_764_000_000_000,
            now,
            now + Duration::hours(1),
        )
        .unwrap(),
    );
    let many: Vec<RevokedEntry> = (0..40)
        .map(|_| entry(&random_serial_hex(), Some("cessationOfOperation"), now))
        .collect();
    corpus.write(
        "ours-40-entries.der",
        sign_crl(&ours, &many, 7, now, now + Duration::hours(1)).unwrap(),
    );
    corpus.write(
        "rcgen-idp-user-only.der",
        rcgen_crl(&ours, Some(CrlScope::UserCertsOnly), &[2], now),
    );
    corpus.write(
        "refused-rcgen-idp-ca-only.der",
        rcgen_crl(&ours, Some(CrlScope::CaCertsOnly), &[3], now),
    );
    corpus.write(
        "refused-rcgen-number-21-octets.der",
        rcgen_crl(&ours, None, &[0x7f; 21], now),
    );
    let stranger = CaMaterial::generate_root("Unknown Root", now).unwrap();
    corpus.write(
        "refused-unknown-issuer.der",
        sign_crl(&stranger, &revoked, 1, now, now + Duration::hours(1)).unwrap(),
    );

    // OpenSSL's.
    both(
        "openssl-p256",
        &openssl_crl(ssl, "openssl-p256", "sha256", true, None),
    );
    corpus.write(
        "openssl-p256-aki-idp.der",
        openssl_crl(
            ssl,
            "openssl-p256",
            "sha384",
            true,
            Some("authorityKeyIdentifier=keyid:always\nissuingDistributionPoint=critical,@idp\n[idp]\nfullname=URI:http://ca.mesh.local/crl\nonlyuser=TRUE\n"),
        ),
    );
    corpus.write(
        "refused-openssl-no-number.der",
        openssl_crl(ssl, "openssl-p256", "sha256", false, None),
    );
    corpus.write(
        "refused-openssl-p256-sha512-services.der",
        openssl_crl(ssl, "openssl-p256", "sha512", true, None),
    );
    corpus.write(
        "refused-openssl-indirect.der",
        openssl_crl(
            ssl,
            "openssl-p256",
            "sha256",
            true,
            Some("issuingDistributionPoint=critical,@idp\n[idp]\nfullname=URI:http://x/crl\nindirectCRL=TRUE\n"),
        ),
    );
    corpus.write(
        "refused-openssl-critical-ext.der",
        openssl_crl(
            ssl,
            "openssl-p256",
            "sha256",
            true,
            Some("1.3.6.1.4.1.99999.1=critical,ASN1:NULL\n"),
        ),
    );
    corpus.write(
        "refused-openssl-no-crlsign.der",
        openssl_crl(ssl, "openssl-p384-no-crlsign", "sha384", true, None),
    );
    both(
        "openssl-rsa2048",
        &openssl_crl(ssl, "openssl-rsa2048", "sha256", true, None),
    );

    let roots = vec![
        ("ours-p384".to_string(), ours.cert_pem()),
        ("openssl-p256".to_string(), String::from_utf8(p256).unwrap()),
        (
            "openssl-no-crlsign".to_string(),
            String::from_utf8(no_crl_sign).unwrap(),
        ),
        (
            "openssl-rsa2048".to_string(),
            String::from_utf8(rsa).unwrap(),
        ),
    ];
    Crls { crls: pems, roots }
}
