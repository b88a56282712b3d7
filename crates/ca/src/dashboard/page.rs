//! The dashboard's HTML. maud escapes every `(value)` it interpolates, so identities, SANs,
//! reasons and refusal messages (which may quote what an unauthenticated caller sent) can
//! only ever be text; `PreEscaped` is used for the stylesheet alone, a constant of this crate.

use axum::http::StatusCode;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use pki::timefmt::{human, rfc3339};
use time::OffsetDateTime;

use super::timeline;
use crate::authority::{AuditStatus, CrlStatus, Overview};
use crate::store::{AuditCheck, CertRecord};

/// The whole page for `overview`.
pub fn render(overview: &Overview, style: &str) -> String {
    let now = overview.now;
    let title = match &overview.filter {
        Some(id) => format!("{id} · mtls-ca dashboard"),
        None => "mtls-ca dashboard".to_string(),
    };
    let body = html! {
        header {
            h1 { "mtls-ca dashboard · " (overview.trust_domain) }
            p { "As of " (rfc3339(now)) ". Read-only; reload for a fresh view." }
        }
        main {
            (filter_form(overview))
            div.cards {
                (audit_panel(&overview.audit, now))
                (crl_panel(overview.crl.as_ref(), now))
                (summary_panel(overview))
            }
            (certificates_panel(overview))
            section #timeline {
                h2 { "Lifetimes and rotations" }
                (timeline::render(&overview.certs, now))
            }
            (revocations_panel(&overview.certs))
            (refusals_panel(overview))
        }
    };
    document(&title, style, body)
}

/// A refusal (401, 403, 503, ...) as a page: the status and the message the API would send.
pub fn refused(status: StatusCode, message: &str, style: &str) -> String {
    let body = html! {
        header { h1 { "mtls-ca dashboard" } }
        main {
            section #refused {
                h2 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p { (message) }
                p { "The dashboard is shown only to the CA's --admin-id identity, over mTLS \
                     (docs/dashboard.md)." }
            }
        }
    };
    document("mtls-ca dashboard: refused", style, body)
}

fn document(title: &str, style: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (PreEscaped(style)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

fn filter_form(overview: &Overview) -> Markup {
    let selected = |id: &str| overview.filter.as_deref() == Some(id);
    html! {
        section #filter-panel {
            form #filter method="get" action="/dashboard" {
                label for="id" { "Identity" }
                select #id name="id" {
                    option value="" selected[overview.filter.is_none()] { "all identities" }
                    @for id in &overview.identities {
                        option value=(id) selected[selected(id)] { (id) }
                    }
                    @if let Some(f) = &overview.filter {
                        @if !overview.identities.contains(f) {
                            option value=(f) selected { (f) " (no certificate)" }
                        }
                    }
                }
                button type="submit" { "Show" }
                @if overview.filter.is_some() {
                    a href="/dashboard" { "show all" }
                }
            }
        }
    }
}

fn audit_panel(audit: &AuditStatus, now: OffsetDateTime) -> Markup {
    let (class, verdict) = match &audit.check {
        AuditCheck::Intact { .. } => ("intact", "intact"),
        AuditCheck::Broken { .. } => ("broken", "broken"),
        AuditCheck::Mismatch { .. } => ("mismatch", "mismatch"),
    };
    html! {
        section #audit {
            h2 { "Audit chain" }
            dl {
                dt { "Status" }
                dd { span #audit-status class={"badge " (class)} { (verdict) } }
                dt { "Verified" }
                dd { (rfc3339(now)) " (hash chain recomputed and replayed against the tables)" }
                @match &audit.check {
                    AuditCheck::Intact { entries, .. } => {
                        dt { "Entries" } dd #audit-entries { (entries) }
                    }
                    AuditCheck::Broken { seq, reason } => {
                        dt { "First bad entry" } dd { (seq) ": " (reason) }
                    }
                    AuditCheck::Mismatch { entries, problems } => {
                        dt { "Entries" } dd #audit-entries { (entries) }
                        dt { "Problems" }
                        dd { ul { @for p in problems { li { (p) } } } }
                    }
                }
                dt { "Head" }
                dd {
                    @match &audit.head {
                        Some(head) => span.mono #audit-head { (head.seq) ":" (head.hash) },
                        None => span.none { "empty log" },
                    }
                }
            }
        }
    }
}

