//! `mtls-inspect verify`: full path validation with `pki::verify`, the verifier the services
//! use. Exit 0 valid, 1 invalid (a CRL refused by the strict CRL rules included), 2 usage or
//! read error. Without options the verdict is the services' (ECDSA only, X509-SVID rules);
//! `--algorithms webpki` accepts RSA and Ed25519 chains, `--strict` adds RFC 5280 checks.

use std::io::Write;

use anyhow::{anyhow, bail, Context as _, Result};
use pki::verify::{
    AlgorithmPolicy, ExpectedIdentity, Purpose, RevocationPolicy, TrustOptions, TrustStore,
    VerifyError, VerifyOptions,
};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use time::OffsetDateTime;

use crate::input::{self, Kind};
use crate::render_json::{self, VERIFY_SCHEMA};
use crate::validity;
use crate::{Exit, Format};
use pki::timefmt::{self, rfc3339};

/// What `mtls-inspect verify` was asked to do.
#[derive(Clone, Debug)]
pub struct VerifyArgs {
    /// The certificate to verify, optionally followed by its intermediates.
    pub cert: String,
    /// Files of trusted roots.
    pub roots: Vec<String>,
    /// Files of intermediate certificates.
    pub intermediates: Vec<String>,
    /// CRL files to check revocation against.
    pub crls: Vec<String>,
    /// What the certificate must be valid for (selects the EKU).
    pub purpose: Purpose,
    /// A DNS name or IP address that must be among the certificate's SANs.
    pub hostname: Option<String>,
    /// The exact SPIFFE ID the certificate must carry.
    pub spiffe_id: Option<String>,
    /// The trust domain the certificate's SPIFFE ID must be in.
    pub trust_domain: Option<String>,
    /// Check the intermediates' revocation too.
    pub crl_check_chain: bool,
    /// Signature algorithms (and end-entity keys) accepted; the default is the services'.
    pub algorithms: AlgorithmPolicy,
    /// Add the RFC 5280 checks of `pki::rfc5280` to every certificate of the path.
    pub strict: bool,
    /// The verification time.
    pub at: OffsetDateTime,
    /// Text or JSON.
    pub format: Format,
}

#[derive(Debug, Serialize)]
struct VerifyDocument {
    schema: &'static str,
    valid: bool,
    checked_at: String,
    purpose: Purpose,
    /// Null when valid.
    error: Option<ErrorView>,
    subject: String,
    serial: String,
    spiffe_id: Option<String>,
    hostname: Option<String>,
    not_after: String,
    /// Subjects and SHA-256 fingerprints from the leaf to the root (empty when invalid).
    chain: Vec<ChainView>,
    revocation_checked: bool,
    warnings: Vec<String>,
    /// The algorithm policy judged by: "ecdsa" (the services') or "webpki".
    algorithms: &'static str,
    /// The RFC 5280 checks of --strict were applied.
    strict: bool,
}

#[derive(Debug, Serialize)]
struct ErrorView {
    code: &'static str,
    message: String,
    /// What to do about it, when there is a usual remedy.
    hint: Option<&'static str>,
}

/// The usual remedy for a failure, by error code.
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "expired" => "renew the certificate (`needs-renewal` says when); if it should be valid, check the clock",
        "not_yet_valid" => "check the clocks of the issuing and the checking machine",
        "unknown_issuer" => "pass the issuing root with --roots, or the missing intermediates with --intermediates",
        "bad_signature" => "a root with this name but another key is trusted: fetch the current root (GET /api/v1/ca)",
        "ca_used_as_leaf" => "verify the end-entity certificate, not a CA certificate",
        "missing_eku" | "issuer_eku_restriction" => {
            "use a certificate issued for this purpose, or check --purpose"
        }
        "revoked" => "get a new certificate with a fresh join token",
        "revocation_unknown" => "pass the CRL of the certificate's issuer with --crl (GET /api/v1/crl)",
        "crl_expired" => "fetch a fresh CRL (GET /api/v1/crl)",
        "hostname_mismatch" => "use a name from the certificate's SANs, or issue a certificate that has it",
        "spiffe_id_mismatch" | "trust_domain_mismatch" => {
            "this certificate belongs to another workload: check which one was presented"
        }
        "no_uri_san" | "multiple_uri_sans" | "invalid_spiffe_id" => {
            "an X509-SVID carries exactly one URI SAN, a valid SPIFFE ID (`mtls-inspect lint` explains)"
        }
        "key_usage_missing" | "key_usage_not_critical" | "key_usage_no_digital_signature"
        | "key_usage_ca_bits" | "svid_ca" => {
            "issue the certificate with a critical keyUsage digitalSignature and CA:FALSE, as mtls-ca and the scripts do (`mtls-inspect lint` lists every rule it breaks)"
        }
        "algorithm_not_allowed" | "key_algorithm_not_allowed" => {
            "the services accept ECDSA on P-256/P-384/P-521 only; to inspect a chain from another PKI, add --algorithms webpki"
        }
        "crl_no_number" => {
            "configure the OpenSSL CA with `crlnumber = crlnumber`, create the file (`echo 01 > crlnumber`) and make the CRL again"
        }
        "crl_issuer_not_signer" | "crl_issuer_no_key_usage" => {
            "the CRL must be signed by a CA certificate whose keyUsage has cRLSign (mtls-ca and gen-root-ca.sh roots have it)"
        }
        "crl_signature" | "crl_unknown_issuer" => {
            "use the CRL of the CA that issued the certificate (GET /api/v1/crl), checked against the same roots"
        }
        "crl_algorithm_mismatch" | "crl_algorithm_key_mismatch" | "crl_algorithm_not_allowed"
        | "crl_number_critical" | "crl_number_invalid" | "crl_unsupported_critical_extension"
        | "crl_partial_scope" | "crl_unsupported_algorithm" => {
            "the CRL does not follow RFC 5280 as the services require: make it again with mtls-ca or `openssl ca -gencrl`"
        }
        "aki_missing" | "aki_critical" | "ski_missing" | "ski_critical" | "san_not_critical_empty_subject"
        | "san_missing_empty_subject" | "san_critical_with_subject" | "invalid_dns_name" => {
            "--strict adds RFC 5280 checks the services do not make (docs/cli.md lists them); re-issue the certificate to fix it"
        }
        "root_self_signature" | "root_not_ca" | "root_key_usage_missing" | "root_no_key_cert_sign"
        | "root_expired" | "root_not_yet_valid" => {
            "--strict checks the trust anchor too: replace the root (the services trust it as it is)"
        }
        _ => return None,
    })
}

