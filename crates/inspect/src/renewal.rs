//! `mtls-inspect needs-renewal`: exit 0 when renewal is due, 1 when not, 2 on error (the
//! convention of `step certificate needs-renewal`), using the services' renewal maths.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use time::OffsetDateTime;

use crate::input;
use crate::render_json::{self, RENEWAL_SCHEMA};
use crate::{Exit, Format};
use pki::timefmt::{human, rfc3339};

/// What `mtls-inspect needs-renewal` was asked to do.
#[derive(Clone, Debug)]
pub struct RenewalArgs {
    /// The certificate file (its first certificate counts); `-` for stdin.
    pub cert: String,
    /// Renew once this share of the lifetime has elapsed (0 to 1).
    pub at_fraction: f64,
    /// The time to judge at.
    pub at: OffsetDateTime,
    /// Text or JSON.
    pub format: Format,
}

#[derive(Debug, Serialize)]
struct RenewalDocument {
    schema: &'static str,
    needs_renewal: bool,
    checked_at: String,
    subject: String,
    not_before: String,
    not_after: String,
    expired: bool,
    at_fraction: f64,
    /// When renewal becomes (or became) due.
    renew_at: String,
    /// Share of the lifetime elapsed at `checked_at`, 0 to 1.
    elapsed_fraction: f64,
}

/// Runs `needs-renewal`: exit 0 when renewal is due (or the certificate expired), 1 when not.
pub fn run(args: &RenewalArgs, out: &mut dyn Write) -> Result<Exit> {
    if !(0.0..=1.0).contains(&args.at_fraction) || args.at_fraction.is_nan() {
        bail!(
            "--at-fraction must be between 0 and 1 (got {})",
            args.at_fraction
        );
    }
    let certs = input::load_certificates(&args.cert, "certificate")?;
    let leaf = certs
        .first()
        .ok_or_else(|| anyhow!("{}: no certificate found", args.cert))?;
    let info = pki::CertInfo::from_der(leaf).map_err(|e| anyhow!("{e}"))?;
    let (nb, na, at) = (info.not_before, info.not_after, args.at);
    let due = pki::renewal::needs_renewal(at, nb, na, args.at_fraction);
    let renew_at = pki::renewal::renewal_time(nb, na, args.at_fraction, 0.0);
    let elapsed = 1.0 - pki::renewal::remaining_fraction(at, nb, na);
    let doc = RenewalDocument {
        schema: RENEWAL_SCHEMA,
        needs_renewal: due,
        checked_at: rfc3339(at),
        subject: info.subject.clone(),
        not_before: rfc3339(nb),
        not_after: rfc3339(na),
        expired: at > na,
        at_fraction: args.at_fraction,
        renew_at: rfc3339(renew_at),
        elapsed_fraction: (elapsed * 10_000.0).round() / 10_000.0,
    };
    match args.format {
        Format::Json => out.write_all(render_json::to_json(&doc)?.as_bytes())?,
        _ => {
            let pct = |x: f64| format!("{:.0}%", (x * 100.0).floor());
            let line = if at > na {
                format!(
                    "renewal due: the certificate expired {} ago ({})",
                    human(at - na),
                    doc.not_after
                )
            } else if due {
                format!(
                    "renewal due: {} of the lifetime has elapsed; renewal was due at {} ({} ago, at {})",
                    pct(elapsed),
                    doc.renew_at,
                    human(at - renew_at),
                    pct(args.at_fraction)
                )
            } else {
                format!(
                    "renewal not due: {} of the lifetime has elapsed; due at {} (in {}, at {})",
                    pct(elapsed),
                    doc.renew_at,
                    human(renew_at - at),
                    pct(args.at_fraction)
                )
            };
            writeln!(out, "{line}")?;
        }
    }
    Ok(if due { Exit::Success } else { Exit::Failure })
}
