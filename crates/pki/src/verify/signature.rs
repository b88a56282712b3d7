//! Single-link signature checks, used to say which link of a chain has a bad signature. The
//! algorithms, their names and the keys they fit come from the one table in `crate::sigalg`.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::sigalg::{self, AlgorithmError, AlgorithmPolicy};

pub use crate::sigalg::signature_algorithm_name;

/// Checks one signature: `child_der` signed by the key in `issuer_spki_der`. None when the
/// algorithm pair is not one the table can check (then nothing can be said).
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
/// public key `spki_der` (a DER SubjectPublicKeyInfo), with every algorithm of the Web PKI
/// policy (ECDSA, RSA PKCS#1 v1.5, Ed25519). None for algorithms the table cannot check.
pub fn verify_signed(
    message: &[u8],
    signature: &[u8],
    sig_oid: &str,
    spki_der: &[u8],
) -> Option<bool> {
    match sigalg::verify_signature_spki_der(
        message,
        signature,
        sig_oid,
        spki_der,
        AlgorithmPolicy::WebPki,
    ) {
        Ok(()) => Some(true),
        Err(AlgorithmError::BadSignature) => Some(false),
        Err(_) => None,
    }
}
