//! Every setting of every program in one table (issue 10: "check all settings of every binary in
//! one table-driven test"). A row is one program (or subcommand), the options given and what
//! must happen:
//!
//! * [`Refused`]: exit status 2 before anything starts, stderr naming the option (the first
//!   text) and the accepted range or form (the rest), nothing on stdout; for `mtls-ca` the data
//!   directory is not created. Durations under the minimum, zero or negative intervals, counts
//!   out of range, malformed addresses, URLs, IDs and paths that cannot be used.
//! * [`Accepted`]: the edge of a range is taken, and the program gets past its settings to its
//!   first real step (see [`Program::got_past_settings`]).
//! * [`Fails`]: the setting is well-formed, and the program stops at the step that uses it with
//!   exit status 1 and the cause (a file that cannot be read: docs/cli.md, "Failures after the
//!   start ... exit with status 1").
//!
//! The runner gives each program the arguments that make the rest of its command line valid
//! ([`Program::base`]); an option a row sets replaces the base's. Rows never reach a real CA
//! (`--ca-url https://localhost:1`); `a_refused_setting_redeems_no_token` checks with a real one
//! that a refused setting leaves the join token unused.
//!
//! **Adding a program** (as `mtls-proxy` was): add it to `crate::programs::by_name`, a
//! variant to [`Program`] with its binary name, base arguments and the sign that it got past its
//! settings, its rows to [`ROWS`] (one per option and value: every duration, count, path,
//! address, URL and ID), and a `#[test]` calling `check(&[Program::Name])` so its rows run in
//! parallel with the others. docs/testing.md lists the table.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::programs;
use Outcome::{Accepted, Fails, Refused};
use Program::{
    Agent, AgentWrite, Bench, Ca, Client, ClientBare, Inspect, Proxy, Server, ServerBare,
};

/// How long one run of a program may take (an accepted row waits for a 1 s enrollment).
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// A CA nobody listens on: rows never get a certificate.
const NO_CA: &str = "https://localhost:1";
const FINGERPRINT: &str = "4811cb1c44cd3bbf2eee4d0a8b1a2ea5b0ff7e2cbc4a0edf74c1e8d3e4b1c2a3";
const CLIENT_ID: &str = "spiffe://mesh.local/service/payment-worker";
const AGENT_ID: &str = "spiffe://mesh.local/agent/node1";
/// A Workload API socket nobody serves: `--workload-api` rows never get an SVID.
const NO_AGENT: &str = "unix:///nonexistent/agent.sock";
/// Clap names both flags (the base's --ca-url comes first on the command line).
const WORKLOAD_API_AND_CA_URL: &str =
    "the argument '--ca-url <URL>' cannot be used with '--workload-api <unix:///PATH>'";
const ONE_SECOND: &str = "the minimum is 1s";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Program {
    /// `mtls-ca --data-dir <fresh> --listen 127.0.0.1:0`, and its subcommands.
    Ca,
    /// `mtls-server` in enrolled mode (a join token file that is never redeemed).
    Server,
    /// `mtls-server` with only the row's options (credential modes).
    ServerBare,
    /// `mtls-client` in enrolled mode, `--server https://localhost:2`.
    Client,
    /// `mtls-client --server https://localhost:2` and the row's options.
    ClientBare,
    /// `mtls-bench https://127.0.0.1:1/ --cert c.pem --key k.pem --ca-cert r.pem` (no such files).
    Bench,
    /// `mtls-inspect` in crates/inspect/tests/data.
    Inspect,
    /// `mtls-proxy inbound --listen 127.0.0.1:0 --to 127.0.0.1:9` in enrolled mode.
    Proxy,
    /// `mtls-agent serve` enrolled as AGENT_ID, its socket in the run's temporary directory.
    Agent,
    /// `mtls-agent write --socket NO_AGENT --spiffe-id CLIENT_ID --dir <tmp>/out`.
    AgentWrite,
}

#[derive(Debug)]
enum Outcome {
    Refused(&'static [&'static str]),
    Accepted,
    Fails(&'static [&'static str]),
}

struct Row {
    program: Program,
    args: &'static [&'static str],
    outcome: Outcome,
}

