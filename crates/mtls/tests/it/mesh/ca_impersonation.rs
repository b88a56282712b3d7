//! Issue 9 item 1: a workload must not be able to stand in for the CA or slip a root into a
//! service's trust store.
//!
//! The attacker is a real workload: it enrolls with the real CA for
//! `spiffe://mesh.local/service/evil` with `DNS:localhost`, then runs a TLS-terminating relay
//! (tokio + rustls with the mesh TLS policy) in front of the CA that forwards every request and
//! appends its own root to `/api/v1/bundle`. Services that reach the CA through the relay must
//! refuse it by identity (naming the identity presented), send it nothing (no join token), and
//! never trust the injected root. Also: a root the CA legitimately adds (`--bundle-extra`) is
//! accepted by a running service, after which peers from that root are accepted.
//!
//! Runs the programs of this build (`crate::programs`).

use std::convert::Infallible;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::programs::{self, start_ca, start_server};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mesh::{CaRoot, CredentialSource, Enrollment, HttpsUrl, Mesh, Role, ServiceConfig};
use mesh::{Fingerprint, TokenSource};
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};
use testkit::{CaProc, Proc, TestCa};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use wire::tls::{CertResolver, TlsPolicy, ALPN_HTTP, ALPN_HTTP1};

use super::common::{s, CLIENT_ID, SERVER_ID};

const EVIL_ID: &str = "spiffe://mesh.local/service/evil";
const CA_ID: &str = "spiffe://mesh.local/ca";
const WAIT: Duration = Duration::from_secs(30);

fn require_binaries() {
    programs::require(&["mtls-ca", "mtls-server", "mtls-client"]);
}

fn root_pem(ca: &CaProc) -> Vec<u8> {
    std::fs::read(ca.data_dir.join("root.crt")).expect("root.crt")
}

/// The attacker's certificate: a real one, from the real CA, valid for localhost (enrolled
/// through the mesh library, as any embedder would).
fn enroll_evil(rt: &tokio::runtime::Runtime, ca: &CaProc) -> Arc<CertifiedKey> {
    let token = ca.token(EVIL_ID, &["--dns", "localhost"]);
    let enrollment = Enrollment::new(
        HttpsUrl::parse(&ca.url()).expect("url"),
        CaRoot::Fingerprint(Fingerprint::parse(&ca.fingerprint).expect("fingerprint")),
        pki::SpiffeId::parse(EVIL_ID).expect("id"),
        TokenSource::Literal(token),
    );
    let config = ServiceConfig::new(Role::Server, CredentialSource::Enrolled(enrollment));
    rt.block_on(async {
        let mesh = Mesh::start(config)
            .await
            .expect("the evil workload enrolls");
        let key = mesh.credential().certified_key();
        mesh.shutdown().await;
        key
    })
}

