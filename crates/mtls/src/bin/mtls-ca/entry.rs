//! `mtls-ca entry create|list|show|delete`: registration entries in the data directory's
//! store (docs/cli.md, docs/ca-api.md "Agent API").

use anyhow::Context;
use mtls_ca::datadir::stored_trust_domain;
use mtls_ca::registration::{self, NewEntry};
use mtls_ca::store::{EntryRecord, Store};
use pki::clock::Clock;
use pki::timefmt::human;

use crate::cli::{EntryAction, ListFormat};

pub fn run(store: &dyn Store, action: EntryAction, clock: &dyn Clock) -> anyhow::Result<()> {
    match action {
        EntryAction::Create {
            parent,
            spiffe_id,
            selectors,
            ttl,
            dns,
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

fn find(store: &dyn Store, id: &str) -> anyhow::Result<EntryRecord> {
    store
        .find_entry(id)?
        .ok_or_else(|| anyhow::anyhow!("no entry {id} (see `mtls-ca entry list`)"))
}
