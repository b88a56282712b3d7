//! Reading a SPIFFE bundle (SPIFFE Trust Domain and Bundle spec, section 4): a JWK set whose
//! `x509-svid` keys carry the trust domain's X.509 authorities in `x5c`, with
//! `spiffe_sequence` and `spiffe_refresh_hint`. The CA writes its own with
//! `jwt_svid::x509_authority_jwk`; this is the other direction, for federation.
//!
//! One reader for everyone: [`BundleDocument::read`] reads every key, whatever its use, and
//! notes what is wrong with each ([`KeyProblem`]); `mtls-inspect` shows and lints that, and
//! [`SpiffeBundle::parse`] (federation, the agent, the services) refuses a bundle whose
//! `x509-svid` keys have a problem that makes them unusable as trust anchors.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use thiserror::Error;

use crate::jwt_svid::{x509_authority_jwk, Jwk};

/// A bundle refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BundleError {
    /// Not a JSON object with a `keys` array.
    #[error("not a SPIFFE bundle: {0}")]
    Shape(String),
    /// An `x509-svid` key that does not follow the spec.
    #[error("x509-svid key #{index}: {reason}")]
    X509Key {
        /// 1-based position in `keys`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// No `x509-svid` key at all: nothing could vouch for an X509-SVID of the domain.
    #[error("the bundle holds no x509-svid key (no X.509 authority)")]
    NoAuthority,
}

/// What a SPIFFE bundle says about X.509 trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiffeBundle {
    /// The X.509 authorities (DER), in bundle order.
    pub x509_authorities: Vec<Vec<u8>>,
    /// `spiffe_sequence`, when present.
    pub sequence: Option<u64>,
    /// `spiffe_refresh_hint` in seconds, when present.
    pub refresh_hint_seconds: Option<u64>,
}

impl SpiffeBundle {
    /// Parses a bundle. Each `x509-svid` key must carry exactly one certificate in `x5c`
    /// whose public key is the key's own (`x`, `y`, `crv`); keys of other uses (`jwt-svid`)
    /// are left to their readers, as the spec asks of keys a reader does not use.
    pub fn parse(json: &[u8]) -> Result<SpiffeBundle, BundleError> {
        let doc = BundleDocument::read(json)?;
        let mut x509_authorities = Vec::new();
        for key in doc.keys.into_iter().filter(|k| k.is_x509_svid()) {
            if let Some(problem) = key.problems.iter().find(|p| p.refuses_authority()) {
                return Err(BundleError::X509Key {
                    index: key.index,
                    reason: problem.to_string(),
                });
            }
            x509_authorities.extend(key.x5c.into_iter().next());
        }
        if x509_authorities.is_empty() {
            return Err(BundleError::NoAuthority);
        }
        Ok(SpiffeBundle {
            x509_authorities,
            sequence: doc.sequence.value(),
            refresh_hint_seconds: doc.refresh_hint_seconds.value(),
        })
    }
}

/// What is wrong with one key of a bundle.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum KeyProblem {
    /// The element of `keys` is not a JSON object.
    #[error("not a JSON object")]
    NotObject,
    /// No `kty` (RFC 7517 and the bundle spec require it).
    #[error("no kty (key type)")]
    NoKty,
    /// No `use`: the bundle spec requires it, readers cannot tell what the key is for.
    #[error("no use: a SPIFFE bundle key says which SVID type it is for (x509-svid or jwt-svid)")]
    NoUse,
    /// A `use` other than `x509-svid` and `jwt-svid`: readers ignore the key.
    #[error(
        "unknown use {0:?}: readers ignore this key (the SPIFFE uses are x509-svid and jwt-svid)"
    )]
    UnknownUse(String),
    /// An `x509-svid` key without `x5c`.
    #[error("no x5c")]
    NoX5c,
    /// An `x509-svid` key whose `x5c` does not hold exactly one certificate.
    #[error("x5c holds {0} certificates, not 1")]
    X5cCount(usize),
    /// An `x5c` entry that is not standard base64.
    #[error("x5c is not base64")]
    X5cNotBase64,
    /// The `x5c` certificate does not parse or has no EC key on P-256/P-384/P-521.
    #[error("{0}")]
    Certificate(String),
    /// `crv`/`x`/`y` are not the public key of the `x5c` certificate.
    #[error("its crv/x/y are not the public key of its x5c certificate")]
    KeyMismatch,
    /// The `x5c` certificate is not a CA certificate (X509-SVID spec 6.1: a CA certificate).
    #[error("its x5c certificate is not a CA certificate (no basicConstraints CA:TRUE)")]
    NotCa,
    /// A `jwt-svid` key without `kid` (the JWT-SVID spec requires one).
    #[error("a jwt-svid key has no kid")]
    NoKid,
    /// Another key of the bundle has the same `kid`.
    #[error("kid {kid:?} is also the kid of key #{first}")]
    DuplicateKid {
        /// The kid.
        kid: String,
        /// The 1-based index of the first key with it.
        first: usize,
    },
    /// A `jwt-svid` key this project cannot verify with (not EC P-384, bad coordinates).
    #[error("{0}")]
    JwtKey(String),
}

