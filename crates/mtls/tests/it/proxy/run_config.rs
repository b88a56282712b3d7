//! `mtls-proxy run --config FILE`: one process serves an `[inbound]` side and a `[[route]]`
//! (here the route leads to the process's own inbound side), with credentials, limits and
//! relative paths from the file; `check` describes it; SIGTERM ends it with exit 0.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use super::common::*;

#[test]
fn one_process_runs_both_directions_from_a_config_file() {
    let pki = Pki::new();
    let app = App::start();
    // A port for the inbound side that the route can name before the process runs.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = pki.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            r#"admin_listen = "127.0.0.1:0"

[credentials]
cert = "proxy.crt"
key = "proxy.key"
ca_cert = "ca.crt"
crl_refresh = "2s"

[limits]
drain = "2s"
idle_timeout = "30s"

[inbound]
listen = "127.0.0.1:{port}"
to = "{to}"
allow_ids = ["{PROXY_ID}"]

[[route]]
listen = "127.0.0.1:0"
to = "localhost:{port}"
server_id = "{PROXY_ID}"
"#,
            to = app.to()
        ),
    )
    .unwrap();

    let (code, out, err) = run_proxy(&args(&["check", "--config", &s(&config)]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "inbound 127.0.0.1:{port} -> {} (L4; allow list)",
            app.to()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "route 127.0.0.1:0 -> localhost:{port} ({PROXY_ID}, name localhost)"
        )),
        "{out}"
    );

    let mut proxy = start_proxy("proxy", &args(&["run", "--config", &s(&config)]));
    assert_eq!(proxy.inbound, Some(port));
    let mut tcp = TcpStream::connect(("127.0.0.1", proxy.outbound[0])).unwrap();
    tcp.set_read_timeout(Some(LONG)).ok();
    tcp.write_all(b"ECHO\naround the loop\n").unwrap();
    tcp.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    tcp.read_to_string(&mut got).unwrap();
    assert_eq!(got, "around the loop\n");
    assert_eq!(app.accepted(), 1);
    for direction in ["inbound", "outbound"] {
        let line = proxy.proc.wait_for(
            |l| l.contains("proxy_connection") && l.contains(&format!("direction=\"{direction}\"")),
            LONG,
        );
        assert!(
            line.contains(&format!("spiffe_id=\"{PROXY_ID}\"")),
            "{line}"
        );
    }
    let metrics = proxy.metrics();
    assert!(
        metrics.contains(
            "mtls_proxy_connections_closed_total{direction=\"outbound\",reason=\"closed\"} 1"
        ),
        "{metrics}"
    );

    proxy.proc.terminate();
    let status = proxy.proc.wait_exit(LONG).expect("exits");
    assert!(status.success(), "{}", proxy.proc.output());
}
