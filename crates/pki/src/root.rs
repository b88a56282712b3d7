//! The CA's own certificate and key: create a root, or load one (ours or OpenSSL's) and prove
//! that the key belongs to the certificate.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber, SubjectPublicKeyInfo,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

use crate::ca_key::CaKey;
use crate::curve::Curve;
use crate::error::{PkiError, Result};
use crate::{keys, pem, serial};

/// Ten years, the lifetime of the root `mtls-ca` creates (docs/cli.md).
pub const ROOT_LIFETIME: Duration = Duration::days(3650);

/// A CA certificate with its signing key (the key never leaves this value), and the
/// certificates above it: nothing for a root that signs leaves itself (single tier), the root
/// for an online intermediate (two tiers, `crate::intermediate`). A later hierarchy (a
/// cross-certificate during root rotation) adds its certificates to `above`.
pub struct CaMaterial {
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, CaKey>,
    curve: Curve,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    /// The trust anchor's NotAfter (`not_after` for a root).
    root_not_after: OffsetDateTime,
    /// The issuer chain above `cert_der`, the trust anchor last; empty for a root.
    above: Vec<CertificateDer<'static>>,
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
        Self::generate_self_signed(common_name, 0, now)
    }

    /// Creates the root of a two-tier hierarchy: as [`CaMaterial::generate_root`] but
    /// pathLenConstraint 1, so it can sign intermediates (each pathLen 0) and they the leaves.
    pub fn generate_offline_root(common_name: &str, now: OffsetDateTime) -> Result<CaMaterial> {
        Self::generate_self_signed(common_name, 1, now)
    }

    /// Creates a single-tier root as [`CaMaterial::generate_root`] whose key is `key`, e.g. a
    /// key generated in a PKCS#11 token: the key signs its own certificate where it is.
    pub fn generate_root_with(
        common_name: &str,
        key: CaKey,
        now: OffsetDateTime,
    ) -> Result<CaMaterial> {
        Self::self_signed_with(common_name, 0, key, now)
    }

    fn generate_self_signed(
        common_name: &str,
        path_len: u8,
        now: OffsetDateTime,
    ) -> Result<CaMaterial> {
        let key = CaKey::File(std::sync::Arc::new(keys::generate(Curve::P384)?));
        Self::self_signed_with(common_name, path_len, key, now)
    }

    fn self_signed_with(
        common_name: &str,
        path_len: u8,
        key: CaKey,
        now: OffsetDateTime,
    ) -> Result<CaMaterial> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "mtls-mesh");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(SerialNumber::from_slice(&serial::random_serial()?));
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + ROOT_LIFETIME;
        let cert = params
            .self_signed(&key)
            .map_err(|e| crate::ca_key::sign_error("self-signing the root", e))?;
        Self::from_key(cert.der().clone(), key)
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

    /// Loads an online intermediate (PEM certificate and key) issued by `root_pem`: the key
    /// must match the certificate, the root must be self-signed and its key must have signed
    /// the intermediate. The root's key is not needed (it stays offline).
    pub fn load_intermediate(
        cert_pem: &[u8],
        key_pem: &[u8],
        root_pem: &[u8],
    ) -> Result<CaMaterial> {
        let root = pem::parse_certificates(root_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Certificate("no root certificate".into()))?;
        Self::load(cert_pem, key_pem)?.under_root(root)
    }

    /// An online intermediate from its certificate and signing key (in this process or in a
    /// device), issued by the root `root_der`: checked as [`CaMaterial::load_intermediate`].
    pub fn intermediate_from_key(
        cert_der: CertificateDer<'static>,
        key: CaKey,
        root_der: CertificateDer<'static>,
    ) -> Result<CaMaterial> {
        Self::from_key(cert_der, key)?.under_root(root_der)
    }

    /// This CA as an intermediate of `root`, whose key must have signed it.
    pub(crate) fn under_root(mut self, root: CertificateDer<'static>) -> Result<CaMaterial> {
        crate::intermediate::check_issued_by(&self.cert_der, &root)?;
        self.root_not_after = crate::CertInfo::from_der(&root)?.not_after;
        self.above = vec![root];
        Ok(self)
    }

    /// A CA from its certificate and the key that belongs to it (checked), e.g. an offline
    /// root's key opened from `crate::sealed_key`.
    pub fn from_parts(cert_der: CertificateDer<'static>, key: KeyPair) -> Result<CaMaterial> {
        Self::from_key(cert_der, CaKey::File(std::sync::Arc::new(key)))
    }

    /// A CA from its certificate and its signing key, in this process or in a device
    /// (checked: the key must be the certificate's).
    pub fn from_key(cert_der: CertificateDer<'static>, key: CaKey) -> Result<CaMaterial> {
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
        let curve = key.curve()?;
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| {
            PkiError::Certificate(format!("cannot use the CA certificate as issuer: {e}"))
        })?;
        Ok(CaMaterial {
            cert_der,
            issuer,
            curve,
            not_before,
            not_after,
            root_not_after: not_after,
            above: Vec::new(),
        })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.cert_der)
    }

    /// PKCS#8 PEM of the signing key, for the CA's own data directory only. An error for a
    /// key in a device: it cannot be read out, by design.
    pub fn key_pem(&self) -> Result<String> {
        match self.issuer.key().key_pair() {
            Some(key) => Ok(key.serialize_pem()),
            None => Err(PkiError::Key(format!(
                "the CA key is in {} and cannot be exported",
                self.key_location()
            ))),
        }
    }

    /// Where the signing key is: "this process", or the device's name
    /// (`pkcs11:token=…;object=…`).
    pub fn key_location(&self) -> String {
        self.issuer
            .key()
            .device_name()
            .unwrap_or_else(|| "this process".into())
    }

    /// The signing key.
    pub fn key(&self) -> &CaKey {
        self.issuer.key()
    }

    /// Hex SHA-256 of this CA's certificate DER (for a single-tier root, what
    /// `--ca-fingerprint` pins; see [`CaMaterial::root_fingerprint`]).
    pub fn fingerprint(&self) -> String {
        crate::sha256_hex(&self.cert_der)
    }

    /// The CA certificate's subjectKeyIdentifier, when it has one. What it signs names this
    /// value as its authorityKeyIdentifier: OpenSSL-based verifiers (HAProxy, nginx, stunnel,
    /// `openssl verify -crl_check`) look a CRL's issuer up by it, and roots made by OpenSSL use a
    /// SHA-1 identifier, not the truncated SHA-256 rcgen computes by default.
    pub fn subject_key_id(&self) -> Option<Vec<u8>> {
        subject_key_id(&self.cert_der)
    }

    /// The curve of the CA's key.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The CA certificate's NotAfter (no leaf outlives it).
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The trust anchor's NotAfter (the root's, also for an intermediate).
    pub fn root_not_after(&self) -> OffsetDateTime {
        self.root_not_after
    }

    /// The CA certificate's NotBefore.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// True when this CA is an intermediate (its certificate is not the trust anchor).
    pub fn is_intermediate(&self) -> bool {
        !self.above.is_empty()
    }

    /// The trust anchor this CA chains to: its own certificate for a root, else the root above
    /// the intermediate. This is what the trust bundle publishes and `--ca-fingerprint` pins.
    pub fn root_der(&self) -> &CertificateDer<'static> {
        self.above.last().unwrap_or(&self.cert_der)
    }

    /// [`CaMaterial::root_der`] as PEM.
    pub fn root_pem(&self) -> String {
        pem::encode("CERTIFICATE", self.root_der())
    }

    /// Hex SHA-256 of the trust anchor's DER: what services pin with `--ca-fingerprint` and
    /// what the data directory records as its root.
    pub fn root_fingerprint(&self) -> String {
        crate::sha256_hex(self.root_der())
    }

    /// The certificates a holder of a leaf issued here sends after its leaf: this CA's
    /// certificate and those above it, without the trust anchor (peers have it). Empty for a
    /// single-tier root.
    pub fn intermediates(&self) -> Vec<CertificateDer<'static>> {
        let mut out: Vec<CertificateDer<'static>> = Vec::new();
        if self.is_intermediate() {
            out.push(self.cert_der.clone());
            out.extend(self.above[..self.above.len() - 1].iter().cloned());
        }
        out
    }

    /// The issuer chain of a leaf signed here, PEM, up to and including the root: what the
    /// sign and renew API answers in `chain` (docs/ca-api.md).
    pub fn chain_pem(&self) -> Vec<String> {
        std::iter::once(&self.cert_der)
            .chain(self.above.iter())
            .map(|c| pem::encode("CERTIFICATE", c))
            .collect()
    }

    /// The rcgen issuer that signs certificates and CRLs with this key.
    pub fn issuer(&self) -> &Issuer<'static, CaKey> {
        &self.issuer
    }

    /// A cross-certificate for another self-signed root: the same subject and
    /// SubjectPublicKeyInfo as `root_der`, byte for byte (and the same subject key identifier),
    /// CA:TRUE with the root's path length, KeyUsage keyCertSign + cRLSign, issued and signed by
    /// this CA. Services that trust this CA accept the other root into their trust store only
    /// when such a certificate vouches for it (`crate::vouch`). Valid from five minutes ago
    /// until the earlier of the two roots' NotAfter.
    pub fn cross_sign(
        &self,
        root_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<CertificateDer<'static>> {
        let (_, root) = X509Certificate::from_der(root_der).map_err(|e| {
            PkiError::Certificate(format!("cannot parse the root to cross-sign: {e}"))
        })?;
        let subject = root.tbs_certificate.subject();
        let what = format!("cross-signing the root {subject}");
        let not_after = root.validity().not_after.to_datetime().min(self.not_after);
        if not_after <= now {
            return Err(PkiError::Certificate(format!(
                "{what}: it or this CA has expired (NotAfter {not_after})"
            )));
        }
        let spki_raw = root.tbs_certificate.subject_pki.raw;
        let public_key = SubjectPublicKeyInfo::from_der(spki_raw)
            .map_err(|e| PkiError::Certificate(format!("{what}: unsupported public key: {e}")))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen_name(subject).map_err(|reason| {
            PkiError::Certificate(format!(
                "{what}: {reason}; make a cross-certificate with OpenSSL and add it to the \
                 --bundle-extra file instead"
            ))
        })?;
        let path_len = root
            .basic_constraints()
            .ok()
            .flatten()
            .and_then(|bc| bc.value.path_len_constraint);
        params.is_ca = IsCa::Ca(match path_len {
            Some(n) => BasicConstraints::Constrained(u8::try_from(n).unwrap_or(u8::MAX)),
            None => BasicConstraints::Unconstrained,
        });
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(SerialNumber::from_slice(&serial::random_serial()?));
        params.not_before = now - Duration::minutes(5);
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        if let Some(ski) = key_id_of(&root) {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        }
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|e| crate::ca_key::sign_error(&what, e))?;
        // rcgen re-encodes the name and the key; prove that the result names exactly the same
        // subject and key, or a service would not accept it as vouching for the root.
        let (_, cross) = X509Certificate::from_der(cert.der())
            .map_err(|e| PkiError::Certificate(format!("{what}: cannot parse the result: {e}")))?;
        if cross.tbs_certificate.subject.as_raw() != subject.as_raw() {
            return Err(PkiError::Certificate(format!(
                "{what}: the subject could not be reproduced byte for byte; make a \
                 cross-certificate with OpenSSL and add it to the --bundle-extra file instead"
            )));
        }
        if cross.tbs_certificate.subject_pki.raw != spki_raw {
            return Err(PkiError::Certificate(format!(
                "{what}: the public key could not be reproduced byte for byte"
            )));
        }
        Ok(cert.der().clone())
    }
}

