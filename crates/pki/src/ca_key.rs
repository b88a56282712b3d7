//! The key a CA signs with: a key pair in this process (from the data directory), or a key
//! held by a device that signs digests for us and never hands the key out (a PKCS#11 token,
//! `mtls_ca::pkcs11`). Both sign ecdsa-with-SHA384 X.509 signatures for rcgen.

use std::cell::RefCell;
use std::sync::Arc;

use aws_lc_rs::digest;
use der07::asn1::{AnyRef, UintRef};
use der07::{Encode, Tag};
use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};

use crate::curve::Curve;
use crate::error::{PkiError, Result};
use crate::keys;

/// Length of an uncompressed P-384 point: 0x04, X (48 bytes), Y (48 bytes).
const P384_POINT_LEN: usize = 1 + 2 * 48;

/// A P-384 private key outside this process that signs a SHA-384 digest.
pub trait DigestSigner: Send + Sync {
    /// The public key: the uncompressed P-384 point (0x04 || X || Y).
    fn public_point(&self) -> &[u8];
    /// Signs a SHA-384 digest (48 bytes), answering the raw signature r || s (96 bytes), as
    /// PKCS#11's CKM_ECDSA does. The error is the operator-facing reason.
    fn sign_digest(&self, digest: &[u8]) -> std::result::Result<Vec<u8>, String>;
    /// Where the key is, for messages and logs (e.g. `pkcs11:token=ca;object=root`).
    fn describe(&self) -> String;
    /// Why the last signature failed, while no signature has succeeded since (`/healthz`
    /// reports it); None for a device that keeps no such state.
    fn failure(&self) -> Option<String> {
        None
    }
    /// Checks, without signing, that the device still holds the key and answers (`/healthz`
    /// between signatures); Err is the operator-facing reason. Default: nothing to check.
    fn probe(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

thread_local! {
    /// Why the device refused the signature rcgen asked for last on this thread: rcgen's
    /// `RemoteKeyError` carries no reason, so [`sign_error`] picks it up here (rcgen signs
    /// synchronously, on the caller's thread).
    static DEVICE_FAILURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The error of a failed rcgen signature (`context`: what was being signed), naming the
/// device's reason when the CA key's device refused, so the operator sees the token problem
/// (CLI output, the API's error log line) and not rcgen's reasonless "remote key error".
pub fn sign_error(context: &str, e: rcgen::Error) -> PkiError {
    PkiError::Sign(format!("{context}: {}", sign_reason(e)))
}

/// The reason of a failed rcgen signature: the device's, when the CA key's device refused.
pub fn sign_reason(e: rcgen::Error) -> String {
    let device = DEVICE_FAILURE.with(|f| f.borrow_mut().take());
    match (e, device) {
        (rcgen::Error::RemoteKeyError, Some(reason)) => reason,
        (other, _) => other.to_string(),
    }
}

/// The CA's signing key.
#[derive(Clone)]
pub enum CaKey {
    /// A key pair held in this process (`root.key` or `intermediate.key`).
    File(Arc<KeyPair>),
    /// A P-384 key in a device; only digests go to it, only signatures come back.
    Device(Arc<dyn DigestSigner>),
}

impl std::fmt::Debug for CaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaKey::File(_) => f.write_str("CaKey::File"),
            CaKey::Device(d) => write!(f, "CaKey::Device({})", d.describe()),
        }
    }
}

impl CaKey {
    /// A device key, after checking that its public key is an uncompressed P-384 point.
    pub fn device(signer: Arc<dyn DigestSigner>) -> Result<CaKey> {
        let point = signer.public_point();
        if point.len() != P384_POINT_LEN || point[0] != 0x04 {
            return Err(PkiError::UnsupportedKey(format!(
                "{} does not hold an uncompressed P-384 public key ({} bytes); the CA key \
                 must be ECDSA P-384",
                signer.describe(),
                point.len()
            )));
        }
        Ok(CaKey::Device(signer))
    }

    /// The curve of the key (always P-384 for a device key).
    pub fn curve(&self) -> Result<Curve> {
        match self {
            CaKey::File(k) => keys::curve_of(k),
            CaKey::Device(_) => Ok(Curve::P384),
        }
    }

    /// The in-process key pair, None for a device key (whose private half cannot be read).
    pub fn key_pair(&self) -> Option<&KeyPair> {
        match self {
            CaKey::File(k) => Some(k),
            CaKey::Device(_) => None,
        }
    }

    /// Why the device's last signature failed, while none has succeeded since; None for a key
    /// in this process or a device that signs.
    pub fn device_failure(&self) -> Option<String> {
        match self {
            CaKey::File(_) => None,
            CaKey::Device(d) => d.failure(),
        }
    }

