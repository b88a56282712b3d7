//! JWT-SVIDs (the SPIFFE JWT-SVID specification), ES384 only: signing by the CA's JWT key,
//! verification against a key set (a JWK set, the `jwt-svid` keys of the SPIFFE bundle).
//!
//! A token is the JWS compact form `base64url(header).base64url(claims).base64url(r||s)`:
//! header `{"alg":"ES384","kid":…,"typ":"JWT"}`, claims `sub` (a SPIFFE ID), `aud` (a
//! non-empty array of non-empty strings), `exp` and `iat` (Unix seconds). The signature is
//! JOSE's fixed-width `r||s` (96 bytes for P-384), never DER.
//!
//! Verification trusts nothing from the token before its signature checks out except the
//! `kid`, used only to pick a key from the caller's set: the algorithm is fixed to ES384 (so
//! `none`, HS*/RS*/PS* and key-confusion tricks are refused before any key is touched), the key
//! comes from the set, and then `exp` against the injected time, the audience and `sub` are
//! checked.
//!
//! The CA's key is either in this process (`jwt.key`) or in a device (a PKCS#11 token when
//! the CA key is in one, docs/operations.md "Key in an HSM (PKCS#11)"): one encoder, two key
//! kinds; the device signs the SHA-384 digest of the signing input and answers `r||s`, which
//! is already JOSE's form.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P384_SHA384_FIXED,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use time::OffsetDateTime;

use crate::ca_key::DigestSigner;
use crate::spiffe::SpiffeId;

/// The only algorithm signed and accepted.
pub const ALG: &str = "ES384";
/// Length of an ES384 JOSE signature (`r||s`, 48 bytes each).
const SIGNATURE_LEN: usize = 96;
/// Length of one P-384 coordinate.
const COORD_LEN: usize = 48;
/// Longest token verified, in bytes; anything longer is refused before decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why signing or verifying a JWT-SVID failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON, or a required field missing or of the wrong type.
    #[error("malformed JWT-SVID: {0}")]
    Malformed(String),
    /// The header names an algorithm other than ES384.
    #[error("JWT-SVID algorithm {0:?} is not accepted; only ES384 is")]
    Algorithm(String),
    /// The `kid` is not in the key set.
    #[error("JWT-SVID key ID {0:?} is not in the trusted key set; fetch the current bundle")]
    UnknownKey(String),
    /// The signature does not verify with the key named.
    #[error("JWT-SVID signature does not verify with key {0:?}")]
    Signature(String),
    /// `exp` is at or before the time of verification.
    #[error("JWT-SVID expired at {exp} (checked at {now})")]
    Expired {
        /// The token's `exp`, Unix seconds.
        exp: i64,
        /// The time of verification, Unix seconds.
        now: i64,
    },
    /// The expected audience is not among the token's.
    #[error("JWT-SVID audience {presented:?} does not contain {expected:?}")]
    Audience {
        /// The audience required.
        expected: String,
        /// The token's `aud`.
        presented: Vec<String>,
    },
    /// `sub` is not a valid SPIFFE ID.
    #[error("JWT-SVID subject is not a valid SPIFFE ID: {0}")]
    Subject(String),
    /// A key (signing key or JWK) cannot be used.
    #[error("JWT key: {0}")]
    Key(String),
}

type Result<T> = std::result::Result<T, JwtError>;

/// The claims of a JWT-SVID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The SPIFFE ID of the workload.
    pub sub: SpiffeId,
    /// The audiences (at least one, none empty).
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issuance, Unix seconds.
    pub iat: i64,
}

/// One JSON Web Key as the SPIFFE bundle carries it (RFC 7517; EC P-384 only here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `EC`.
    pub kty: String,
    /// `P-384`.
    pub crv: String,
    /// The key ID (`jwt-svid` keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `x509-svid` or `jwt-svid` in a SPIFFE bundle.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// X coordinate, base64url.
    pub x: String,
    /// Y coordinate, base64url.
    pub y: String,
    /// The certificate, standard base64 DER (`x509-svid` keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
}

impl Jwk {
    /// The JWK of an uncompressed P-384 point (`04 || x || y`).
    pub fn from_p384_point(point: &[u8]) -> Result<Jwk> {
        let (x, y) = split_point(point)?;
        Ok(Jwk {
            kty: "EC".into(),
            crv: "P-384".into(),
            kid: None,
            use_: None,
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
            x5c: None,
        })
    }

