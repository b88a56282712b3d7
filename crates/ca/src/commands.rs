//! The admin subcommands, working directly on the data directory.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use mtls_ca::admin;
use mtls_ca::authority::rfc3339;
use mtls_ca::datadir::{stored_trust_domain, DataDir};
use mtls_ca::store::{AuditCheck, Revoke, Store};
use pki::SpiffeId;
use time::OffsetDateTime;

use crate::cli::{AuditAction, Command, ListFormat};

pub fn run(data_dir: &Path, cmd: Command) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(data_dir);
    let store = dir.open_existing_store()?;
    let now = OffsetDateTime::now_utc();
    match cmd {
        Command::Token {
            spiffe_id,
            dns,
            ips,
            ttl,
        } => {
            let id = SpiffeId::parse(&spiffe_id)?;
            let td = stored_trust_domain(&store)?;
            let token = admin::create_token(&store, &td, &id, &dns, &ips, ttl, now)?;
            eprintln!(
                "join token for {id} (DNS {:?}, IP {:?}), single use, expires {}",
                dns,
                ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                rfc3339(now + ttl)
            );
            println!("{token}");
        }
        Command::Revoke { serial, reason } => {
            let serial = pki::serial::normalize_hex(&serial)?;
            if let Some(r) = &reason {
                if pki::crl::parse_reason(r).is_none() {
                    anyhow::bail!(
                        "unknown reason {r:?}; use one of {}",
                        pki::crl::REASONS.join(", ")
                    );
                }
            }
            match store.revoke(&serial, reason.as_deref(), "cli", now)? {
                Revoke::Done => eprintln!("revoked {serial}; the CA's next CRL lists it"),
                Revoke::AlreadyRevoked => anyhow::bail!("certificate {serial} is already revoked"),
                Revoke::UnknownSerial => anyhow::bail!("no certificate with serial {serial} was issued by this CA (see `mtls-ca list`)"),
            }
        }
        Command::List { format } => {
            let certs = store.list_certs()?;
            match format {
                ListFormat::Json => {
                    let list: Vec<serde_json::Value> = certs
                        .iter()
                        .map(|c| {
                            let mut v = serde_json::to_value(c).unwrap_or_default();
                            v["status"] = serde_json::Value::from(c.status(now));
                            v
                        })
                        .collect();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({"certificates": list}))?
                    );
                }
                ListFormat::Text => {
                    println!(
                        "{:<40}  {:<8}  {:<20}  SPIFFE ID",
                        "SERIAL", "STATUS", "NOT AFTER"
                    );
                    for c in &certs {
                        println!(
                            "{:<40}  {:<8}  {:<20}  {}",
                            c.serial,
                            c.status(now),
                            rfc3339(c.not_after),
                            c.spiffe_id
                        );
                    }
                    eprintln!("{} certificate(s)", certs.len());
                }
            }
        }
        Command::Audit {
            action: AuditAction::Verify,
        } => {
            return match store.verify_audit().context("verifying the audit log")? {
                AuditCheck::Intact { entries } => {
                    println!("audit log intact: {entries} entries, hash chain verified");
                    Ok(ExitCode::SUCCESS)
                }
                AuditCheck::Broken { seq, reason } => {
                    println!("audit log TAMPERED at entry {seq}: {reason}");
                    Ok(ExitCode::from(1))
                }
            };
        }
    }
    Ok(ExitCode::SUCCESS)
}
