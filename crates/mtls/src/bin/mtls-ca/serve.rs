//! Running the CA service.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use mtls_ca::authority::{Authority, AuthorityConfig, OcspResponderMode};
use mtls_ca::datadir::{DataDir, RootOrigin};
use mtls_ca::pkcs11::TokenAccess;
use mtls_ca::store::StoreLocation;
use mtls_ca::{api, server, tls};
use pki::clock::{Clock, SystemClock};
use pki::IssuancePolicy;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::cli::{OcspResponder, ServeArgs};

pub fn run(
    data_dir: &Path,
    store: Option<&StoreLocation>,
    token: Option<TokenAccess>,
    args: ServeArgs,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(data_dir, store, token, args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    data_dir: &Path,
    store: Option<&StoreLocation>,
    token: Option<TokenAccess>,
    args: ServeArgs,
) -> anyhow::Result<()> {
    let trust_domain = args.trust_domain.clone();
    let admin_id = args
        .admin_id
        .as_deref()
        .map(|id| mtls_ca::admin::parse_admin_id(id, &trust_domain))
        .transpose()?;
    let limits = connection_limits(&args)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let external = args.root_cert.as_deref().zip(args.root_key.as_deref());
    // Every input file is read and checked before the data directory is touched: a wrong
    // path or a bad file is refused with nothing created (docs/cli.md).
    if let Some((cert, key)) = external {
        mtls_ca::datadir::load_external(cert, key)?;
    }
    let extra_files = read_bundle_extra(&args.bundle_extra)?;
    let dir = DataDir::for_store(data_dir, store).with_token_access(token);
    dir.ensure()?;
    // Checks the directory first; creates root and database only when it holds neither (with
    // PostgreSQL: a root only for a database that records none, datadir_postgres.rs).
    let (loaded, origin, store) = dir.open_or_init_store(store, external, &trust_domain, now)?;
    // A root rotation (`mtls-ca root`) decides which root signs and which others are
    // published and trusted; without one this is the directory's root alone. The running CA
    // follows later steps by itself (root_follow.rs).
    let started_state = mtls_ca::root_rotation::load_state(store.as_ref())?;
    let serving = mtls_ca::root_serving::roots_for(
        &dir,
        store.as_ref(),
        started_state.as_ref().map(|(_, s)| s),
        &[Arc::new(loaded)],
        now,
    )?;
    let ca = serving.active.clone();
    let (jwt_signer, jwt_created) = dir.load_or_create_jwt_key()?;
    let jwt_device = jwt_signer.device_name();
    let extra_clock = clock.clone();
    let extra_for =
        move |ca: &pki::CaMaterial| bundle_extra(ca, extra_files.clone(), extra_clock.now());
    let (mut extra_roots, from_flag) = extra_for(&ca)?;
    extra_roots.extend(serving.trusted_extra);
    let mut bundle_extra = serving.bundle_extra;
    bundle_extra.extend(from_flag);

    // The reserved identity every CA client requires (pki::spiffe::CA_PATH).
    let api_id = trust_domain.ca_id();
    let mut dns = vec!["localhost".to_string()];
    dns.extend(args.dns.iter().cloned());
    let mut ips: Vec<std::net::IpAddr> = vec!["127.0.0.1".parse()?, "::1".parse()?];
    ips.extend(args.ips.iter().copied());
    let (api_identity, api_leaf) = tls::ApiIdentity::issue_first(&ca, api_id, dns, ips, now)?;
    let mut roots = vec![ca.root_der().clone()];
    roots.extend(extra_roots.iter().cloned());
    let verifier = tls::ApiClientVerifier::new(&roots)?;
    let config = Arc::new(tls::server_config(
        verifier.clone(),
        api_identity.resolver(),
    )?);

    let mut addr = args.listen;
    if let Some(port) = args.port {
        addr.set_port(port);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (is another CA running there?)"))?;
    let local = listener.local_addr()?;

    let fingerprint = ca.root_fingerprint();
    let tiers = if ca.is_intermediate() {
        format!(
            "two-tier: leaves signed by the intermediate {} (valid until {})",
            dir.intermediate_cert().display(),
            pki::timefmt::rfc3339(ca.not_after())
        )
    } else {
        "single-tier: leaves signed by the root".to_string()
    };
    let tiers = match ca.key().device_name() {
        Some(uri) => format!("{tiers}, whose key is in the token {uri}"),
        None => tiers,
    };
    let tiers = match &jwt_device {
        Some(uri) => format!("{tiers}; JWT-SVIDs signed by the token key {uri}"),
        None => tiers,
    };
    let federation_store = store.clone();
    let follow_store = store.clone();
    let authority = Arc::new(
        Authority::new(
            ca,
            bundle_extra,
            store,
            AuthorityConfig {
                trust_domain: trust_domain.clone(),
                default_ttl: args.cert_duration,
                max_ttl: args.max_duration,
                admin_id,
                policy: IssuancePolicy {
                    backdate: args.backdate,
                    ocsp_url: args.ocsp_url.clone(),
                },
            },
            clock,
        )
        .with_crl_validity(args.crl_validity)
        .with_previous_root(serving.previous.clone())
        .with_jwt_signer(jwt_signer)
        .with_ocsp_responder(match args.ocsp_responder {
            OcspResponder::Ca => OcspResponderMode::Ca,
            OcspResponder::Delegated => OcspResponderMode::Delegated,
        })
        .context("issuing the delegated OCSP responder certificate")?,
    );

    authority
        .record_api_cert(&api_leaf)
        .map_err(|e| anyhow::anyhow!("auditing the API certificate: {e}"))?;
    match origin {
        RootOrigin::Created => eprintln!("created a new P-384 root in {}", dir.path.display()),
        RootOrigin::Loaded => eprintln!("using the existing root of {}", dir.path.display()),
    }
    if let Some(phase) = serving.phase {
        eprintln!(
            "root rotation: phase {phase:?}; signing with the root {}",
            authority.ca().root_fingerprint()
        );
    }
    if jwt_created {
        match &jwt_device {
            Some(uri) => eprintln!(
                "created a new JWT-SVID signing key in the token: {uri} (recorded in {})",
                dir.jwt_token_ref().display()
            ),
            None => eprintln!(
                "created a new JWT-SVID signing key {}",
                dir.jwt_key().display()
            ),
        }
    }
    let host = if local.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        local.ip().to_string()
    };
    let base = if local.is_ipv6() {
        format!("https://[{host}]:{}", local.port())
    } else {
        format!("https://{host}:{}", local.port())
    };
    {
        // These two stdout lines are a stable interface: scripts and tests parse them.
        let mut out = std::io::stdout().lock();
        writeln!(out, "root fingerprint (SHA-256): {fingerprint}")?;
        writeln!(out, "listening on {base}")?;
        out.flush()?;
    }
    eprintln!(
        "trust domain {trust_domain}; {tiers}; root certificate at {}\n\
         endpoints: POST {base}/api/v1/sign  POST /api/v1/renew  POST /api/v1/revoke  GET /api/v1/ca  \
         GET /api/v1/bundle  GET /api/v1/bundle/spiffe  GET /api/v1/bundle/federated  GET /api/v1/crl  GET /api/v1/certs  POST /ocsp  GET /dashboard  GET /healthz  GET /metrics",
        dir.root_cert().display()
    );

    tokio::spawn(renew_api_cert(authority.clone(), api_identity.clone()));
    tokio::spawn(
        mtls_ca::root_follow::RootFollower::new(
            Arc::new(dir),
            follow_store,
            authority.clone(),
            api_identity,
            verifier,
            Box::new(extra_for),
            started_state.map(|(raw, _)| raw),
        )
        .run(),
    );
    tokio::spawn(crate::federation_refresh::run(
        authority.clone(),
        federation_store,
        args.federation_refresh_max,
    ));
    let counters = authority.metrics.connections.clone();
    let router = api::router(authority);
    let drain = limits.drain;
    let shutdown = async move {
        mtls::shutdown::signal().await;
        eprintln!(
            "mtls-ca: shutting down: no new connections, requests in flight get up to {}",
            pki::timefmt::human_std(drain)
        );
    };
    let report = server::serve(listener, config, router, limits, counters, shutdown).await;
    eprintln!(
        "mtls-ca: stopped ({} of {} connections closed in time, {} cut)",
        report.finished, report.open, report.cut
    );
    Ok(())
}

/// The certificates of the `--bundle-extra` files, in order; an unreadable file or one without
/// a certificate is refused, naming the option and the file.
fn read_bundle_extra(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let mut certs = Vec::new();
    for path in files {
        let pem = std::fs::read(path)
            .with_context(|| format!("--bundle-extra {}: cannot read it", path.display()))?;
        certs.extend(
            pki::pem::parse_certificates(&pem)
                .with_context(|| format!("--bundle-extra {}", path.display()))?,
        );
    }
    Ok(certs)
}

/// From the `--bundle-extra` certificates, returns the extra self-signed roots (trusted for client
/// certificates like our own root) and what the bundle publishes after our root: each extra
/// root followed by a cross-certificate for it signed by our root (passing the file is the
/// operator's decision to vouch for it; services accept a new root only with such a
/// certificate, docs/ca-api.md), then any other certificates of those files as given (an
/// operator's own cross-certificates).
fn bundle_extra(
    ca: &pki::CaMaterial,
    certs: Vec<CertificateDer<'static>>,
    now: OffsetDateTime,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>)> {
    let mut roots = Vec::new();
    let mut as_given = Vec::new();
    for cert in certs {
        if pki::sha256_hex(&cert) == ca.root_fingerprint() {
            continue; // our own root is published first anyway
        }
        if pki::vouch::is_self_signed(&cert) {
            roots.push(cert);
        } else {
            as_given.push(cert);
        }
    }
    if ca.is_intermediate() && !roots.is_empty() {
        anyhow::bail!(
            "--bundle-extra: this is a two-tier CA whose root key is offline, so it cannot \
             cross-sign the extra root(s) given; put a cross-certificate for each, made with \
             the offline root, in the --bundle-extra file instead"
        );
    }
    let mut published = Vec::new();
    for root in &roots {
        let cross = ca.cross_sign(root, now).context("--bundle-extra")?;
        published.push(root.clone());
        published.push(cross);
    }
    published.extend(as_given);
    Ok((roots, published))
}

/// The API listener's limits from the serve flags (docs/cli.md lists them with defaults).
fn connection_limits(args: &ServeArgs) -> anyhow::Result<wire::Limits> {
    let (max_connections, lowered) = wire::limits::fit_to_open_files(args.max_connections);
    if let Some(open_files) = lowered {
        tracing::warn!(
            event = "max_connections_lowered",
            requested = args.max_connections,
            allowed = max_connections,
            open_files,
            "--max-connections {} is more than the open-file limit ({open_files}) can carry; \
             serving at most {max_connections} connections at once (raise the limit with \
             `ulimit -n` or systemd's LimitNOFILE=)",
            args.max_connections
        );
    }
    let limits = wire::Limits {
        max_connections,
        max_per_source: (args.max_connections_per_source > 0)
            .then_some(args.max_connections_per_source),
        authenticated_reserve: args
            .authenticated_reserve
            .unwrap_or_else(|| wire::limits::default_reserve(max_connections)),
        max_per_identity: None,
        idle_timeout: args.idle_timeout,
        header_timeout: args.header_timeout,
        request_timeout: args.request_timeout,
        drain: args.drain,
        ..wire::Limits::default()
    };
    limits.validate().with_context(|| {
        "invalid connection limits (--max-connections, --authenticated-reserve, \
         --max-connections-per-source, --idle-timeout, --header-timeout, --request-timeout)"
    })?;
    Ok(limits)
}

/// Re-issues the API certificate at half its lifetime so a long-running CA never serves an
/// expired one (a root switch re-issues it too, `root_follow.rs`).
async fn renew_api_cert(authority: Arc<Authority>, api: Arc<tls::ApiIdentity>) {
    loop {
        let wait = std::cmp::max(
            (api.not_after() - authority.now()) / 2_i32,
            time::Duration::seconds(60),
        );
        tokio::time::sleep(wait.unsigned_abs()).await;
        match api.reissue(&authority) {
            Ok(na) => tracing::info!(not_after = %na, "API certificate re-issued"),
            Err(e) => {
                tracing::error!(error = %e, "re-issuing the API certificate failed; retrying")
            }
        }
    }
}
