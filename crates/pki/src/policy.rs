//! The issuance policy: every leaf is built from the CA's own rules, never from the request.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber, SubjectPublicKeyInfo,
};
use time::{Duration, OffsetDateTime};

use crate::error::{PkiError, Result};
use crate::ocsp::ResponderUrl;
use crate::root::CaMaterial;
use crate::spiffe::SpiffeId;
use crate::{pem, serial};

/// Tunables of the leaf profile.
#[derive(Clone, Debug)]
pub struct IssuancePolicy {
    /// How far NotBefore is moved into the past to absorb clock skew between machines.
    /// Never more than a tenth of the certificate's lifetime.
    pub backdate: Duration,
    /// The OCSP responder named in every leaf's authorityInfoAccess (`mtls-ca --ocsp-url`);
    /// None: no such extension (services check revocation with the CRL).
    pub ocsp_url: Option<ResponderUrl>,
}

impl Default for IssuancePolicy {
    fn default() -> Self {
        IssuancePolicy {
            backdate: Duration::seconds(30),
            ocsp_url: None,
        }
    }
}

/// What the authority decided to certify, after authorisation.
#[derive(Clone, Debug)]
pub struct LeafRequest<'a> {
    /// The identity to certify (the only URI SAN).
    pub spiffe_id: &'a SpiffeId,
    /// The DNS SANs the operator authorised.
    pub dns: &'a [String],
    /// The IP SANs the operator authorised.
    pub ips: &'a [IpAddr],
    /// DER SubjectPublicKeyInfo from a verified CSR.
    pub spki_der: &'a [u8],
    /// The lifetime (NotAfter is clamped to the issuer's).
    pub ttl: Duration,
    /// The issuance time.
    pub now: OffsetDateTime,
}

/// A freshly signed leaf.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM.
    pub pem: String,
    /// Serial, lowercase hex.
    pub serial_hex: String,
    /// NotBefore (backdated for clock skew).
    pub not_before: OffsetDateTime,
    /// NotAfter.
    pub not_after: OffsetDateTime,
}

impl IssuancePolicy {
    /// Signs the leaf of docs/design.md §2: CA:FALSE, KeyUsage digitalSignature (critical), EKU
    /// serverAuth + clientAuth, exactly one URI SAN (the SPIFFE ID) plus the authorised DNS/IP
    /// SANs, random 20-octet serial, AKI and SKI, NotAfter clamped to the issuer's.
    pub fn issue(&self, req: &LeafRequest<'_>, ca: &CaMaterial) -> Result<IssuedCert> {
        self.issue_with_serial(req, ca, serial::random_serial()?)
    }

