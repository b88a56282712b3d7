//! Human names for OIDs, keys, general names and byte strings, spelled as OpenSSL and the RFCs
//! spell them.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::x509::SubjectPublicKeyInfo;

pub use pki::verify::signature_algorithm_name;

/// Extensions `show` knows by name: (OID, short name). Anything else is "unknown".
const EXTENSIONS: &[(&str, &str)] = &[
    ("2.5.29.14", "subjectKeyIdentifier"),
    ("2.5.29.15", "keyUsage"),
    ("2.5.29.17", "subjectAltName"),
    ("2.5.29.18", "issuerAltName"),
    ("2.5.29.19", "basicConstraints"),
    ("2.5.29.20", "cRLNumber"),
    ("2.5.29.21", "cRLReason"),
    ("2.5.29.24", "invalidityDate"),
    ("2.5.29.27", "deltaCRLIndicator"),
    ("2.5.29.28", "issuingDistributionPoint"),
    ("2.5.29.30", "nameConstraints"),
    ("2.5.29.31", "cRLDistributionPoints"),
    ("2.5.29.32", "certificatePolicies"),
    ("2.5.29.33", "policyMappings"),
    ("2.5.29.35", "authorityKeyIdentifier"),
    ("2.5.29.36", "policyConstraints"),
    ("2.5.29.37", "extendedKeyUsage"),
    ("2.5.29.46", "freshestCRL"),
    ("2.5.29.54", "inhibitAnyPolicy"),
    ("1.3.6.1.5.5.7.1.1", "authorityInfoAccess"),
    ("1.3.6.1.5.5.7.1.11", "subjectInfoAccess"),
    ("1.3.6.1.4.1.11129.2.4.2", "signedCertificateTimestampList"),
    ("1.3.6.1.4.1.11129.2.4.3", "ctPrecertificatePoison"),
    ("2.16.840.1.113730.1.1", "nsCertType"),
    ("2.16.840.1.113730.1.13", "nsComment"),
];

/// The short name of a known extension.
pub fn extension_name(oid: &str) -> Option<&'static str> {
    EXTENSIONS.iter().find(|(o, _)| *o == oid).map(|(_, n)| *n)
}

pub const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
pub const OID_RSA: &str = "1.2.840.113549.1.1.1";
pub const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
pub const OID_ED25519: &str = "1.3.101.112";
pub const OID_ED448: &str = "1.3.101.113";

/// The name of a public-key algorithm ("EC", "RSA", "Ed25519", ...), or the dotted OID.
pub fn key_algorithm_name(oid: &str) -> String {
    match oid {
        OID_EC_PUBLIC_KEY => "EC",
        OID_RSA => "RSA",
        OID_RSA_PSS => "RSA-PSS",
        OID_ED25519 => "Ed25519",
        OID_ED448 => "Ed448",
        "1.3.101.110" => "X25519",
        "1.2.840.10040.4.1" => "DSA",
        other => return other.to_string(),
    }
    .to_string()
}

/// Curves beyond the three mtls-mesh uses: (OID, NIST-ish name, OpenSSL name, bits).
const OTHER_CURVES: &[(&str, &str, &str, usize)] = &[
    ("1.3.132.0.10", "secp256k1", "secp256k1", 256),
    (
        "1.3.36.3.3.2.8.1.1.7",
        "brainpoolP256r1",
        "brainpoolP256r1",
        256,
    ),
    (
        "1.3.36.3.3.2.8.1.1.11",
        "brainpoolP384r1",
        "brainpoolP384r1",
        384,
    ),
    (
        "1.3.36.3.3.2.8.1.1.13",
        "brainpoolP512r1",
        "brainpoolP512r1",
        512,
    ),
];

/// A named elliptic curve: display name, OpenSSL name, field size in bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurveName {
    pub name: String,
    pub openssl: String,
    pub bits: usize,
    pub oid: String,
}

