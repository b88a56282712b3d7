//! `GET /api/v1/tokens`, `DELETE /api/v1/tokens/ID`, `mtls-ca token list` and
//! `mtls-ca token revoke ID` (issue 16, item 1) on a running CA: the admin sees every token by
//! ID (never the token), revokes an unused one, and /sign then refuses it with `token_revoked`;
//! others get 401/403, an unknown ID 404, a used token 409, and no refusal changes the store.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::common::*;

const ADMIN: &str = "spiffe://mesh.local/admin";
const WEB: &str = "spiffe://mesh.local/service/web";

fn id_of(token: &str) -> String {
    mtls_ca::tokens::id(&mtls_ca::tokens::hash(token)).to_string()
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
) -> (u16, serde_json::Value) {
    let resp = http.request(method, url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn cli_tokens(ca: &Ca) -> serde_json::Value {
    let out = ca.admin(&["token", "list", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_admin_lists_and_revokes_and_sign_refuses_the_revoked_token() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (admin, _) = enroll(&ca, ADMIN).await;
    let admin_http = client(&ca.root_pem(), Some(&admin));
    let token = ca.token(WEB, &["--dns", "web.local", "--ip", "10.0.0.7"]);
    let id = id_of(&token);

    let (status, listed) = call(&admin_http, reqwest::Method::GET, ca.url("/api/v1/tokens")).await;
    assert_eq!(status, 200, "{listed}");
    let text = listed.to_string();
    assert!(!text.contains(&token), "the token itself is listed: {text}");
    assert!(
        !text.contains(&mtls_ca::tokens::hash(&token)),
        "the whole hash is listed: {text}"
    );
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "the admin's (used) and web's: {listed}");
    let web = tokens.iter().find(|t| t["id"] == id.as_str()).unwrap();
    assert_eq!(web["spiffe_id"], WEB);
    assert_eq!(web["dns"], serde_json::json!(["web.local"]));
    assert_eq!(web["ips"], serde_json::json!(["10.0.0.7"]));
    assert_eq!(web["status"], "unused");
    assert!(
        web["used_at"].is_null() && web["revoked_at"].is_null(),
        "{web}"
    );
    assert!(web["expires_at"].as_str().unwrap().ends_with('Z'), "{web}");
    let admin_row = tokens.iter().find(|t| t["spiffe_id"] == ADMIN).unwrap();
    assert_eq!(admin_row["status"], "used", "{admin_row}");
    // The CLI shows the same view.
    assert_eq!(cli_tokens(&ca)["tokens"].as_array().unwrap().len(), 2);
    assert_eq!(
        cli_tokens(&ca)["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id.as_str())
            .unwrap()["status"],
        "unused"
    );

    let before = ca.audit_head();
    let url = ca.url(&format!("/api/v1/tokens/{id}"));
    let (status, revoked) = call(&admin_http, reqwest::Method::DELETE, url).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(
        (revoked["id"].as_str(), revoked["status"].as_str()),
        (Some(id.as_str()), Some("revoked"))
    );
    assert_ne!(ca.audit_head(), before, "the revocation is audited");
    let out = ca.admin(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // /sign refuses it with a code of its own; nothing is issued or audited.
    let certs = ca.cert_count();
    let head = ca.audit_head();
    let (_, csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &["web.local", "10.0.0.7"]);
    let (status, v) = sign(
        &client(&ca.root_pem(), None),
        &ca,
        &token,
        &sign_body(&csr, WEB, None),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("token_revoked")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked by the operator"),
        "{v}"
    );
    assert_eq!(ca.cert_count(), certs);
    assert_eq!(ca.audit_head(), head);
}

#[tokio::test]
async fn refusals_over_the_api_change_nothing() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (admin, _) = enroll(&ca, ADMIN).await;
    let (web, _) = enroll(&ca, WEB).await;
    let admin_http = client(&ca.root_pem(), Some(&admin));
    let web_http = client(&ca.root_pem(), Some(&web));
    let anonymous = client(&ca.root_pem(), None);
    let unused = ca.token(WEB, &[]);
    let unused_url = ca.url(&format!("/api/v1/tokens/{}", id_of(&unused)));
    let used_id = cli_tokens(&ca)["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["spiffe_id"] == WEB && t["status"] == "used")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = ca.audit_head();

    use reqwest::Method;
    let cases = [
        (
            &anonymous,
            Method::GET,
            ca.url("/api/v1/tokens"),
            401,
            "client_certificate_required",
        ),
        (
            &web_http,
            Method::GET,
            ca.url("/api/v1/tokens"),
            403,
            "not_admin",
        ),
        (
            &anonymous,
            Method::DELETE,
            unused_url.clone(),
            401,
            "client_certificate_required",
        ),
        (
            &web_http,
            Method::DELETE,
            unused_url.clone(),
            403,
            "not_admin",
        ),
        (
            &admin_http,
            Method::DELETE,
            ca.url("/api/v1/tokens/000000000000"),
            404,
            "token_not_found",
        ),
        (
            &admin_http,
            Method::DELETE,
            ca.url("/api/v1/tokens/not-an-id"),
            400,
            "bad_token_id",
        ),
        (
            &admin_http,
            Method::DELETE,
            ca.url(&format!("/api/v1/tokens/{used_id}")),
            409,
            "token_used",
        ),
    ];
    for (http, method, url, expected, code) in cases {
        let (status, v) = call(http, method.clone(), url.clone()).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (expected, Some(code)),
            "{method} {url}: {v}"
        );
    }
    assert_eq!(ca.audit_head(), before, "a refusal changed the store");
    // The unused token is still good: it enrolls.
    let (_, csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, v) = sign(&anonymous, &ca, &unused, &sign_body(&csr, WEB, None)).await;
    assert_eq!(status, 200, "{v}");
}

#[test]
fn the_cli_lists_and_revokes_once() {
    let ca = Ca::start(&[]);
    let token = ca.token(WEB, &["--dns", "web.local"]);
    let id = id_of(&token);
    let out = ca.admin(&["token", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listing.starts_with("ID "), "{listing}");
    let row = listing
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(
        row.contains("unused") && row.contains(WEB) && row.contains("web.local"),
        "{row}"
    );
    assert!(!listing.contains(&token), "{listing}");

    let out = ca.admin(&["token", "revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);
    let out = ca.admin(&["token", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("revoked")),
        "{listing}"
    );

    let head = ca.audit_head();
    for (args, says) in [
        (vec!["token", "revoke", id.as_str()], "already revoked"),
        (
            vec!["token", "revoke", "000000000000"],
            "no join token's ID starts with 000000000000",
        ),
        (vec!["token", "revoke", "web"], "is not a token ID"),
    ] {
        let out = ca.admin(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(ca.audit_head(), head);
    let out = ca.admin(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Creating a token still needs --spiffe-id.
    let out = ca.admin(&["token"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--spiffe-id"));
}

/// A database of schema version 1 (before `tokens.revoked_at`) is migrated at the next start:
/// its tokens are listed unrevoked, the one left unused can be revoked, and the audit chain
/// written before the migration still verifies.
#[test]
fn a_version_1_database_is_migrated_and_its_tokens_stay_unrevoked() {
    let ca = Ca::start(&[]);
    let token = ca.token(WEB, &[]);
    let dir = ca.stop();
    let conn = rusqlite::Connection::open(dir.join("ca.db")).unwrap();
    conn.execute_batch(
        "ALTER TABLE tokens DROP COLUMN revoked_at;
         UPDATE meta SET value = '1' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let out = admin_in(&dir, &["migrate"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "schema version {}: up to date",
            mtls_ca::store::SQLITE_SCHEMA_VERSION
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin_in(&dir, &["token", "list", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["tokens"][0]["status"], "unused", "{listed}");
    let out = admin_in(&dir, &["token", "revoke", &id_of(&token)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin_in(&dir, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::remove_dir_all(dir).unwrap();
}
