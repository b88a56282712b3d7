//! Command-line interface of `mtls-ca`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use mtls::logging::LogFormat;
use mtls_ca::store::StoreLocation;
use pki::{SpiffeId, TrustDomain};

#[derive(Parser)]
#[command(
    name = "mtls-ca",
    version,
    about = "The mtls-mesh certificate authority: short-lived ECDSA certificates with SPIFFE IDs.",
    long_about = "The mtls-mesh certificate authority.\n\n\
Without a subcommand it serves the HTTPS API (TLS 1.3 only). The first start creates a P-384 root \
in --data-dir and prints its SHA-256 fingerprint; services pin it with --ca-fingerprint. The \
subcommands work on the same data directory, also while the CA runs.",
    after_help = "Examples:\n  \
mtls-ca --data-dir ./ca --port 8443 --cert-duration 1h\n  \
T=$(mtls-ca --data-dir ./ca token --spiffe-id spiffe://mesh.local/service/api --dns localhost --ip 127.0.0.1)\n  \
mtls-ca --data-dir ./ca list\n  \
mtls-ca --data-dir ./ca revoke --serial 4f1a... --reason keyCompromise\n  \
mtls-ca --data-dir ./ca audit verify\n\n\
Exit codes: 0 success, 1 check failed (audit verify), 2 usage or runtime error (a setting out of \
range is refused at start with the option named and the accepted range)."
)]
pub struct Cli {
    /// Directory holding root.crt, root.key (0600) and ca.db.
    #[arg(
        long,
        global = true,
        default_value = "./ca-data",
        env = "MTLS_CA_DATA_DIR"
    )]
    pub data_dir: PathBuf,

    /// Where the store is: sqlite:PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE
    /// (replicas share one PostgreSQL database; docs/operations.md). Default: ca.db in
    /// --data-dir, which holds the root key in every case. TLS to PostgreSQL: add
    /// ?sslmode=verify-full&sslrootcert=FILE (also verify-ca, require; sslcert=FILE&sslkey=FILE
    /// for a client certificate; no sslmode means no TLS; prefer is refused).
    /// (Checked in `Cli::check`, not by a clap value parser: clap's message would repeat the
    /// value, password included.)
    #[arg(
        long,
        global = true,
        value_name = "STORE",
        env = "MTLS_CA_STORE",
        hide_env_values = true
    )]
    pub store: Option<String>,

    /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub pkcs11: Pkcs11Args,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Reaching a PKCS#11 token that holds the CA key (docs/operations.md, "Key in an HSM