impl KeyProblem {
    /// True for the problems that make an `x509-svid` key unusable as a trust anchor:
    /// [`SpiffeBundle::parse`] refuses the bundle for them. A certificate that is not a CA
    /// is one: webpki takes any certificate as a trust anchor without looking at its
    /// basicConstraints, so a federated domain publishing a leaf would have it trusted as an
    /// issuer; the X509-SVID spec (section 6.1) makes signing certificates CAs.
    pub fn refuses_authority(&self) -> bool {
        matches!(
            self,
            KeyProblem::NoX5c
                | KeyProblem::X5cCount(_)
                | KeyProblem::X5cNotBase64
                | KeyProblem::Certificate(_)
                | KeyProblem::KeyMismatch
                | KeyProblem::NotCa
        )
    }
}

/// One key of a bundle as read, whatever its use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleKey {
    /// 1-based position in `keys`.
    pub index: usize,
    /// `use`.
    pub use_: Option<String>,
    /// `kty`.
    pub kty: Option<String>,
    /// `crv`.
    pub crv: Option<String>,
    /// `kid`.
    pub kid: Option<String>,
    /// The RFC 7638 thumbprint (SHA-256, base64url) of an EC key with `crv`, `x` and `y`.
    pub thumbprint: Option<String>,
    /// The `x5c` certificates (DER) that decode, in order.
    pub x5c: Vec<Vec<u8>>,
    /// A `jwt-svid` key's public key, an uncompressed P-384 point, when it is one this
    /// project verifies with (`jwt_svid::KeySet::from_jwks` takes it from here).
    pub jwt_point: Option<Vec<u8>>,
    /// What is wrong with the key; empty when nothing.
    pub problems: Vec<KeyProblem>,
}

impl BundleKey {
    /// `use` is `x509-svid`.
    pub fn is_x509_svid(&self) -> bool {
        self.use_.as_deref() == Some(X509_SVID)
    }

    /// `use` is `jwt-svid`.
    pub fn is_jwt_svid(&self) -> bool {
        self.use_.as_deref() == Some(JWT_SVID)
    }
}

/// The `use` of keys that vouch for X509-SVIDs.
pub const X509_SVID: &str = "x509-svid";
/// The `use` of keys that verify JWT-SVIDs.
pub const JWT_SVID: &str = "jwt-svid";

/// `spiffe_sequence` or `spiffe_refresh_hint` as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleNumber {
    /// Not in the bundle.
    Absent,
    /// An unsigned integer.
    Valid(u64),
    /// Present but not an unsigned 64-bit integer: the JSON text of the value.
    Invalid(String),
}

impl BundleNumber {
    fn of(doc: &Value, name: &str) -> BundleNumber {
        match doc.get(name) {
            None => BundleNumber::Absent,
            Some(v) => v
                .as_u64()
                .map_or_else(|| BundleNumber::Invalid(v.to_string()), BundleNumber::Valid),
        }
    }

    /// The number, when valid.
    pub fn value(&self) -> Option<u64> {
        match self {
            BundleNumber::Valid(n) => Some(*n),
            _ => None,
        }
    }
}

/// Everything a bundle holds, every key read whatever its use or problems.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleDocument {
    /// The keys, in bundle order.
    pub keys: Vec<BundleKey>,
    /// `spiffe_sequence`.
    pub sequence: BundleNumber,
    /// `spiffe_refresh_hint`, in seconds.
    pub refresh_hint_seconds: BundleNumber,
}

impl BundleDocument {
    /// Reads a bundle: refused only when it is not a JSON object with a `keys` array; what is
    /// wrong with single keys is in their `problems`.
    pub fn read(json: &[u8]) -> Result<BundleDocument, BundleError> {
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| BundleError::Shape(format!("not JSON: {e}")))?;
        BundleDocument::from_value(&value)
    }

    /// [`BundleDocument::read`] for a bundle already parsed as JSON.
    pub fn from_value(value: &Value) -> Result<BundleDocument, BundleError> {
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| BundleError::Shape("no \"keys\" array".into()))?;
        let mut read: Vec<BundleKey> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| read_key(i + 1, key))
            .collect();
        mark_duplicate_kids(&mut read);
        Ok(BundleDocument {
            keys: read,
            sequence: BundleNumber::of(value, "spiffe_sequence"),
            refresh_hint_seconds: BundleNumber::of(value, "spiffe_refresh_hint"),
        })
    }
}

