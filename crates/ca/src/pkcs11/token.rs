//! One key in one token: open (or generate) it, and sign digests with it over one logged-in
//! session behind a mutex, reconnecting when the token drops the session.

use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use der07::asn1::OctetStringRef;
use der07::Decode;

use super::{KeyUri, Pkcs11Error, TokenAccess};

/// DER of the OID secp384r1 (1.3.132.0.34): CKA_EC_PARAMS of a P-384 key.
const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// A P-384 key in a token, signing SHA-384 digests there (`pki::ca_key::DigestSigner`).
pub struct TokenKey {
    uri: KeyUri,
    access: TokenAccess,
    pkcs11: Pkcs11,
    slot: Slot,
    /// The uncompressed public point (from the public key object).
    point: Vec<u8>,
    /// The logged-in session and the private key's handle in it; None after the token
    /// dropped the session, until the next signature reconnects.
    session: Mutex<Option<(Session, ObjectHandle)>>,
    /// Why the last signature failed, until one succeeds (`/healthz` says it).
    last_failure: Mutex<Option<String>>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({})", self.uri)
    }
}

/// True for the errors after which a new session may work: the session or the device went
/// away (token re-inserted, HSM restarted or failed over).
fn reconnectable(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceError
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid,
            _
        )
    )
}

/// The PKCS#11 name of an error (CKR_…-like), without cryptoki's paragraph of explanation.
fn short(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{rv:?} from {function:?}"),
        other => other.to_string(),
    }
}

impl TokenKey {
    /// The existing key `uri` names: `mtls-ca` serving from a data directory that records it.
    pub fn open(access: &TokenAccess, uri: &KeyUri) -> Result<TokenKey, Pkcs11Error> {
        let key = Self::connect(access, uri)?;
        let session = key.login()?;
        let private = key.find_one(&session, ObjectClass::PRIVATE_KEY, "private key")?;
        key.check_private(&session, private)?;
        Self::with_session(key, session, private)
    }

    /// The key `uri` names, generated in the token when it holds none (`mtls-ca init`):
    /// sensitive, never extractable, on the token. True when it was generated now.
    pub fn open_or_generate(
        access: &TokenAccess,
        uri: &KeyUri,
    ) -> Result<(TokenKey, bool), Pkcs11Error> {
        let key = Self::connect(access, uri)?;
        let session = key.login()?;
        let found = key.find(&session, ObjectClass::PRIVATE_KEY)?;
        if found.is_empty() {
            let private = key.generate(&session)?;
            tracing::info!(key = %uri, "generated a P-384 key in the token (sensitive, not extractable)");
            return Ok((Self::with_session(key, session, private)?, true));
        }
        let private = key.find_one(&session, ObjectClass::PRIVATE_KEY, "private key")?;
        key.check_private(&session, private)?;
        Ok((Self::with_session(key, session, private)?, false))
    }

