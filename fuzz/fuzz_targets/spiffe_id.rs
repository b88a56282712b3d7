//! SPIFFE ID parsing: `pki::SpiffeId::parse` and `pki::TrustDomain::parse` on any text, and the
//! serde path the CA's JSON and the services' configuration use. An ID that parses is
//! canonical: it prints back byte for byte, survives JSON, and its parts parse on their own.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::spiffe::{MAX_ID_LEN, MAX_TRUST_DOMAIN_LEN};
use pki::{SpiffeId, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let via_json = serde_json::from_value::<SpiffeId>(serde_json::Value::String(text.into()));
    match SpiffeId::parse(text) {
        Ok(id) => {
            assert_eq!(
                id.to_string(),
                text,
                "an accepted ID is printed differently"
            );
            assert!(text.len() <= MAX_ID_LEN);
            assert!(id.path().starts_with('/') && id.path().len() > 1);
            let td = id.trust_domain();
            assert!(td.as_str().len() <= MAX_TRUST_DOMAIN_LEN);
            assert_eq!(TrustDomain::parse(td.as_str()).ok().as_ref(), Some(td));
            assert!(id.matches_pattern(text));
            let reserved = id.path() == "/ca" || id.path().starts_with("/ca/");
            assert_eq!(id.is_reserved_for_ca(), reserved);
            assert_eq!(
                via_json.ok().as_ref(),
                Some(&id),
                "serde disagrees with parse"
            );
            let json = serde_json::to_string(&id).unwrap_or_else(|e| panic!("{e}"));
            let back: SpiffeId = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, id);
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(
                via_json.is_err(),
                "serde accepted what parse refuses: {text:?}"
            );
        }
    }
    if let Ok(td) = TrustDomain::parse(text) {
        assert_eq!(td.as_str(), text);
        let id = format!("{}/workload", td.id_string());
        assert!(
            SpiffeId::parse(&id).is_ok(),
            "{id:?} refused for a valid trust domain"
        );
        assert!(td.ca_id().is_reserved_for_ca());
    }
});
