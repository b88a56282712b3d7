//! Who signs an OCSP answer (RFC 6960 §4.2.2.2): the CA itself, or a delegated responder, a
//! certificate the CA issued for that one purpose. The delegated certificate carries the
//! id-kp-OCSPSigning extended key usage (only that one), the id-pkix-ocsp-nocheck extension
//! (§4.2.2.2.1: clients do not ask about the responder's own status), CA:FALSE and KeyUsage
//! digitalSignature, and a short life; its key is generated here and never leaves this value
//! (the CA process holds it in memory only). The answer names the responder by the SHA-1 of its
//! key and includes its certificate, so a client that trusts the root can check it.

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::curve::Curve;
use crate::error::Result;
use crate::root::CaMaterial;
use crate::{keys, serial};

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), whose value is an ASN.1 NULL.
const OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];
/// DER of NULL.
const NULL: &[u8] = &[0x05, 0x00];
/// How far back a responder certificate's notBefore goes, for clients whose clock is behind.
const BACKDATE: Duration = Duration::minutes(5);

/// A delegated OCSP responder: its certificate (issued by the CA) and its key.
pub struct DelegatedResponder {
    cert_der: Vec<u8>,
    key: KeyPair,
    curve: Curve,
    serial_hex: String,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for DelegatedResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegatedResponder")
            .field("serial", &self.serial_hex)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl DelegatedResponder {
    /// Generates a key on the CA's curve and has `ca` issue its responder certificate, valid
    /// from five minutes before `now` for `lifetime` after it (never past the CA's own
    /// NotAfter).
    pub fn issue(ca: &CaMaterial, now: OffsetDateTime, lifetime: Duration) -> Result<Self> {
        let profile = ResponderProfile {
            lifetime,
            ocsp_signing: true,
        };
        profile.issue(ca, now)
    }

    /// The responder certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Its serial, lowercase hex.
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// Its NotAfter: no answer it signs may be valid longer.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    pub(super) fn key(&self) -> &KeyPair {
        &self.key
    }

    pub(super) fn curve(&self) -> Curve {
        self.curve
    }

    pub(super) fn public_key_bits(&self) -> &[u8] {
        self.key.der_bytes()
    }
}

/// The responder certificate's profile; tests vary it to make certificates clients must refuse.
pub(crate) struct ResponderProfile {
    pub(crate) lifetime: Duration,
    /// False only in tests: a certificate without id-kp-OCSPSigning.
    pub(crate) ocsp_signing: bool,
}

impl ResponderProfile {
    pub(crate) fn issue(&self, ca: &CaMaterial, now: OffsetDateTime) -> Result<DelegatedResponder> {
        let curve = ca.curve();
        let key = keys::generate(curve)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "mtls-mesh");
        dn.push(DnType::CommonName, "mtls-mesh OCSP responder");
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if self.ocsp_signing {
            vec![ExtendedKeyUsagePurpose::OcspSigning]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            OCSP_NOCHECK,
            NULL.to_vec(),
        )];
        params.use_authority_key_identifier_extension = true;
        let serial = serial::random_serial()?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let not_after = (now + self.lifetime).min(ca.not_after());
        params.not_before = now - BACKDATE;
        params.not_after = not_after;
        let cert = params
            .signed_by(&key, ca.issuer())
            .map_err(|e| crate::ca_key::sign_error("issuing the OCSP responder certificate", e))?;
        Ok(DelegatedResponder {
            cert_der: cert.der().to_vec(),
            key,
            curve,
            serial_hex: hex::encode(serial),
            not_after,
        })
    }
}

/// Who signs an answer.
#[derive(Clone, Copy, Debug)]
pub enum Signer<'a> {
    /// The CA key itself; the answer carries no certificate.
    Ca(&'a CaMaterial),
    /// A delegated responder the CA issued; the answer carries its certificate.
    Delegated(&'a DelegatedResponder),
}

impl Signer<'_> {
    /// The latest nextUpdate this signer may put in an answer: a delegated responder's answers
    /// must not outlive its certificate (a client checking a cached answer would find the
    /// responder expired).
    pub fn latest_next_update(&self, wanted: OffsetDateTime) -> OffsetDateTime {
        match self {
            Signer::Ca(_) => wanted,
            Signer::Delegated(r) => wanted.min(r.not_after),
        }
    }
}
