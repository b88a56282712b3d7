//! Signature algorithm names and a single-link signature check, used to say which link of a
//! chain has a bad signature.

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::curve::Curve;

const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_ED25519: &str = "1.3.101.112";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA_KEY: &str = "1.2.840.113549.1.1.1";

pub(super) const ACCEPTED_SIGNATURE_OIDS: &[&str] = &[
    OID_ECDSA_SHA256,
    OID_ECDSA_SHA384,
    OID_ECDSA_SHA512,
    OID_RSA_SHA256,
    OID_RSA_SHA384,
    OID_RSA_SHA512,
    OID_RSA_PSS,
    OID_ED25519,
];

/// OpenSSL's short name of a signature algorithm OID, or the dotted OID.
pub fn signature_algorithm_name(oid: &str) -> String {
    match oid {
        OID_ECDSA_SHA256 => "ecdsa-with-SHA256",
        OID_ECDSA_SHA384 => "ecdsa-with-SHA384",
        OID_ECDSA_SHA512 => "ecdsa-with-SHA512",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        OID_RSA_SHA256 => "sha256WithRSAEncryption",
        OID_RSA_SHA384 => "sha384WithRSAEncryption",
        OID_RSA_SHA512 => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        OID_RSA_PSS => "rsassaPss",
        OID_ED25519 => "ED25519",
        "1.3.101.113" => "ED448",
        other => return other.to_string(),
    }
    .to_string()
}

/// Checks one signature: `child_der` signed by the key in `issuer_spki_der`. None when the
/// algorithm pair is not one this function knows (then nothing can be said).
pub fn signature_verifies(child_der: &[u8], issuer_spki_der: &[u8]) -> Option<bool> {
    let (_, child) = X509Certificate::from_der(child_der).ok()?;
    verify_signed(
        child.tbs_certificate.as_ref(),
        child.signature_value.data.as_ref(),
        &child.signature_algorithm.algorithm.to_id_string(),
        issuer_spki_der,
    )
}

/// Checks `signature` over `message` with the signature algorithm `sig_oid` (dotted) and the
/// public key `spki_der` (a DER SubjectPublicKeyInfo): ECDSA on P-256/384/521 with SHA-2,
/// RSA PKCS#1 v1.5 with SHA-2 (2048 to 8192 bits) and Ed25519. None for other algorithms.
pub fn verify_signed(
    message: &[u8],
    signature: &[u8],
    sig_oid: &str,
    spki_der: &[u8],
) -> Option<bool> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der).ok()?;
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let alg: &'static dyn VerificationAlgorithm = match key_oid.as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .and_then(|o| Curve::from_oid(&o.to_id_string()))?;
            match (curve, sig_oid) {
                (Curve::P256, OID_ECDSA_SHA256) => &sig::ECDSA_P256_SHA256_ASN1,
                (Curve::P256, OID_ECDSA_SHA384) => &sig::ECDSA_P256_SHA384_ASN1,
                (Curve::P256, OID_ECDSA_SHA512) => &sig::ECDSA_P256_SHA512_ASN1,
                (Curve::P384, OID_ECDSA_SHA256) => &sig::ECDSA_P384_SHA256_ASN1,
                (Curve::P384, OID_ECDSA_SHA384) => &sig::ECDSA_P384_SHA384_ASN1,
                (Curve::P384, OID_ECDSA_SHA512) => &sig::ECDSA_P384_SHA512_ASN1,
                (Curve::P521, OID_ECDSA_SHA256) => &sig::ECDSA_P521_SHA256_ASN1,
                (Curve::P521, OID_ECDSA_SHA384) => &sig::ECDSA_P521_SHA384_ASN1,
                (Curve::P521, OID_ECDSA_SHA512) => &sig::ECDSA_P521_SHA512_ASN1,
                _ => return None,
            }
        }
        OID_RSA_KEY => match sig_oid {
            OID_RSA_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            OID_RSA_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            OID_RSA_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            _ => return None,
        },
        OID_ED25519 if sig_oid == OID_ED25519 => &sig::ED25519,
        _ => return None,
    };
    let key = spki.subject_public_key.data.as_ref();
    Some(
        UnparsedPublicKey::new(alg, key)
            .verify(message, signature)
            .is_ok(),
    )
}
