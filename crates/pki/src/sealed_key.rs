//! An offline root's private key at rest: PKCS#8 `ENCRYPTED PRIVATE KEY` with PBES2
//! (PBKDF2-HMAC-SHA256, [`PBKDF2_ITERATIONS`] iterations, AES-256-CBC), through the RustCrypto
//! `pkcs8` crate. This is the form OpenSSL writes with `openssl pkcs8 -topk8 -v2 aes-256-cbc
//! -v2prf hmacWithSHA256` and reads back with `openssl pkey -in root.key` (docs/security.md).
//! PBKDF2 rather than scrypt: OpenSSL refuses scrypt parameters above its 32 MiB default
//! memory limit, so an scrypt key strong enough for us would not open with `openssl pkey`.

use pkcs8::der::pem::LineEnding;
use pkcs8::pkcs5::pbes2;
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo};
use rcgen::KeyPair;

use crate::error::{PkiError, Result};
use crate::keys;

/// The shortest passphrase accepted: a root key sealed with less is guessable offline.
pub const MIN_PASSPHRASE_LEN: usize = 12;

/// PBKDF2-HMAC-SHA256 iterations (OWASP's 2023 recommendation for that PRF).
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// The PEM label of the sealed key.
pub const PEM_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// A passphrase as read from `--passphrase-file` or the terminal. Its Debug form hides it.
pub struct Passphrase(Vec<u8>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Passphrase {
    /// A passphrase from the bytes of a file or a prompt: one trailing newline (`\n` or
    /// `\r\n`, what `echo` and editors add) is not part of it. Refuses one shorter than
    /// [`MIN_PASSPHRASE_LEN`] bytes.
    pub fn new(mut bytes: Vec<u8>) -> Result<Passphrase> {
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.len() < MIN_PASSPHRASE_LEN {
            return Err(PkiError::Policy(format!(
                "the passphrase is {} bytes long; at least {MIN_PASSPHRASE_LEN} are required \
                 to protect the root key",
                bytes.len()
            )));
        }
        Ok(Passphrase(bytes))
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// `key` as an encrypted PKCS#8 PEM, sealed with `passphrase` under a fresh random salt and IV.
pub fn seal(key: &KeyPair, passphrase: &Passphrase) -> Result<String> {
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    for buf in [&mut salt[..], &mut iv[..]] {
        aws_lc_rs::rand::fill(buf)
            .map_err(|_| PkiError::Key("the system random generator failed".into()))?;
    }
    let params = pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, &iv)
        .map_err(|e| PkiError::Key(format!("encryption parameters: {e}")))?;
    let der = key.serialize_der();
    let info = PrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| PkiError::Key(format!("the key's PKCS#8 form: {e}")))?;
    let sealed = info
        .encrypt_with_params(params, passphrase.bytes())
        .map_err(|e| PkiError::Key(format!("encrypting the key: {e}")))?;
    let pem = sealed
        .to_pem(PEM_LABEL, LineEnding::LF)
        .map_err(|e| PkiError::Key(format!("encoding the sealed key: {e}")))?;
    Ok(pem.to_string())
}

/// The key sealed in `pem` (an `ENCRYPTED PRIVATE KEY` block), opened with `passphrase`. A
/// wrong passphrase and a damaged file give the same error: PBES2 cannot tell them apart.
pub fn open(pem: &[u8], passphrase: &Passphrase) -> Result<KeyPair> {
    let der = crate::pem::parse_single(pem, PEM_LABEL)?;
    let info = EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| {
        PkiError::Key(format!(
            "not an encrypted PKCS#8 key (ENCRYPTED PRIVATE KEY): {e}"
        ))
    })?;
    let plain = info.decrypt(passphrase.bytes()).map_err(|_| {
        PkiError::Key("cannot decrypt the key: wrong passphrase, or the file is damaged".into())
    })?;
    let block = crate::pem::encode("PRIVATE KEY", plain.as_bytes());
    keys::parse_private_key_pem(block.as_bytes()).map(|(key, _)| key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Curve;
    use rcgen::PublicKeyData;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_passphrase() {
        let key = keys::generate(Curve::P384).unwrap();
        let sealed = seal(&key, &pass("correct horse battery")).unwrap();
        assert!(sealed.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        assert!(!sealed.contains("BEGIN PRIVATE KEY"));
        let opened = open(sealed.as_bytes(), &pass("correct horse battery\n")).unwrap();
        assert_eq!(
            opened.subject_public_key_info(),
            key.subject_public_key_info()
        );
        let err = open(sealed.as_bytes(), &pass("correct horse battery!")).unwrap_err();
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        let err = open(
            key.serialize_pem().as_bytes(),
            &pass("correct horse battery"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("ENCRYPTED PRIVATE KEY"), "{err}");
    }

    #[test]
    fn short_passphrases_are_refused() {
        let err = Passphrase::new(b"short\n".to_vec()).unwrap_err();
        assert!(err.to_string().contains("5 bytes"), "{err}");
        assert!(Passphrase::new(b"\n".to_vec()).is_err());
        assert!(Passphrase::new(b"twelve bytes\r\n".to_vec()).is_ok());
    }

    /// The operator inspects the sealed key with OpenSSL: `openssl pkey` must open it with the
    /// passphrase and refuse it without.
    #[test]
    fn openssl_opens_the_sealed_key() {
        let key = keys::generate(Curve::P384).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (key_file, pass_file) = (dir.path().join("root.key"), dir.path().join("pass"));
        std::fs::write(
            &key_file,
            seal(&key, &pass("openssl can read this")).unwrap(),
        )
        .unwrap();
        std::fs::write(&pass_file, "openssl can read this\n").unwrap();
        let run = |pass_arg: &str| {
            std::process::Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&key_file)
                .args(["-passin", pass_arg])
                .output()
                .expect("openssl must be installed (Debian package openssl)")
        };
        let out = run(&format!("file:{}", pass_file.display()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            crate::pem::encode("PUBLIC KEY", &key.subject_public_key_info())
        );
        assert!(!run("pass:wrong passphrase").status.success());
    }
}
