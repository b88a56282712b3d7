//! What a service is told: where its certificate comes from and how it is kept fresh, the TLS
//! options, the revocation settings and the role. The programs in crates/mtls fill it from their
//! flags (docs/cli.md); an embedder fills it in code. Values are checked when they are built
//! (`HttpsUrl::parse`, `Fingerprint::parse`, `RotateAt::new`, `PinSet::new`) and once more by
//! `Mesh::start`, so a setting that cannot work is refused before anything starts.

use std::path::PathBuf;
use std::time::Duration;

use wire::tls::KxGroup;

use crate::error::{ConfigError, MeshError};
use crate::https::HttpsUrl;
use crate::tls::PinSet;

/// The smallest interval or time limit any setting accepts (a zero CRL refresh would poll the
/// CA in a tight loop).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Everything [`crate::Mesh::start`] needs.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// What the certificate is used for (decides the EKU it must have).
    pub role: Role,
    /// Where the certificate comes from.
    pub credentials: CredentialSource,
    /// TLS options beyond the fixed policy.
    pub tls: TlsOptions,
    /// How revocation lists are refreshed and how stale they may get.
    pub revocation: RevocationOptions,
}

impl ServiceConfig {
    /// A configuration with the default TLS and revocation options.
    pub fn new(role: Role, credentials: CredentialSource) -> ServiceConfig {
        ServiceConfig {
            role,
            credentials,
            tls: TlsOptions::default(),
            revocation: RevocationOptions::default(),
        }
    }

    /// Checks every value that cannot be checked by its type alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let at_least = |setting: &'static str, value: Duration| {
            if value < MIN_INTERVAL {
                Err(ConfigError::TooShort {
                    setting,
                    value,
                    minimum: MIN_INTERVAL,
                })
            } else {
                Ok(())
            }
        };
        at_least("revocation.crl_refresh", self.revocation.crl_refresh)?;
        at_least("revocation.max_staleness", self.revocation.max_staleness)?;
        match &self.credentials {
            CredentialSource::Enrolled(e) => {
                if e.ca_urls.is_empty() {
                    return Err(ConfigError::NoCaUrl);
                }
                at_least("enrollment.enroll_timeout", e.enroll_timeout)?;
                if let Some(ttl) = e.ttl {
                    at_least("enrollment.ttl", ttl)?;
                }
            }
            CredentialSource::StaticFiles(f) => {
                at_least("static_files.reload_interval", f.reload_interval)?
            }
            CredentialSource::Pinned(p) => at_least("pinned.reload_interval", p.reload_interval)?,
            CredentialSource::WorkloadApi(w) => {
                at_least("workload_api.start_timeout", w.start_timeout)?
            }
        }
        Ok(())
    }
}

/// The role a certificate is used in; it decides the EKU the certificate needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Serves TLS: needs serverAuth.
    Server,
    /// Connects with a client certificate: needs clientAuth.
    Client,
    /// Both (a proxy serving inbound and calling outbound): needs serverAuth and clientAuth.
    Both,
}

/// Which of the credential sources is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Certificates from mtls-ca, renewed over mTLS.
    Enrolled,
    /// Certificate, key and roots from files, reloaded on change.
    Static,
    /// Certificate and key from files, peers trusted by pinned key hashes.
    Pinned,
    /// X.509-SVID, bundle and CRL streamed by a SPIFFE Workload API (`mtls-agent`).
    WorkloadApi,
}

impl Mode {
    /// `enrolled`, `static files` or `pinned`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enrolled => "enrolled",
            Mode::Static => "static files",
            Mode::Pinned => "pinned",
            Mode::WorkloadApi => "workload api",
        }
    }
}

/// Where a service's certificate comes from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CredentialSource {
    /// From mtls-ca: a join token for the first certificate, renewal over mTLS after that.
    Enrolled(Enrollment),
    /// From files another tool maintains, with a CA bundle to trust.
    StaticFiles(StaticFiles),
    /// From files, trusting peers by the SHA-256 of their public key.
    Pinned(Pinned),
    /// From a SPIFFE Workload API (`mtls-agent`) over its Unix socket.
    WorkloadApi(WorkloadApi),
}

impl CredentialSource {
    /// The mode this source runs in.
    pub fn mode(&self) -> Mode {
        match self {
            CredentialSource::Enrolled(_) => Mode::Enrolled,
            CredentialSource::StaticFiles(_) => Mode::Static,
            CredentialSource::Pinned(_) => Mode::Pinned,
            CredentialSource::WorkloadApi(_) => Mode::WorkloadApi,
        }
    }
}