    /// The uncompressed point (`04 || x || y`), checking the key type and curve.
    pub fn p384_point(&self) -> Result<Vec<u8>> {
        if self.kty != "EC" || self.crv != "P-384" {
            return Err(JwtError::Key(format!(
                "key type {} on curve {} is not supported; only EC P-384",
                self.kty, self.crv
            )));
        }
        let x = URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|e| JwtError::Key(format!("x is not base64url: {e}")))?;
        let y = URL_SAFE_NO_PAD
            .decode(&self.y)
            .map_err(|e| JwtError::Key(format!("y is not base64url: {e}")))?;
        if x.len() != COORD_LEN || y.len() != COORD_LEN {
            return Err(JwtError::Key(format!(
                "P-384 coordinates are {COORD_LEN} bytes, not {} and {}",
                x.len(),
                y.len()
            )));
        }
        let mut point = Vec::with_capacity(1 + 2 * COORD_LEN);
        point.push(4);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        Ok(point)
    }

    /// The RFC 7638 thumbprint (SHA-256 over the required members, base64url): the `kid` the
    /// CA gives its JWT key, so the ID follows from the key alone.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
            self.crv, self.kty, self.x, self.y
        );
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ))
    }
}

fn split_point(point: &[u8]) -> Result<(&[u8], &[u8])> {
    match point.split_first() {
        Some((4, xy)) if xy.len() == 2 * COORD_LEN => Ok(xy.split_at(COORD_LEN)),
        _ => Err(JwtError::Key(
            "not an uncompressed P-384 point (04 || x || y, 97 bytes)".into(),
        )),
    }
}

/// The keys a verifier trusts, by key ID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<(String, Vec<u8>)>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> KeySet {
        KeySet::default()
    }

    /// Adds a P-384 public key (uncompressed point) under `kid`, replacing one with that ID.
    pub fn insert(&mut self, kid: &str, point: &[u8]) -> Result<()> {
        split_point(point)?;
        self.keys.retain(|(k, _)| k != kid);
        self.keys.push((kid.to_string(), point.to_vec()));
        Ok(())
    }

    /// The `jwt-svid` keys of a SPIFFE bundle (`{"keys":[…]}`), read by the one bundle
    /// reader (`spiffe_bundle::BundleDocument`) with its key checks. `x509-svid` keys are
    /// left to their reader (`SpiffeBundle::parse`); any other key, or a `jwt-svid` key with a
    /// problem (no `kid`, not EC P-384, a `kid` another key has), refuses the whole set: every
    /// key must say it is for SPIFFE (`use`), and a verifier never guesses which of two keys
    /// a `kid` means.
    pub fn from_jwks(jwks: &Value) -> Result<KeySet> {
        let doc = crate::spiffe_bundle::BundleDocument::from_value(jwks)
            .map_err(|e| JwtError::Key(e.to_string()))?;
        let mut set = KeySet::new();
        for key in doc.keys.iter().filter(|k| !k.is_x509_svid()) {
            let refused =
                |why: String| JwtError::Key(format!("key #{} of the set: {why}", key.index));
            if let Some(problem) = key.problems.first() {
                return Err(refused(problem.to_string()));
            }
            match (key.is_jwt_svid(), &key.kid, &key.jwt_point) {
                (true, Some(kid), Some(point)) => set.insert(kid, point)?,
                // The reader records a problem for each of these; kept as a guard.
                _ => return Err(refused("not a usable jwt-svid key".into())),
            }
        }
        Ok(set)
    }

    /// The set as JWKs with `use: jwt-svid`, ready for a SPIFFE bundle's `keys`.
    pub fn to_jwks(&self) -> Vec<Jwk> {
        self.keys
            .iter()
            .filter_map(|(kid, point)| {
                let mut jwk = Jwk::from_p384_point(point).ok()?;
                jwk.kid = Some(kid.clone());
                jwk.use_ = Some("jwt-svid".into());
                Some(jwk)
            })
            .collect()
    }

    /// The key with this ID.
    pub fn get(&self, kid: &str) -> Option<&[u8]> {
        self.keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, p)| p.as_slice())
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where the JWT signing key is.
enum JwtKey {
    /// In this process (`jwt.key`).
    Local(EcdsaKeyPair),
    /// In a device that signs SHA-384 digests (a PKCS#11 token).
    Device(Arc<dyn DigestSigner>),
}