fn read_key(index: usize, key: &Value) -> BundleKey {
    let text = |name: &str| key.get(name).and_then(Value::as_str).map(str::to_string);
    let mut read = BundleKey {
        index,
        use_: text("use"),
        kty: text("kty"),
        crv: text("crv"),
        kid: text("kid"),
        thumbprint: None,
        x5c: Vec::new(),
        jwt_point: None,
        problems: Vec::new(),
    };
    if !key.is_object() {
        read.problems.push(KeyProblem::NotObject);
        return read;
    }
    if read.kty.is_none() {
        read.problems.push(KeyProblem::NoKty);
    }
    read.thumbprint = serde_json::from_value::<Jwk>(key.clone())
        .ok()
        .filter(|jwk| jwk.kty == "EC")
        .map(|jwk| jwk.thumbprint());
    match read.use_.clone().as_deref() {
        Some(X509_SVID) => read_x509_key(key, &mut read),
        Some(JWT_SVID) => read_jwt_key(key, &mut read),
        Some(other) => read
            .problems
            .push(KeyProblem::UnknownUse(other.to_string())),
        None => read.problems.push(KeyProblem::NoUse),
    }
    read
}

/// An `x509-svid` key: exactly one certificate in `x5c`, a CA certificate, whose public key
/// is the key's `crv`/`x`/`y` (X509-SVID spec 6.1).
fn read_x509_key(key: &Value, read: &mut BundleKey) {
    let Some(list) = key.get("x5c").and_then(Value::as_array) else {
        read.problems.push(KeyProblem::NoX5c);
        return;
    };
    if list.len() != 1 {
        read.problems.push(KeyProblem::X5cCount(list.len()));
    }
    let decoded: Vec<Option<Vec<u8>>> = list
        .iter()
        .map(|entry| entry.as_str().and_then(|b64| STANDARD.decode(b64).ok()))
        .collect();
    if decoded.iter().any(Option::is_none) {
        read.problems.push(KeyProblem::X5cNotBase64);
    }
    read.x5c = decoded.iter().flatten().cloned().collect();
    // Readers use the first certificate (X509-SVID spec 6.2): that is the one checked.
    let Some(Some(der)) = decoded.first() else {
        return;
    };
    match x509_authority_jwk(der) {
        Err(e) => read.problems.push(KeyProblem::Certificate(e.to_string())),
        Ok(derived) => {
            let field = |name: &str| key.get(name).and_then(Value::as_str);
            if field("crv") != Some(derived.crv.as_str())
                || field("x") != Some(derived.x.as_str())
                || field("y") != Some(derived.y.as_str())
            {
                read.problems.push(KeyProblem::KeyMismatch);
            }
            if !is_ca_certificate(der) {
                read.problems.push(KeyProblem::NotCa);
            }
        }
    }
}

fn is_ca_certificate(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .is_ok_and(|(_, cert)| matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca))
}

/// A `jwt-svid` key: a `kid`, and (for this project's verifier) EC P-384.
fn read_jwt_key(key: &Value, read: &mut BundleKey) {
    if read.kid.is_none() {
        read.problems.push(KeyProblem::NoKid);
    }
    let usable = serde_json::from_value::<Jwk>(key.clone())
        .map_err(|e| format!("not an EC JWK with crv, x and y: {e}"))
        .and_then(|jwk| jwk.p384_point().map_err(|e| e.to_string()));
    match usable {
        Ok(point) => read.jwt_point = Some(point),
        Err(e) => read.problems.push(KeyProblem::JwtKey(e)),
    }
}

