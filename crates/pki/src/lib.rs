//! Pure PKI building blocks for mtls-mesh: keys, CSRs, SPIFFE IDs, the issuance policy, the
//! client key, certificate facts and renewal maths. No async, no network.

pub mod certinfo;
pub mod client_key;
pub mod crl;
pub mod csr;
pub mod curve;
pub mod error;
pub mod files;
pub mod keys;
pub mod pem;
pub mod policy;
pub mod renewal;
pub mod root;
pub mod serial;
pub mod spiffe;
pub mod tls_p521;
pub mod verify;
pub mod vouch;

pub use certinfo::CertInfo;
pub use client_key::client_key;
pub use csr::VerifiedCsr;
pub use curve::Curve;
pub use error::PkiError;
pub use policy::{IssuancePolicy, LeafRequest};
pub use root::CaMaterial;
pub use spiffe::{SpiffeId, TrustDomain};

/// Hex SHA-256 over arbitrary bytes (certificate fingerprints, token hashes).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}
