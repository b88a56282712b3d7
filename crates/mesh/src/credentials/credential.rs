//! One certificate with its private key, ready for rustls, plus the facts about it.

use std::sync::Arc;

use rcgen::KeyPair;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

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
    fn usage(self) -> webpki::KeyUsage {
        match self {
            Role::Server => webpki::KeyUsage::server_auth(),
            Role::Client => webpki::KeyUsage::client_auth(),
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

    /// Checks a certificate before it is published: it chains to `roots`, is valid now, allows
    /// `role`, and carries `expected_id` when one is given. A certificate failing any check is
    /// never swapped in.
    pub fn validate(
        &self,
        roots: &Roots,
        role: Role,
        expected_id: Option<&pki::SpiffeId>,
    ) -> Result<()> {
        let leaf = &self.chain[0];
        let ee = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| MeshError::Credential(format!("cannot parse the certificate: {e:?}")))?;
        let anchors: Vec<_> = roots
            .certs()
            .iter()
            .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
            .collect();
        let algs = TlsPolicy::default().signature_algorithms();
        ee.verify_for_usage(
            algs.all,
            &anchors,
            &self.chain[1..],
            UnixTime::now(),
            role.usage(),
            None,
            None,
        )
        .map_err(|e| {
            MeshError::Credential(format!(
                "certificate {} ({}) does not validate against the trusted roots {:?} for {}: {}",
                self.info.serial_hex,
                self.identity(),
                roots.subjects(),
                role.eku_name(),
                webpki_words(&e)
            ))
        })?;
        if let Some(expected) = expected_id {
            match self.spiffe_id() {
                Some(id) if &id == expected => {}
                Some(id) => {
                    return Err(MeshError::Credential(format!(
                        "certificate for {id} is not valid for {expected}"
                    )))
                }
                None => {
                    return Err(MeshError::Credential(format!(
                        "certificate {} carries no SPIFFE ID; expected {expected}",
                        self.info.serial_hex
                    )))
                }
            }
        }
        Ok(())
    }
}

fn webpki_words(e: &webpki::Error) -> String {
    match e {
        webpki::Error::UnknownIssuer => "signed by an unknown CA".into(),
        webpki::Error::CertExpired { .. } => "expired".into(),
        webpki::Error::CertNotValidYet { .. } => "not yet valid".into(),
        webpki::Error::CaUsedAsEndEntity => "it is a CA certificate".into(),
        other => format!("{other:?}"),
    }
}
