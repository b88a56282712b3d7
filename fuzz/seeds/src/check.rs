//! Every seed means what its name says: a `refused-*` seed is refused by the code its target
//! drives, every other seed is accepted (with the few exceptions named below). Run after
//! writing, so a seed that stopped exercising the path it was made for is noticed at once.

use std::path::Path;

use mtls_ca::api::{check_body, Endpoint};
use mtls_ca::authority::AuthorityConfig;
use pki::sigalg::AlgorithmPolicy;
use rustls_pki_types::CertificateDer;

fn seeds(fuzz_dir: &Path, target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(fuzz_dir.join("corpus").join(target))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .filter(|(name, _)| !name.starts_with(crate::out::REGRESSION_PREFIX))
        .collect();
    out.sort();
    out
}

fn expect(target: &str, name: &str, accepted: bool, why: impl std::fmt::Display) {
    let refused = name.starts_with("refused-");
    assert!(
        accepted != refused,
        "{target}/{name}: {} ({why})",
        if accepted {
            "accepted but named refused-"
        } else {
            "refused"
        }
    );
}

pub fn all(fuzz_dir: &Path) {
    for (name, bytes) in seeds(fuzz_dir, "csr") {
        let r = pki::csr::parse_and_verify(&bytes);
        if let Ok(csr) = &r {
            assert_eq!(csr.requests_ca, name.contains("ca-true"), "csr/{name}");
        }
        expect(
            "csr",
            &name,
            r.is_ok(),
            r.as_ref().err().map(|e| e.to_string()).unwrap_or_default(),
        );
    }
    for (name, bytes) in seeds(fuzz_dir, "spiffe_id") {
        let text = String::from_utf8(bytes).unwrap();
        if name.starts_with("td-") {
            pki::TrustDomain::parse(&text).unwrap();
            continue;
        }
        let r = pki::SpiffeId::parse(&text);
        expect(
            "spiffe_id",
            &name,
            r.is_ok(),
            r.err().map(|e| e.to_string()).unwrap_or_default(),
        );
    }
    for (name, bytes) in seeds(fuzz_dir, "p521_key_share") {
        let r = pki::tls_p521::SECP521R1.start().unwrap().complete(&bytes);
        expect(
            "p521_key_share",
            &name,
            r.is_ok(),
            r.err().map(|e| format!("{e:?}")).unwrap_or_default(),
        );
    }
    let issuers: Vec<CertificateDer<'static>> =
        std::fs::read_dir(fuzz_dir.join("fixtures").join("crl_issuers"))
            .unwrap()
            .map(|e| CertificateDer::from(std::fs::read(e.unwrap().path()).unwrap()))
            .collect();
    for (name, bytes) in seeds(fuzz_dir, "crl") {
        let der = pki::pem::parse_single(&bytes, "X509 CRL").unwrap();
        // RSA and P-256 with SHA-512 pass only the Web PKI policy (mtls-inspect's option).
        let web_pki_only = name.contains("rsa") || name.ends_with("-services.der");
        let policy = if web_pki_only {
            AlgorithmPolicy::WebPki
        } else {
            AlgorithmPolicy::EcdsaOnly
        };
        let r = pki::crl::verify_crl_with_policy(&der, &issuers, policy);
        let shown = if web_pki_only && name.starts_with("refused-") {
            pki::crl::verify_crl(&der, &issuers)
        } else {
            r
        };
        expect(
            "crl",
            &name,
            shown.is_ok(),
            shown.err().map(|e| e.to_string()).unwrap_or_default(),
        );
    }
    for (name, bytes) in seeds(fuzz_dir, "inspect_input") {
        let r = mtls_inspect::input::parse(&name, &bytes);
        expect(
            "inspect_input",
            &name,
            r.is_ok(),
            r.err().map(|e| format!("{e:#}")).unwrap_or_default(),
        );
    }
    let cfg = AuthorityConfig {
        trust_domain: pki::TrustDomain::parse("mesh.local").unwrap(),
        default_ttl: time::Duration::hours(1),
        max_ttl: time::Duration::hours(24),
        admin_id: None,
        policy: pki::IssuancePolicy::default(),
    };
    for (name, bytes) in seeds(fuzz_dir, "ca_request_body") {
        let endpoint = if name.starts_with("renew") || name.starts_with("refused-renew") {
            Endpoint::Renew
        } else if name.starts_with("revoke") {
            Endpoint::Revoke
        } else {
            Endpoint::Sign
        };
        let name = name.strip_prefix("revoke-").unwrap_or(&name).to_string();
        let name = name.strip_prefix("sign-").unwrap_or(&name);
        let r = check_body(endpoint, &bytes, &cfg);
        expect(
            "ca_request_body",
            name,
            r.is_ok(),
            r.err().map(|e| e.code).unwrap_or_default(),
        );
    }
    let issuer = std::fs::read(fuzz_dir.join("fixtures/crl_issuers/ours-p384.der")).unwrap();
    for (name, bytes) in seeds(fuzz_dir, "ocsp_request") {
        let r = pki::ocsp::read_request_for(&issuer, &bytes);
        if let Ok(query) = &r {
            assert_eq!(
                query.nonce().is_some(),
                name.contains("nonce") && !name.contains("no-nonce"),
                "ocsp_request/{name}"
            );
        }
        expect(
            "ocsp_request",
            &name,
            r.is_ok(),
            r.err().map(|e| e.to_string()).unwrap_or_default(),
        );
    }
    for (name, bytes) in seeds(fuzz_dir, "ocsp_get_path") {
        let path = String::from_utf8(bytes).unwrap();
        let r = pki::ocsp::decode_get_path(&path)
            .and_then(|der| pki::ocsp::read_request_for(&issuer, &der));
        if let Ok(query) = &r {
            assert_eq!(
                query.nonce().is_some(),
                name.contains("nonce") && !name.contains("no-nonce"),
                "ocsp_get_path/{name}"
            );
        }
        expect(
            "ocsp_get_path",
            &name,
            r.is_ok(),
            r.err().map(|e| e.to_string()).unwrap_or_default(),
        );
    }
    for (name, bytes) in seeds(fuzz_dir, "ocsp_response") {
        let r = pki::ocsp::read_response(&bytes);
        expect(
            "ocsp_response",
            &name,
            r.is_ok(),
            r.err().unwrap_or_default(),
        );
    }
}
