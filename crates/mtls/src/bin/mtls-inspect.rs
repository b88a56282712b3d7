//! The `mtls-inspect` command line: argument parsing and exit codes only; the commands live in
//! the library (`mtls_inspect::*`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mtls_inspect::{lint, remote, renewal, show, verify, Exit, Format};
use pki::timefmt;
use time::OffsetDateTime;

const TOP_HELP: &str = "\
EXIT CODES:
  0  success (shown / valid / no lint errors / renewal due)
  1  negative result (invalid / lint errors / renewal not due / handshake failed)
  2  usage or read error (bad arguments, unreadable or malformed input)

Every command reads PEM or DER; `-` reads standard input. Run `mtls-inspect help COMMAND` for
examples.";

#[derive(Parser, Debug)]
#[command(
    name = "mtls-inspect",
    version,
    about = "Explain certificates, CSRs, CRLs, OCSP responses and SPIFFE bundles; verify chains; lint X509-SVIDs; probe TLS servers",
    after_help = TOP_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Show(ShowCmd),
    Verify(VerifyCmd),
    Lint(LintCmd),
    Remote(RemoteCmd),
    NeedsRenewal(RenewalCmd),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ShowFormat {
    Text,
    Json,
    Pem,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OutFormat {
    Text,
    Json,
}

impl From<OutFormat> for Format {
    fn from(f: OutFormat) -> Format {
        match f {
            OutFormat::Text => Format::Text,
            OutFormat::Json => Format::Json,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProfileArg {
    Auto,
    Leaf,
    Ca,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PurposeArg {
    Server,
    Client,
    Any,
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    timefmt::parse_rfc3339(s)
}

/// A time to verify at: RFC 3339 within the range the verifier can represent (webpki counts
/// seconds from 1970; X.509 times end with year 9999).
fn parse_verification_time(s: &str) -> Result<OffsetDateTime, String> {
    let t = timefmt::parse_rfc3339(s)?;
    pki::verify::check_time(t).map_err(|_| {
        format!(
            "{s} is outside the range the verifier accepts: {} to {}",
            timefmt::rfc3339(pki::verify::EARLIEST_TIME),
            timefmt::rfc3339(pki::verify::LATEST_TIME)
        )
    })?;
    Ok(t)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AlgorithmsArg {
    // ECDSA P-256/P-384/P-521 with SHA-2, as the services enforce. (Plain comments: doc
    // comments here would switch clap's help to the long per-value layout.)
    Ecdsa,
    // Also RSA PKCS#1 v1.5 and Ed25519 (the Web PKI), for chains from other PKIs.
    Webpki,
}

impl From<AlgorithmsArg> for pki::verify::AlgorithmPolicy {
    fn from(a: AlgorithmsArg) -> Self {
        match a {
            AlgorithmsArg::Ecdsa => pki::verify::AlgorithmPolicy::EcdsaOnly,
            AlgorithmsArg::Webpki => pki::verify::AlgorithmPolicy::WebPki,
        }
    }
}

/// `--at-fraction`: a share of the lifetime, 0 to 1.
fn parse_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number; the accepted range is 0 to 1"))?;
    if !(0.0..=1.0).contains(&f) {
        return Err(format!("{s} is outside the accepted range 0 to 1"));
    }
    Ok(f)
}

/// The given time, or now truncated to whole seconds (certificate times have no fractions).
fn at_or_now(at: Option<OffsetDateTime>) -> OffsetDateTime {
    at.unwrap_or_else(|| {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(0).unwrap_or(now)
    })
}

/// Show certificates, CSRs, CRLs and OCSP responses: subject, issuer, serial, validity, key, SANs (SPIFFE ID
/// called out), extensions, fingerprint and client key; and SPIFFE bundles (JWK sets): sequence,
/// refresh hint, every key, the findings of the spiffe-bundle-* lint rules.
#[derive(Args, Debug)]
#[command(after_help = "\
EXAMPLES:
  mtls-inspect show leaf.pem
  mtls-inspect show --short bundle.pem
  mtls-inspect show --format json leaf.pem | jq -r '.objects[0].spiffe_id'
  openssl x509 -in leaf.pem -outform DER | mtls-inspect show -
  mtls-inspect show --format pem cert.der > cert.pem
  mtls-inspect show --at 2026-01-01T00:00:00Z leaf.pem
  curl -s --cacert root.pem https://localhost:8443/api/v1/bundle/spiffe | mtls-inspect show -

EXIT CODES:
  0  every input was shown
  2  an input could not be read or parsed (the others are still shown)")]
struct ShowCmd {
    /// Files to show (PEM or DER; bundles, CSRs, CRLs and OCSP responses are detected; or a
    /// SPIFFE bundle, JSON); `-` for stdin.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
    /// Output format; JSON follows the schema in docs/cli.md and includes the PEM.
    #[arg(long, value_enum, default_value = "text")]
    format: ShowFormat,
    /// One line per object.
    #[arg(long)]
    short: bool,
    /// Time for the relative values (expires in, % of lifetime used); default now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    at: Option<OffsetDateTime>,
}

/// Verify a certificate chain with the verifier the mtls-mesh services use: signatures,
/// validity, basicConstraints, EKU for the purpose, the X509-SVID rules, hostname, SPIFFE ID and
/// revocation. Without options the verdict is the one an mtls-server gives.
#[derive(Args, Debug)]
#[command(after_help = "\
EXAMPLES:
  mtls-inspect verify leaf.pem --roots root.pem
  mtls-inspect verify leaf.pem --roots root.pem --strict
  mtls-inspect verify server.pem --roots web-root.pem --algorithms webpki
  mtls-inspect verify leaf.pem --roots root.pem --purpose client \
      --spiffe-id spiffe://mesh.local/service/api
  mtls-inspect verify chain.pem --roots root.pem --trust-domain mesh.local \
      --hostname localhost
  mtls-inspect verify leaf.pem --roots root.pem --crl ca.crl
  mtls-inspect verify leaf.pem --roots spiffe-bundle.json
  mtls-inspect verify leaf.pem --roots root.pem --at 2026-01-01T12:00:00Z --format json

Certificates after the first one in CERT are used as intermediates, like a TLS chain.

EXIT CODES:
  0  valid
  1  invalid (the reason is printed with expected and presented values)
  2  usage or read error")]
struct VerifyCmd {
    /// The certificate to verify (optionally followed by its intermediates); `-` for stdin.
    #[arg(value_name = "CERT")]
    cert: String,
    /// Trusted root certificates (PEM bundle or DER), or a SPIFFE bundle (JSON: its x509-svid
    /// keys); may be repeated.
    #[arg(long, required = true, value_name = "FILE")]
    roots: Vec<String>,
    /// Intermediate certificates; may be repeated.
    #[arg(long, value_name = "FILE")]
    intermediates: Vec<String>,
    /// What the certificate must be valid for (selects the EKU).
    #[arg(long, value_enum, default_value = "any")]
    purpose: PurposeArg,
    /// DNS name or IP address that must be in the certificate's SANs.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// The exact SPIFFE ID the certificate must carry.
    #[arg(long, value_name = "ID", conflicts_with = "trust_domain")]
    spiffe_id: Option<String>,
    /// The trust domain the certificate's SPIFFE ID must be in.
    #[arg(long, value_name = "TD")]
    trust_domain: Option<String>,
    /// CRL (DER or PEM) to check revocation against; may be repeated. A CRL must cover the
    /// certificate's issuer, or the status is unknown and the result invalid.
    #[arg(long, value_name = "FILE")]
    crl: Vec<String>,
    /// Check the intermediates' revocation too (needs a CRL from every issuer in the chain).
    #[arg(long)]
    crl_check_chain: bool,
    /// Signature algorithms: `ecdsa` (P-256/P-384/P-521) is what the services enforce; `webpki`
    /// also accepts RSA and Ed25519, for inspecting chains from other PKIs.
    #[arg(long, value_enum, default_value = "ecdsa")]
    algorithms: AlgorithmsArg,
    /// Add RFC 5280 checks rustls-webpki and the services leave out (key identifiers,
    /// subjectAltName criticality, DNS name syntax, root sanity); docs/cli.md lists them.
    #[arg(long)]
    strict: bool,
    /// Verification time, 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z; default now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_verification_time)]
    at: Option<OffsetDateTime>,
    /// Output format; JSON follows the schema in docs/cli.md.
    #[arg(long, value_enum, default_value = "text")]
    format: OutFormat,
}

/// Lint certificates against SPIFFE X509-SVID conformance and the mtls-mesh issuance policy.
#[derive(Args, Debug)]
#[command(after_help = "\
EXAMPLES:
  mtls-inspect lint leaf.pem
  mtls-inspect lint --issuer root.pem leaf.pem
  mtls-inspect lint --trust-domain mesh.local --max-lifetime 1h leaf.pem
  mtls-inspect lint --format json chain.pem
  mtls-inspect lint --list-rules

With --profile auto, a certificate with basicConstraints CA:TRUE is linted as a signing
certificate (unless it carries a workload SPIFFE ID and a TLS EKU: a leaf marked CA by
mistake), anything else as a leaf SVID. Rule ids are stable; docs/cli.md lists them.

EXIT CODES:
  0  no error-level findings (warnings allowed)
  1  at least one error-level finding
  2  usage or read error")]
struct LintCmd {
    /// Certificates to lint (PEM or DER; chains allowed), or SPIFFE bundles (JSON: the
    /// spiffe-bundle-* rules, and each x509-svid certificate); `-` for stdin.
    #[arg(value_name = "FILE", required_unless_present = "list_rules")]
    files: Vec<String>,
    /// Candidate issuer certificates, to check the signature algorithm against the issuer's
    /// key (certificates in the linted files are candidates too).
    #[arg(long = "issuer", value_name = "FILE")]
    issuers: Vec<String>,
    /// Trust domain the SPIFFE IDs must be in.
    #[arg(long, value_name = "TD")]
    trust_domain: Option<String>,
    /// Longest acceptable leaf lifetime (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = pki::duration::parse)]
    max_lifetime: Duration,
    /// Longest acceptable CA lifetime (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "3660d", value_parser = pki::duration::parse)]
    max_ca_lifetime: Duration,
    /// Rules to apply: `auto` lints CA:TRUE certificates as signing certificates (unless they
    /// carry a workload SPIFFE ID and a TLS EKU), everything else as leaf SVIDs.
    #[arg(long, value_enum, default_value = "auto")]
    profile: ProfileArg,
    /// Print the rules (id, severity, what each checks, fix) and exit.
    #[arg(long)]
    list_rules: bool,
    /// Output format; JSON follows the schema in docs/cli.md.
    #[arg(long, value_enum, default_value = "text")]
    format: OutFormat,
}

/// Connect to a TLS 1.3 server and show the chain it presents, the negotiated version, cipher
/// suite and key exchange group, and the verification result.
#[derive(Args, Debug)]
#[command(after_help = "\
EXAMPLES:
  mtls-inspect remote localhost:9443
  mtls-inspect remote localhost:9443 --ca-cert root.pem --trust-domain mesh.local
  mtls-inspect remote 127.0.0.1:9443 --servername localhost \
      --cert client.pem --key client.key --ca-cert root.pem
  mtls-inspect remote localhost:9443 --format json | jq '.chain[0].spiffe_id'

Works against servers that require client certificates even without --cert: the server's
certificate arrives before the client is asked for one; the report then says the server
rejected the connection. Without --ca-cert the chain is shown but not verified.

EXIT CODES:
  0  handshake completed (and, with --ca-cert, the server certificate is valid)
  1  handshake failed or the server certificate is invalid
  2  usage error, or the server could not be reached")]
struct RemoteCmd {
    /// Server address, HOST:PORT or [IPv6]:PORT.
    #[arg(value_name = "HOST:PORT")]
    target: String,
    /// Server name for SNI and hostname verification (default: HOST).
    #[arg(long, value_name = "NAME")]
    servername: Option<String>,
    /// Client certificate chain to present (PEM).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<String>,
    /// Private key of the client certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<String>,
    /// Trusted roots to verify the server's chain with.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<String>,
    /// The SPIFFE ID the server must present (needs --ca-cert).
    #[arg(long, value_name = "ID", conflicts_with = "trust_domain")]
    spiffe_id: Option<String>,
    /// The trust domain the server's SPIFFE ID must be in (needs --ca-cert).
    #[arg(long, value_name = "TD")]
    trust_domain: Option<String>,
    /// Give up after this long (connect, handshake and waiting for the server's verdict); at
    /// least 1s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = pki::duration::parse)]
    timeout: Duration,
    /// Verification time, 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z; default now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_verification_time)]
    at: Option<OffsetDateTime>,
    /// Show every certificate of the chain in full.
    #[arg(long)]
    full: bool,
    /// Output format; JSON follows the schema in docs/cli.md.
    #[arg(long, value_enum, default_value = "text")]
    format: OutFormat,
}

/// Say whether a certificate is due for renewal (the rule the mtls-mesh services use).
#[derive(Args, Debug)]
#[command(after_help = "\
EXAMPLES:
  mtls-inspect needs-renewal leaf.pem && renew-my-cert
  mtls-inspect needs-renewal --at-fraction 0.66 leaf.pem
  mtls-inspect needs-renewal --at 2026-01-01T00:30:00Z leaf.pem

EXIT CODES (as `step certificate needs-renewal`):
  0  renewal is due (the fraction of the lifetime has elapsed, or the certificate expired)
  1  renewal is not due
  2  usage or read error")]
struct RenewalCmd {
    /// The certificate (the first one of a bundle); `-` for stdin.
    #[arg(value_name = "CERT")]
    cert: String,
    /// Renew once this share of the lifetime (0 to 1) has elapsed.
    #[arg(long, value_name = "FRACTION", default_value = "0.5", value_parser = parse_fraction)]
    at_fraction: f64,
    /// The time to judge at; default now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    at: Option<OffsetDateTime>,
    /// Output format; JSON follows the schema in docs/cli.md.
    #[arg(long, value_enum, default_value = "text")]
    format: OutFormat,
}

fn run(cli: Cli) -> anyhow::Result<Exit> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    match cli.command {
        Command::Show(c) => show::run(
            &show::ShowArgs {
                files: c.files,
                format: match c.format {
                    ShowFormat::Text => Format::Text,
                    ShowFormat::Json => Format::Json,
                    ShowFormat::Pem => Format::Pem,
                },
                short: c.short,
                at: at_or_now(c.at),
            },
            &mut out,
            &mut err,
        ),
        Command::Verify(c) => verify::run(
            &verify::VerifyArgs {
                cert: c.cert,
                roots: c.roots,
                intermediates: c.intermediates,
                crls: c.crl,
                purpose: match c.purpose {
                    PurposeArg::Server => pki::verify::Purpose::Server,
                    PurposeArg::Client => pki::verify::Purpose::Client,
                    PurposeArg::Any => pki::verify::Purpose::Any,
                },
                hostname: c.hostname,
                spiffe_id: c.spiffe_id,
                trust_domain: c.trust_domain,
                crl_check_chain: c.crl_check_chain,
                algorithms: c.algorithms.into(),
                strict: c.strict,
                at: at_or_now(c.at),
                format: c.format.into(),
            },
            &mut out,
        ),
        Command::Lint(c) if c.list_rules => lint::list_rules(c.format.into(), &mut out),
        Command::Lint(c) => lint::run(
            &lint::LintArgs {
                files: c.files,
                issuers: c.issuers,
                trust_domain: c.trust_domain,
                max_lifetime: to_time(c.max_lifetime)?,
                max_ca_lifetime: to_time(c.max_ca_lifetime)?,
                profile: match c.profile {
                    ProfileArg::Auto => lint::ProfileChoice::Auto,
                    ProfileArg::Leaf => lint::ProfileChoice::Leaf,
                    ProfileArg::Ca => lint::ProfileChoice::Ca,
                },
                format: c.format.into(),
            },
            &mut out,
            &mut err,
        ),
        Command::Remote(c) => remote::run(
            &remote::RemoteArgs {
                target: c.target,
                servername: c.servername,
                cert: c.cert,
                key: c.key,
                ca_cert: c.ca_cert,
                spiffe_id: c.spiffe_id,
                trust_domain: c.trust_domain,
                timeout: c.timeout,
                at: at_or_now(c.at),
                format: c.format.into(),
                full: c.full,
            },
            &mut out,
        ),
        Command::NeedsRenewal(c) => renewal::run(
            &renewal::RenewalArgs {
                cert: c.cert,
                at_fraction: c.at_fraction,
                at: at_or_now(c.at),
                format: c.format.into(),
            },
            &mut out,
        ),
    }
}

fn to_time(d: Duration) -> anyhow::Result<time::Duration> {
    time::Duration::try_from(d).map_err(|e| anyhow::anyhow!("duration out of range: {e}"))
}

fn main() -> ExitCode {
    let cli: Cli = mtls::manual::parse();
    match run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            // A closed pipe (`| head`) is not worth a message; the reader has gone.
            let broken_pipe = e
                .chain()
                .filter_map(|c| c.downcast_ref::<std::io::Error>())
                .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if !broken_pipe {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(Exit::Error.code())
        }
    }
}
