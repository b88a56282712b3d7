//! The dashboard in a real browser (issue 16, item 5; docs/dashboard.md): headless Debian
//! Chromium driven by playwright-core (installed by this test into a throwaway directory with
//! `npm install --prefix`), presenting the admin's client certificate over mTLS. The CA has
//! enrolled three identities, renewed one and revoked one; the page must list them, mark the
//! revoked one, show the audit chain intact, load nothing but itself, and narrow to one
//! identity through the filter form. The test fails, never skips, when chromium, node or npm
//! is missing (.ci/run installs them).
//!
//! `DASHBOARD_SCREENSHOT_TO=docs/img/dashboard.png` also copies the screenshot there (how the
//! README's image is made).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::Proc;

use super::common::*;

const ADMIN: &str = "spiffe://mesh.local/admin";
const WEB: &str = "spiffe://mesh.local/service/web";
const WORKER: &str = "spiffe://mesh.local/service/payment-worker";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Pinned so a new release cannot change the test under us; any recent one drives the system's
/// Chromium over CDP.
const PLAYWRIGHT: &str = "playwright-core@1.65.1";

fn require_tools() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install it with `apt-get install chromium` (.ci/run does)"
    );
    for tool in ["node", "npm"] {
        let found = Command::new(tool).arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "{tool} is missing: install it with `apt-get install nodejs npm` (.ci/run does)"
        );
    }
}

/// Runs `cmd` to its end within `deadline`; panics with its output unless it exits 0.
fn run_to_end(name: &str, cmd: Command, deadline: Duration) -> String {
    let mut proc = Proc::spawn(name, cmd);
    let status = proc
        .wait_exit(deadline)
        .unwrap_or_else(|| panic!("{name} did not finish in {deadline:?}:\n{}", proc.output()));
    assert!(
        status.success(),
        "{name} failed ({status}):\n{}",
        proc.output()
    );
    proc.stdout()
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_renders_the_dashboard_for_the_admin() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("playwright");
    let mut npm = Command::new("npm");
    npm.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        "--prefix",
    ])
    .arg(&pw)
    .arg(PLAYWRIGHT);
    run_to_end("npm install", npm, Duration::from_secs(300));

    let ca = Ca::start(&["--admin-id", ADMIN]);
    let (admin, _) = enroll(&ca, ADMIN).await;
    let (web, _) = enroll(&ca, WEB).await;
    let (worker, signed_worker) = enroll(&ca, WORKER).await;
    // A rotation for the timeline: web renews with a new key.
    let (_, new_csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, renewed) = renew(&ca, &web, &new_csr).await;
    assert_eq!(status, 200, "{renewed}");
    let out = ca.admin(&[
        "revoke",
        "--serial",
        signed_worker["serial"].as_str().unwrap(),
        "--reason",
        "keyCompromise",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A refusal for its panel: the revoked worker tries the dashboard.
    let refused = client(&ca.root_pem(), Some(&worker))
        .get(ca.url("/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    // The CRL panel shows the CRL once one was signed.
    let crl = client(&ca.root_pem(), None)
        .get(ca.url("/api/v1/crl"))
        .send()
        .await
        .unwrap();
    assert_eq!(crl.status().as_u16(), 200);

    let cert = tmp.path().join("admin.crt");
    let key = tmp.path().join("admin.key");
    std::fs::write(&cert, &admin.cert_pem).unwrap();
    std::fs::write(&key, &admin.key_pem).unwrap();
    let script = tmp.path().join("dashboard_browser.cjs");
    std::fs::write(&script, include_str!("dashboard_browser.cjs")).unwrap();
    let screenshot = tmp.path().join("dashboard.png");
    let mut node = Command::new("node");
    node.arg(&script)
        .env("PLAYWRIGHT_DIR", &pw)
        .env("DASHBOARD_URL", ca.url("/dashboard"))
        .env("CLIENT_CERT", &cert)
        .env("CLIENT_KEY", &key)
        .env("FILTER_ID", WEB)
        .env("SCREENSHOT", &screenshot)
        .env("NODE_EXTRA_CA_CERTS", ca.dir.join("root.crt"));
    let out = run_to_end("node dashboard_browser.cjs", node, Duration::from_secs(120));
    let seen: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let all = &seen["all"];

    assert_eq!(seen["status"], 200, "{seen:#}");
    let csp = seen["csp"].as_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{seen:#}");
    // Every identity listed; only the worker's certificate marked revoked (web has two).
    let rows = all["rows"].as_array().unwrap();
    let status_of = |id: &str| -> Vec<&str> {
        rows.iter()
            .filter(|r| r["identity"] == id)
            .map(|r| r["status"].as_str().unwrap())
            .collect()
    };
    assert_eq!(status_of(ADMIN), ["valid"], "{seen:#}");
    assert_eq!(status_of(WEB), ["valid", "valid"], "{seen:#}");
    assert_eq!(status_of(WORKER), ["revoked"], "{seen:#}");
    assert!(rows.iter().all(|r| r["badge"] == r["status"]), "{seen:#}");
    assert_eq!(all["revocations"], serde_json::json!([WORKER]), "{seen:#}");
    assert_eq!(all["audit"], "intact", "{seen:#}");
    assert!(
        all["auditEntries"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0,
        "{seen:#}"
    );
    let head = ca.admin(&["audit", "head"]);
    let head = String::from_utf8(head.stdout).unwrap();
    assert_eq!(all["auditHead"], head.trim(), "{seen:#}");
    assert!(
        all["crl"].as_str().unwrap().contains("Entries1"),
        "{seen:#}"
    );
    assert!(
        all["refusals"]
            .as_str()
            .unwrap()
            .contains("certificate_revoked"),
        "{seen:#}"
    );
    assert_eq!(all["timelineBars"], 4, "{seen:#}");
    assert_eq!(all["scripts"], 0, "{seen:#}");
    // The stylesheet applied (the CSP's hash matched it): .intact's colour, computed.
    assert_eq!(
        all["auditBadgeBackground"], "rgb(220, 243, 227)",
        "{seen:#}"
    );
    // Nothing was fetched but the page, and nothing was blocked or failed.
    assert_eq!(seen["requests"].as_array().unwrap().len(), 2, "{seen:#}");
    assert_eq!(seen["consoleErrors"], serde_json::json!([]), "{seen:#}");

    // The filter form narrowed the page to web's two certificates.
    let filtered = &seen["filtered"];
    let ids: Vec<&str> = filtered["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["identity"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [WEB, WEB], "{seen:#}");
    assert!(
        seen["filteredUrl"]
            .as_str()
            .unwrap()
            .ends_with("/dashboard?id=spiffe%3A%2F%2Fmesh.local%2Fservice%2Fweb"),
        "{seen:#}"
    );
    assert_eq!(filtered["revocations"], serde_json::json!([]), "{seen:#}");
    assert_eq!(filtered["timelineBars"], 2, "{seen:#}");

    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {} bytes",
        png.len()
    );
    if let Some(to) = std::env::var_os("DASHBOARD_SCREENSHOT_TO") {
        std::fs::copy(&screenshot, to).unwrap();
    }
}
