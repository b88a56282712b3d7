//! The client key (docs/design.md §2): hex SHA-256 over the DER of
//! `IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER }` (RFC 5652 §10.2.4),
//! built from the certificate's own issuer and serial bytes, so anyone can recompute it with
//! OpenSSL (see docs/security.md).

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{PkiError, Result};

/// Computes the client key of a DER certificate.
pub fn client_key(cert_der: &[u8]) -> Result<String> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| PkiError::Certificate(format!("cannot parse certificate: {e}")))?;
    Ok(client_key_of(&cert))
}

/// Client key of an already parsed certificate.
pub fn client_key_of(cert: &X509Certificate<'_>) -> String {
    let issuer = cert.tbs_certificate.issuer.as_raw();
    let serial = cert.tbs_certificate.raw_serial();
    let mut integer = vec![0x02];
    push_der_len(&mut integer, serial.len());
    integer.extend_from_slice(serial);
    let mut seq = vec![0x30];
    push_der_len(&mut seq, issuer.len() + integer.len());
    seq.extend_from_slice(issuer);
    seq.extend_from_slice(&integer);
    crate::sha256_hex(&seq)
}

/// DER definite length: short form below 128, long form otherwise.
fn push_der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        let mut v = Vec::new();
        push_der_len(&mut v, 5);
        push_der_len(&mut v, 200);
        push_der_len(&mut v, 300);
        assert_eq!(v, vec![5, 0x81, 200, 0x82, 1, 44]);
    }
}