const fn row(program: Program, args: &'static [&'static str], outcome: Outcome) -> Row {
    Row {
        program,
        args,
        outcome,
    }
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // ---- mtls-ca (serving; every serve option is checked with a subcommand too) ----
    row(Ca, &["--cert-duration", "0s"], Refused(&["'--cert-duration <DURATION>'", ONE_SECOND])),
    row(Ca, &["--cert-duration", "1ms"], Refused(&["'--cert-duration <DURATION>'", ONE_SECOND])),
    row(Ca, &["--cert-duration=-5m"], Refused(&["'--cert-duration <DURATION>'", "negative: the minimum is 1s"])),
    row(Ca, &["--max-duration", "0s"], Refused(&["'--max-duration <DURATION>'", ONE_SECOND])),
    row(Ca, &["--cert-duration", "2h", "--max-duration", "1h"], Refused(&["--cert-duration 2h is longer than --max-duration 1h", "1s to --max-duration"])),
    row(Ca, &["--cert-duration", "1s", "--max-duration", "1s"], Accepted),
    row(Ca, &["--crl-validity", "1s"], Refused(&["'--crl-validity <DURATION>'", "the minimum is 2s"])),
    row(Ca, &["--crl-validity", "2s"], Accepted),
    row(Ca, &["--ocsp-responder", "hsm"], Refused(&["'--ocsp-responder <SIGNER>'", "[possible values: ca, delegated]"])),
    row(Ca, &["--ocsp-responder", "delegated"], Accepted),
    row(Ca, &["--idle-timeout", "0s"], Refused(&["'--idle-timeout <DURATION>'", ONE_SECOND])),
    row(Ca, &["--idle-timeout", "1s"], Accepted),
    row(Ca, &["--header-timeout", "500ms"], Refused(&["'--header-timeout <DURATION>'", ONE_SECOND])),
    row(Ca, &["--header-timeout", "1s"], Accepted),
    row(Ca, &["--request-timeout", "0s"], Refused(&["'--request-timeout <DURATION>'", ONE_SECOND])),
    row(Ca, &["--request-timeout", "1s"], Accepted),
    row(Ca, &["--drain", "0s"], Refused(&["'--drain <DURATION>'", ONE_SECOND])),
    row(Ca, &["--drain", "1s"], Accepted),
    row(Ca, &["--backdate=-1s"], Refused(&["'--backdate <DURATION>'", "negative: the minimum is 0s"])),
    row(Ca, &["--backdate", "0s"], Accepted),
    row(Ca, &["--max-connections", "0"], Refused(&["'--max-connections <N>'", "the minimum is 1"])),
    row(Ca, &["--max-connections", "16", "--authenticated-reserve", "16"], Refused(&["--authenticated-reserve 16", "the accepted range is 0 to --max-connections - 1 (15)"])),
    row(Ca, &["--authenticated-reserve=-1"], Refused(&["'--authenticated-reserve <N>'", "invalid digit"])),
    row(Ca, &["--max-connections", "1", "--authenticated-reserve", "0"], Accepted),
    row(Ca, &["--max-connections-per-source", "x"], Refused(&["'--max-connections-per-source <N>'", "invalid digit"])),
    row(Ca, &["--max-connections-per-source", "0"], Accepted),
    row(Ca, &["--listen", "nope"], Refused(&["'--listen <LISTEN>'", "invalid socket address syntax"])),
    row(Ca, &["--port", "70000"], Refused(&["'--port <PORT>'", "0..=65535"])),
    row(Ca, &["--port", "0"], Accepted),
    row(Ca, &["--trust-domain", "Mesh.Local"], Refused(&["'--trust-domain <TRUST_DOMAIN>'", "lowercase"])),
    row(Ca, &["--admin-id", "web"], Refused(&["--admin-id", "must start with \"spiffe://\""])),
    row(Ca, &["--admin-id", "spiffe://mesh.local/ca"], Refused(&["--admin-id", "reserved"])),
    row(Ca, &["--admin-id", "spiffe://mesh.local/ops/admin"], Accepted),
    row(Ca, &["--dns", "a..b"], Refused(&["'--dns <DNS>'", "empty label"])),
    row(Ca, &["--ip", "1.2.3"], Refused(&["'--ip <IPS>'", "invalid IP address syntax"])),
    row(Ca, &["--root-cert", "/nonexistent/root.pem"], Refused(&["--root-key", "required"])),
    row(Ca, &["--root-cert", "/nonexistent/root.pem", "--root-key", "/nonexistent/root.key"], Refused(&["--root-key /nonexistent/root.key", "No such file"])),
    row(Ca, &["--bundle-extra", "/nonexistent/extra.pem"], Refused(&["--bundle-extra /nonexistent/extra.pem", "cannot read it"])),
    row(Ca, &["--data-dir", "/dev/null/ca"], Refused(&["data directory /dev/null/ca", "Not a directory"])),
    row(Ca, &["--log-format", "xml"], Refused(&["'--log-format <LOG_FORMAT>'", "text, json"])),
    row(Ca, &["--store", "mysql://u@h/db"], Refused(&["--store: expected sqlite:PATH or postgres://"])),
    row(Ca, &["--store", "sqlite:"], Refused(&["--store: sqlite: needs a file path"])),
    row(Ca, &["--cert-duration", "0s", "list"], Refused(&["'--cert-duration <DURATION>'", ONE_SECOND])),
    // ---- mtls-ca token ----
    row(Ca, &["token", "--spiffe-id", "spiffe://mesh.local/service/a", "--ttl", "1ms"], Refused(&["'--ttl <DURATION>'", "too short: the accepted range is 1s to 7d"])),
    row(Ca, &["token", "--spiffe-id", "spiffe://mesh.local/service/a", "--ttl", "0s"], Refused(&["'--ttl <DURATION>'", "the accepted range is 1s to 7d"])),
    row(Ca, &["token", "--spiffe-id", "spiffe://mesh.local/service/a", "--ttl", "8d"], Refused(&["'--ttl <DURATION>'", "too long: the accepted range is 1s to 7d"])),
    row(Ca, &["token", "--spiffe-id", "spiffe://mesh.local/service/a", "--ttl=-1h"], Refused(&["'--ttl <DURATION>'", "negative: the accepted range is 1s to 7d"])),
    row(Ca, &["token", "--spiffe-id", "spiffe://mesh.local/service/a", "--ttl", "1s"], Accepted),
    row(Ca, &["token", "--spiffe-id", "spiffe://mesh.local/service/a", "--ttl", "7d"], Accepted),
    row(Ca, &["token", "--spiffe-id", "spiffe://Mesh/x"], Refused(&["'--spiffe-id <SPIFFE_ID>'", "lowercase"])),
    row(Ca, &["token", "--spiffe-id", "spiffe://mesh.local/a", "--dns", "x-"], Refused(&["'--dns <DNS>'", "starts or ends with a hyphen"])),
    row(Ca, &["token", "--spiffe-id", "spiffe://mesh.local/a", "--ip", "300.1.1.1"], Refused(&["'--ip <IPS>'", "invalid IP address syntax"])),
    row(Ca, &["token"], Refused(&["--spiffe-id <SPIFFE_ID>", "required"])),
    // ---- mtls-ca revoke, list, audit ----
    row(Ca, &["revoke", "--serial", "zz"], Refused(&["'--serial <SERIAL>'", "not hexadecimal"])),
    row(Ca, &["revoke", "--spiffe-id", "web"], Refused(&["'--spiffe-id <SPIFFE_ID>'", "must start with \"spiffe://\""])),
    row(Ca, &["revoke"], Refused(&["<--serial <SERIAL>|--spiffe-id <SPIFFE_ID>>", "required"])),
    row(Ca, &["revoke", "--serial", "01", "--spiffe-id", "spiffe://mesh.local/a"], Refused(&["--spiffe-id <SPIFFE_ID>", "cannot be used with"])),
    row(Ca, &["revoke", "--serial", "01", "--reason", "bored"], Refused(&["'--reason <REASON>'", "keyCompromise"])),
    row(Ca, &["list", "--format", "xml"], Refused(&["'--format <FORMAT>'", "text, json"])),
    row(Ca, &["audit", "verify", "--expect-head", "7"], Refused(&["'--expect-head <SEQ:HASH>'", "SEQ:HASH"])),
    row(Ca, &["audit", "head", "--format", "xml"], Refused(&["'--format <FORMAT>'", "text, json"])),
    row(Ca, &["migrate-store", "--from", "postgres://u@h/a", "--to", "postgres://u@h/b"], Refused(&["'--from <FROM>'", "sqlite:PATH"])),
    row(Ca, &["migrate-store", "--from", "sqlite:/x/ca.db", "--to", "sqlite:/y/ca.db"], Refused(&["--to: expected the PostgreSQL database", "postgres://"])),
    row(Ca, &["migrate-store", "--from", "sqlite:/x/ca.db", "--to", "mysql://u:hunter2@h/db"], Refused(&["--to: expected sqlite:PATH or postgres://"])),
    // ---- mtls-ca init, intermediate ----
    row(Ca, &["init"], Refused(&["--offline-root <DIR>", "required"])),
    row(Ca, &["init", "--offline-root", "off", "--intermediate-lifetime", "1h"], Refused(&["'--intermediate-lifetime <DURATION>'", "too short: the accepted range is 1d to 3650d"])),
    row(Ca, &["init", "--offline-root", "off", "--intermediate-lifetime", "3651d"], Refused(&["'--intermediate-lifetime <DURATION>'", "too long: the accepted range is 1d to 3650d"])),
    row(Ca, &["init", "--offline-root", "off", "--passphrase-file", "/nonexistent/pass"], Refused(&["--passphrase-file /nonexistent/pass", "No such file"])),
    row(Ca, &["intermediate", "sign", "--root-key", "off", "--csr", "i.csr", "--lifetime", "0s"], Refused(&["'--lifetime <DURATION>'", "the accepted range is 1d to 3650d"])),
    row(Ca, &["intermediate", "renew", "--root-key", "off", "--lifetime", "3651d"], Refused(&["'--lifetime <DURATION>'", "too long: the accepted range is 1d to 3650d"])),
    row(Ca, &["intermediate", "install", "--cert", "/nonexistent/i.crt"], Refused(&["--cert /nonexistent/i.crt", "No such file"])),
    row(Ca, &["root", "rotate", "--from", "r.pem", "--passphrase-file", "p"], Refused(&["'--from <FILE>'", "cannot be used with '--passphrase-file <FILE>'"])),
    row(Ca, &["root", "rotate", "--passphrase-file", "p"], Refused(&["root rotate --passphrase-file", "only the offline ceremony of a two-tier CA (with --root-key DIR)"])),
    // ---- mtls-server ----
    row(Server, &["--crl-refresh", "0s"], Refused(&["'--crl-refresh ", ONE_SECOND])),
    row(Server, &["--crl-refresh", "500ms"], Refused(&["'--crl-refresh ", ONE_SECOND])),
    row(Server, &["--crl-refresh", "1s"], Accepted),
    row(Server, &["--crl-max-staleness=-5s"], Refused(&["'--crl-max-staleness ", "negative"])),
    row(Server, &["--crl-max-staleness", "0s"], Refused(&["'--crl-max-staleness ", ONE_SECOND])),
    row(Server, &["--crl-max-staleness", "1s"], Accepted),
    row(Server, &["--reload-interval", "0s"], Refused(&["'--reload-interval ", ONE_SECOND])),
    row(Server, &["--enroll-timeout", "1ms"], Refused(&["'--enroll-timeout ", ONE_SECOND])),
    row(Server, &["--enroll-timeout", "1s"], Accepted),
    row(Server, &["--ttl", "0s"], Refused(&["'--ttl ", ONE_SECOND])),
    row(Server, &["--ttl", "1s"], Accepted),
    row(Server, &["--idle-timeout", "0s"], Refused(&["'--idle-timeout ", ONE_SECOND])),
    row(Server, &["--idle-timeout", "1s"], Accepted),
    row(Server, &["--header-timeout", "10ms"], Refused(&["'--header-timeout ", ONE_SECOND])),
    row(Server, &["--header-timeout", "1s"], Accepted),
    row(Server, &["--request-timeout", "0s"], Refused(&["'--request-timeout ", ONE_SECOND])),
    row(Server, &["--request-timeout", "1s"], Accepted),
    row(Server, &["--drain", "0s"], Refused(&["'--drain ", ONE_SECOND])),
    row(Server, &["--drain", "1s"], Accepted),
    row(Server, &["--rotate-at", "0"], Refused(&["'--rotate-at ", "between 0 and 1 (exclusive)"])),
    row(Server, &["--rotate-at", "1.5"], Refused(&["'--rotate-at ", "between 0 and 1 (exclusive)"])),
    row(Server, &["--rotate-at", "0.99"], Accepted),
    row(Server, &["--max-connections", "0"], Refused(&["'--max-connections ", "the minimum is 1"])),
    row(Server, &["--max-connections=-1"], Refused(&["'--max-connections ", "give 1 or more"])),
    row(Server, &["--max-connections", "1"], Accepted),
    row(Server, &["--max-connections-per-identity", "0"], Refused(&["'--max-connections-per-identity ", "the minimum is 1"])),
    row(Server, &["--max-connections-per-identity", "1"], Accepted),
    row(Server, &["--groups", "secp256r1"], Refused(&["'--groups ", "it accepts x25519, X25519MLKEM768"])),
    row(Server, &["--allow-id", "web"], Refused(&["'--allow-id ", "expected a SPIFFE ID or a prefix"])),
    row(Server, &["--listen", "nope"], Refused(&["'--listen ", "invalid socket address syntax"])),
    row(Server, &["--listen", "127.0.0.1:0"], Accepted),
    row(Server, &["--admin-listen", "0.0.0.0:9090"], Refused(&["--admin-listen 0.0.0.0:9090", "loopback", "--admin-allow-remote"])),
    row(Server, &["--admin-allow-remote"], Refused(&["--admin-listen <ADDR>", "required"])),
    row(Server, &["--admin-listen", "0.0.0.0:0", "--admin-allow-remote"], Accepted),
    row(Server, &["--admin-listen", "nope"], Refused(&["'--admin-listen ", "is not an address like 127.0.0.1:9090"])),
    row(Server, &["--curve", "P-192"], Refused(&["'--curve ", "P-256, P-384 or P-521"])),
    row(Server, &["--ca-url", "http://localhost:1"], Refused(&["'--ca-url ", "use https://"])),
    row(Server, &["--ca-fingerprint", "abcd"], Refused(&["'--ca-fingerprint ", "64 hex digits"])),
    row(Server, &["--spiffe-id", "web"], Refused(&["'--spiffe-id ", "must start with \"spiffe://\""])),
    row(Server, &["--trust-pin", "abc"], Refused(&["'--trust-pin ", "expected sha256:<64 hex digits"])),
    row(Server, &["--trust-pins-file", "pins.txt"], Refused(&["--trust-pin, --trust-pins-file and --crl are for static/pinned mode, not with --ca-url"])),
    row(ServerBare, &["--cert", "c.pem", "--key", "k.pem", "--trust-pin", "sha256:0000000000000000000000000000000000000000000000000000000000000000", "--trust-pins-file", "pins.txt"], Refused(&["give --trust-pin or --trust-pins-file, not both"])),
    row(ServerBare, &["--cert", "c.pem", "--key", "k.pem", "--ca-cert", "r.pem", "--trust-pins-file", "pins.txt"], Refused(&["--ca-cert and --trust-pin/--trust-pins-file exclude each other"])),
    row(ServerBare, &["--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem", "--trust-pins-file", "/nonexistent/pins.txt"], Fails(&["reading the pins file /nonexistent/pins.txt", "No such file"])),
    row(ServerBare, &["--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem", "--trust-pins-file", "/dev/null"], Fails(&["/dev/null: no pin in the file", "refused"])),
    row(Server, &["--log-format", "xml"], Refused(&["'--log-format ", "text, json"])),
    row(Server, &["--cert", "c.pem", "--key", "k.pem"], Refused(&["--ca-url (enrolled mode) and --cert/--key (static mode) exclude each other"])),
    row(Server, &["--workload-api", NO_AGENT], Refused(&[WORKLOAD_API_AND_CA_URL])),
    row(ServerBare, &["--workload-api", "/run/agent.sock"], Refused(&["'--workload-api ", "give unix:///path/to/agent.sock"])),
    row(ServerBare, &["--workload-api", "tcp://127.0.0.1:1"], Refused(&["'--workload-api ", "TCP endpoints are not supported"])),
    row(ServerBare, &["--workload-api", "unix://run/agent.sock"], Refused(&["'--workload-api ", "must name an absolute path"])),
    row(ServerBare, &["--workload-api", NO_AGENT, "--cert", "c.pem", "--key", "k.pem"], Refused(&["'--workload-api <unix:///PATH>' cannot be used with", "--cert <FILE>", "--key <FILE>"])),
    row(ServerBare, &["--workload-api", NO_AGENT, "--ca-cert", "r.pem"], Refused(&["'--workload-api <unix:///PATH>' cannot be used with", "'--ca-cert <FILE>'"])),
    row(ServerBare, &["--workload-api", NO_AGENT, "--spiffe-id", "web"], Refused(&["'--spiffe-id ", "must start with \"spiffe://\""])),
    row(ServerBare, &["--workload-api", NO_AGENT, "--spiffe-id", CLIENT_ID, "--enroll-timeout", "1s"], Accepted),
    row(Server, &["--join-token-file", "/nonexistent/server.token", "--enroll-timeout", "10s"], Fails(&["reading the join token file /nonexistent/server.token", "No such file"])),
    row(ServerBare, &["--ca-url", NO_CA, "--ca-fingerprint", FINGERPRINT, "--spiffe-id", CLIENT_ID, "--join-token", " "], Refused(&["'--join-token ", "the join token is empty"])),
    row(Server, &["--join-token-file", "/dev/null"], Fails(&["the join token is empty (file /dev/null)"])),
    row(ServerBare, &["--ca-url", NO_CA, "--ca-cert", "/nonexistent/root.pem", "--spiffe-id", CLIENT_ID, "--join-token", "t"], Fails(&["/nonexistent/root.pem", "No such file"])),
    row(ServerBare, &["--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem", "--ca-cert", "/nonexistent/r.pem"], Fails(&["reading the certificate file /nonexistent/c.pem", "No such file"])),
    // ---- mtls-client ----
    row(Client, &["--crl-refresh", "0s"], Refused(&["'--crl-refresh ", ONE_SECOND])),
    row(Client, &["--timeout", "0s"], Refused(&["'--timeout ", ONE_SECOND])),
    row(Client, &["--timeout", "1s"], Accepted),
    row(Client, &["--interval", "0s"], Refused(&["'--interval ", "the minimum is 10ms"])),
    row(Client, &["--interval", "9ms"], Refused(&["'--interval ", "the minimum is 10ms"])),
    row(Client, &["--interval", "10ms"], Accepted),
    row(Client, &["--count", "x"], Refused(&["'--count ", "invalid digit"])),
    row(Client, &["--count=-1"], Refused(&["'--count ", "invalid digit"])),
    row(Client, &["--count", "0"], Accepted),
    row(Client, &["--rotate-at=-0.1"], Refused(&["'--rotate-at ", "between 0 and 1"])),
    row(Client, &["--server-id", "billing"], Refused(&["'--server-id ", "spiffe://"])),
    row(Client, &["--server", "http://localhost:2"], Refused(&["'--server ", "use https://"])),
    row(Client, &["--path", "api"], Refused(&["'--path ", "starting with /"])),
    row(Client, &["--join-token", "t", "--join-token-file", "t.token"], Refused(&["give --join-token or --join-token-file, not both"])),
    row(ClientBare, &["--cert", "c.pem", "--key", "k.pem", "--spiffe-id", CLIENT_ID], Refused(&["--spiffe-id is for enrolled mode"])),
    row(ClientBare, &[], Refused(&["no credentials: give --ca-url", "--workload-api unix:///PATH"])),
    row(Client, &["--workload-api", NO_AGENT], Refused(&[WORKLOAD_API_AND_CA_URL])),
    row(ClientBare, &["--workload-api", NO_AGENT, "--trust-pin", "sha256:0000000000000000000000000000000000000000000000000000000000000000"], Refused(&["'--workload-api <unix:///PATH>' cannot be used with", "'--trust-pin <sha256:HEX>'"])),
    row(ClientBare, &["--workload-api", NO_AGENT, "--trust-pins-file", "pins.txt"], Refused(&["'--workload-api <unix:///PATH>' cannot be used with", "'--trust-pins-file <FILE>'"])),
    row(ClientBare, &["--workload-api", "unix:///a.sock?x=1"], Refused(&["'--workload-api ", "has a query or fragment"])),
    row(ClientBare, &["--workload-api", NO_AGENT, "--enroll-timeout", "1s"], Accepted),
    // ---- mtls-bench ----
    row(Bench, &["--duration", "0s"], Refused(&["'--duration ", "the range is 1s to 10m"])),
    row(Bench, &["--duration", "11m"], Refused(&["'--duration ", "the range is 1s to 10m"])),
    row(Bench, &["--duration", "1s"], Accepted),
    row(Bench, &["--duration", "10m"], Accepted),
    row(Bench, &["--concurrency", "0"], Refused(&["'--concurrency ", "the minimum is 1"])),
    row(Bench, &["--concurrency", "1"], Accepted),
    row(Bench, &["--requests", "0"], Refused(&["'--requests ", "the minimum is 1"])),
    row(Bench, &["--requests", "1"], Accepted),
    row(Bench, &["--rate", "0"], Refused(&["'--rate ", "the minimum is 1"])),
    row(Bench, &["--rate", "1"], Accepted),
    row(Bench, &["--threads", "0"], Refused(&["'--threads ", "the minimum is 1"])),
    row(Bench, &["--threads", "1"], Accepted),
    row(Bench, &["--groups", "brainpool"], Refused(&["'--groups ", "known: secp384r1"])),
    row(Bench, &["--mode", "nope"], Refused(&["'--mode ", "new, keepalive, ca-renew, ca-sign, hold, workload-fetch"])),
    row(Bench, &["/run/agent.sock", "--mode", "workload-fetch"], Refused(&["--mode workload-fetch", "give unix:///path/to/agent.sock"])),
    row(Bench, &["unix:///run/agent.sock", "--mode", "workload-fetch"], Refused(&["--cert does not apply to --mode workload-fetch"])),
    row(Bench, &["--ca-cert", "/nonexistent/r.pem"], Refused(&["reading /nonexistent/r.pem", "No such file"])),
    row(Bench, &["ftp://127.0.0.1:1/"], Refused(&["\"ftp://127.0.0.1:1/\"", "only https:// and http:// targets"])),
    // ---- mtls-proxy (inbound; the shared credential options are the services') ----
    row(Proxy, &["--idle-timeout", "0s"], Refused(&["'--idle-timeout ", ONE_SECOND])),
    row(Proxy, &["--connect-timeout", "10ms"], Refused(&["'--connect-timeout ", ONE_SECOND])),
    row(Proxy, &["--handshake-timeout", "0s"], Refused(&["'--handshake-timeout ", ONE_SECOND])),
    row(Proxy, &["--drain", "0s"], Refused(&["'--drain ", ONE_SECOND])),
    row(Proxy, &["--crl-refresh", "0s"], Refused(&["'--crl-refresh ", ONE_SECOND])),
    row(Proxy, &["--crl-refresh", "1s"], Accepted),
    row(Proxy, &["--max-connections", "0"], Refused(&["'--max-connections ", "the minimum is 1"])),
    row(Proxy, &["--max-connections-per-identity", "0"], Refused(&["'--max-connections-per-identity ", "the minimum is 1"])),
    row(Proxy, &["--allow-id", "web"], Refused(&["'--allow-id ", "expected a SPIFFE ID or a prefix"])),
    row(Proxy, &["--rotate-at", "1"], Refused(&["'--rotate-at ", "between 0 and 1 (exclusive)"])),
    row(Proxy, &["--admin-listen", "0.0.0.0:9090"], Refused(&["--admin-listen: 0.0.0.0:9090", "loopback", "unless --admin-allow-remote is given"])),
    row(Proxy, &["--admin-allow-remote"], Refused(&["--admin-listen <ADDR>", "required"])),
    row(Proxy, &["--admin-listen", "0.0.0.0:0", "--admin-allow-remote"], Accepted),
    row(Proxy, &["--admin-listen", "127.0.0.1:0"], Accepted),
    row(Proxy, &["--workload-api", NO_AGENT], Refused(&[WORKLOAD_API_AND_CA_URL])),
    row(Proxy, &["--workload-api", "agent.sock"], Refused(&["'--workload-api ", "give unix:///path/to/agent.sock"])),
    // ---- mtls-agent serve (enrolled as an agent; the shared credential options are the services') ----
    row(Agent, &["--socket", "tcp://127.0.0.1:1"], Refused(&["'--socket ", "not a Unix socket"])),
    row(Agent, &["--socket", "run/agent.sock"], Refused(&["'--socket ", "must name an absolute path"])),
    row(Agent, &["--socket", "unix:///nonexistent/dir/agent.sock"], Refused(&["/nonexistent/dir/agent.sock", "its directory /nonexistent/dir"])),
    row(Agent, &["--socket-mode", "0999"], Refused(&["'--socket-mode ", "octal"])),
    row(Agent, &["--socket-mode", "0660"], Accepted),
    row(Agent, &["--entry-refresh", "0s"], Refused(&["'--entry-refresh ", ONE_SECOND])),
    row(Agent, &["--entry-refresh", "500ms"], Refused(&["'--entry-refresh ", ONE_SECOND])),
    row(Agent, &["--entry-refresh", "1s"], Accepted),
    row(Agent, &["--crl-refresh", "0s"], Refused(&["'--crl-refresh ", ONE_SECOND])),
    row(Agent, &["--enroll-timeout", "1ms"], Refused(&["'--enroll-timeout ", ONE_SECOND])),
    row(Agent, &["--ttl", "0s"], Refused(&["'--ttl ", ONE_SECOND])),
    row(Agent, &["--curve", "P-192"], Refused(&["'--curve ", "P-256, P-384 or P-521"])),
    row(Agent, &["--curve", "P-256"], Accepted),
    row(Agent, &["--spiffe-id", "spiffe://mesh.local/service/web"], Refused(&["--spiffe-id spiffe://mesh.local/service/web is not an agent identity", "spiffe://mesh.local/agent/<name>"])),
    row(Agent, &["--spiffe-id", "spiffe://mesh.local/agent/a/b"], Refused(&["is not an agent identity"])),
    row(Agent, &["--workload-api", NO_AGENT], Refused(&[WORKLOAD_API_AND_CA_URL])),
    row(Agent, &["--cert", "c.pem", "--key", "k.pem"], Refused(&["--ca-url (enrolled mode) and --cert/--key (static mode) exclude each other"])),
    row(Agent, &["--log-format", "xml"], Refused(&["'--log-format ", "text, json"])),
    // ---- mtls-agent write ----
    row(AgentWrite, &["--socket", "tcp://127.0.0.1:1"], Refused(&["'--socket ", "not a Unix socket"])),
    row(AgentWrite, &["--spiffe-id", "web"], Refused(&["'--spiffe-id ", "must start with \"spiffe://\""])),
    row(AgentWrite, &["--dir", "/dev/null/out"], Refused(&["/dev/null/out"])),
    row(AgentWrite, &["--once"], Accepted),
    // ---- mtls-inspect ----
    row(Inspect, &["lint", "--max-lifetime", "0s", "leaf.pem"], Refused(&["'--max-lifetime <DURATION>'", ONE_SECOND])),
    row(Inspect, &["lint", "--max-lifetime", "500ms", "leaf.pem"], Refused(&["'--max-lifetime <DURATION>'", ONE_SECOND])),
    row(Inspect, &["lint", "--max-ca-lifetime=-1d", "root.pem"], Refused(&["'--max-ca-lifetime <DURATION>'", "negative: the minimum is 1s"])),
    row(Inspect, &["lint", "--max-lifetime", "1s", "--max-ca-lifetime", "1s", "leaf.pem"], Accepted),
    row(Inspect, &["lint", "--issuer", "/nonexistent/issuer.pem", "leaf.pem"], Refused(&["reading the issuers", "/nonexistent/issuer.pem"])),
    row(Inspect, &["lint", "--trust-domain", "BAD", "leaf.pem"], Refused(&["--trust-domain", "lowercase"])),
    row(Inspect, &["remote", "127.0.0.1:9", "--timeout", "0s"], Refused(&["'--timeout <DURATION>'", ONE_SECOND])),
    row(Inspect, &["remote", "nohost"], Refused(&["\"nohost\"", "expected HOST:PORT"])),
    row(Inspect, &["remote", "127.0.0.1:9", "--servername", "a..b"], Refused(&["\"a..b\"", "not a valid server name"])),
    row(Inspect, &["remote", "127.0.0.1:9", "--ca-cert", "/nonexistent/r.pem"], Refused(&["reading the CA certificates", "/nonexistent/r.pem"])),
    row(Inspect, &["remote", "127.0.0.1:9", "--trust-domain", "BAD"], Refused(&["--trust-domain", "lowercase"])),
    row(Inspect, &["remote", "127.0.0.1:9", "--spiffe-id", "web"], Refused(&["--spiffe-id", "must start with \"spiffe://\""])),
    row(Inspect, &["remote", "127.0.0.1:9", "--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem"], Refused(&["reading the client certificate", "/nonexistent/c.pem"])),
    row(Inspect, &["needs-renewal", "leaf.pem", "--at-fraction", "1.5"], Refused(&["'--at-fraction <FRACTION>'", "outside the accepted range 0 to 1"])),
    row(Inspect, &["needs-renewal", "leaf.pem", "--at-fraction=-0.1"], Refused(&["'--at-fraction <FRACTION>'", "outside the accepted range 0 to 1"])),
    row(Inspect, &["needs-renewal", "leaf.pem", "--at-fraction", "half"], Refused(&["'--at-fraction <FRACTION>'", "the accepted range is 0 to 1"])),
    row(Inspect, &["needs-renewal", "leaf.pem", "--at-fraction", "0"], Accepted),
    row(Inspect, &["needs-renewal", "leaf.pem", "--at-fraction", "1"], Accepted),
    row(Inspect, &["needs-renewal", "leaf.pem", "--at", "2026-13-01T00:00:00Z"], Refused(&["'--at <RFC3339>'", "month was not in range"])),
    row(Inspect, &["verify", "leaf.pem", "--roots", "root.pem", "--at", "0001-01-01T00:00:00Z"], Refused(&["'--at <RFC3339>'", "1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"])),
    row(Inspect, &["verify", "leaf.pem", "--roots", "root.pem", "--at", "9999-12-31T23:59:59Z"], Accepted),
    row(Inspect, &["verify", "leaf.pem", "--roots", "/nonexistent/root.pem"], Refused(&["reading the roots", "/nonexistent/root.pem"])),
    row(Inspect, &["verify", "leaf.pem", "--roots", "root.pem", "--intermediates", "/nonexistent/i.pem"], Refused(&["reading the intermediates", "/nonexistent/i.pem"])),
    row(Inspect, &["verify", "leaf.pem", "--roots", "root.pem", "--crl", "/nonexistent/crl.pem"], Refused(&["reading the CRLs", "/nonexistent/crl.pem"])),
    row(Inspect, &["verify", "leaf.pem", "--roots", "root.pem", "--spiffe-id", "web"], Refused(&["--spiffe-id", "must start with \"spiffe://\""])),
    row(Inspect, &["verify", "leaf.pem", "--roots", "root.pem", "--trust-domain", "BAD"], Refused(&["--trust-domain", "lowercase"])),
    row(Inspect, &["verify", "leaf.pem", "--roots", "root.pem", "--hostname", "a..b"], Refused(&["--hostname", "neither a DNS name nor an IP address"])),
    row(Inspect, &["show", "--at", "yesterday", "leaf.pem"], Refused(&["'--at <RFC3339>'", "not an RFC 3339 time"])),
    row(Inspect, &["show", "--at", "1970-01-01T00:00:00Z", "leaf.pem"], Accepted),
    row(Inspect, &["show", "/nonexistent/leaf.pem"], Refused(&["cannot read /nonexistent/leaf.pem", "No such file"])),
];

