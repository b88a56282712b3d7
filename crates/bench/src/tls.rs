//! The client TLS configuration, from the project's one TLS policy (`wire::tls`): TLS 1.3 only,
//! the mesh's suites, ECDSA-only signatures, the groups asked for (any of `wire::tls::KxGroup`,
//! so servers outside the mesh can be measured with the groups they offer), the client
//! certificate, and no resumption, so `new` mode measures full handshakes.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::client::WebPkiServerVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use wire::tls::{CertResolver, KxGroup, TlsPolicy, ALPN_HTTP1};

/// The client configuration of a load run; `present_cert` false: the certificate is read and
/// checked but not offered (ca-sign mode, where the join token authenticates).
pub fn client_config(
    cert: &Path,
    key: &Path,
    ca_cert: &Path,
    groups: &[KxGroup],
    present_cert: bool,
) -> anyhow::Result<ClientConfig> {
    let policy = TlsPolicy::mesh().with_groups(groups)?;
    let provider = policy.provider();
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_cert)
        .with_context(|| format!("reading {}", ca_cert.display()))?
    {
        roots.add(c?)?;
    }
    if roots.is_empty() {
        bail!(
            "{}: no certificate in the --ca-cert file",
            ca_cert.display()
        );
    }
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .context("--cert and --key do not belong together")?;
    let resolver = present_cert.then(|| {
        CertResolver::new(Arc::new(certified)) as Arc<dyn rustls::client::ResolvesClientCert>
    });
    Ok(policy.client_config(verifier, resolver, ALPN_HTTP1)?)
}