#[derive(Debug, Serialize)]
struct ChainView {
    subject: String,
    fingerprint_sha256: String,
}

/// Everything read from the files, before verification.
struct Inputs {
    leaf: Vec<u8>,
    intermediates: Vec<CertificateDer<'static>>,
    /// A CRL refused by the strict CRL rules is a verdict (exit 1), not a read error.
    store: Result<TrustStore, VerifyError>,
    identity: Option<ExpectedIdentity>,
}

fn read_inputs(args: &VerifyArgs) -> Result<Inputs> {
    let mut chain = input::load_certificates(&args.cert, "certificate to verify")?.into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| anyhow!("{}: no certificate found", args.cert))?;
    // Certificates after the first in CERT are treated as intermediates, like a TLS chain.
    let mut intermediates: Vec<CertificateDer<'static>> = chain.map(CertificateDer::from).collect();
    for file in &args.intermediates {
        intermediates.extend(
            input::load_certificates(file, "intermediates")?
                .into_iter()
                .map(CertificateDer::from),
        );
    }
    if let Some(name) = &args.hostname {
        if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
            bail!(
                "--hostname: {}",
                VerifyError::InvalidHostname { name: name.clone() }
            );
        }
    }
    if args.roots.is_empty() {
        bail!("--roots FILE is required: the trusted root certificates");
    }
    let mut roots = Vec::new();
    for file in &args.roots {
        roots.extend(
            input::load_trust_anchors(file)?
                .into_iter()
                .map(CertificateDer::from),
        );
    }
    let mut crls = Vec::new();
    for file in &args.crls {
        let parsed = input::load(file).context("reading the CRLs")?;
        for obj in parsed.objects {
            if obj.kind != Kind::Crl {
                bail!("{file}: object #{} is a {}, not a CRL", obj.index, obj.kind);
            }
            crls.push(obj.der);
        }
    }
    let options = TrustOptions {
        algorithms: args.algorithms,
        revocation: RevocationPolicy {
            check_chain: args.crl_check_chain,
            ..RevocationPolicy::default()
        },
        strict: args.strict,
    };
    let store = match TrustStore::with_options(&roots, &crls, options) {
        Ok(store) => Ok(store),
        Err(e @ VerifyError::Crl { .. }) => Err(e),
        Err(e) => bail!("{e}"),
    };
    let identity = match (&args.spiffe_id, &args.trust_domain) {
        (Some(_), Some(_)) => bail!("give either --spiffe-id or --trust-domain, not both"),
        (Some(id), None) => Some(ExpectedIdentity::SpiffeId(
            pki::SpiffeId::parse(id).map_err(|e| anyhow!("--spiffe-id: {e}"))?,
        )),
        (None, Some(td)) => Some(ExpectedIdentity::TrustDomain(
            pki::TrustDomain::parse(td).map_err(|e| anyhow!("--trust-domain: {e}"))?,
        )),
        (None, None) => None,
    };
    Ok(Inputs {
        leaf,
        intermediates,
        store,
        identity,
    })
}