/// (PKCS#11)"). Needed by `init --key pkcs11:…` and by every start of a CA whose data
/// directory records a key in a token (root.pkcs11 or intermediate.pkcs11).
#[derive(Args)]
pub struct Pkcs11Args {
    /// The token vendor's PKCS#11 module (shared library), e.g.
    /// /usr/lib/softhsm/libsofthsm2.so for SoftHSM2.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "MTLS_CA_PKCS11_MODULE",
        requires = "pkcs11_pin_file"
    )]
    pub pkcs11_module: Option<PathBuf>,

    /// File holding the token's user PIN (one trailing newline is ignored). There is no
    /// option for the PIN itself: a PIN on the command line shows in `ps`, in /proc and in
    /// shell history to every user of the machine; keep the file mode 0600.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "MTLS_CA_PKCS11_PIN_FILE",
        requires = "pkcs11_module"
    )]
    pub pkcs11_pin_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// Port to listen on (replaces the port of --listen).
    #[arg(long)]
    pub port: Option<u16>,

    /// Default lifetime of issued certificates: 1s up to --max-duration.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = pki::duration::parse_time)]
    pub cert_duration: time::Duration,

    /// Longest lifetime a request may ask for (at least 1s); longer requests are clamped to it.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = pki::duration::parse_time)]
    pub max_duration: time::Duration,

    /// The one trust domain this CA issues for.
    #[arg(long, default_value = "mesh.local", value_parser = parse_trust_domain)]
    pub trust_domain: TrustDomain,

    /// SPIFFE ID allowed to revoke any certificate and list all of them.
    #[arg(long)]
    pub admin_id: Option<String>,

    /// Extra DNS names for the CA's own API certificate (localhost is always included).
    #[arg(long = "dns", value_parser = parse_dns_name)]
    pub dns: Vec<String>,

    /// Extra IP addresses for the CA's own API certificate (127.0.0.1 and ::1 are always included).
    #[arg(long = "ip")]
    pub ips: Vec<IpAddr>,

    /// Serve from an existing root certificate (e.g. made by scripts/gen-root-ca.sh) ...
    #[arg(long, requires = "root_key")]
    pub root_cert: Option<PathBuf>,

    /// ... and its private key. A key that does not match the certificate is refused.
    #[arg(long, requires = "root_cert")]
    pub root_key: Option<PathBuf>,

    /// Additional trusted roots published in /api/v1/bundle (for root rotation overlap).
    #[arg(long = "bundle-extra")]
    pub bundle_extra: Vec<PathBuf>,

    /// How long each CRL is valid: nextUpdate = thisUpdate + this. The CRL is re-signed once
    /// half of it has passed (and after every revocation). Services treat a CRL past nextUpdate
    /// as stale (readiness degraded) and fail closed after their --crl-max-staleness. Minimum 2s.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_crl_validity)]
    pub crl_validity: time::Duration,

    /// Name this URL as the OCSP responder in every certificate issued (authorityInfoAccess),
    /// e.g. https://ca.internal:8443/ocsp. The CA answers OCSP at /ocsp whether or not this is
    /// set; services still check revocation with the CRL.
    #[arg(long, value_name = "URL", value_parser = parse_ocsp_url)]
    pub ocsp_url: Option<pki::ocsp::ResponderUrl>,

    /// Who signs OCSP answers. `ca` (default): the CA key itself. `delegated`: a responder
    /// certificate the CA issues at start (id-kp-OCSPSigning, id-pkix-ocsp-nocheck, valid four
    /// --crl-validity periods, renewed when two remain; its key is kept in memory only) and
    /// sends along in every answer, so the CA key signs only certificates and CRLs. Example:
    /// --ocsp-responder delegated
    #[arg(long, value_enum, value_name = "SIGNER", default_value = "ca")]
    pub ocsp_responder: OcspResponder,

    /// Connections open at once, handshaking ones included; more wait in the accept queue
    /// (protects memory and file descriptors against floods). At least 1.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = parse_connection_count)]
    pub max_connections: usize,

    /// Connections one source IP address may hold; the excess is closed at once, never
    /// queued. 0: no per-source limit (for example behind a proxy that connects from one
    /// address).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_connections_per_source: usize,

    /// Connection slots only clients with a certificate may use (renewals, admin calls);
    /// clients without one (enrollment, CRL and bundle fetches, /healthz) share the rest.
    /// Default: a quarter of --max-connections; 0 up to --max-connections - 1.
    #[arg(long, value_name = "N")]
    pub authenticated_reserve: Option<usize>,

    /// Close a connection that has had no request in flight for this long (HTTP/1 keep-alive
    /// and HTTP/2 alike; HTTP/2 PING frames do not count as activity). At least 1s.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = pki::duration::parse)]
    pub idle_timeout: Duration,

    /// An HTTP/1 request header must be complete within this time of its first byte (at
    /// least 1s).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = pki::duration::parse)]
    pub header_timeout: Duration,

    /// A request's body and handling must finish within this time (at least 1s); slower ones
    /// get 408 and their connection is closed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = pki::duration::parse)]
    pub request_timeout: Duration,

    /// On SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight
    /// finish for up to this long (at least 1s), then exit 0.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = pki::duration::parse)]
    pub drain: Duration,

    /// NotBefore backdating for clock skew, 0s or more (capped at a tenth of each lifetime).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_backdate)]
    pub backdate: time::Duration,

    /// Fetch each federated trust domain's bundle at least this often, even when its
    /// spiffe_refresh_hint asks for less (ours says 5m): a shorter value notices the other
    /// domain's root changes, and its endpoint going away, sooner. At least 5s.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_federation_refresh_max)]
    pub federation_refresh_max: Duration,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a one-time join token (prints only the token on stdout); `token list` and
    /// `token revoke ID` show and revoke the tokens made.
    #[command(
        after_help = "Examples:\n  T=$(mtls-ca --data-dir ./ca token --spiffe-id spiffe://mesh.local/service/api --dns localhost --ip 127.0.0.1 --ttl 10m)\n  \
mtls-ca --data-dir ./ca token list\n  \
mtls-ca --data-dir ./ca token revoke 3f9c0a1b2c4d",
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true
    )]
    Token {
        #[command(subcommand)]
        action: Option<TokenAction>,
        #[command(flatten)]
        create: TokenArgs,
    },
    /// Revoke a certificate by serial (with every certificate renewed from it), or every live
    /// certificate of an identity; the running CA's next CRL lists them. Prints the serials
    /// revoked, one per line.
    #[command(
        after_help = "Examples:\n  mtls-ca --data-dir ./ca revoke --serial 4f:1a:... --reason keyCompromise\n  \
mtls-ca --data-dir ./ca revoke --spiffe-id spiffe://mesh.local/service/api --reason keyCompromise"
    )]
    #[command(group(clap::ArgGroup::new("target").required(true).args(["serial", "spiffe_id"])))]
    Revoke {
        /// Serial in hex (colons and case are ignored).
        #[arg(long, value_parser = parse_serial)]
        serial: Option<String>,
        /// Revoke every live (unexpired, unrevoked) certificate of this SPIFFE ID.
        #[arg(long, value_parser = parse_spiffe_id)]
        spiffe_id: Option<SpiffeId>,
        /// RFC 5280 reason: unspecified, keyCompromise, caCompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn.
        #[arg(long, value_parser = parse_reason)]
        reason: Option<String>,
    },
    /// List issued certificates with their status.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Registration entries: which SPIFFE ID an agent may obtain for the workloads its
    /// selectors describe (docs/ca-api.md, "Agent API").
    Entry {
        #[command(subcommand)]
        action: EntryAction,
    },
    /// Federated trust domains: whose SPIFFE bundles this CA fetches, keeps fresh and hands
    /// to its services, so they can accept peers of those domains that they name explicitly
    /// (docs/operations.md, "Federation").
    Federation {
        #[command(subcommand)]
        action: FederationAction,
    },
    /// Apply the store's pending schema migrations and print its schema version (the CA
    /// also applies them at start; one that finds a newer schema refuses to start).
    Migrate,
    /// Copy every record of a SQLite store (tokens, certificates, revocations, entries, the
    /// audit chain, the CRL number) into an empty PostgreSQL database, and verify the chain
    /// there (docs/operations.md). Stop the CA first.
    #[command(
        after_help = "Example:\n  mtls-ca migrate-store --from sqlite:/var/lib/mtls-ca/ca.db --to postgres://mtls_ca@db.internal/mtls_ca"
    )]
    MigrateStore {
        /// The SQLite store to copy: sqlite:PATH.
        #[arg(long, value_parser = parse_sqlite_location)]
        from: std::path::PathBuf,
        /// The empty PostgreSQL database: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE
        /// (or MTLS_CA_STORE_TO, to keep a password out of `ps`).
        /// Checked in `Cli::check`, which never repeats the value (it may hold a password).
        #[arg(long, env = "MTLS_CA_STORE_TO", hide_env_values = true)]
        to: String,
    },
    /// Copy the SQLite store to a new file while the CA runs (one consistent snapshot, its
    /// audit chain verified); restore by putting the file in place of ca.db
    /// (docs/operations.md).
    #[command(
        after_help = "Example:\n  mtls-ca --data-dir /var/lib/mtls-ca backup --to /backup/ca-$(date +%F).db"
    )]
    Backup {
        /// The new file (never overwritten).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Audit log operations.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Create a CA in an empty --data-dir. With --offline-root: a two-tier CA, a root whose
    /// key is written to --offline-root only, encrypted with a passphrase, and an online
    /// intermediate that signs every leaf and CRL (docs/operations.md, "Offline root"). With
    /// --key pkcs11:…: the signing key (the single-tier root's, or with --offline-root the
    /// intermediate's) is generated in a PKCS#11 token and never leaves it (docs/operations.md,
    /// "Key in an HSM (PKCS#11)"). Without `init`, the first start makes a single-tier CA whose
    /// root key is a file in --data-dir.
    #[command(after_help = "Examples:
  mtls-ca --data-dir /var/lib/mtls-ca init --offline-root /media/usb/mtls-root \
    --passphrase-file /media/usb/pass --trust-domain mesh.local --intermediate-lifetime 365d
  mtls-ca --data-dir /var/lib/mtls-ca --pkcs11-module /usr/lib/softhsm/libsofthsm2.so \
    --pkcs11-pin-file /etc/mtls-ca/pin init --key 'pkcs11:token=mesh-ca;object=ca-key'
  mtls-ca --data-dir /var/lib/mtls-ca --trust-domain mesh.local   # then serve as usual
                                      # (with the same --pkcs11-* options for a token key)

Prints the root's SHA-256 fingerprint (what services pin with --ca-fingerprint).")]
    #[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["offline_root", "key"])))]
    Init {
        /// New or empty directory for the root: root.crt and root.key (encrypted PKCS#8,
        /// PBKDF2-SHA256 + AES-256-CBC; `openssl pkey -in root.key` opens it). Keep it
        /// offline; the CA never reads it.
        #[arg(long, value_name = "DIR")]
        offline_root: Option<PathBuf>,
        /// The CA signing key in a PKCS#11 token: pkcs11:token=TOKEN-LABEL;object=KEY-LABEL.
        /// Generated there (P-384, sensitive, not extractable) when the token holds no key
        /// with that label, else that key is used (it must be P-384, sensitive and not
        /// extractable). Needs --pkcs11-module and --pkcs11-pin-file. The data directory
        /// records the URI (root.pkcs11 or intermediate.pkcs11), never a key.
        #[arg(long, value_name = "URI", value_parser = parse_key_uri)]
        key: Option<mtls_ca::pkcs11::KeyUri>,
        /// With --key: the label of the JWT-SVID signing key, made (or found) in the same
        /// token, sensitive and not extractable; default: the --key object's label with
        /// "-jwt" appended (object=ca-key: ca-key-jwt). The data directory records it in
        /// jwt.pkcs11; no jwt.key is written.
        #[arg(long, value_name = "LABEL", requires = "key")]
        jwt_object: Option<String>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// The trust domain of the CA (named in the intermediate: URI spiffe://<td>).
        #[arg(long, default_value = "mesh.local", value_parser = parse_trust_domain)]
        trust_domain: TrustDomain,
        /// Lifetime of the intermediate: 1d up to the root's 3650d. Renew it with `mtls-ca
        /// intermediate renew` (a warning is logged and the metric
        /// mtls_ca_intermediate_life_used_ratio passes 0.5 at half of it).
        #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = parse_intermediate_lifetime)]
        intermediate_lifetime: time::Duration,
    },
    /// The online intermediate of a two-tier CA: renew it in an offline ceremony where its key
    /// never leaves --data-dir (docs/operations.md, "Intermediate renewal").
    Intermediate {
        #[command(subcommand)]
        action: IntermediateAction,
    },
    /// Replace the CA's root without an outage: `rotate`, `activate`, `retire`
    /// (docs/operations.md, "Root rotation"; a two-tier CA's `rotate` is an offline ceremony
    /// and `rotate --from`). Running CA replicas follow each step within a second, no restart
    /// needed. `status` shows where a rotation stands.
    Root {
        #[command(subcommand)]
        action: RootAction,
    },
}

