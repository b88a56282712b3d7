//! Getting certificates from the CA: first with a join token, then by renewal over mTLS. A fresh
//! key is generated in memory for every certificate; only a CSR leaves the process. Each
//! certificate is validated (roots, role, own SPIFFE ID) before the caller may publish it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

use crate::ca_client::{CaClient, SignResponse};
use crate::credentials::{Credential, Role};
use crate::error::{MeshError, Result};
use crate::tls::TlsPolicy;
use crate::trust::TrustState;

/// Where the join token comes from. A file is re-read whenever a token is needed, so an
/// operator can drop a fresh token there for re-enrollment after an expiry.
#[derive(Clone)]
pub enum TokenSource {
    Literal(String),
    File(PathBuf),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print a token.
            TokenSource::Literal(_) => f.write_str("TokenSource::Literal(<redacted>)"),
            TokenSource::File(p) => write!(f, "TokenSource::File({})", p.display()),
        }
    }
}

impl TokenSource {
    pub fn read(&self) -> Result<String> {
        let token = match self {
            TokenSource::Literal(t) => t.clone(),
            TokenSource::File(p) => std::fs::read_to_string(p).map_err(|e| {
                MeshError::io(format!("reading the join token file {}", p.display()), e)
            })?,
        };
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err(MeshError::Config("the join token is empty".into()));
        }
        Ok(token)
    }
}

/// A PEM CSR for `id`, signed by `key`. The CA takes only the public key and the identity its
/// token allows; the URI SAN is informational.
pub fn make_csr(key: &KeyPair, id: &pki::SpiffeId) -> Result<String> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let id_str = id.to_string();
    if id_str.len() <= 64 {
        dn.push(DnType::CommonName, id_str.as_str());
    }
    params.distinguished_name = dn;
    params.subject_alt_names =
        vec![SanType::URI(id_str.as_str().try_into().map_err(|e| {
            MeshError::Credential(format!("SPIFFE ID as URI: {e}"))
        })?)];
    let csr = params
        .serialize_request(key)
        .map_err(|e| MeshError::Credential(format!("creating the CSR: {e}")))?;
    csr.pem()
        .map_err(|e| MeshError::Credential(format!("encoding the CSR: {e}")))
}

pub struct Enroller {
    pub ca: CaClient,
    pub spiffe_id: pki::SpiffeId,
    pub token: TokenSource,
    pub curve: pki::Curve,
    /// Requested lifetime; None lets the CA choose (its --cert-duration).
    pub ttl: Option<Duration>,
    pub role: Role,
    pub trust: Arc<TrustState>,
    pub policy: TlsPolicy,
    /// SHA-256 of the last token sent, so a used token is not sent again.
    used_token: Mutex<Option<String>>,
}

impl Enroller {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ca: CaClient,
        spiffe_id: pki::SpiffeId,
        token: TokenSource,
        curve: pki::Curve,
        ttl: Option<Duration>,
        role: Role,
        trust: Arc<TrustState>,
        policy: TlsPolicy,
    ) -> Enroller {
        Enroller {
            ca,
            spiffe_id,
            token,
            curve,
            ttl,
            role,
            trust,
            policy,
            used_token: Mutex::new(None),
        }
    }

    /// True when the token source holds a token not used yet (re-enrollment is possible).
    pub fn fresh_token_available(&self) -> bool {
        let Ok(token) = self.token.read() else {
            return false;
        };
        let used = self.used_token.lock().unwrap_or_else(|p| p.into_inner());
        used.as_deref() != Some(pki::sha256_hex(token.as_bytes()).as_str())
    }

    /// First issuance: fresh key, CSR, `POST /api/v1/sign` with the join token.
    pub async fn enroll(&self) -> Result<Credential> {
        let token = self.token.read()?;
        let key = pki::keys::generate(self.curve)?;
        let csr = make_csr(&key, &self.spiffe_id)?;
        *self.used_token.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(pki::sha256_hex(token.as_bytes()));
        let response = self
            .ca
            .sign(&csr, &token, &self.spiffe_id, self.ttl)
            .await?;
        self.finish(&key, response)
    }

    /// Renewal: fresh key, CSR, `POST /api/v1/renew` authenticated by `current`.
    pub async fn renew(&self, current: &Credential) -> Result<Credential> {
        let key = pki::keys::generate(self.curve)?;
        let csr = make_csr(&key, &self.spiffe_id)?;
        let response = self
            .ca
            .renew(&csr, self.ttl, current.certified.clone())
            .await?;
        self.finish(&key, response)
    }

    fn finish(&self, key: &KeyPair, response: SignResponse) -> Result<Credential> {
        let leaf = pki::pem::parse_certificates(response.certificate.as_bytes())?;
        let credential = Credential::from_key(key, leaf, &self.policy)?;
        if credential.info.serial_hex != response.serial.to_ascii_lowercase() {
            tracing::warn!(
                event = "ca_response_mismatch",
                certificate_serial = %credential.info.serial_hex,
                response_serial = %response.serial,
                "the CA's serial field does not match the certificate it returned"
            );
        }
        credential.validate(&self.trust.roots(), self.role, Some(&self.spiffe_id))?;
        Ok(credential)
    }
}
