//! `POST /api/v1/tokens` (issue 16, item 1): only the `--admin-id` identity gets a join token
//! over mTLS, with exactly the limits of `mtls-ca token`; the token enrolls at /sign once; every
//! refusal leaves the store (and its audit chain) untouched.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::common::*;

const ADMIN: &str = "spiffe://mesh.local/admin";
const WEB: &str = "spiffe://mesh.local/service/web";

async fn post_token(
    http: &reqwest::Client,
    ca: &Ca,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = http
        .post(ca.url("/api/v1/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn the_admin_gets_a_token_that_enrolls_once_with_its_sans() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (admin, _) = enroll(&ca, ADMIN).await;
    let admin_http = client(&ca.root_pem(), Some(&admin));
    let before = ca.audit_head();
    let (status, v) = post_token(
        &admin_http,
        &ca,
        serde_json::json!({"spiffe_id": WEB, "dns": ["web.local"], "ip": ["10.0.0.7"], "ttl": "5m"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap();
    assert!(token.starts_with("mtj_"), "{v}");
    let expires = time::OffsetDateTime::parse(
        v["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(4) && left <= time::Duration::minutes(5),
        "{v}"
    );
    // Audited like `mtls-ca token`: the chain moved, and verifies.
    assert_ne!(ca.audit_head(), before);
    let out = ca.admin(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The token enrolls WEB with exactly its SANs, once.
    let anonymous = client(&ca.root_pem(), None);
    let (_, other) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &["web.local"]);
    let (_, csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &["web.local", "10.0.0.7"]);
    let (status, signed) = sign(&anonymous, &ca, token, &sign_body(&csr, WEB, None)).await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["spiffe_id"], WEB, "{signed}");
    let (status, again) = sign(&anonymous, &ca, token, &sign_body(&other, WEB, None)).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (401, Some("token_used")),
        "{again}"
    );
}

#[tokio::test]
async fn others_are_refused_and_bad_bodies_change_nothing() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (admin, _) = enroll(&ca, ADMIN).await;
    let (web, _) = enroll(&ca, WEB).await;
    let admin_http = client(&ca.root_pem(), Some(&admin));
    let good = serde_json::json!({"spiffe_id": WEB});
    let before = ca.audit_head();

    // No certificate: 401. Another identity: 403 not_admin, naming the admin identity.
    let (status, v) = post_token(&client(&ca.root_pem(), None), &ca, good.clone()).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("client_certificate_required")),
        "{v}"
    );
    let (status, v) = post_token(&client(&ca.root_pem(), Some(&web)), &ca, good.clone()).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("not_admin")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("needs the admin identity {ADMIN}")),
        "{v}"
    );

    // Bodies the admin may not send: the CLI's rules, one validator.
    let refusals = [
        (
            serde_json::json!({"spiffe_id": WEB, "ttl": "8d"}),
            400,
            "too long: the accepted range is 1s to 7d",
        ),
        (
            serde_json::json!({"spiffe_id": WEB, "ttl": "0s"}),
            400,
            "the accepted range is 1s to 7d",
        ),
        (
            serde_json::json!({"spiffe_id": WEB, "ttl": "soon"}),
            400,
            "ttl \"soon\"",
        ),
        (
            serde_json::json!({"spiffe_id": "web"}),
            400,
            "must start with \"spiffe://\"",
        ),
        (
            serde_json::json!({"spiffe_id": "spiffe://other.domain/service/web"}),
            400,
            "not in this CA's trust domain",
        ),
        (
            serde_json::json!({"spiffe_id": "spiffe://mesh.local/ca"}),
            400,
            "reserved for the CA's own API identity",
        ),
        (
            serde_json::json!({"spiffe_id": WEB, "dns": ["a..b"]}),
            400,
            "is not a valid DNS name",
        ),
        (
            serde_json::json!({"spiffe_id": WEB, "ip": ["300.1.1.1"]}),
            400,
            "is not an IP address",
        ),
        (
            serde_json::json!({"spiffe_id": WEB, "admin": true}),
            400,
            "unknown field",
        ),
        (serde_json::json!({"dns": ["web.local"]}), 400, "spiffe_id"),
    ];
    for (body, expected, says) in refusals {
        let (status, v) = post_token(&admin_http, &ca, body.clone()).await;
        assert_eq!(status, expected, "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap_or("").contains(says),
            "{body}: the message lacks {says:?}: {v}"
        );
    }
    // Nothing was stored or audited by any refusal.
    assert_eq!(ca.audit_head(), before);
    // The edge of the range is taken.
    let (status, v) = post_token(
        &admin_http,
        &ca,
        serde_json::json!({"spiffe_id": WEB, "ttl": "7d"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
}