#[derive(Subcommand)]
pub enum RootAction {
    /// Make a new root (P-384, ten years) next to the active one, with cross-certificates
    /// both ways. Running CAs publish both roots in /api/v1/bundle within a second and
    /// services trust the new one on their next refresh; the CA still signs with the old root.
    /// The new root's key goes to <data-dir>/roots/<sha256>.key (copy it to every other
    /// replica's data directory before `activate`). Refused while a rotation is pending.
    ///
    /// A two-tier CA (init --offline-root) rotates in two commands instead: the ceremony
    /// (--root-key … --out FILE) where the offline root is, making the new offline root, both
    /// cross-certificates and the intermediate certified by the new root into one public
    /// file; then --from FILE on the CA host, which checks the file against this CA and
    /// records the rotation (docs/operations.md, "Root rotation of a two-tier CA").
    #[command(
        after_help = "Examples:\n  mtls-ca --data-dir /var/lib/mtls-ca root rotate\n  \
mtls-ca --data-dir /var/lib/mtls-ca root status   # \"new root first published at\" is set\n\n\
Two-tier CA:\n  mtls-ca --data-dir /var/lib/mtls-ca intermediate csr > intermediate.csr\n  \
mtls-ca root rotate --root-key /media/usb/mtls-root --passphrase-file /media/usb/pass \\\n    \
--new-offline-root /media/usb2/mtls-root --new-passphrase-file /media/usb2/pass \\\n    \
--csr intermediate.csr --out rotation.pem\n  \
mtls-ca --data-dir /var/lib/mtls-ca root rotate --from rotation.pem"
    )]
    Rotate {
        /// Two-tier CA, on the CA host: the file the ceremony wrote. Checked against this CA
        /// (its current root, the cross-certificates, its intermediate key and subject)
        /// before anything changes.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["root_key", "passphrase_file"])]
        from: Option<PathBuf>,
        #[command(flatten)]
        ceremony: CeremonyArgs,
    },
    /// Sign leaves, CRLs and the CA's API certificate with the new root; running CAs switch
    /// within a second. The old root stays in the bundle and signs the CRL and OCSP answers for
    /// its own leaves (GET /api/v1/crl?issuer=<sha256>). Refused until a CA has published the
    /// new root for --min-overlap (or wait for it with --wait).
    #[command(
        after_help = "Examples:\n  mtls-ca --data-dir /var/lib/mtls-ca root activate\n  \
mtls-ca --data-dir /var/lib/mtls-ca root activate --wait --min-overlap 30s"
    )]
    Activate {
        /// How long the new root must have been published before it may sign: longer than
        /// the services' trust bundle refresh (--crl-refresh, 5s by default).
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_min_overlap)]
        min_overlap: time::Duration,
        /// Activate even if the new root was published less than --min-overlap ago (or no CA
        /// serves it yet): leaves signed by it are refused by services that have not refreshed
        /// their bundle yet.
        #[arg(long, conflicts_with = "wait")]
        force: bool,
        /// Instead of refusing early, wait until a running CA has published the new root for
        /// --min-overlap, then activate. Gives up if no CA publishes it within a minute.
        #[arg(long)]
        wait: bool,
    },
    /// Drop the old root from the bundle; running CAs switch within a second and services stop
    /// trusting it on their next refresh. Refused, with the list, while any valid (unexpired,
    /// unrevoked) certificate chains to it.
    #[command(after_help = "Example:\n  mtls-ca --data-dir /var/lib/mtls-ca root retire")]
    Retire,
    /// Show the rotation phase, both roots and the certificates still chaining to the old one.
    Status,
}

