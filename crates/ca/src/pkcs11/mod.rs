//! The CA signing key in a PKCS#11 token (`--key pkcs11:token=…;object=…`, docs/operations.md
//! "Key in an HSM (PKCS#11)"). The key is generated in the token (sensitive, never
//! extractable) or is an existing object with those properties; the CA computes SHA-384
//! digests and the token signs them (CKM_ECDSA), so the private key never enters this process.

mod token;
mod uri;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cryptoki::types::AuthPin;
use thiserror::Error;
use zeroize::Zeroizing;

pub use token::{ca_key, TokenKey};
pub use uri::KeyUri;

/// The longest PIN file read: PINs are short; anything longer is not a PIN file.
const MAX_PIN_FILE: u64 = 1024;

/// How to reach tokens: the vendor's PKCS#11 module and the user PIN.
#[derive(Clone)]
pub struct TokenAccess {
    /// The module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so.
    pub module: PathBuf,
    /// Kept for logging in again after a reconnect, only in cryptoki's zeroizing secret type
    /// (one copy, shared by the clones; wiped when the last one goes); never printed.
    pin: Arc<AuthPin>,
}

impl std::fmt::Debug for TokenAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAccess")
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

impl TokenAccess {
    /// The module at `module` with the PIN read from `pin_file` (one trailing newline is
    /// ignored; an empty PIN is refused). The file's bytes are wiped once the PIN is taken.
    pub fn new(module: &Path, pin_file: &Path) -> Result<TokenAccess, Pkcs11Error> {
        let refuse = |reason: String| Pkcs11Error::PinFile {
            path: pin_file.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(pin_file).map_err(|e| refuse(e.to_string()))?;
        // Read into a buffer that is zeroed when dropped, sized once so that no reallocation
        // leaves a copy of the PIN behind.
        let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_PIN_FILE as usize + 1));
        file.take(MAX_PIN_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| refuse(e.to_string()))?;
        if bytes.len() as u64 > MAX_PIN_FILE {
            return Err(refuse(format!(
                "longer than {MAX_PIN_FILE} bytes: not a PIN file"
            )));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| refuse("not UTF-8 text".into()))?;
        let pin = text
            .strip_suffix('\n')
            .map(|p| p.strip_suffix('\r').unwrap_or(p))
            .unwrap_or(text);
        if pin.is_empty() {
            return Err(refuse("it is empty".into()));
        }
        Ok(TokenAccess {
            module: module.to_path_buf(),
            pin: Arc::new(AuthPin::from(pin)),
        })
    }

    /// The PIN in the form cryptoki logs in with.
    fn auth_pin(&self) -> &AuthPin {
        &self.pin
    }
}

/// Every way using a token key can fail, naming the module, token, object or PIN at fault.
#[derive(Debug, Error)]
pub enum Pkcs11Error {
    /// The PIN file cannot be used.
    #[error("--pkcs11-pin-file {}: {reason}", path.display())]
    PinFile {
        /// The file given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The module does not load or does not initialise.
    #[error("--pkcs11-module {}: {reason}", path.display())]
    Module {
        /// The module given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// No token with the label.
    #[error("no token labelled {token:?} in --pkcs11-module {} (tokens present: {available})", module.display())]
    TokenNotFound {
        /// The label looked for.
        token: String,
        /// The module searched.
        module: PathBuf,
        /// The labels present, comma-separated.
        available: String,
    },
    /// The token refused the PIN.
    #[error("token {token:?} refused the PIN from --pkcs11-pin-file ({reason})")]
    Pin {
        /// The token.
        token: String,
        /// CKR_PIN_INCORRECT, CKR_PIN_LOCKED, …
        reason: String,
    },
    /// No key with the label in the token.
    #[error("token {token:?} holds no {what} labelled {object:?}")]
    ObjectNotFound {
        /// The token.
        token: String,
        /// The key label looked for.
        object: String,
        /// "private key" or "public key".
        what: &'static str,
    },
    /// Several keys share the label: which one would sign is not clear.
    #[error("token {token:?} holds {count} {what}s labelled {object:?}; labels must be unique")]
    ObjectAmbiguous {
        /// The token.
        token: String,
        /// The label.
        object: String,
        /// "private key" or "public key".
        what: &'static str,
        /// How many.
        count: usize,
    },
    /// The key is not fit to be the CA key.
    #[error("{key}: {reason}")]
    UnfitKey {
        /// The key (its URI).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A PKCS#11 call failed.
    #[error("{key}: {operation} failed: {reason}")]
    Device {
        /// The key (its URI).
        key: String,
        /// What was being done.
        operation: &'static str,
        /// The PKCS#11 error.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use secrecy::ExposeSecret;

    use super::*;

    const PIN: &str = "pin-7f3e-5521";

    fn access_with(dir: &Path, contents: &[u8]) -> Result<TokenAccess, Pkcs11Error> {
        let file = dir.join("pin");
        std::fs::write(&file, contents).unwrap();
        TokenAccess::new(Path::new("/usr/lib/softhsm/libsofthsm2.so"), &file)
    }

    #[test]
    fn the_pin_is_kept_only_as_one_shared_secret_and_never_printed() {
        let tmp = tempfile::tempdir().unwrap();
        let access = access_with(tmp.path(), format!("{PIN}\r\n").as_bytes()).unwrap();
        // The only place the PIN lives: cryptoki's zeroizing secret (the type says it).
        let kept: &Arc<AuthPin> = &access.pin;
        assert_eq!(kept.expose_secret(), PIN);
        // Clones (one per key opened) share that one secret instead of copying it.
        let clone = access.clone();
        assert!(Arc::ptr_eq(&access.pin, &clone.pin));
        for shown in [
            format!("{access:?}"),
            format!("{access:#?}"),
            format!("{:?}", access.pin),
        ] {
            assert!(!shown.contains(PIN), "{shown}");
        }
        assert!(format!("{access:?}").contains("libsofthsm2.so"));
    }

    #[test]
    fn an_empty_oversized_or_binary_pin_file_is_refused_with_its_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let cases: [(&[u8], &str); 4] = [
            (b"\n", "it is empty"),
            (b"", "it is empty"),
            (&[b'1'; 1025], "longer than 1024 bytes"),
            (&[0xff, 0xfe, b'\n'], "not UTF-8"),
        ];
        for (contents, says) in cases {
            let err = access_with(tmp.path(), contents).unwrap_err().to_string();
            assert!(
                err.contains("--pkcs11-pin-file") && err.contains(says),
                "{contents:?}: {err}"
            );
        }
        let missing = TokenAccess::new(Path::new("m.so"), &tmp.path().join("nope"));
        assert!(missing.unwrap_err().to_string().contains("nope"));
        // 1024 bytes is still a PIN file.
        assert!(access_with(tmp.path(), &[b'1'; 1024]).is_ok());
    }
}
