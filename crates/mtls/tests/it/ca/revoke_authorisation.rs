//! A refused revocation reveals nothing: the caller's authority is checked before the serial
//! is looked up, so to a non-admin an unknown serial and someone else's serial look the same.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::common::*;

const ADMIN: &str = "spiffe://mesh.local/admin";

async fn revoke(http: &reqwest::Client, ca: &Ca, serial: &str) -> (u16, serde_json::Value) {
    let resp = http
        .post(ca.url("/api/v1/revoke"))
        .json(&serde_json::json!({ "serial": serial }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_non_admin_cannot_tell_unknown_serials_from_foreign_ones() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (alice, _) = enroll(&ca, "spiffe://mesh.local/service/alice").await;
    let (_, bob) = enroll(&ca, "spiffe://mesh.local/service/bob").await;
    let (_, bob_old) = enroll(&ca, "spiffe://mesh.local/service/bob").await;
    let (admin, _) = enroll(&ca, ADMIN).await;
    let alice_http = client(&ca.root_pem(), Some(&alice));
    let admin_http = client(&ca.root_pem(), Some(&admin));
    let bob_serial = bob["serial"].as_str().unwrap();
    let unknown = "0123456789abcdef0123456789abcdef01234567";

    let (s_foreign, foreign) = revoke(&alice_http, &ca, bob_serial).await;
    let (s_unknown, unknown_v) = revoke(&alice_http, &ca, unknown).await;
    assert_eq!((s_foreign, s_unknown), (403, 403), "{foreign} {unknown_v}");
    assert_eq!(foreign["error"]["code"], "not_allowed");
    assert_eq!(unknown_v["error"]["code"], "not_allowed");
    // The same words, only the serial differs.
    let strip = |v: &serde_json::Value, serial: &str| {
        v["error"]["message"]
            .as_str()
            .unwrap()
            .replace(serial, "SERIAL")
    };
    assert_eq!(strip(&foreign, bob_serial), strip(&unknown_v, unknown));
    let msg = strip(&foreign, bob_serial);
    assert!(
        msg.contains("may revoke only certificates of its own identity")
            && !msg.contains("bob")
            && !msg.contains("no certificate"),
        "{msg}"
    );

    // An already revoked foreign certificate is not revealed either (no 409).
    let old_serial = bob_old["serial"].as_str().unwrap();
    let (s, _) = revoke(&admin_http, &ca, old_serial).await;
    assert_eq!(s, 200);
    let (s, v) = revoke(&alice_http, &ca, old_serial).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("not_allowed")),
        "{v}"
    );

    // The admin may know: unknown is 404, revoked is 409.
    let (s, v) = revoke(&admin_http, &ca, unknown).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("unknown_serial")),
        "{v}"
    );
    let (s, v) = revoke(&admin_http, &ca, old_serial).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("already_revoked")),
        "{v}"
    );

    // Nothing was revoked by the refusals.
    let certs = certs_by_serial(&ca);
    assert_eq!(certs[bob_serial]["status"], "valid");
}
