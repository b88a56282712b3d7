//! `mtls-proxy --admin-allow-remote` (issue 16, item 3 for the proxy): a sidecar's probes and
//! scrapes arrive on the pod IP, so the admin listener may bind the wildcard address when the
//! operator says so; it then answers /healthz, /readyz and /metrics beyond loopback and warns
//! once at start. Without the flag the same address is refused before anything starts
//! (crates/mtls/tests/it/settings.rs rows, crates/proxy/src/file.rs for the file's key).

use std::net::{IpAddr, SocketAddr};
use std::process::Command;

use super::common::*;

/// The machine's own IPv4 address, when it has one besides loopback.
fn non_loopback_address() -> Option<IpAddr> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

#[test]
fn admin_allow_remote_serves_probes_beyond_loopback_with_a_warning() {
    let pki = Pki::new();
    let mut a = args(&[
        "inbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        "127.0.0.1:9",
        "--admin-listen",
        "0.0.0.0:0",
        "--admin-allow-remote",
    ]);
    a.extend(pki.proxy_creds());
    let proxy = start_proxy("proxy", &a);
    let port = proxy.admin.expect("an admin listener");
    let warned = proxy.proc.wait_for(|l| l.contains("admin_remote"), LONG);
    assert!(
        warned.contains("not on loopback") && warned.contains("--admin-allow-remote"),
        "{warned}"
    );
    let mut reached = vec![IpAddr::from([127, 0, 0, 1])];
    reached.extend(non_loopback_address());
    for ip in reached {
        let at = SocketAddr::new(ip, port);
        for path in ["/healthz", "/readyz", "/metrics"] {
            let (status, body) = testkit::http_get_at(at, path);
            assert_eq!(status, 200, "{at}{path}: {body}");
        }
    }
}
