//! The CA signing key in a PKCS#11 token (`--key pkcs11:token=…;object=…`, docs/operations.md
//! "Key in an HSM (PKCS#11)"). The key is generated in the token (sensitive, never
//! extractable) or is an existing object with those properties; the CA computes SHA-384
//! digests and the token signs them (CKM_ECDSA), so the private key never enters this process.

mod token;
mod uri;

use std::path::{Path, PathBuf};

use cryptoki::types::AuthPin;
use thiserror::Error;

pub use token::{ca_key, TokenKey};
pub use uri::KeyUri;

/// How to reach tokens: the vendor's PKCS#11 module and the user PIN.
#[derive(Clone)]
pub struct TokenAccess {
    /// The module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so.
    pub module: PathBuf,
    /// Kept for logging in again after a reconnect; never printed (Debug leaves it out).
    pin: String,
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
    /// ignored; an empty PIN is refused).
    pub fn new(module: &Path, pin_file: &Path) -> Result<TokenAccess, Pkcs11Error> {
        let bytes = std::fs::read(pin_file).map_err(|e| Pkcs11Error::PinFile {
            path: pin_file.to_path_buf(),
            reason: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| Pkcs11Error::PinFile {
            path: pin_file.to_path_buf(),
            reason: "not UTF-8 text".into(),
        })?;
        let pin = text
            .strip_suffix('\n')
            .map(|p| p.strip_suffix('\r').unwrap_or(p))
            .unwrap_or(&text);
        if pin.is_empty() {
            return Err(Pkcs11Error::PinFile {
                path: pin_file.to_path_buf(),
                reason: "it is empty".into(),
            });
        }
        Ok(TokenAccess {
            module: module.to_path_buf(),
            pin: pin.to_string(),
        })
    }

    /// The PIN in the form cryptoki logs in with.
    fn auth_pin(&self) -> AuthPin {
        AuthPin::new(self.pin.as_str().into())
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