impl Program {
    fn binary(self) -> &'static str {
        match self {
            Ca => "mtls-ca",
            Server | ServerBare => "mtls-server",
            Client | ClientBare => "mtls-client",
            Bench => "mtls-bench",
            Inspect => "mtls-inspect",
            Proxy => "mtls-proxy",
            Agent | AgentWrite => "mtls-agent",
        }
    }

    /// The arguments that make the rest of a command line valid, as (option, value) pairs;
    /// `ca_dir` is the data directory for `mtls-ca`, `token` a join token file.
    fn base(self, ca_dir: &Path, token: &Path) -> Vec<(String, Option<String>)> {
        let pair = |o: &str, v: &str| (o.to_string(), Some(v.to_string()));
        let enrolled = || {
            vec![
                pair("--ca-url", NO_CA),
                pair("--ca-fingerprint", FINGERPRINT),
                pair("--spiffe-id", CLIENT_ID),
                pair("--join-token-file", &token.display().to_string()),
            ]
        };
        match self {
            Ca => vec![
                pair("--data-dir", &ca_dir.display().to_string()),
                pair("--listen", "127.0.0.1:0"),
            ],
            Server => enrolled(),
            Proxy => {
                let mut a = vec![
                    ("inbound".to_string(), None),
                    pair("--listen", "127.0.0.1:0"),
                    pair("--to", "127.0.0.1:9"),
                ];
                a.extend(enrolled());
                a
            }
            ServerBare | Inspect => vec![],
            Client => {
                let mut a = enrolled();
                a.push(pair("--server", "https://localhost:2"));
                a
            }
            ClientBare => vec![pair("--server", "https://localhost:2")],
            Agent => {
                let socket = token.with_file_name("agent.sock");
                vec![
                    ("serve".to_string(), None),
                    pair("--socket", &format!("unix://{}", socket.display())),
                    pair("--ca-url", NO_CA),
                    pair("--ca-fingerprint", FINGERPRINT),
                    pair("--spiffe-id", AGENT_ID),
                    pair("--join-token-file", &token.display().to_string()),
                ]
            }
            AgentWrite => vec![
                ("write".to_string(), None),
                pair("--socket", NO_AGENT),
                pair("--spiffe-id", CLIENT_ID),
                pair("--dir", &token.with_file_name("out").display().to_string()),
            ],
            Bench => vec![
                ("https://127.0.0.1:1/".to_string(), None),
                pair("--cert", "c.pem"),
                pair("--key", "k.pem"),
                pair("--ca-cert", "r.pem"),
            ],
        }
    }

    /// Whether a run that was not refused got past its settings to its first real step.
    fn got_past_settings(self, run: &Run) -> bool {
        match self {
            // A service that enrolls tries to reach the CA (nobody listens there); a bare row
            // gives its own `--enroll-timeout`.
            Server | ServerBare | Client | ClientBare | Proxy | Agent => {
                run.code == Some(1) && run.stderr.contains("gave up after")
            }
            // Dials the agent's socket (nobody serves it).
            AgentWrite => {
                run.code == Some(1) && run.stderr.contains("connecting to the Workload API")
            }
            // Reads its files (there are none).
            Bench => run.stderr.contains("reading r.pem"),
            // Valid, invalid or due: any verdict.
            Inspect => matches!(run.code, Some(0 | 1)),
            Ca => unreachable!("accepted mtls-ca rows are run by accepted_ca"),
        }
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(program: Program, args: &[String], cwd: &Path) -> Run {
    let mut cmd = Command::new(programs::by_name(program.binary()));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("MTLS_JOIN_TOKEN")
        .env_remove("MTLS_CA_DATA_DIR");
    let mut proc = testkit::Proc::spawn(program.binary(), cmd);
    let status = proc.wait_exit(RUN_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "{} {args:?} did not finish within {RUN_TIMEOUT:?}:\n{}",
            program.binary(),
            proc.output()
        )
    });
    Run {
        code: status.code(),
        stdout: proc.stdout(),
        stderr: proc.stderr(),
    }
}

