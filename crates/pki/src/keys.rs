//! ECDSA key generation and private-key PEM input/output.

use std::path::Path;

use rcgen::{KeyPair, PublicKeyData};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use crate::curve::Curve;
use crate::error::{PkiError, Result};
use crate::files;

/// A fresh key pair on `curve`, generated in this process.
pub fn generate(curve: Curve) -> Result<KeyPair> {
    KeyPair::generate_for(curve.rcgen_alg())
        .map_err(|e| PkiError::Key(format!("generating a {curve} key: {e}")))
}

/// The curve of a key pair we created or loaded.
pub fn curve_of(key: &KeyPair) -> Result<Curve> {
    let alg = key.algorithm();
    [Curve::P256, Curve::P384, Curve::P521]
        .into_iter()
        .find(|c| c.rcgen_alg() == alg)
        .ok_or_else(|| PkiError::UnsupportedKey(format!("{alg:?}")))
}

/// Parses a private key from PEM: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`, with or without
/// OpenSSL's leading `EC PARAMETERS` block). RSA and other key types are refused by name.
pub fn parse_private_key_pem(pem_bytes: &[u8]) -> Result<(KeyPair, Curve)> {
    let der = PrivateKeyDer::from_pem_slice(pem_bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            PkiError::Key("no PRIVATE KEY or EC PRIVATE KEY block found".into())
        }
        other => PkiError::Key(other.to_string()),
    })?;
    if let PrivateKeyDer::Pkcs1(_) = der {
        return Err(PkiError::UnsupportedKey(
            "an RSA key (RSA PRIVATE KEY)".into(),
        ));
    }
    for curve in [Curve::P384, Curve::P256, Curve::P521] {
        if let Ok(key) = KeyPair::from_der_and_sign_algo(&der, curve.rcgen_alg()) {
            return Ok((key, curve));
        }
    }
    // Tell RSA and Ed25519 apart from a corrupt EC key, so the user knows what to change.
    match KeyPair::try_from(&der) {
        Ok(k) => Err(PkiError::UnsupportedKey(format!(
            "a {:?} key",
            k.algorithm()
        ))),
        Err(e) => Err(PkiError::Key(format!("cannot read the key: {e}"))),
    }
}

/// Loads a private key file.
pub fn load_private_key(path: &Path) -> Result<(KeyPair, Curve)> {
    let bytes = files::read(path)?;
    parse_private_key_pem(&bytes).map_err(|e| match e {
        PkiError::Key(m) => PkiError::Key(format!("{}: {m}", path.display())),
        PkiError::UnsupportedKey(m) => PkiError::UnsupportedKey(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Writes a private key as PKCS#8 PEM, atomically, mode 0600.
pub fn write_private_key(path: &Path, key: &KeyPair) -> Result<()> {
    files::write_atomic(path, key.serialize_pem().as_bytes(), files::KEY_MODE)
}

/// The DER SubjectPublicKeyInfo of a key pair.
pub fn spki_der(key: &KeyPair) -> Vec<u8> {
    key.subject_public_key_info()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_and_round_trips_every_curve() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let key = generate(curve).unwrap();
            assert_eq!(curve_of(&key).unwrap(), curve);
            let (back, c) = parse_private_key_pem(key.serialize_pem().as_bytes()).unwrap();
            assert_eq!(c, curve);
            assert_eq!(
                back.subject_public_key_info(),
                key.subject_public_key_info()
            );
        }
    }

    #[test]
    fn rejects_non_keys() {
        assert!(parse_private_key_pem(b"").is_err());
        assert!(parse_private_key_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err());
    }
}
