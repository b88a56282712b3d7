//! Command-line options shared by `mtls-server`, `mtls-client` and `mtls-proxy`: where the
//! certificate comes from (enrolled, static files, pinned, Workload API), rotation and revocation
//! settings, TLS groups, logs. Every value is checked as it is parsed (`crate::values`, and the
//! library's own parsers: `HttpsUrl`, `Fingerprint`, `RotateAt`, `Pin`), so a setting that
//! cannot work stops the program before it reads a file or redeems a token.
//! `CredentialArgs::config` turns them into the library's `mesh::ServiceConfig`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use mesh::tls::{Pin, PinSet};
use mesh::{
    CaRoot, CredentialSource, Enrollment, Fingerprint, HttpsUrl, PinSource, Pinned,
    RevocationOptions, Role, RotateAt, ServiceConfig, StaticFiles, TlsOptions, TokenSource,
    WorkloadApi,
};
use wire::tls::KxGroup;

use crate::logging::LogFormat;
use crate::values;

#[derive(Args, Debug, Clone)]
pub struct CredentialArgs {
    /// Enrolled mode: base URL of the CA (https:// only), e.g. https://localhost:8443. Repeat
    /// to name replicas: they are tried in order until one answers.
    #[arg(
        long,
        value_name = "URL",
        value_parser = parse_url,
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub ca_url: Vec<HttpsUrl>,

    /// SHA-256 fingerprint of the CA root, as `mtls-ca` prints it at start. The root is
    /// downloaded and accepted only if it has this hash (no trust on first use).
    #[arg(
        long,
        value_name = "SHA256",
        value_parser = parse_fingerprint,
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub ca_fingerprint: Option<Fingerprint>,

    /// This workload's SPIFFE ID, e.g. spiffe://mesh.local/service/api. Must match the join token.
    #[arg(
        long,
        value_name = "ID",
        value_parser = parse_spiffe_id,
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub spiffe_id: Option<pki::SpiffeId>,

    /// One-time join token from `mtls-ca token` (prefer --join-token-file: command lines are
    /// visible to other users). Never logged.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MTLS_JOIN_TOKEN",
        hide_env_values = true,
        value_parser = parse_join_token,
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub join_token: Option<String>,

    /// File holding the join token. Re-read when the certificate has expired and a new
    /// enrollment is needed, so an operator can drop a fresh token there.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub join_token_file: Option<PathBuf>,

    /// Curve of the keys generated for each certificate: P-384, P-256 or P-521.
    #[arg(
        long,
        value_name = "CURVE",
        default_value = "P-384",
        value_parser = parse_curve,
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub curve: pki::Curve,

    /// Requested certificate lifetime, at least 1s, e.g. 1h or 10s (the CA clamps it;
    /// default: the CA's).
    #[arg(long, value_name = "DURATION", value_parser = values::duration, help_heading = "Enrolled mode (certificate from mtls-ca)")]
    pub ttl: Option<Duration>,

    /// Renew when this fraction of the lifetime has passed (±10% random jitter); strictly
    /// between 0 and 1.
    #[arg(
        long,
        value_name = "FRACTION",
        default_value = "0.5",
        value_parser = parse_rotate_at,
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub rotate_at: RotateAt,

    /// At start, keep retrying to reach the CA (root download and first enrollment) for this
    /// long (at least 1s), with backoff, before giving up. Refusals (used, unknown or expired
    /// token, wrong identity, bad request) fail at once.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = values::duration, help_heading = "Enrolled mode (certificate from mtls-ca)")]
    pub enroll_timeout: Duration,

    /// How often to fetch the CA's CRL and trust bundle (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = values::duration, help_heading = "Enrolled mode (certificate from mtls-ca)")]
    pub crl_refresh: Duration,

    /// How long past its nextUpdate a revocation list is still used (readiness `degraded`)
    /// before the service fails closed: every handshake is then refused and readiness is
    /// `unhealthy`, until a fresh CRL arrives. At least 1s. Applies where a CRL is configured
    /// (enrolled mode, static mode with --crl).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = values::duration)]
    pub crl_max_staleness: Duration,

