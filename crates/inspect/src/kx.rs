//! Key exchange groups for `remote`: secp384r1, X25519, secp521r1 and secp256r1, plus the
//! X25519MLKEM768 hybrid. secp521r1 is the shared implementation in `pki::tls_p521` (rustls has
//! none).

use rustls::crypto::aws_lc_rs::kx_group;
use rustls::crypto::SupportedKxGroup;

/// The groups `remote` offers, most preferred first. secp384r1 comes first because it is the
/// mtls-mesh default, so a mesh server answers without a HelloRetryRequest.
pub fn groups() -> Vec<&'static dyn SupportedKxGroup> {
    vec![
        kx_group::SECP384R1,
        kx_group::X25519,
        pki::tls_p521::SECP521R1,
        kx_group::SECP256R1,
        kx_group::X25519MLKEM768,
    ]
}
