//! `mtls-inspect verify`: full path validation with `pki::verify`, the verifier the services
//! use. Exit 0 valid, 1 invalid, 2 usage or read error.

use std::io::Write;

use anyhow::{anyhow, bail, Context as _, Result};
use pki::verify::{
    ExpectedIdentity, Purpose, RevocationPolicy, TrustStore, VerifyError, VerifyOptions,
};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use time::OffsetDateTime;

use crate::input::{self, Kind};
use crate::render_json::{self, VERIFY_SCHEMA};
use crate::timefmt::{self, rfc3339};
use crate::{Exit, Format};

#[derive(Clone, Debug)]
pub struct VerifyArgs {
    pub cert: String,
    pub roots: Vec<String>,
    pub intermediates: Vec<String>,
    pub crls: Vec<String>,
    pub purpose: Purpose,
    pub hostname: Option<String>,
    pub spiffe_id: Option<String>,
    pub trust_domain: Option<String>,
    pub crl_check_chain: bool,
    pub at: OffsetDateTime,
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
    store: TrustStore,
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
            input::load_certificates(file, "roots")?
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
    let store = TrustStore::new(&roots, &crls)
        .map_err(|e| anyhow!("{e}"))?
        .with_revocation_policy(RevocationPolicy {
            check_chain: args.crl_check_chain,
            ..RevocationPolicy::default()
        });
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
        .verify(&inputs.leaf, &inputs.intermediates, &opts);
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
        timefmt::relative(args.at, not_before, not_after)
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
    for w in &doc.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}