    /// Loads the module and finds the token; no session yet.
    fn connect(access: &TokenAccess, uri: &KeyUri) -> Result<TokenKey, Pkcs11Error> {
        let module_err = |reason: String| Pkcs11Error::Module {
            path: access.module.clone(),
            reason,
        };
        let pkcs11 = Pkcs11::new(&access.module).map_err(|e| module_err(e.to_string()))?;
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(module_err(format!("C_Initialize: {}", short(&e)))),
        }
        let slots = pkcs11
            .get_slots_with_token()
            .map_err(|e| module_err(format!("listing slots: {}", short(&e))))?;
        let mut labels = Vec::new();
        let mut chosen = None;
        for slot in slots {
            let Ok(info) = pkcs11.get_token_info(slot) else {
                continue;
            };
            let label = info.label().trim_end().to_string();
            if label == uri.token && chosen.is_none() {
                chosen = Some(slot);
            }
            labels.push(format!("{label:?}"));
        }
        let slot = chosen.ok_or_else(|| Pkcs11Error::TokenNotFound {
            token: uri.token.clone(),
            module: access.module.clone(),
            available: if labels.is_empty() {
                "none".into()
            } else {
                labels.join(", ")
            },
        })?;
        Ok(TokenKey {
            uri: uri.clone(),
            access: access.clone(),
            pkcs11,
            slot,
            point: Vec::new(),
            session: Mutex::new(None),
            last_failure: Mutex::new(None),
        })
    }

    fn device(&self, operation: &'static str, e: &CkError) -> Pkcs11Error {
        Pkcs11Error::Device {
            key: self.uri.to_string(),
            operation,
            reason: short(e),
        }
    }

    /// A read-write session logged in as the user.
    fn login(&self) -> Result<Session, Pkcs11Error> {
        let session = self
            .pkcs11
            .open_rw_session(self.slot)
            .map_err(|e| self.device("opening a session", &e))?;
        match session.login(UserType::User, Some(self.access.auth_pin())) {
            // Login is per application and token: another session of ours may hold it.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(
                rv @ (RvError::PinIncorrect
                | RvError::PinLocked
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinExpired),
                _,
            )) => Err(Pkcs11Error::Pin {
                token: self.uri.token.clone(),
                reason: format!("{rv:?}"),
            }),
            Err(e) => Err(self.device("logging in", &e)),
        }
    }

    fn template(&self, class: ObjectClass) -> Vec<Attribute> {
        vec![
            Attribute::Class(class),
            Attribute::KeyType(KeyType::EC),
            Attribute::Label(self.uri.object.as_bytes().to_vec()),
        ]
    }

    fn find(
        &self,
        session: &Session,
        class: ObjectClass,
    ) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
        session
            .find_objects(&self.template(class))
            .map_err(|e| self.device("finding the key", &e))
    }

    fn find_one(
        &self,
        session: &Session,
        class: ObjectClass,
        what: &'static str,
    ) -> Result<ObjectHandle, Pkcs11Error> {
        let found = self.find(session, class)?;
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(Pkcs11Error::ObjectNotFound {
                token: self.uri.token.clone(),
                object: self.uri.object.clone(),
                what,
            }),
            many => Err(Pkcs11Error::ObjectAmbiguous {
                token: self.uri.token.clone(),
                object: self.uri.object.clone(),
                what,
                count: many.len(),
            }),
        }
    }

    /// A new P-384 key pair on the token; the private half sensitive and never extractable.
    fn generate(&self, session: &Session) -> Result<ObjectHandle, Pkcs11Error> {
        let label = self.uri.object.as_bytes().to_vec();
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| Pkcs11Error::Device {
            key: self.uri.to_string(),
            operation: "choosing a key id",
            reason: "no randomness".into(),
        })?;
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(P384_PARAMS.to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Id(id.to_vec()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label),
            Attribute::Id(id.to_vec()),
        ];
        let (_, private) = session
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
            .map_err(|e| self.device("generating a P-384 key (CKM_EC_KEY_PAIR_GEN)", &e))?;
        Ok(private)
    }

    /// Refuses a private key that could leave the token, or is not P-384.
    fn check_private(&self, session: &Session, key: ObjectHandle) -> Result<(), Pkcs11Error> {
        let attrs = session
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::EcParams,
                    AttributeType::Sign,
                ],
            )
            .map_err(|e| self.device("reading the key's attributes", &e))?;
        let unfit = |reason: &str| Pkcs11Error::UnfitKey {
            key: self.uri.to_string(),
            reason: reason.to_string(),
        };
        let (mut sensitive, mut extractable, mut p384, mut sign) = (false, true, false, false);
        for attr in attrs {
            match attr {
                Attribute::Sensitive(v) => sensitive = v,
                Attribute::Extractable(v) => extractable = v,
                Attribute::EcParams(v) => p384 = v == P384_PARAMS,
                Attribute::Sign(v) => sign = v,
                _ => {}
            }
        }
        if !p384 {
            return Err(unfit(
                "the key is not on P-384 (the CA signs ecdsa-with-SHA384)",
            ));
        }
        if !sensitive || extractable {
            return Err(unfit(
                "the private key is not sensitive or is extractable: it could leave the token; \
                 make one with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false (or let `mtls-ca init` \
                 generate it)",
            ));
        }
        if !sign {
            return Err(unfit("the private key may not sign (CKA_SIGN is false)"));
        }
        Ok(())
    }

    /// Reads the public point and keeps the session for signing.
    fn with_session(
        mut key: TokenKey,
        session: Session,
        private: ObjectHandle,
    ) -> Result<TokenKey, Pkcs11Error> {
        let public = key.find_one(&session, ObjectClass::PUBLIC_KEY, "public key")?;
        let attrs = session
            .get_attributes(public, &[AttributeType::EcPoint])
            .map_err(|e| key.device("reading the public key", &e))?;
        let raw = attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcPoint(v) => Some(v),
                _ => None,
            })
            .ok_or_else(|| Pkcs11Error::UnfitKey {
                key: key.uri.to_string(),
                reason: "the public key has no CKA_EC_POINT".into(),
            })?;
        // PKCS#11 wraps the point in a DER OCTET STRING; some modules send it bare.
        key.point = match OctetStringRef::from_der(&raw) {
            Ok(octets) => octets.as_bytes().to_vec(),
            Err(_) => raw,
        };
        *key.session.get_mut().unwrap_or_else(|p| p.into_inner()) = Some((session, private));
        Ok(key)
    }

    /// The key's URI.
    pub fn uri(&self) -> &KeyUri {
        &self.uri
    }

    /// A new logged-in session and the key's handle in it.
    fn reconnect(&self) -> Result<(Session, ObjectHandle), Pkcs11Error> {
        let session = self.login()?;
        let private = self.find_one(&session, ObjectClass::PRIVATE_KEY, "private key")?;
        Ok((session, private))
    }

    /// Signs `digest` with CKM_ECDSA: raw r || s. Retries once over a new session when the
    /// token dropped the old one.
    pub fn sign(&self, digest: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        // A panic while holding the lock leaves at worst a session to be replaced.
        let mut slot = self.session.lock().unwrap_or_else(|p| p.into_inner());
        for attempt in 0..2 {
            if slot.is_none() {
                *slot = Some(self.reconnect()?);
            }
            let Some((session, key)) = slot.as_ref() else {
                continue;
            };
            match session.sign(&Mechanism::Ecdsa, *key, digest) {
                Ok(signature) => return Ok(signature),
                Err(e) if attempt == 0 && reconnectable(&e) => {
                    tracing::warn!(key = %self.uri, error = %short(&e), "the token dropped the session; reconnecting");
                    *slot = None;
                }
                Err(e) => return Err(self.device("signing (CKM_ECDSA)", &e)),
            }
        }
        Err(Pkcs11Error::Device {
            key: self.uri.to_string(),
            operation: "signing (CKM_ECDSA)",
            reason: "the session was lost twice".into(),
        })
    }

    /// Whether the token still holds the key, looked up without signing (`/healthz` between
    /// signatures): in the signing session, or, when that one no longer finds it (the token
    /// was reset or logged the session out), in a new logged-in session, which then replaces
    /// it. Err only when a fresh session cannot find the key either.
    pub fn probe(&self) -> Result<(), Pkcs11Error> {
        let mut slot = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((session, key)) = slot.as_mut() {
            if let Ok(found) = self.find_one(session, ObjectClass::PRIVATE_KEY, "private key") {
                // The same label may name a new object (deleted and made again).
                *key = found;
                return Ok(());
            }
        }
        *slot = Some(self.reconnect()?);
        Ok(())
    }

    /// Logs this application out of the token from a second session, behind the signing
    /// session's back (as a token reset does): its next signature gets CKR_USER_NOT_LOGGED_IN.
    /// For tests of the reconnect path.
    #[doc(hidden)]
    pub fn log_out_behind_its_back(&self) -> Result<(), Pkcs11Error> {
        let other = self
            .pkcs11
            .open_ro_session(self.slot)
            .map_err(|e| self.device("opening a session", &e))?;
        other.logout().map_err(|e| self.device("logging out", &e))
    }

    /// Deletes the key's private object from the token from a second session, as an operator
    /// deleting it by mistake would: the next signature fails, naming the missing object. For
    /// tests of what the operator is told.
    #[doc(hidden)]
    pub fn destroy_behind_its_back(&self) -> Result<(), Pkcs11Error> {
        let other = self.login()?;
        let private = self.find_one(&other, ObjectClass::PRIVATE_KEY, "private key")?;
        other
            .destroy_object(private)
            .map_err(|e| self.device("deleting the key", &e))
    }
}

impl pki::ca_key::DigestSigner for TokenKey {
    fn public_point(&self) -> &[u8] {
        &self.point
    }

    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, String> {
        let signed = self.sign(digest).map_err(|e| e.to_string());
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
            signed.as_ref().err().cloned();
        signed
    }

    fn failure(&self) -> Option<String> {
        self.last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn probe(&self) -> Result<(), String> {
        TokenKey::probe(self).map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        self.uri.to_string()
    }
}

/// The CA key for `uri`: opened, and wrapped for `pki::CaMaterial`.
pub fn ca_key(key: TokenKey) -> Result<pki::CaKey, pki::PkiError> {
    pki::CaKey::device(Arc::new(key))
}