/// The option of a command-line word (`--x` or `--x=v`), if it is one.
fn option_of(word: &str) -> Option<&str> {
    word.starts_with("--")
        .then(|| word.split('=').next().unwrap_or(word))
}

/// The base arguments the row does not replace, then the row's.
fn command_line(row: &Row, ca_dir: &Path, token: &Path) -> Vec<String> {
    let given: Vec<&str> = row.args.iter().filter_map(|a| option_of(a)).collect();
    // A row that starts with a positional argument (mtls-bench's target) replaces the base's.
    let own_positional = row.args.first().is_some_and(|a| option_of(a).is_none());
    let mut args = Vec::new();
    for (option, value) in row.program.base(ca_dir, token) {
        let positional = option_of(&option).is_none();
        if given.contains(&option.as_str()) || (positional && own_positional) {
            continue;
        }
        args.push(option);
        args.extend(value);
    }
    // Accepted rows of an enrolled service must end quickly: 1 s to reach the CA.
    if matches!(row.outcome, Accepted)
        && matches!(row.program, Server | Client | Proxy | Agent)
        && !given.contains(&"--enroll-timeout")
    {
        args.extend(["--enroll-timeout".to_string(), "1s".to_string()]);
    }
    args.extend(row.args.iter().map(|a| a.to_string()));
    args
}

