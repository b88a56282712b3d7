//! Pure PKI building blocks for mtls-mesh: keys, CSRs, SPIFFE IDs, the issuance policy, the
//! client key, certificate facts, renewal maths, and the one validator of the project: path
//! validation (`verify`), the X509-SVID rule set (`svid`), the strict CRL path (`crl`), the
//! signature algorithm table and policy (`sigalg`) and the RFC 5280 profile checks (`rfc5280`).
//! No async, no network.

#![warn(missing_docs)]

pub mod ca_key;
pub mod certinfo;
pub mod client_key;
pub mod clock;
pub mod crl;
pub mod csr;
/// The ECDSA curves mtls-mesh issues and accepts.
pub mod curve;
pub mod duration;
/// [`PkiError`], the errors of the key, CSR and issuance operations.
pub mod error;
pub mod files;
pub mod intermediate;
pub mod jwt_svid;
pub mod keys;
pub mod ocsp;
pub mod pem;
pub mod policy;
pub mod renewal;
pub mod rfc5280;
pub mod root;
pub mod sealed_key;
pub mod selector;
pub mod serial;
pub mod sigalg;
pub mod spiffe;
pub mod spiffe_bundle;
pub mod svid;
#[cfg(test)]
mod test_der;
pub mod timefmt;
pub mod tls_p521;
pub mod verify;
pub mod vouch;

pub use ca_key::CaKey;
pub use certinfo::CertInfo;
pub use client_key::client_key;
pub use csr::VerifiedCsr;
pub use curve::Curve;
pub use error::PkiError;
pub use policy::{IssuancePolicy, LeafRequest};
pub use root::CaMaterial;
pub use spiffe::{SpiffeId, TrustDomain};
pub use svid::SvidRules;

/// Hex SHA-256 over arbitrary bytes (certificate fingerprints, token hashes).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}
