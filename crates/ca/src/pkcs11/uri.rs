//! `--key pkcs11:token=LABEL;object=LABEL`: which token and which key object (RFC 7512's
//! PKCS#11 URI, the two path attributes we use; values percent-encoded as the RFC says).

use std::fmt;
use std::str::FromStr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// A key named by token label and object label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUri {
    /// The token's label (CKA_LABEL of the token, as `softhsm2-util --init-token --label`).
    pub token: String,
    /// The key's label (CKA_LABEL of the private and public key objects).
    pub object: String,
}

/// Characters written percent-encoded: the URI's separators and anything not printable.
const RESERVED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b';')
    .add(b'%')
    .add(b'=')
    .add(b'?')
    .add(b'/')
    .add(b'#');

impl FromStr for KeyUri {
    type Err = String;

    fn from_str(s: &str) -> Result<KeyUri, String> {
        let usage = "expected pkcs11:token=LABEL;object=LABEL";
        let path = s
            .strip_prefix("pkcs11:")
            .ok_or_else(|| format!("{s:?} is not a PKCS#11 URI: {usage}"))?;
        if path.contains('?') {
            return Err(format!(
                "{s:?} has query attributes; the PIN is read from --pkcs11-pin-file only and \
                 the module is --pkcs11-module: {usage}"
            ));
        }
        let (mut token, mut object) = (None, None);
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| format!("{attr:?} in {s:?} is not NAME=VALUE: {usage}"))?;
            let value = percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("{attr:?} in {s:?} is not UTF-8 once percent-decoded"))?
                .into_owned();
            if value.is_empty() {
                return Err(format!("{name} in {s:?} is empty: {usage}"));
            }
            let slot = match name {
                "token" => &mut token,
                "object" => &mut object,
                // A private key is what we look for in any case.
                "type" if value == "private" => continue,
                "pin-value" | "pin-source" => {
                    return Err(format!(
                        "{s:?} carries a PIN: never put it in the URI (it would show in `ps` \
                         and shell history); put it in a file given with --pkcs11-pin-file"
                    ))
                }
                other => {
                    return Err(format!(
                        "{s:?}: the attribute {other:?} is not supported: {usage}"
                    ))
                }
            };
            if slot.replace(value).is_some() {
                return Err(format!("{s:?} names {name} twice"));
            }
        }
        match (token, object) {
            (Some(token), Some(object)) => Ok(KeyUri { token, object }),
            (None, _) => Err(format!("{s:?} names no token: {usage}")),
            (_, None) => Err(format!("{s:?} names no object: {usage}")),
        }
    }
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pkcs11:token={};object={}",
            utf8_percent_encode(&self.token, RESERVED),
            utf8_percent_encode(&self.object, RESERVED)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_and_object_and_round_trips_encoded_labels() {
        let uri: KeyUri = "pkcs11:token=mesh%20ca;object=root;type=private"
            .parse()
            .unwrap();
        assert_eq!(uri.token, "mesh ca");
        assert_eq!(uri.object, "root");
        assert_eq!(uri.to_string(), "pkcs11:token=mesh%20ca;object=root");
        assert_eq!(uri.to_string().parse::<KeyUri>().unwrap(), uri);
    }

    #[test]
    fn refuses_pins_missing_parts_and_unknown_attributes() {
        for (bad, says) in [
            ("token=a;object=b", "not a PKCS#11 URI"),
            ("pkcs11:token=a", "names no object"),
            ("pkcs11:object=b", "names no token"),
            (
                "pkcs11:token=a;object=b;pin-value=1234",
                "--pkcs11-pin-file",
            ),
            (
                "pkcs11:token=a;object=b?pin-value=1234",
                "--pkcs11-pin-file",
            ),
            ("pkcs11:token=a;object=b;slot-id=1", "slot-id"),
            ("pkcs11:token=a;token=c;object=b", "twice"),
            ("pkcs11:token=;object=b", "empty"),
        ] {
            let err = bad.parse::<KeyUri>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