/// Runs `verify` with the services' verifier (`pki::verify`): exit 0 valid, 1 invalid with the
/// reason, 2 when an input cannot be read.
pub fn run(args: &VerifyArgs, out: &mut dyn Write) -> Result<Exit> {
    let inputs = read_inputs(args)?;
    let opts = VerifyOptions {
        time: args.at,
        purpose: args.purpose,
        hostname: args.hostname.as_deref(),
        identity: inputs.identity.as_ref(),
    };
    let result = inputs
        .store
        .and_then(|store| store.verify(&inputs.leaf, &inputs.intermediates, &opts));
    let info = pki::CertInfo::from_der(&inputs.leaf).map_err(|e| anyhow!("{e}"))?;
    let doc = VerifyDocument {
        schema: VERIFY_SCHEMA,
        valid: result.is_ok(),
        checked_at: rfc3339(args.at),
        purpose: args.purpose,
        error: result.as_ref().err().map(|e| ErrorView {
            code: e.code(),
            message: e.to_string(),
            hint: hint(e.code()),
        }),
        subject: info.subject.clone(),
        serial: crate::names::colon_lower(&hex::decode(&info.serial_hex).unwrap_or_default()),
        spiffe_id: match &result {
            Ok(v) => v.spiffe_id.as_ref().map(ToString::to_string),
            Err(_) => pki::verify::svid_id(&info).map(|id| id.to_string()),
        },
        hostname: args.hostname.clone(),
        not_after: rfc3339(info.not_after),
        chain: result
            .as_ref()
            .map(|v| {
                v.chain
                    .iter()
                    .map(|c| ChainView {
                        subject: c.subject.clone(),
                        fingerprint_sha256: crate::names::colon_upper(
                            &hex::decode(&c.fingerprint).unwrap_or_default(),
                        ),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        revocation_checked: result.as_ref().is_ok_and(|v| v.revocation_checked),
        warnings: result
            .as_ref()
            .map(|v| v.warnings.clone())
            .unwrap_or_default(),
        algorithms: args.algorithms.name(),
        strict: args.strict,
    };
    match args.format {
        Format::Json => out.write_all(render_json::to_json(&doc)?.as_bytes())?,
        _ => out.write_all(text(&doc, args, info.not_before).as_bytes())?,
    }
    Ok(if doc.valid {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn text(doc: &VerifyDocument, args: &VerifyArgs, not_before: OffsetDateTime) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if let Some(e) = &doc.error {
        let _ = writeln!(s, "INVALID: {}", e.message);
        let _ = writeln!(s, "  Subject:    {}", doc.subject);
        let _ = writeln!(s, "  Serial:     {}", doc.serial);
        if let Some(h) = e.hint {
            let _ = writeln!(s, "  Hint:       {h}");
        }
        return s;
    }
    let _ = writeln!(s, "OK: valid for {} use at {}", doc.purpose, doc.checked_at);
    let _ = writeln!(s, "  Subject:    {}", doc.subject);
    match (&doc.spiffe_id, &args.spiffe_id, &args.trust_domain) {
        (Some(id), Some(_), _) => {
            let _ = writeln!(s, "  SPIFFE ID:  {id} (as expected)");
        }
        (Some(id), None, Some(td)) => {
            let _ = writeln!(s, "  SPIFFE ID:  {id} (in trust domain {td})");
        }
        (Some(id), None, None) => {
            let _ = writeln!(
                s,
                "  SPIFFE ID:  {id} (not checked: no --spiffe-id or --trust-domain)"
            );
        }
        (None, ..) => {
            let _ = writeln!(s, "  SPIFFE ID:  none");
        }
    }
    if let Some(h) = &doc.hostname {
        let _ = writeln!(s, "  Hostname:   {h} (in the SANs)");
    }
    let _ = writeln!(s, "  Serial:     {}", doc.serial);
    let not_after = timefmt::parse_rfc3339(&doc.not_after).unwrap_or(args.at);
    let _ = writeln!(
        s,
        "  Expires:    {} ({})",
        doc.not_after,
        validity::relative(args.at, not_before, not_after)
    );
    let _ = writeln!(s, "  Chain:");
    let last = doc.chain.len().saturating_sub(1);
    for (i, c) in doc.chain.iter().enumerate() {
        let role = match i {
            0 => "leaf",
            n if n == last => "root",
            _ => "intermediate",
        };
        let _ = writeln!(s, "    {role:<12} {}", c.subject);
        if i == last {
            let _ = writeln!(s, "    {:<12} SHA-256 {}", "", c.fingerprint_sha256);
        }
    }
    let _ = writeln!(
        s,
        "  Revocation: {}",
        if doc.revocation_checked {
            "checked, not revoked"
        } else if args.crls.is_empty() {
            "not checked (no --crl given)"
        } else {
            "not checked (no CRL from the issuer)"
        }
    );
    let _ = writeln!(
        s,
        "  Rules:      {} algorithms, X509-SVID rules{}",
        doc.algorithms,
        if doc.strict {
            ", RFC 5280 strict checks"
        } else {
            ""
        }
    );
    for w in &doc.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}
