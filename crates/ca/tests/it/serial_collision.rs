//! A serial that is already taken is never refused nor stored twice: the authority draws
//! another (an injected serial source that repeats itself), on every store. Join-token
//! issuance finds out from the store's primary key when it records the certificate (no lookup
//! before signing), renewal by a lookup.

use std::sync::{Arc, Mutex};

use mtls_ca::authority::{Authority, SerialSource, SignInput};
use pki::CaMaterial;
use time::Duration;

use crate::harness::{config, csr, full_id, new_key, on_each_store, Harness, START};

/// A serial source handing out `serials` in order, then failing.
fn scripted(serials: Vec<[u8; 20]>) -> SerialSource {
    let queue = Mutex::new(serials.into_iter());
    Arc::new(move || {
        queue
            .lock()
            .unwrap()
            .next()
            .ok_or_else(|| pki::PkiError::Sign("the scripted serials ran out".into()))
    })
}

fn serial(byte: u8) -> [u8; 20] {
    let mut s = [byte; 20];
    s[0] = 0x40;
    s
}

fn authority(h: &Harness, serials: Vec<[u8; 20]>) -> Authority {
    let ca = CaMaterial::generate_root("Collision Test Root", START - Duration::days(1)).unwrap();
    Authority::new(ca, vec![], h.store.clone(), config(), h.clock.clone())
        .with_serial_source(scripted(serials))
}

fn sign(h: &Harness, authority: &Authority, name: &str) -> Result<String, String> {
    let token = h.token(name, Duration::minutes(10));
    let id = full_id(name);
    authority
        .sign(&SignInput {
            token: &token,
            csr_pem: &csr(&new_key()),
            requested_id: &id,
            ttl: None,
        })
        .map(|issued| issued.serial)
        .map_err(|e| e.code.to_string())
}

#[test]
fn a_taken_serial_is_drawn_again_and_the_certificate_issued_under_a_new_one() {
    on_each_store(|h| {
        // The second issuance draws the first one's serial first.
        let a = authority(h, vec![serial(1), serial(1), serial(2)]);
        assert_eq!(sign(h, &a, "first").unwrap(), hex::encode(serial(1)));
        let second = sign(h, &a, "second").unwrap();
        assert_eq!(second, hex::encode(serial(2)), "{}", h.name);
        let stored = h.store.find_cert(&second).unwrap().unwrap();
        assert_eq!(stored.spiffe_id, full_id("second"), "{}", h.name);
        // The first certificate is untouched.
        let first = h.store.find_cert(&hex::encode(serial(1))).unwrap().unwrap();
        assert_eq!(first.spiffe_id, full_id("first"), "{}", h.name);
    });
}

#[test]
fn a_source_that_only_repeats_a_taken_serial_fails_the_issuance_and_stores_nothing() {
    on_each_store(|h| {
        let a = authority(h, vec![serial(7); 4]);
        sign(h, &a, "one").unwrap();
        // Three draws, all taken: refused (500), the token left unused.
        let token = h.token("two", Duration::minutes(10));
        let id = full_id("two");
        let csr_pem = csr(&new_key());
        let input = SignInput {
            token: &token,
            csr_pem: &csr_pem,
            requested_id: &id,
            ttl: None,
        };
        let e = a.sign(&input).unwrap_err();
        assert_eq!(e.code, "internal", "{}: {e}", h.name);
        assert_eq!(h.cert_count(), 1, "{}", h.name);
        let b = authority(h, vec![serial(8)]);
        b.sign(&input).unwrap();
    });
}

#[test]
fn only_a_taken_certificate_serial_counts_as_a_serial_collision() {
    on_each_store(|h| {
        let a = authority(h, vec![serial(3)]);
        sign(h, &a, "holder").unwrap();
        let stored = h.store.find_cert(&hex::encode(serial(3))).unwrap().unwrap();
        // Recording another certificate under a stored serial: refused by the primary key, and
        // recognised, so the issuance signs again (`Authority::sign`).
        let token = h.token("other", Duration::minutes(10));
        let refused = h
            .store
            .redeem_token(&mtls_ca::tokens::hash(&token), START, &stored)
            .unwrap_err();
        assert!(refused.is_taken_serial(), "{}: {refused:?}", h.name);
        // Any other refusal is not, e.g. a token stored twice.
        let record = h
            .store
            .find_token(&mtls_ca::tokens::hash(&token))
            .unwrap()
            .unwrap();
        assert_eq!(
            record.used_at, None,
            "{}: the refused redemption was kept",
            h.name
        );
        let twice = h.store.insert_token(&record).unwrap_err();
        assert!(!twice.is_taken_serial(), "{}: {twice:?}", h.name);
    });
}
