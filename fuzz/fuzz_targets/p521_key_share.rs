//! The P-521 key exchange (`pki::tls_p521::SECP521R1`): arbitrary peer key shares through the
//! client's path (`start` then `complete`) and the server's (`start_and_complete`). A share is
//! accepted only as an uncompressed point of 133 bytes, both paths agree on every share, and a
//! refusal is always rustls' InvalidKeyShare (a TLS alert, never a panic).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::tls_p521::{is_uncompressed_p521_point, SECP521R1};
use rustls::{Error, PeerMisbehaved};

fn refused_as_invalid_share(e: &Error) -> bool {
    matches!(e, Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare))
}

fuzz_target!(|share: &[u8]| {
    let ours = SECP521R1
        .start()
        .unwrap_or_else(|e| panic!("key generation failed: {e}"));
    assert!(is_uncompressed_p521_point(ours.pub_key()));
    let client = ours.complete(share);
    let server = SECP521R1.start_and_complete(share);
    match (&client, &server) {
        (Ok(secret), Ok(completed)) => {
            assert!(
                is_uncompressed_p521_point(share),
                "accepted a share of {} bytes",
                share.len()
            );
            assert_eq!(secret.secret_bytes().len(), 66);
            assert_eq!(completed.secret.secret_bytes().len(), 66);
            assert!(is_uncompressed_p521_point(&completed.pub_key));
        }
        (Err(a), Err(b)) => {
            assert!(refused_as_invalid_share(a), "{a:?}");
            assert!(refused_as_invalid_share(b), "{b:?}");
        }
        (a, b) => panic!(
            "client and server paths disagree on a share: {:?} vs {:?}",
            a.as_ref().err(),
            b.as_ref().err()
        ),
    }
});
