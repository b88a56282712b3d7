//! Static and pinned mode: certificate and key (and in static mode the roots and an optional
//! CRL) from files that another tool maintains (docs/design.md §1, notes 000 to 002). One load
//! reads, validates and fingerprints them; the file watcher (`refresh::files`) loads again when
//! the fingerprint changes, and only a load that passes is published.

use std::path::{Path, PathBuf};

use pki::crl::{verify_crl, RevokedSet};
use time::OffsetDateTime;
use wire::tls::TlsPolicy;

use crate::config::Role;
use crate::credentials::Credential;
use crate::error::{CredentialError, MeshError, Result, TrustError};
use crate::trust::Roots;

/// The files of one service.
#[derive(Clone, Debug)]
pub(crate) struct Files {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// None in pinned mode.
    pub(crate) roots: Option<PathBuf>,
    /// DER or PEM CRL signed by one of the roots (static mode only).
    pub(crate) crl: Option<PathBuf>,
}

/// What one load of the files produced.
pub(crate) struct Loaded {
    pub(crate) credential: Credential,
    pub(crate) roots: Option<Roots>,
    pub(crate) revoked: Option<RevokedSet>,
    pub(crate) digest: String,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| MeshError::io(format!("reading the {what} file {}", path.display()), e))
}

impl Files {
    /// SHA-256 over every file's content: a change of any of them changes it.
    pub(crate) fn digest(&self) -> Result<String> {
        let mut all = read(&self.cert, "certificate")?;
        all.extend_from_slice(b"\0key\0");
        all.extend_from_slice(&read(&self.key, "key")?);
        if let Some(ca) = &self.roots {
            all.extend_from_slice(b"\0ca\0");
            all.extend_from_slice(&read(ca, "CA certificate")?);
        }
        if let Some(crl) = &self.crl {
            all.extend_from_slice(b"\0crl\0");
            all.extend_from_slice(&read(crl, "CRL")?);
        }
        Ok(pki::sha256_hex(&all))
    }

    /// Loads and validates the files at `now`: the key must match the certificate, and with
    /// roots the certificate must chain to them and allow `role`; a CRL must verify against the
    /// roots under the strict rules of `pki::crl`.
    pub(crate) fn load(
        &self,
        policy: &TlsPolicy,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<Loaded> {
        let digest = self.digest()?;
        let cert_pem = read(&self.cert, "certificate")?;
        let key_pem = read(&self.key, "key")?;
        let credential = Credential::from_pem(&cert_pem, &key_pem, policy).map_err(|e| {
            CredentialError::Files {
                cert: self.cert.clone(),
                key: self.key.clone(),
                error: Box::new(e),
            }
        })?;
        let roots = match &self.roots {
            Some(path) => {
                let roots = read(path, "CA certificate")
                    .and_then(|pem| Roots::from_pem(&pem))
                    .map_err(|e| TrustError::RootsFile {
                        path: path.clone(),
                        error: Box::new(e),
                    })?;
                credential.validate(&roots, role, None, now)?;
                Some(roots)
            }
            None => None,
        };
        let revoked = match (&self.crl, &roots) {
            (Some(path), Some(roots)) => {
                let bytes = read(path, "CRL")?;
                let der = if pki::pem::looks_like_pem(&bytes) {
                    pki::pem::parse_single(&bytes, "X509 CRL")?
                } else {
                    bytes
                };
                let issuers = credential.crl_issuers(roots);
                let crl = verify_crl(&der, &issuers).map_err(|error| MeshError::CrlFile {
                    path: path.clone(),
                    error,
                })?;
                Some(RevokedSet::from_crls(vec![crl]))
            }
            // The configuration types allow a CRL only with roots (static mode).
            _ => None,
        };
        Ok(Loaded {
            credential,
            roots,
            revoked,
            digest,
        })
    }
}
