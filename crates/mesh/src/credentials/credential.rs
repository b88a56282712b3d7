//! One certificate with its private key, ready for rustls, plus the facts about it.

use std::sync::Arc;

use pki::verify::{ExpectedIdentity, Purpose, VerifyOptions};
use rcgen::KeyPair;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{MeshError, Result};
use crate::tls::TlsPolicy;
use crate::trust::Roots;

/// The role a certificate is used in; it decides the EKU a certificate needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Serves TLS: needs serverAuth.
    Server,
    /// Connects with a client certificate: needs clientAuth.
    Client,
}

impl Role {
    fn purpose(self) -> Purpose {
        match self {
            Role::Server => Purpose::Server,
            Role::Client => Purpose::Client,
        }
    }

    fn eku_name(self) -> &'static str {
        match self {
            Role::Server => "serverAuth",
            Role::Client => "clientAuth",
        }
    }
}

/// A certificate chain (leaf first) with its key. The key stays inside `certified`.
#[derive(Clone)]
pub struct Credential {
    pub chain: Vec<CertificateDer<'static>>,
    pub info: pki::CertInfo,
    pub certified: Arc<CertifiedKey>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("serial", &self.info.serial_hex)
            .field("subject", &self.info.subject)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// From a PEM certificate file's bytes (leaf first, then any intermediates) and a PEM key.
    /// RSA and other non-ECDSA keys are refused; the key must match the certificate.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], policy: &TlsPolicy) -> Result<Credential> {
        let chain = pki::pem::parse_certificates(cert_pem)?;
        let (key, _curve) = pki::keys::parse_private_key_pem(key_pem)?;
        Credential::from_key(&key, chain, policy)
    }

    /// From a key generated or loaded in this process and its certificate chain.
    pub fn from_key(
        key: &KeyPair,
        chain: Vec<CertificateDer<'static>>,
        policy: &TlsPolicy,
    ) -> Result<Credential> {
        let leaf = chain
            .first()
            .ok_or_else(|| MeshError::Credential("the certificate chain is empty".into()))?;
        let info = pki::CertInfo::from_der(leaf)?;
        // rcgen keeps the DER it was loaded from (PKCS#8 or SEC1); let pki-types tell which.
        let key_der = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| MeshError::Credential(format!("unusable private key: {e}")))?;
        let certified = CertifiedKey::from_der(chain.clone(), key_der, &policy.provider())
            .map_err(|e| {
                MeshError::Credential(format!(
                    "the private key does not belong to the certificate {} ({e})",
                    info.serial_hex
                ))
            })?;
        Ok(Credential {
            chain,
            info,
            certified: Arc::new(certified),
        })
    }

    pub fn spiffe_id(&self) -> Option<pki::SpiffeId> {
        self.info.spiffe_id()
    }

    /// Display name of the identity: the SPIFFE ID, else the subject.
    pub fn identity(&self) -> String {
        self.spiffe_id()
            .map(|i| i.to_string())
            .unwrap_or_else(|| self.info.subject.clone())
    }

    /// Checks a certificate before it is published, with the same validator as
    /// `mtls-inspect verify` (`pki::verify`): it chains to `roots`, is valid now, allows `role`,
    /// and carries `expected_id` when one is given. A certificate failing any check is never
    /// swapped in.
    pub fn validate(
        &self,
        roots: &Roots,
        role: Role,
        expected_id: Option<&pki::SpiffeId>,
    ) -> Result<()> {
        let expected = expected_id.map(|id| ExpectedIdentity::SpiffeId(id.clone()));
        let opts = VerifyOptions {
            time: time::OffsetDateTime::now_utc(),
            purpose: role.purpose(),
            hostname: None,
            identity: expected.as_ref(),
        };
        let no_crls: &[&[u8]] = &[];
        pki::verify::verify_chain(
            &self.chain[0],
            &self.chain[1..],
            roots.certs(),
            no_crls,
            &opts,
        )
        .map_err(|e| {
            MeshError::Credential(format!(
                "certificate {} ({}) was not accepted for {}: {e}",
                self.info.serial_hex,
                self.identity(),
                role.eku_name()
            ))
        })?;
        Ok(())
    }
}
