//! secp521r1 (P-521) ECDHE for rustls, which ships no such group (docs/design.md, "Crate traps").
//!
//! Built on aws-lc-rs `agreement::ECDH_P521`. TLS 1.3 allows only the uncompressed point form
//! (RFC 8446 §4.2.8.2), while aws-lc-rs also accepts compressed points, so any key share that is
//! not exactly 133 bytes starting with 0x04 is refused before it reaches aws-lc-rs.

use std::fmt;

use aws_lc_rs::agreement;
use aws_lc_rs::rand::SystemRandom;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{Error, NamedGroup, PeerMisbehaved};

/// Length of an uncompressed P-521 point: 0x04 || X (66 bytes) || Y (66 bytes).
pub const P521_POINT_LEN: usize = 133;

/// The secp521r1 key exchange group.
pub static SECP521R1: &dyn SupportedKxGroup = &P521Group;

struct P521Group;

impl fmt::Debug for P521Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("secp521r1")
    }
}

impl SupportedKxGroup for P521Group {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let rng = SystemRandom::new();
        let priv_key = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P521, &rng)
            .map_err(|_| Error::General("P-521 key generation failed".into()))?;
        let pub_key = priv_key
            .compute_public_key()
            .map_err(|_| Error::General("P-521 public key computation failed".into()))?;
        Ok(Box::new(P521Exchange {
            priv_key,
            pub_key: pub_key.as_ref().to_vec(),
        }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp521r1
    }
}

struct P521Exchange {
    priv_key: agreement::EphemeralPrivateKey,
    pub_key: Vec<u8>,
}

/// True for the only encoding TLS 1.3 permits: an uncompressed point of the right length.
pub fn is_uncompressed_p521_point(share: &[u8]) -> bool {
    share.len() == P521_POINT_LEN && share[0] == 0x04
}

impl ActiveKeyExchange for P521Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        if !is_uncompressed_p521_point(peer) {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer_key = agreement::UnparsedPublicKey::new(&agreement::ECDH_P521, peer);
        agreement::agree_ephemeral(self.priv_key, peer_key, (), |secret| {
            Ok(SharedSecret::from(secret))
        })
        .map_err(|()| PeerMisbehaved::InvalidKeyShare.into())
    }

    fn pub_key(&self) -> &[u8] {
        &self.pub_key
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp521r1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sides_agree_and_shares_are_uncompressed() {
        let a = SECP521R1.start().unwrap();
        let b = SECP521R1.start().unwrap();
        assert_eq!(a.pub_key().len(), P521_POINT_LEN);
        assert_eq!(a.pub_key()[0], 0x04);
        let a_pub = a.pub_key().to_vec();
        let b_pub = b.pub_key().to_vec();
        let s1 = a.complete(&b_pub).unwrap();
        let s2 = b.complete(&a_pub).unwrap();
        assert_eq!(s1.secret_bytes(), s2.secret_bytes());
        assert_eq!(s1.secret_bytes().len(), 66);
    }

    #[test]
    fn refuses_compressed_truncated_and_garbage_shares() {
        let peer = SECP521R1.start().unwrap();
        let point = peer.pub_key().to_vec();
        // Compressed form: 0x02/0x03 || X, 67 bytes. aws-lc-rs would accept it; we must not.
        let mut compressed = vec![0x02 | (point[132] & 1)];
        compressed.extend_from_slice(&point[1..67]);
        for bad in [
            compressed,
            point[..132].to_vec(),
            vec![0x04; 133],
            Vec::new(),
            {
                let mut p = point.clone();
                p[0] = 0x06;
                p
            },
        ] {
            let ours = SECP521R1.start().unwrap();
            let err = ours.complete(&bad).err().expect("bad share accepted");
            assert!(
                matches!(err, Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare)),
                "{err:?}"
            );
        }
    }
}
