//! A root rotation step taken through one replica's data directory is followed by every
//! running replica on the same database without a restart (docs/operations.md, "Root
//! rotation"). A replica that lacks the new root's key when `activate` is recorded does not
//! half-switch: it keeps serving the rotated phase (old root signing), reports unhealthy on
//! /healthz naming the missing file and counts the failure, then catches up once the file is
//! copied.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::super::ca::common::*;
use super::shared_state::Replicas;

/// A replica reads the rotation state every second.
pub(super) const FOLLOW: Duration = Duration::from_secs(15);

pub(super) fn certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}

/// Waits until `ca` logs after `mark` a line containing `what`; returns it.
pub(super) fn logs_after(ca: &Ca, mark: usize, what: &str) -> String {
    ca.proc
        .try_wait_for_after(mark, |l| l.contains(what), FOLLOW)
        .unwrap_or_else(|| panic!("the CA never logged {what:?}:\n{}", ca.logs()))
}

/// The fingerprints of the self-signed roots `ca` publishes, in order.
pub(super) async fn bundle_roots(ca: &Ca, trust: &[u8]) -> Vec<String> {
    let pem = client(trust, None)
        .get(ca.url("/api/v1/bundle"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    certs(&pem)
        .iter()
        .filter(|c| pki::vouch::is_self_signed(c))
        .map(|c| pki::sha256_hex(c))
        .collect()
}

/// Enrolls `id` through `ca`; returns the fingerprint of the root that signed the leaf.
async fn signing_root(r: &Replicas, ca: &Ca, trust: &[u8], id: &str, roots: &[&[u8]]) -> String {
    let (_, request) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, v) = sign(
        &client(trust, None),
        ca,
        &r.token(id),
        &sign_body(&request, id, None),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let leaf = certs(v["certificate"].as_str().unwrap().as_bytes()).remove(0);
    roots
        .iter()
        .map(|pem| certs(pem).remove(0))
        .find(|root| pki::intermediate::check_issued_by(&leaf, root).is_ok())
        .map(|root| pki::sha256_hex(&root))
        .expect("the leaf chains to one of the roots")
}

pub(super) async fn health(ca: &Ca, trust: &[u8]) -> (u16, String) {
    let resp = client(trust, None)
        .get(ca.url("/healthz"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn metric(ca: &Ca, trust: &[u8], name: &str) -> u64 {
    let text = client(trust, None)
        .get(ca.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_replicas_follow_each_step_and_one_without_the_new_key_waits_for_it() {
    let r = Replicas::start(2, &[]);
    let (a, b) = (&r.cas[0], &r.cas[1]);
    let old_root = a.root_pem();
    let old_fp = a.fingerprint.clone();

    // rotate, through A's data directory: both running replicas publish both roots.
    let marks = (a.proc.mark(), b.proc.mark());
    let out = r.admin(&["root", "rotate"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let new_fp = stdout
        .trim()
        .strip_prefix("new root fingerprint (SHA-256): ")
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    let new_root = std::fs::read(a.dir.join("roots").join(format!("{new_fp}.crt"))).unwrap();
    let both = [old_root.clone(), new_root.clone()].concat();
    logs_after(a, marks.0, "now serving phase Rotated");
    logs_after(b, marks.1, "now serving phase Rotated");
    for ca in [a, b] {
        assert_eq!(
            bundle_roots(ca, &old_root).await,
            [old_fp.as_str(), new_fp.as_str()]
        );
    }

    // activate before B has the new root's key: A switches, B keeps the rotated phase.
    let marks = (a.proc.mark(), b.proc.mark());
    let out = r.admin(&["root", "activate", "--force"]);
    assert!(out.status.success(), "{out:?}");
    logs_after(a, marks.0, "now serving phase Activated");
    let missing = b.dir.join("roots").join(format!("{new_fp}.key"));
    let failed = logs_after(
        b,
        marks.1,
        "cannot follow the root rotation to phase Activated",
    );
    assert!(failed.contains(&missing.display().to_string()), "{failed}");
    let (status, body) = health(b, &both).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&format!("{new_fp}.key")), "{body}");
    assert!(metric(b, &both, "mtls_ca_root_switch_failures_total").await >= 1);
    assert_eq!(metric(b, &both, "mtls_ca_root_switches_total").await, 1);
    let roots: [&[u8]; 2] = [&old_root, &new_root];
    let id = "spiffe://mesh.local/service/during";
    assert_eq!(signing_root(&r, a, &both, id, &roots).await, new_fp);
    assert_eq!(
        signing_root(&r, b, &both, &format!("{id}-b"), &roots).await,
        old_fp,
        "B still serves the rotated phase whole: the old root signs"
    );
    // A's API certificate is the new root's: a client trusting only it gets in.
    assert_eq!(health(a, &new_root).await.0, 200);
    assert_eq!(
        bundle_roots(a, &new_root).await,
        [new_fp.as_str(), old_fp.as_str()]
    );

    // Copying the key is all B needs.
    let mark = b.proc.mark();
    let roots_dir = b.dir.join("roots");
    std::fs::create_dir_all(&roots_dir).unwrap();
    for ext in ["key", "crt"] {
        let name = format!("{new_fp}.{ext}");
        std::fs::copy(a.dir.join("roots").join(&name), roots_dir.join(&name)).unwrap();
    }
    logs_after(b, mark, "now serving phase Activated");
    assert_eq!(health(b, &new_root).await.0, 200);
    assert_eq!(
        signing_root(&r, b, &new_root, &format!("{id}-c"), &roots).await,
        new_fp
    );

    // retire is refused while B's old-root leaf is valid; revoked, it goes through.
    let out = r.admin(&["root", "retire"]);
    assert!(!out.status.success(), "{out:?}");
    let refusal = String::from_utf8_lossy(&out.stderr).into_owned();
    let serials: Vec<&str> = refusal
        .lines()
        .filter_map(|l| l.trim().strip_prefix("serial "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(serials.len(), 1, "B's leaf of the old root:\n{refusal}");
    for serial in serials {
        let out = r.admin(&["revoke", "--serial", serial]);
        assert!(out.status.success(), "{out:?}");
    }
    let marks = (a.proc.mark(), b.proc.mark());
    let out = r.admin(&["root", "retire"]);
    assert!(out.status.success(), "{out:?}");
    logs_after(a, marks.0, "now serving phase Retired");
    logs_after(b, marks.1, "now serving phase Retired");
    for ca in [a, b] {
        assert_eq!(bundle_roots(ca, &new_root).await, [new_fp.as_str()]);
    }
}
