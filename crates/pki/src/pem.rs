//! PEM and DER input/output for certificates, CSRs and CRLs.

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::CertificateDer;

use crate::error::{PkiError, Result};

/// Encodes DER as PEM with the given label ("CERTIFICATE", "X509 CRL", ...).
pub fn encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// True when the bytes look like PEM text rather than DER.
pub fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .take(4096)
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|start| bytes[start..].starts_with(b"-----BEGIN "))
}

/// Reads every certificate from PEM text (any number of CERTIFICATE blocks) or from one DER
/// certificate. Fails when none is found, naming what was found instead.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    if !looks_like_pem(bytes) {
        if bytes.first() == Some(&0x30) {
            return Ok(vec![CertificateDer::from(bytes.to_vec())]);
        }
        return Err(PkiError::Pem(
            "input is neither PEM (no -----BEGIN line) nor DER (does not start with a SEQUENCE)"
                .into(),
        ));
    }
    let mut certs = Vec::new();
    let mut other = Vec::new();
    for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
        let (kind, der) = item.map_err(|e| PkiError::Pem(e.to_string()))?;
        match kind {
            SectionKind::Certificate => certs.push(CertificateDer::from(der)),
            other_kind => other.push(format!("{other_kind:?}")),
        }
    }
    if certs.is_empty() {
        return Err(PkiError::PemMissing {
            expected: "CERTIFICATE block",
            found: if other.is_empty() {
                "nothing".into()
            } else {
                other.join(", ")
            },
        });
    }
    Ok(certs)
}

/// Reads exactly one PEM block with `label`, or raw DER.
pub fn parse_single(bytes: &[u8], label: &'static str) -> Result<Vec<u8>> {
    if !looks_like_pem(bytes) {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| PkiError::Pem("PEM input is not UTF-8 text".into()))?;
    let blocks = pem::parse_many(text).map_err(|e| PkiError::Pem(e.to_string()))?;
    let mut found = Vec::new();
    for block in blocks {
        if block.tag() == label {
            return Ok(block.into_contents());
        }
        found.push(block.tag().to_string());
    }
    Err(PkiError::PemMissing {
        expected: label,
        found: if found.is_empty() {
            "nothing".into()
        } else {
            found.join(", ")
        },
    })
}

/// Reads PEM text that must hold certificates only (comment lines between the blocks are
/// fine): a block of any other kind, a private key above all, is refused, naming its label.
/// For files that are meant to be public, such as the root-rotation ceremony's output.
pub fn parse_only_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| PkiError::Pem("PEM input is not UTF-8 text".into()))?;
    let blocks = pem::parse_many(text).map_err(|e| PkiError::Pem(e.to_string()))?;
    let mut certs = Vec::new();
    for block in blocks {
        if block.tag() != "CERTIFICATE" {
            return Err(PkiError::Pem(format!(
                "a {} block where only certificates belong (a public file never holds a key)",
                block.tag()
            )));
        }
        certs.push(CertificateDer::from(block.into_contents()));
    }
    if certs.is_empty() {
        return Err(PkiError::PemMissing {
            expected: "CERTIFICATE block",
            found: "nothing".into(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_and_empty() {
        assert!(parse_certificates(b"").is_err());
        assert!(parse_certificates(b"hello world").is_err());
        let err =
            parse_certificates(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .unwrap_err();
        assert!(err.to_string().contains("CERTIFICATE"), "{err}");
    }

    #[test]
    fn only_certificates_refuses_a_key_among_them() {
        let cert = encode("CERTIFICATE", b"\x30\x00");
        let key = encode("PRIVATE KEY", b"\x30\x00");
        let text = format!("# a comment\n{cert}# another\n{cert}");
        assert_eq!(parse_only_certificates(text.as_bytes()).unwrap().len(), 2);
        let err = parse_only_certificates(format!("{cert}{key}").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
        assert!(parse_only_certificates(b"nothing here").is_err());
    }

    #[test]
    fn truncated_pem_is_an_error() {
        let err = parse_certificates(b"-----BEGIN CERTIFICATE-----\nMIIB").unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}