    /// Workload API mode: the certificate (X.509-SVID), the roots and the CRL come from a SPIFFE
    /// Workload API such as mtls-agent at this socket, e.g. unix:///run/mtls-mesh/agent.sock,
    /// and are swapped in on every change. With --spiffe-id, the SVID with that ID; else the
    /// first one the agent offers. --enroll-timeout bounds the wait for the first SVID.
    #[arg(
        long,
        value_name = "unix:///PATH",
        value_parser = parse_workload_api,
        conflicts_with_all = [
            "ca_url", "ca_fingerprint", "join_token", "join_token_file", "cert", "key",
            "ca_cert", "crl", "trust_pin", "trust_pins_file",
        ],
        help_heading = "Workload API mode (certificate from mtls-agent)"
    )]
    pub workload_api: Option<PathBuf>,

    /// Static mode: certificate PEM (leaf first, then any intermediates).
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Static files or pinned mode"
    )]
    pub cert: Option<PathBuf>,

    /// Static mode: the certificate's private key (ECDSA, PKCS#8 or SEC1 PEM).
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Static files or pinned mode"
    )]
    pub key: Option<PathBuf>,

    /// Roots to trust (PEM bundle). Static mode: the CA that signs peers. Enrolled mode: the CA
    /// root instead of --ca-fingerprint.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Static mode: a CRL (DER or PEM) signed by the --ca-cert root; reloaded on change.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Static files or pinned mode"
    )]
    pub crl: Option<PathBuf>,

    /// Pinned mode: trust peers whose public key has this hash, sha256:<hex of SHA-256 over
    /// the SubjectPublicKeyInfo DER>. Repeat to allow overlap while a peer rotates its key.
    #[arg(
        long = "trust-pin",
        value_name = "sha256:HEX",
        value_parser = parse_pin,
        help_heading = "Static files or pinned mode"
    )]
    pub trust_pin: Vec<Pin>,

    /// Pinned mode: read the pins from FILE, one sha256:<hex> per line (`#` comments and blank
    /// lines allowed), and reload it when it changes (checked every --reload-interval). New
    /// handshakes use the new pins; open connections to or from a peer whose pin was removed
    /// are closed. A change that does not parse, or pins nothing, is refused and the pins in use
    /// are kept (logged, counted in mesh_pins_reload_failures_total). Not with --trust-pin.
    /// Example: --trust-pins-file /etc/mtls/peer-pins.txt
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Static files or pinned mode"
    )]
    pub trust_pins_file: Option<PathBuf>,

    /// How often the static files (and the pins file) are checked for changes (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = values::duration, help_heading = "Static files or pinned mode")]
    pub reload_interval: Duration,

    /// Extra key exchange groups besides secp384r1 and secp521r1: x25519, X25519MLKEM768
    /// (comma-separated or repeated).
    #[arg(long, value_name = "GROUPS", value_delimiter = ',', value_parser = parse_extra_group)]
    pub groups: Vec<KxGroup>,

    /// Log format on stderr (RUST_LOG sets the level, default info).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

fn parse_workload_api(s: &str) -> Result<PathBuf, String> {
    workload::address::parse_endpoint(s)
}

fn parse_url(s: &str) -> Result<HttpsUrl, String> {
    HttpsUrl::parse(s).map_err(|e| e.to_string())
}

/// A blank join token (an unset shell variable, say) is a usage error at start, not a failed
/// enrollment. Only a blank value is refused, so no token is ever echoed in an error.
fn parse_join_token(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err(
            "the join token is empty: give the token `mtls-ca token` printed, or --join-token-file"
                .into(),
        )
    } else {
        Ok(s.to_string())
    }
}

fn parse_fingerprint(s: &str) -> Result<Fingerprint, String> {
    Fingerprint::parse(s).map_err(|e| e.to_string())
}

/// A SPIFFE ID (`--spiffe-id`, `--server-id`).
pub fn parse_spiffe_id(s: &str) -> Result<pki::SpiffeId, String> {
    pki::SpiffeId::parse(s).map_err(|e| e.to_string())
}

fn parse_curve(s: &str) -> Result<pki::Curve, String> {
    s.parse::<pki::Curve>().map_err(|e| e.to_string())
}

fn parse_rotate_at(s: &str) -> Result<RotateAt, String> {
    s.parse()
}

fn parse_pin(s: &str) -> Result<Pin, String> {
    Pin::parse(s).map_err(|e| e.to_string())
}

fn parse_extra_group(s: &str) -> Result<KxGroup, String> {
    let group: KxGroup = s
        .parse()
        .map_err(|e: wire::tls::TlsConfigError| e.to_string())?;
    // The same rule the library applies: only these may join secp384r1 and secp521r1.
    wire::tls::TlsPolicy::mesh()
        .with_extra_groups(&[group])
        .map_err(|e| e.to_string())?;
    Ok(group)
}

/// Credential flags that do not fit together: which ones, and what would.
#[derive(Debug)]
pub struct Conflict(String);

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Conflict {}

fn conflict(message: &str) -> Conflict {
    Conflict(message.to_string())
}

