//! Checks on a peer's end-entity certificate that webpki does not make, done on the one parse of
//! the leaf the verifiers already need (revocation lookup, SPIFFE ID).
//!
//! KeyUsage: the SPIFFE X509-SVID spec requires `digitalSignature` on a leaf and forbids
//! `keyCertSign` / `cRLSign`; a TLS 1.3 ECDSA certificate signs the handshake, so without
//! `digitalSignature` it must not be used at all. A certificate without a KeyUsage extension is
//! unrestricted (RFC 5280 §4.2.1.3) and passes.

use rustls::{CertificateError, Error};
use thiserror::Error;
use x509_parser::extensions::{GeneralName, KeyUsage};
use x509_parser::prelude::X509Certificate;

/// A peer leaf refused by the key usage policy. Travels in `CertificateError::Other`; the
/// server logs it as "client certificate key usage ...", the client as "server certificate
/// key usage ...".
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyUsageError {
    #[error(
        "key usage lacks digitalSignature (it has [{present}]); a TLS 1.3 ECDSA end-entity \
         certificate must be able to sign, and SPIFFE X509-SVIDs require digitalSignature"
    )]
    NoDigitalSignature { present: String },
    #[error(
        "key usage allows {usage} (it has [{present}]); keyCertSign and cRLSign belong on CA \
         certificates, never on an end-entity certificate"
    )]
    CaUsage { usage: String, present: String },
}

impl KeyUsageError {
    pub fn into_rustls(self) -> Error {
        Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(self),
        )))
    }
}

/// RFC 5280 names of the KeyUsage bits, in bit order.
const KEY_USAGE_NAMES: [&str; 9] = [
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
];

fn usage_names(ku: &KeyUsage) -> String {
    KEY_USAGE_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| (ku.flags >> bit) & 1 == 1)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a leaf whose KeyUsage extension lacks digitalSignature or has keyCertSign/cRLSign.
/// Allocates only when refusing.
pub fn check_key_usage(cert: &X509Certificate<'_>) -> Result<(), KeyUsageError> {
    // A duplicated extension is a parse error; webpki has refused such a certificate already.
    let Ok(Some(ext)) = cert.key_usage() else {
        return Ok(());
    };
    let ku = ext.value;
    if !ku.digital_signature() {
        return Err(KeyUsageError::NoDigitalSignature {
            present: usage_names(ku),
        });
    }
    if ku.key_cert_sign() || ku.crl_sign() {
        let usage = match (ku.key_cert_sign(), ku.crl_sign()) {
            (true, true) => "keyCertSign and cRLSign",
            (true, false) => "keyCertSign",
            _ => "cRLSign",
        };
        return Err(KeyUsageError::CaUsage {
            usage: usage.into(),
            present: usage_names(ku),
        });
    }
    Ok(())
}

/// The SPIFFE ID of a parsed certificate: its single `spiffe://` URI SAN (same rule as
/// `pki::CertInfo::spiffe_id`), without a second parse.
pub fn spiffe_id_of(cert: &X509Certificate<'_>) -> Option<pki::SpiffeId> {
    let san = cert.subject_alternative_name().ok()??;
    let mut ids = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) if u.starts_with("spiffe://") => Some(*u),
        _ => None,
    });
    let first = ids.next()?;
    if ids.next().is_some() {
        return None;
    }
    pki::SpiffeId::parse(first).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, KeyUsagePurpose, SanType};
    use x509_parser::prelude::FromDer;

    fn leaf(usages: Vec<KeyUsagePurpose>) -> Vec<u8> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = CertificateParams::default();
        params.key_usages = usages;
        params.subject_alt_names = vec![SanType::URI(
            "spiffe://mesh.local/service/x".try_into().unwrap(),
        )];
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn check(usages: Vec<KeyUsagePurpose>) -> Result<(), KeyUsageError> {
        let der = leaf(usages);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        check_key_usage(&cert)
    }

    #[test]
    fn key_usage_policy() {
        use KeyUsagePurpose::*;
        assert_eq!(check(vec![]), Ok(()), "no KeyUsage extension: unrestricted");
        assert_eq!(check(vec![DigitalSignature]), Ok(()));
        assert_eq!(check(vec![DigitalSignature, KeyEncipherment]), Ok(()));
        let err = check(vec![KeyEncipherment]).unwrap_err();
        assert!(matches!(err, KeyUsageError::NoDigitalSignature { .. }));
        assert!(
            err.to_string()
                .starts_with("key usage lacks digitalSignature"),
            "{err}"
        );
        let err = check(vec![DigitalSignature, KeyCertSign, CrlSign]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("key usage allows keyCertSign and cRLSign"),
            "{err}"
        );
        let err = check(vec![DigitalSignature, CrlSign]).unwrap_err();
        assert!(
            err.to_string().starts_with("key usage allows cRLSign"),
            "{err}"
        );
    }

    #[test]
    fn spiffe_id_from_the_parsed_certificate() {
        let der = leaf(vec![]);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            spiffe_id_of(&cert).map(|i| i.to_string()).as_deref(),
            Some("spiffe://mesh.local/service/x")
        );
    }
}