fn inspect_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../inspect/tests/data")
        .canonicalize()
        .expect("crates/inspect/tests/data")
}

/// Runs every row of `programs`; fails listing every row that did not behave.
fn check(programs: &[Program]) {
    let problems: Vec<String> = programs.iter().flat_map(|p| problems_of(*p)).collect();
    assert!(
        problems.is_empty(),
        "{} row(s) did not behave:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Runs every row of `program`; returns what did not behave, row by row.
fn problems_of(program: Program) -> Vec<String> {
    programs::require(&[program.binary()]);
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "not-redeemed").unwrap();
    let mut problems = Vec::new();
    // A CA for the subcommand rows that must be accepted, started on first use.
    let mut running_ca: Option<testkit::CaProc> = None;
    for (n, row) in ROWS
        .iter()
        .enumerate()
        .filter(|(_, r)| r.program == program)
    {
        let ca_dir = tmp.path().join(format!("ca-{n}"));
        let cwd = if program == Inspect {
            inspect_data()
        } else {
            tmp.path().to_path_buf()
        };
        let what = format!("{} {}", program.binary(), row.args.join(" "));
        if program == Ca && matches!(row.outcome, Accepted) {
            if let Err(e) = accepted_ca(row, &ca_dir, tmp.path(), &mut running_ca) {
                problems.push(format!("{what}: {e}"));
            }
            continue;
        }
        let args = command_line(row, &ca_dir, &token);
        let r = run(program, &args, &cwd);
        let problem = match &row.outcome {
            Refused(says) => {
                let missing: Vec<_> = says.iter().filter(|s| !r.stderr.contains(*s)).collect();
                if r.code != Some(2) {
                    Some(format!("expected exit 2, got {:?}", r.code))
                } else if !missing.is_empty() {
                    Some(format!("stderr lacks {missing:?}"))
                } else if !r.stdout.is_empty() {
                    Some(format!("printed on stdout: {}", r.stdout))
                } else if program == Ca && ca_dir.exists() {
                    Some(format!("created the data directory {}", ca_dir.display()))
                } else {
                    None
                }
            }
            Fails(says) => {
                // Each cause printed once (not again by the error's chain).
                let missing: Vec<_> = says
                    .iter()
                    .filter(|s| r.stderr.matches(*s).count() != 1)
                    .collect();
                if r.code != Some(1) {
                    Some(format!("expected exit 1, got {:?}", r.code))
                } else if !missing.is_empty() {
                    Some(format!("stderr lacks, or repeats, {missing:?}"))
                } else {
                    None
                }
            }
            Accepted => (!program.got_past_settings(&r))
                .then(|| format!("not accepted (exit {:?})", r.code)),
        };
        if let Some(p) = problem {
            problems.push(format!("{what}: {p}\n  stderr: {}", r.stderr.trim()));
        }
    }
    problems
}

/// An accepted `mtls-ca` row: the service starts with it, or (a subcommand) it runs against a
/// running CA's data directory and succeeds.
fn accepted_ca(
    row: &Row,
    ca_dir: &Path,
    tmp: &Path,
    running: &mut Option<testkit::CaProc>,
) -> Result<(), String> {
    if row.args.first() == Some(&"token") {
        let ca = running.get_or_insert_with(|| {
            programs::start_ca("ca", &tmp.join("running-ca"), "127.0.0.1:0", &[])
        });
        let mut args = vec!["--data-dir".to_string(), ca.data_dir.display().to_string()];
        args.extend(row.args.iter().map(|a| a.to_string()));
        let r = run(Ca, &args, tmp);
        return match (r.code, r.stdout.starts_with("mtj_")) {
            (Some(0), true) => Ok(()),
            _ => Err(format!(
                "exit {:?}, stdout {:?}: {}",
                r.code, r.stdout, r.stderr
            )),
        };
    }
    // testkit::start_ca panics with the CA's output unless it prints its listening line.
    let ca = programs::start_ca("ca", ca_dir, "127.0.0.1:0", row.args);
    drop(ca);
    Ok(())
}

#[test]
fn mtls_ca() {
    check(&[Ca]);
}

#[test]
fn mtls_server() {
    check(&[Server, ServerBare]);
}

#[test]
fn mtls_client() {
    check(&[Client, ClientBare]);
}

#[test]
fn mtls_bench() {
    check(&[Bench]);
}

#[test]
fn mtls_proxy() {
    check(&[Proxy]);
}

#[test]
fn mtls_agent() {
    check(&[Agent, AgentWrite]);
}

#[test]
fn mtls_inspect() {
    check(&[Inspect]);
}

/// A refused setting stops the program before it redeems the join token: the same token
/// enrolls afterwards.
#[test]
fn a_refused_setting_redeems_no_token() {
    programs::require(&["mtls-ca", "mtls-client"]);
    let dir = tempfile::tempdir().unwrap();
    let ca = programs::start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let token = dir.path().join("client.token");
    std::fs::write(&token, ca.token(CLIENT_ID, &[])).unwrap();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "--ca-url",
            &ca.url(),
            "--ca-fingerprint",
            &ca.fingerprint,
            "--spiffe-id",
            CLIENT_ID,
            "--join-token-file",
            &token.display().to_string(),
            "--server",
            "https://localhost:1",
            "--count",
            "0",
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let r = run(Client, &args(&["--crl-refresh", "0s"]), dir.path());
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let r = run(Client, &args(&[]), dir.path());
    assert_eq!(r.code, Some(0), "the token was still unused: {}", r.stderr);
}

#[test]
fn every_program_has_rows_of_each_kind() {
    for program in [Ca, Server, Client, Bench, Inspect, Proxy, Agent, AgentWrite] {
        let rows = || ROWS.iter().filter(move |r| r.program == program);
        assert!(
            rows().any(|r| matches!(r.outcome, Refused(_))),
            "{program:?} has no refused row"
        );
        assert!(
            rows().any(|r| matches!(r.outcome, Accepted)),
            "{program:?} has no accepted edge"
        );
    }
}
