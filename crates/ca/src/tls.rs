//! TLS for the CA's own API: the one TLS policy of the project (`wire::tls`: TLS 1.3 only, the
//! mesh's suites and groups, ECDSA-only signatures, no resumption), client certificates
//! optional at the handshake (required per endpoint), and an API certificate that renews itself.

use std::sync::{Arc, Mutex};

use pki::policy::LeafRequest;
use pki::{CaMaterial, Curve, IssuancePolicy, SpiffeId};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use wire::tls::{CertResolver, TlsPolicy, ALPN_HTTP};

pub use crate::api_verifier::ApiClientVerifier;
use crate::authority::Authority;

/// Lifetime of the CA's API certificate; it is re-issued at half-life while the CA runs.
pub const API_CERT_LIFETIME: Duration = Duration::days(7);

/// Serves whatever API certificate is current: the one hot-swapping resolver of `wire::tls`
/// (publish a new certificate with `swap`).
pub type ApiCertResolver = CertResolver;

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
    // The leaf and the intermediate of a two-tier CA: clients have only the root.
    let mut chain = vec![CertificateDer::from(issued.der)];
    chain.extend(ca.intermediates());
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match()?;
    Ok((certified, issued.not_after))
}

/// Server config with the resolver and `verifier`, which accepts (but does not require) client
/// certificates chaining to our roots; endpoints that need one check it themselves.
pub fn server_config(
    verifier: Arc<ApiClientVerifier>,
    resolver: Arc<ApiCertResolver>,
) -> anyhow::Result<ServerConfig> {
    let policy = TlsPolicy::mesh();
    // No resumption (a resumed handshake would skip client-certificate verification and bring
    // a revoked caller back), server cipher order, HTTP/2 and HTTP/1.1: the policy's defaults.
    Ok(policy.server_config(verifier, resolver, ALPN_HTTP)?)
}

/// A resolver presenting `initial` until the API certificate is re-issued.
pub fn new_resolver(initial: CertifiedKey) -> Arc<ApiCertResolver> {
    CertResolver::new(Arc::new(initial))
}

/// The CA's API certificate while the CA runs: re-issued at half its life and whenever the
/// root that signs changes (a root rotation step, `root_follow.rs`). Issuing and publishing
/// happen under one lock, by the root that signs at that moment, so the certificate published
/// last is always the current root's, whichever of the two causes came last.
pub struct ApiIdentity {
    resolver: Arc<ApiCertResolver>,
    id: SpiffeId,
    dns: Vec<String>,
    ips: Vec<std::net::IpAddr>,
    /// NotAfter of the certificate published.
    published: Mutex<OffsetDateTime>,
}

impl ApiIdentity {
    /// Issues the first API certificate with `ca`; returns it with its leaf (DER, to audit).
    pub fn issue_first(
        ca: &CaMaterial,
        id: SpiffeId,
        dns: Vec<String>,
        ips: Vec<std::net::IpAddr>,
        now: OffsetDateTime,
    ) -> anyhow::Result<(Arc<ApiIdentity>, Vec<u8>)> {
        let (key, not_after) = issue_api_cert(ca, &id, &dns, &ips, now)?;
        let leaf = key.end_entity_cert()?.to_vec();
        Ok((
            Arc::new(ApiIdentity {
                resolver: new_resolver(key),
                id,
                dns,
                ips,
                published: Mutex::new(not_after),
            }),
            leaf,
        ))
    }

    /// The resolver the listener presents from.
    pub fn resolver(&self) -> Arc<ApiCertResolver> {
        self.resolver.clone()
    }

    /// NotAfter of the certificate presented now.
    pub fn not_after(&self) -> OffsetDateTime {
        *self.published.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks that `ca` can issue the API certificate (before a root switch commits to it).
    pub fn check_issuer(&self, ca: &CaMaterial, now: OffsetDateTime) -> anyhow::Result<()> {
        issue_api_cert(ca, &self.id, &self.dns, &self.ips, now).map(|_| ())
    }

    /// Issues a new API certificate with the root `authority` signs with now, audits it and
    /// presents it from the next handshake on. Returns its NotAfter.
    pub fn reissue(&self, authority: &Authority) -> anyhow::Result<OffsetDateTime> {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let (key, not_after) = issue_api_cert(
            &authority.ca(),
            &self.id,
            &self.dns,
            &self.ips,
            authority.now(),
        )?;
        if let Err(e) = authority.record_api_cert(key.end_entity_cert()?) {
            tracing::error!(error = %e, "auditing the re-issued API certificate failed");
        }
        self.resolver.swap(Arc::new(key));
        *published = not_after;
        Ok(not_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::SignatureScheme;

    /// The CA's listener speaks the one policy of `wire::tls`: ECDSA-only signature
    /// verification (its own provider accepted RSA and Ed25519 client signatures before),
    /// the mesh's suites and groups, no resumption.
    #[test]
    fn the_api_listener_uses_the_one_tls_policy() {
        let now = OffsetDateTime::now_utc();
        let ca = CaMaterial::generate_root("Policy Root", now).expect("root");
        let id = SpiffeId::parse("spiffe://mesh.local/ca").expect("id");
        let (key, _) = issue_api_cert(&ca, &id, &[], &[], now).expect("api cert");
        let verifier = ApiClientVerifier::new(&[ca.cert_der().clone()]).expect("verifier");
        let config = server_config(verifier, new_resolver(key)).expect("config");
        let provider = config.crypto_provider();
        let schemes = provider
            .signature_verification_algorithms
            .supported_schemes();
        assert_eq!(schemes, TlsPolicy::mesh().supported_schemes());
        assert!(
            schemes.iter().all(|s| matches!(
                s,
                SignatureScheme::ECDSA_NISTP256_SHA256
                    | SignatureScheme::ECDSA_NISTP384_SHA384
                    | SignatureScheme::ECDSA_NISTP521_SHA512
            )),
            "{schemes:?}"
        );
        assert_eq!(provider.cipher_suites.len(), 2);
        assert_eq!(provider.kx_groups.len(), 2);
        assert_eq!(config.send_tls13_tickets, 0);
        assert!(!config.session_storage.can_cache());
    }
}
