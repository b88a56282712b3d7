//! Registration entries as the operator creates them (`mtls-ca entry create`): the rules an
//! entry must meet before it is stored (docs/ca-api.md "Agent API", docs/cli.md).

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
    let entry = EntryRecord {
        id: new_entry_id()?,
        spiffe_id: new.spiffe_id.to_string(),
        parent_id: new.parent.to_string(),
        selectors,
        ttl_seconds: new.ttl.whole_seconds(),
        dns,
        created_at,
    };
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
}