/// The CA's JWT signing key (P-384) and its key ID.
pub struct JwtSigner {
    key: JwtKey,
    kid: String,
    /// The uncompressed public point.
    point: Vec<u8>,
    /// The public key as a `jwt-svid` JWK with `kid`.
    jwk: Jwk,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("JwtSigner");
        out.field("kid", &self.kid);
        if let JwtKey::Device(d) = &self.key {
            out.field("device", &d.describe());
        }
        out.finish()
    }
}

impl JwtSigner {
    /// A signer from a PKCS#8 DER P-384 private key; its `kid` is the key's RFC 7638
    /// thumbprint.
    pub fn from_pkcs8(der: &[u8]) -> Result<JwtSigner> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der)
            .map_err(|e| JwtError::Key(format!("not a PKCS#8 P-384 private key: {e}")))?;
        let point = key.public_key().as_ref().to_vec();
        Self::with_key(JwtKey::Local(key), point)
    }

    /// A signer whose P-384 key is in a device (a PKCS#11 token); its `kid` is the RFC 7638
    /// thumbprint of the device's public key, as for a key in this process.
    pub fn device(signer: Arc<dyn DigestSigner>) -> Result<JwtSigner> {
        let point = signer.public_point().to_vec();
        Self::with_key(JwtKey::Device(signer), point)
    }

    fn with_key(key: JwtKey, point: Vec<u8>) -> Result<JwtSigner> {
        let mut jwk = Jwk::from_p384_point(&point)?;
        let kid = jwk.thumbprint();
        jwk.kid = Some(kid.clone());
        jwk.use_ = Some("jwt-svid".into());
        Ok(JwtSigner {
            key,
            kid,
            point,
            jwk,
        })
    }

    /// Where a device key is (e.g. `pkcs11:token=ca;object=ca-key-jwt`), None for a key in
    /// this process.
    pub fn device_name(&self) -> Option<String> {
        match &self.key {
            JwtKey::Local(_) => None,
            JwtKey::Device(d) => Some(d.describe()),
        }
    }

    /// Why the device's last signature failed, while none has succeeded since; None for a key
    /// in this process or a device that signs.
    pub fn device_failure(&self) -> Option<String> {
        match &self.key {
            JwtKey::Local(_) => None,
            JwtKey::Device(d) => d.failure(),
        }
    }

    /// Err with the device's reason when it no longer holds the key or does not answer
    /// (looked up without signing); Ok for a key in this process.
    pub fn device_probe(&self) -> std::result::Result<(), String> {
        match &self.key {
            JwtKey::Local(_) => Ok(()),
            JwtKey::Device(d) => d.probe(),
        }
    }

    /// The key ID tokens name in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a `jwt-svid` JWK with its `kid`.
    pub fn public_jwk(&self) -> Jwk {
        self.jwk.clone()
    }

    /// A key set holding this signer's public key alone.
    pub fn key_set(&self) -> KeySet {
        // The point was checked to be an uncompressed P-384 point when the signer was built
        // (Jwk::from_p384_point), so no insert check is needed.
        KeySet {
            keys: vec![(self.kid.clone(), self.point.clone())],
        }
    }

    /// The ES384 signature (`r||s`, 96 bytes) of the signing input.
    fn signature(&self, signing_input: &[u8]) -> Result<Vec<u8>> {
        let sig = match &self.key {
            JwtKey::Local(key) => key
                .sign(&SystemRandom::new(), signing_input)
                .map_err(|e| JwtError::Key(format!("signing failed: {e}")))?
                .as_ref()
                .to_vec(),
            JwtKey::Device(device) => {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, signing_input);
                device.sign_digest(digest.as_ref()).map_err(|reason| {
                    JwtError::Key(format!("{} did not sign: {reason}", device.describe()))
                })?
            }
        };
        if sig.len() != SIGNATURE_LEN {
            return Err(JwtError::Key(format!(
                "the signature is {} bytes; ES384 is r||s, {SIGNATURE_LEN} bytes",
                sig.len()
            )));
        }
        Ok(sig)
    }

    /// Signs `claims` after checking them as a verifier would (audience, times).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        check_audience(&claims.aud)?;
        if claims.exp <= claims.iat {
            return Err(JwtError::Malformed("exp must be after iat".into()));
        }
        let header = serde_json::json!({"alg": ALG, "kid": self.kid, "typ": "JWT"});
        let body = serde_json::json!({
            "sub": claims.sub.to_string(),
            "aud": claims.aud,
            "exp": claims.exp,
            "iat": claims.iat,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(body.to_string())
        );
        let sig = self.signature(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

fn check_audience(aud: &[String]) -> Result<()> {
    if aud.is_empty() || aud.iter().any(|a| a.is_empty()) {
        return Err(JwtError::Malformed(
            "aud must hold at least one audience and none may be empty".into(),
        ));
    }
    Ok(())
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| JwtError::Malformed(format!("the {what} is not unpadded base64url: {e}")))
}

fn json_part(part: &str, what: &str) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_slice(&decode_part(part, what)?) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
    }
}