/// The relay between services and the CA. Until `terminate` is set it passes TCP through (the
/// service talks TLS with the real CA); then it terminates TLS with the workload's certificate.
struct Relay {
    port: u16,
    terminate: Arc<AtomicBool>,
    /// Every HTTP request that reached the relay's TLS endpoint.
    requests: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

#[derive(Clone)]
struct RelayState {
    ca_port: u16,
    upstream: Arc<ClientConfig>,
    injected_pem: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn start_relay(
    rt: &tokio::runtime::Runtime,
    ca: &CaProc,
    evil: Arc<CertifiedKey>,
    injected_pem: String,
) -> Relay {
    let policy = TlsPolicy::default();
    let server = policy
        .server_config(
            WebPkiClientVerifier::no_client_auth(),
            CertResolver::new(evil),
            ALPN_HTTP,
        )
        .expect("relay server config");
    let acceptor = TlsAcceptor::from(Arc::new(server));
    // The relay itself checks the real CA's chain and name.
    let mut roots = RootCertStore::empty();
    for root in pki::pem::parse_certificates(&root_pem(ca)).expect("root") {
        roots.add(root).expect("root");
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), policy.provider())
        .build()
        .expect("verifier");
    let upstream = Arc::new(
        policy
            .client_config(verifier, None, ALPN_HTTP1)
            .expect("upstream"),
    );
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind relay");
    let port = listener.local_addr().expect("addr").port();
    let terminate = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let state = RelayState {
        ca_port: ca.port,
        upstream,
        injected_pem,
        requests: requests.clone(),
    };
    let mode = terminate.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, state, terminate) =
                (acceptor.clone(), state.clone(), mode.load(Ordering::SeqCst));
            tokio::spawn(async move {
                if !terminate {
                    if let Ok(mut up) = TcpStream::connect(("127.0.0.1", state.ca_port)).await {
                        let mut tcp = tcp;
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
                    }
                    return;
                }
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req| forward(req, state.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Relay {
        port,
        terminate,
        requests,
    }
}

/// Forwards one request to the real CA; adds the injected root to the bundle.
async fn forward(
    req: Request<Incoming>,
    state: RelayState,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    state
        .requests
        .lock()
        .expect("lock")
        .push(format!("{method} {path}"));
    let auth: Vec<(&str, String)> = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| ("authorization", v.to_string()))
        .into_iter()
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let url = HttpsUrl::parse(&format!("https://localhost:{}", state.ca_port)).expect("url");
    let answer = async {
        let mut conn =
            mesh::https::connect(state.upstream.clone(), &url, Duration::from_secs(10)).await?;
        let body = (!body.is_empty()).then_some(("application/json", body));
        conn.request(method, &path, &auth, body, 1 << 20).await
    }
    .await;
    Ok(match answer {
        Ok(r) => {
            let mut out = r.body.to_vec();
            if path == "/api/v1/bundle" {
                out.extend_from_slice(state.injected_pem.as_bytes());
            }
            let mut response = Response::new(Full::new(Bytes::from(out)));
            *response.status_mut() = r.status;
            response
        }
        Err(e) => {
            let mut response = Response::new(Full::new(Bytes::from(e.to_string())));
            *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            response
        }
    })
}

fn token_file(ca: &CaProc, dir: &Path, name: &str, id: &str, extra: &[&str]) -> String {
    let path = dir.join(format!("{name}.token"));
    std::fs::write(&path, ca.token(id, extra)).expect("token");
    s(&path)
}

fn enrolled_args(ca_url: &str, fingerprint: &str, id: &str, token: &str) -> Vec<String> {
    [
        "--ca-url",
        ca_url,
        "--ca-fingerprint",
        fingerprint,
        "--spiffe-id",
        id,
        "--join-token-file",
        token,
    ]
    .map(String::from)
    .to_vec()
}

/// mtls-client in static mode presenting `leaf` (issued by `issuer`), trusting the mesh root
/// `mesh_root` for the server; returns (success, all output).
fn static_client(
    dir: &Path,
    leaf: &testkit::Leaf,
    issuer: &TestCa,
    mesh_root: &Path,
    url: &str,
) -> (bool, String) {
    let name = format!("peer-{}", &leaf.serial_hex[..8]);
    let (cert, key) = leaf.write(dir, &name);
    // The client checks its own certificate against its --ca-cert too.
    let roots = dir.join(format!("{name}-roots.pem"));
    let mut pem = std::fs::read_to_string(mesh_root).expect("mesh root");
    pem.push_str(&issuer.cert_pem());
    std::fs::write(&roots, pem).expect("roots");
    let mut cmd = Command::new(programs::client());
    cmd.args([
        "--cert",
        &s(&cert),
        "--key",
        &s(&key),
        "--ca-cert",
        &s(&roots),
    ])
    .args(["--server", url, "--timeout", "10s"]);
    let (status, _, out) = testkit::run("mtls-client", cmd, WAIT);
    (status.success(), out)
}

#[test]
fn a_workload_relaying_the_ca_is_refused_and_its_root_never_trusted() {
    require_binaries();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let root_file = dir.path().join("ca").join("root.crt");
    let evil = enroll_evil(&rt, &ca);
    // The attacker's own root, and a certificate from it claiming the admin identity.
    let injected = TestCa::new("Injected Root");
    let admin_from_injected = injected.client("spiffe://mesh.local/admin");
    let relay = start_relay(&rt, &ca, evil, injected.cert_pem());

    // A service enrolls through the relay while it still passes TCP through to the CA.
    let token = token_file(
        &ca,
        dir.path(),
        "server",
        SERVER_ID,
        &["--dns", "localhost", "--ip", "127.0.0.1"],
    );
    let mut args = enrolled_args(&relay.url(), &ca.fingerprint, SERVER_ID, &token);
    args.extend(["--crl-refresh", "1s"].map(String::from));
    let server = start_server("server", &args);
    let (ok, out) = static_client(
        dir.path(),
        &admin_from_injected,
        &injected,
        &root_file,
        &server.url(),
    );
    assert!(
        !ok,
        "a certificate from an unknown root must be refused:\n{out}"
    );

    // Now the relay terminates TLS with the workload's certificate: the next refresh must
    // refuse it by identity, and send it nothing.
    let mark = server.proc.mark();
    relay.terminate.store(true, Ordering::SeqCst);
    let refused = server.proc.wait_for_after(
        mark,
        |l| l.contains("refresh_failed") || l.contains("trust_bundle_refused"),
        WAIT,
    );
    assert!(
        refused.contains("refresh_failed")
            && refused.contains(&format!(
                "presented {EVIL_ID}, not the CA's identity {CA_ID}"
            )),
        "{refused}"
    );
    assert_eq!(
        relay.requests(),
        Vec::<String>::new(),
        "requests reached the relay"
    );
    // The injected root never reached the trust store: the forged admin is still refused.
    let mark = server.proc.mark();
    let (ok, out) = static_client(
        dir.path(),
        &admin_from_injected,
        &injected,
        &root_file,
        &server.url(),
    );
    assert!(!ok, "the injected root must not be trusted:\n{out}");
    let line = server
        .proc
        .wait_for_after(mark, |l| l.contains("handshake_failed"), WAIT);
    assert!(line.contains("unknown CA"), "{line}");
    assert!(
        !server.proc.output().contains("trust bundle updated"),
        "{}",
        server.proc.output()
    );

    // Enrollment through the relay fails at once, naming both identities; the join token
    // never reaches the relay.
    let token = token_file(&ca, dir.path(), "client", CLIENT_ID, &[]);
    let mut cmd = Command::new(programs::client());
    cmd.args(enrolled_args(
        &relay.url(),
        &ca.fingerprint,
        CLIENT_ID,
        &token,
    ))
    .args(["--server", &server.url()]);
    let mut client = Proc::spawn("client", cmd);
    let status = client.wait_exit(WAIT).expect("mtls-client gave up at once");
    assert!(!status.success());
    let out = client.output();
    assert!(
        out.contains(&format!(
            "the server presented {EVIL_ID}, not the CA's identity {CA_ID}"
        )),
        "{out}"
    );
    assert!(
        !out.contains("enroll_failed"),
        "must not be retried:\n{out}"
    );
    // docs/troubleshooting.md quotes this message.
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/troubleshooting.md"
    ))
    .expect("troubleshooting page");
    for phrase in [
        "obtaining the client certificate: trust: refusing to talk to",
        "/api/v1/sign: server identity mismatch: the server presented \
         spiffe://mesh.local/service/evil, not the CA's identity spiffe://mesh.local/ca: \
         whatever answers at the CA URL is not the CA",
        "nothing was sent to it. Check --ca-url and the network path to the CA",
    ] {
        assert!(
            out.contains(phrase),
            "mtls-client no longer prints {phrase:?}:\n{out}"
        );
        assert!(
            page.contains(phrase),
            "docs/troubleshooting.md lacks {phrase:?}"
        );
    }
    // The one request the relay saw is the unauthenticated root download, whose answer is
    // checked against --ca-fingerprint; the join token never reached it.
    assert_eq!(relay.requests(), vec!["GET /api/v1/ca".to_string()]);
}

