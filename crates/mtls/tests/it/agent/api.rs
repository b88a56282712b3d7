//! The Workload API of a running agent, seen by the Rust `spiffe` crate's `WorkloadApiClient`
//! (a client nobody here wrote) and by raw gRPC calls.

use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use mtls_agent::proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use mtls_agent::proto::{X509BundlesRequest, X509svidRequest};

use super::common::*;
use crate::programs;

#[tokio::test]
async fn a_call_without_the_security_header_is_invalid_argument() {
    let agent = start();
    // A raw client of the generated stubs, without the metadata.
    let mut raw = raw_client(&agent).await;
    let status = raw
        .fetch_x509svid(X509svidRequest {})
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("workload.spiffe.io"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_workload_no_entry_matches_is_denied_with_its_selectors() {
    let agent = start();
    // An entry for another uid only.
    let mark = agent.proc.mark();
    agent.entry(WEB_ID, &["unix:uid:4242"], &[]);
    agent.wait_minted(mark, WEB_ID);
    let err = agent
        .client()
        .await
        .fetch_x509_svid()
        .await
        .expect_err("denied");
    let text = format!("{err:?} {err}");
    assert!(text.contains("PermissionDenied"), "{text}");
    assert!(
        text.contains(&format!("unix:uid:{}", my_uid())) && text.contains("unix:sha256:"),
        "the observed selectors are named: {text}"
    );
}

#[tokio::test]
async fn the_spiffe_crate_fetches_svids_validates_a_jwt_and_sees_a_rotation() {
    let agent = start();
    let mark = agent.proc.mark();
    // Short-lived: rotated at half of 4 s.
    agent.entry(
        WEB_ID,
        &[&format!("unix:uid:{}", my_uid())],
        &["--ttl", "4s"],
    );
    agent.wait_minted(mark, WEB_ID);
    let client = agent.client().await;

    let svid = client.fetch_x509_svid().await.unwrap();
    assert_eq!(svid.spiffe_id().to_string(), WEB_ID);
    let bundles = client.fetch_x509_bundles().await.unwrap();
    let td = spiffe::TrustDomain::new("mesh.local").unwrap();
    assert!(bundles.get(&td).is_some(), "the trust domain's bundle");

    let jwt = client.fetch_jwt_svid(["audience-a"], None).await.unwrap();
    assert_eq!(jwt.spiffe_id().to_string(), WEB_ID);
    let validated = client
        .validate_jwt_token("audience-a", jwt.token())
        .await
        .unwrap();
    assert_eq!(validated.spiffe_id().to_string(), WEB_ID);
    let wrong = client.validate_jwt_token("audience-b", jwt.token()).await;
    assert!(wrong.is_err(), "another audience must not validate");
    let jwt_bundles = client.fetch_jwt_bundles().await.unwrap();
    let bundle = jwt_bundles.get(&td).expect("the JWT bundle");
    assert!(
        bundle.find_jwt_authority(jwt.key_id()).is_some(),
        "the token's key is in the bundle"
    );

    // The stream brings the rotated SVID without asking again.
    let mut stream = client.stream_x509_contexts().await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let first_serial = first.default_svid().unwrap().leaf().as_bytes().to_vec();
    let next = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let ctx = stream.next().await.unwrap().unwrap();
            let leaf = ctx.default_svid().unwrap().leaf().as_bytes().to_vec();
            if leaf != first_serial {
                return ctx;
            }
        }
    })
    .await
    .expect("a rotation within 20 s");
    assert_eq!(next.default_svid().unwrap().spiffe_id().to_string(), WEB_ID);
}

#[tokio::test]
async fn another_uid_gets_its_own_svid_or_permission_denied() {
    let agent = start();
    let mark = agent.proc.mark();
    agent.entry(WEB_ID, &[&format!("unix:uid:{}", my_uid())], &[]);
    agent.entry("spiffe://mesh.local/service/batch", &["unix:uid:1000"], &[]);
    agent.wait_minted(mark, WEB_ID);
    agent.wait_minted(mark, "spiffe://mesh.local/service/batch");

    // The socket directory must be reachable by uid 1000.
    let out_dir = agent.dir.path().join("as-1000");
    std::fs::create_dir(&out_dir).unwrap();
    Command::new("chown")
        .args(["1000:1000"])
        .arg(&out_dir)
        .status()
        .unwrap();
    let as_1000 = |id: &str| {
        Command::new("setpriv")
            .args(["--reuid", "1000", "--regid", "1000", "--clear-groups"])
            .arg(programs::agent())
            .args(["write", "--once", "--socket"])
            .arg(&agent.socket)
            .args(["--spiffe-id", id, "--dir"])
            .arg(&out_dir)
            .output()
            .unwrap()
    };
    // uid 1000 gets its own identity...
    let out = as_1000("spiffe://mesh.local/service/batch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(out_dir.join("svid.pem")).unwrap();
    let leaf = pki::pem::parse_certificates(pem.as_bytes()).unwrap();
    let info = pki::CertInfo::from_der(&leaf[0]).unwrap();
    assert_eq!(
        info.uris,
        vec!["spiffe://mesh.local/service/batch".to_string()]
    );
    // ...and not the root's.
    let out = as_1000(WEB_ID);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("not entitled to {WEB_ID}")), "{err}");
}