/// The offline ceremony of a two-tier CA's root rotation (`root rotate --root-key …`); no
/// --data-dir is needed.
#[derive(Args)]
pub struct CeremonyArgs {
    /// Two-tier CA, where the offline root is: the current root's --offline-root directory
    /// (root.crt, root.key).
    #[arg(long, value_name = "DIR", requires_all = ["new_offline_root", "csr", "out"])]
    pub root_key: Option<PathBuf>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// New or empty directory for the new root (root.crt, root.key encrypted with
    /// --new-passphrase-file), as `init --offline-root` makes it.
    #[arg(long, value_name = "DIR", requires = "root_key")]
    pub new_offline_root: Option<PathBuf>,
    /// File holding the new root key's passphrase (at least 12 bytes). Default: ask on the
    /// terminal, twice.
    #[arg(long, value_name = "FILE", requires = "root_key")]
    pub new_passphrase_file: Option<PathBuf>,
    /// The CSR from `mtls-ca intermediate csr` on the CA host: its key is certified by the new
    /// root.
    #[arg(long, value_name = "FILE", requires = "root_key")]
    pub csr: Option<PathBuf>,
    /// Lifetime of the intermediate certified by the new root: 1d up to that root's NotAfter.
    #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = parse_intermediate_lifetime)]
    pub lifetime: time::Duration,
    /// The new file for `root rotate --from` (certificates only; never overwritten).
    #[arg(long, value_name = "FILE", requires = "root_key")]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct PassphraseArgs {
    /// File holding the root key's passphrase (at least 12 bytes; one trailing newline is
    /// ignored). Default: ask on the terminal. Never given on the command line.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum IntermediateAction {
    /// On the CA host: print a CSR for the intermediate's own key (intermediate.key stays
    /// where it is); carry it to the machine holding the root.
    #[command(after_help = "Example:
  mtls-ca --data-dir /var/lib/mtls-ca intermediate csr > intermediate.csr")]
    Csr,
    /// On the machine holding the root: sign an intermediate CSR with the offline root and
    /// print the certificate (PEM). No --data-dir is needed.
    #[command(after_help = "Example:
  mtls-ca intermediate sign --root-key /media/usb/mtls-root --csr intermediate.csr \
    --passphrase-file /media/usb/pass > intermediate.crt")]
    Sign {
        /// The --offline-root directory made by `mtls-ca init` (root.crt, root.key).
        #[arg(long, value_name = "DIR")]
        root_key: PathBuf,
        /// The CSR from `mtls-ca intermediate csr`.
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// Lifetime of the new certificate: 1d up to the root's NotAfter.
        #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = parse_intermediate_lifetime)]
        lifetime: time::Duration,
    },
    /// On the CA host: check a certificate from `intermediate sign` (the CA's current root,
    /// which after a root rotation's `activate` is the new one; this directory's intermediate
    /// key and trust domain; valid now) and put it in place of intermediate.crt. Restart the CA (or each replica) to issue under it; leaves issued
    /// before keep verifying (same key, same name).
    #[command(after_help = "Example:
  mtls-ca --data-dir /var/lib/mtls-ca intermediate install --cert intermediate.crt")]
    Install {
        /// The PEM certificate `intermediate sign` printed.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
    },
    /// csr, sign and install in one step, when the root directory is reachable from the CA
    /// host (a mounted medium during the ceremony).
    #[command(after_help = "Example:
  mtls-ca --data-dir /var/lib/mtls-ca intermediate renew --root-key /media/usb/mtls-root \
    --passphrase-file /media/usb/pass")]
    Renew {
        /// The --offline-root directory made by `mtls-ca init` (root.crt, root.key).
        #[arg(long, value_name = "DIR")]
        root_key: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// Lifetime of the new certificate: 1d up to the root's NotAfter.
        #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = parse_intermediate_lifetime)]
        lifetime: time::Duration,
    },
}

