//! The human-readable lines `mtls-server` and `mtls-client` print on stdout (the "real world
//! outcome" of docs/design.md §1, note 003).

use mesh::tls::HandshakeSummary;
use mesh::Credential;
use pki::timefmt::{human_std, rfc3339, until};

/// Lines describing our own certificate.
pub fn certificate_lines(tag: &str, cred: &Credential) -> Vec<String> {
    let now = time::OffsetDateTime::now_utc();
    let i = cred.info();
    let mut lines = vec![
        format!("[{tag}] Certificate:"),
        format!("  Identity: {}", cred.identity()),
        format!("  Serial: {}", cred.serial()),
        format!("  Subject: {}", i.subject),
        format!("  Issuer: {}", i.issuer),
    ];
    for u in &i.uris {
        lines.push(format!("  SAN URI: {u}"));
    }
    for d in &i.dns {
        lines.push(format!("  SAN DNS: {d}"));
    }
    for ip in &i.ips {
        lines.push(format!("  SAN IP: {ip}"));
    }
    lines.push(format!(
        "  Valid: {} to {}",
        rfc3339(i.not_before),
        rfc3339(i.not_after)
    ));
    lines.push(format!(
        "  Expires in: {}",
        human_std(until(i.not_after, now))
    ));
    lines.push(format!("  Client key: {}", i.client_key));
    lines
}

/// Lines describing a finished client handshake.
pub fn handshake_lines(tag: &str, summary: &HandshakeSummary, own_identity: &str) -> Vec<String> {
    let mut lines = vec![
        format!("[{tag}] TLS Handshake Details:"),
        format!("  TLS Version: {}", summary.version),
        format!("  Cipher Suite: {}", summary.suite),
        format!("  Key Exchange: {}", summary.group),
    ];
    if let Some(peer) = &summary.peer {
        lines.push(format!(
            "  Server Identity: {}",
            peer.spiffe_id
                .clone()
                .unwrap_or_else(|| "(no SPIFFE ID)".into())
        ));
        lines.push(format!("  Server Subject: {}", peer.subject));
        lines.push(format!("  Server Serial: {}", peer.serial));
        if !peer.dns.is_empty() || !peer.ips.is_empty() {
            let names: Vec<String> = peer.dns.iter().chain(peer.ips.iter()).cloned().collect();
            lines.push(format!("  Server Names: {}", names.join(", ")));
        }
        lines.push(format!("  Server Valid Until: {}", peer.not_after));
    }
    lines.push(format!("  Our Identity: {own_identity}"));
    lines
}

pub fn print(lines: &[String]) {
    for l in lines {
        println!("{l}");
    }
}
