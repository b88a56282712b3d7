//! One certificate with its private key, ready for rustls, plus the facts about it.

use std::sync::Arc;

use pki::verify::{ExpectedIdentity, Purpose, VerifyOptions};
use rcgen::KeyPair;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use wire::tls::TlsPolicy;

use crate::config::Role;
use crate::error::{CredentialError, Result};
use crate::trust::Roots;

impl Role {
    /// The purposes (EKUs) a certificate in this role must allow.
    fn purposes(self) -> &'static [(Purpose, &'static str)] {
        match self {
            Role::Server => &[(Purpose::Server, "serverAuth")],
            Role::Client => &[(Purpose::Client, "clientAuth")],
            Role::Both => &[
                (Purpose::Server, "serverAuth"),
                (Purpose::Client, "clientAuth"),
            ],
        }
    }
}

/// A certificate chain (leaf first) with its key. The key stays inside the rustls
/// `CertifiedKey`: it never leaves the process (docs/design.md §2).
#[derive(Clone)]
pub struct Credential {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) info: pki::CertInfo,
    pub(crate) certified: Arc<CertifiedKey>,
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
        let leaf = chain.first().ok_or(CredentialError::EmptyChain)?;
        let info = pki::CertInfo::from_der(leaf)?;
        // rcgen keeps the DER it was loaded from (PKCS#8 or SEC1); let pki-types tell which.
        let key_der = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|reason| CredentialError::UnusableKey { reason })?;
        let certified = CertifiedKey::from_der(chain.clone(), key_der, &policy.provider())
            .map_err(|error| CredentialError::KeyMismatch {
                serial: info.serial_hex.clone(),
                error,
            })?;
        Ok(Credential {
            chain,
            info,
            certified: Arc::new(certified),
        })
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The facts of the leaf (serial, subject, issuer, SANs, validity, client key).
    pub fn info(&self) -> &pki::CertInfo {
        &self.info
    }

    /// The chain with its key, for a rustls configuration built by hand (the key itself cannot
    /// be read back out).
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        self.certified.clone()
    }

    /// The leaf's serial, lowercase hex.
    pub fn serial(&self) -> &str {
        &self.info.serial_hex
    }

    /// The leaf's NotAfter.
    pub fn not_after(&self) -> OffsetDateTime {
        self.info.not_after
    }

    /// The leaf's SPIFFE ID, if it carries one.
    pub fn spiffe_id(&self) -> Option<pki::SpiffeId> {
        self.info.spiffe_id()
    }

    /// Display name of the identity: the SPIFFE ID, else the subject.
    pub fn identity(&self) -> String {
        self.spiffe_id()
            .map(|i| i.to_string())
            .unwrap_or_else(|| self.info.subject.clone())
    }

    /// The certificates a CRL for this credential's peers may be signed by: `roots`, then this
    /// chain's intermediates (a two-tier CA signs its CRL with the intermediate). Call it only
    /// for a credential that `validate` accepted against `roots`.
    pub fn crl_issuers(&self, roots: &Roots) -> Vec<CertificateDer<'static>> {
        let mut out = roots.certs().to_vec();
        out.extend(self.chain.iter().skip(1).cloned());
        out
    }

    /// Checks a certificate before it is published, with the same validator as
    /// `mtls-inspect verify` (`pki::verify`): it chains to `roots`, is valid at `now`, allows
    /// `role`, and carries `expected_id` when one is given. A certificate failing any check is
    /// never swapped in.
    pub fn validate(
        &self,
        roots: &Roots,
        role: Role,
        expected_id: Option<&pki::SpiffeId>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let expected = expected_id.map(|id| ExpectedIdentity::SpiffeId(id.clone()));
        for (purpose, eku) in role.purposes() {
            let opts = VerifyOptions {
                time: now,
                purpose: *purpose,
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
            .map_err(|error| CredentialError::NotAccepted {
                serial: self.info.serial_hex.clone(),
                identity: self.identity(),
                eku,
                error: Box::new(error),
            })?;
        }
        Ok(())
    }
}
