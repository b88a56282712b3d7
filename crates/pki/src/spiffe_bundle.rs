//! Reading a SPIFFE bundle (SPIFFE Trust Domain and Bundle spec, section 4): a JWK set whose
//! `x509-svid` keys carry the trust domain's X.509 authorities in `x5c`, with
//! `spiffe_sequence` and `spiffe_refresh_hint`. The CA writes its own with
//! `jwt_svid::x509_authority_jwk`; this is the other direction, for federation.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use thiserror::Error;

use crate::jwt_svid::x509_authority_jwk;

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
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| BundleError::Shape(format!("not JSON: {e}")))?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| BundleError::Shape("no \"keys\" array".into()))?;
        let mut x509_authorities = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if key.get("use").and_then(Value::as_str) != Some("x509-svid") {
                continue;
            }
            let bad = |reason: String| BundleError::X509Key {
                index: i + 1,
                reason,
            };
            let x5c = match key.get("x5c").and_then(Value::as_array) {
                Some(list) if list.len() == 1 => &list[0],
                Some(list) => {
                    return Err(bad(format!("x5c holds {} certificates, not 1", list.len())))
                }
                None => return Err(bad("no x5c".into())),
            };
            let der = x5c
                .as_str()
                .and_then(|b64| STANDARD.decode(b64).ok())
                .ok_or_else(|| bad("x5c is not base64".into()))?;
            let derived = x509_authority_jwk(&der).map_err(|e| bad(e.to_string()))?;
            let field = |name: &str| key.get(name).and_then(Value::as_str);
            if field("crv") != Some(derived.crv.as_str())
                || field("x") != Some(derived.x.as_str())
                || field("y") != Some(derived.y.as_str())
            {
                return Err(bad(
                    "its crv/x/y are not the public key of its x5c certificate".into(),
                ));
            }
            x509_authorities.push(der);
        }
        if x509_authorities.is_empty() {
            return Err(BundleError::NoAuthority);
        }
        Ok(SpiffeBundle {
            x509_authorities,
            sequence: value.get("spiffe_sequence").and_then(Value::as_u64),
            refresh_hint_seconds: value.get("spiffe_refresh_hint").and_then(Value::as_u64),
        })
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
}
