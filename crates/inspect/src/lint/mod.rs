//! `mtls-inspect lint`: SPIFFE X509-SVID conformance and the mtls-mesh issuance policy.
//!
//! Every finding names a rule from [`RULES`] (stable ids: never renamed or reused), a severity
//! and a one-line fix. A certificate with basicConstraints CA:TRUE is checked against the
//! signing-certificate profile, anything else against the leaf profile (see [`ProfileChoice`]).
//! `rules.rs` holds the rule table, `checks.rs` the checks, `issuers.rs` the issuer index
//! that keeps lint linear in the number of certificates, this file the command.

mod bundle;
mod checks;
mod issuers;
mod rules;

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use time::Duration;

pub use bundle::bundle_findings;
pub use checks::{lint_certificate, Policy, ProfileChoice};
pub use issuers::{IndexStats, IssuerIndex};
pub use rules::{Finding, Rule, Severity, RULES};

use crate::input::{self, Kind, Object};
use crate::render_json::{self, InputError, LINT_SCHEMA};
use crate::{Exit, Format};

/// What `mtls-inspect lint` was asked to do.
#[derive(Clone, Debug)]
pub struct LintArgs {
    /// Files to lint (PEM or DER; `-` for stdin).
    pub files: Vec<String>,
    /// Candidate issuers, used to check the signature algorithm against the issuer's key.
    pub issuers: Vec<String>,
    /// Trust domain every SPIFFE ID must be in (`--trust-domain`).
    pub trust_domain: Option<String>,
    /// Longest acceptable leaf lifetime (`--max-lifetime`).
    pub max_lifetime: Duration,
    /// Longest acceptable CA lifetime (`--max-ca-lifetime`).
    pub max_ca_lifetime: Duration,
    /// Which rules apply (`--profile`).
    pub profile: ProfileChoice,
    /// Text or JSON.
    pub format: Format,
}

/// The findings for one certificate.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The file the certificate came from (`-` for stdin).
    pub file: String,
    /// 1-based position of the certificate in that file.
    pub index: usize,
    /// The certificate's subject.
    pub subject: String,
    /// "leaf" or "ca"; "spiffe-bundle" for a SPIFFE bundle's own findings.
    pub profile: &'static str,
    /// Every rule the certificate breaks.
    pub findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
struct LintDocument<'a> {
    schema: &'static str,
    reports: &'a [Report],
    summary: Summary,
    notes: &'a [String],
    errors: &'a [InputError],
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Summary {
    certificates: usize,
    /// SPIFFE bundles linted (each also adds its x509-svid certificates to `certificates`).
    spiffe_bundles: usize,
    errors: usize,
    warnings: usize,
    infos: usize,
}

