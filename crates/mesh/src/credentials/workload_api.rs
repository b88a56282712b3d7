//! Workload API mode: one `FetchX509SVID` message (docs/agent.md) turned into what a service
//! publishes: the credential (the SVID asked for, or the first one offered, with its PKCS#8
//! key), the trust domain's roots (the SVID's bundle) and the revocation list (the message's
//! CRLs, verified against those roots under the strict rules of `pki::crl`). The credential is
//! validated against the roots for the service's role before anything is published.

use std::path::Path;

use pki::crl::{verify_crl, RevokedSet};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use wire::tls::TlsPolicy;
use workload::proto::X509svidResponse;
use workload::split_der_certificates;

use crate::config::Role;
use crate::credentials::files::Loaded;
use crate::credentials::Credential;
use crate::error::{CredentialError, MeshError, Result};
use crate::trust::Roots;

/// The SPIFFE IDs a message offers, for error messages.
fn offered(message: &X509svidResponse) -> String {
    let ids: Vec<&str> = message.svids.iter().map(|s| s.spiffe_id.as_str()).collect();
    if ids.is_empty() {
        "none".into()
    } else {
        ids.join(", ")
    }
}

fn certificates(der: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = split_der_certificates(der).map_err(|reason| CredentialError::WorkloadApi {
        reason: format!("the {what} from the Workload API: {reason}"),
    })?;
    Ok(certs.into_iter().map(CertificateDer::from).collect())
}

/// The credential, roots and revocation list of `message` for a service in `role`; `wanted`
/// picks the SVID by SPIFFE ID. An SVID that is not offered is a [`MeshError::WorkloadApi`]
/// (the registration entry may not have reached the agent yet: retried at start); an SVID,
/// bundle or CRL that does not verify is refused like a bad certificate file.
pub(crate) fn load(
    message: &X509svidResponse,
    socket: &Path,
    wanted: Option<&pki::SpiffeId>,
    policy: &TlsPolicy,
    role: Role,
    now: OffsetDateTime,
) -> Result<Loaded> {
    let svid = match wanted {
        Some(id) => {
            let id = id.to_string();
            message.svids.iter().find(|s| s.spiffe_id == id)
        }
        None => message.svids.first(),
    };
    let Some(svid) = svid else {
        return Err(MeshError::WorkloadApi {
            socket: socket.to_path_buf(),
            reason: match wanted {
                Some(id) => format!(
                    "this process is not entitled to {id}; the agent offers: {} (check the \
                     registration entries' selectors, or drop --spiffe-id)",
                    offered(message)
                ),
                None => "the agent sent no SVID".into(),
            },
        });
    };
    let chain = certificates(&svid.x509_svid, "SVID")?;
    let key_pem = pki::pem::encode("PRIVATE KEY", &svid.x509_svid_key);
    let (key, _curve) = pki::keys::parse_private_key_pem(key_pem.as_bytes())?;
    let credential = Credential::from_key(&key, chain, policy)?;
    let roots = Roots::new(certificates(&svid.bundle, "bundle")?)?;
    credential.validate(&roots, role, wanted, now)?;
    let mut crls = Vec::new();
    for der in &message.crl {
        crls.push(verify_crl(der, roots.certs())?);
    }
    let mut digest = Vec::new();
    for part in [&svid.x509_svid, &svid.x509_svid_key, &svid.bundle]
        .into_iter()
        .chain(&message.crl)
    {
        digest.extend_from_slice(&(part.len() as u64).to_be_bytes());
        digest.extend_from_slice(part);
    }
    Ok(Loaded {
        credential,
        roots: Some(roots),
        revoked: Some(RevokedSet::from_crls(crls)),
        digest: pki::sha256_hex(&digest),
    })
}