#[derive(Args)]
pub struct TokenArgs {
    /// The SPIFFE ID the token authorises.
    #[arg(long, required = true, value_parser = parse_spiffe_id)]
    pub spiffe_id: Option<SpiffeId>,
    /// DNS SAN the certificate may carry (repeatable).
    #[arg(long = "dns", value_parser = parse_dns_name)]
    pub dns: Vec<String>,
    /// IP SAN the certificate may carry (repeatable).
    #[arg(long = "ip")]
    pub ips: Vec<IpAddr>,
    /// How long the token stays redeemable: 1s to 7d.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_token_ttl)]
    pub ttl: time::Duration,
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// List join tokens, oldest first: ID (a prefix of the token's hash; the token itself is
    /// never stored), status (unused, used, revoked, expired), expiry, identity and SANs.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Revoke an unused token before anyone redeems it (a used one cannot be: revoke the
    /// certificate it enrolled instead).
    Revoke {
        /// The token's ID as `token list` shows it (12 to 64 hex digits of its hash).
        #[arg(value_parser = parse_token_id)]
        id: String,
    },
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Recompute the hash chain and replay it against the tables; exit 1 and name every entry
    /// or row that disagrees.
    #[command(
        after_help = "Example:\n  mtls-ca --data-dir ./ca audit verify --expect-head \"$(cat last-published-head)\""
    )]
    Verify {
        /// A head published earlier (`mtls-ca audit head`): fail unless the chain still holds
        /// that entry with that hash (catches a cut or rewritten tail).
        #[arg(long, value_name = "SEQ:HASH", value_parser = parse_head)]
        expect_head: Option<(i64, String)>,
    },
    /// Print the chain's last entry as SEQ:HASH; publish it elsewhere to pin the log.
    Head {
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
}

