//! `mtls-ca entry create|list|show|delete`: registration entries in the data directory's
//! store (docs/cli.md, docs/ca-api.md "Agent API"); `create --from-file` reads many
//! (`entry_file`).

use anyhow::Context;
use mtls_ca::datadir::stored_trust_domain;
use std::path::Path;

use mtls_ca::registration::{self, BatchError, NewEntry};
use mtls_ca::store::{EntryRecord, Store};
use pki::clock::Clock;
use pki::timefmt::human;

use crate::cli::{EntryAction, ListFormat};

pub fn run(store: &dyn Store, action: EntryAction, clock: &dyn Clock) -> anyhow::Result<()> {
    match action {
        EntryAction::Create {
            from_file: Some(path),
            ..
        } => create_many(store, &path, clock)?,
        EntryAction::Create {
            parent: Some(parent),
            spiffe_id: Some(spiffe_id),
            selectors,
            ttl,
            dns,
            from_file: None,
        } => {
            let td = stored_trust_domain(store)?;
            let new = NewEntry {
                parent,
                spiffe_id,
                selectors,
                ttl,
                dns,
            };
            let entry = registration::create_entry(store, &td, &new, clock)?;
            eprintln!(
                "entry {} gives {} (SVID lifetime {}, DNS {:?}) to workloads of {} with {}",
                entry.id,
                entry.spiffe_id,
                human(time::Duration::seconds(entry.ttl_seconds)),
                entry.dns,
                entry.parent_id,
                entry.selectors.join(" ")
            );
            println!("{}", entry.id);
        }
        // Clap requires --parent and --spiffe-id unless --from-file is given.
        EntryAction::Create { .. } => {
            anyhow::bail!("entry create needs --parent and --spiffe-id, or --from-file")
        }
        EntryAction::List {
            parent,
            json,
            format,
        } => {
            let parent = parent.map(|p| p.to_string());
            let entries = store.list_entries(parent.as_deref())?;
            if json || matches!(format, ListFormat::Json) {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "revision": store.entry_revision()?,
                        "entries": entries,
                    }))?
                );
            } else {
                println!(
                    "{:<32}  {:<40}  {:<36}  {:<6}  SELECTORS",
                    "ID", "SPIFFE ID", "PARENT", "TTL"
                );
                for e in &entries {
                    println!(
                        "{:<32}  {:<40}  {:<36}  {:<6}  {}",
                        e.id,
                        e.spiffe_id,
                        e.parent_id,
                        human(time::Duration::seconds(e.ttl_seconds)),
                        e.selectors.join(" ")
                    );
                }
                eprintln!(
                    "{} entr{}",
                    entries.len(),
                    if entries.len() == 1 { "y" } else { "ies" }
                );
            }
        }
        EntryAction::Show { id } => {
            let entry = find(store, &id)?;
            println!("{}", serde_json::to_string_pretty(&entry)?);
        }
        EntryAction::Delete { id } => {
            let entry = find(store, &id)?;
            if !store
                .delete_entry(&id, "cli", clock.now())
                .context("deleting the entry")?
            {
                anyhow::bail!("entry {id} was deleted meanwhile");
            }
            eprintln!(
                "deleted entry {id}; {} can no longer obtain SVIDs for it. Those issued stay \
                 valid until they expire (within {}, or the CA's --max-duration if shorter; \
                 `mtls-ca revoke --spiffe-id {}` ends them now)",
                entry.parent_id,
                human(time::Duration::seconds(entry.ttl_seconds)),
                entry.spiffe_id
            );
        }
    }
    Ok(())
}

/// `entry create --from-file`: every line checked before any entry is stored
/// (`registration::create_entries`), then one ID per line on stdout in file order.
fn create_many(store: &dyn Store, path: &Path, clock: &dyn Clock) -> anyhow::Result<()> {
    let td = stored_trust_domain(store)?;
    let batch: Vec<(String, NewEntry)> = crate::entry_file::read(path)?
        .into_iter()
        .map(|(number, entry)| (format!("line {number}"), entry))
        .collect();
    let at = |index: usize| format!("--from-file {} {}", path.display(), batch[index].0);
    match registration::create_entries(store, &td, &batch, clock) {
        Ok(created) => {
            for entry in &created {
                println!("{}", entry.id);
            }
            eprintln!(
                "created {} entr{} from {}",
                created.len(),
                if created.len() == 1 { "y" } else { "ies" },
                path.display()
            );
            Ok(())
        }
        Err(BatchError::Refused { index, reason }) => {
            anyhow::bail!("{}: {reason}; no entry of the file was stored", at(index))
        }
        Err(BatchError::Store(reason)) => {
            anyhow::bail!("reading the stored entries: {reason}; no entry was stored")
        }
        Err(BatchError::Interrupted {
            index,
            created,
            reason,
        }) => {
            for entry in &created {
                println!("{}", entry.id);
            }
            anyhow::bail!(
                "{}: {reason}; the {} entries before it were stored (their IDs are on stdout), \
                 it and the rest were not: fix the cause and run the remaining lines again",
                at(index),
                created.len()
            )
        }
    }
}

fn find(store: &dyn Store, id: &str) -> anyhow::Result<EntryRecord> {
    store
        .find_entry(id)?
        .ok_or_else(|| anyhow::anyhow!("no entry {id} (see `mtls-ca entry list`)"))
}