/// Verifies `token` against `keys` at `now` for `audience` and returns its claims (see the
/// module documentation for the order of the checks).
pub fn verify(token: &str, keys: &KeySet, audience: &str, now: OffsetDateTime) -> Result<Claims> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed(format!(
            "longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed(
            "expected three dot-separated parts (JWS compact form)".into(),
        ));
    };
    let header = json_part(h, "header")?;
    match header.get("alg").and_then(Value::as_str) {
        Some(ALG) => {}
        Some(other) => return Err(JwtError::Algorithm(other.to_string())),
        None => return Err(JwtError::Malformed("the header has no alg".into())),
    }
    if header.contains_key("crit") {
        return Err(JwtError::Malformed(
            "the header has critical extensions (crit), which are not supported".into(),
        ));
    }
    if let Some(typ) = header.get("typ") {
        if !matches!(typ.as_str(), Some("JWT" | "JOSE")) {
            return Err(JwtError::Malformed(format!("typ {typ} is not JWT or JOSE")));
        }
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| JwtError::Malformed("the header has no kid".into()))?;
    let point = keys
        .get(kid)
        .ok_or_else(|| JwtError::UnknownKey(kid.to_string()))?;
    let signature = decode_part(s, "signature")?;
    if signature.len() != SIGNATURE_LEN {
        return Err(JwtError::Signature(format!(
            "{kid} (the signature is {} bytes; ES384 is r||s, {SIGNATURE_LEN} bytes, not DER)",
            signature.len()
        )));
    }
    let signing_input = &token[..h.len() + 1 + c.len()];
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| JwtError::Signature(kid.to_string()))?;

    let claims = json_part(c, "claims")?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| JwtError::Malformed("exp is missing or not an integer".into()))?;
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| JwtError::Malformed("iat is missing or not an integer".into()))?;
    let now_s = now.unix_timestamp();
    if exp <= now_s {
        return Err(JwtError::Expired { exp, now: now_s });
    }
    // The spec allows a single string; we sign arrays but accept both.
    let aud: Vec<String> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| JwtError::Malformed("aud holds a non-string".into()))?,
        _ => return Err(JwtError::Malformed("aud is missing".into())),
    };
    check_audience(&aud)?;
    if !aud.iter().any(|a| a == audience) {
        return Err(JwtError::Audience {
            expected: audience.to_string(),
            presented: aud,
        });
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or_else(|| JwtError::Malformed("sub is missing".into()))?;
    let sub = SpiffeId::parse(sub).map_err(|e| JwtError::Subject(e.to_string()))?;
    Ok(Claims { sub, aud, exp, iat })
}

/// The `x509-svid` JWK of an X.509 authority (a root of the bundle): its EC public key (P-256,
/// P-384 or P-521) and the certificate as `x5c`, as the SPIFFE bundle format carries it.
pub fn x509_authority_jwk(cert_der: &[u8]) -> Result<Jwk> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| JwtError::Key(format!("the authority certificate does not parse: {e}")))?;
    let spki = &cert.tbs_certificate.subject_pki;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .and_then(|o| crate::Curve::from_oid(&o.to_id_string()))
        .ok_or_else(|| {
            JwtError::Key("the authority's key is not on P-256, P-384 or P-521".into())
        })?;
    let point = spki.subject_public_key.data.as_ref();
    let coord = match point.split_first() {
        Some((4, xy)) if xy.len() % 2 == 0 && !xy.is_empty() => xy.len() / 2,
        _ => {
            return Err(JwtError::Key(
                "the authority's key is not an uncompressed point".into(),
            ))
        }
    };
    Ok(Jwk {
        kty: "EC".into(),
        crv: curve.name().into(),
        kid: None,
        use_: Some("x509-svid".into()),
        x: URL_SAFE_NO_PAD.encode(&point[1..1 + coord]),
        y: URL_SAFE_NO_PAD.encode(&point[1 + coord..]),
        x5c: Some(vec![STANDARD.encode(cert_der)]),
    })
}

#[cfg(test)]
mod tests;