#[test]
fn a_root_the_ca_adds_with_bundle_extra_is_accepted_by_a_running_service() {
    require_binaries();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_dir = dir.path().join("ca");
    let mut ca = start_ca("ca", &ca_dir, "127.0.0.1:0", &[]);
    let root_file = ca_dir.join("root.crt");
    let next = TestCa::new("Next Mesh Root");
    let next_file = next.write_root(dir.path(), "next.crt");
    let peer_from_next = next.client(CLIENT_ID);

    let token = token_file(
        &ca,
        dir.path(),
        "server",
        SERVER_ID,
        &["--dns", "localhost", "--ip", "127.0.0.1"],
    );
    let mut args = enrolled_args(&ca.url(), &ca.fingerprint, SERVER_ID, &token);
    args.extend(["--crl-refresh", "1s"].map(String::from));
    let server = start_server("server", &args);
    let (ok, out) = static_client(
        dir.path(),
        &peer_from_next,
        &next,
        &root_file,
        &server.url(),
    );
    assert!(!ok, "not trusted yet:\n{out}");

    // The operator restarts the CA publishing the next root; the running service picks it up.
    let mark = server.proc.mark();
    let port = ca.port;
    ca.proc.kill();
    ca = start_ca(
        "ca-again",
        &ca_dir,
        &format!("127.0.0.1:{port}"),
        &["--bundle-extra", &s(&next_file)],
    );
    let updated = server
        .proc
        .wait_for_after(mark, |l| l.contains("trust bundle updated"), WAIT);
    assert!(updated.contains("Next Mesh Root"), "{updated}");
    let (ok, out) = static_client(
        dir.path(),
        &peer_from_next,
        &next,
        &root_file,
        &server.url(),
    );
    assert!(
        ok,
        "a peer from the vouched-for root must be accepted:\n{out}"
    );
    let (_, metrics) = server.admin_get("/metrics");
    assert!(
        !metrics.contains("mesh_trust_bundle_refused_total{"),
        "{metrics}"
    );
    drop(ca);
}