fn crl_panel(crl: Option<&CrlStatus>, now: OffsetDateTime) -> Markup {
    html! {
        section #crl {
            h2 { "CRL" }
            @match crl {
                None => p.none { "No CRL signed since the CA started; the first fetch of \
                                 /api/v1/crl signs one." },
                Some(crl) => dl {
                    dt { "Age" }
                    dd #crl-age { (human(now - crl.this_update)) " (thisUpdate " (rfc3339(crl.this_update)) ")" }
                    dt { "Next update" }
                    dd {
                        @match crl.next_update {
                            Some(next) if next <= now => {
                                span.badge.stale { "stale" } " since " (rfc3339(next))
                            }
                            Some(next) => { "in " (human(next - now)) " (" (rfc3339(next)) ")" }
                            None => "none",
                        }
                    }
                    dt { "Number" } dd.mono { (crl.number) }
                    dt { "Entries" } dd { (crl.entries) }
                    @if crl.outdated {
                        dt { "Note" }
                        dd { "a revocation was committed since; the next fetch re-signs it" }
                    }
                }
            }
        }
    }
}

fn summary_panel(overview: &Overview) -> Markup {
    let count = |status: &str| {
        overview
            .certs
            .iter()
            .filter(|c| c.status(overview.now) == status)
            .count()
    };
    html! {
        section #summary {
            h2 { "Certificates" }
            dl {
                dt { "Identities" } dd { (overview.identities.len()) }
                dt { "Valid" } dd { (count("valid")) }
                dt { "Expired" } dd { (count("expired")) }
                dt { "Revoked" } dd { (count("revoked")) }
            }
        }
    }
}

fn certificates_panel(overview: &Overview) -> Markup {
    let now = overview.now;
    html! {
        section #certificates {
            h2 { "Issued certificates (newest first)" }
            @if overview.certs.is_empty() {
                p.none { "No certificates." }
            } @else {
                table {
                    thead { tr {
                        th { "Identity" } th { "Serial" } th { "Kind" } th { "SANs" }
                        th { "Not after" } th { "Status" }
                    } }
                    tbody {
                        @for cert in &overview.certs {
                            (certificate_row(cert, now))
                        }
                    }
                }
                @if overview.not_listed > 0 {
                    p.none { (overview.not_listed) " older certificates not listed." }
                }
            }
        }
    }
}

fn certificate_row(cert: &CertRecord, now: OffsetDateTime) -> Markup {
    let status = cert.status(now);
    let sans: Vec<String> = cert
        .dns
        .iter()
        .cloned()
        .chain(cert.ips.iter().map(|ip| ip.to_string()))
        .collect();
    html! {
        tr data-status=(status) {
            td.mono.identity { (cert.spiffe_id) }
            td.mono.serial { (cert.serial) }
            td {
                (cert.kind.as_str())
                @if let Some(from) = &cert.renewed_from { br; span.mono { "from " (from) } }
            }
            td.mono.sans { (sans.join(", ")) }
            td { (rfc3339(cert.not_after)) }
            td { span class={"badge " (status)} { (status) } }
        }
    }
}

