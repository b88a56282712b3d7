//! The examples of docs/ca-api.md are real: requests built from them are accepted, and the CA's
//! responses have exactly the documented fields.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;

use super::common::*;

fn examples() -> std::collections::HashMap<String, serde_json::Value> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ca-api.md"))
        .unwrap();
    let mut out = std::collections::HashMap::new();
    let mut rest = doc.as_str();
    // Markers start a line; a mention inside prose does not count.
    while let Some(i) = rest.find("\n<!-- example: ") {
        rest = &rest[i + "\n<!-- example: ".len()..];
        let name = rest[..rest.find(" -->").unwrap()].to_string();
        let start = rest.find("```json\n").unwrap() + "```json\n".len();
        let end = start + rest[start..].find("```").unwrap();
        let value: serde_json::Value = serde_json::from_str(&rest[start..end])
            .unwrap_or_else(|e| panic!("example {name} is not valid JSON: {e}"));
        out.insert(name, value);
        rest = &rest[end..];
    }
    out
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn documented_examples_match_the_real_api() {
    let ex = examples();
    for name in [
        "error",
        "sign-request",
        "sign-response",
        "renew-request",
        "revoke-request",
        "revoke-response",
        "certs-response",
        "agent-entries-response",
        "agent-svid-request",
        "agent-jwt-request",
        "agent-jwt-response",
        "spiffe-bundle-response",
    ] {
        assert!(ex.contains_key(name), "docs/ca-api.md lacks example {name}");
    }
    let admin = "spiffe://mesh.local/admin";
    let ca = Ca::start(&["--admin-id", admin]);
    let http = client(&ca.root_pem(), None);

    // sign: the documented request with a real CSR.
    let id = ex["sign-request"]["requested_id"].as_str().unwrap();
    let token = ca.token(id, &["--dns", "localhost", "--ip", "127.0.0.1"]);
    let (key, real_csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let mut body = ex["sign-request"].clone();
    body["csr"] = serde_json::Value::from(real_csr.clone());
    let (status, signed) = sign(&http, &ca, &token, &body).await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(keys(&signed), keys(&ex["sign-response"]));
    assert_eq!(signed["spiffe_id"], ex["sign-response"]["spiffe_id"]);

    // error: the documented shape, from reusing the token with another key (the same CSR
    // would get the same certificate again).
    let mut reused = body.clone();
    reused["csr"] = serde_json::Value::from(csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1);
    let (status, err) = sign(&http, &ca, &token, &reused).await;
    assert_eq!(status, 401);
    assert_eq!(
        err, ex["error"],
        "the documented error example is the real token_used error"
    );

    // renew with the documented body.
    let me = Identity {
        cert_pem: signed["certificate"].as_str().unwrap().to_string(),
        key_pem: key.serialize_pem(),
    };
    let mine = client(&ca.root_pem(), Some(&me));
    // Renewal needs a fresh key (the signing key is refused with 400 key_reused).
    let (_, renew_csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let mut body = ex["renew-request"].clone();
    body["csr"] = serde_json::Value::from(renew_csr);
    let resp = mine
        .post(ca.url("/api/v1/renew"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let renewed: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(keys(&renewed), keys(&ex["sign-response"]));

    // certs as admin.
    let (admin_id, _) = enroll(&ca, admin).await;
    let admin_http = client(&ca.root_pem(), Some(&admin_id));
    let list: serde_json::Value = admin_http
        .get(ca.url("/api/v1/certs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let documented = keys(&ex["certs-response"]["certificates"][0]);
    for c in list["certificates"].as_array().unwrap() {
        assert_eq!(keys(c), documented);
    }

    // revoke with the documented body, serial in colon form as documented.
    let serial = signed["serial"].as_str().unwrap();
    let colon: Vec<String> = serial
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let mut body = ex["revoke-request"].clone();
    body["serial"] = serde_json::Value::from(colon.join(":"));
    let resp = mine
        .post(ca.url("/api/v1/revoke"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let revoked: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(keys(&revoked), keys(&ex["revoke-response"]));
    assert_eq!(revoked["revoked"], serial);
}

#[tokio::test]
async fn documented_agent_examples_match_the_real_api() {
    let ex = examples();
    let ca = Ca::start(&[]);
    let entry = &ex["agent-entries-response"]["entries"][0];
    let parent = entry["parent_id"].as_str().unwrap();
    let mut args = vec![
        "entry",
        "create",
        "--parent",
        parent,
        "--spiffe-id",
        entry["spiffe_id"].as_str().unwrap(),
    ];
    for s in entry["selectors"].as_array().unwrap() {
        args.extend(["--selector", s.as_str().unwrap()]);
    }
    for d in entry["dns"].as_array().unwrap() {
        args.extend(["--dns", d.as_str().unwrap()]);
    }
    let ttl = format!("{}s", entry["ttl_seconds"]);
    args.extend(["--ttl", ttl.as_str()]);
    let out = ca.admin(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (agent, _) = enroll(&ca, parent).await;
    let http = client(&ca.root_pem(), Some(&agent));

    let listing: serde_json::Value = http
        .get(ca.url("/api/v1/agent/entries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&listing), keys(&ex["agent-entries-response"]));
    let mut documented = entry.clone();
    documented["id"] = serde_json::Value::from(id.clone());
    assert_eq!(
        listing["entries"][0], documented,
        "the example is a real entry"
    );

    let (_, real_csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let mut body = ex["agent-svid-request"].clone();
    body["entry_id"] = serde_json::Value::from(id.clone());
    body["csr"] = serde_json::Value::from(real_csr);
    let resp = http
        .post(ca.url("/api/v1/agent/svid"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let svid: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(keys(&svid), keys(&ex["sign-response"]));

    let mut body = ex["agent-jwt-request"].clone();
    body["entry_id"] = serde_json::Value::from(id);
    let resp = http
        .post(ca.url("/api/v1/agent/jwt"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let jwt: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(keys(&jwt), keys(&ex["agent-jwt-response"]));

    let bundle: serde_json::Value = client(&ca.root_pem(), None)
        .get(ca.url("/api/v1/bundle/spiffe"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let documented = &ex["spiffe-bundle-response"];
    assert_eq!(keys(&bundle), keys(documented));
    assert_eq!(
        bundle["spiffe_refresh_hint"],
        documented["spiffe_refresh_hint"]
    );
    for (real, doc) in bundle["keys"]
        .as_array()
        .unwrap()
        .iter()
        .zip(documented["keys"].as_array().unwrap())
    {
        assert_eq!(keys(real), keys(doc));
        assert_eq!(real["use"], doc["use"]);
    }
    assert_eq!(bundle["keys"].as_array().unwrap().len(), 2);
}

/// `POST /api/v1/tokens`: the documented request, sent as the admin, gets a response with the
/// documented fields, and the token it holds enrolls the documented identity.
#[tokio::test]
async fn documented_token_examples_match_the_real_api() {
    let ex = examples();
    let admin = "spiffe://mesh.local/admin";
    let ca = Ca::start(&["--admin-id", admin]);
    let (admin_id, _) = enroll(&ca, admin).await;
    let admin_http = client(&ca.root_pem(), Some(&admin_id));
    let resp = admin_http
        .post(ca.url("/api/v1/tokens"))
        .json(&ex["tokens-request"])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let made: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(keys(&made), keys(&ex["tokens-response"]));
    let id = ex["tokens-request"]["spiffe_id"].as_str().unwrap();
    let (_, real_csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, signed) = sign(
        &client(&ca.root_pem(), None),
        &ca,
        made["token"].as_str().unwrap(),
        &sign_body(&real_csr, id, None),
    )
    .await;
    assert_eq!(status, 200, "{signed}");

    // GET /api/v1/tokens and DELETE /api/v1/tokens/ID: a second token from the documented
    // request is listed like the documented entry, and revoked with the documented answer.
    let made: serde_json::Value = admin_http
        .post(ca.url("/api/v1/tokens"))
        .json(&ex["tokens-request"])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_id =
        mtls_ca::tokens::id(&mtls_ca::tokens::hash(made["token"].as_str().unwrap())).to_string();
    let listed: serde_json::Value = admin_http
        .get(ca.url("/api/v1/tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&listed), keys(&ex["tokens-list-response"]));
    let documented = &ex["tokens-list-response"]["tokens"][0];
    let real = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == token_id.as_str())
        .unwrap();
    assert_eq!(keys(real), keys(documented));
    for field in ["spiffe_id", "dns", "ips", "used_at", "revoked_at", "status"] {
        assert_eq!(real[field], documented[field], "{field}");
    }
    let resp = admin_http
        .delete(ca.url(&format!("/api/v1/tokens/{token_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let revoked: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(keys(&revoked), keys(&ex["tokens-revoke-response"]));
    assert_eq!(revoked["status"], ex["tokens-revoke-response"]["status"]);
}
