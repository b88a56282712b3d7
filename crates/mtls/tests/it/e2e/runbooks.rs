//! The copy-paste runbooks of docs/operations.md, run by bash as written against a real CA
//! (only the CA's address differs), after the README's curl enrollment made `api.crt`.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Output;

use super::federation::{call, start_domain_ca, start_server_of_a};
use super::readme_recipe::{doc_block, readme_block, report, run_in, README_CA};
use crate::programs::{self, start_ca};
use testkit::CaProc;

#[test]
fn the_ocsp_runbook_reports_good_then_revoked() {
    programs::require(&["mtls-ca", "mtls-inspect"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_data = dir.path().join("ca-data");
    let ca = start_ca("ca", &ca_data, "127.0.0.1:0", &[]);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    let enroll = readme_block().replace(README_CA, &ca.url());
    let out = run_in(&work, &ca_data, &enroll);
    assert!(out.status.success(), "enrollment: {}", report(&out));

    let runbook = doc_block("docs/operations.md", "<!-- runbook: ocsp -->");
    assert!(runbook.contains(README_CA), "the runbook names {README_CA}");
    let out = run_in(&work, &ca_data, &runbook.replace(README_CA, &ca.url()));
    assert!(out.status.success(), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Response verify OK"), "{}", report(&out));
    assert!(
        stdout.contains("OCSP response api.ocsp"),
        "{}",
        report(&out)
    );
    assert!(stdout.contains("REVOKED at"), "{}", report(&out));
    assert!(stdout.contains("keyCompromise"), "{}", report(&out));
}

#[test]
fn the_pinned_rotation_runbook_moves_a_client_to_a_new_key_and_the_old_one_is_refused() {
    programs::require(&["mtls-server", "mtls-client"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path();
    let server = testkit::self_signed("spiffe://mesh.local/service/api-server");
    let client = testkit::self_signed("spiffe://mesh.local/service/payment-worker");
    let (server_cert, server_key) = server.write(work, "server");
    client.write(work, "client");
    let (old_cert, old_key) = client.write(work, "client-old");
    std::fs::write(
        work.join("client-pins.txt"),
        format!("{}\n", client.spki_pin()),
    )
    .expect("pins");
    let path = |p: &std::path::Path| p.display().to_string();
    let running = programs::start_server(
        "server",
        &[
            "--cert".into(),
            path(&server_cert),
            "--key".into(),
            path(&server_key),
            "--trust-pins-file".into(),
            path(&work.join("client-pins.txt")),
            "--reload-interval".into(),
            "1s".into(),
        ],
    );
    let admin = format!(
        "http://127.0.0.1:{}",
        running.admin_port.expect("admin listener")
    );
    let runbook = doc_block("docs/operations.md", "<!-- runbook: pinned-rotation -->");
    for named in ["http://127.0.0.1:9090", "https://localhost:8443"] {
        assert!(runbook.contains(named), "the runbook names {named}");
    }
    let script = runbook
        .replace("http://127.0.0.1:9090", &admin)
        .replace("https://localhost:8443", &running.url());
    let out = run_in(work, work, &script);
    assert!(out.status.success(), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Response: 200"), "{}", report(&out));
    let (_, metrics) = running.admin_get("/metrics");
    assert!(metrics.contains("mesh_pins_reloads_total 2\n"), "{metrics}");
    // The old key is refused now.
    let refused = std::process::Command::new(programs::client())
        .arg("--cert")
        .arg(&old_cert)
        .arg("--key")
        .arg(&old_key)
        .args([
            "--trust-pin",
            &server.spki_pin(),
            "--server",
            &running.url(),
        ])
        .output()
        .expect("run mtls-client");
    assert!(!refused.status.success(), "{refused:?}");
    running.proc.wait_for(
        |l| l.contains("matches none of the pinned keys"),
        std::time::Duration::from_secs(10),
    );
}

/// The federation runbooks as written, with only B's endpoint and fingerprint filled in: the
/// add block on A for b.example, and (as the runbook says, "the same on B's host with A's
/// values") on B for a.example. Then b's x calls a's server, which names it in --allow-id;
/// after the remove block on A the server drops b.example at its next trust refresh and x is
/// refused.
#[test]
fn the_federation_runbooks_federate_two_trust_domains_and_stop_federating() {
    programs::require(&["mtls-ca", "mtls-server", "mtls-client"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let a = start_domain_ca(dir.path(), "a.example");
    let b = start_domain_ca(dir.path(), "b.example");
    let add = doc_block("docs/operations.md", "<!-- runbook: federation-add -->");
    for named in [
        "https://ca-b.internal:8443",
        "B_FINGERPRINT=sha256:...",
        "b.example",
    ] {
        assert!(add.contains(named), "the runbook names {named}");
    }
    // On `ca`'s host, federating `other`'s trust domain `td`.
    let federate = |ca: &CaProc, other: &CaProc, td: &str| {
        let work = dir.path().join(format!("work-{td}"));
        std::fs::create_dir(&work).expect("mkdir");
        let script = add
            .replace(
                "https://ca-b.internal:8443",
                &format!("https://127.0.0.1:{}", other.port),
            )
            .replace("sha256:...", &format!("sha256:{}", other.fingerprint))
            .replace("b.example", td);
        let out = run_in(&work, &ca.data_dir, &script);
        assert!(out.status.success(), "{}", report(&out));
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        let row = listed
            .lines()
            .find(|l| l.starts_with(td))
            .unwrap_or_else(|| panic!("{td} not listed: {}", report(&out)));
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(columns[1], "1", "one root: {row}");
        assert_ne!(columns[2], "never", "fetched: {row}");
        work
    };
    let work_a = federate(&a, &b, "b.example");
    federate(&b, &a, "a.example");

    let server = start_server_of_a(&a, dir.path(), &[]);
    let x = "spiffe://b.example/service/x";
    let out = call(&b, dir.path(), "client-b-x", x, &server)
        .unwrap_or_else(|out| panic!("the federated call failed:\n{out}"));
    assert!(out.contains(": 200"), "{out}");

    let remove = doc_block("docs/operations.md", "<!-- runbook: federation-remove -->");
    let mark = server.proc.mark();
    let out = run_in(&work_a, &a.data_dir, &remove);
    assert!(out.status.success(), "{}", report(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("audit log intact"),
        "{}",
        report(&out)
    );
    let updated = server.proc.wait_for_after(
        mark,
        |l| l.contains("federated_bundles_updated"),
        std::time::Duration::from_secs(60),
    );
    assert!(!updated.contains("b.example"), "{updated}");
    let out = call(&b, dir.path(), "client-b-x-again", x, &server)
        .expect_err("after the remove runbook, b's caller must be refused");
    assert!(!out.contains(": 200"), "{out}");
}

/// The offline-root runbook, then the intermediate-renewal runbook, as written; the CA then
/// starts on the directory, pins the offline root and serves the renewed intermediate.
#[test]
fn the_offline_root_and_intermediate_renewal_runbooks_run_as_written() {
    let (_dir, work, ca_data, out) = offline_root_runbook();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let fingerprint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("root fingerprint (SHA-256): "))
        .unwrap_or_else(|| panic!("no fingerprint: {}", report(&out)))
        .to_string();
    let first = std::fs::read_to_string(ca_data.join("intermediate.crt")).expect("intermediate");

    let renew = doc_block(
        "docs/operations.md",
        "<!-- runbook: intermediate-renewal -->",
    );
    let out = run_in(&work, &ca_data, &renew);
    assert!(out.status.success(), "{}", report(&out));
    let renewed = std::fs::read_to_string(ca_data.join("intermediate.crt")).expect("renewed");
    assert_ne!(first, renewed, "the runbook installed a new certificate");

    let ca = start_ca("ca", &ca_data, "127.0.0.1:0", &[]);
    assert_eq!(ca.fingerprint, fingerprint);
}

#[test]
fn the_pkcs11_runbook_makes_a_ca_whose_key_is_in_softhsm_and_it_serves() {
    programs::require(&["mtls-ca"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    // `init` wants an empty data directory: the runbook's ./ca links to this one.
    let ca_data = dir.path().join("ca-data");
    std::fs::create_dir(&ca_data).expect("mkdir");
    let runbook = doc_block("docs/operations.md", "<!-- runbook: pkcs11 -->");
    let out = run_in(&work, &ca_data, &runbook);
    assert!(out.status.success(), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("root fingerprint (SHA-256): "),
        "{}",
        report(&out)
    );
    assert!(stdout.contains("never extractable"), "{}", report(&out));
    assert!(
        stdout.contains("pkcs11:token=mesh-ca;object=ca-key\n"),
        "{}",
        report(&out)
    );
    // The JWT-SVID key is in the token too: jwt.pkcs11 names it, and no jwt.key exists.
    assert!(
        stdout.contains("pkcs11:token=mesh-ca;object=ca-key-jwt\n"),
        "{}",
        report(&out)
    );

    // The CA it made starts with the key in the token.
    let conf = work.join("hsm/softhsm2.conf");
    let ca = testkit::start_ca_with_env(
        &programs::ca(),
        "ca",
        &ca_data,
        "127.0.0.1:0",
        &[],
        &[
            ("SOFTHSM2_CONF", conf.as_os_str()),
            (
                "MTLS_CA_PKCS11_MODULE",
                std::ffi::OsStr::new(testkit::softhsm::MODULE),
            ),
            ("MTLS_CA_PKCS11_PIN_FILE", work.join("pin").as_os_str()),
        ],
    );
    ca.proc.wait_for(
        |l| l.contains("whose key is in the token pkcs11:token=mesh-ca;object=ca-key"),
        std::time::Duration::from_secs(30),
    );
}

/// The root-rotation runbook, as written, against a running CA that is never restarted: the CA
/// follows each step, ends serving only the new root (its bundle and its own API certificate),
/// and the audit chain holds the three steps.
#[test]
fn the_root_rotation_runbook_moves_a_running_ca_to_a_new_root_without_a_restart() {
    programs::require(&["mtls-ca"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_data = dir.path().join("ca-data");
    let ca = start_ca("ca", &ca_data, "127.0.0.1:0", &[]);
    let old_fp = ca.fingerprint.clone();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");

    let runbook = doc_block("docs/operations.md", "<!-- runbook: root-rotation -->");
    assert!(!runbook.contains("restart"), "commands only: {runbook}");
    let out = run_in(&work, &ca_data, &runbook);
    assert!(out.status.success(), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let new_fp = stdout
        .lines()
        .find_map(|l| l.strip_prefix("new root fingerprint (SHA-256): "))
        .unwrap_or_else(|| panic!("{}", report(&out)))
        .to_string();
    assert!(stdout.contains("phase: retired"), "{}", report(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("waiting until"),
        "--wait waited the overlap: {}",
        report(&out)
    );

    // The running CA followed the steps (activate and retire may land within one of its
    // one-second checks: with no leaf of the old root, retire follows at once), and serves the
    // new root alone.
    for phase in ["Rotated", "Retired"] {
        ca.proc.wait_for(
            |l| l.contains(&format!("now serving phase {phase}")),
            std::time::Duration::from_secs(10),
        );
    }
    let new_root = ca_data.join("roots").join(format!("{new_fp}.crt"));
    assert_only_the_new_root_is_served(&work, &ca_data, &ca.url(), &new_root, &new_fp, &old_fp);
}

/// The two-tier root-rotation runbook, as written, against a running two-tier CA (made by the
/// offline-root runbook) that is never restarted: the CA follows each step, ends serving the
/// new root alone with its API certificate under the intermediate the new root certified,
/// takes up the renewal from the new root live, and the audit chain holds the steps.
#[test]
fn the_two_tier_root_rotation_runbook_moves_a_running_two_tier_ca_to_a_new_root() {
    let (_dir, work, ca_data, _) = offline_root_runbook();
    let ca = start_ca("ca", &ca_data, "127.0.0.1:0", &[]);
    let old_fp = ca.fingerprint.clone();

    let runbook = doc_block(
        "docs/operations.md",
        "<!-- runbook: root-rotation-two-tier -->",
    );
    assert!(!runbook.contains("restart"), "commands only: {runbook}");
    let mark = ca.proc.mark();
    let out = run_in(&work, &ca_data, &runbook);
    assert!(out.status.success(), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let new_fp = stdout
        .lines()
        .find_map(|l| l.strip_prefix("new root fingerprint (SHA-256): "))
        .unwrap_or_else(|| panic!("{}", report(&out)))
        .to_string();
    assert!(stdout.contains("phase: retired"), "{}", report(&out));
    let rotation = std::fs::read_to_string(work.join("rotation.pem")).expect("rotation.pem");
    assert!(
        !rotation.contains("PRIVATE KEY"),
        "a public file: {rotation}"
    );

    for phase in ["Rotated", "Retired"] {
        ca.proc
            .try_wait_for_after(
                mark,
                |l| l.contains(&format!("now serving phase {phase}")),
                std::time::Duration::from_secs(10),
            )
            .unwrap_or_else(|| panic!("no phase {phase}:\n{}", ca.proc.output()));
    }
    ca.proc
        .try_wait_for_after(
            mark,
            |l| l.contains("intermediate reloaded"),
            std::time::Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("the renewal was not taken up:\n{}", ca.proc.output()));
    let new_root = work.join("offline-root-new/root.crt");
    assert_only_the_new_root_is_served(&work, &ca_data, &ca.url(), &new_root, &new_fp, &old_fp);
}

/// The end of a root rotation runbook: the CA's API certificate chains to `new_root` (curl
/// pinned to it), the bundle holds that root alone (`old_fp` gone) and the audit chain verifies.
fn assert_only_the_new_root_is_served(
    work: &Path,
    ca_data: &Path,
    url: &str,
    new_root: &Path,
    new_fp: &str,
    old_fp: &str,
) {
    let bundle = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(new_root)
        .arg(format!("{url}/api/v1/bundle"))
        .output()
        .expect("curl");
    assert!(
        bundle.status.success(),
        "the CA's API certificate chains to the new root: {bundle:?}"
    );
    let certs = pki::pem::parse_certificates(&bundle.stdout).expect("bundle");
    let fingerprints: Vec<String> = certs.iter().map(|c| pki::sha256_hex(c)).collect();
    assert_eq!(fingerprints, [new_fp], "old root {old_fp} gone");
    let audit = run_in(work, ca_data, "mtls-ca --data-dir ./ca audit verify");
    assert!(audit.status.success(), "{}", report(&audit));
}

/// The offline-root runbook run as written in a new temporary directory (`work` holds the
/// offline medium, `ca_data` becomes `./ca`): the directory, both paths, and the run's output.
fn offline_root_runbook() -> (tempfile::TempDir, PathBuf, PathBuf, Output) {
    programs::require(&["mtls-ca"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_data = dir.path().join("ca-data");
    std::fs::create_dir(&ca_data).expect("mkdir");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    let init = doc_block("docs/operations.md", "<!-- runbook: offline-root -->");
    let out = run_in(&work, &ca_data, &init);
    assert!(out.status.success(), "{}", report(&out));
    (dir, work, ca_data, out)
}
