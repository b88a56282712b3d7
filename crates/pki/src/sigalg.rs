//! The one table of signature algorithms: OIDs, OpenSSL names, the key each one needs, and the
//! aws-lc-rs algorithm that checks it; plus the algorithm policy every verifier applies.
//!
//! CSR proof of possession (`csr.rs`), certificate chains (`verify.rs` through webpki), CRLs
//! (`crl.rs`) and the explanations of `verify/explain.rs` all look algorithms up here, so an
//! algorithm is named, matched to its key and accepted or refused the same way everywhere.
//!
//! The default policy, [`AlgorithmPolicy::EcdsaOnly`], is what the services enforce at the
//! handshake (docs/security.md, "TLS policy"): ECDSA on P-256, P-384 and P-521 with SHA-2, the
//! pairs rustls offers for those curves. [`AlgorithmPolicy::WebPki`] adds RSA PKCS#1 v1.5 and
//! Ed25519, for inspecting chains from other PKIs (`mtls-inspect verify --algorithms webpki`).

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use rustls_pki_types::SignatureVerificationAlgorithm;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::curve::Curve;

/// ecdsa-with-SHA256.
pub const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
/// ecdsa-with-SHA384.
pub const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
/// ecdsa-with-SHA512.
pub const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
/// sha256WithRSAEncryption.
pub const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
/// sha384WithRSAEncryption.
pub const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
/// sha512WithRSAEncryption.
pub const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";
/// RSASSA-PSS (known by name, never verified here).
pub const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
/// Ed25519.
pub const OID_ED25519: &str = "1.3.101.112";
/// Ed448 (known by name, never verified here).
pub const OID_ED448: &str = "1.3.101.113";
/// id-ecPublicKey: the key algorithm of every EC key.
pub const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// rsaEncryption: the key algorithm of RSA keys.
pub const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// The hash of a signature algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// What a signature algorithm OID stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureKind {
    /// ECDSA with a SHA-2 hash (any curve; the key decides the curve).
    Ecdsa(Hash),
    /// RSA PKCS#1 v1.5 with a SHA-2 hash.
    RsaPkcs1(Hash),
    /// Ed25519 (PureEdDSA).
    Ed25519,
    /// Known by name only (SHA-1, MD5, RSA-PSS, Ed448): never verified here.
    NameOnly,
}

/// One row of the table: OID, OpenSSL's short name, kind.
struct Row {
    oid: &'static str,
    name: &'static str,
    kind: SignatureKind,
}

const TABLE: &[Row] = &[
    Row {
        oid: OID_ECDSA_SHA256,
        name: "ecdsa-with-SHA256",
        kind: SignatureKind::Ecdsa(Hash::Sha256),
    },
    Row {
        oid: OID_ECDSA_SHA384,
        name: "ecdsa-with-SHA384",
        kind: SignatureKind::Ecdsa(Hash::Sha384),
    },
    Row {
        oid: OID_ECDSA_SHA512,
        name: "ecdsa-with-SHA512",
        kind: SignatureKind::Ecdsa(Hash::Sha512),
    },
    Row {
        oid: "1.2.840.10045.4.1",
        name: "ecdsa-with-SHA1",
        kind: SignatureKind::NameOnly,
    },
    Row {
        oid: OID_RSA_SHA256,
        name: "sha256WithRSAEncryption",
        kind: SignatureKind::RsaPkcs1(Hash::Sha256),
    },
    Row {
        oid: OID_RSA_SHA384,
        name: "sha384WithRSAEncryption",
        kind: SignatureKind::RsaPkcs1(Hash::Sha384),
    },
    Row {
        oid: OID_RSA_SHA512,
        name: "sha512WithRSAEncryption",
        kind: SignatureKind::RsaPkcs1(Hash::Sha512),
    },
    Row {
        oid: "1.2.840.113549.1.1.5",
        name: "sha1WithRSAEncryption",
        kind: SignatureKind::NameOnly,
    },
    Row {
        oid: "1.2.840.113549.1.1.4",
        name: "md5WithRSAEncryption",
        kind: SignatureKind::NameOnly,
    },
    Row {
        oid: OID_RSA_PSS,
        name: "rsassaPss",
        kind: SignatureKind::NameOnly,
    },
    Row {
        oid: OID_ED25519,
        name: "ED25519",
        kind: SignatureKind::Ed25519,
    },
    Row {
        oid: OID_ED448,
        name: "ED448",
        kind: SignatureKind::NameOnly,
    },
];

