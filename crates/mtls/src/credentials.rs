//! Command-line options shared by `mtls-server` and `mtls-client` (and the services to come):
//! where the certificate comes from (enrolled, static files, pinned), rotation and revocation
//! settings, TLS groups, logs. `CredentialArgs::options` hands them to the library as the plain
//! `mesh::setup::CredentialOptions`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use mesh::setup::CredentialOptions;

use crate::logging::LogFormat;

#[derive(Args, Debug, Clone)]
pub struct CredentialArgs {
    /// Enrolled mode: base URL of the CA (https:// only), e.g. https://localhost:8443.
    #[arg(
        long,
        value_name = "URL",
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub ca_url: Option<String>,

    /// SHA-256 fingerprint of the CA root, as `mtls-ca` prints it at start. The root is
    /// downloaded and accepted only if it has this hash (no trust on first use).
    #[arg(
        long,
        value_name = "SHA256",
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub ca_fingerprint: Option<String>,

    /// This workload's SPIFFE ID, e.g. spiffe://mesh.local/service/api. Must match the join token.
    #[arg(
        long,
        value_name = "ID",
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub spiffe_id: Option<String>,

    /// One-time join token from `mtls-ca token` (prefer --join-token-file: command lines are
    /// visible to other users). Never logged.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MTLS_JOIN_TOKEN",
        hide_env_values = true,
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
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub curve: String,

    /// Requested certificate lifetime, e.g. 1h or 10s (the CA clamps it; default: the CA's).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, help_heading = "Enrolled mode (certificate from mtls-ca)")]
    pub ttl: Option<Duration>,

    /// Renew when this fraction of the lifetime has passed (±10% random jitter).
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.5,
        help_heading = "Enrolled mode (certificate from mtls-ca)"
    )]
    pub rotate_at: f64,

    /// At start, keep retrying to reach the CA (root download and first enrollment) for this
    /// long, with backoff, before giving up. Refusals (used, unknown or expired token, wrong
    /// identity, bad request) fail at once.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration, help_heading = "Enrolled mode (certificate from mtls-ca)")]
    pub enroll_timeout: Duration,

    /// How often to fetch the CA's CRL and trust bundle.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration, help_heading = "Enrolled mode (certificate from mtls-ca)")]
    pub crl_refresh: Duration,

    /// How long past its nextUpdate a revocation list is still used (readiness `degraded`)
    /// before the service fails closed: every handshake is then refused and readiness is
    /// `unhealthy`, until a fresh CRL arrives. Applies where a CRL is configured (enrolled mode,
    /// static mode with --crl).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub crl_max_staleness: Duration,

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
        help_heading = "Static files or pinned mode"
    )]
    pub trust_pin: Vec<String>,

    /// How often the static files are checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration, help_heading = "Static files or pinned mode")]
    pub reload_interval: Duration,

    /// Extra key exchange groups besides secp384r1 and secp521r1: x25519, X25519MLKEM768
    /// (comma-separated or repeated).
    #[arg(long, value_name = "GROUPS", value_delimiter = ',')]
    pub groups: Vec<String>,

    /// Log format on stderr (RUST_LOG sets the level, default info).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl CredentialArgs {
    /// The credential options for `mesh::setup::Services::start`: every flag but the log format,
    /// which is the program's business. (Destructured, so a new flag cannot be forgotten here.)
    pub fn options(&self) -> CredentialOptions {
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
            reload_interval,
            groups,
            log_format: _,
        } = self.clone();
        CredentialOptions {
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
            reload_interval,
            groups,
        }
    }
}
