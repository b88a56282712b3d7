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
    let issuers = credential.crl_issuers(&roots);
    let mut crls = Vec::new();
    for der in &message.crl {
        crls.push(verify_crl(der, &issuers)?);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use workload::proto::X509svid;

    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::testing::{FakeCa, ID};

    const SOCKET: &str = "/run/agent.sock";

    /// A message offering one SVID for ID issued by `ca`, its key, and `bundle` as the roots.
    fn message(ca: &FakeCa, key: &rcgen::KeyPair, bundle: &FakeCa) -> X509svidResponse {
        let id = pki::SpiffeId::parse(ID).unwrap();
        let issued = ca.issue(&crate::enroll::make_csr(key, &id).unwrap());
        let leaf = pki::pem::parse_certificates(issued.certificate.as_bytes()).unwrap();
        X509svidResponse {
            svids: vec![X509svid {
                spiffe_id: ID.into(),
                x509_svid: leaf[0].to_vec(),
                x509_svid_key: key.serialize_der(),
                bundle: bundle.root.cert_der().to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn setup() -> (Arc<dyn Clock>, Arc<FakeCa>, rcgen::KeyPair) {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ca = FakeCa::new(clock.clone(), time::Duration::hours(1));
        (clock, ca, pki::keys::generate(pki::Curve::P384).unwrap())
    }

    fn load_as(
        message: &X509svidResponse,
        wanted: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Loaded> {
        let wanted = wanted.map(|w| pki::SpiffeId::parse(w).unwrap());
        load(
            message,
            Path::new(SOCKET),
            wanted.as_ref(),
            &TlsPolicy::mesh(),
            Role::Both,
            now,
        )
    }

    fn refusal(result: Result<Loaded>) -> MeshError {
        result.err().expect("refused")
    }

    #[test]
    fn the_svid_its_key_and_the_bundle_become_the_credential_and_roots() {
        let (clock, ca, key) = setup();
        let m = message(&ca, &key, &ca);
        for wanted in [None, Some(ID)] {
            let loaded = load_as(&m, wanted, clock.now()).unwrap();
            assert_eq!(loaded.credential.identity(), ID);
            assert_eq!(
                loaded.roots.unwrap().fingerprints(),
                ca.roots().fingerprints()
            );
        }
        // The same content, the same digest: a repeated message changes nothing.
        let again = load_as(&m, None, clock.now()).unwrap();
        assert_eq!(again.digest, load_as(&m, None, clock.now()).unwrap().digest);
    }

    #[test]
    fn an_svid_that_does_not_chain_to_its_bundle_is_refused() {
        let (clock, ca, key) = setup();
        let other = FakeCa::new(clock.clone(), time::Duration::hours(1));
        let err = refusal(load_as(&message(&ca, &key, &other), None, clock.now()));
        assert!(
            matches!(
                err,
                MeshError::Credential(CredentialError::NotAccepted { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn an_expired_svid_is_refused() {
        let (clock, ca, key) = setup();
        let later = clock.now() + time::Duration::hours(2);
        let err = refusal(load_as(&message(&ca, &key, &ca), None, later));
        assert!(err.to_string().contains("not accepted"), "{err}");
    }

    #[test]
    fn a_key_that_is_not_the_svids_is_refused() {
        let (clock, ca, key) = setup();
        let mut m = message(&ca, &key, &ca);
        m.svids[0].x509_svid_key = pki::keys::generate(pki::Curve::P384)
            .unwrap()
            .serialize_der();
        let err = refusal(load_as(&m, None, clock.now()));
        assert!(err.to_string().contains("does not belong"), "{err}");
    }

    #[test]
    fn an_id_the_agent_does_not_offer_names_what_it_offers() {
        let (clock, ca, key) = setup();
        let m = message(&ca, &key, &ca);
        let err = refusal(load_as(
            &m,
            Some("spiffe://mesh.local/service/other"),
            clock.now(),
        ));
        assert!(matches!(err, MeshError::WorkloadApi { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "Workload API unix://{SOCKET}: this process is not entitled to \
                 spiffe://mesh.local/service/other; the agent offers: {ID} (check the \
                 registration entries' selectors, or drop --spiffe-id)"
            )
        );
        let empty = X509svidResponse::default();
        assert!(refusal(load_as(&empty, None, clock.now()))
            .to_string()
            .contains("the agent sent no SVID"));
    }

    #[test]
    fn a_crl_that_does_not_verify_against_the_bundle_is_refused() {
        let (clock, ca, key) = setup();
        let mut m = message(&ca, &key, &ca);
        m.crl = vec![b"not a CRL".to_vec()];
        assert!(load_as(&m, None, clock.now()).is_err());
    }
}
