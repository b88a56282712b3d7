//! The online intermediate of a two-tier hierarchy (`mtls-ca init --offline-root`): the
//! profile the offline root signs, the CSR the CA host sends for a renewal, and the checks that
//! a certificate really is such an intermediate under a given root.
//!
//! Profile: P-256/384/521 key made on the CA host, CA:TRUE pathLenConstraint 0 (critical),
//! KeyUsage keyCertSign + cRLSign (critical), subject `O=mtls-mesh, CN=<trust domain>
//! Intermediate CA`, the SPIFFE trust-domain ID `spiffe://<td>` as its one URI SAN, SKI and
//! AKI (the root's key), its own lifetime capped at the root's NotAfter.
//!
//! No URI name constraint: rustls-webpki (the services' verifier) fails closed on URI name
//! constraints: with one present, every certificate carrying a URI SAN (every SVID) is
//! refused. OpenSSL and Go enforce them (docs/security.md, "Hierarchy"). The services enforce
//! the trust domain themselves on every peer instead.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose, SanType,
    SerialNumber, SubjectPublicKeyInfo,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca_key::CaKey;
use crate::error::{PkiError, Result};
use crate::root::CaMaterial;
use crate::spiffe::TrustDomain;
use crate::{csr, keys, serial, vouch, Curve};
use rcgen::PublicKeyData;

/// Default lifetime of an intermediate (`--intermediate-lifetime`): a year, against the root's
/// ten; renewed (same key, new certificate) with `mtls-ca intermediate sign`.
pub const DEFAULT_LIFETIME: Duration = Duration::days(365);

/// The shortest intermediate lifetime accepted: it must outlive the leaves it signs by far.
pub const MIN_LIFETIME: Duration = Duration::days(1);

/// The X.520 limit of a CommonName.
const CN_MAX: usize = 64;

/// The intermediate's subject for trust domain `td`.
fn subject(td: &TrustDomain) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mtls-mesh");
    let cn = format!("{td} Intermediate CA");
    dn.push(
        DnType::CommonName,
        if cn.len() <= CN_MAX {
            cn
        } else {
            "mtls-mesh Intermediate CA".to_string()
        },
    );
    dn
}

/// Signs an intermediate for the public key `spki_der` in trust domain `td`, valid from five
/// minutes ago for `lifetime` (capped at the root's NotAfter). The root must be able to sign
/// CAs (pathLenConstraint at least 1, or none).
pub fn issue(
    root: &CaMaterial,
    spki_der: &[u8],
    td: &TrustDomain,
    lifetime: Duration,
    now: OffsetDateTime,
) -> Result<CertificateDer<'static>> {
    if lifetime < MIN_LIFETIME {
        return Err(PkiError::Policy(format!(
            "an intermediate lifetime of {} is shorter than the minimum of one day",
            crate::timefmt::human(lifetime)
        )));
    }
    check_root_can_sign_intermediates(root.cert_der())?;
    let not_after = (now + lifetime).min(root.not_after());
    if not_after <= now {
        return Err(PkiError::Policy(format!(
            "the root expired at {}",
            crate::timefmt::rfc3339(root.not_after())
        )));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(td);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names =
        vec![SanType::URI(td.id_string().as_str().try_into().map_err(
            |e| PkiError::Policy(format!("trust domain as URI: {e}")),
        )?)];
    params.serial_number = Some(SerialNumber::from_slice(&serial::random_serial()?));
    params.not_before = now - Duration::minutes(5);
    params.not_after = not_after;
    params.use_authority_key_identifier_extension = true;
    let public_key = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| PkiError::Policy(format!("unusable public key: {e}")))?;
    let cert = params
        .signed_by(&public_key, root.issuer())
        .map_err(|e| crate::ca_key::sign_error("signing the intermediate", e))?;
    Ok(cert.der().clone())
}

/// Refuses a root that may not sign an intermediate: not CA:TRUE, or pathLenConstraint 0
/// (`issue`, and `mtls-ca root rotate --from` for the new root of a two-tier CA).
pub fn check_root_can_sign_intermediates(root_der: &[u8]) -> Result<()> {
    let (_, root_cert) = X509Certificate::from_der(root_der)
        .map_err(|e| PkiError::Certificate(format!("cannot parse the root: {e}")))?;
    match root_cert.basic_constraints().ok().flatten() {
        Some(bc) if bc.value.ca && bc.value.path_len_constraint != Some(0) => Ok(()),
        Some(bc) if bc.value.ca => Err(PkiError::Policy(
            "the root has pathLenConstraint 0: it may sign leaves only, not an intermediate \
             (a root made by `mtls-ca init --offline-root` has pathLenConstraint 1)"
                .into(),
        )),
        _ => Err(PkiError::Policy(
            "the root is not a CA certificate (basicConstraints CA:TRUE is missing)".into(),
        )),
    }
}

