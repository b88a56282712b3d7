//! Request bodies of the CA's API (docs/ca-api.md): sign, renew and revoke bodies that pass,
//! and one for each refusal that needs no store (JSON shape, unknown or duplicate fields,
//! SPIFFE ID, reserved identity, trust domain, TTL, CSR, CA request, serial, reason).

use serde_json::{json, Value};

use crate::csrs::Csrs;
use crate::out::Corpus;

const ID: &str = "spiffe://mesh.local/service/api";

pub fn write(corpus: &Corpus, csrs: &Csrs) {
    let json = |name: &str, v: Value| corpus.write(&format!("{name}.json"), v.to_string());
    for (name, csr) in &csrs.good {
        json(
            &format!("sign-{name}"),
            json!({"csr": csr, "requested_id": ID}),
        );
    }
    let (_, csr) = &csrs.good[1];
    for (name, ttl) in [
        ("ttl-90s", "90s"),
        ("ttl-1h30m", "1h 30m"),
        ("ttl-capped-48h", "48h"),
        ("ttl-blank", " "),
        ("refused-ttl-0s", "0s"),
        ("refused-ttl-999ms", "999ms"),
        ("refused-ttl-words", "soon"),
        ("refused-ttl-negative", "-1h"),
        ("refused-ttl-overflow", "584542046091y"),
    ] {
        json(
            &format!("sign-{name}"),
            json!({"csr": csr, "requested_id": ID, "ttl": ttl}),
        );
    }
    json(
        "sign-ttl-null",
        json!({"csr": csr, "requested_id": ID, "ttl": null}),
    );
    json("renew", json!({"csr": csr, "ttl": "2h"}));
    json("renew-no-ttl", json!({"csr": csrs.good[4].1}));
    json(
        "refused-sign-ca-true",
        json!({"csr": csrs.ca, "requested_id": ID}),
    );
    json("refused-renew-ca-true", json!({"csr": csrs.ca}));
    json(
        "refused-sign-bad-csr",
        json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "requested_id": ID}),
    );
    for (name, id) in [
        ("reserved", "spiffe://mesh.local/ca"),
        ("below-reserved", "spiffe://mesh.local/ca/x"),
        ("other-trust-domain", "spiffe://other.local/service/api"),
        ("bad-id", "spiffe://mesh.local/a/../b"),
    ] {
        json(
            &format!("refused-sign-{name}"),
            json!({"csr": csr, "requested_id": id}),
        );
    }
    json(
        "refused-unknown-field",
        json!({"csr": csr, "requested_id": ID, "is_ca": true}),
    );
    json(
        "refused-wrong-type",
        json!({"csr": 7, "requested_id": [ID]}),
    );
    json("refused-array", json!([csr, ID]));
    corpus.write(
        "refused-duplicate-field.json",
        format!(r#"{{"requested_id":"{ID}","requested_id":"spiffe://mesh.local/ca","csr":""}}"#),
    );
    corpus.write("refused-truncated.json", r#"{"csr": "-----BEGIN"#);
    corpus.write(
        "refused-escapes.json",
        r#"{"serial":"4f\u0000","reason":"\ud800"}"#,
    );

    for (name, serial, reason) in [
        ("colons", "4F:1A:00", Some("keyCompromise")),
        ("0x", "0x00ff", Some("SUPERSEDED")),
        ("long", "40f3a9c2d1e0b7a6958473625140fedcba987654", None),
        ("affiliation", "0a", Some("affiliationChanged")),
        ("hold", "0b", Some("certificateHold")),
        ("withdrawn", "0c", Some("privilegeWithdrawn")),
        ("refused-serial", "xyz", None),
        ("refused-empty-serial", "", None),
        ("refused-reason", "4f", Some("removeFromCRL")),
    ] {
        json(
            &format!("revoke-{name}"),
            json!({"serial": serial, "reason": reason}),
        );
    }
}
