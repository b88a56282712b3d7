//! The lifetimes of the listed certificates as an inline SVG: one row per identity, one bar per
//! certificate from notBefore to notAfter (coloured by status), a dot where a renewal was
//! issued, a mark where a revocation took effect, and a dashed line at now. Overlapping
//! certificates of one identity (a rotation's overlap) alternate between two lanes.

use std::collections::BTreeMap;

use maud::{html, Markup};
use pki::timefmt::rfc3339;
use time::OffsetDateTime;

use crate::store::CertRecord;

const WIDTH: f64 = 1000.0;
const LABEL: f64 = 300.0;
const ROW: f64 = 24.0;
const LANE: f64 = 9.0;
const AXIS: f64 = 22.0;

/// The SVG for `certs` as of `now`; a note instead when there is nothing to draw.
pub fn render(certs: &[CertRecord], now: OffsetDateTime) -> Markup {
    let (Some(start), Some(last)) = (
        certs.iter().map(|c| c.not_before).min(),
        certs.iter().map(|c| c.not_after).max(),
    ) else {
        return html! { p.none { "No certificates." } };
    };
    let end = last.max(now);
    let span = (end - start).as_seconds_f64().max(1.0);
    let x = |t: OffsetDateTime| LABEL + (t - start).as_seconds_f64() / span * (WIDTH - LABEL - 4.0);
    let mut rows: BTreeMap<&str, Vec<&CertRecord>> = BTreeMap::new();
    for cert in certs {
        rows.entry(cert.spiffe_id.as_str()).or_default().push(cert);
    }
    let height = rows.len() as f64 * ROW + AXIS;
    let view_box = format!("0 0 {WIDTH} {height}");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) role="img"
            aria-label="certificate lifetimes per identity" {
            @for (row, (identity, certs)) in rows.iter().enumerate() {
                @let top = row as f64 * ROW + 3.0;
                text x="4" y=(fmt(top + 12.0)) { (identity) }
                @for (i, cert) in by_issue(certs).iter().enumerate() {
                    @let y = top + (i % 2) as f64 * (LANE + 1.0);
                    @let x0 = x(cert.not_before);
                    @let status = cert.status(now);
                    rect class=(status) x=(fmt(x0)) y=(fmt(y))
                        width=(fmt((x(cert.not_after) - x0).max(1.5))) height=(fmt(LANE)) {
                        title {
                            (identity) " · serial " (cert.serial) " · " (status) " · "
                            (rfc3339(cert.not_before)) " to " (rfc3339(cert.not_after))
                        }
                    }
                    @if cert.renewed_from.is_some() {
                        circle.renewal cx=(fmt(x(cert.issued_at))) cy=(fmt(y + LANE / 2.0)) r="3" {
                            title { "renewal issued " (rfc3339(cert.issued_at)) }
                        }
                    }
                    @if let Some(at) = cert.revoked_at {
                        line.revoked-at x1=(fmt(x(at))) x2=(fmt(x(at))) y1=(fmt(y - 1.0))
                            y2=(fmt(y + LANE + 1.0)) {
                            title { "revoked " (rfc3339(at)) }
                        }
                    }
                }
            }
            @let axis = rows.len() as f64 * ROW;
            line.now x1=(fmt(x(now))) x2=(fmt(x(now))) y1="0" y2=(fmt(axis)) {
                title { "now " (rfc3339(now)) }
            }
            text x=(fmt(LABEL)) y=(fmt(axis + 15.0)) { (rfc3339(start)) }
            text x=(fmt(WIDTH - 4.0)) y=(fmt(axis + 15.0)) text-anchor="end" { (rfc3339(end)) }
        }
    }
}

/// The certificates of one identity, oldest issue first (lanes alternate in that order).
fn by_issue<'a>(certs: &[&'a CertRecord]) -> Vec<&'a CertRecord> {
    let mut sorted = certs.to_vec();
    sorted.sort_by_key(|c| (c.issued_at, c.not_before));
    sorted
}

/// One decimal is plenty for a 1000-unit-wide drawing.
fn fmt(v: f64) -> String {
    format!("{v:.1}")
}