/// Enrolled mode: the CA, how to trust it, who we are, and when to renew.
#[derive(Clone, Debug)]
pub struct Enrollment {
    /// The CA's base URLs (https:// only), tried in order until one answers; a refusal from
    /// one of them is final (every replica serves the same store).
    pub ca_urls: Vec<HttpsUrl>,
    /// How the CA's root is obtained.
    pub root: CaRoot,
    /// This workload's SPIFFE ID (must match the join token).
    pub spiffe_id: pki::SpiffeId,
    /// Where the join token comes from.
    pub token: TokenSource,
    /// Curve of the key generated for each certificate.
    pub curve: pki::Curve,
    /// Requested lifetime (the CA clamps it); None: the CA's default.
    pub ttl: Option<Duration>,
    /// Renew when this share of the lifetime has passed (±10% jitter).
    pub rotate_at: RotateAt,
    /// How long to keep trying to reach the CA at start.
    pub enroll_timeout: Duration,
}

impl Enrollment {
    /// Enrollment with one CA URL and the defaults: P-384 keys, the CA's lifetime, renewal at
    /// half the lifetime, two minutes to reach the CA at start.
    pub fn new(
        ca_url: HttpsUrl,
        root: CaRoot,
        spiffe_id: pki::SpiffeId,
        token: TokenSource,
    ) -> Enrollment {
        Enrollment {
            ca_urls: vec![ca_url],
            root,
            spiffe_id,
            token,
            curve: pki::Curve::P384,
            ttl: None,
            rotate_at: RotateAt::default(),
            enroll_timeout: Duration::from_secs(120),
        }
    }
}

/// How an enrolled service comes to trust the CA (never on first use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaRoot {
    /// Download the root and accept it only if its SHA-256 is this one.
    Fingerprint(Fingerprint),
    /// A PEM file holding the root.
    File(PathBuf),
}

/// A SHA-256 fingerprint: 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Parses a fingerprint in any common spelling (hex, any case, with or without colons).
    pub fn parse(input: &str) -> Result<Fingerprint, ConfigError> {
        pki::certinfo::normalize_fingerprint(input)
            .map(Fingerprint)
            .ok_or_else(|| ConfigError::Fingerprint {
                input: input.to_string(),
            })
    }

    /// The 64 lowercase hex digits.
    pub fn as_hex(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::parse(s)
    }
}

/// The share of a certificate's lifetime after which it is renewed: strictly between 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RotateAt(f64);

impl RotateAt {
    /// Refuses values outside (0, 1).
    pub fn new(value: f64) -> Result<RotateAt, ConfigError> {
        if value > 0.0 && value < 1.0 {
            Ok(RotateAt(value))
        } else {
            Err(ConfigError::RotateAt { value })
        }
    }

    /// The fraction.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Default for RotateAt {
    /// Half the lifetime (docs/design.md §3).
    fn default() -> Self {
        RotateAt(0.5)
    }
}

impl std::str::FromStr for RotateAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value: f64 = s.trim().parse().map_err(|_| {
            format!("{s:?} is not a number; give a fraction between 0 and 1, e.g. 0.5")
        })?;
        RotateAt::new(value).map_err(|e| e.to_string())
    }
}

/// Where the join token comes from. A file is re-read whenever a token is needed, so an operator
/// can drop a fresh token there for re-enrollment after an expiry.
#[derive(Clone)]
pub enum TokenSource {
    /// The token itself. Never logged.
    Literal(String),
    /// A file holding it.
    File(PathBuf),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print a token.
            TokenSource::Literal(_) => f.write_str("TokenSource::Literal(<redacted>)"),
            TokenSource::File(p) => write!(f, "TokenSource::File({})", p.display()),
        }
    }
}

impl TokenSource {
    /// The token, trimmed; an empty one is refused.
    pub(crate) fn read(&self) -> Result<String, MeshError> {
        let (token, origin) = match self {
            TokenSource::Literal(t) => (t.clone(), "given literally".to_string()),
            TokenSource::File(p) => (
                std::fs::read_to_string(p).map_err(|e| {
                    MeshError::io(format!("reading the join token file {}", p.display()), e)
                })?,
                format!("file {}", p.display()),
            ),
        };
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err(ConfigError::EmptyJoinToken { origin }.into());
        }
        Ok(token)
    }
}

/// Static mode: certificate, key, roots and an optional CRL from files, reloaded when another
/// tool replaces them.
#[derive(Clone, Debug)]
pub struct StaticFiles {
    /// Certificate PEM, leaf first, then any intermediates.
    pub cert: PathBuf,
    /// The certificate's private key (ECDSA, PKCS#8 or SEC1 PEM).
    pub key: PathBuf,
    /// The roots that sign peers (PEM bundle).
    pub roots: PathBuf,
    /// A CRL (DER or PEM) signed by one of the roots.
    pub crl: Option<PathBuf>,
    /// How often the files are checked for changes.
    pub reload_interval: Duration,
}

