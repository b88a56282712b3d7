//! Which roots of a trust bundle from the CA a service accepts.
//!
//! The bundle (`GET /api/v1/bundle`, docs/ca-api.md) holds self-signed roots and
//! cross-certificates. Only self-signed roots enter the trust store. A root the service does not
//! trust yet is accepted only when a cross-certificate in the same bundle, issued and signed by
//! a root the service trusts now, vouches for it (`pki::vouch`): adding a root then takes the
//! private key of a trusted root, not just a position between the service and the CA. Roots may
//! be dropped as long as one current root stays; a bundle that drops them all is refused (it
//! would hand the whole trust to whoever served it). A refused bundle changes nothing.

use std::collections::HashSet;

use rustls_pki_types::CertificateDer;
use thiserror::Error;
use time::OffsetDateTime;

use crate::trust::Roots;

/// Why a bundle was refused. `code()` is the `reason` label of
/// `mesh_trust_bundle_refused_total`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub(crate) enum BundleRefusal {
    #[error("the trust bundle cannot be read: {0}")]
    Unreadable(String),
    #[error(
        "the trust bundle drops every root trusted now ({current}); at least one must stay \
         (a bundle that replaces all roots would hand the trust to whoever served it)"
    )]
    DropsAllRoots { current: String },
    #[error(
        "the trust bundle adds the root {root} (sha256 {fingerprint}), but no root trusted now \
         vouches for it: {why}"
    )]
    Unvouched {
        root: String,
        fingerprint: String,
        why: String,
    },
}

impl BundleRefusal {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            BundleRefusal::Unreadable(_) => "unreadable",
            BundleRefusal::DropsAllRoots { .. } => "drops_all_roots",
            BundleRefusal::Unvouched { .. } => "unvouched_root",
        }
    }

    /// The root the refusal is about, for the log (empty when it is about the whole bundle).
    pub(crate) fn root(&self) -> &str {
        match self {
            BundleRefusal::Unvouched { root, .. } => root,
            _ => "",
        }
    }
}

fn subject(der: &[u8]) -> String {
    pki::CertInfo::from_der(der)
        .map(|i| i.subject)
        .unwrap_or_else(|_| "(unparsable certificate)".into())
}

