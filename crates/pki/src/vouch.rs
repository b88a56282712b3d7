//! Whether a root already trusted vouches for another root: through a cross-certificate that
//! names the other root's subject and public key (byte for byte), is a CA certificate allowed to
//! sign certificates, is valid now, and is issued and signed by the trusted root. Services accept
//! a new root from the CA's trust bundle only with such a certificate, so whoever can change the
//! bundle in transit (or a compromised API key of the CA) cannot add a root of their own: that
//! takes the trusted root's private key. `CaMaterial::cross_sign` makes these certificates.

use thiserror::Error;
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::verify::signature_verifies;

/// Why a cross-certificate does not vouch for a root.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CrossCertError {
    /// The cross-certificate does not parse.
    #[error("the cross-certificate cannot be parsed")]
    Unparsable,
    /// It lacks basicConstraints CA:TRUE.
    #[error("the cross-certificate is not a CA certificate (basicConstraints CA:TRUE is missing)")]
    NotCa,
    /// Its keyUsage does not allow keyCertSign.
    #[error("the cross-certificate's KeyUsage does not allow keyCertSign")]
    NoKeyCertSign,
    /// Its issuer is not a root already trusted.
    #[error("the cross-certificate is issued by {issuer}, which is not a trusted root")]
    UntrustedIssuer {
        /// The issuer named in the cross-certificate.
        issuer: String,
    },
    /// Its signature does not verify with the trusted root's key.
    #[error("the cross-certificate's signature does not verify with the trusted root {issuer}")]
    BadSignature {
        /// The issuer named in the cross-certificate.
        issuer: String,
    },
    /// It is outside its validity period.
    #[error(
        "the cross-certificate is not valid now ({now}): valid from {not_before} to {not_after}"
    )]
    NotValidNow {
        /// The time checked at.
        now: OffsetDateTime,
        /// Its NotBefore.
        not_before: OffsetDateTime,
        /// Its NotAfter.
        not_after: OffsetDateTime,
    },
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().map(|(_, c)| c)
}

/// True when `cert_der` is self-signed: its issuer Name equals its subject Name and its
/// signature verifies with its own public key.
pub fn is_self_signed(cert_der: &[u8]) -> bool {
    let Some(cert) = parse(cert_der) else {
        return false;
    };
    cert.tbs_certificate.issuer.as_raw() == cert.tbs_certificate.subject.as_raw()
        && signature_verifies(cert_der, cert.tbs_certificate.subject_pki.raw) == Some(true)
}

/// True when both certificates carry the same subject Name and SubjectPublicKeyInfo, byte for
/// byte (what a cross-certificate shares with the root it vouches for).
pub fn same_subject_and_key(a_der: &[u8], b_der: &[u8]) -> bool {
    match (parse(a_der), parse(b_der)) {
        (Some(a), Some(b)) => {
            a.tbs_certificate.subject.as_raw() == b.tbs_certificate.subject.as_raw()
                && a.tbs_certificate.subject_pki.raw == b.tbs_certificate.subject_pki.raw
        }
        _ => false,
    }
}

/// Checks that `cross_der` is a valid vouch from one of `trusted_roots` at `now`: CA:TRUE,
/// keyCertSign, within its validity period, issuer Name equal to a trusted root's subject and
/// signature verifying with that root's key (`verify::signature_verifies`). Whether it names
/// the root being vouched for is [`same_subject_and_key`]'s question.
pub fn check_cross_certificate<'a>(
    cross_der: &[u8],
    trusted_roots: impl IntoIterator<Item = &'a [u8]>,
    now: OffsetDateTime,
) -> Result<(), CrossCertError> {
    let cross = parse(cross_der).ok_or(CrossCertError::Unparsable)?;
    let mut is_ca = false;
    let mut key_cert_sign = false;
    for ext in cross.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
            ParsedExtension::KeyUsage(ku) => key_cert_sign = ku.key_cert_sign(),
            _ => {}
        }
    }
    if !is_ca {
        return Err(CrossCertError::NotCa);
    }
    if !key_cert_sign {
        return Err(CrossCertError::NoKeyCertSign);
    }
    let validity = cross.validity();
    let (not_before, not_after) = (
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    );
    if now < not_before || now > not_after {
        return Err(CrossCertError::NotValidNow {
            now,
            not_before,
            not_after,
        });
    }
    let issuer = cross.tbs_certificate.issuer.as_raw();
    let mut named_issuer = false;
    for trusted_der in trusted_roots {
        let Some(trusted) = parse(trusted_der) else {
            continue;
        };
        if trusted.tbs_certificate.subject.as_raw() != issuer {
            continue;
        }
        named_issuer = true;
        if signature_verifies(cross_der, trusted.tbs_certificate.subject_pki.raw) == Some(true) {
            return Ok(());
        }
    }
    let issuer = cross.tbs_certificate.issuer.to_string();
    Err(if named_issuer {
        CrossCertError::BadSignature { issuer }
    } else {
        CrossCertError::UntrustedIssuer { issuer }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::CaMaterial;
    use time::Duration;

    #[test]
    fn a_cross_certificate_from_a_trusted_root_vouches_and_others_do_not() {
        let now = OffsetDateTime::now_utc();
        let old = CaMaterial::generate_root("Old Root", now).unwrap();
        let new = CaMaterial::generate_root("New Root", now).unwrap();
        let stranger = CaMaterial::generate_root("Old Root", now).unwrap();
        assert!(is_self_signed(old.cert_der()));

        let cross = old.cross_sign(new.cert_der(), now).unwrap();
        assert!(!is_self_signed(&cross));
        assert!(same_subject_and_key(&cross, new.cert_der()));
        assert!(!same_subject_and_key(&cross, old.cert_der()));
        assert_eq!(
            check_cross_certificate(&cross, [old.cert_der().as_ref()], now),
            Ok(())
        );
        // The same name as the issuer, another key: the signature gives it away.
        assert!(matches!(
            check_cross_certificate(&cross, [stranger.cert_der().as_ref()], now),
            Err(CrossCertError::BadSignature { .. })
        ));
        assert!(matches!(
            check_cross_certificate(&cross, [new.cert_der().as_ref()], now),
            Err(CrossCertError::UntrustedIssuer { .. })
        ));
        assert!(matches!(
            check_cross_certificate(
                &cross,
                [old.cert_der().as_ref()],
                now + Duration::days(4000)
            ),
            Err(CrossCertError::NotValidNow { .. })
        ));
        let mut tampered = cross.to_vec();
        let n = tampered.len();
        tampered[n - 5] ^= 1;
        assert!(check_cross_certificate(&tampered, [old.cert_der().as_ref()], now).is_err());
        assert_eq!(
            check_cross_certificate(b"junk", [old.cert_der().as_ref()], now),
            Err(CrossCertError::Unparsable)
        );
    }
}
