//! Static mode (design notes 000/001/002 Method I): certificate, key and CA bundle from files,
//! reloaded without a restart when another tool replaces them.
//!
//! The files are polled: their contents are hashed every `interval` and, on a change, loaded,
//! validated and swapped in. A half-finished replacement (new certificate, old key) fails
//! validation and is retried at the next tick; the old credential keeps serving meanwhile.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::credentials::credential::{Credential, Role};
use crate::credentials::identity::Identity;
use crate::error::{MeshError, Result};
use crate::events::Events;
use crate::tls::TlsPolicy;
use crate::trust::{Roots, TrustState};
use pki::crl::{verify_crl, RevokedSet};

#[derive(Clone, Debug)]
pub struct StaticFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// None in pinned mode.
    pub ca_cert: Option<PathBuf>,
    /// Optional DER or PEM CRL signed by one of the roots in `ca_cert`.
    pub crl: Option<PathBuf>,
}

/// Where reloaded files are published.
pub struct ReloadTarget {
    pub identity: Arc<Identity>,
    /// None in pinned mode.
    pub trust: Option<Arc<TrustState>>,
    pub policy: TlsPolicy,
    pub role: Role,
    pub events: Arc<Events>,
}

/// What one load of the files produced.
pub struct Loaded {
    pub credential: Credential,
    pub roots: Option<Roots>,
    pub revoked: Option<RevokedSet>,
    digest: String,
}

impl StaticFiles {
    fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>> {
        std::fs::read(path)
            .map_err(|e| MeshError::io(format!("reading the {what} file {}", path.display()), e))
    }

    fn digest(&self) -> Result<String> {
        let mut all = Self::read(&self.cert, "certificate")?;
        all.extend_from_slice(b"\0key\0");
        all.extend_from_slice(&Self::read(&self.key, "key")?);
        if let Some(ca) = &self.ca_cert {
            all.extend_from_slice(b"\0ca\0");
            all.extend_from_slice(&Self::read(ca, "CA certificate")?);
        }
        if let Some(crl) = &self.crl {
            all.extend_from_slice(b"\0crl\0");
            all.extend_from_slice(&Self::read(crl, "CRL")?);
        }
        Ok(pki::sha256_hex(&all))
    }

    /// Loads and validates the files: the key must match the certificate, and with a CA file the
    /// certificate must chain to it and allow `role`.
    pub fn load(&self, policy: &TlsPolicy, role: Role) -> Result<Loaded> {
        let digest = self.digest()?;
        let cert_pem = Self::read(&self.cert, "certificate")?;
        let key_pem = Self::read(&self.key, "key")?;
        let credential = Credential::from_pem(&cert_pem, &key_pem, policy).map_err(|e| {
            MeshError::Credential(format!(
                "{} + {}: {}",
                self.cert.display(),
                self.key.display(),
                e.detail()
            ))
        })?;
        let roots = match &self.ca_cert {
            Some(path) => {
                let roots = Roots::from_pem(&Self::read(path, "CA certificate")?)
                    .map_err(|e| MeshError::Trust(format!("{}: {}", path.display(), e.detail())))?;
                credential.validate(&roots, role, None)?;
                Some(roots)
            }
            None => None,
        };
        let revoked = match (&self.crl, &roots) {
            (Some(path), Some(roots)) => {
                let bytes = Self::read(path, "CRL")?;
                let der = if pki::pem::looks_like_pem(&bytes) {
                    pki::pem::parse_single(&bytes, "X509 CRL")?
                } else {
                    bytes
                };
                let crl = verify_crl(&der, roots.certs())
                    .map_err(|e| MeshError::Crl(format!("{}: {e}", path.display())))?;
                Some(RevokedSet::from_crls(vec![crl]))
            }
            (Some(path), None) => {
                return Err(MeshError::Config(format!(
                    "--crl {} needs --ca-cert (the CRL is checked against the CA)",
                    path.display()
                )))
            }
            (None, _) => None,
        };
        Ok(Loaded {
            credential,
            roots,
            revoked,
            digest,
        })
    }

    /// Polls the files and publishes every valid change until the task is dropped.
    pub async fn watch(self, first: &Loaded, target: ReloadTarget, interval: Duration) {
        let ReloadTarget {
            identity,
            trust,
            policy,
            role,
            events,
        } = target;
        let mut published = first.digest.clone();
        let mut last_failed: Option<String> = None;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Ok(digest) = self.digest() else { continue };
            if digest == published || last_failed.as_deref() == Some(digest.as_str()) {
                continue;
            }
            match self.load(&policy, role) {
                Ok(loaded) if loaded.digest == digest => {
                    if let (Some(trust), Some(roots)) = (&trust, loaded.roots) {
                        if trust.set_roots(roots) {
                            tracing::info!(event = "trust_reloaded", file = %self.ca_cert.as_ref().map(|p| p.display().to_string()).unwrap_or_default(), "trusted roots reloaded from file");
                        }
                        if let Some(revoked) = loaded.revoked {
                            tracing::info!(
                                event = "crl_updated",
                                revoked = revoked.len(),
                                "revocation list reloaded from file: {} revoked certificate(s)",
                                revoked.len()
                            );
                            trust.set_revoked(revoked, true);
                        }
                    }
                    let new_serial = loaded.credential.info.serial_hex.clone();
                    if new_serial != identity.current().info.serial_hex {
                        let old = identity.publish(loaded.credential);
                        events.rotated(&old, &identity.current(), None, "file reload");
                    }
                    published = digest;
                    last_failed = None;
                }
                Ok(_) => {} // files changed again while loading; the next tick sees the final state
                Err(e) => {
                    tracing::warn!(event = "reload_failed", error = %e, "certificate files changed but cannot be used; keeping the current certificate");
                    last_failed = Some(digest);
                }
            }
        }
    }
}