#[derive(Subcommand)]
pub enum FederationAction {
    /// Federate a trust domain. The running CA fetches its bundle within a second or two: the
    /// first fetch is accepted only when the endpoint's certificate chains, as
    /// --endpoint-spiffe-id, to a root with --fingerprint that the bundle also holds; later
    /// fetches are authenticated with the bundle stored.
    #[command(
        after_help = "Example (on the CA of a.example, federating b.example):\n  mtls-ca --data-dir ./ca-a federation add --trust-domain b.example \\\n    --endpoint https://ca.b.example:8443/api/v1/bundle/spiffe \\\n    --endpoint-spiffe-id spiffe://b.example/ca --fingerprint sha256:<root of b.example>"
    )]
    Add {
        /// The other trust domain (not this CA's own).
        #[arg(long)]
        trust_domain: String,
        /// Its SPIFFE bundle endpoint, https:// (an mtls-ca serves it at
        /// https://HOST:PORT/api/v1/bundle/spiffe).
        #[arg(long)]
        endpoint: String,
        /// The SPIFFE ID the endpoint's certificate must carry (an mtls-ca's is
        /// spiffe://<its trust domain>/ca).
        #[arg(long)]
        endpoint_spiffe_id: String,
        /// sha256:<64 hex digits> of one root of the other trust domain (an mtls-ca prints
        /// its own at start), obtained out of band.
        #[arg(long)]
        fingerprint: String,
    },
    /// List the federated trust domains.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Show one federated trust domain as JSON, with its last good bundle.
    Show {
        /// The trust domain.
        trust_domain: String,
    },
    /// Stop federating a trust domain: services drop its roots at their next trust refresh
    /// (--crl-refresh), refuse its peers' new connections from then on and close the
    /// connections its peers still have open.
    Remove {
        /// The trust domain.
        trust_domain: String,
    },
}

