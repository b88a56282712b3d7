//! The CA's own certificate and key: create a root, or load one (ours or OpenSSL's) and prove
//! that the key belongs to the certificate.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::curve::Curve;
use crate::error::{PkiError, Result};
use crate::{keys, pem, serial};

/// Ten years, the root lifetime of DESIGN §1.
pub const ROOT_LIFETIME: Duration = Duration::days(3650);

/// A CA certificate with its signing key. The key never leaves this value.
pub struct CaMaterial {
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    curve: Curve,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaMaterial")
            .field("fingerprint", &self.fingerprint())
            .field("curve", &self.curve)
            .finish_non_exhaustive()
    }
}

impl CaMaterial {
    /// Creates a self-signed root: P-384, ecdsa-with-SHA384, CA:TRUE pathlen 0 (critical),
    /// KeyUsage keyCertSign + cRLSign (critical), SKI, ten years.
    pub fn generate_root(common_name: &str, now: OffsetDateTime) -> Result<CaMaterial> {
        let key = keys::generate(Curve::P384)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "mtls-mesh");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(SerialNumber::from_slice(&serial::random_serial()?));
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + ROOT_LIFETIME;
        let cert = params
            .self_signed(&key)
            .map_err(|e| PkiError::Sign(format!("self-signing the root: {e}")))?;
        Self::from_parts(cert.der().clone(), key)
    }

    /// Loads a CA from PEM certificate and PEM key (any of the key forms `keys` reads).
    pub fn load(cert_pem: &[u8], key_pem: &[u8]) -> Result<CaMaterial> {
        let cert = pem::parse_certificates(cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Certificate("no certificate".into()))?;
        let (key, _) = keys::parse_private_key_pem(key_pem)?;
        Self::from_parts(cert, key)
    }

    fn from_parts(cert_der: CertificateDer<'static>, key: KeyPair) -> Result<CaMaterial> {
        let (_, cert) = X509Certificate::from_der(&cert_der)
            .map_err(|e| PkiError::Certificate(format!("cannot parse the CA certificate: {e}")))?;
        let cert_spki = cert.tbs_certificate.subject_pki.raw;
        let key_spki = key.subject_public_key_info();
        if cert_spki != key_spki.as_slice() {
            return Err(PkiError::KeyMismatch {
                cert_key: crate::sha256_hex(cert_spki)[..16].to_string() + "…",
                key_key: crate::sha256_hex(&key_spki)[..16].to_string() + "…",
            });
        }
        let mut is_ca = false;
        let mut can_sign_certs = true;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
                ParsedExtension::KeyUsage(ku) => can_sign_certs = ku.key_cert_sign(),
                _ => {}
            }
        }
        if !is_ca {
            return Err(PkiError::Certificate(
                "the CA certificate does not have basicConstraints CA:TRUE".into(),
            ));
        }
        if !can_sign_certs {
            return Err(PkiError::Certificate(
                "the CA certificate's KeyUsage lacks keyCertSign".into(),
            ));
        }
        let curve = keys::curve_of(&key)?;
        let not_after = cert.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| {
            PkiError::Certificate(format!("cannot use the CA certificate as issuer: {e}"))
        })?;
        Ok(CaMaterial {
            cert_der,
            issuer,
            curve,
            not_after,
        })
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    pub fn cert_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.cert_der)
    }

    /// PKCS#8 PEM of the signing key, for the CA's own data directory only.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Hex SHA-256 of the certificate DER: what `--ca-fingerprint` pins.
    pub fn fingerprint(&self) -> String {
        crate::sha256_hex(&self.cert_der)
    }

    pub fn curve(&self) -> Curve {
        self.curve
    }

    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_root_reloads_and_mismatched_key_is_refused() {
        let now = OffsetDateTime::now_utc();
        let root = CaMaterial::generate_root("Test Root", now).unwrap();
        assert_eq!(root.curve(), Curve::P384);
        let again =
            CaMaterial::load(root.cert_pem().as_bytes(), root.key_pem().as_bytes()).unwrap();
        assert_eq!(again.fingerprint(), root.fingerprint());

        let other = keys::generate(Curve::P384).unwrap();
        let err = CaMaterial::load(root.cert_pem().as_bytes(), other.serialize_pem().as_bytes())
            .unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
    }
}
