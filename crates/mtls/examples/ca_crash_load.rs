//! The load driver and the checker of `scripts/crash-test.sh`: kill -9 of `mtls-ca` during a
//! burst of signings and renewals must lose nothing a client was given, and leave every stored
//! certificate with its audit entry (docs/reliability.md).
//!
//! ```text
//! ca_crash_load tokens --data-dir DIR [--store URL] --count N --prefix P [--threads 4]
//!                      > tokens    (TOKEN SPIFFE-ID lines)
//! ca_crash_load burst --ca-url URL --root FILE --tokens FILE --received FILE
//!                     [--concurrency 8] [--renewals 3]
//! ca_crash_load check --data-dir DIR --received FILE...
//! ```
//!
//! `burst` enrolls one identity per token (POST /api/v1/sign) and renews each certificate
//! `--renewals` times over mTLS with a fresh key (POST /api/v1/renew), appending one line per
//! certificate it *received* (`issued|renewed SERIAL SHA256`) to `--received` as soon as the
//! response is complete; it stops when the CA goes away and prints how many requests were in
//! flight then. `check` opens the dead CA's database and fails (exit 1) unless every received
//! certificate is stored with the same fingerprint, every stored certificate has its `issue` or
//! `renew` audit entry (and every such entry its certificate), and the audit chain replays
//! against the tables (`Store::verify_audit`, what `mtls-ca audit verify` runs).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test tool: a panic is the error report

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtls_ca::datadir::DataDir;
use mtls_ca::store::{AuditCheck, SqliteStore, Store, StoreLocation};
use pki::clock::SystemClock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("usage: ca_crash_load tokens|burst|check ... (see the source)");
        return ExitCode::from(2);
    };
    let opts = Opts::parse(rest);
    match command.as_str() {
        "tokens" => tokens(&opts),
        "burst" => burst(&opts),
        "check" => check(&opts),
        other => {
            eprintln!("unknown command {other:?}: tokens, burst or check");
            ExitCode::from(2)
        }
    }
}

/// `--name value` pairs; repeated names keep every value.
struct Opts(BTreeMap<String, Vec<String>>);

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let name = name
                .strip_prefix("--")
                .unwrap_or_else(|| panic!("expected --option, got {name:?}"));
            let value = it
                .next()
                .unwrap_or_else(|| panic!("--{name} needs a value"));
            map.entry(name.to_string()).or_default().push(value.clone());
        }
        Opts(map)
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .get(name)
            .and_then(|v| v.last())
            .unwrap_or_else(|| panic!("--{name} is required"))
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0.get(name).cloned().unwrap_or_default()
    }

    fn number(&self, name: &str, default: usize) -> usize {
        self.0
            .get(name)
            .and_then(|v| v.last())
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    }
}

/// Creates `--count` join tokens for `spiffe://mesh.local/crash/PREFIX-i` in the store of the
/// data directory (the running CA shares it), or in `--store` (`sqlite:PATH` or a PostgreSQL
/// URL, as `mtls-ca --store` takes it), through the store layer the CA uses, on `--threads`
/// threads (each token is its own durable transaction), and prints them.
fn tokens(opts: &Opts) -> ExitCode {
    let location = opts
        .0
        .get("store")
        .and_then(|v| v.last())
        .map(|s| StoreLocation::parse(s).expect("--store"));
    let dir = DataDir::for_store(&PathBuf::from(opts.get("data-dir")), location.as_ref());
    let store = dir
        .open_existing(location.as_ref())
        .expect("open the store");
    let td = pki::TrustDomain::parse("mesh.local").unwrap();
    let prefix = opts.get("prefix");
    let count = opts.number("count", 100);
    let threads = opts.number("threads", 4).max(1);
    let next = AtomicUsize::new(0);
    let made: Vec<Vec<String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut lines = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return lines;
                        }
                        let id = pki::SpiffeId::parse(&format!(
                            "spiffe://mesh.local/crash/{prefix}-{i}"
                        ))
                        .unwrap();
                        let token = mtls_ca::admin::create_token(
                            store.as_ref(),
                            &td,
                            &id,
                            &[],
                            &[],
                            time::Duration::minutes(30),
                            &SystemClock,
                        )
                        .expect("create a token");
                        lines.push(format!("{token} {id}"));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut out = std::io::stdout().lock();
    for line in made.iter().flatten() {
        writeln!(out, "{line}").unwrap();
    }
    ExitCode::SUCCESS
}

