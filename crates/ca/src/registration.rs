//! Registration entries as the operator creates them (`mtls-ca entry create`): the rules an
//! entry must meet before it is stored (docs/ca-api.md "Agent API", docs/cli.md).

use std::collections::HashMap;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use pki::clock::Clock;
use pki::selector::Selector;
use pki::{SpiffeId, TrustDomain};
use time::Duration;

use crate::admin::validate_dns_name;
use crate::store::{CreateEntry, EntryRecord, Store};

/// Lifetime of an entry's SVIDs when `--ttl` is not given: the CA's default `--cert-duration`.
pub const DEFAULT_ENTRY_TTL: Duration = Duration::hours(1);
/// Longest `--ttl` of an entry: the CA's default `--max-duration`. The running CA clamps every
/// SVID to its own `--max-duration` as well, so a CA started with a shorter one wins.
pub const MAX_ENTRY_TTL: Duration = Duration::hours(24);

/// An entry as asked for, before it is checked and stored.
pub struct NewEntry {
    /// The agent allowed to obtain it (`--parent`).
    pub parent: SpiffeId,
    /// The identity it gives (`--spiffe-id`).
    pub spiffe_id: SpiffeId,
    /// What a workload must show (`--selector`, at least one).
    pub selectors: Vec<Selector>,
    /// Lifetime of its SVIDs (`--ttl`).
    pub ttl: Duration,
    /// DNS SANs of its SVIDs (`--dns`).
    pub dns: Vec<String>,
}

/// Checks `new` against the rules, naming the option at fault, and stores it. A duplicate (same
/// parent, SPIFFE ID and selector set) is refused with the existing entry's ID.
pub fn create_entry(
    store: &dyn Store,
    trust_domain: &TrustDomain,
    new: &NewEntry,
    clock: &dyn Clock,
) -> anyhow::Result<EntryRecord> {
    let entry = record(trust_domain, new, clock)?;
    store_one(store, entry)
}

/// Why [`create_entries`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Entry `index` of the batch breaks a rule, repeats an earlier one of the batch, or
    /// exists already: nothing was stored.
    #[error("{reason}")]
    Refused {
        /// Its position in the batch (from 0).
        index: usize,
        /// What is wrong, naming the field (as its flag) at fault.
        reason: String,
    },
    /// The stored entries could not be read (to look for duplicates): nothing was stored.
    #[error("reading the stored entries: {0}")]
    Store(String),
    /// Storing entry `index` failed after the ones before it were stored (the store failed,
    /// or another process created the same entry meanwhile).
    #[error("{reason}")]
    Interrupted {
        /// Its position in the batch (from 0).
        index: usize,
        /// The entries stored before it, in batch order.
        created: Vec<EntryRecord>,
        /// Why storing it failed.
        reason: String,
    },
}