/// The curve named by an EC key's parameters.
pub fn curve_of(spki: &SubjectPublicKeyInfo<'_>) -> Option<CurveName> {
    let oid = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())?
        .to_id_string();
    if let Some(c) = pki::Curve::from_oid(&oid) {
        // x509-parser reports 528 bits for a P-521 point; the curve is what matters.
        let bits = match c {
            pki::Curve::P256 => 256,
            pki::Curve::P384 => 384,
            pki::Curve::P521 => 521,
        };
        return Some(CurveName {
            name: c.name().to_string(),
            openssl: c.openssl_name().to_string(),
            bits,
            oid,
        });
    }
    OTHER_CURVES
        .iter()
        .find(|(o, ..)| *o == oid)
        .map(|(_, name, openssl, bits)| CurveName {
            name: name.to_string(),
            openssl: openssl.to_string(),
            bits: *bits,
            oid: oid.clone(),
        })
        .or(Some(CurveName {
            name: oid.clone(),
            openssl: oid.clone(),
            bits: 0,
            oid,
        }))
}

/// Lowercase hex with colons (`4f:1a:...`), the way OpenSSL prints serials.
pub fn colon_lower(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Uppercase hex with colons (`4F:1A:...`), the way OpenSSL prints key identifiers and
/// fingerprints.
pub fn colon_upper(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An IP address SAN (4 or 16 bytes) or a name-constraint network (8 or 32 bytes).
pub fn ip_bytes(b: &[u8]) -> String {
    match b.len() {
        4 | 16 => ip_addr(b).map_or_else(|| colon_lower(b), |ip| ip.to_string()),
        8 | 32 => {
            let (addr, mask) = b.split_at(b.len() / 2);
            match (ip_addr(addr), ip_addr(mask)) {
                (Some(a), Some(m)) => format!("{a}/{m}"),
                _ => colon_lower(b),
            }
        }
        _ => format!("<{} bytes: {}>", b.len(), colon_lower(b)),
    }
}

fn ip_addr(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A general name as OpenSSL prints it: `DNS:x`, `IP Address:1.2.3.4`, `URI:x`, ...
pub fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::IPAddress(b) => format!("IP Address:{}", ip_bytes(b)),
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        GeneralName::DirectoryName(n) => format!("DirName:{n}"),
        GeneralName::RegisteredID(oid) => format!("Registered ID:{}", oid.to_id_string()),
        GeneralName::OtherName(oid, _) => format!("othername:{}", oid.to_id_string()),
        GeneralName::X400Address(_) => "X400Name:<unsupported>".to_string(),
        GeneralName::EDIPartyName(_) => "EdiPartyName:<unsupported>".to_string(),
        GeneralName::Invalid(tag, b) => format!("<invalid name, tag {tag}: {}>", colon_lower(b)),
    }
}

/// A value printed as hex, shortened when long.
pub fn short_hex(bytes: &[u8]) -> String {
    const MAX: usize = 32;
    if bytes.len() <= MAX {
        colon_lower(bytes)
    } else {
        format!("{}... ({} bytes)", colon_lower(&bytes[..MAX]), bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_ip_spellings() {
        assert_eq!(colon_lower(&[0x4f, 0x0a]), "4f:0a");
        assert_eq!(colon_upper(&[0x4f, 0x0a]), "4F:0A");
        assert_eq!(ip_bytes(&[127, 0, 0, 1]), "127.0.0.1");
        assert_eq!(ip_bytes(&[10, 0, 0, 0, 255, 0, 0, 0]), "10.0.0.0/255.0.0.0");
        assert_eq!(ip_bytes(&[1, 2]), "<2 bytes: 01:02>");
        assert!(short_hex(&[0u8; 40]).ends_with("(40 bytes)"));
        assert_eq!(extension_name("2.5.29.15"), Some("keyUsage"));
        assert_eq!(extension_name("1.2.3"), None);
        assert_eq!(key_algorithm_name(OID_RSA), "RSA");
        assert_eq!(key_algorithm_name("1.2.3"), "1.2.3");
    }
}