impl CredentialArgs {
    /// The library's configuration for `role`, or the flags that do not fit together. Every
    /// flag but the log format (the program's business) ends up in it; the destructuring makes
    /// a new flag impossible to forget here.
    pub fn config(&self, role: Role) -> Result<ServiceConfig, Conflict> {
        let CredentialArgs {
            ca_url,
            ca_fingerprint,
            spiffe_id,
            join_token,
            join_token_file,
            curve,
            ttl,
            rotate_at,
            enroll_timeout,
            crl_refresh,
            crl_max_staleness,
            cert,
            key,
            ca_cert,
            crl,
            trust_pin,
            trust_pins_file,
            reload_interval,
            groups,
            workload_api,
            log_format: _,
        } = self.clone();
        let tls = TlsOptions {
            extra_groups: groups,
        };
        let revocation = RevocationOptions {
            crl_refresh,
            max_staleness: crl_max_staleness,
        };
        // The other sources' flags are refused with this one by clap (conflicts_with_all).
        if let Some(socket) = workload_api {
            return Ok(ServiceConfig {
                role,
                credentials: CredentialSource::WorkloadApi(WorkloadApi {
                    socket,
                    spiffe_id,
                    start_timeout: enroll_timeout,
                }),
                tls,
                revocation,
            });
        }
        let enrolled = !ca_url.is_empty();
        let files = cert.is_some() || key.is_some();
        let credentials = if enrolled {
            if files {
                return Err(conflict(
                    "--ca-url (enrolled mode) and --cert/--key (static mode) exclude each other",
                ));
            }
            if !trust_pin.is_empty() || trust_pins_file.is_some() || crl.is_some() {
                return Err(conflict(
                    "--trust-pin, --trust-pins-file and --crl are for static/pinned mode, \
                         not with --ca-url",
                ));
            }
            let spiffe_id = spiffe_id.ok_or_else(|| {
                conflict("--ca-url needs --spiffe-id (the identity the join token allows)")
            })?;
            let token =
                match (join_token, join_token_file) {
                    (Some(t), None) => TokenSource::Literal(t),
                    (None, Some(f)) => TokenSource::File(f),
                    (Some(_), Some(_)) => {
                        return Err(conflict("give --join-token or --join-token-file, not both"))
                    }
                    (None, None) => return Err(conflict(
                        "--ca-url needs a join token: --join-token-file FILE (or --join-token); \
                         create one with `mtls-ca token --spiffe-id ...`",
                    )),
                };
            let root =
                match (ca_fingerprint, ca_cert) {
                    (Some(fp), None) => CaRoot::Fingerprint(fp),
                    (None, Some(path)) => CaRoot::File(path),
                    (Some(_), Some(_)) => {
                        return Err(conflict("give --ca-fingerprint or --ca-cert, not both"))
                    }
                    (None, None) => return Err(conflict(
                        "--ca-url needs --ca-fingerprint SHA256 (printed by mtls-ca at start) or \
                         --ca-cert FILE to authenticate the CA",
                    )),
                };
            CredentialSource::Enrolled(Enrollment {
                ca_urls: ca_url,
                root,
                spiffe_id,
                token,
                curve,
                ttl,
                rotate_at,
                enroll_timeout,
            })
        } else {
            if !files {
                return Err(conflict(
                    "no credentials: give --ca-url ... (enrolled), --cert/--key/--ca-cert (static \
                     files), --cert/--key/--trust-pin[s-file] (pinned) or --workload-api unix:///PATH \
                     (mtls-agent); see --help",
                ));
            }
            let (Some(cert), Some(key)) = (cert, key) else {
                return Err(conflict("--cert and --key go together"));
            };
            for (given, flag) in [
                (spiffe_id.is_some(), "--spiffe-id"),
                (ca_fingerprint.is_some(), "--ca-fingerprint"),
                (join_token.is_some(), "--join-token"),
                (join_token_file.is_some(), "--join-token-file"),
            ] {
                if given {
                    return Err(Conflict(format!(
                        "{flag} is for enrolled mode (with --ca-url), not with --cert/--key"
                    )));
                }
            }
            let pins = match (trust_pin.is_empty(), trust_pins_file) {
                (true, None) => None,
                // Not empty: checked just above.
                (false, None) => Some(PinSource::List(
                    PinSet::new(trust_pin).map_err(|e| Conflict(e.to_string()))?,
                )),
                (true, Some(file)) => Some(PinSource::File(file)),
                // A pin given on the command line could not be removed without a restart,
                // which would defeat the file's remove-old-pin step: refuse both.
                (false, Some(_)) => {
                    return Err(conflict(
                        "give --trust-pin or --trust-pins-file, not both (put every pin in \
                             the file)",
                    ))
                }
            };
            match (ca_cert, pins) {
                (Some(roots), None) => CredentialSource::StaticFiles(StaticFiles {
                    cert,
                    key,
                    roots,
                    crl,
                    reload_interval,
                }),
                (None, Some(pins)) => {
                    if crl.is_some() {
                        return Err(conflict(
                            "--crl needs --ca-cert (the CRL is checked against the CA)",
                        ));
                    }
                    CredentialSource::Pinned(Pinned {
                        cert,
                        key,
                        pins,
                        reload_interval,
                    })
                }
                (Some(_), Some(_)) => {
                    return Err(conflict(
                        "--ca-cert and --trust-pin/--trust-pins-file exclude each other: trust a \
                         CA or pinned keys, not both",
                    ))
                }
                (None, None) => {
                    return Err(conflict(
                        "static files need --ca-cert (the CA to trust) or --trust-pin / \
                             --trust-pins-file (pinned peer keys)",
                    ))
                }
            }
        };
        Ok(ServiceConfig {
            role,
            credentials,
            tls,
            revocation,
        })
    }
}
