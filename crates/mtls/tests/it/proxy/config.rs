//! Configuration refused before anything reaches the CA: every bad flag, file, key or address
//! exits 2 naming what to fix, and the join token stays unused (the same token enrolls a
//! proxy afterwards). `check` validates a file without starting.

use super::common::*;
use crate::programs::start_ca;

fn expect_refused(what: &str, args: &[String], needles: &[&str]) {
    let (code, _out, err) = run_proxy(args);
    assert_eq!(code, 2, "{what}: exit code {code}, stderr: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{what}: {needle:?} not in: {err}");
    }
    assert!(
        !err.contains("obtaining the proxy's certificate"),
        "{what}: reached enrollment: {err}"
    );
}

#[test]
fn bad_configurations_exit_2_naming_the_problem_and_leave_the_token_unused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let token = token_file(&ca, dir.path(), "proxy", PROXY_ID);
    let creds = enrolled(&ca, PROXY_ID, &token);
    let with = |list: &[&str]| {
        let mut a = args(list);
        a.extend(creds.clone());
        a
    };
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        s(&path)
    };
    let table = enrolled_table(&ca, PROXY_ID, &token);

    expect_refused(
        "an --allow-id that is not a SPIFFE ID",
        &with(&[
            "inbound",
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:9",
            "--allow-id",
            "web",
        ]),
        &["--allow-id"],
    );
    expect_refused(
        "a non-loopback outbound listener without the flag",
        &with(&[
            "outbound",
            "--listen",
            "0.0.0.0:0",
            "--to",
            "127.0.0.1:9",
            "--server-id",
            PROXY_ID,
        ]),
        &[
            "--listen: 0.0.0.0:0 is not a loopback address",
            "--allow-non-loopback",
        ],
    );
    expect_refused(
        "an unreadable policy file",
        &with(&[
            "inbound",
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:9",
            "--policy",
            &s(&dir.path().join("missing.toml")),
        ]),
        &["--policy: cannot read", "missing.toml"],
    );
    let policy = file(
        "policy.toml",
        "allow = []\ndeny = [\"spiffe://mesh.local/x\"]\n",
    );
    expect_refused(
        "a policy file with an unknown key",
        &with(&[
            "inbound",
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:9",
            "--policy",
            &policy,
        ]),
        &["--policy", "line 2", "unknown field `deny`"],
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    expect_refused(
        "a listen address in use",
        &with(&["inbound", "--listen", &taken_addr, "--to", "127.0.0.1:9"]),
        &[&format!("--listen: cannot listen on {taken_addr}")],
    );
    let unknown = file(
        "unknown.toml",
        &format!(
            "{table}[inbound]\nlisten = \"127.0.0.1:0\"\nto = \"127.0.0.1:9\"\ncolour = \"red\"\n"
        ),
    );
    expect_refused(
        "an unknown key in the configuration file",
        &args(&["run", "--config", &unknown]),
        &["unknown.toml", "line 9", "unknown field `colour`"],
    );
    let bad_route = file(
        "route.toml",
        &format!("{table}[[route]]\nlisten = \"192.0.2.1:15001\"\nto = \"127.0.0.1:9\"\nserver_id = \"{PROXY_ID}\"\n"),
    );
    expect_refused(
        "a non-loopback route in the file",
        &args(&["run", "--config", &bad_route]),
        &[
            "route.toml line 7: route[0].listen: 192.0.2.1:15001",
            "not a loopback address",
            "allow_non_loopback = true",
        ],
    );
    let bad_cred = file(
        "cred.toml",
        &format!(
            "{table}token = \"x\"\n[inbound]\nlisten = \"127.0.0.1:0\"\nto = \"127.0.0.1:9\"\n"
        ),
    );
    expect_refused(
        "an unknown credential key",
        &args(&["run", "--config", &bad_cred]),
        &["[credentials]", "unknown key `token`"],
    );
    expect_refused(
        "an unreadable configuration file",
        &args(&["run", "--config", &s(&dir.path().join("nope.toml"))]),
        &["--config: cannot read", "nope.toml"],
    );

    // `check` accepts a good file without starting, and refuses the bad ones the same way.
    let good = file(
        "good.toml",
        &format!(
            "{table}[inbound]\nlisten = \"127.0.0.1:0\"\nto = \"127.0.0.1:9\"\n\
             allow_ids = [\"{CLIENT_ID}\"]\n"
        ),
    );
    let (code, out, err) = run_proxy(&args(&["check", "--config", &good]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("good.toml: ok"), "{out}");
    assert!(out.contains("inbound 127.0.0.1:0 -> 127.0.0.1:9"), "{out}");
    expect_refused(
        "check on an unknown key",
        &args(&["check", "--config", &unknown]),
        &["unknown field `colour`"],
    );

    // None of the refusals touched the token: it enrolls a proxy now.
    let proxy = start_proxy("proxy", &args(&["run", "--config", &good]));
    assert!(proxy.inbound.is_some());
}