fn row(oid: &str) -> Option<&'static Row> {
    TABLE.iter().find(|r| r.oid == oid)
}

/// OpenSSL's short name of a signature algorithm OID, or the dotted OID.
pub fn signature_algorithm_name(oid: &str) -> String {
    row(oid).map_or_else(|| oid.to_string(), |r| r.name.to_string())
}

/// What the table says about a signature algorithm OID; None for an OID it does not know.
pub fn signature_kind(oid: &str) -> Option<SignatureKind> {
    row(oid).map(|r| r.kind)
}

/// A public key, as far as signature checking cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// An EC key on one of our curves.
    Ec(Curve),
    /// An EC key on a curve mtls-mesh does not use (named by OID).
    EcOther(String),
    /// An RSA key.
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
    /// An Ed25519 key.
    Ed25519,
    /// Any other algorithm (named by OID).
    Other(String),
}

impl KeyKind {
    /// The kind of key a SubjectPublicKeyInfo holds.
    pub fn of(spki: &SubjectPublicKeyInfo<'_>) -> KeyKind {
        let oid = spki.algorithm.algorithm.to_id_string();
        match oid.as_str() {
            OID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default();
                Curve::from_oid(&curve).map_or(KeyKind::EcOther(curve), KeyKind::Ec)
            }
            OID_RSA_ENCRYPTION => match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => KeyKind::Rsa {
                    bits: rsa.key_size(),
                },
                _ => KeyKind::Rsa { bits: 0 },
            },
            OID_ED25519 => KeyKind::Ed25519,
            _ => KeyKind::Other(oid),
        }
    }

    /// The kind of key a DER SubjectPublicKeyInfo holds; None when it does not parse.
    pub fn of_der(spki_der: &[u8]) -> Option<KeyKind> {
        SubjectPublicKeyInfo::from_der(spki_der)
            .ok()
            .map(|(_, spki)| KeyKind::of(&spki))
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Ec(c) => write!(f, "an EC {} key", c.name()),
            KeyKind::EcOther(oid) => write!(f, "an EC key on curve {oid}"),
            KeyKind::Rsa { bits } => write!(f, "an RSA {bits}-bit key"),
            KeyKind::Ed25519 => f.write_str("an Ed25519 key"),
            KeyKind::Other(oid) => write!(f, "a key of algorithm {oid}"),
        }
    }
}

/// Which signature algorithms a verifier accepts, for certificates and CRLs alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AlgorithmPolicy {
    /// What the services enforce: ECDSA on P-256 (SHA-256, SHA-384), P-384 (SHA-256, SHA-384)
    /// and P-521 (SHA-256, SHA-384, SHA-512), exactly rustls' ECDSA verification algorithms
    /// for those curves. End-entity keys must be ECDSA on one of the three curves.
    #[default]
    EcdsaOnly,
    /// The Web PKI set of rustls-webpki: every ECDSA pair above plus P-256/P-384 with SHA-512,
    /// RSA PKCS#1 v1.5 (2048 to 8192 bits, SHA-256/384/512), RSA-PSS (certificates only) and
    /// Ed25519. For inspecting foreign chains; the services never accept these.
    WebPki,
}

/// The services' algorithms as rustls-webpki objects (mesh's `TlsPolicy` hands these to rustls).
pub static ECDSA_ONLY: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ECDSA_P521_SHA256,
    webpki::aws_lc_rs::ECDSA_P521_SHA384,
    webpki::aws_lc_rs::ECDSA_P521_SHA512,
];

