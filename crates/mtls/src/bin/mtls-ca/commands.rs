//! The admin subcommands, working directly on the data directory.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use mtls_ca::admin;
use mtls_ca::audit;
use mtls_ca::datadir::{stored_trust_domain, DataDir};
use mtls_ca::pkcs11::TokenAccess;
use mtls_ca::store::{AuditCheck, AuditHead, Revoke, Store, StoreLocation};
use pki::clock::{Clock, SystemClock};
use pki::timefmt::rfc3339;
use time::OffsetDateTime;

use crate::cli::{AuditAction, Command, ListFormat};

pub fn run(
    data_dir: &Path,
    location: Option<&StoreLocation>,
    token_access: Option<TokenAccess>,
    cmd: Command,
) -> anyhow::Result<ExitCode> {
    let dir = DataDir::for_store(data_dir, location).with_token_access(token_access.clone());
    let Some(cmd) = crate::hierarchy::run(&dir, location, token_access.as_ref(), cmd)? else {
        return Ok(ExitCode::SUCCESS);
    };
    if let Command::Migrate = cmd {
        let version = dir.migrate(location)?;
        println!("schema version {version}: up to date");
        return Ok(ExitCode::SUCCESS);
    }
    match cmd {
        Command::MigrateStore { from, to } => return crate::copy::migrate_store(&from, &to),
        Command::Backup { to } => return crate::copy::backup(&dir, location, &to),
        _ => {}
    }
    let store = dir.open_existing(location)?;
    let store = store.as_ref();
    let clock = SystemClock;
    let now = clock.now();
    match cmd {
        Command::Root { action } => crate::root::run(&dir, store, action, now)?,
        Command::Token {
            action: Some(action),
            ..
        } => crate::tokens::run(store, action, now)?,
        Command::Token {
            action: None,
            create,
        } => {
            // clap requires --spiffe-id when no subcommand is given.
            let id = create
                .spiffe_id
                .context("--spiffe-id is required to create a token")?;
            let (dns, ips, ttl) = (create.dns, create.ips, create.ttl);
            let td = stored_trust_domain(store)?;
            let token = admin::create_token(store, &td, &id, &dns, &ips, ttl, &clock)?;
            eprintln!(
                "join token for {id} (DNS {:?}, IP {:?}), single use, expires {}",
                dns,
                ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                rfc3339(now + ttl)
            );
            println!("{token}");
        }
        Command::Revoke {
            serial,
            spiffe_id,
            reason,
        } => {
            match (serial, spiffe_id) {
                (Some(serial), _) => revoke_serial(store, &serial, reason.as_deref(), now)?,
                (None, Some(id)) => {
                    let revoked =
                        store.revoke_identity(&id.to_string(), reason.as_deref(), "cli", now)?;
                    for s in &revoked {
                        println!("{s}");
                    }
                    if revoked.is_empty() {
                        eprintln!(
                            "{id} has no live certificate; nothing revoked (see `mtls-ca list`)"
                        );
                    } else {
                        eprintln!(
                            "revoked {} live certificate(s) of {id}; the CA's next CRL lists them",
                            revoked.len()
                        );
                    }
                }
                // clap requires one of the two.
                (None, None) => anyhow::bail!("name the certificates: --serial or --spiffe-id"),
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
                        // The CA's OCSP responder certificate has no SPIFFE ID: say what it is.
                        let who = match c.kind {
                            mtls_ca::store::IssueKind::OcspResponder => "(OCSP responder)",
                            _ => c.spiffe_id.as_str(),
                        };
                        println!(
                            "{:<40}  {:<8}  {:<20}  {}",
                            c.serial,
                            c.status(now),
                            rfc3339(c.not_after),
                            who
                        );
                    }
                    eprintln!("{} certificate(s)", certs.len());
                }
            }
        }
        Command::Entry { action } => crate::entry::run(store, action, &clock)?,
        Command::Federation { action } => crate::federation::run(store, action, &clock)?,
        Command::Audit {
            action: AuditAction::Verify { expect_head },
        } => return audit_verify(store, expect_head),
        // Handled before the store is opened.
        Command::Migrate
        | Command::MigrateStore { .. }
        | Command::Backup { .. }
        | Command::Init { .. }
        | Command::Intermediate { .. } => {}
        Command::Audit {
            action: AuditAction::Head { format },
        } => {
            let head = store.audit_head()?.unwrap_or(AuditHead {
                seq: 0,
                hash: audit::GENESIS.to_string(),
            });
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string(&head)?),
                ListFormat::Text => println!("{}:{}", head.seq, head.hash),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Revokes one certificate and every live certificate renewed from it.
fn revoke_serial(
    store: &dyn Store,
    serial: &str,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    match store.revoke(serial, reason, "cli", now)? {
        Revoke::Done { revoked } => {
            for s in &revoked {
                println!("{s}");
            }
            let renewals: Vec<&String> = revoked.iter().filter(|s| **s != serial).collect();
            if revoked.first().map(String::as_str) == Some(serial) {
                eprintln!("revoked {serial}; the CA's next CRL lists it");
            } else {
                eprintln!("{serial} was already revoked");
            }
            if !renewals.is_empty() {
                eprintln!(
                    "also revoked {} certificate(s) renewed from it: {}",
                    renewals.len(),
                    renewals
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(())
        }
        Revoke::AlreadyRevoked => anyhow::bail!("certificate {serial} is already revoked"),
        Revoke::UnknownSerial => anyhow::bail!(
            "no certificate with serial {serial} was issued by this CA (see `mtls-ca list`)"
        ),
    }
}

/// Problems printed by `audit verify`; the count says how many more there are.
const MAX_SHOWN: usize = 50;

fn audit_verify(store: &dyn Store, expected: Option<(i64, String)>) -> anyhow::Result<ExitCode> {
    let mut tampered = false;
    match store.verify_audit().context("verifying the audit log")? {
        AuditCheck::Intact { entries, .. } => {
            println!("audit log intact: {entries} entries, hash chain verified, tables match it")
        }
        AuditCheck::Broken { seq, reason } => {
            println!("audit log TAMPERED at entry {seq}: {reason}");
            tampered = true;
        }
        AuditCheck::Mismatch { entries, problems } => {
            println!(
                "audit log TAMPERED: the tables disagree with the {entries}-entry hash chain \
                 ({} problem(s)):",
                problems.len()
            );
            for p in problems.iter().take(MAX_SHOWN) {
                println!("  {p}");
            }
            if problems.len() > MAX_SHOWN {
                println!("  ... and {} more", problems.len() - MAX_SHOWN);
            }
            tampered = true;
        }
    }
    if let Some((seq, hash)) = expected {
        let found = if seq == 0 {
            Some(audit::GENESIS.to_string())
        } else {
            store.audit_hash_at(seq)?
        };
        match found {
            None => {
                let last = store.audit_head()?.map(|h| h.seq).unwrap_or(0);
                println!(
                    "audit log TAMPERED: the expected head is entry {seq}, but the chain ends at \
                     entry {last}: entries were cut from its tail"
                );
                tampered = true;
            }
            Some(found) if found != hash => {
                println!(
                    "audit log TAMPERED: entry {seq} has hash {found}, not the expected {hash}: \
                     the chain was rewritten from there"
                );
                tampered = true;
            }
            Some(_) => println!("expected head {seq}:{hash} is in the chain"),
        }
    }
    Ok(if tampered {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