fn mark_duplicate_kids(keys: &mut [BundleKey]) {
    for i in 0..keys.len() {
        let Some(kid) = keys[i].kid.clone() else {
            continue;
        };
        if let Some(first) = keys[..i].iter().find(|k| k.kid.as_deref() == Some(&kid)) {
            let first = first.index;
            keys[i]
                .problems
                .push(KeyProblem::DuplicateKid { kid, first });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;
    use crate::CaMaterial;

    fn bundle_of(root: &CaMaterial) -> Value {
        let jwk = x509_authority_jwk(root.cert_der()).unwrap();
        serde_json::json!({
            "keys": [serde_json::to_value(jwk).unwrap()],
            "spiffe_sequence": 7,
            "spiffe_refresh_hint": 300,
        })
    }

    #[test]
    fn reads_the_authorities_sequence_and_hint() {
        let root = CaMaterial::generate_root("B", time::OffsetDateTime::now_utc()).unwrap();
        let bundle = SpiffeBundle::parse(bundle_of(&root).to_string().as_bytes()).unwrap();
        assert_eq!(bundle.x509_authorities, vec![root.cert_der().to_vec()]);
        assert_eq!(bundle.sequence, Some(7));
        assert_eq!(bundle.refresh_hint_seconds, Some(300));
    }

    #[test]
    fn refuses_a_key_that_is_not_its_certificates_and_an_empty_bundle() {
        let root = CaMaterial::generate_root("B", time::OffsetDateTime::now_utc()).unwrap();
        let other = CaMaterial::generate_root("C", time::OffsetDateTime::now_utc()).unwrap();
        let mut bundle = bundle_of(&root);
        let other_jwk =
            serde_json::to_value(x509_authority_jwk(other.cert_der()).unwrap()).unwrap();
        bundle["keys"][0]["x"] = other_jwk["x"].clone();
        let err = SpiffeBundle::parse(bundle.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(err, BundleError::X509Key { index: 1, .. }),
            "{err}"
        );
        let empty = serde_json::json!({"keys": []});
        assert_eq!(
            SpiffeBundle::parse(empty.to_string().as_bytes()).unwrap_err(),
            BundleError::NoAuthority
        );
        assert!(SpiffeBundle::parse(b"[]").is_err());
    }

    /// Every key is read, whatever is wrong with it, and each problem is named; the strict
    /// parser refuses only for the problems that make an x509-svid key unusable.
    #[test]
    fn read_names_every_problem_of_every_key() {
        let now = time::OffsetDateTime::now_utc();
        let root = CaMaterial::generate_root("B", now).unwrap();
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let leaf = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&leaf_key)
            .unwrap();
        let root_jwk = serde_json::to_value(x509_authority_jwk(root.cert_der()).unwrap()).unwrap();
        let leaf_jwk = serde_json::to_value(x509_authority_jwk(leaf.der()).unwrap()).unwrap();
        let mut two_certs = root_jwk.clone();
        two_certs["x5c"] = serde_json::json!([root_jwk["x5c"][0], leaf_jwk["x5c"][0]]);
        let mut no_x5c = root_jwk.clone();
        no_x5c.as_object_mut().unwrap().remove("x5c");
        let signer = crate::jwt_svid::JwtSigner::from_pkcs8(
            aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .unwrap()
            .as_ref(),
        )
        .unwrap();
        let jwt = serde_json::to_value(signer.public_jwk()).unwrap();
        let mut jwt_no_kid = jwt.clone();
        jwt_no_kid.as_object_mut().unwrap().remove("kid");
        let mut other_use = jwt.clone();
        other_use["use"] = "enc".into();
        let doc = serde_json::json!({
            "keys": [root_jwk, two_certs, no_x5c, leaf_jwk, jwt, jwt_no_kid, jwt.clone(), other_use, 5],
            "spiffe_sequence": -1,
        });
        let read = BundleDocument::read(doc.to_string().as_bytes()).unwrap();
        let problems: Vec<Vec<KeyProblem>> = read.keys.iter().map(|k| k.problems.clone()).collect();
        let kid = signer.kid().to_string();
        assert_eq!(
            problems,
            vec![
                vec![],
                vec![KeyProblem::X5cCount(2)],
                vec![KeyProblem::NoX5c],
                vec![KeyProblem::NotCa],
                vec![],
                vec![KeyProblem::NoKid],
                vec![KeyProblem::DuplicateKid {
                    kid: kid.clone(),
                    first: 5
                }],
                vec![
                    KeyProblem::UnknownUse("enc".into()),
                    KeyProblem::DuplicateKid {
                        kid: kid.clone(),
                        first: 5
                    }
                ],
                vec![KeyProblem::NotObject],
            ]
        );
        assert_eq!(read.keys[1].x5c.len(), 2, "both certificates are read");
        assert_eq!(read.keys[4].thumbprint.as_deref(), Some(kid.as_str()));
        assert_eq!(read.sequence, BundleNumber::Invalid("-1".into()));
        assert_eq!(read.refresh_hint_seconds, BundleNumber::Absent);
        let err = SpiffeBundle::parse(doc.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err,
            BundleError::X509Key {
                index: 2,
                reason: "x5c holds 2 certificates, not 1".into()
            }
        );
    }

    /// A bundle whose x509-svid key carries a certificate that is not a CA (here a
    /// self-signed leaf, whose key and x5c agree) is refused whole: webpki would take the
    /// leaf as a trust anchor.
    #[test]
    fn refuses_an_authority_that_is_not_a_ca_certificate() {
        let root = CaMaterial::generate_root("B", time::OffsetDateTime::now_utc()).unwrap();
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let leaf = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&leaf_key)
            .unwrap();
        let mut bundle = bundle_of(&root);
        let leaf_jwk = serde_json::to_value(x509_authority_jwk(leaf.der()).unwrap()).unwrap();
        bundle["keys"].as_array_mut().unwrap().push(leaf_jwk);
        let err = SpiffeBundle::parse(bundle.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err,
            BundleError::X509Key {
                index: 2,
                reason: KeyProblem::NotCa.to_string()
            }
        );
    }
}