fn revocations_panel(certs: &[CertRecord]) -> Markup {
    let mut revoked: Vec<&CertRecord> = certs.iter().filter(|c| c.revoked_at.is_some()).collect();
    revoked.sort_by_key(|c| std::cmp::Reverse(c.revoked_at));
    html! {
        section #revocations {
            h2 { "Revocations" }
            @if revoked.is_empty() {
                p.none { "None." }
            } @else {
                table {
                    thead { tr { th { "Revoked at" } th { "Identity" } th { "Serial" } th { "Reason" } } }
                    tbody {
                        @for cert in revoked {
                            tr {
                                td { @if let Some(at) = cert.revoked_at { (rfc3339(at)) } }
                                td.mono.identity { (cert.spiffe_id) }
                                td.mono { (cert.serial) }
                                td { (cert.revoke_reason.as_deref().unwrap_or("unspecified")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn refusals_panel(overview: &Overview) -> Markup {
    html! {
        section #refusals {
            h2 { "Refusals" }
            @if overview.refusal_counts.is_empty() {
                p.none { "None since the CA started." }
            } @else {
                p {
                    "Since the CA started: "
                    @for (i, (code, n)) in overview.refusal_counts.iter().enumerate() {
                        @if i > 0 { ", " }
                        span.mono { (code) } " " (n)
                    }
                }
            }
            @if !overview.recent_refusals.is_empty() {
                table {
                    thead { tr { th { "At" } th { "Code" } th { "Message sent to the caller" } } }
                    tbody {
                        @for r in &overview.recent_refusals {
                            tr {
                                td { (rfc3339(r.at)) }
                                td.mono { (r.code) }
                                td.message { (r.message) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusals::Refusal;
    use crate::store::{AuditHead, IssueKind};

    const EVIL: &str = "<script>alert(1)</script>";

    fn cert(id: &str, serial: &str, dns: &str, now: OffsetDateTime) -> CertRecord {
        CertRecord {
            serial: serial.into(),
            spiffe_id: id.into(),
            dns: vec![dns.into()],
            ips: vec![],
            not_before: now - time::Duration::minutes(30),
            not_after: now + time::Duration::minutes(30),
            issued_at: now - time::Duration::minutes(30),
            kind: IssueKind::Sign,
            renewed_from: None,
            fingerprint: "00".into(),
            pem: String::new(),
            revoked_at: Some(now),
            revoke_reason: Some(format!("\"{EVIL}")),
        }
    }

    fn overview_with_markup_everywhere() -> Overview {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let id = format!("spiffe://mesh.local/{EVIL}");
        Overview {
            now,
            trust_domain: "mesh.local".into(),
            identities: vec![id.clone()],
            filter: Some("\"><script>x()</script>".to_string()),
            certs: vec![cert(&id, "0a", &format!("{EVIL}.example"), now)],
            not_listed: 0,
            audit: AuditStatus {
                check: AuditCheck::Mismatch {
                    entries: 3,
                    problems: vec![format!("row {EVIL}")],
                },
                head: Some(AuditHead {
                    seq: 3,
                    hash: "ab".into(),
                }),
            },
            crl: None,
            refusal_counts: vec![("token_used", 2)],
            recent_refusals: vec![Refusal {
                at: now,
                code: "bad_request",
                message: format!("requested_id {EVIL:?} is not a SPIFFE ID"),
            }],
        }
    }

    #[test]
    fn every_value_is_text_never_markup() {
        let page = render(&overview_with_markup_everywhere(), "body{}");
        // The only elements are the template's own: no script element, and the filter's value
        // stays inside its attribute (its quote is escaped).
        assert!(!page.contains("<script"), "{page}");
        assert!(
            page.contains("<option value=\"&quot;&gt;&lt;script&gt;x()&lt;/script&gt;\" selected>"),
            "{page}"
        );
        // ... and every value is still there, as text.
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;.example"),
            "{page}"
        );
        assert!(
            page.contains("spiffe://mesh.local/&lt;script&gt;"),
            "{page}"
        );
        assert!(page.contains("row &lt;script&gt;"), "{page}");
        assert!(page.contains("&quot;&gt;&lt;script&gt;x()"), "{page}");
        assert!(
            page.contains("&quot;&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        let refused = refused(StatusCode::FORBIDDEN, EVIL, "body{}");
        assert!(!refused.contains("<script"), "{refused}");
        assert!(refused.contains("403 Forbidden"), "{refused}");
    }

    #[test]
    fn a_revoked_certificate_is_marked_and_listed_under_revocations() {
        let page = render(&overview_with_markup_everywhere(), "body{}");
        assert!(page.contains("<tr data-status=\"revoked\">"), "{page}");
        assert!(page.contains("id=\"revocations\""), "{page}");
        assert!(page.contains("class=\"revoked\""), "{page}"); // the timeline's bar
        assert!(page.contains(">mismatch<"), "{page}");
    }
}
