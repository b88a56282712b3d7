//! A two-tier CA's root rotation on replicas (docs/operations.md, "Root rotation of a two-tier
//! CA"): three running `mtls-ca` replicas on one PostgreSQL database, each with its own data
//! directory holding `root.crt`, `intermediate.crt`, `intermediate.key` and `jwt.key`. The
//! offline ceremony, `root rotate --from`, `root activate` and `root retire` go through
//! replica A's data directory only; no file is copied to B or C. Each replica follows each
//! step without a restart: its PEM and SPIFFE bundles, the chain it hands out with new
//! certificates (the old intermediate and root before `activate`, the intermediate certified
//! by the new root after), its own API certificate (real TLS with a client trusting only that
//! phase's root), and the leaves of every replica verify (webpki, `pki::verify`) against each
//! phase's trust. The leaves `retire` waits for are revoked by their holders over mTLS through
//! another replica, and every replica's CRL (the one intermediate key's) refuses exactly those.
//! A replica restarted in each phase (rotated, activated, retired) serves that phase;
//! `audit verify` passes at the end.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::path::Path;

use rustls::pki_types::CertificateDer;

use super::super::ca::common::*;
use super::root_rotation::{bundle_roots, certs, health, logs_after};
use super::shared_state::Replicas;
use crate::e2e::common::two_tier_rotate;
use pki::verify::{Purpose, VerifyOptions};

/// A certificate handed out by a replica, with its holder's key.
struct Leaf {
    serial: String,
    der: CertificateDer<'static>,
    /// The `chain` of the answer, PEM text of each certificate.
    chain: Vec<String>,
    /// Leaf and intermediate, as services present them over mTLS.
    holder: Identity,
}

