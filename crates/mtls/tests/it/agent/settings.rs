//! Settings that cannot work stop mtls-agent with exit 2 before the join token is redeemed.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::common::*;
use crate::programs;

fn run_agent(args: &[String], socket: &str) -> (i32, String) {
    let out = Command::new(programs::agent())
        .args(args)
        .args(["--socket", socket])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn refused_settings_redeem_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca(dir.path());
    let args = agent_args(&ca, dir.path());

    // A socket directory anyone may write to without the sticky bit.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, err) = run_agent(&args, &format!("unix://{}/a.sock", open.display()));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("world-writable without the sticky bit"),
        "{err}"
    );

    // Not a socket address.
    let (code, err) = run_agent(&args, "tcp://127.0.0.1:1");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--socket") && err.contains("not a Unix socket"),
        "{err}"
    );

    // A socket mode that is not octal permission bits.
    let mut with_mode = args.clone();
    with_mode.extend(["--socket-mode".into(), "0999".into()]);
    let (code, err) = run_agent(&with_mode, &format!("{}/b.sock", dir.path().display()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--socket-mode"), "{err}");

    // An identity that is not an agent's.
    let mut not_agent = args.clone();
    let i = not_agent.iter().position(|a| a == "--spiffe-id").unwrap();
    not_agent[i + 1] = WEB_ID.into();
    let (code, err) = run_agent(&not_agent, &format!("{}/c.sock", dir.path().display()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not an agent identity"), "{err}");

    // The token is still unused: the agent enrolls with it.
    let (proc, _socket) = start_agent(&ca, dir.path(), "agent");
    drop(proc);
}