impl AlgorithmPolicy {
    /// The rustls-webpki algorithms for path validation under this policy.
    pub fn webpki_algorithms(self) -> &'static [&'static dyn SignatureVerificationAlgorithm] {
        match self {
            AlgorithmPolicy::EcdsaOnly => ECDSA_ONLY,
            AlgorithmPolicy::WebPki => webpki::ALL_VERIFICATION_ALGS,
        }
    }

    /// The name used on the command line (`ecdsa`, `webpki`).
    pub fn name(self) -> &'static str {
        match self {
            AlgorithmPolicy::EcdsaOnly => "ecdsa",
            AlgorithmPolicy::WebPki => "webpki",
        }
    }

    /// What the policy accepts, in words.
    pub fn describe(self) -> &'static str {
        match self {
            AlgorithmPolicy::EcdsaOnly => {
                "ECDSA on P-256, P-384 or P-521 with SHA-256/384 (and SHA-512 on P-521)"
            }
            AlgorithmPolicy::WebPki => {
                "ECDSA with SHA-2, RSA PKCS#1 v1.5 with SHA-2 (2048 to 8192 bits) and Ed25519"
            }
        }
    }

    /// True when an end-entity key of this kind may be used under the policy (the services
    /// sign handshakes with ECDSA only, so an RSA or Ed25519 leaf can never complete one).
    pub fn allows_end_entity_key(self, key: &KeyKind) -> bool {
        match self {
            AlgorithmPolicy::EcdsaOnly => matches!(key, KeyKind::Ec(_)),
            AlgorithmPolicy::WebPki => {
                matches!(key, KeyKind::Ec(_) | KeyKind::Rsa { .. } | KeyKind::Ed25519)
            }
        }
    }
}

impl fmt::Display for AlgorithmPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AlgorithmPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa" | "ecdsa-only" => Ok(AlgorithmPolicy::EcdsaOnly),
            "webpki" | "web-pki" => Ok(AlgorithmPolicy::WebPki),
            _ => Err(format!(
                "unknown algorithm policy {s:?} (expected ecdsa or webpki)"
            )),
        }
    }
}

/// Why a signature could not be checked or did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    /// An algorithm this verifier does not implement.
    #[error("signature algorithm {algorithm} is not one this verifier implements")]
    Unsupported {
        /// The signature algorithm, by name.
        algorithm: String,
    },
    /// An algorithm that does not fit the signer's key.
    #[error("signature algorithm {algorithm} does not fit {key}")]
    KeyMismatch {
        /// The signature algorithm, by name.
        algorithm: String,
        /// The signer's key.
        key: KeyKind,
    },
    /// An algorithm the policy does not allow.
    #[error("signature algorithm {algorithm} with {key} is not allowed by the {policy} algorithm policy (it accepts {})", .policy.describe())]
    NotAllowed {
        /// The signature algorithm, by name.
        algorithm: String,
        /// The signer's key.
        key: KeyKind,
        /// The algorithm policy in force.
        policy: AlgorithmPolicy,
    },
    /// The public key does not parse.
    #[error("the public key cannot be parsed")]
    BadKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
}

/// The aws-lc-rs algorithm for ECDSA on `curve` with the hash of `sig_oid`, for every SHA-2
/// pair (the CSR proof-of-possession check accepts all of them); None for anything else.
pub fn ecdsa_algorithm(curve: Curve, sig_oid: &str) -> Option<&'static dyn VerificationAlgorithm> {
    let SignatureKind::Ecdsa(hash) = signature_kind(sig_oid)? else {
        return None;
    };
    Some(ecdsa(curve, hash))
}