#[derive(Subcommand)]
pub enum EntryAction {
    /// Create an entry (or, with --from-file, many); prints each new ID on stdout.
    #[command(
        after_help = "Examples:\n  mtls-ca --data-dir ./ca entry create --parent spiffe://mesh.local/agent/node1 \\\n    --spiffe-id spiffe://mesh.local/service/web --selector unix:uid:1000 \\\n    --selector unix:path:/usr/bin/python3 --ttl 1h --dns web.local\n  mtls-ca --data-dir ./ca entry create --from-file entries.jsonl\n\nA --from-file line (one JSON object per line; ttl and dns are optional, as the flags):\n  {\"parent\": \"spiffe://mesh.local/agent/node1\", \"spiffe_id\": \"spiffe://mesh.local/service/web\", \"selectors\": [\"unix:uid:1000\"], \"ttl\": \"1h\", \"dns\": [\"web.local\"]}"
    )]
    Create {
        /// The agent that may obtain it: spiffe://<td>/agent/<name>.
        #[arg(long, value_parser = parse_spiffe_id, required_unless_present = "from_file")]
        parent: Option<SpiffeId>,
        /// The SPIFFE ID a matching workload receives (not under /ca or /agent).
        #[arg(long, value_parser = parse_spiffe_id, required_unless_present = "from_file")]
        spiffe_id: Option<SpiffeId>,
        /// A selector the workload must show (repeatable; all must match): unix:uid:<u32>,
        /// unix:gid:<u32>, unix:user:<name>, unix:group:<name>, unix:path:<absolute path>,
        /// unix:sha256:<64 lowercase hex>.
        #[arg(long = "selector", value_name = "SELECTOR", required_unless_present = "from_file", value_parser = parse_selector)]
        selectors: Vec<pki::selector::Selector>,
        /// Lifetime of the X.509-SVIDs minted for it: 1s to 24h (the CA clamps it to its
        /// --max-duration).
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_entry_ttl)]
        ttl: time::Duration,
        /// DNS SAN of its SVIDs (repeatable).
        #[arg(long = "dns", value_parser = parse_dns_name)]
        dns: Vec<String>,
        /// Create many entries in one call: FILE (or - for stdin) has one JSON object per
        /// line with the fields parent, spiffe_id, selectors (a list) and optionally ttl
        /// (default 1h) and dns (a list), checked as the flags are; blank lines are skipped.
        /// Every line is checked (rules, duplicates in the file or in the store) before any
        /// entry is stored, so a bad line stores nothing; the IDs are printed in file order.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["parent", "spiffe_id", "selectors", "ttl", "dns"])]
        from_file: Option<std::path::PathBuf>,
    },
    /// List entries, oldest first.
    List {
        /// Only the entries of this agent.
        #[arg(long, value_parser = parse_spiffe_id)]
        parent: Option<SpiffeId>,
        /// JSON instead of a table (the same as --format json).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Show one entry as JSON.
    Show {
        /// The entry's ID.
        #[arg(value_parser = parse_entry_id)]
        id: String,
    },
    /// Delete an entry: its agent stops obtaining SVIDs for it at once (SVIDs already issued
    /// live until they expire; revoke them with `revoke --spiffe-id` if needed).
    Delete {
        /// The entry's ID.
        #[arg(value_parser = parse_entry_id)]
        id: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

/// The shortest `--crl-validity`: shorter CRLs would go stale between two fetches.
const MIN_CRL_VALIDITY: Duration = Duration::from_secs(2);

impl Cli {
    /// The rules between options, checked before anything starts (clap checks each value):
    /// a clap error, exit 2, naming the options and the accepted range.
    pub fn check(&self) -> Result<(), clap::Error> {
        if let Some(Command::Init { key: Some(_), .. }) = &self.command {
            if self.pkcs11.pkcs11_module.is_none() {
                return Err(usage(
                    "init --key pkcs11:… needs --pkcs11-module PATH and --pkcs11-pin-file FILE"
                        .into(),
                ));
            }
        }
        if let Some(Command::Root {
            action: RootAction::Rotate { ceremony, .. },
        }) = &self.command
        {
            // The passphrase opens the offline root of the ceremony; anywhere else it would be
            // read by nobody, and the operator would believe it had been used.
            if ceremony.root_key.is_none() && ceremony.passphrase.passphrase_file.is_some() {
                return Err(usage(
                    "root rotate --passphrase-file: only the offline ceremony of a two-tier CA \
                     (with --root-key DIR) opens a root key with a passphrase"
                        .into(),
                ));
            }
        }
        if let Some(store) = &self.store {
            StoreLocation::parse(store).map_err(|e| usage(format!("--store: {e}")))?;
        }
        if let Some(Command::MigrateStore { to, .. }) = &self.command {
            match StoreLocation::parse(to) {
                Ok(StoreLocation::Postgres(_)) => {}
                Ok(StoreLocation::Sqlite(_)) => {
                    return Err(usage(
                        "--to: expected the PostgreSQL database to copy into: postgres://..."
                            .into(),
                    ))
                }
                Err(e) => return Err(usage(format!("--to: {e}"))),
            }
        }
        let s = &self.serve;
        if s.cert_duration > s.max_duration {
            return Err(usage(format!(
                "--cert-duration {} is longer than --max-duration {}: the accepted range of \
                 --cert-duration is 1s to --max-duration",
                human(s.cert_duration),
                human(s.max_duration)
            )));
        }
        if let Some(reserve) = s.authenticated_reserve {
            if reserve >= s.max_connections {
                return Err(usage(format!(
                    "--authenticated-reserve {reserve} leaves no slot for clients without a \
                     certificate (enrollment, CRL fetches): the accepted range is 0 to \
                     --max-connections - 1 ({})",
                    s.max_connections - 1
                )));
            }
        }
        Ok(())
    }
}

impl Cli {
    /// `--store`, parsed (`check` has refused a bad one).
    pub fn store_location(&self) -> Option<StoreLocation> {
        self.store
            .as_deref()
            .and_then(|s| StoreLocation::parse(s).ok())
    }
}

fn parse_sqlite_location(s: &str) -> Result<std::path::PathBuf, String> {
    match StoreLocation::parse(s)? {
        StoreLocation::Sqlite(path) => Ok(path),
        StoreLocation::Postgres(_) => Err("expected the SQLite store to copy: sqlite:PATH".into()),
    }
}

fn usage(message: String) -> clap::Error {
    Cli::command().error(ErrorKind::ArgumentConflict, message)
}

fn human(d: time::Duration) -> String {
    pki::timefmt::human(d)
}

fn parse_intermediate_lifetime(s: &str) -> Result<time::Duration, String> {
    let (min, max) = (pki::intermediate::MIN_LIFETIME, pki::root::ROOT_LIFETIME);
    pki::duration::parse_time_between(s, min.unsigned_abs(), max.unsigned_abs())
}

fn parse_crl_validity(s: &str) -> Result<time::Duration, String> {
    pki::duration::parse_time_at_least(s, MIN_CRL_VALIDITY)
}

fn parse_ocsp_url(s: &str) -> Result<pki::ocsp::ResponderUrl, String> {
    pki::ocsp::ResponderUrl::parse(s)
}

fn parse_federation_refresh_max(s: &str) -> Result<Duration, String> {
    pki::duration::parse_at_least(s, Duration::from_secs(5))
}

fn parse_backdate(s: &str) -> Result<time::Duration, String> {
    pki::duration::parse_time_at_least(s, Duration::ZERO)
}

fn parse_min_overlap(s: &str) -> Result<time::Duration, String> {
    pki::duration::parse_time(s)
}

fn parse_token_ttl(s: &str) -> Result<time::Duration, String> {
    mtls_ca::admin::parse_token_ttl(s)
}

fn parse_token_id(s: &str) -> Result<String, String> {
    mtls_ca::tokens::parse_id(s)
}

pub(crate) fn parse_entry_ttl(s: &str) -> Result<time::Duration, String> {
    let max = Duration::try_from(mtls_ca::registration::MAX_ENTRY_TTL).unwrap_or(Duration::MAX);
    pki::duration::parse_time_between(s, pki::duration::ONE_SECOND, max)
}

pub(crate) fn parse_selector(s: &str) -> Result<pki::selector::Selector, String> {
    pki::selector::Selector::parse(s).map_err(|e| e.to_string())
}

fn parse_entry_id(s: &str) -> Result<String, String> {
    if mtls_ca::registration::is_entry_id(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an entry ID (32 lowercase hex digits, as `mtls-ca entry list` shows)"
        ))
    }
}

