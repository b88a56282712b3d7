//! Human-readable output of `show`: one aligned block per object, or one line with `--short`.

use std::fmt::Write as _;

use crate::model::cert::SansView;
use crate::model::ext::ExtView;
use crate::model::{BundleView, CertView, CrlView, CsrView, ObjectView, OcspView};
use pki::timefmt::human;

const WIDTH: usize = 21;

/// `label: value` with values aligned in one column whatever the indent.
fn field(out: &mut String, indent: &str, label: &str, value: impl std::fmt::Display) {
    let label = format!("{label}:");
    let width = (WIDTH + 2)
        .saturating_sub(indent.len())
        .max(label.len() + 1);
    let _ = writeln!(out, "{indent}{label:<width$}{value}");
}

/// The full text block of one object.
pub fn render(view: &ObjectView) -> String {
    match view {
        ObjectView::Certificate(c) => certificate(c),
        ObjectView::Csr(c) => csr(c),
        ObjectView::Crl(c) => crl(c),
        ObjectView::OcspResponse(o) => ocsp(o),
        ObjectView::SpiffeBundle(b) => bundle(b),
    }
}

fn heading(kind: &str, file: &str, index: usize) -> String {
    let file = if file == "-" { "<stdin>" } else { file };
    format!("{kind} {file} #{index}\n")
}

fn certificate(c: &CertView) -> String {
    let mut out = heading("Certificate", &c.origin.file, c.origin.index);
    let i = "  ";
    field(&mut out, i, "Subject", or_empty(&c.subject));
    field(&mut out, i, "Issuer", or_empty(&c.issuer));
    field(&mut out, i, "Role", &c.role);
    if let Some(by) = &c.issued_by {
        field(&mut out, i, "Issued by", by);
    }
    if let Some(id) = &c.spiffe_id {
        field(&mut out, i, "SPIFFE ID", id);
    }
    field(
        &mut out,
        i,
        "Serial",
        format!("{} ({} bits)", c.serial, c.serial_bits),
    );
    field(&mut out, i, "Not before", &c.validity.not_before);
    field(&mut out, i, "Not after", &c.validity.not_after);
    field(
        &mut out,
        i,
        "Validity",
        format!(
            "{}, {} ({:.0}% of the {} lifetime used)",
            c.validity.status.as_str(),
            c.validity.relative,
            c.validity.lifetime_used_percent.floor(),
            human(time::Duration::seconds(c.validity.lifetime_seconds))
        ),
    );
    field(&mut out, i, "Public key", c.public_key.describe());
    field(&mut out, i, "SPKI SHA-256", &c.public_key.spki_sha256);
    field(
        &mut out,
        i,
        "Signature algorithm",
        &c.signature_algorithm.name,
    );
    sans(&mut out, "SANs", &c.sans, c.spiffe_id.as_deref());
    if c.version != 3 {
        field(&mut out, i, "Version", c.version);
    }
    extensions(&mut out, "Extensions", &c.extensions);
    field(&mut out, i, "SHA-256 fingerprint", &c.fingerprint_sha256);
    field(&mut out, i, "Client key", &c.client_key);
    out
}

fn csr(c: &CsrView) -> String {
    let mut out = heading("Certificate request", &c.origin.file, c.origin.index);
    let i = "  ";
    field(&mut out, i, "Subject", or_empty(&c.subject));
    if let Some(id) = &c.spiffe_id {
        field(&mut out, i, "SPIFFE ID", id);
    }
    field(&mut out, i, "Public key", c.public_key.describe());
    field(&mut out, i, "SPKI SHA-256", &c.public_key.spki_sha256);
    let sig = match c.signature_valid {
        Some(true) => "valid: signed by the key it carries",
        Some(false) => "INVALID: not signed by the key it carries",
        None => "not checked (unsupported algorithm)",
    };
    field(
        &mut out,
        i,
        "Signature algorithm",
        format!("{} ({sig})", c.signature_algorithm.name),
    );
    sans(&mut out, "Requested SANs", &c.sans, c.spiffe_id.as_deref());
    field(
        &mut out,
        i,
        "Requests CA",
        if c.requests_ca { "yes (CA:TRUE)" } else { "no" },
    );
    extensions(&mut out, "Requested extensions", &c.requested_extensions);
    if !c.other_attributes.is_empty() {
        field(
            &mut out,
            i,
            "Other attributes",
            c.other_attributes.join(", "),
        );
    }
    out
}