/// A new intermediate under `root` for trust domain `td`: a fresh P-384 key made in this
/// process, certified by [`issue`] (`mtls-ca init --offline-root`).
pub fn generate(
    root: &CaMaterial,
    td: &TrustDomain,
    lifetime: Duration,
    now: OffsetDateTime,
) -> Result<CaMaterial> {
    let key = keys::generate(Curve::P384)?;
    generate_with(
        root,
        CaKey::File(std::sync::Arc::new(key)),
        td,
        lifetime,
        now,
    )
}

/// As [`generate`], for a key made elsewhere: a P-384 key in a PKCS#11 token
/// (`mtls-ca init --offline-root DIR --key pkcs11:…`).
pub fn generate_with(
    root: &CaMaterial,
    key: CaKey,
    td: &TrustDomain,
    lifetime: Duration,
    now: OffsetDateTime,
) -> Result<CaMaterial> {
    let cert = issue(root, &key.subject_public_key_info(), td, lifetime, now)?;
    CaMaterial::from_key(cert, key)?.under_root(root.cert_der().clone())
}

/// A certificate signing request for the intermediate key `key` of trust domain `td`: what the
/// CA host hands to the root's machine for a renewal (`mtls-ca intermediate csr`). Only the
/// public key and the trust-domain URI are used from it; the root decides the rest.
pub fn csr(key: &impl rcgen::SigningKey, td: &TrustDomain) -> Result<String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(td);
    params.subject_alt_names =
        vec![SanType::URI(td.id_string().as_str().try_into().map_err(
            |e| PkiError::Policy(format!("trust domain as URI: {e}")),
        )?)];
    let request = params
        .serialize_request(key)
        .map_err(|e| crate::ca_key::sign_error("making the CSR", e))?;
    request
        .pem()
        .map_err(|e| PkiError::Sign(format!("encoding the CSR: {e}")))
}

/// A CSR from `mtls-ca intermediate csr`, verified: the requester's public key and the trust
/// domain it names (its one URI SAN, `spiffe://<td>` without a path).
pub fn read_csr(pem: &[u8]) -> Result<(Vec<u8>, TrustDomain)> {
    let csr = csr::parse_and_verify(pem)?;
    let [uri] = csr.requested_uris.as_slice() else {
        return Err(PkiError::Csr(format!(
            "an intermediate CSR names exactly one URI, spiffe://<trust domain>; this one \
             names {:?}",
            csr.requested_uris
        )));
    };
    let td = uri
        .strip_prefix("spiffe://")
        .filter(|rest| !rest.contains('/'))
        .ok_or_else(|| {
            PkiError::Csr(format!(
                "the CSR's URI {uri} is not a trust-domain ID (spiffe://<trust domain>, no path)"
            ))
        })
        .and_then(TrustDomain::parse)?;
    if !csr.requested_dns.is_empty() || !csr.requested_ips.is_empty() {
        return Err(PkiError::Csr(
            "an intermediate CSR names no DNS or IP addresses".into(),
        ));
    }
    Ok((csr.spki_der, td))
}

/// What the holder of a certificate the CA answered sends in TLS: the leaf (`certificate`,
/// PEM), then every certificate of the CA's `chain` (PEM blocks, issuer first) that is not
/// self-signed. Roots stay out: peers have them in their bundle, and sending one would only
/// cost bytes. For a single-tier CA that is the leaf alone.
pub fn presented_chain(
    certificate: &str,
    chain: &[String],
) -> Result<Vec<CertificateDer<'static>>> {
    let mut out = crate::pem::parse_certificates(certificate.as_bytes())?;
    out.truncate(1);
    for block in chain {
        for cert in crate::pem::parse_certificates(block.as_bytes())? {
            if !vouch::is_self_signed(&cert) {
                out.push(cert);
            }
        }
    }
    Ok(out)
}