fn parse_connection_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("0 connections would serve nobody: the minimum is 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number (at least 1)")),
    }
}

fn parse_trust_domain(s: &str) -> Result<TrustDomain, String> {
    TrustDomain::parse(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_spiffe_id(s: &str) -> Result<SpiffeId, String> {
    SpiffeId::parse(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_dns_name(s: &str) -> Result<String, String> {
    mtls_ca::admin::validate_dns_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_serial(s: &str) -> Result<String, String> {
    pki::serial::normalize_hex(s).map_err(|e| e.to_string())
}

fn parse_reason(s: &str) -> Result<String, String> {
    match pki::crl::parse_reason(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(format!(
            "unknown reason {s:?}; use one of {}",
            pki::crl::REASONS.join(", ")
        )),
    }
}

/// `SEQ:HASH` as `mtls-ca audit head` prints it.
fn parse_head(s: &str) -> Result<(i64, String), String> {
    let bad = || {
        format!(
            "{s:?} is not SEQ:HASH (an entry number and 64 hex digits, as `mtls-ca audit head` \
             prints them)"
        )
    };
    let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
    let seq: i64 = seq.parse().map_err(|_| bad())?;
    let hash = hash.to_ascii_lowercase();
    if seq < 0 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((seq, hash))
}

/// `--ocsp-responder`: who signs OCSP answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OcspResponder {
    /// The CA key.
    Ca,
    /// A delegated responder certificate issued by the CA.
    Delegated,
}

impl Pkcs11Args {
    /// The token access these options give (the PIN file is read now), None without them.
    pub fn token_access(&self) -> anyhow::Result<Option<mtls_ca::pkcs11::TokenAccess>> {
        match (&self.pkcs11_module, &self.pkcs11_pin_file) {
            (Some(module), Some(pin)) => Ok(Some(mtls_ca::pkcs11::TokenAccess::new(module, pin)?)),
            _ => Ok(None),
        }
    }
}

fn parse_key_uri(s: &str) -> Result<mtls_ca::pkcs11::KeyUri, String> {
    s.parse()
}
