//! Single-use tokens, the audit chain and revocations hold across replicas.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;

use super::super::ca::common::*;
use testkit::postgres::PgCluster;
use x509_parser::prelude::FromDer;

/// Replicas on a new database of the shared cluster: the first creates the root (and for a
/// two-tier CA its offline root and intermediate), the others get a copy of its key material.
pub struct Replicas {
    pub url: String,
    pub cas: Vec<Ca>,
    /// The arguments every replica was started with (`--store URL`, then the extra ones).
    args: Vec<String>,
    _tmp: tempfile::TempDir,
}

/// What a single-tier replica's data directory holds (docs/operations.md, "Replicas").
const ROOT_FILES: [&str; 3] = ["root.crt", "root.key", "jwt.key"];
/// What a two-tier replica's data directory holds: no root key.
const TWO_TIER_FILES: [&str; 4] = [
    "root.crt",
    "intermediate.crt",
    "intermediate.key",
    "jwt.key",
];
/// The passphrase of the offline root of [`Replicas::start_two_tier`].
pub const PASSPHRASE: &str = "a long enough passphrase\n";

/// Copies the key material (root certificate and key, JWT-SVID key; modes kept) of `from`
/// into a new directory `to`, as docs/operations.md tells operators to.
pub fn copy_root(from: &Path, to: &Path) {
    copy_files(from, to, &ROOT_FILES);
}

