//! The Workload API's X.509 messages carry certificate chains and bundles as concatenated DER
//! (no length prefix besides each certificate's own): split them back into certificates.

/// Splits concatenated DER certificates; none at all, or bytes that do not parse, are refused.
pub fn split_der_certificates(mut der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    while !der.is_empty() {
        let (rest, _) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("certificate {} does not parse: {e}", certs.len() + 1))?;
        certs.push(der[..der.len() - rest.len()].to_vec());
        der = rest;
    }
    if certs.is_empty() {
        return Err("no certificate".into());
    }
    Ok(certs)
}
