//! Key exchange groups for `remote`: secp384r1, X25519, secp521r1 and secp256r1, plus the
//! X25519MLKEM768 hybrid. rustls has no secp521r1, so it is implemented here on aws-lc-rs
//! (see PITFALLS.md: only 133-byte uncompressed points are accepted, as TLS 1.3 requires).

use aws_lc_rs::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P521};
use aws_lc_rs::rand::SystemRandom;
use rustls::crypto::aws_lc_rs::kx_group;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{Error, NamedGroup, PeerMisbehaved};

/// Length of an uncompressed P-521 point: 0x04 || X (66 bytes) || Y (66 bytes).
const P521_POINT_LEN: usize = 133;

/// ECDHE on secp521r1.
#[derive(Debug)]
pub struct Secp521r1;

pub static SECP521R1: &dyn SupportedKxGroup = &Secp521r1;

/// The groups `remote` offers, most preferred first. secp384r1 comes first because it is the
/// mtls-mesh default, so a mesh server answers without a HelloRetryRequest.
pub fn groups() -> Vec<&'static dyn SupportedKxGroup> {
    vec![
        kx_group::SECP384R1,
        kx_group::X25519,
        SECP521R1,
        kx_group::SECP256R1,
        kx_group::X25519MLKEM768,
    ]
}

impl SupportedKxGroup for Secp521r1 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let rng = SystemRandom::new();
        let key = EphemeralPrivateKey::generate(&ECDH_P521, &rng)
            .map_err(|_| Error::General("generating a P-521 key share failed".into()))?;
        let public = key
            .compute_public_key()
            .map_err(|_| Error::General("computing a P-521 public key failed".into()))?
            .as_ref()
            .to_vec();
        Ok(Box::new(ActiveP521 { key, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp521r1
    }
}

struct ActiveP521 {
    key: EphemeralPrivateKey,
    public: Vec<u8>,
}

impl ActiveKeyExchange for ActiveP521 {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        if peer.len() != P521_POINT_LEN || peer.first() != Some(&0x04) {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        agreement::agree_ephemeral(
            self.key,
            UnparsedPublicKey::new(&ECDH_P521, peer),
            Error::from(PeerMisbehaved::InvalidKeyShare),
            |secret| Ok(SharedSecret::from(secret)),
        )
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp521r1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p521_agreement_matches_and_rejects_bad_shares() {
        let a = SECP521R1.start().expect("start a");
        let b = SECP521R1.start().expect("start b");
        assert_eq!(a.pub_key().len(), P521_POINT_LEN);
        let b_pub = b.pub_key().to_vec();
        let a_pub = a.pub_key().to_vec();
        let s1 = a.complete(&b_pub).expect("complete a");
        let s2 = b.complete(&a_pub).expect("complete b");
        assert_eq!(s1.secret_bytes(), s2.secret_bytes());
        let c = SECP521R1.start().expect("start c");
        assert!(
            c.complete(&a_pub[..67]).is_err(),
            "compressed-size share must be refused"
        );
    }
}