fn copy_files(from: &Path, to: &Path, files: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for file in files {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

impl Replicas {
    pub fn start(n: usize, extra: &[&str]) -> Replicas {
        let url = PgCluster::shared().new_database();
        let tmp = tempfile::tempdir().unwrap();
        Replicas::start_copies(n, url, tmp, extra, &ROOT_FILES)
    }

    /// `n` replicas of a two-tier CA (`init --offline-root`, docs/operations.md): the offline
    /// root in [`Replicas::offline_root`], sealed with [`Replicas::passphrase_file`]; each
    /// replica's data directory holds `root.crt`, `intermediate.crt`, `intermediate.key` and
    /// `jwt.key`, as an operator deploys them.
    pub fn start_two_tier(n: usize) -> Replicas {
        let url = PgCluster::shared().new_database();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("pass"), PASSPHRASE).unwrap();
        let (offline, pass) = (tmp.path().join("offline"), tmp.path().join("pass"));
        let init = admin_in(
            &tmp.path().join("r0"),
            &[
                "--store",
                &url,
                "init",
                "--offline-root",
                &offline.display().to_string(),
                "--passphrase-file",
                &pass.display().to_string(),
            ],
        );
        assert!(init.status.success(), "{init:?}");
        Replicas::start_copies(n, url, tmp, &[], &TWO_TIER_FILES)
    }

    /// Starts replica 0 on `<tmp>/r0`, then each other one on a copy of `files` from it.
    fn start_copies(
        n: usize,
        url: String,
        tmp: tempfile::TempDir,
        extra: &[&str],
        files: &[&str],
    ) -> Replicas {
        let mut args = vec!["--store".to_string(), url.clone()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let first = Ca::start_in(&tmp.path().join("r0"), &arg_refs);
        let mut cas = vec![first];
        for i in 1..n {
            let dir = tmp.path().join(format!("r{i}"));
            copy_files(&cas[0].dir, &dir, files);
            cas.push(Ca::start_in(&dir, &arg_refs));
        }
        for ca in &cas[1..] {
            assert_eq!(
                ca.fingerprint, cas[0].fingerprint,
                "every replica serves one root"
            );
        }
        Replicas {
            url,
            cas,
            args,
            _tmp: tmp,
        }
    }

    /// Stops replica `i` (SIGTERM) and starts it again on the same data directory.
    pub fn restart(&mut self, i: usize) {
        let dir = self.cas.remove(i).stop();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.cas.insert(i, Ca::start_in(&dir, &args));
    }

    /// Where the replicas' directories (`r0`, `r1`, ...) and the offline root are.
    pub fn work_dir(&self) -> &Path {
        self._tmp.path()
    }

    /// The offline root of [`Replicas::start_two_tier`].
    pub fn offline_root(&self) -> std::path::PathBuf {
        self.work_dir().join("offline")
    }

    /// The file holding [`PASSPHRASE`].
    pub fn passphrase_file(&self) -> std::path::PathBuf {
        self.work_dir().join("pass")
    }

    /// Runs an admin subcommand against the shared database (from replica 0's directory).
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--store", self.url.as_str()];
        all.extend_from_slice(args);
        self.cas[0].admin(&all)
    }

    pub fn token(&self, id: &str) -> String {
        self.cas[0].token(id, &["--store", &self.url])
    }

    pub fn audit_verify(&self) -> String {
        let out = self.admin(&["audit", "verify"]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "audit verify failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn cert_count(&self) -> usize {
        let out = self.admin(&["list", "--format", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["certificates"].as_array().unwrap().len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_redeemed_100_times_over_three_replicas_gives_one_certificate() {
    let r = Replicas::start(3, &[]);
    let id = "spiffe://mesh.local/service/race";
    let token = r.token(id);
    let http = client(&r.cas[0].root_pem(), None);
    let bodies: Vec<(String, serde_json::Value)> = (0..100)
        .map(|i| {
            let url = r.cas[i % 3].url("/api/v1/sign");
            let body = sign_body(&csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1, id, None);
            (url, body)
        })
        .collect();
    let requests = bodies.iter().map(|(url, body)| {
        let http = http.clone();
        let token = token.clone();
        async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let v: serde_json::Value = resp.json().await.unwrap();
            (status, v)
        }
    });
    let results = futures::future::join_all(requests).await;
    let issued: Vec<&serde_json::Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v)
        .collect();
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(issued.len(), 1, "exactly one certificate: {statuses:?}");
    let refused = results.iter().filter(|(s, _)| *s != 200);
    let mut refusals = 0;
    for (status, v) in refused {
        assert_eq!(*status, 401, "{v}");
        assert_eq!(v["error"]["code"], "token_used", "{v}");
        refusals += 1;
    }
    assert_eq!(refusals, 99);
    assert_eq!(r.cert_count(), 1);
    let verdict = r.audit_verify();
    assert!(verdict.contains("audit log intact"), "{verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_replica_is_in_the_next_crl_of_another() {
    // With the default CRL validity (1h) a replica re-signs its cached CRL only after half an
    // hour, or when the revocation epoch it reads from the shared database moves.
    let r = Replicas::start(2, &[]);
    let (a, b) = (&r.cas[0], &r.cas[1]);
    let id = "spiffe://mesh.local/service/leaver";
    let (key, request) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, issued) = sign(
        &client(&a.root_pem(), None),
        a,
        &r.token(id),
        &sign_body(&request, id, None),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let holder = Identity {
        cert_pem: issued["certificate"].as_str().unwrap().to_string(),
        key_pem: key.serialize_pem(),
    };
    let serial = issued["serial"].as_str().unwrap().to_string();
    let fetch_crl = |ca: &Ca| {
        let http = client(&ca.root_pem(), None);
        let url = ca.url("/api/v1/crl");
        let root = root_der(&ca.root_pem());
        async move {
            let der = http.get(url).send().await.unwrap().bytes().await.unwrap();
            // Signed by the shared root, whichever replica signed it.
            pki::crl::verify_crl(&der, &[root]).unwrap();
            let (_, crl) =
                x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
            crl.iter_revoked_certificates()
                .map(|r| hex::encode(pki::serial::strip_leading_zeros(r.raw_serial())))
                .collect::<Vec<_>>()
        }
    };
    // B has signed and cached a CRL without the serial.
    assert!(!fetch_crl(b).await.contains(&serial));

    let resp = client(&a.root_pem(), Some(&holder))
        .post(a.url("/api/v1/revoke"))
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

    // The revocation committed before A answered; B's very next CRL lists it (well within
    // crl-refresh + 1 s: no waiting at all).
    let listed = fetch_crl(b).await;
    assert!(
        listed.contains(&serial),
        "B's CRL {listed:?} lacks {serial}"
    );
    // And B refuses the revoked certificate for renewal like A would.
    let renew = client(&b.root_pem(), Some(&holder))
        .post(b.url("/api/v1/renew"))
        .json(&serde_json::json!({ "csr": csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]).1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(renew.status().as_u16(), 403);
    let v: serde_json::Value = renew.json().await.unwrap();
    assert_eq!(v["error"]["code"], "certificate_revoked", "{v}");
    assert!(r.audit_verify().contains("audit log intact"));
}

fn root_der(pem: &[u8]) -> rustls::pki_types::CertificateDer<'static> {
    pki::pem::parse_certificates(pem).unwrap().remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_issuance_over_three_replicas_keeps_one_audit_chain() {
    let r = Replicas::start(3, &[]);
    let http = client(&r.cas[0].root_pem(), None);
    let jobs: Vec<(String, String, serde_json::Value)> = (0..30)
        .map(|i| {
            let id = format!("spiffe://mesh.local/load/w{i}");
            let token = r.token(&id);
            let body = sign_body(&csr(&rcgen::PKCS_ECDSA_P256_SHA256, &[]).1, &id, None);
            (r.cas[i % 3].url("/api/v1/sign"), token, body)
        })
        .collect();
    let requests = jobs.iter().map(|(url, token, body)| {
        let http = http.clone();
        async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(body)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(r.cert_count(), 30);
    // 30 token entries, 30 issue entries and each replica's API certificate, in one chain.
    let verdict = r.audit_verify();
    assert!(
        verdict.contains("audit log intact: 63 entries"),
        "{verdict}"
    );
}

/// A two-tier CA on PostgreSQL (docs/operations.md): replicas given a copy of one data
/// directory share the intermediate, so a leaf from one and the CRL of the other have the same
/// issuer, and a revocation through one is in the other's CRL, signed by that intermediate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tier_replicas_share_the_intermediate_and_its_crl() {
    let r = Replicas::start_two_tier(2);
    let (a, b) = (&r.cas[0], &r.cas[1]);
    assert_eq!(a.fingerprint, b.fingerprint, "one offline root");
    let r0 = &a.dir;

    let id = "spiffe://mesh.local/service/leaver";
    let token = r.token(id);
    let (key, request) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let (status, issued) = sign(
        &client(&a.root_pem(), None),
        a,
        &token,
        &sign_body(&request, id, None),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let intermediate = std::fs::read_to_string(r0.join("intermediate.crt")).unwrap();
    assert_eq!(issued["chain"][0], intermediate.as_str(), "{issued}");
    assert_eq!(issued["chain"][1], String::from_utf8(a.root_pem()).unwrap());
    let serial = issued["serial"].as_str().unwrap().to_string();
    // The holder presents leaf + intermediate, as services do.
    let holder = Identity {
        cert_pem: format!("{}{intermediate}", issued["certificate"].as_str().unwrap()),
        key_pem: key.serialize_pem(),
    };
    let resp = client(&b.root_pem(), Some(&holder))
        .post(b.url("/api/v1/revoke"))
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

    let der = client(&a.root_pem(), None)
        .get(a.url("/api/v1/crl"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let inter_der = pki::pem::parse_certificates(intermediate.as_bytes())
        .unwrap()
        .remove(0);
    assert!(
        pki::crl::verify_crl(&der, &[root_der(&a.root_pem())]).is_err(),
        "the CRL is the intermediate's, not the root's"
    );
    let crl = pki::crl::verify_crl(&der, &[inter_der]).unwrap();
    let wanted = hex::decode(&serial).unwrap();
    assert!(
        crl.serials
            .iter()
            .any(|s| s.as_slice() == pki::serial::strip_leading_zeros(&wanted)),
        "A's CRL lacks {serial}"
    );
}