fn ecdsa(curve: Curve, hash: Hash) -> &'static dyn VerificationAlgorithm {
    match (curve, hash) {
        (Curve::P256, Hash::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
        (Curve::P256, Hash::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
        (Curve::P256, Hash::Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
        (Curve::P384, Hash::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
        (Curve::P384, Hash::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
        (Curve::P384, Hash::Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
        (Curve::P521, Hash::Sha256) => &sig::ECDSA_P521_SHA256_ASN1,
        (Curve::P521, Hash::Sha384) => &sig::ECDSA_P521_SHA384_ASN1,
        (Curve::P521, Hash::Sha512) => &sig::ECDSA_P521_SHA512_ASN1,
    }
}

/// The ECDSA pairs of [`AlgorithmPolicy::EcdsaOnly`] (the same as [`ECDSA_ONLY`]).
fn ecdsa_only_allows(curve: Curve, hash: Hash) -> bool {
    !matches!(
        (curve, hash),
        (Curve::P256, Hash::Sha512) | (Curve::P384, Hash::Sha512)
    )
}

/// The aws-lc-rs algorithm that checks a signature of algorithm `sig_oid` made by `key`, if the
/// pair fits and `policy` allows it.
pub fn verification_algorithm(
    sig_oid: &str,
    key: &KeyKind,
    policy: AlgorithmPolicy,
) -> Result<&'static dyn VerificationAlgorithm, AlgorithmError> {
    let algorithm = signature_algorithm_name(sig_oid);
    let kind = match signature_kind(sig_oid) {
        Some(SignatureKind::NameOnly) | None => {
            return Err(AlgorithmError::Unsupported { algorithm })
        }
        Some(kind) => kind,
    };
    let mismatch = || AlgorithmError::KeyMismatch {
        algorithm: algorithm.clone(),
        key: key.clone(),
    };
    let not_allowed = || AlgorithmError::NotAllowed {
        algorithm: algorithm.clone(),
        key: key.clone(),
        policy,
    };
    let alg: &'static dyn VerificationAlgorithm = match (kind, key) {
        (SignatureKind::Ecdsa(hash), KeyKind::Ec(curve)) => {
            if policy == AlgorithmPolicy::EcdsaOnly && !ecdsa_only_allows(*curve, hash) {
                return Err(not_allowed());
            }
            ecdsa(*curve, hash)
        }
        (SignatureKind::Ecdsa(_), KeyKind::EcOther(_)) => return Err(not_allowed()),
        (SignatureKind::RsaPkcs1(hash), KeyKind::Rsa { .. }) => {
            if policy == AlgorithmPolicy::EcdsaOnly {
                return Err(not_allowed());
            }
            match hash {
                Hash::Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Hash::Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Hash::Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            }
        }
        (SignatureKind::Ed25519, KeyKind::Ed25519) => {
            if policy == AlgorithmPolicy::EcdsaOnly {
                return Err(not_allowed());
            }
            &sig::ED25519
        }
        _ => return Err(mismatch()),
    };
    Ok(alg)
}

/// Checks `signature` over `message`, made with algorithm `sig_oid` by the key in `spki`,
/// under `policy`.
pub fn verify_signature(
    message: &[u8],
    signature: &[u8],
    sig_oid: &str,
    spki: &SubjectPublicKeyInfo<'_>,
    policy: AlgorithmPolicy,
) -> Result<(), AlgorithmError> {
    let key = KeyKind::of(spki);
    let alg = verification_algorithm(sig_oid, &key, policy)?;
    UnparsedPublicKey::new(alg, spki.subject_public_key.data.as_ref())
        .verify(message, signature)
        .map_err(|_| AlgorithmError::BadSignature)
}

/// [`verify_signature`] with a DER SubjectPublicKeyInfo.
pub fn verify_signature_spki_der(
    message: &[u8],
    signature: &[u8],
    sig_oid: &str,
    spki_der: &[u8],
    policy: AlgorithmPolicy,
) -> Result<(), AlgorithmError> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|_| AlgorithmError::BadKey)?;
    verify_signature(message, signature, sig_oid, &spki, policy)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keys;
    use rcgen::PublicKeyData;

    fn spki_of(key: &rcgen::KeyPair) -> Vec<u8> {
        key.subject_public_key_info()
    }

    #[test]
    fn names_and_kinds_come_from_one_table() {
        assert_eq!(
            signature_algorithm_name(OID_ECDSA_SHA384),
            "ecdsa-with-SHA384"
        );
        assert_eq!(
            signature_algorithm_name("1.2.840.113549.1.1.4"),
            "md5WithRSAEncryption"
        );
        assert_eq!(signature_algorithm_name("1.2.3"), "1.2.3");
        assert_eq!(
            signature_kind(OID_RSA_SHA256),
            Some(SignatureKind::RsaPkcs1(Hash::Sha256))
        );
        assert_eq!(signature_kind(OID_RSA_PSS), Some(SignatureKind::NameOnly));
        assert_eq!(signature_kind("1.2.3"), None);
    }

    #[test]
    fn the_ecdsa_policy_is_the_services_list() {
        // Every pair allowed by `verification_algorithm` under EcdsaOnly has a webpki twin in
        // ECDSA_ONLY, and the other way round: 7 pairs.
        let mut allowed = 0;
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            for oid in [OID_ECDSA_SHA256, OID_ECDSA_SHA384, OID_ECDSA_SHA512] {
                if verification_algorithm(oid, &KeyKind::Ec(curve), AlgorithmPolicy::EcdsaOnly)
                    .is_ok()
                {
                    allowed += 1;
                }
                // The Web PKI policy and the CSR check accept every SHA-2 pair.
                assert!(
                    verification_algorithm(oid, &KeyKind::Ec(curve), AlgorithmPolicy::WebPki)
                        .is_ok()
                );
                assert!(ecdsa_algorithm(curve, oid).is_some());
            }
        }
        assert_eq!(allowed, ECDSA_ONLY.len());
        let err = verification_algorithm(
            OID_ECDSA_SHA512,
            &KeyKind::Ec(Curve::P384),
            AlgorithmPolicy::EcdsaOnly,
        )
        .unwrap_err();
        assert!(matches!(err, AlgorithmError::NotAllowed { .. }), "{err}");
    }

    #[test]
    fn rsa_and_ed25519_only_under_the_web_pki_policy() {
        let rsa = KeyKind::Rsa { bits: 2048 };
        let err =
            verification_algorithm(OID_RSA_SHA256, &rsa, AlgorithmPolicy::EcdsaOnly).unwrap_err();
        assert_eq!(
            err.to_string(),
            "signature algorithm sha256WithRSAEncryption with an RSA 2048-bit key is not allowed \
             by the ecdsa algorithm policy (it accepts ECDSA on P-256, P-384 or P-521 with \
             SHA-256/384 (and SHA-512 on P-521))"
        );
        verification_algorithm(OID_RSA_SHA256, &rsa, AlgorithmPolicy::WebPki).unwrap();
        verification_algorithm(OID_ED25519, &KeyKind::Ed25519, AlgorithmPolicy::WebPki).unwrap();
        assert!(
            verification_algorithm(OID_ED25519, &KeyKind::Ed25519, AlgorithmPolicy::EcdsaOnly)
                .is_err()
        );
        assert!(!AlgorithmPolicy::EcdsaOnly.allows_end_entity_key(&rsa));
        assert!(AlgorithmPolicy::WebPki.allows_end_entity_key(&rsa));
        assert!(AlgorithmPolicy::EcdsaOnly.allows_end_entity_key(&KeyKind::Ec(Curve::P521)));
    }

    #[test]
    fn an_algorithm_must_fit_its_key() {
        // An RSA or Ed25519 algorithm over an EC key is refused before any crypto, under
        // every policy.
        for policy in [AlgorithmPolicy::EcdsaOnly, AlgorithmPolicy::WebPki] {
            for oid in [OID_RSA_SHA256, OID_ED25519] {
                let err =
                    verification_algorithm(oid, &KeyKind::Ec(Curve::P384), policy).unwrap_err();
                assert!(matches!(err, AlgorithmError::KeyMismatch { .. }), "{err}");
            }
        }
        let err = verification_algorithm(
            OID_ECDSA_SHA256,
            &KeyKind::Rsa { bits: 2048 },
            AlgorithmPolicy::WebPki,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "signature algorithm ecdsa-with-SHA256 does not fit an RSA 2048-bit key"
        );
        let err = verification_algorithm(
            OID_RSA_PSS,
            &KeyKind::Rsa { bits: 2048 },
            AlgorithmPolicy::WebPki,
        )
        .unwrap_err();
        assert!(matches!(err, AlgorithmError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn verifies_real_signatures() {
        let key = keys::generate(Curve::P384).unwrap();
        let spki = spki_of(&key);
        assert_eq!(
            KeyKind::of_der(&spki),
            Some(KeyKind::Ec(Curve::P384)),
            "{spki:?}"
        );
        let msg = b"message";
        let pkcs8 = key.serialize_der();
        let signer = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            &pkcs8,
        )
        .unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = signer.sign(&rng, msg).unwrap();
        let ok = verify_signature_spki_der(
            msg,
            signature.as_ref(),
            OID_ECDSA_SHA384,
            &spki,
            AlgorithmPolicy::EcdsaOnly,
        );
        assert_eq!(ok, Ok(()));
        let bad = verify_signature_spki_der(
            b"other",
            signature.as_ref(),
            OID_ECDSA_SHA384,
            &spki,
            AlgorithmPolicy::EcdsaOnly,
        );
        assert_eq!(bad, Err(AlgorithmError::BadSignature));
        assert_eq!(
            verify_signature_spki_der(msg, b"", OID_ECDSA_SHA384, b"junk", AlgorithmPolicy::WebPki),
            Err(AlgorithmError::BadKey)
        );
    }

    #[test]
    fn policy_names_parse() {
        for p in [AlgorithmPolicy::EcdsaOnly, AlgorithmPolicy::WebPki] {
            assert_eq!(p.name().parse::<AlgorithmPolicy>().unwrap(), p);
        }
        assert_eq!(AlgorithmPolicy::default(), AlgorithmPolicy::EcdsaOnly);
        assert!("rsa".parse::<AlgorithmPolicy>().is_err());
    }
}