/// Checks that `root_der` is a self-signed CA certificate and that its key signed `cert_der`.
pub fn check_issued_by(cert_der: &[u8], root_der: &[u8]) -> Result<()> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| PkiError::Certificate(format!("cannot parse the intermediate: {e}")))?;
    let (_, root) = X509Certificate::from_der(root_der)
        .map_err(|e| PkiError::Certificate(format!("cannot parse the root: {e}")))?;
    if !vouch::is_self_signed(root_der) {
        return Err(PkiError::Certificate(format!(
            "the root certificate {} is not self-signed",
            root.subject()
        )));
    }
    if cert.issuer().as_raw() != root.subject().as_raw() {
        return Err(PkiError::Certificate(format!(
            "the intermediate was issued by {}, not by the root {}",
            cert.issuer(),
            root.subject()
        )));
    }
    if crate::verify::signature_verifies(cert_der, root.tbs_certificate.subject_pki.raw)
        != Some(true)
    {
        return Err(PkiError::Certificate(format!(
            "the intermediate {}'s signature does not verify with the key of the root {} (a \
             root of the same name but another key?)",
            cert.subject(),
            root.subject()
        )));
    }
    Ok(())
}

/// Checks that `cert_der` is an intermediate of this project's profile for trust domain `td`
/// under `root_der`, valid at `now`: issued by the root, CA:TRUE with pathLenConstraint 0, the
/// trust-domain URI. `mtls-ca intermediate install` runs it before replacing anything.
pub fn check_profile(
    cert_der: &[u8],
    root_der: &[u8],
    td: &TrustDomain,
    now: OffsetDateTime,
) -> Result<()> {
    check_issued_by(cert_der, root_der)?;
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| PkiError::Certificate(format!("cannot parse the intermediate: {e}")))?;
    let validity = cert.validity();
    let (from, to) = (
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    );
    if now < from || now >= to {
        return Err(PkiError::Certificate(format!(
            "the intermediate is valid from {} to {}, not now ({})",
            crate::timefmt::rfc3339(from),
            crate::timefmt::rfc3339(to),
            crate::timefmt::rfc3339(now)
        )));
    }
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca && bc.value.path_len_constraint == Some(0) => {}
        _ => {
            return Err(PkiError::Certificate(
                "the intermediate must be CA:TRUE with pathLenConstraint 0".into(),
            ))
        }
    }
    let info = crate::CertInfo::from_der(cert_der)?;
    let want = td.id_string();
    if info.uris != [want.clone()] {
        return Err(PkiError::Certificate(format!(
            "the intermediate names {:?}, not the trust domain {want}",
            info.uris
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::policy::{IssuancePolicy, LeafRequest};
    use crate::verify::{verify_chain, Purpose, VerifyOptions};
    use crate::SpiffeId;

    fn two_tier(now: OffsetDateTime) -> (CaMaterial, CaMaterial) {
        let root = CaMaterial::generate_offline_root("Offline Root", now).unwrap();
        let td = TrustDomain::parse("mesh.local").unwrap();
        let inter = generate(&root, &td, DEFAULT_LIFETIME, now).unwrap();
        (root, inter)
    }

    /// A client/server leaf for `id` signed by `ca`, with a fresh key.
    fn leaf(ca: &CaMaterial, id: &str, now: OffsetDateTime) -> crate::policy::IssuedCert {
        let key = keys::generate(Curve::P256).unwrap();
        let id = SpiffeId::parse(id).unwrap();
        let spki = key.subject_public_key_info();
        let req = LeafRequest {
            spiffe_id: &id,
            dns: &[],
            ips: &[],
            spki_der: &spki,
            ttl: Duration::hours(1),
            now,
        };
        IssuancePolicy::default().issue(&req, ca).unwrap()
    }

    #[test]
    fn a_leaf_of_the_intermediate_verifies_to_the_root_with_the_services_verifier() {
        let now = OffsetDateTime::now_utc();
        let (root, inter) = two_tier(now);
        assert!(inter.is_intermediate() && !root.is_intermediate());
        assert_eq!(inter.root_fingerprint(), root.fingerprint());
        assert_eq!(inter.intermediates(), vec![inter.cert_der().clone()]);
        assert_eq!(inter.chain_pem(), vec![inter.cert_pem(), root.cert_pem()]);
        let single = CaMaterial::generate_root("Single", now).unwrap();
        assert!(single.intermediates().is_empty());
        assert_eq!(single.root_fingerprint(), single.fingerprint());
        assert_eq!(
            inter.not_after() - inter.not_before(),
            DEFAULT_LIFETIME + Duration::minutes(5)
        );
        let td = TrustDomain::parse("mesh.local").unwrap();
        check_profile(inter.cert_der(), root.cert_der(), &td, now).unwrap();
        let other = TrustDomain::parse("other.example").unwrap();
        assert!(check_profile(inter.cert_der(), root.cert_der(), &other, now).is_err());

        let leaf = leaf(&inter, "spiffe://mesh.local/service/api", now);
        let opts = VerifyOptions::new(now, Purpose::Client);
        let no_crls: &[&[u8]] = &[];
        let roots = [root.cert_der().clone()];
        let sent = presented_chain(&leaf.pem, &inter.chain_pem()).unwrap();
        assert_eq!(sent.len(), 2, "leaf and intermediate, not the root");
        assert_eq!(sent[1], *inter.cert_der());
        let path = verify_chain(&sent[0], &sent[1..], &roots, no_crls, &opts).unwrap();
        assert_eq!(path.root().unwrap().subject, "O=mtls-mesh, CN=Offline Root");
        let empty: &[CertificateDer<'_>] = &[];
        let err = verify_chain(&leaf.der, empty, &roots, no_crls, &opts).unwrap_err();
        assert!(!err.to_string().is_empty());
    }

    #[test]
    fn an_intermediate_of_another_root_or_key_is_refused() {
        let now = OffsetDateTime::now_utc();
        let (_, inter) = two_tier(now);
        let impostor = CaMaterial::generate_offline_root("Offline Root", now).unwrap();
        let err = check_issued_by(inter.cert_der(), impostor.cert_der()).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        // A pathLen 0 root (single tier) cannot sign an intermediate.
        let single = CaMaterial::generate_root("Single", now).unwrap();
        let key = keys::generate(Curve::P384).unwrap();
        let td = TrustDomain::parse("mesh.local").unwrap();
        let err = issue(
            &single,
            &key.subject_public_key_info(),
            &td,
            DEFAULT_LIFETIME,
            now,
        )
        .unwrap_err();
        assert!(err.to_string().contains("pathLenConstraint 0"), "{err}");
    }

    /// Why the intermediate carries no URI name constraint: with `permitted URI:mesh.local`
    /// (critical), OpenSSL enforces it (a leaf inside passes, one outside fails) while
    /// rustls-webpki, the services' verifier, refuses every leaf with a URI SAN.
    #[test]
    fn a_uri_name_constraint_is_enforced_by_openssl_and_refused_by_webpki() {
        let now = OffsetDateTime::now_utc();
        let root = CaMaterial::generate_offline_root("Root", now).unwrap();
        let key = keys::generate(Curve::P384).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(&TrustDomain::parse("mesh.local").unwrap());
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(1);
        params.use_authority_key_identifier_extension = true;
        // NameConstraints { permittedSubtrees [0] { GeneralSubtree { [6] "mesh.local" } } }
        let mut der = vec![0x30, 0x10, 0xa0, 0x0e, 0x30, 0x0c, 0x86, 0x0a];
        der.extend_from_slice(b"mesh.local");
        let mut ext = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 30], der);
        ext.set_criticality(true);
        params.custom_extensions = vec![ext];
        let cert = params.signed_by(&key, root.issuer()).unwrap();
        let inter = CaMaterial::load_intermediate(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            root.cert_pem().as_bytes(),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("root.pem"), root.cert_pem()).unwrap();
        std::fs::write(tmp.path().join("inter.pem"), inter.cert_pem()).unwrap();
        for (id, inside) in [
            ("spiffe://mesh.local/service/api", true),
            ("spiffe://other.example/service/api", false),
        ] {
            let leaf = leaf(&inter, id, now);
            std::fs::write(tmp.path().join("leaf.pem"), &leaf.pem).unwrap();
            let out = std::process::Command::new("openssl")
                .args([
                    "verify",
                    "-CAfile",
                    "root.pem",
                    "-untrusted",
                    "inter.pem",
                    "leaf.pem",
                ])
                .current_dir(tmp.path())
                .output()
                .expect("openssl must be installed (Debian package openssl)");
            assert_eq!(
                out.status.success(),
                inside,
                "openssl verify for {id}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let opts = VerifyOptions::new(now, Purpose::Client);
            let no_crls: &[&[u8]] = &[];
            let err = verify_chain(
                &leaf.der,
                &inter.intermediates(),
                &[root.cert_der().clone()],
                no_crls,
                &opts,
            )
            .unwrap_err();
            assert!(
                err.to_string().to_lowercase().contains("name constraint"),
                "webpki for {id}: {err}"
            );
        }
    }

    #[test]
    fn the_renewal_csr_round_trips_and_names_the_trust_domain() {
        let key = keys::generate(Curve::P384).unwrap();
        let td = TrustDomain::parse("mesh.local").unwrap();
        let pem = csr(&key, &td).unwrap();
        let (spki, got) = read_csr(pem.as_bytes()).unwrap();
        assert_eq!(spki, key.subject_public_key_info());
        assert_eq!(got, td);
    }
}