    /// Where a device key is, None for a key in this process.
    pub fn device_name(&self) -> Option<String> {
        match self {
            CaKey::File(_) => None,
            CaKey::Device(d) => Some(d.describe()),
        }
    }

    /// Err with the device's reason when it no longer holds the key or does not answer
    /// (looked up without signing); Ok for a key in this process.
    pub fn device_probe(&self) -> std::result::Result<(), String> {
        match self {
            CaKey::File(_) => Ok(()),
            CaKey::Device(d) => d.probe(),
        }
    }
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaKey::File(k) => k.der_bytes(),
            CaKey::Device(d) => d.public_point(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            CaKey::File(k) => k.algorithm(),
            CaKey::Device(_) => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }
}

impl SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        match self {
            CaKey::File(k) => k.sign(msg),
            CaKey::Device(d) => {
                let hash = digest::digest(&digest::SHA384, msg);
                // rcgen's error type cannot carry the reason: log it here, where it is known,
                // and leave it for `sign_error` on this thread.
                let failed = |what: &str, reason: String| {
                    tracing::error!(key = %d.describe(), %reason, "the CA key's device {what}");
                    let said = format!("the CA key {} {what}: {reason}", d.describe());
                    DEVICE_FAILURE.with(|f| *f.borrow_mut() = Some(said));
                    rcgen::Error::RemoteKeyError
                };
                let raw = d
                    .sign_digest(hash.as_ref())
                    .map_err(|reason| failed("did not sign", reason))?;
                ecdsa_sig_value(&raw)
                    .map_err(|reason| failed("answered a malformed signature", reason))
            }
        }
    }
}

/// DER-encodes a raw P-384 signature r || s (96 bytes) as X.509's
/// `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3). `UintRef` strips
/// leading zeros and adds the 0x00 a high first bit needs.
pub fn ecdsa_sig_value(raw: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if raw.len() != 96 {
        return Err(format!(
            "a P-384 signature r || s has 96 bytes, the device answered {}",
            raw.len()
        ));
    }
    let (r, s) = raw.split_at(48);
    let mut body = UintRef::new(r)
        .and_then(|r| r.to_der())
        .map_err(|e| e.to_string())?;
    body.extend(
        UintRef::new(s)
            .and_then(|s| s.to_der())
            .map_err(|e| e.to_string())?,
    );
    AnyRef::new(Tag::Sequence, &body)
        .and_then(|seq| seq.to_der())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P384_SHA384_ASN1,
        ECDSA_P384_SHA384_FIXED_SIGNING,
    };

    /// A device stand-in: an in-memory key that signs digests only, like CKM_ECDSA.
    struct FixedSigner(EcdsaKeyPair);

    impl DigestSigner for FixedSigner {
        fn public_point(&self) -> &[u8] {
            self.0.public_key().as_ref()
        }
        fn sign_digest(&self, digest: &[u8]) -> std::result::Result<Vec<u8>, String> {
            // aws-lc-rs signs messages, not digests: sign the digest as a message, and check
            // below with a verifier that is given the same bytes. What is under test is the
            // DER encoding of r || s, not the hash.
            let rng = aws_lc_rs::rand::SystemRandom::new();
            self.0
                .sign(&rng, digest)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| e.to_string())
        }
        fn describe(&self) -> String {
            "test device".into()
        }
    }

    #[test]
    fn raw_signatures_become_der_that_verifies_including_high_bit_and_leading_zero_halves() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let public = key.public_key().as_ref().to_vec();
        let signer = FixedSigner(key);
        let verifier = UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &public);
        // Enough signatures that r or s start with a high bit (needs a 0x00 pad) or a zero
        // byte (must be stripped) in some of them.
        for i in 0..64u8 {
            let msg = [i; 48];
            let raw = signer.sign_digest(&msg).unwrap();
            let der = ecdsa_sig_value(&raw).unwrap();
            verifier.verify(&msg, &der).unwrap();
        }
        assert!(ecdsa_sig_value(&[1u8; 95]).is_err());
    }

    #[test]
    fn device_keys_must_be_uncompressed_p384_points() {
        struct Short;
        impl DigestSigner for Short {
            fn public_point(&self) -> &[u8] {
                &[4u8; 65]
            }
            fn sign_digest(&self, _: &[u8]) -> std::result::Result<Vec<u8>, String> {
                Err("unused".into())
            }
            fn describe(&self) -> String {
                "p256 device".into()
            }
        }
        let err = CaKey::device(Arc::new(Short)).unwrap_err();
        assert!(err.to_string().contains("P-384"), "{err}");
    }
}
