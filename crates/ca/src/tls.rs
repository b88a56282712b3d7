//! TLS for the CA's own API: TLS 1.3 only, our suites and groups, client certificates optional
//! at the handshake (required per endpoint), and an API certificate that renews itself.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pki::policy::LeafRequest;
use pki::{CaMaterial, Curve, IssuancePolicy, SpiffeId};
use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// Lifetime of the CA's API certificate; it is re-issued at half-life while the CA runs.
pub const API_CERT_LIFETIME: Duration = Duration::days(7);

/// The provider of docs/design.md §2: AES-256-GCM then AES-128-GCM, secp384r1 and secp521r1.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider, kx_group};
    let mut p = default_provider();
    p.cipher_suites = vec![
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_AES_128_GCM_SHA256,
    ];
    p.kx_groups = vec![kx_group::SECP384R1, pki::tls_p521::SECP521R1];
    Arc::new(p)
}

/// Serves whatever API certificate is current.
#[derive(Debug)]
pub struct ApiCertResolver(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for ApiCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl ApiCertResolver {
    /// Serves `key` to new handshakes from now on; open connections keep theirs.
    pub fn replace(&self, key: CertifiedKey) {
        self.0.store(Arc::new(key));
    }
}

/// Issues the CA's own API certificate: a fresh P-384 key that never leaves memory, SANs
/// `localhost`, `127.0.0.1`, `::1` plus the operator's `--dns`/`--ip`.
pub fn issue_api_cert(
    ca: &CaMaterial,
    id: &SpiffeId,
    dns: &[String],
    ips: &[std::net::IpAddr],
    now: OffsetDateTime,
) -> anyhow::Result<(CertifiedKey, OffsetDateTime)> {
    let key = pki::keys::generate(Curve::P384)?;
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let issued = IssuancePolicy::default().issue(
        &LeafRequest {
            spiffe_id: id,
            dns,
            ips,
            spki_der: &spki,
            ttl: API_CERT_LIFETIME,
            now,
        },
        ca,
    )?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing_key = rustls::crypto::aws_lc_rs::sign::any_ecdsa_type(&key_der)?;
    let certified = CertifiedKey::new(vec![CertificateDer::from(issued.der)], signing_key);
    certified.keys_match()?;
    Ok((certified, issued.not_after))
}

/// Server config with the resolver and a verifier that accepts (but does not require) client
/// certificates chaining to our roots; endpoints that need one check it themselves.
pub fn server_config(
    roots: &[CertificateDer<'static>],
    resolver: Arc<ApiCertResolver>,
) -> anyhow::Result<ServerConfig> {
    let provider = provider();
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(r.clone())?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.ignore_client_order = true;
    // Resumption would skip client-certificate verification and bring a revoked caller back.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A resolver serving `initial` until it is replaced.
pub fn new_resolver(initial: CertifiedKey) -> Arc<ApiCertResolver> {
    Arc::new(ApiCertResolver(ArcSwap::from_pointee(initial)))
}
