//! The throwaway PostgreSQL cluster cannot outlive the process that runs it.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::TcpStream;
use std::time::{Duration, Instant};

use testkit::postgres::PgCluster;

fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
#[allow(clippy::disallowed_methods)] // a server of another process: no event to wait on, so poll
fn a_server_whose_watchdog_is_killed_shuts_down_instead_of_being_orphaned() {
    let mut cluster = PgCluster::start();
    let port = cluster.port();
    assert!(accepts(port), "the cluster listens on {port}");
    // SIGKILL leaves the watchdog no chance to stop the server: only the server's parent-death
    // signal can (a `pg_ctl start` daemon would keep listening for good).
    cluster.kill_watchdog();
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepts(port) {
        assert!(
            Instant::now() < deadline,
            "PostgreSQL still listens on {port} 30 s after its watchdog was killed: orphaned"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