fn crl(c: &CrlView) -> String {
    let mut out = heading("CRL", &c.origin.file, c.origin.index);
    let i = "  ";
    field(&mut out, i, "Issuer", or_empty(&c.issuer));
    field(&mut out, i, "Version", c.version);
    field(&mut out, i, "This update", &c.this_update);
    match (&c.next_update, &c.relative) {
        (Some(n), Some(rel)) => field(
            &mut out,
            i,
            "Next update",
            format!("{n} ({}{rel})", if c.stale { "STALE, " } else { "" }),
        ),
        _ => field(&mut out, i, "Next update", "none"),
    }
    if let Some(n) = &c.crl_number {
        field(&mut out, i, "CRL number", n);
    }
    field(
        &mut out,
        i,
        "Signature algorithm",
        &c.signature_algorithm.name,
    );
    field(&mut out, i, "Revoked", c.revoked.len());
    for r in &c.revoked {
        let reason = r.reason.as_deref().unwrap_or("no reason given");
        let _ = writeln!(out, "    {}  at {}  {reason}", r.serial, r.revoked_at);
    }
    extensions(&mut out, "Extensions", &c.extensions);
    out
}

fn ocsp(o: &OcspView) -> String {
    let mut out = heading("OCSP response", &o.origin.file, o.origin.index);
    let i = "  ";
    field(&mut out, i, "Status", &o.status);
    if let Some(r) = &o.responder {
        field(&mut out, i, "Responder", r);
    }
    match o.signed_by {
        Some("issuer") => field(&mut out, i, "Signed by", "the issuing CA itself"),
        Some("delegated") => field(&mut out, i, "Signed by", "a delegated responder (below)"),
        Some(_) => field(
            &mut out,
            i,
            "Signed by",
            "a key none of the enclosed certificates holds (the issuer, or a responder the client must already know)",
        ),
        None => {}
    }
    for c in &o.signers {
        let _ = writeln!(
            out,
            "    {}{}, serial {}, issued by {}, valid {} to {}{}; OCSP signing EKU: {}; ocsp-nocheck: {}",
            if c.signed_this { "signer: " } else { "certificate: " },
            c.subject,
            c.serial_hex,
            c.issuer,
            c.not_before,
            c.not_after,
            if c.expired { " (EXPIRED)" } else { "" },
            if c.ocsp_signing { "yes" } else { "NO (clients refuse it)" },
            if c.nocheck { "yes" } else { "no" },
        );
    }
    if let Some(p) = &o.produced_at {
        field(&mut out, i, "Produced at", p);
    }
    if let Some(a) = &o.signature_algorithm {
        field(&mut out, i, "Signature algorithm", &a.name);
        field(
            &mut out,
            i,
            "Signature",
            "not checked by show (openssl ocsp -respin … -CAfile root.pem checks it)",
        );
    }
    if o.status == "successful" {
        field(&mut out, i, "Nonce", o.nonce.as_deref().unwrap_or("none"));
        field(&mut out, i, "Certificates", o.certificates);
        field(&mut out, i, "Answers", o.answers.len());
    }
    for a in &o.answers {
        let mut line = format!("    {}  {}", a.serial, a.status.to_uppercase());
        if let Some(at) = &a.revoked_at {
            line.push_str(&format!(
                " at {at}, {}",
                a.reason.as_deref().unwrap_or("no reason given")
            ));
        }
        line.push_str(&format!(
            "  (issuer by {}; this update {}",
            a.issuer_hash, a.this_update
        ));
        match (&a.next_update, &a.relative) {
            (Some(n), Some(rel)) => line.push_str(&format!(
                ", next update {n}: {}{rel})",
                if a.stale { "STALE, " } else { "" }
            )),
            _ => line.push_str(", no next update)"),
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

fn bundle(b: &BundleView) -> String {
    let mut out = heading("SPIFFE bundle", &b.origin.file, b.origin.index);
    let i = "  ";
    field(&mut out, i, "Sequence", opt(b.sequence));
    let hint = match (&b.refresh_hint_seconds, &b.refresh_hint) {
        (Some(s), Some(h)) => format!("{s} s ({h})"),
        _ => "none".into(),
    };
    field(&mut out, i, "Refresh hint", hint);
    field(&mut out, i, "X.509 authorities", b.x509_authorities);
    field(&mut out, i, "Keys", b.keys.len());
    for k in &b.keys {
        let mut line = vec![k.use_.clone().unwrap_or_else(|| "no use".into())];
        let key_type = [k.kty.as_deref(), k.crv.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !key_type.is_empty() {
            line.push(key_type);
        }
        if let Some(kid) = &k.kid {
            line.push(format!("kid {kid}"));
        }
        field(&mut out, "    ", &format!("#{}", k.index), line.join(", "));
        if let Some(t) = &k.thumbprint {
            field(
                &mut out,
                "      ",
                "Thumbprint",
                format!("{t} (RFC 7638, SHA-256)"),
            );
        }
        for c in &k.certificates {
            // The same description as a certificate file, without its heading line.
            for l in certificate(c).lines().skip(1) {
                let _ = writeln!(out, "    {l}");
            }
        }
    }
    if b.findings.is_empty() {
        field(&mut out, i, "Findings", "none");
    } else {
        let _ = writeln!(out, "  Findings:");
        for f in &b.findings {
            let _ = writeln!(
                out,
                "    {:<7} {}: {}",
                f.severity.as_str(),
                f.rule,
                f.message
            );
        }
    }
    out
}

fn opt(value: Option<u64>) -> String {
    value.map_or_else(|| "none".into(), |v| v.to_string())
}

fn or_empty(s: &str) -> &str {
    if s.is_empty() {
        "(empty)"
    } else {
        s
    }
}

fn sans(out: &mut String, label: &str, s: &SansView, spiffe_id: Option<&str>) {
    if s.is_empty() {
        field(out, "  ", label, "none");
        return;
    }
    let critical = if s.critical { " (critical)" } else { "" };
    let _ = writeln!(out, "  {label}{critical}:");
    let groups: [(&str, &Vec<String>); 5] = [
        ("URI", &s.uri),
        ("DNS", &s.dns),
        ("IP", &s.ip),
        ("email", &s.email),
        ("other", &s.other),
    ];
    for (kind, values) in groups {
        for v in values {
            let mark = if kind == "URI" && Some(v.as_str()) == spiffe_id {
                "  <- SPIFFE ID"
            } else {
                ""
            };
            field(out, "    ", kind, format!("{v}{mark}"));
        }
    }
}

fn extensions(out: &mut String, label: &str, exts: &[ExtView]) {
    if exts.is_empty() {
        field(out, "  ", label, "none");
        return;
    }
    let _ = writeln!(out, "  {label}:");
    for e in exts {
        let name = match &e.name {
            Some(n) => n.clone(),
            None => format!("{} (unknown)", e.oid),
        };
        let critical = if e.critical { " [critical]" } else { "" };
        let value = if e.name.as_deref() == Some("subjectAltName") {
            "see SANs".to_string()
        } else if e.value.is_empty() {
            "(empty)".to_string()
        } else {
            e.value.join(", ")
        };
        let _ = writeln!(out, "    {name}{critical}: {value}");
    }
}

/// One line per object for `--short`.
pub fn short(view: &ObjectView) -> String {
    match view {
        ObjectView::Certificate(c) => {
            let identity = c
                .spiffe_id
                .clone()
                .or_else(|| c.sans.dns.first().cloned())
                .or_else(|| c.sans.ip.first().cloned())
                .unwrap_or_else(|| "-".into());
            format!(
                "{}: certificate | {} | {identity} | {} | serial {} | {} until {} ({})",
                origin(&c.origin.file, c.origin.index),
                or_empty(&c.subject),
                c.public_key.describe(),
                c.serial_hex,
                c.validity.status.as_str(),
                c.validity.not_after,
                c.validity.relative
            )
        }
        ObjectView::Csr(c) => format!(
            "{}: certificate request | {} | {} | {} | signature {}",
            origin(&c.origin.file, c.origin.index),
            or_empty(&c.subject),
            c.spiffe_id.as_deref().unwrap_or("-"),
            c.public_key.describe(),
            match c.signature_valid {
                Some(true) => "valid",
                Some(false) => "INVALID",
                None => "not checked",
            }
        ),
        ObjectView::OcspResponse(o) => format!(
            "{}: OCSP response | {} | {}",
            origin(&o.origin.file, o.origin.index),
            o.status,
            o.answers
                .iter()
                .map(|a| format!("{} {}", a.serial_hex, a.status))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ObjectView::SpiffeBundle(b) => {
            let count = |u: &str| {
                b.keys
                    .iter()
                    .filter(|k| k.use_.as_deref() == Some(u))
                    .count()
            };
            format!(
                "{}: SPIFFE bundle | sequence {} | refresh hint {} | {} x509-svid, {} jwt-svid, {} other | {} finding{}",
                origin(&b.origin.file, b.origin.index),
                opt(b.sequence),
                b.refresh_hint.as_deref().unwrap_or("none"),
                count("x509-svid"),
                count("jwt-svid"),
                b.keys.len() - count("x509-svid") - count("jwt-svid"),
                b.findings.len(),
                if b.findings.len() == 1 { "" } else { "s" }
            )
        }
        ObjectView::Crl(c) => format!(
            "{}: CRL | {} | {} revoked | next update {}",
            origin(&c.origin.file, c.origin.index),
            or_empty(&c.issuer),
            c.revoked.len(),
            match (&c.next_update, &c.relative) {
                (Some(n), Some(rel)) => format!("{n} ({rel})"),
                _ => "none".into(),
            }
        ),
    }
}

fn origin(file: &str, index: usize) -> String {
    let file = if file == "-" { "<stdin>" } else { file };
    format!("{file}#{index}")
}