/// A raw client of the generated stubs (with the security header), for the refusals the
/// `spiffe` crate checks before sending.
async fn raw_client(agent: &Agent) -> SpiffeWorkloadApiClient<tonic::transport::Channel> {
    let socket = agent.socket.clone();
    let channel = tonic::transport::Endpoint::from_static("http://workload-api.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                tokio::net::UnixStream::connect(socket)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await
        .expect("connect to the agent socket");
    SpiffeWorkloadApiClient::new(channel)
}

fn with_header<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(
        "workload.spiffe.io",
        "true".parse().expect("an ASCII value"),
    );
    r
}

#[tokio::test]
async fn jwt_requests_that_cannot_be_honoured_are_refused() {
    use base64::Engine as _;
    use mtls_agent::proto::{JwtsvidRequest, ValidateJwtsvidRequest};

    let agent = start();
    let mark = agent.proc.mark();
    agent.entry(WEB_ID, &[&format!("unix:uid:{}", my_uid())], &[]);
    agent.wait_minted(mark, WEB_ID);
    let mut raw = raw_client(&agent).await;

    // No audience.
    let status = raw
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec![],
            spiffe_id: String::new(),
        }))
        .await
        .expect_err("no audience");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // An identity this workload is not entitled to.
    let status = raw
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["a".into()],
            spiffe_id: "spiffe://mesh.local/service/admin".into(),
        }))
        .await
        .expect_err("not entitled");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // A genuine token validates; the same claims re-signed with `alg: none` do not.
    let token = raw
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["a".into()],
            spiffe_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .svids
        .remove(0)
        .svid;
    let ok = raw
        .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
            audience: "a".into(),
            svid: token.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.spiffe_id, WEB_ID);
    assert!(ok.claims.unwrap().fields.contains_key("exp"));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = token.split('.').nth(1).unwrap();
    let forged = format!(
        "{}.{payload}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let status = raw
        .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
            audience: "a".into(),
            svid: forged,
        }))
        .await
        .expect_err("alg none");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // Another audience.
    let status = raw
        .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
            audience: "b".into(),
            svid: token,
        }))
        .await
        .expect_err("audience");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
}

/// A trust domain the CA federates reaches workloads: FetchX509Bundles carries its roots next to
/// our own, and FetchX509SVID carries them as federated_bundles, keyed by trust domain ID.
#[tokio::test]
async fn federated_bundles_reach_the_workload_api() {
    let agent = start();
    let other = programs::start_ca(
        "ca-b",
        &agent.dir.path().join("ca-b"),
        "127.0.0.1:0",
        &["--trust-domain", "b.example"],
    );
    let ca_mark = agent.ca.proc.mark();
    let out = Command::new(&agent.ca.program)
        .arg("--data-dir")
        .arg(&agent.ca.data_dir)
        .args([
            "federation",
            "add",
            "--trust-domain",
            "b.example",
            "--endpoint",
        ])
        .arg(format!(
            "https://127.0.0.1:{}/api/v1/bundle/spiffe",
            other.port
        ))
        .args([
            "--endpoint-spiffe-id",
            "spiffe://b.example/ca",
            "--fingerprint",
        ])
        .arg(format!("sha256:{}", other.fingerprint))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.ca.proc.wait_for_after(
        ca_mark,
        |l| l.contains("federated_bundle_updated") && l.contains("b.example"),
        LONG,
    );
    let b_root = std::fs::read(other.data_dir.join("root.crt")).unwrap();
    let b_root = pki::pem::parse_certificates(&b_root)
        .unwrap()
        .remove(0)
        .to_vec();
    let mark = agent.proc.mark();
    agent.entry(WEB_ID, &[&format!("unix:uid:{}", my_uid())], &[]);
    agent.wait_minted(mark, WEB_ID);

    // The agent refreshes every second (--entry-refresh 1s): wait for a message with b.
    let mut raw = raw_client(&agent).await;
    let mut stream = raw
        .fetch_x509_bundles(with_header(X509BundlesRequest {}))
        .await
        .unwrap()
        .into_inner();
    let bundles = loop {
        let message = tokio::time::timeout(LONG, stream.next())
            .await
            .expect("a bundle message in time")
            .expect("the stream stays open")
            .unwrap();
        if message.bundles.contains_key("spiffe://b.example") {
            break message.bundles;
        }
    };
    assert_eq!(bundles["spiffe://b.example"], b_root);
    assert!(
        bundles.contains_key("spiffe://mesh.local"),
        "{:?}",
        bundles.keys()
    );

    let svids = raw
        .fetch_x509svid(with_header(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(svids.federated_bundles["spiffe://b.example"], b_root);
    assert!(!svids.federated_bundles.contains_key("spiffe://mesh.local"));
}