/// The roots to trust after `bundle_pem`, given the `current` ones, at `now`: the bundle's
/// self-signed roots, each either trusted already or vouched for by a current root. Everything
/// else in the bundle (cross-certificates, other certificates) only vouches.
pub(crate) fn accept_bundle(
    current: &Roots,
    bundle_pem: &[u8],
    now: OffsetDateTime,
) -> Result<Roots, BundleRefusal> {
    let certs = pki::pem::parse_certificates(bundle_pem)
        .map_err(|e| BundleRefusal::Unreadable(e.to_string()))?;
    let (roots, others): (Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>) = certs
        .into_iter()
        .partition(|c| pki::vouch::is_self_signed(c));
    let trusted: HashSet<String> = current.fingerprints().into_iter().collect();
    if !roots.iter().any(|r| trusted.contains(&pki::sha256_hex(r))) {
        return Err(BundleRefusal::DropsAllRoots {
            current: current.subjects().join("; "),
        });
    }
    let current_ders: Vec<&[u8]> = current.certs().iter().map(|c| c.as_ref()).collect();
    for root in &roots {
        let fingerprint = pki::sha256_hex(root);
        if trusted.contains(&fingerprint) {
            continue;
        }
        let mut why = "the bundle holds no cross-certificate for it".to_string();
        let mut vouched = false;
        for cross in others
            .iter()
            .filter(|c| pki::vouch::same_subject_and_key(c, root))
        {
            match pki::vouch::check_cross_certificate(cross, current_ders.iter().copied(), now) {
                Ok(()) => {
                    vouched = true;
                    break;
                }
                Err(e) => why = e.to_string(),
            }
        }
        if !vouched {
            return Err(BundleRefusal::Unvouched {
                root: subject(root),
                fingerprint,
                why,
            });
        }
    }
    Roots::new(roots).map_err(|e| BundleRefusal::Unreadable(e.detail()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pki::CaMaterial;
    use time::Duration;

    fn pem(certs: &[&[u8]]) -> Vec<u8> {
        certs
            .iter()
            .map(|c| pki::pem::encode("CERTIFICATE", c))
            .collect::<String>()
            .into_bytes()
    }

    fn roots(cas: &[&CaMaterial]) -> Roots {
        Roots::new(cas.iter().map(|c| c.cert_der().clone()).collect()).unwrap()
    }

    struct Pki {
        old: CaMaterial,
        new: CaMaterial,
        evil: CaMaterial,
        now: OffsetDateTime,
    }

    fn pki() -> Pki {
        let now = OffsetDateTime::now_utc();
        Pki {
            old: CaMaterial::generate_root("Mesh Root", now).unwrap(),
            new: CaMaterial::generate_root("Next Mesh Root", now).unwrap(),
            evil: CaMaterial::generate_root("Evil Root", now).unwrap(),
            now,
        }
    }

    #[test]
    fn the_same_roots_are_accepted() {
        let p = pki();
        let got = accept_bundle(&roots(&[&p.old]), &pem(&[p.old.cert_der()]), p.now).unwrap();
        assert_eq!(got.fingerprints(), roots(&[&p.old]).fingerprints());
    }

    #[test]
    fn a_new_root_vouched_for_by_a_trusted_root_is_accepted_without_the_cross_certificate() {
        let p = pki();
        let cross = p.old.cross_sign(p.new.cert_der(), p.now).unwrap();
        let bundle = pem(&[p.old.cert_der(), p.new.cert_der(), &cross]);
        let got = accept_bundle(&roots(&[&p.old]), &bundle, p.now).unwrap();
        assert_eq!(got.fingerprints(), roots(&[&p.old, &p.new]).fingerprints());
        assert_eq!(got.certs().len(), 2, "cross-certificates only vouch");
    }

    #[test]
    fn an_unvouched_root_is_refused() {
        let p = pki();
        let current = roots(&[&p.old]);
        // No cross-certificate at all.
        let err = accept_bundle(
            &current,
            &pem(&[p.old.cert_der(), p.evil.cert_der()]),
            p.now,
        )
        .unwrap_err();
        assert_eq!(err.code(), "unvouched_root");
        assert!(err.to_string().contains("CN=Evil Root"), "{err}");
        assert!(err.to_string().contains("no cross-certificate"), "{err}");
        // A cross-certificate the intruder made with another key of its own, and one from a
        // stranger bearing the trusted root's name.
        let helper = CaMaterial::generate_root("Evil Helper", p.now).unwrap();
        let vouched_by_evil = helper.cross_sign(p.evil.cert_der(), p.now).unwrap();
        let err = accept_bundle(
            &current,
            &pem(&[p.old.cert_der(), p.evil.cert_der(), &vouched_by_evil]),
            p.now,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a trusted root"), "{err}");
        let impostor = CaMaterial::generate_root("Mesh Root", p.now).unwrap();
        let forged = impostor.cross_sign(p.evil.cert_der(), p.now).unwrap();
        let err = accept_bundle(
            &current,
            &pem(&[p.old.cert_der(), p.evil.cert_der(), &forged]),
            p.now,
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        // A cross-certificate that has expired vouches no more.
        let cross = p.old.cross_sign(p.new.cert_der(), p.now).unwrap();
        let later = p.now + Duration::days(4000);
        let err = accept_bundle(
            &current,
            &pem(&[p.old.cert_der(), p.new.cert_der(), &cross]),
            later,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not valid now"), "{err}");
    }

    #[test]
    fn a_bundle_dropping_every_current_root_is_refused_even_with_a_cross_certificate() {
        let p = pki();
        let cross = p.old.cross_sign(p.new.cert_der(), p.now).unwrap();
        let err =
            accept_bundle(&roots(&[&p.old]), &pem(&[p.new.cert_der(), &cross]), p.now).unwrap_err();
        assert_eq!(err.code(), "drops_all_roots");
        assert!(err.to_string().contains("CN=Mesh Root"), "{err}");
        // Nothing self-signed at all.
        let err = accept_bundle(&roots(&[&p.old]), &pem(&[&cross]), p.now).unwrap_err();
        assert_eq!(err.code(), "drops_all_roots");
        let err = accept_bundle(&roots(&[&p.old]), b"junk", p.now).unwrap_err();
        assert_eq!(err.code(), "unreadable");
    }

    /// docs/troubleshooting.md quotes these refusals; keep page and messages in step.
    #[test]
    fn the_troubleshooting_page_quotes_the_refusals() {
        let page = include_str!("../../../docs/troubleshooting.md");
        let p = pki();
        let unvouched = accept_bundle(
            &roots(&[&p.old]),
            &pem(&[p.old.cert_der(), p.evil.cert_der()]),
            p.now,
        )
        .unwrap_err()
        .to_string();
        let dropped = accept_bundle(&roots(&[&p.old]), &pem(&[p.evil.cert_der()]), p.now)
            .unwrap_err()
            .to_string();
        for (phrase, message) in [
            (
                "but no root trusted now vouches for it: the bundle holds no cross-certificate for it",
                &unvouched,
            ),
            ("the trust bundle adds the root", &unvouched),
            ("the trust bundle drops every root trusted now", &dropped),
            (
                "at least one must stay (a bundle that replaces all roots would hand the trust to \
                 whoever served it)",
                &dropped,
            ),
        ] {
            assert!(message.contains(phrase), "{message}");
            assert!(page.contains(phrase), "docs/troubleshooting.md lacks {phrase:?}");
        }
        assert!(page.contains("trust bundle refused, keeping the current roots: "));
    }

    #[test]
    fn a_root_may_be_removed_while_another_current_root_stays() {
        let p = pki();
        let got =
            accept_bundle(&roots(&[&p.old, &p.new]), &pem(&[p.new.cert_der()]), p.now).unwrap();
        assert_eq!(got.fingerprints(), roots(&[&p.new]).fingerprints());
    }
}
