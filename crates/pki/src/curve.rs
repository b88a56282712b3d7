use std::fmt;
use std::str::FromStr;

use crate::error::PkiError;

/// The ECDSA curves mtls-mesh issues and accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Curve {
    #[serde(rename = "P-256")]
    /// NIST P-256 (secp256r1, prime256v1).
    P256,
    #[serde(rename = "P-384")]
    /// NIST P-384 (secp384r1): the default for keys and roots.
    P384,
    #[serde(rename = "P-521")]
    /// NIST P-521 (secp521r1).
    P521,
}

/// DER of the named-curve OIDs as they appear in an EC SubjectPublicKeyInfo.
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

impl Curve {
    /// The NIST name: `P-256`, `P-384`, `P-521`.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// The OpenSSL name, as `openssl x509 -text` prints it.
    pub fn openssl_name(self) -> &'static str {
        match self {
            Curve::P256 => "prime256v1",
            Curve::P384 => "secp384r1",
            Curve::P521 => "secp521r1",
        }
    }

    /// The curve of a named-curve OID (dotted), if it is one of ours.
    pub fn from_oid(oid: &str) -> Option<Curve> {
        match oid {
            OID_P256 => Some(Curve::P256),
            OID_P384 => Some(Curve::P384),
            OID_P521 => Some(Curve::P521),
            _ => None,
        }
    }

    /// The signature algorithm a key on this curve signs with (hash matched to the curve size).
    pub(crate) fn rcgen_alg(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Curve::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Curve::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Curve::P521 => &rcgen::PKCS_ECDSA_P521_SHA512,
        }
    }

    /// Length of an uncompressed public point (0x04 || X || Y).
    pub(crate) fn point_len(self) -> usize {
        match self {
            Curve::P256 => 65,
            Curve::P384 => 97,
            Curve::P521 => 133,
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Curve {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().replace('_', "-").as_str() {
            "P-256" | "P256" | "PRIME256V1" | "SECP256R1" => Ok(Curve::P256),
            "P-384" | "P384" | "SECP384R1" => Ok(Curve::P384),
            "P-521" | "P521" | "SECP521R1" => Ok(Curve::P521),
            _ => Err(PkiError::UnsupportedKey(format!(
                "unknown curve {s:?} (expected P-256, P-384 or P-521)"
            ))),
        }
    }
}