/// Creates every entry of `batch` in order, after checking all of them first: each against the
/// rules of [`create_entry`], and none may repeat another of the batch or an entry already
/// stored (same parent, SPIFFE ID and selector set). So a bad batch stores nothing; only a
/// failure of the store itself, or a duplicate created by another process between the check
/// and the write, stops a batch half-way ([`BatchError::Interrupted`]). Each entry comes with
/// a label for messages about it (`line 3` of a file).
pub fn create_entries<L: std::fmt::Display>(
    store: &dyn Store,
    trust_domain: &TrustDomain,
    batch: &[(L, NewEntry)],
    clock: &dyn Clock,
) -> Result<Vec<EntryRecord>, BatchError> {
    let refused = |index: usize, reason: String| BatchError::Refused { index, reason };
    let existing = store
        .list_entries(None)
        .map_err(|e| BatchError::Store(e.to_string()))?;
    let mut seen: HashMap<(String, String, Vec<String>), Origin> = existing
        .into_iter()
        .map(|e| {
            let origin = Origin::Stored(e.id.clone());
            (same_key(&e), origin)
        })
        .collect();
    let mut records = Vec::with_capacity(batch.len());
    for (index, (_, new)) in batch.iter().enumerate() {
        let entry = record(trust_domain, new, clock).map_err(|e| refused(index, e.to_string()))?;
        match seen.entry(same_key(&entry)) {
            std::collections::hash_map::Entry::Occupied(first) => {
                let what = match first.get() {
                    Origin::Stored(id) => format!("the stored entry {id}"),
                    Origin::Batch(i) => batch[*i].0.to_string(),
                };
                return Err(refused(
                    index,
                    format!(
                        "{what} already gives {} to {} for the same selectors",
                        entry.spiffe_id, entry.parent_id
                    ),
                ));
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Origin::Batch(index));
            }
        }
        records.push(entry);
    }
    let mut created = Vec::with_capacity(records.len());
    for (index, entry) in records.into_iter().enumerate() {
        match store_one(store, entry) {
            Ok(stored) => created.push(stored),
            Err(e) => {
                return Err(BatchError::Interrupted {
                    index,
                    created,
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(created)
}

/// Where an entry seen by [`create_entries`] comes from.
enum Origin {
    Stored(String),
    Batch(usize),
}

/// What makes two entries the same for the store (`Store::create_entry`): parent, SPIFFE ID
/// and the (sorted, deduplicated) selector set.
fn same_key(e: &EntryRecord) -> (String, String, Vec<String>) {
    (
        e.parent_id.clone(),
        e.spiffe_id.clone(),
        e.selectors.clone(),
    )
}

/// `new` checked and in its stored form: selectors sorted and deduplicated, DNS names
/// deduplicated (case-insensitively), a fresh ID.
fn record(
    trust_domain: &TrustDomain,
    new: &NewEntry,
    clock: &dyn Clock,
) -> anyhow::Result<EntryRecord> {
    check(trust_domain, new)?;
    let mut selectors: Vec<String> = new.selectors.iter().map(Selector::to_string).collect();
    selectors.sort();
    selectors.dedup();
    let mut dns: Vec<String> = Vec::new();
    for d in &new.dns {
        if !dns.iter().any(|seen| seen.eq_ignore_ascii_case(d)) {
            dns.push(d.clone());
        }
    }
    // Stored as Unix seconds: the record returned is the record read back.
    let now = clock.now();
    let created_at = now.replace_nanosecond(0).unwrap_or(now);
    Ok(EntryRecord {
        id: new_entry_id()?,
        spiffe_id: new.spiffe_id.to_string(),
        parent_id: new.parent.to_string(),
        selectors,
        ttl_seconds: new.ttl.whole_seconds(),
        dns,
        created_at,
    })
}

fn store_one(store: &dyn Store, entry: EntryRecord) -> anyhow::Result<EntryRecord> {
    match store.create_entry(&entry)? {
        CreateEntry::Created => Ok(entry),
        CreateEntry::Duplicate { id } => anyhow::bail!(
            "entry {id} already gives {} to {} for the same selectors; delete it first \
             (mtls-ca entry delete {id}) or change --selector",
            entry.spiffe_id,
            entry.parent_id
        ),
    }
}

fn check(td: &TrustDomain, new: &NewEntry) -> anyhow::Result<()> {
    if new.parent.trust_domain() != td || !new.parent.is_agent() {
        anyhow::bail!(
            "--parent {} is not an agent of this CA: it must be spiffe://{td}/agent/<name> \
             (the identity the agent enrolled with)",
            new.parent
        );
    }
    let id = &new.spiffe_id;
    if id.trust_domain() != td {
        anyhow::bail!(
            "--spiffe-id {id} is not in this CA's trust domain {td}; use spiffe://{td}/..."
        );
    }
    if id.is_reserved_for_ca() {
        anyhow::bail!(
            "--spiffe-id {id} is reserved for the CA's own API identity ({} and every ID under \
             it); choose another path, e.g. spiffe://{td}/service/NAME",
            td.ca_id()
        );
    }
    if id.is_in_agent_tree() {
        anyhow::bail!(
            "--spiffe-id {id} is in the agents' tree (spiffe://{td}/agent and below): an agent \
             may not obtain agent identities; agents enroll with a join token (mtls-ca token)"
        );
    }
    if new.selectors.is_empty() {
        anyhow::bail!(
            "at least one --selector is required (an entry without selectors would match no \
             workload), e.g. --selector unix:uid:1000"
        );
    }
    if new.ttl < Duration::seconds(1) || new.ttl > MAX_ENTRY_TTL {
        anyhow::bail!(
            "--ttl {} is out of range: the accepted range is 1s to {}",
            pki::timefmt::human(new.ttl),
            pki::timefmt::human(MAX_ENTRY_TTL)
        );
    }
    for d in &new.dns {
        validate_dns_name(d).map_err(|e| anyhow::anyhow!("--dns {e}"))?;
    }
    Ok(())
}

/// 128 random bits as 32 lowercase hex digits.
fn new_entry_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    Ok(hex::encode(bytes))
}

/// Whether `id` has the form of an entry ID (lets the CLI and API refuse junk before a lookup).
pub fn is_entry_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use pki::clock::SystemClock;
    use std::sync::Arc;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    fn entry() -> NewEntry {
        NewEntry {
            parent: id("spiffe://mesh.local/agent/node1"),
            spiffe_id: id("spiffe://mesh.local/service/web"),
            selectors: vec![
                Selector::parse("unix:uid:1000").unwrap(),
                Selector::parse("unix:gid:10").unwrap(),
            ],
            ttl: DEFAULT_ENTRY_TTL,
            dns: vec!["web.local".into()],
        }
    }

    #[test]
    fn entries_are_checked_stored_and_audited() {
        let store = MemoryStore::new(&[], Arc::new(SystemClock));
        let td = TrustDomain::parse("mesh.local").unwrap();
        let created = create_entry(&store, &td, &entry(), &SystemClock).unwrap();
        assert!(is_entry_id(&created.id));
        assert_eq!(created.selectors, ["unix:gid:10", "unix:uid:1000"]);
        assert_eq!(store.entry_revision().unwrap(), 1);
        assert_eq!(
            store.find_entry(&created.id).unwrap(),
            Some(created.clone())
        );

        // The same selector set in another order is a duplicate; nothing changes.
        let mut again = entry();
        again.selectors.reverse();
        let e = create_entry(&store, &td, &again, &SystemClock).unwrap_err();
        assert!(e.to_string().contains(&created.id), "{e}");
        assert_eq!(store.entry_revision().unwrap(), 1);

        type Change = Box<dyn Fn(&mut NewEntry)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "--parent",
                Box::new(|e| e.parent = id("spiffe://mesh.local/service/x")),
            ),
            (
                "--parent",
                Box::new(|e| e.parent = id("spiffe://mesh.local/agent/a/b")),
            ),
            (
                "--parent",
                Box::new(|e| e.parent = id("spiffe://other.td/agent/node1")),
            ),
            (
                "--spiffe-id",
                Box::new(|e| e.spiffe_id = id("spiffe://other.td/service/web")),
            ),
            (
                "--spiffe-id",
                Box::new(|e| e.spiffe_id = id("spiffe://mesh.local/ca")),
            ),
            (
                "--spiffe-id",
                Box::new(|e| e.spiffe_id = id("spiffe://mesh.local/ca/x")),
            ),
            (
                "--spiffe-id",
                Box::new(|e| e.spiffe_id = id("spiffe://mesh.local/agent/node2")),
            ),
            (
                "--spiffe-id",
                Box::new(|e| e.spiffe_id = id("spiffe://mesh.local/agent")),
            ),
            ("--selector", Box::new(|e| e.selectors.clear())),
            ("--ttl", Box::new(|e| e.ttl = Duration::hours(25))),
            ("--ttl", Box::new(|e| e.ttl = Duration::ZERO)),
            ("--dns", Box::new(|e| e.dns = vec!["a..b".into()])),
        ];
        for (flag, change) in cases {
            let mut bad = entry();
            bad.spiffe_id = id("spiffe://mesh.local/service/other");
            change(&mut bad);
            let e = create_entry(&store, &td, &bad, &SystemClock).unwrap_err();
            assert!(e.to_string().contains(flag), "{flag}: {e}");
        }
        assert_eq!(store.list_entries(None).unwrap().len(), 1);
        assert!(store
            .delete_entry(&created.id, "cli", SystemClock.now())
            .unwrap());
        assert!(!store
            .delete_entry(&created.id, "cli", SystemClock.now())
            .unwrap());
        assert_eq!(store.entry_revision().unwrap(), 2);
        assert!(matches!(
            store.verify_audit().unwrap(),
            crate::store::AuditCheck::Intact { entries: 2, .. }
        ));
    }

    #[test]
    fn a_batch_is_checked_whole_before_anything_is_stored() {
        let store = MemoryStore::new(&[], Arc::new(SystemClock));
        let td = TrustDomain::parse("mesh.local").unwrap();
        let stored = create_entry(&store, &td, &entry(), &SystemClock).unwrap();
        let numbered = |n: usize| {
            let mut e = entry();
            e.spiffe_id = id(&format!("spiffe://mesh.local/service/w{n}"));
            (format!("item {n}"), e)
        };
        let audit_len = |store: &MemoryStore| match store.verify_audit().unwrap() {
            crate::store::AuditCheck::Intact { entries, .. } => entries,
            other => panic!("{other:?}"),
        };
        let before = audit_len(&store);

        // A rule broken, a repeat inside the batch, a repeat of a stored entry: each names its
        // position and what it repeats, and nothing of the batch is stored.
        let mut bad_ttl = numbered(3);
        bad_ttl.1.ttl = Duration::hours(25);
        let mut reordered = numbered(0);
        reordered.1.selectors.reverse();
        reordered.0 = "item 9".into();
        type Batch = Vec<(String, NewEntry)>;
        let cases: Vec<(Batch, usize, &str)> = vec![
            (vec![numbered(0), numbered(1), bad_ttl], 2, "--ttl"),
            (
                vec![numbered(0), numbered(1), reordered],
                2,
                "item 0 already gives",
            ),
            (vec![numbered(0), ("stored".into(), entry())], 1, &stored.id),
        ];
        for (batch, at, names) in cases {
            match create_entries(&store, &td, &batch, &SystemClock).unwrap_err() {
                BatchError::Refused { index, reason } => {
                    assert_eq!(index, at, "{reason}");
                    assert!(reason.contains(names), "{reason}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(store.list_entries(None).unwrap().len(), 1);
            assert_eq!(audit_len(&store), before);
        }

        // A good batch is stored in order, each entry audited.
        let batch: Vec<(String, NewEntry)> = (0..3).map(numbered).collect();
        let created = create_entries(&store, &td, &batch, &SystemClock).unwrap();
        let ids: Vec<&str> = created.iter().map(|e| e.spiffe_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "spiffe://mesh.local/service/w0",
                "spiffe://mesh.local/service/w1",
                "spiffe://mesh.local/service/w2"
            ]
        );
        let listed: Vec<String> = store
            .list_entries(None)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        for e in &created {
            assert!(listed.contains(&e.id));
        }
        assert_eq!(audit_len(&store), before + 3);
    }
}