/// Enrolls `id` through `ca` (the API verified with `trust`).
async fn enroll_at(r: &Replicas, ca: &Ca, trust: &[u8], id: &str) -> Leaf {
    let (key, request) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, v) = sign(
        &client(trust, None),
        ca,
        &r.token(id),
        &sign_body(&request, id, None),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let cert_pem = v["certificate"].as_str().unwrap().to_string();
    let chain: Vec<String> = v["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(chain.len(), 2, "intermediate and root: {v}");
    Leaf {
        serial: v["serial"].as_str().unwrap().to_string(),
        der: certs(cert_pem.as_bytes()).remove(0),
        holder: Identity {
            cert_pem: format!("{cert_pem}{}", chain[0]),
            key_pem: key.serialize_pem(),
        },
        chain,
    }
}

/// Verifies `leaf` with the intermediate it was handed out with against `roots` (PEM), as a
/// service's verifier does (webpki through `pki::verify`).
fn verifies(leaf: &Leaf, roots: &[u8]) -> Result<(), String> {
    verifies_with_crl(leaf, roots, &[])
}

/// [`verifies`] enforcing the CRLs `crls` (DER).
fn verifies_with_crl(leaf: &Leaf, roots: &[u8], crls: &[&[u8]]) -> Result<(), String> {
    let anchors = certs(roots);
    let intermediate = certs(leaf.chain[0].as_bytes());
    pki::verify::verify_chain(
        &leaf.der,
        &intermediate,
        &anchors,
        crls,
        &VerifyOptions::new(time::OffsetDateTime::now_utc(), Purpose::Client),
    )
    .map(|_| ())
    .map_err(|e| format!("serial {}: {e}", leaf.serial))
}

/// The fingerprints of the roots `ca`'s SPIFFE bundle (`/api/v1/bundle/spiffe`) holds as
/// X.509 authorities, in order.
async fn spiffe_roots(ca: &Ca, trust: &[u8]) -> Vec<String> {
    let json = client(trust, None)
        .get(ca.url("/api/v1/bundle/spiffe"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    pki::spiffe_bundle::SpiffeBundle::parse(&json)
        .unwrap()
        .x509_authorities
        .iter()
        .filter(|c| pki::vouch::is_self_signed(c))
        .map(|c| pki::sha256_hex(c))
        .collect()
}

/// What one phase looks like from outside a replica.
struct Phase<'a> {
    /// The self-signed roots of the bundles, in order.
    roots: &'a [&'a str],
    /// The bundle's roots (PEM): the trust services have in this phase.
    trust: &'a [u8],
    /// The root the CA signs under: its API certificate chains to it alone.
    signing_root: &'a [u8],
    /// The chain new certificates come with (intermediate, root), when known.
    chain: Option<&'a [String]>,
}

/// Checks that replica `ca` serves `phase`: both bundles, its API certificate (a client
/// trusting only the signing root gets in), and a new leaf whose chain is the phase's and
/// which verifies against the phase's trust. Returns the leaf.
async fn serves(r: &Replicas, ca: &Ca, phase: &Phase<'_>, id: &str) -> Leaf {
    assert_eq!(bundle_roots(ca, phase.trust).await, phase.roots, "{id}");
    let mut spiffe = spiffe_roots(ca, phase.trust).await;
    spiffe.sort();
    let mut wanted = phase.roots.to_vec();
    wanted.sort();
    assert_eq!(spiffe, wanted, "SPIFFE bundle of {id}");
    let (status, body) = health(ca, phase.signing_root).await;
    assert_eq!(status, 200, "{id}: {body}");
    let leaf = enroll_at(r, ca, phase.trust, id).await;
    let root = certs(leaf.chain[1].as_bytes()).remove(0);
    assert_eq!(
        root.as_ref(),
        certs(phase.signing_root)[0].as_ref(),
        "{id} hands out the chain of the signing root"
    );
    if let Some(chain) = phase.chain {
        assert_eq!(leaf.chain, chain, "{id}");
    }
    verifies(&leaf, phase.signing_root).unwrap();
    verifies(&leaf, phase.trust).unwrap();
    leaf
}

/// Every file under `dir` with its content.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_two_tier_replicas_follow_rotate_activate_retire_with_no_file_copied() {
    let mut r = Replicas::start_two_tier(3);
    let a_dir = r.cas[0].dir.clone();
    let old_root = r.cas[0].root_pem();
    let old_fp = r.cas[0].fingerprint.clone();
    let old_inter = std::fs::read_to_string(a_dir.join("intermediate.crt")).unwrap();
    let old_chain = [
        old_inter.clone(),
        String::from_utf8(old_root.clone()).unwrap(),
    ];
    let others: Vec<_> = r.cas[1..].iter().map(|ca| ca.dir.clone()).collect();
    let before: Vec<_> = others.iter().map(|d| snapshot(d)).collect();

    let mut leaves = Vec::new();
    let before_phase = Phase {
        roots: &[old_fp.as_str()],
        trust: &old_root,
        signing_root: &old_root,
        chain: Some(&old_chain),
    };
    for (i, ca) in r.cas.iter().enumerate() {
        let id = format!("spiffe://mesh.local/service/before-{i}");
        leaves.push(serves(&r, ca, &before_phase, &id).await);
    }

    // rotate: the ceremony where the offline root is, `rotate --from` through A only.
    let marks: Vec<usize> = r.cas.iter().map(|ca| ca.proc.mark()).collect();
    let new_offline = r.work_dir().join("offline-new");
    let stdout = two_tier_rotate(
        r.work_dir(),
        &a_dir,
        &["--store", &r.url],
        &r.offline_root(),
        &new_offline,
        &r.passphrase_file(),
    );
    let new_fp = stdout
        .trim()
        .strip_prefix("new root fingerprint (SHA-256): ")
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    let new_root = std::fs::read(new_offline.join("root.crt")).unwrap();
    assert_eq!(pki::sha256_hex(&certs(&new_root)[0]), new_fp);
    for (ca, mark) in r.cas.iter().zip(&marks) {
        logs_after(ca, *mark, "now serving phase Rotated");
    }
    let both = [old_root.clone(), new_root.clone()].concat();
    let rotated = Phase {
        roots: &[old_fp.as_str(), new_fp.as_str()],
        trust: &both,
        signing_root: &old_root,
        chain: Some(&old_chain),
    };
    for (i, ca) in r.cas.iter().enumerate() {
        let id = format!("spiffe://mesh.local/service/rotated-{i}");
        leaves.push(serves(&r, ca, &rotated, &id).await);
    }
    // C restarted in the rotated phase serves it.
    r.restart(2);
    let c = &r.cas[2];
    leaves.push(
        serves(
            &r,
            c,
            &rotated,
            "spiffe://mesh.local/service/rotated-restarted",
        )
        .await,
    );
    let issued_before_activate: Vec<String> = leaves.iter().map(|l| l.serial.clone()).collect();

    // activate through A: every replica hands out the intermediate certified by the new root.
    let marks: Vec<usize> = r.cas.iter().map(|ca| ca.proc.mark()).collect();
    let out = r.admin(&["root", "activate", "--force"]);
    assert!(out.status.success(), "{out:?}");
    for (ca, mark) in r.cas.iter().zip(&marks) {
        logs_after(ca, *mark, "now serving phase Activated");
    }
    let activated = Phase {
        roots: &[new_fp.as_str(), old_fp.as_str()],
        trust: &both,
        signing_root: &new_root,
        chain: None,
    };
    let first = serves(
        &r,
        &r.cas[0],
        &activated,
        "spiffe://mesh.local/service/act-0",
    )
    .await;
    let new_chain = first.chain.clone();
    let new_inter = certs(new_chain[0].as_bytes()).remove(0);
    let old_inter_der = certs(old_inter.as_bytes()).remove(0);
    assert_ne!(new_inter, old_inter_der, "a new intermediate certificate");
    assert!(
        pki::vouch::same_subject_and_key(&new_inter, &old_inter_der),
        "the intermediate key and name stay"
    );
    pki::intermediate::check_issued_by(&new_inter, &certs(&new_root)[0]).unwrap();
    let rotation = std::fs::read_to_string(r.work_dir().join("rotation.pem")).unwrap();
    assert!(rotation.contains(new_chain[0].trim()), "from the ceremony");
    leaves.push(first);
    let activated = Phase {
        chain: Some(&new_chain),
        ..activated
    };
    for (i, ca) in r.cas.iter().enumerate().skip(1) {
        let id = format!("spiffe://mesh.local/service/act-{i}");
        leaves.push(serves(&r, ca, &activated, &id).await);
    }
    // B restarted in the activated phase serves it (its intermediate.crt is still the old
    // root's).
    r.restart(1);
    let b = &r.cas[1];
    leaves.push(
        serves(
            &r,
            b,
            &activated,
            "spiffe://mesh.local/service/act-restarted",
        )
        .await,
    );
    // The leaves of every replica and phase verify against the activated phase's trust.
    for leaf in &leaves {
        verifies(leaf, &both).unwrap();
    }

    // retire through A: refused while the leaves issued before activate are valid; each
    // holder revokes its own over mTLS through another replica (the old root's leaves are
    // still accepted by every API until retire), then retire goes through.
    let out = r.admin(&["root", "retire"]);
    assert!(!out.status.success(), "{out:?}");
    let refusal = String::from_utf8_lossy(&out.stderr).into_owned();
    let listed: Vec<String> = refusal
        .lines()
        .filter_map(|l| l.trim().strip_prefix("serial "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    for serial in &issued_before_activate {
        assert!(listed.contains(serial), "{serial} not in:\n{refusal}");
    }
    for (n, serial) in listed.iter().enumerate() {
        let leaf = leaves
            .iter()
            .find(|l| &l.serial == serial)
            .unwrap_or_else(|| panic!("{serial} is none of ours:\n{refusal}"));
        let ca = &r.cas[(n + 1) % r.cas.len()];
        let resp = client(&both, Some(&leaf.holder))
            .post(ca.url("/api/v1/revoke"))
            .json(&serde_json::json!({ "serial": serial }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{}",
            resp.text().await.unwrap()
        );
    }
    // Every replica's CRL, signed by the one intermediate key (either certificate names it),
    // lists the revocations made through the others; webpki refuses exactly those leaves,
    // handed out with either chain.
    for ca in &r.cas {
        let crl = client(&both, None)
            .get(ca.url("/api/v1/crl"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        for inter in [&old_inter_der, &new_inter] {
            pki::crl::verify_crl(&crl, std::slice::from_ref(inter)).unwrap();
        }
        for leaf in &leaves {
            let result = verifies_with_crl(leaf, &both, &[&crl]);
            if listed.contains(&leaf.serial) {
                let refused = result.expect_err(&leaf.serial);
                assert!(refused.contains("revoked"), "{refused}");
            } else {
                result.unwrap();
            }
        }
    }
    let marks: Vec<usize> = r.cas.iter().map(|ca| ca.proc.mark()).collect();
    let out = r.admin(&["root", "retire"]);
    assert!(out.status.success(), "{out:?}");
    for (ca, mark) in r.cas.iter().zip(&marks) {
        logs_after(ca, *mark, "now serving phase Retired");
    }
    let retired = Phase {
        roots: &[new_fp.as_str()],
        trust: &new_root,
        signing_root: &new_root,
        chain: Some(&new_chain),
    };
    for (i, ca) in r.cas.iter().enumerate() {
        let id = format!("spiffe://mesh.local/service/retired-{i}");
        serves(&r, ca, &retired, &id).await;
    }
    // C restarted after retire too.
    r.restart(2);
    serves(
        &r,
        &r.cas[2],
        &retired,
        "spiffe://mesh.local/service/retired-restarted",
    )
    .await;
    // What was handed out with the old chain no longer verifies; the new chain does.
    for leaf in &leaves {
        let result = verifies(leaf, &new_root);
        if leaf.chain == old_chain {
            assert!(result.is_err(), "serial {}", leaf.serial);
        } else {
            result.unwrap();
        }
    }

    // Nothing was copied to (or written into) B's and C's data directories.
    let after: Vec<_> = others.iter().map(|d| snapshot(d)).collect();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            b.keys().collect::<Vec<_>>(),
            a.keys().collect::<Vec<_>>(),
            "the files of a replica's data directory"
        );
        for (name, content) in b {
            assert_eq!(content, &a[name], "{name}");
        }
    }
    let verdict = r.audit_verify();
    assert!(verdict.contains("audit log intact"), "{verdict}");
}
