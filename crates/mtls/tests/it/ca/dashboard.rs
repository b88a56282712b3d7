//! `GET /dashboard` over plain HTTPS, no browser (issue 16, item 5; docs/dashboard.md): only the
//! `--admin-id` identity sees it, every answer carries the Content-Security-Policy, and markup
//! that reaches the CA (in a refused request, or written into the database behind its back) is
//! shown as text. `dashboard_browser.rs` renders the page in Chromium.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::common::*;

const ADMIN: &str = "spiffe://mesh.local/admin";
const WEB: &str = "spiffe://mesh.local/service/web";
const MARKUP: &str = "<script>alert(1)</script>";

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn get(ca: &Ca, who: Option<&Identity>, path: &str) -> Page {
    let resp = client(&ca.root_pem(), who)
        .get(ca.url(path))
        .send()
        .await
        .unwrap();
    Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// The headers every dashboard answer carries, refusals included.
fn assert_locked_down(page: &Page) {
    let header = |name: &str| {
        page.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header: {:?}", page.headers))
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    let csp = header("content-security-policy");
    // Nothing may load from anywhere: no scripts at all, the stylesheet only by its hash.
    assert!(csp.starts_with("default-src 'none'; "), "{csp}");
    assert!(csp.contains("style-src 'sha256-"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("base-uri 'none'"), "{csp}");
    for loose in [
        "script-src",
        "http:",
        "https:",
        "*",
        "'unsafe-inline'",
        "data:",
    ] {
        assert!(!csp.contains(loose), "{loose} in {csp}");
    }
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-frame-options"), "DENY");
}

#[tokio::test]
async fn only_the_admin_identity_sees_the_dashboard() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (admin, signed_admin) = enroll(&ca, ADMIN).await;
    let (web, signed_web) = enroll(&ca, WEB).await;
    let admin_serial = signed_admin["serial"].as_str().unwrap();
    let web_serial = signed_web["serial"].as_str().unwrap();

    let page = get(&ca, Some(&admin), "/dashboard").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_locked_down(&page);
    for shown in [ADMIN, WEB, admin_serial, web_serial] {
        assert!(page.body.contains(shown), "{shown} missing:\n{}", page.body);
    }
    assert!(page.body.contains(">intact<"), "{}", page.body);

    // Another identity of this CA, and a caller without a certificate: refused, and told why,
    // with no certificate data in the answer.
    let page = get(&ca, Some(&web), "/dashboard").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert_locked_down(&page);
    assert!(
        page.body.contains(&format!(
            "the dashboard needs the admin identity {ADMIN}, not {WEB}"
        )),
        "{}",
        page.body
    );
    let page = get(&ca, None, "/dashboard").await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert_locked_down(&page);
    for refused in [
        &page.body,
        &get(&ca, Some(&web), "/dashboard?id=x").await.body,
    ] {
        assert!(!refused.contains(admin_serial), "{refused}");
        assert!(!refused.contains(web_serial), "{refused}");
        assert!(
            !refused.contains(ADMIN) || refused.contains("needs the admin"),
            "{refused}"
        );
    }

    // The admin's own certificate, once revoked, no longer opens it (nor does the filter).
    let out = ca.admin(&["revoke", "--serial", admin_serial]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = get(&ca, Some(&admin), &format!("/dashboard?id={WEB}")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body
            .contains(&format!("certificate {admin_serial} is revoked")),
        "{}",
        page.body
    );
    assert!(!page.body.contains(web_serial), "{}", page.body);
}

#[tokio::test]
async fn without_admin_id_nobody_sees_the_dashboard() {
    let ca = Ca::start(&[]);
    let (anyone, _) = enroll(&ca, ADMIN).await;
    let page = get(&ca, Some(&anyone), "/dashboard").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert_locked_down(&page);
    assert!(
        page.body.contains("start mtls-ca with --admin-id"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn the_filter_shows_one_identity() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (admin, signed_admin) = enroll(&ca, ADMIN).await;
    let (_, signed_web) = enroll(&ca, WEB).await;
    let page = get(
        &ca,
        Some(&admin),
        "/dashboard?id=spiffe%3A%2F%2Fmesh.local%2Fservice%2Fweb",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(signed_web["serial"].as_str().unwrap()));
    assert!(
        !page.body.contains(signed_admin["serial"].as_str().unwrap()),
        "{}",
        page.body
    );
    // An empty filter is no filter.
    let page = get(&ca, Some(&admin), "/dashboard?id=").await;
    assert!(page.body.contains(signed_admin["serial"].as_str().unwrap()));
    // A malformed query string is refused as a page, with the same headers.
    let page = get(
        &ca,
        Some(&admin),
        &format!("/dashboard?id={WEB}&id={ADMIN}"),
    )
    .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert_locked_down(&page);
    assert!(page.body.contains("id=SPIFFE-ID"), "{}", page.body);
}

/// An unauthenticated caller can put text into the page: refusal messages quote what it sent.
/// That text must arrive as text.
#[tokio::test]
async fn markup_in_a_refused_request_is_shown_as_text() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (admin, _) = enroll(&ca, ADMIN).await;
    let token = ca.token(WEB, &[]);
    let (_, csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let planted = format!("spiffe://mesh.local/{MARKUP}");
    let (status, v) = sign(
        &client(&ca.root_pem(), None),
        &ca,
        &token,
        &sign_body(&csr, &planted, None),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(MARKUP),
        "the refusal no longer quotes the input: {v}"
    );

    let page = get(&ca, Some(&admin), "/dashboard").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the refusal is not listed:\n{}",
        page.body
    );
}

/// A DNS SAN with markup cannot be issued, but a database edited behind the CA's back can hold
/// one: it is shown as text, and the audit chain, replayed against the tables, says mismatch.
#[tokio::test]
async fn a_tampered_dns_san_is_text_and_the_chain_shows_the_mismatch() {
    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (admin, _) = enroll(&ca, ADMIN).await;
    let (_, signed) = enroll(&ca, WEB).await;
    let page = get(&ca, Some(&admin), "/dashboard").await;
    assert!(page.body.contains(">intact<"), "{}", page.body);

    let dns = serde_json::json!([format!("{MARKUP}.example")]).to_string();
    let conn = rusqlite::Connection::open(ca.dir.join("ca.db")).unwrap();
    let changed = conn
        .execute(
            "UPDATE certs SET dns = ?1 WHERE serial = ?2",
            [&dns, signed["serial"].as_str().unwrap()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);

    let page = get(&ca, Some(&admin), "/dashboard").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(
        page.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;.example"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("class=\"badge mismatch\">mismatch<"),
        "{}",
        page.body
    );
}