/// Pinned mode: certificate and key from files; peers are trusted by the SHA-256 of their
/// public key, without a CA.
#[derive(Clone, Debug)]
pub struct Pinned {
    /// Certificate PEM.
    pub cert: PathBuf,
    /// The certificate's private key.
    pub key: PathBuf,
    /// The accepted peer key hashes.
    pub pins: PinSource,
    /// How often the certificate, key and pins files are checked for changes.
    pub reload_interval: Duration,
}

/// Where pinned mode's pins come from.
#[derive(Clone, Debug)]
pub enum PinSource {
    /// A fixed set (`--trust-pin`), kept until the service restarts.
    List(PinSet),
    /// A pins file (`--trust-pins-file`, `tls::pins_file`), reloaded on change like the
    /// certificate files. A change that does not parse keeps the pins in use.
    File(PathBuf),
}

/// Workload API mode: the X.509-SVID, the trust domain's bundle and the CRL come from the
/// `FetchX509SVID` stream of a SPIFFE Workload API (`mtls-agent`, docs/agent.md), and every new
/// message is validated and swapped in like a rotation. The agent's socket is trusted: whoever
/// may replace it can hand this service any identity and roots (docs/agent.md, "Socket").
#[derive(Clone, Debug)]
pub struct WorkloadApi {
    /// The agent's Unix socket.
    pub socket: PathBuf,
    /// The SVID to use when the agent offers several; None: the first one offered.
    pub spiffe_id: Option<pki::SpiffeId>,
    /// How long to keep trying at start (agent unreachable, no SVID for this process yet)
    /// before giving up.
    pub start_timeout: Duration,
}

impl WorkloadApi {
    /// The agent at `socket`, the first SVID offered, two minutes to get it at start.
    pub fn new(socket: PathBuf) -> WorkloadApi {
        WorkloadApi {
            socket,
            spiffe_id: None,
            start_timeout: Duration::from_secs(120),
        }
    }
}

/// TLS options beyond the fixed policy of `wire::tls`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Key exchange groups offered after secp384r1 and secp521r1 (x25519, X25519MLKEM768).
    pub extra_groups: Vec<KxGroup>,
}

/// How revocation lists are kept fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationOptions {
    /// How often an enrolled service fetches the CA's CRL and trust bundle.
    pub crl_refresh: Duration,
    /// How long past its nextUpdate a CRL is still used (readiness `degraded`) before every
    /// handshake is refused (docs/security.md).
    pub max_staleness: Duration,
}

impl Default for RevocationOptions {
    fn default() -> Self {
        RevocationOptions {
            crl_refresh: Duration::from_secs(5),
            max_staleness: Duration::from_secs(30 * 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn static_files(reload: Duration) -> ServiceConfig {
        ServiceConfig::new(
            Role::Server,
            CredentialSource::StaticFiles(StaticFiles {
                cert: "c".into(),
                key: "k".into(),
                roots: "r".into(),
                crl: None,
                reload_interval: reload,
            }),
        )
    }

    #[test]
    fn intervals_below_a_second_are_refused_with_the_field_named() {
        assert_eq!(static_files(Duration::from_secs(1)).validate(), Ok(()));
        let err = static_files(Duration::from_millis(100))
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "static_files.reload_interval 100ms is too short: the minimum is 1s"
        );
        let mut zero_refresh = static_files(Duration::from_secs(1));
        zero_refresh.revocation.crl_refresh = Duration::ZERO;
        assert!(zero_refresh
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("revocation.crl_refresh 0s is too short"));
    }

    #[test]
    fn rotate_at_is_strictly_between_zero_and_one() {
        assert_eq!(RotateAt::default().get(), 0.5);
        assert!(RotateAt::new(0.7).is_ok());
        for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            assert!(RotateAt::new(bad).is_err(), "{bad}");
        }
        assert!("1"
            .parse::<RotateAt>()
            .unwrap_err()
            .contains("must be between 0 and 1 (exclusive)"));
        assert!("half"
            .parse::<RotateAt>()
            .unwrap_err()
            .contains("not a number"));
    }

    #[test]
    fn fingerprints_are_normalised_and_checked() {
        let hex = "AB".repeat(32);
        assert_eq!(Fingerprint::parse(&hex).unwrap().as_hex(), "ab".repeat(32));
        assert!(Fingerprint::parse("abcd")
            .unwrap_err()
            .to_string()
            .contains("is not a SHA-256 fingerprint"));
    }

    #[test]
    fn a_token_is_never_printed() {
        let t = TokenSource::Literal("secret".into());
        assert!(!format!("{t:?}").contains("secret"));
        assert!(TokenSource::Literal("  ".into())
            .read()
            .unwrap_err()
            .to_string()
            .contains("the join token is empty"));
    }
}