/// What every worker of a burst shares.
struct Burst {
    url: String,
    root: Vec<u8>,
    tokens: Mutex<Vec<(String, String)>>,
    received: Mutex<std::fs::File>,
    renewals: usize,
    /// Requests that ended without an answer: those in flight when the CA was killed, and any
    /// sent after it.
    gone: AtomicUsize,
    refused: AtomicUsize,
}

/// A certificate and its key, as a client holds them.
struct Held {
    cert_pem: String,
    key_pem: String,
}

enum Outcome {
    Got(serde_json::Value),
    /// The CA answered with an error status (a refusal is not expected in a burst).
    Refused(u16, String),
    /// The CA is gone (connection refused or cut).
    Gone,
}

impl Burst {
    fn client(&self, identity: Option<&Held>) -> reqwest::Client {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&self.root) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(held) => {
                let chain = CertificateDer::pem_slice_iter(held.cert_pem.as_bytes())
                    .map(|c| c.unwrap())
                    .collect();
                let key = PrivateKeyDer::from_pem_slice(held.key_pem.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    async fn post(
        &self,
        identity: Option<&Held>,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> Outcome {
        let mut request = self
            .client(identity)
            .post(format!("{}{path}", self.url))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let outcome = async {
            let response = match request.send().await {
                Ok(r) => r,
                Err(_) => return Outcome::Gone,
            };
            let status = response.status().as_u16();
            // The response counts as received only once its body is complete.
            match response.text().await {
                Ok(text) if status == 200 => Outcome::Got(serde_json::from_str(&text).unwrap()),
                Ok(text) => Outcome::Refused(status, text),
                Err(_) => Outcome::Gone,
            }
        }
        .await;
        if matches!(outcome, Outcome::Gone) {
            self.gone.fetch_add(1, Ordering::SeqCst);
        }
        outcome
    }

    /// Appends the certificate to the received file (flushed at once: the driver outlives the
    /// CA, so the line reaches the file whatever happens to the CA) and returns its PEM.
    fn record(&self, what: &str, issued: &serde_json::Value) -> String {
        let pem = issued["certificate"].as_str().unwrap().to_string();
        let der = pki::pem::parse_certificates(pem.as_bytes())
            .unwrap()
            .remove(0);
        let line = format!(
            "{what} {} {}\n",
            issued["serial"].as_str().unwrap(),
            pki::sha256_hex(&der)
        );
        let mut file = self.received.lock().unwrap();
        file.write_all(line.as_bytes()).unwrap();
        file.flush().unwrap();
        pem
    }

    fn refused(&self, status: u16, body: &str) {
        self.refused.fetch_add(1, Ordering::SeqCst);
        eprintln!("ca_crash_load: refused with {status}: {body}");
    }

    /// One worker: enroll with the next token and renew, until the tokens or the CA run out.
    async fn worker(&self) {
        loop {
            let Some((token, id)) = self.tokens.lock().unwrap().pop() else {
                return;
            };
            let key = pki::keys::generate(pki::Curve::P384).unwrap();
            let body = serde_json::json!({"csr": csr(&key), "requested_id": id});
            let mut held = match self.post(None, "/api/v1/sign", Some(&token), body).await {
                Outcome::Got(v) => Held {
                    cert_pem: self.record("issued", &v),
                    key_pem: key.serialize_pem(),
                },
                Outcome::Refused(status, text) => {
                    self.refused(status, &text);
                    continue;
                }
                Outcome::Gone => return,
            };
            for _ in 0..self.renewals {
                let key = pki::keys::generate(pki::Curve::P384).unwrap();
                let body = serde_json::json!({ "csr": csr(&key) });
                match self.post(Some(&held), "/api/v1/renew", None, body).await {
                    Outcome::Got(v) => {
                        held = Held {
                            cert_pem: self.record("renewed", &v),
                            key_pem: key.serialize_pem(),
                        };
                    }
                    Outcome::Refused(status, text) => {
                        self.refused(status, &text);
                        break;
                    }
                    Outcome::Gone => return,
                }
            }
        }
    }
}

fn csr(key: &rcgen::KeyPair) -> String {
    rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

fn burst(opts: &Opts) -> ExitCode {
    let tokens: Vec<(String, String)> = std::fs::read_to_string(opts.get("tokens"))
        .expect("read --tokens")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, id)| (t.to_string(), id.to_string()))
        .collect();
    let total = tokens.len();
    let received = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.get("received"))
        .expect("open --received");
    let burst = Arc::new(Burst {
        url: opts.get("ca-url").trim_end_matches('/').to_string(),
        root: std::fs::read(opts.get("root")).expect("read --root"),
        tokens: Mutex::new(tokens),
        received: Mutex::new(received),
        renewals: opts.number("renewals", 3),
        gone: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let workers: Vec<_> = (0..opts.number("concurrency", 8))
            .map(|_| {
                let burst = burst.clone();
                tokio::spawn(async move { burst.worker().await })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
    });
    let left = burst.tokens.lock().unwrap().len();
    println!(
        "burst: {} of {total} tokens used, {} refused, {} request(s) unanswered (in flight at \
         the kill)",
        total - left,
        burst.refused.load(Ordering::SeqCst),
        burst.gone.load(Ordering::SeqCst)
    );
    if burst.refused.load(Ordering::SeqCst) > 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// The serials of the `issue` and `renew` audit entries.
fn audited_serials(db: &Path) -> BTreeSet<String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open ca.db read-only");
    let mut stmt = conn
        .prepare("SELECT detail FROM audit WHERE event IN ('issue', 'renew')")
        .unwrap();
    let details = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|d| d.unwrap());
    details
        .map(|d| {
            let v: serde_json::Value = serde_json::from_str(&d).unwrap();
            v["serial"].as_str().unwrap().to_string()
        })
        .collect()
}

fn check(opts: &Opts) -> ExitCode {
    let db = PathBuf::from(opts.get("data-dir")).join("ca.db");
    let store = SqliteStore::open(&db).expect("open ca.db");
    let stored: BTreeMap<String, String> = store
        .list_certs()
        .unwrap()
        .into_iter()
        .map(|c| (c.serial, c.fingerprint))
        .collect();
    let mut problems = Vec::new();
    let mut received = 0;
    for file in opts.all("received") {
        for line in std::fs::read_to_string(&file)
            .expect("read --received")
            .lines()
        {
            let fields: Vec<&str> = line.split(' ').collect();
            let [_, serial, fingerprint] = fields[..] else {
                problems.push(format!("{file}: unreadable line {line:?}"));
                continue;
            };
            received += 1;
            match stored.get(serial) {
                None => problems.push(format!("received {serial} is not stored")),
                Some(fp) if fp != fingerprint => problems.push(format!(
                    "received {serial} with SHA-256 {fingerprint}, stored with {fp}"
                )),
                Some(_) => {}
            }
        }
    }
    drop(store);
    let audited = audited_serials(&db);
    for serial in stored.keys().filter(|s| !audited.contains(*s)) {
        problems.push(format!("stored {serial} has no issue or renew audit entry"));
    }
    for serial in audited.iter().filter(|s| !stored.contains_key(*s)) {
        problems.push(format!(
            "audit entry for {serial}, but no stored certificate"
        ));
    }
    let store = SqliteStore::open(&db).expect("open ca.db");
    match store.verify_audit().unwrap() {
        AuditCheck::Intact { entries, .. } => {
            println!(
                "check: {received} received, {} stored, {} audited, {entries} audit entries, \
                 chain intact",
                stored.len(),
                audited.len()
            )
        }
        other => problems.push(format!("audit verify: {other:?}")),
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            println!("PROBLEM {p}");
        }
        ExitCode::from(1)
    }
}