/// Runs `lint`: the report to `out`, unreadable inputs to `err`. Exit 1 when any finding is an
/// error, 2 when an input could not be read.
pub fn run(args: &LintArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<Exit> {
    let policy = Policy {
        trust_domain: match &args.trust_domain {
            Some(td) => Some(
                pki::TrustDomain::parse(td).map_err(|e| anyhow::anyhow!("--trust-domain: {e}"))?,
            ),
            None => None,
        },
        max_lifetime: args.max_lifetime,
        max_ca_lifetime: args.max_ca_lifetime,
        profile: args.profile,
    };
    let mut issuers = Vec::new();
    for f in &args.issuers {
        issuers.extend(input::load_certificates(f, "issuers")?);
    }
    let mut certs = Vec::new();
    let mut bundle_reports = Vec::new();
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    for file in &args.files {
        match input::load(file) {
            Ok(parsed) => {
                for obj in parsed.objects {
                    if obj.kind == Kind::Certificate {
                        certs.push(obj);
                    } else if obj.kind == Kind::SpiffeBundle {
                        bundle_reports.push(bundle_report(&obj, &mut certs)?);
                    } else {
                        notes.push(format!(
                            "{file}: object #{} is a {}; lint checks certificates only",
                            obj.index, obj.kind
                        ));
                    }
                }
                notes.extend(parsed.notes.into_iter().map(|n| format!("{file}: {n}")));
            }
            Err(e) => errors.push(InputError {
                file: file.clone(),
                message: format!("{e:#}"),
            }),
        }
    }
    let (mut reports, _) = lint_all(&certs, &issuers, &policy)?;
    let mut summary = Summary {
        certificates: reports.len(),
        spiffe_bundles: bundle_reports.len(),
        ..Summary::default()
    };
    reports.extend(bundle_reports);
    for f in reports.iter().flat_map(|r| &r.findings) {
        match f.severity {
            Severity::Error => summary.errors += 1,
            Severity::Warning => summary.warnings += 1,
            Severity::Info => summary.infos += 1,
        }
    }
    if args.format == Format::Json {
        let doc = LintDocument {
            schema: LINT_SCHEMA,
            reports: &reports,
            summary,
            notes: &notes,
            errors: &errors,
        };
        out.write_all(render_json::to_json(&doc)?.as_bytes())?;
    } else {
        out.write_all(text(&reports, &summary).as_bytes())?;
        for n in &notes {
            writeln!(err, "note: {n}")?;
        }
        for e in &errors {
            writeln!(err, "error: {}", e.message)?;
        }
    }
    Ok(if !errors.is_empty() {
        Exit::Error
    } else if summary.errors > 0 {
        Exit::Failure
    } else {
        Exit::Success
    })
}

/// The report of a SPIFFE bundle's own findings (the `spiffe-bundle-*` rules); its `x509-svid`
/// certificates go to `certs`, named `FILE (x509-svid key #N)`, to be linted as certificates.
fn bundle_report(obj: &Object, certs: &mut Vec<Object>) -> Result<Report> {
    let doc = pki::spiffe_bundle::BundleDocument::read(&obj.der)
        .map_err(|e| anyhow::anyhow!("{}: {e}", obj.source))?;
    for key in doc.keys.iter().filter(|k| k.is_x509_svid()) {
        for (i, der) in key.x5c.iter().enumerate() {
            if input::parse("x5c", der).is_ok_and(|p| p.objects[0].kind == Kind::Certificate) {
                certs.push(Object {
                    kind: Kind::Certificate,
                    der: der.clone(),
                    source: format!("{} (x509-svid key #{})", obj.source, key.index),
                    index: i + 1,
                });
            }
        }
    }
    Ok(Report {
        file: obj.source.clone(),
        index: obj.index,
        subject: format!("SPIFFE bundle of {} keys", doc.keys.len()),
        profile: "spiffe-bundle",
        findings: bundle_findings(&doc),
    })
}

/// Lints `certs`, with `issuers` and the certificates themselves as candidate issuers (a chain
/// file lints as a whole). Each certificate is parsed once to be linted and once as a
/// candidate, and each finds its issuer by a hash lookup: the work is linear in the input.
pub fn lint_all(
    certs: &[Object],
    issuers: &[Vec<u8>],
    policy: &Policy,
) -> Result<(Vec<Report>, IndexStats)> {
    let index = IssuerIndex::new(
        issuers
            .iter()
            .map(Vec::as_slice)
            .chain(certs.iter().map(|c| c.der.as_slice())),
    );
    let mut reports = Vec::with_capacity(certs.len());
    for obj in certs {
        let mut report = lint_certificate(&obj.der, &index, policy)?;
        report.file = obj.source.clone();
        report.index = obj.index;
        reports.push(report);
    }
    Ok((reports, index.stats()))
}

fn text(reports: &[Report], summary: &Summary) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for r in reports {
        let file = if r.file == "-" { "<stdin>" } else { &r.file };
        let subject = if r.subject.is_empty() {
            "(empty subject)"
        } else {
            &r.subject
        };
        let _ = writeln!(s, "{file} #{}: {subject} ({} profile)", r.index, r.profile);
        if r.findings.is_empty() {
            let _ = writeln!(s, "  ok: no findings");
        }
        for f in &r.findings {
            let _ = writeln!(s, "  {:<7} {}: {}", f.severity.as_str(), f.rule, f.message);
            let _ = writeln!(s, "          fix: {}", f.fix);
        }
    }
    let bundles = match summary.spiffe_bundles {
        0 => String::new(),
        n => format!(" and {n} SPIFFE bundle{}", plural(n)),
    };
    let _ = writeln!(
        s,
        "{} certificate{}{bundles}: {} error{}, {} warning{}",
        summary.certificates,
        plural(summary.certificates),
        summary.errors,
        plural(summary.errors),
        summary.warnings,
        plural(summary.warnings)
    );
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `lint --list-rules`: every rule with its severity, what it checks and the fix.
pub fn list_rules(format: Format, out: &mut dyn Write) -> Result<Exit> {
    if format == Format::Json {
        #[derive(Serialize)]
        struct RulesDocument {
            schema: &'static str,
            rules: &'static [Rule],
        }
        let doc = RulesDocument {
            schema: "mtls-inspect.lint-rules/v1",
            rules: RULES,
        };
        out.write_all(render_json::to_json(&doc)?.as_bytes())?;
    } else {
        for r in RULES {
            writeln!(out, "{:<34} {:<7} {}", r.id, r.severity.as_str(), r.checks)?;
            writeln!(out, "{:<34} {:<7} fix: {}", "", "", r.fix)?;
        }
    }
    Ok(Exit::Success)
}