    /// [`IssuancePolicy::issue`] with a serial drawn by the caller (from
    /// [`serial::random_serial`]), who can then draw another when the serial is taken.
    pub fn issue_with_serial(
        &self,
        req: &LeafRequest<'_>,
        ca: &CaMaterial,
        serial_bytes: [u8; 20],
    ) -> Result<IssuedCert> {
        if req.ttl <= Duration::ZERO {
            return Err(PkiError::Policy(
                "the certificate lifetime must be positive".into(),
            ));
        }
        let backdate = self.backdate.min(req.ttl / 10).max(Duration::ZERO);
        // Certificates carry whole seconds; truncating here keeps the reported times exact.
        let now = req.now.replace_nanosecond(0).unwrap_or(req.now);
        let not_before = now - backdate;
        let not_after = (now + req.ttl).min(ca.not_after());
        if not_after <= now {
            return Err(PkiError::Policy(format!(
                "the CA certificate expired at {}; no certificate can be issued",
                ca.not_after()
            )));
        }

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "mtls-mesh");
        // CN is informational only (identity is the URI SAN); X.520 caps it at 64 characters.
        let id = req.spiffe_id.to_string();
        if id.len() <= 64 {
            dn.push(DnType::CommonName, id.as_str());
        }
        params.distinguished_name = dn;
        let mut sans =
            vec![SanType::URI(id.as_str().try_into().map_err(|e| {
                PkiError::Policy(format!("SPIFFE ID as URI: {e}"))
            })?)];
        for d in req.dns {
            sans.push(SanType::DnsName(
                d.as_str()
                    .try_into()
                    .map_err(|e| PkiError::Policy(format!("DNS name {d:?}: {e}")))?,
            ));
        }
        sans.extend(req.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        if let Some(url) = &self.ocsp_url {
            params.custom_extensions = vec![url.aia_extension().map_err(PkiError::Policy)?];
        }
        params.serial_number = Some(SerialNumber::from_slice(&serial_bytes));
        params.not_before = not_before;
        params.not_after = not_after;

        let public_key = SubjectPublicKeyInfo::from_der(req.spki_der)
            .map_err(|e| PkiError::Policy(format!("unusable public key: {e}")))?;
        let cert = params
            .signed_by(&public_key, ca.issuer())
            .map_err(|e| crate::ca_key::sign_error("signing the certificate", e))?;
        let der = cert.der().to_vec();
        Ok(IssuedCert {
            pem: pem::encode("CERTIFICATE", &der),
            der,
            serial_hex: hex::encode(serial_bytes),
            not_before,
            not_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{keys, CertInfo, Curve};
    use rcgen::PublicKeyData;

    #[test]
    fn leaf_has_the_policy_profile() {
        let now = OffsetDateTime::now_utc();
        let ca = CaMaterial::generate_root("Root", now).unwrap();
        let key = keys::generate(Curve::P256).unwrap();
        let id = SpiffeId::parse("spiffe://mesh.local/service/api").unwrap();
        let dns = vec!["localhost".to_string()];
        let ips = vec!["127.0.0.1".parse().unwrap()];
        let spki = key.subject_public_key_info();
        let req = LeafRequest {
            spiffe_id: &id,
            dns: &dns,
            ips: &ips,
            spki_der: &spki,
            ttl: Duration::hours(1),
            now,
        };
        let issued = IssuancePolicy::default().issue(&req, &ca).unwrap();
        let info = CertInfo::from_der(&issued.der).unwrap();
        assert_eq!(info.uris, vec![id.to_string()]);
        assert_eq!(info.dns, dns);
        assert_eq!(info.ips, ips);
        assert!(!info.is_ca && info.server_auth && info.client_auth);
        assert_eq!(info.serial_hex, issued.serial_hex);
        assert_eq!(info.serial_hex.len(), 40);
        assert_eq!(
            (now.replace_nanosecond(0).unwrap() - info.not_before).whole_seconds(),
            30
        );
        assert_eq!(info.not_after, issued.not_after);

        let second = IssuancePolicy::default().issue(&req, &ca).unwrap();
        assert_ne!(
            second.serial_hex, issued.serial_hex,
            "serials must never repeat"
        );
    }

    #[test]
    fn short_lifetimes_backdate_at_most_a_tenth_and_clamp_to_issuer() {
        let now = OffsetDateTime::now_utc();
        let ca = CaMaterial::generate_root("Root", now).unwrap();
        let key = keys::generate(Curve::P384).unwrap();
        let id = SpiffeId::parse("spiffe://mesh.local/a").unwrap();
        let spki = key.subject_public_key_info();
        let mut req = LeafRequest {
            spiffe_id: &id,
            dns: &[],
            ips: &[],
            spki_der: &spki,
            ttl: Duration::seconds(10),
            now,
        };
        let issued = IssuancePolicy::default().issue(&req, &ca).unwrap();
        assert_eq!(
            issued.not_before,
            now.replace_nanosecond(0).unwrap() - Duration::seconds(1)
        );
        req.ttl = Duration::days(365 * 20);
        let long = IssuancePolicy::default().issue(&req, &ca).unwrap();
        assert_eq!(long.not_after, ca.not_after());
    }
}
