//! The agent API (docs/ca-api.md "Agent API"): an agent enrolled as
//! `spiffe://<td>/agent/<name>` sees only its registration entries and obtains X.509- and
//! JWT-SVIDs for them and for nothing else; every other caller is refused, and refusals of
//! entry requests are audited.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use pki::jwt_svid::{self, KeySet};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::common::*;

const NODE1: &str = "spiffe://mesh.local/agent/node1";
const NODE2: &str = "spiffe://mesh.local/agent/node2";
const WEB: &str = "spiffe://mesh.local/service/web";

/// `mtls-ca entry create ARGS...`; returns the new entry's ID.
fn create_entry(ca: &Ca, args: &[&str]) -> String {
    let mut all = vec!["entry", "create"];
    all.extend_from_slice(args);
    let out = ca.admin(&all);
    assert!(
        out.status.success(),
        "entry create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn get(http: &reqwest::Client, ca: &Ca, path: &str) -> (u16, Value) {
    let resp = http.get(ca.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn post(http: &reqwest::Client, ca: &Ca, path: &str, body: &Value) -> (u16, Value) {
    let resp = http.post(ca.url(path)).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("(none)")
}

fn svid_body(entry: &str) -> Value {
    let (_, csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    json!({"entry_id": entry, "csr": csr})
}

fn leaf(v: &Value) -> pki::CertInfo {
    let pem = v["certificate"].as_str().unwrap();
    let der = pki::pem::parse_certificates(pem.as_bytes())
        .unwrap()
        .remove(0);
    pki::CertInfo::from_der(&der).unwrap()
}

/// Waits until the CA has logged an audit entry of `event`.
fn wait_audited(ca: &Ca, event: &str) -> String {
    let needle = format!("audit_event={event}");
    ca.proc
        .wait_for(|l| l.contains(&needle), Duration::from_secs(10))
}

fn audit_intact(ca: &Ca) {
    let out = ca.admin(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("audit log intact"),
        "{text}"
    );
}

#[tokio::test]
async fn an_agent_gets_svids_for_its_own_entries_and_nothing_else() {
    let ca = Ca::start(&["--max-duration", "2h"]);
    let (node1, node1_cert) = enroll(&ca, NODE1).await;
    let (node2, _) = enroll(&ca, NODE2).await;
    let (service, _) = enroll(&ca, WEB).await;
    let web = create_entry(
        &ca,
        &[
            "--parent",
            NODE1,
            "--spiffe-id",
            WEB,
            "--selector",
            "unix:uid:1000",
            "--selector",
            "unix:path:/usr/bin/python3",
            "--ttl",
            "30m",
            "--dns",
            "web.local",
        ],
    );
    let batch = create_entry(
        &ca,
        &[
            "--parent",
            NODE1,
            "--spiffe-id",
            "spiffe://mesh.local/service/batch",
            "--selector",
            "unix:uid:1001",
            "--ttl",
            "3h",
        ],
    );
    let foreign = create_entry(
        &ca,
        &[
            "--parent",
            NODE2,
            "--spiffe-id",
            "spiffe://mesh.local/service/db",
            "--selector",
            "unix:uid:1000",
        ],
    );
    let root = ca.root_pem();
    let agent1 = client(&root, Some(&node1));
    let agent2 = client(&root, Some(&node2));

    // Entries: node1's only, in the contract's shape, the ttl clamped to --max-duration.
    let (s, listing) = get(&agent1, &ca, "/api/v1/agent/entries").await;
    assert_eq!(s, 200, "{listing}");
    let entries = listing["entries"].as_array().unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{listing}");
    assert!(
        ids.contains(&web.as_str()) && ids.contains(&batch.as_str()),
        "{listing}"
    );
    let web_entry = entries.iter().find(|e| e["id"] == web.as_str()).unwrap();
    assert_eq!(
        web_entry,
        &json!({"id": web, "spiffe_id": WEB, "parent_id": NODE1,
                "selectors": ["unix:path:/usr/bin/python3", "unix:uid:1000"],
                "ttl_seconds": 1800, "dns": ["web.local"]})
    );
    let batch_entry = entries.iter().find(|e| e["id"] == batch.as_str()).unwrap();
    assert_eq!(
        batch_entry["ttl_seconds"], 7200,
        "clamped to --max-duration 2h"
    );
    let revision = listing["revision"].as_u64().unwrap();
    let (_, listing2) = get(&agent2, &ca, "/api/v1/agent/entries").await;
    assert_eq!(listing2["entries"].as_array().unwrap().len(), 1);
    assert_eq!(listing2["entries"][0]["id"], foreign.as_str());

    // An X.509-SVID for its entry: the entry's ID and DNS name, its ttl.
    let before = OffsetDateTime::now_utc();
    let (s, svid) = post(&agent1, &ca, "/api/v1/agent/svid", &svid_body(&web)).await;
    assert_eq!(s, 200, "{svid}");
    assert_eq!(svid["spiffe_id"], WEB);
    let info = leaf(&svid);
    assert_eq!(info.uris, vec![WEB.to_string()]);
    assert_eq!(info.dns, vec!["web.local".to_string()]);
    assert!(info.client_auth && info.server_auth && !info.is_ca);
    let ttl = info.not_after - before;
    assert!(
        ttl > time::Duration::minutes(29) && ttl <= time::Duration::minutes(31),
        "lifetime {ttl}"
    );
    assert_eq!(
        svid["chain"][0].as_str().unwrap().as_bytes(),
        root.as_slice()
    );
    // ...clamped to --max-duration for the 3h entry.
    let (s, long) = post(&agent1, &ca, "/api/v1/agent/svid", &svid_body(&batch)).await;
    assert_eq!(s, 200, "{long}");
    assert!(
        leaf(&long).not_after - before <= time::Duration::hours(2) + time::Duration::seconds(5)
    );

    // A CSR asking for names the entry does not give is refused.
    let (_, extra) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &["evil.local"]);
    let (s, v) = post(
        &agent1,
        &ca,
        "/api/v1/agent/svid",
        &json!({"entry_id": web, "csr": extra}),
    )
    .await;
    assert_eq!((s, code(&v)), (403, "san_not_allowed"), "{v}");

    // Another agent's entry: 403 not_entry_parent for both kinds, audited.
    let mark = ca.proc.mark();
    let (s, v) = post(&agent1, &ca, "/api/v1/agent/svid", &svid_body(&foreign)).await;
    assert_eq!((s, code(&v)), (403, "not_entry_parent"), "{v}");
    let line = ca.proc.wait_for_after(
        mark,
        |l| l.contains("audit_event=agent_refused"),
        Duration::from_secs(10),
    );
    assert!(line.contains("agent_refused"), "{line}");
    let (s, v) = post(
        &agent1,
        &ca,
        "/api/v1/agent/jwt",
        &json!({"entry_id": foreign, "audience": ["x"]}),
    )
    .await;
    assert_eq!((s, code(&v)), (403, "not_entry_parent"), "{v}");

    // Unknown entries: 404, whatever the ID looks like.
    for id in ["0123456789abcdef0123456789abcdef", "../etc", ""] {
        let (s, v) = post(&agent1, &ca, "/api/v1/agent/svid", &svid_body(id)).await;
        assert_eq!((s, code(&v)), (404, "unknown_entry"), "{id}: {v}");
    }

    // A service certificate is not an agent.
    let svc = client(&root, Some(&service));
    let (s, v) = get(&svc, &ca, "/api/v1/agent/entries").await;
    assert_eq!((s, code(&v)), (403, "not_agent"), "{v}");
    let (s, v) = post(&svc, &ca, "/api/v1/agent/svid", &svid_body(&web)).await;
    assert_eq!((s, code(&v)), (403, "not_agent"), "{v}");
    // Neither is an agent-issued SVID, nor may it be renewed past its entry.
    let (svid_key, _) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (s, issued) = post(
        &agent1,
        &ca,
        "/api/v1/agent/svid",
        &json!({"entry_id": web, "csr": csr_for(&svid_key)}),
    )
    .await;
    assert_eq!(s, 200, "{issued}");
    let workload = Identity {
        cert_pem: issued["certificate"].as_str().unwrap().to_string(),
        key_pem: svid_key.serialize_pem(),
    };
    let (s, v) = get(
        &client(&root, Some(&workload)),
        &ca,
        "/api/v1/agent/entries",
    )
    .await;
    assert_eq!((s, code(&v)), (403, "not_agent"), "{v}");
    let (new_key, _) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (s, v) = renew(&ca, &workload, &csr_for(&new_key)).await;
    assert_eq!((s, code(&v)), (403, "not_renewable"), "{v}");
    // No certificate at all.
    let (s, v) = get(&client(&root, None), &ca, "/api/v1/agent/entries").await;
    assert_eq!((s, code(&v)), (401, "client_certificate_required"), "{v}");

    // A JWT-SVID verifies against the key set of the SPIFFE bundle and carries the audience.
    let (s, jwt) = post(
        &agent1,
        &ca,
        "/api/v1/agent/jwt",
        &json!({"entry_id": web, "audience": ["spiffe://mesh.local/service/db", "extra"]}),
    )
    .await;
    assert_eq!(s, 200, "{jwt}");
    let (s, bundle) = get(&client(&root, None), &ca, "/api/v1/bundle/spiffe").await;
    assert_eq!(s, 200, "{bundle}");
    let keys = KeySet::from_jwks(&bundle).unwrap();
    assert_eq!(keys.len(), 1);
    let token = jwt["token"].as_str().unwrap();
    let claims = jwt_svid::verify(
        token,
        &keys,
        "spiffe://mesh.local/service/db",
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(claims.sub.to_string(), WEB);
    assert_eq!(claims.aud, ["spiffe://mesh.local/service/db", "extra"]);
    assert_eq!(claims.exp - claims.iat, 300, "default ttl 5m");
    assert!(matches!(
        jwt_svid::verify(
            token,
            &keys,
            "spiffe://mesh.local/service/other",
            OffsetDateTime::now_utc()
        ),
        Err(jwt_svid::JwtError::Audience { .. })
    ));
    // The bundle's X.509 authority is the root, in the SPIFFE bundle format.
    let x509: Vec<&Value> = bundle["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["use"] == "x509-svid")
        .collect();
    assert_eq!(x509.len(), 1, "{bundle}");
    let root_der = pki::pem::parse_certificates(&root).unwrap().remove(0);
    let expected = jwt_svid::x509_authority_jwk(&root_der).unwrap();
    assert_eq!(x509[0], &serde_json::to_value(expected).unwrap());
    assert!(bundle["spiffe_sequence"].as_u64().unwrap() > 0);
    assert!(bundle["spiffe_refresh_hint"].as_u64().unwrap() > 0);
    // Lifetimes: clamped to 1h; bad audiences refused.
    let (s, v) = post(
        &agent1,
        &ca,
        "/api/v1/agent/jwt",
        &json!({"entry_id": web, "audience": ["a"], "ttl": "2h"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let c = jwt_svid::verify(
        v["token"].as_str().unwrap(),
        &keys,
        "a",
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(c.exp - c.iat, 3600);
    for bad in [json!([]), json!([""])] {
        let (s, v) = post(
            &agent1,
            &ca,
            "/api/v1/agent/jwt",
            &json!({"entry_id": web, "audience": bad}),
        )
        .await;
        assert_eq!((s, code(&v)), (400, "bad_audience"), "{v}");
    }

    // Deleting an entry moves the revision and ends its SVIDs at once.
    let out = ca.admin(&["entry", "delete", &web]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, after) = get(&agent1, &ca, "/api/v1/agent/entries").await;
    assert_ne!(after["revision"].as_u64().unwrap(), revision);
    assert_eq!(after["entries"].as_array().unwrap().len(), 1);
    let (s, v) = post(&agent1, &ca, "/api/v1/agent/svid", &svid_body(&web)).await;
    assert_eq!((s, code(&v)), (404, "unknown_entry"), "{v}");

    // A revoked agent certificate is refused.
    let serial = node1_cert["serial"].as_str().unwrap();
    let out = ca.admin(&["revoke", "--serial", serial]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, v) = post(&agent1, &ca, "/api/v1/agent/svid", &svid_body(&batch)).await;
    assert_eq!((s, code(&v)), (403, "certificate_revoked"), "{v}");
    let (s, v) = get(&agent1, &ca, "/api/v1/agent/entries").await;
    assert_eq!((s, code(&v)), (403, "certificate_revoked"), "{v}");

    wait_audited(&ca, "agent_jwt");
    audit_intact(&ca);
    let metrics = reqwest_text(&ca, "/metrics").await;
    assert!(metrics.contains("mtls_ca_agent_svids_total 3"), "{metrics}");
    assert!(metrics.contains("mtls_ca_agent_jwts_total 2"), "{metrics}");
    assert!(
        metrics.contains("mtls_ca_rejected_total{reason=\"not_entry_parent\"} 2"),
        "{metrics}"
    );
}

async fn reqwest_text(ca: &Ca, path: &str) -> String {
    client(&ca.root_pem(), None)
        .get(ca.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[test]
fn entry_commands_refuse_bad_input_naming_the_flag() {
    let ca = Ca::start(&[]);
    let id = create_entry(
        &ca,
        &[
            "--parent",
            NODE1,
            "--spiffe-id",
            WEB,
            "--selector",
            "unix:uid:1000",
        ],
    );
    let base = ["entry", "create", "--parent", NODE1];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--spiffe-id", WEB, "--selector", "unix:uid:1000"],
            "already gives",
        ),
        (&["--spiffe-id", WEB], "--selector"),
        (
            &["--spiffe-id", WEB, "--selector", "unix:pid:1"],
            "--selector",
        ),
        (
            &[
                "--spiffe-id",
                WEB,
                "--selector",
                "unix:uid:1",
                "--ttl",
                "25h",
            ],
            "--ttl",
        ),
        (
            &[
                "--spiffe-id",
                WEB,
                "--selector",
                "unix:uid:1",
                "--dns",
                "a..b",
            ],
            "--dns",
        ),
        (
            &[
                "--spiffe-id",
                "spiffe://mesh.local/ca",
                "--selector",
                "unix:uid:1",
            ],
            "--spiffe-id",
        ),
        (
            &[
                "--spiffe-id",
                "spiffe://mesh.local/agent/node9",
                "--selector",
                "unix:uid:1",
            ],
            "--spiffe-id",
        ),
        (
            &[
                "--spiffe-id",
                "spiffe://other.td/service/web",
                "--selector",
                "unix:uid:1",
            ],
            "--spiffe-id",
        ),
    ];
    for (args, flag) in cases {
        let mut all: Vec<&str> = base.to_vec();
        all.extend_from_slice(args);
        let out = ca.admin(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let out = ca.admin(&[
        "entry",
        "create",
        "--parent",
        "spiffe://mesh.local/service/x",
        "--spiffe-id",
        WEB,
        "--selector",
        "unix:uid:2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--parent"));
    // Nothing but the first entry was stored.
    let out = ca.admin(&["entry", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["revision"], 1);
    let out = ca.admin(&["entry", "list", "--parent", NODE2, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["entries"], json!([]));
    // show / delete.
    let out = ca.admin(&["entry", "show", &id]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["spiffe_id"].as_str()),
        (Some(id.as_str()), Some(WEB))
    );
    for args in [
        ["entry", "show", "nope"],
        ["entry", "delete", "0123456789abcdef0123456789abcdef"],
    ] {
        let out = ca.admin(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    assert!(ca.admin(&["entry", "delete", &id]).status.success());
    let out = ca.admin(&["entry", "delete", &id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no entry"));
    audit_intact(&ca);
}

/// `entry create --from-file`: many entries in one call, every line checked before any is
/// stored.
#[test]
fn entries_from_a_file_are_all_checked_before_any_is_stored() {
    let ca = Ca::start(&[]);
    let stored = create_entry(
        &ca,
        &[
            "--parent",
            NODE1,
            "--spiffe-id",
            WEB,
            "--selector",
            "unix:uid:1000",
        ],
    );
    let file = ca.dir.with_file_name("entries.jsonl");
    let line = |n: u32, extra: &str| {
        format!(
            r#"{{"parent": "{NODE1}", "spiffe_id": "spiffe://mesh.local/service/w{n}", "selectors": ["unix:uid:{n}"]{extra}}}"#
        )
    };
    let from_file = |lines: &[String]| {
        std::fs::write(&file, lines.join("\n")).unwrap();
        ca.admin(&["entry", "create", "--from-file", file.to_str().unwrap()])
    };
    let count = || {
        let out = ca.admin(&["entry", "list", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["entries"].as_array().unwrap().len(),
            v["revision"].as_u64().unwrap(),
        )
    };

    // A bad line anywhere (its line number counts blank lines) stores nothing, and the error
    // names the line and what is wrong with it.
    let good = [line(1, ""), String::new(), line(2, "")];
    let repeated_stored =
        format!(r#"{{"parent": "{NODE1}", "spiffe_id": "{WEB}", "selectors": ["unix:uid:1000"]}}"#);
    let names_stored = ["line 4", stored.as_str(), "already gives"];
    let cases: Vec<(String, &[&str])> = vec![
        (line(3, r#", "ttl": "25h""#), &["line 4", "ttl", "1s to 1d"]),
        (line(3, r#", "dns": ["a..b"]"#), &["line 4", "dns"]),
        (line(3, r#", "tll": "1h""#), &["line 4", "unknown field `tll`"]),
        (line(1, ""), &["line 4", "line 1 already gives"]),
        (repeated_stored, &names_stored),
        (
            r#"{"parent": "spiffe://mesh.local/service/x", "spiffe_id": "spiffe://mesh.local/service/y", "selectors": ["unix:uid:1"]}"#.into(),
            &["line 4", "--parent"],
        ),
        (line(3, "").replace("unix:uid:3", "unix:pid:3"), &["line 4", "selectors"]),
        ("not json".into(), &["line 4", "not an entry object"]),
    ];
    for (bad, names) in cases {
        let mut lines = good.to_vec();
        lines.push(bad.clone());
        let out = from_file(&lines);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        for name in names {
            assert!(err.contains(name), "{bad}: {name:?} not in {err}");
        }
        assert!(
            err.contains("no entry of the file was stored"),
            "{bad}: {err}"
        );
        assert!(out.stdout.is_empty(), "{bad}");
        assert_eq!(count(), (1, 1), "{bad}: {err}");
    }
    let out = ca.admin(&[
        "entry",
        "create",
        "--from-file",
        file.to_str().unwrap(),
        "--parent",
        NODE1,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--parent"));

    // A good file: one ID per entry on stdout in file order, each entry as its line says.
    let lines = [
        line(1, ""),
        String::new(),
        line(2, r#", "ttl": "10m", "dns": ["w2.local"]"#),
    ];
    let out = from_file(&lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(count(), (3, 3));
    for (id, (spiffe_id, ttl, dns)) in ids.iter().zip([
        ("spiffe://mesh.local/service/w1", 3600, json!([])),
        ("spiffe://mesh.local/service/w2", 600, json!(["w2.local"])),
    ]) {
        let out = ca.admin(&["entry", "show", id]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["spiffe_id"], spiffe_id, "{v}");
        assert_eq!(v["parent_id"], NODE1, "{v}");
        assert_eq!(v["ttl_seconds"], ttl, "{v}");
        assert_eq!(v["dns"], dns, "{v}");
    }
    audit_intact(&ca);
}

#[test]
fn the_jwt_key_is_created_owner_only_and_kept_across_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let ca = Ca::start(&[]);
    let key = ca.dir.join("jwt.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = std::fs::read(&key).unwrap();
    let dir = ca.stop();
    // Restarted: the same key. A data directory from before JWT-SVIDs (no jwt.key) starts and
    // gets a new key.
    let ca = Ca::start_in(&dir, &[]);
    assert_eq!(std::fs::read(&key).unwrap(), first);
    let dir = ca.stop();
    std::fs::remove_file(&key).unwrap();
    let ca = Ca::start_in(&dir, &[]);
    assert!(
        ca.logs().contains("created a new JWT-SVID signing key"),
        "{}",
        ca.logs()
    );
    assert_ne!(std::fs::read(&key).unwrap(), first);
    let dir = ca.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

/// An entry deleted while its agent keeps asking: every SVID the agent received was recorded
/// before the deletion committed, and every request after it is refused.
#[tokio::test]
async fn svids_racing_an_entry_deletion_all_predate_it() {
    let ca = Ca::start(&[]);
    let (node1, _) = enroll(&ca, NODE1).await;
    let entry = create_entry(
        &ca,
        &[
            "--parent",
            NODE1,
            "--spiffe-id",
            WEB,
            "--selector",
            "unix:uid:1000",
        ],
    );
    let http = client(&ca.root_pem(), Some(&node1));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u16, Value)>();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (http, tx, entry, url) = (
            http.clone(),
            tx.clone(),
            entry.clone(),
            ca.url("/api/v1/agent/svid"),
        );
        workers.push(tokio::spawn(async move {
            // Each worker stops at its first refusal; the cap only bounds a broken CA.
            for _ in 0..2000 {
                let resp = http
                    .post(&url)
                    .json(&svid_body(&entry))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let v: Value = resp.json().await.unwrap();
                tx.send((status, v)).unwrap();
                if status != 200 {
                    return;
                }
            }
            panic!("the entry was never deleted");
        }));
    }
    drop(tx);
    let mut results = Vec::new();
    // Delete once a few SVIDs went through, while the workers keep asking.
    while results.iter().filter(|(s, _)| *s == 200).count() < 6 {
        results.push(rx.recv().await.unwrap());
    }
    let dir = ca.dir.clone();
    let id = entry.clone();
    let out = tokio::task::spawn_blocking(move || admin_in(&dir, &["entry", "delete", &id]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    while let Some(r) = rx.recv().await {
        results.push(r);
    }
    for w in workers {
        w.await.unwrap();
    }
    let served: Vec<&str> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v["serial"].as_str().unwrap())
        .collect();
    for (s, v) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, code(v)), (404, "unknown_entry"), "{v}");
    }
    let conn = rusqlite::Connection::open(ca.dir.join("ca.db")).unwrap();
    let deleted_at: i64 = conn
        .query_row(
            "SELECT seq FROM audit WHERE event = 'entry_delete'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let recorded: Vec<(i64, String)> = {
        let mut stmt = conn
            .prepare("SELECT seq, json_extract(detail, '$.serial') FROM audit WHERE event = 'agent_svid'")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(
        recorded.len(),
        served.len(),
        "every SVID served was recorded, and only those"
    );
    for (seq, serial) in &recorded {
        assert!(
            *seq < deleted_at,
            "SVID {serial} recorded at entry {seq}, after the delete ({deleted_at})"
        );
        assert!(served.contains(&serial.as_str()));
    }
    audit_intact(&ca);
}
