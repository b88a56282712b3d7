//! The client TLS configuration: TLS 1.3 only, the mesh's suites, the groups asked for, and the
//! client certificate. Session resumption is off so `new` mode measures full handshakes.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::crypto::{aws_lc_rs, SupportedKxGroup};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub fn group(name: &str) -> anyhow::Result<&'static dyn SupportedKxGroup> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "secp384r1" | "p-384" | "p384" => aws_lc_rs::kx_group::SECP384R1,
        "secp521r1" | "p-521" | "p521" => pki::tls_p521::SECP521R1,
        "x25519" => aws_lc_rs::kx_group::X25519,
        "x25519mlkem768" => aws_lc_rs::kx_group::X25519MLKEM768,
        "secp256r1" | "p-256" | "p256" => aws_lc_rs::kx_group::SECP256R1,
        other => bail!(
            "unknown group {other:?} (secp384r1, secp521r1, x25519, x25519mlkem768, secp256r1)"
        ),
    })
}

pub fn client_config(
    cert: &Path,
    key: &Path,
    ca_cert: &Path,
    groups: &[String],
) -> anyhow::Result<ClientConfig> {
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![
        aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
        aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
    ];
    provider.kx_groups = groups
        .iter()
        .map(|g| group(g))
        .collect::<anyhow::Result<_>>()?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_cert)
        .with_context(|| format!("reading {}", ca_cert.display()))?
    {
        roots.add(c?)?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