/// The rcgen form of an X.509 name, keeping each value's string type so that rcgen encodes the
/// same bytes. rcgen holds one value per attribute type and one attribute per RDN; anything
/// else cannot be reproduced and is refused.
fn rcgen_name(name: &X509Name<'_>) -> std::result::Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err("the subject has a multi-valued RDN".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("the subject has an attribute type OID that does not fit in u64")?
            .collect();
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err(format!(
                "the subject repeats the attribute {}",
                attr.attr_type()
            ));
        }
        let data = attr.attr_value().data;
        let text = || std::str::from_utf8(data).map_err(|_| "the subject is not valid text");
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_string()),
            Tag::PrintableString => {
                DnValue::PrintableString(text()?.try_into().map_err(|e| format!("{e}"))?)
            }
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(|e| format!("{e}"))?),
            other => {
                return Err(format!(
                    "the subject uses the string type {other} (only UTF8String, \
                     PrintableString and IA5String are reproduced)"
                ))
            }
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// The subjectKeyIdentifier of a parsed certificate.
fn key_id_of(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

/// The subjectKeyIdentifier of a DER certificate (None when absent or unparseable).
fn subject_key_id(der: &[u8]) -> Option<Vec<u8>> {
    X509Certificate::from_der(der)
        .ok()
        .and_then(|(_, cert)| key_id_of(&cert))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_root_reloads_and_mismatched_key_is_refused() {
        let now = OffsetDateTime::now_utc();
        let root = CaMaterial::generate_root("Test Root", now).unwrap();
        assert_eq!(root.curve(), Curve::P384);
        let again = CaMaterial::load(
            root.cert_pem().as_bytes(),
            root.key_pem().unwrap().as_bytes(),
        )
        .unwrap();
        assert_eq!(again.fingerprint(), root.fingerprint());
        assert_eq!(again.key_location(), "this process");

        let other = keys::generate(Curve::P384).unwrap();
        let err = CaMaterial::load(root.cert_pem().as_bytes(), other.serialize_pem().as_bytes())
            .unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
    }
}
