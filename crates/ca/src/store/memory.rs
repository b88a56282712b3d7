//! The reference store: the tables in memory behind one `Mutex`, for unit tests of the
//! authority and as the plain statement of what every [`Store`] must do.
//!
//! It keeps the rows exactly as the SQLite store does (`rows.rs`: Unix seconds, JSON text),
//! writes the same audit entries (`details.rs`) and verifies them with the same replay
//! (`replay.rs`), so the two stores can be compared call by call. Guarantees, as far as a mutex
//! gives them:
//!
//! - **All or nothing.** Each write works on a copy of the tables that replaces them only when
//!   the call succeeds, so a refused or failed call changes nothing (a transaction).
//! - **One writer at a time.** The lock is held for the whole call, so the checks a call makes
//!   (token still unused, presented certificate still unrevoked, renewed once) hold when it
//!   writes, as SQLite's `IMMEDIATE` transactions give them.
//! - **The audit entry with its change.** Every mutation appends its entry in the same call.
//!
//! What it does not give: durability (everything is gone with the process) and sharing with
//! other processes (the CLI cannot see it). Nothing here is fast: a write copies the tables.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use pki::clock::Clock;
use time::OffsetDateTime;

use super::details::{self, RevokeCause, VERSION};
use super::entries::{AgentIssue, AgentIssued, AgentOutcome, CreateEntry, EntryRecord, EntryRow};
use super::federations::{self, FederationRecord, StoredBundle};
use super::rows::{json, ts, AuditRow, CertRow, TokenRow};
use super::sqlite_ops::{log_appended, Appended};
use super::token_revoke;
use super::{
    replay, AuditCheck, AuditHead, CertRecord, Presented, Redeem, RenewOutcome, RenewalRequest,
    Result, Revoke, RevokeToken, Store, StoreError, TokenRecord,
};
use crate::audit;

/// Every table of the store, as rows.
#[derive(Clone, Default)]
struct Tables {
    meta: BTreeMap<String, String>,
    tokens: BTreeMap<String, TokenRow>,
    certs: BTreeMap<String, CertRow>,
    entries: BTreeMap<String, EntryRow>,
    federations: BTreeMap<String, FederationRecord>,
    audit: Vec<AuditRow>,
}

/// The in-memory reference store (see the module documentation).
pub struct MemoryStore {
    tables: Mutex<Tables>,
    /// Set by [`MemoryStore::set_unavailable`]: every write and probe is refused with it.
    unavailable: Mutex<Option<String>>,
    /// Dates the audit entries.
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    /// An empty store holding `meta` (for example the trust domain), dating its audit entries
    /// by `clock`.
    pub fn new(meta: &[(&str, &str)], clock: Arc<dyn Clock>) -> MemoryStore {
        let mut tables = Tables::default();
        tables
            .meta
            .insert("revocation_epoch".to_string(), "0".to_string());
        tables
            .meta
            .insert("entry_revision".to_string(), "0".to_string());
        for (key, value) in meta {
            tables.meta.insert(key.to_string(), value.to_string());
        }
        MemoryStore {
            tables: Mutex::new(tables),
            unavailable: Mutex::new(None),
            clock,
        }
    }

    /// Makes the store behave like a database file removed while the CA runs: with a reason,
    /// every write and health probe is refused with [`StoreError::Unavailable`]; with None it
    /// works again.
    pub fn set_unavailable(&self, reason: Option<&str>) {
        *lock(&self.unavailable) = reason.map(str::to_string);
    }

    fn read<T>(&self, f: impl FnOnce(&Tables) -> T) -> T {
        f(&lock(&self.tables))
    }

    /// Runs `f` on a copy of the tables and keeps the copy only when `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&mut Tx) -> Result<T>) -> Result<T> {
        let mut tables = lock(&self.tables);
        if let Some(reason) = lock(&self.unavailable).clone() {
            return Err(StoreError::Unavailable(reason));
        }
        let mut tx = Tx {
            t: tables.clone(),
            at: pki::timefmt::rfc3339(self.clock.now()),
            appended: Vec::new(),
        };
        let out = f(&mut tx)?;
        *tables = tx.t;
        drop(tables);
        log_appended(&tx.appended);
        Ok(out)
    }
}

/// The `meta` key of the last CRL number handed out.
const CRL_NUMBER: &str = "crl_number";

/// A poisoned lock means a thread panicked in a call; the tables it guards were only ever
/// replaced whole, so they are consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One write in progress: the copy of the tables and the audit entries appended to it.
struct Tx {
    t: Tables,
    at: String,
    appended: Vec<Appended>,
}

impl Tx {
    fn append_audit(&mut self, event: &str, detail: &serde_json::Value) {
        let (last_seq, prev) = self
            .t
            .audit
            .last()
            .map(|e| (e.seq, e.hash.clone()))
            .unwrap_or((0, audit::GENESIS.to_string()));
        let seq = last_seq + 1;
        let detail = detail.to_string();
        let hash = audit::entry_hash(&prev, seq, &self.at, event, &detail);
        self.t.audit.push(AuditRow {
            seq,
            at: self.at.clone(),
            event: event.to_string(),
            detail,
            prev_hash: prev,
            hash: hash.clone(),
        });
        self.appended.push(Appended {
            seq,
            hash,
            event: event.to_string(),
        });
    }

    fn insert_cert(&mut self, c: &CertRecord) -> Result<()> {
        if self.t.certs.contains_key(&c.serial) {
            return Err(StoreError::Duplicate {
                table: "certs",
                key: c.serial.clone(),
            });
        }
        self.t.certs.insert(c.serial.clone(), cert_row(c));
        Ok(())
    }

    fn cert(&self, serial: &str) -> Result<Option<CertRecord>> {
        self.t
            .certs
            .get(serial)
            .cloned()
            .map(CertRow::into_record)
            .transpose()
    }

    /// Certificates renewed directly from `serial`, oldest first.
    fn children(&self, serial: &str) -> Result<Vec<CertRecord>> {
        let mut rows: Vec<&CertRow> = self
            .t
            .certs
            .values()
            .filter(|c| c.renewed_from.as_deref() == Some(serial))
            .collect();
        rows.sort_by(|a, b| (a.issued_at, &a.serial).cmp(&(b.issued_at, &b.serial)));
        rows.into_iter().map(|r| r.clone().into_record()).collect()
    }

    /// Serials renewed from `serial`, transitively, nearest first, each with whether it is
    /// live (unrevoked and unexpired at `now`).
    fn descendants(&self, serial: &str, now: i64) -> Vec<(String, bool)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut level = vec![serial.to_string()];
        while !level.is_empty() {
            let mut next: Vec<&CertRow> = self
                .t
                .certs
                .values()
                .filter(|c| {
                    c.renewed_from.as_ref().is_some_and(|p| level.contains(p))
                        && !seen.contains(&c.serial)
                })
                .collect();
            next.sort_by(|a, b| (a.issued_at, &a.serial).cmp(&(b.issued_at, &b.serial)));
            level = Vec::new();
            for c in next {
                seen.insert(c.serial.clone());
                out.push((c.serial.clone(), live(c, now)));
                level.push(c.serial.clone());
            }
        }
        out
    }

    /// The sign-issued certificate `serial` descends from (itself when it was not renewed).
    fn lineage_root(&self, serial: &str) -> String {
        let mut current = serial.to_string();
        let mut seen = BTreeSet::new();
        while let Some(parent) = self
            .t
            .certs
            .get(&current)
            .and_then(|c| c.renewed_from.clone())
            .filter(|p| self.t.certs.contains_key(p))
        {
            // A loop only exists in a tampered table; stop where it closes.
            if !seen.insert(current.clone()) {
                break;
            }
            current = parent;
        }
        current
    }

    fn revoke_one(
        &mut self,
        serial: &str,
        reason: Option<&str>,
        actor: &str,
        now: i64,
        cause: RevokeCause<'_>,
    ) {
        if let Some(c) = self.t.certs.get_mut(serial) {
            c.revoked_at = Some(now);
            c.revoke_reason = reason.map(str::to_string);
        }
        self.append_audit(
            "revoke",
            &details::revoke(serial, now, reason, actor, cause),
        );
    }

    fn bump_entry_revision(&mut self) -> Result<()> {
        let revision = entry_revision(&self.t)?;
        self.t
            .meta
            .insert("entry_revision".to_string(), (revision + 1).to_string());
        Ok(())
    }

    fn bump_revocation_epoch(&mut self) -> Result<()> {
        let epoch = epoch(&self.t)?;
        self.t
            .meta
            .insert("revocation_epoch".to_string(), (epoch + 1).to_string());
        Ok(())
    }
}

fn live(c: &CertRow, now: i64) -> bool {
    c.revoked_at.is_none() && c.not_after > now
}

fn epoch(t: &Tables) -> Result<u64> {
    let v = t
        .meta
        .get("revocation_epoch")
        .cloned()
        .unwrap_or_else(|| "0".into());
    v.parse()
        .map_err(|_| StoreError::Corrupt(format!("revocation_epoch {v:?}")))
}

fn entry_revision(t: &Tables) -> Result<u64> {
    let v = t
        .meta
        .get("entry_revision")
        .cloned()
        .unwrap_or_else(|| "0".into());
    v.parse()
        .map_err(|_| StoreError::Corrupt(format!("entry_revision {v:?}")))
}

fn entry_row(e: &EntryRecord) -> EntryRow {
    EntryRow {
        id: e.id.clone(),
        spiffe_id: e.spiffe_id.clone(),
        parent_id: e.parent_id.clone(),
        selectors: json(&e.selectors),
        ttl_seconds: e.ttl_seconds,
        dns: json(&e.dns),
        created_at: ts(e.created_at),
    }
}

/// Entries oldest first, as the SQLite store orders them.
fn sorted_entries(t: &Tables, keep: impl Fn(&EntryRow) -> bool) -> Vec<EntryRow> {
    let mut rows: Vec<EntryRow> = t.entries.values().filter(|e| keep(e)).cloned().collect();
    rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    rows
}

fn cert_row(c: &CertRecord) -> CertRow {
    CertRow {
        serial: c.serial.clone(),
        spiffe_id: c.spiffe_id.clone(),
        dns: json(&c.dns),
        ips: json(&c.ips),
        not_before: ts(c.not_before),
        not_after: ts(c.not_after),
        issued_at: ts(c.issued_at),
        kind: c.kind.as_str().to_string(),
        renewed_from: c.renewed_from.clone(),
        fingerprint: c.fingerprint.clone(),
        pem: c.pem.clone(),
        revoked_at: None,
        revoke_reason: None,
    }
}

fn sorted_certs(
    t: &Tables,
    keep: impl Fn(&CertRow) -> bool,
    key: impl Fn(&CertRow) -> (i64, String),
) -> Vec<&CertRow> {
    let mut rows: Vec<&CertRow> = t.certs.values().filter(|c| keep(c)).collect();
    rows.sort_by_key(|c| key(c));
    rows
}

fn records(rows: Vec<&CertRow>) -> Result<Vec<CertRecord>> {
    rows.into_iter().map(|r| r.clone().into_record()).collect()
}

impl Store for MemoryStore {
    fn init_meta(&self, key: &str, value: &str) -> Result<String> {
        self.write(|tx| {
            Ok(tx
                .t
                .meta
                .entry(key.to_string())
                .or_insert_with(|| value.to_string())
                .clone())
        })
    }

    fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self.read(|t| t.meta.get(key).cloned()))
    }

    fn swap_meta(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        event: &str,
        detail: &serde_json::Value,
    ) -> Result<bool> {
        self.write(|tx| {
            if tx.t.meta.get(key).map(String::as_str) != expected {
                return Ok(false);
            }
            tx.t.meta.insert(key.to_string(), new.to_string());
            tx.append_audit(event, detail);
            Ok(true)
        })
    }

    fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        self.write(|tx| {
            if tx.t.tokens.contains_key(&token.hash) {
                return Err(StoreError::Duplicate {
                    table: "tokens",
                    key: token.hash.clone(),
                });
            }
            tx.t.tokens.insert(
                token.hash.clone(),
                TokenRow {
                    hash: token.hash.clone(),
                    spiffe_id: token.spiffe_id.clone(),
                    dns: json(&token.dns),
                    ips: json(&token.ips),
                    created_at: ts(token.created_at),
                    expires_at: ts(token.expires_at),
                    used_at: None,
                    used_serial: None,
                    revoked_at: None,
                },
            );
            tx.append_audit("token", &details::token(token));
            Ok(())
        })
    }

    fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        self.read(|t| t.tokens.get(hash).cloned())
            .map(TokenRow::into_record)
            .transpose()
    }

    fn redeem_token(&self, hash: &str, now: OffsetDateTime, cert: &CertRecord) -> Result<Redeem> {
        self.write(|tx| {
            let used_at = ts(now);
            match tx.t.tokens.get_mut(hash) {
                Some(token)
                    if token.used_at.is_none()
                        && token.revoked_at.is_none()
                        && token.expires_at > used_at =>
                {
                    token.used_at = Some(used_at);
                    token.used_serial = Some(cert.serial.clone());
                }
                _ => return Ok(Redeem::AlreadyUsed),
            }
            tx.insert_cert(cert)?;
            tx.append_audit("issue", &details::issue(cert, hash, used_at));
            Ok(Redeem::Done)
        })
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut rows: Vec<TokenRow> = self.read(|t| t.tokens.values().cloned().collect());
        rows.sort_by(|a, b| (a.created_at, &a.hash).cmp(&(b.created_at, &b.hash)));
        rows.into_iter().map(TokenRow::into_record).collect()
    }

    fn revoke_token(&self, id: &str, actor: &str, now: OffsetDateTime) -> Result<RevokeToken> {
        self.write(|tx| {
            let rows =
                tx.t.tokens
                    .values()
                    .filter(|t| t.hash.starts_with(id))
                    .cloned()
                    .collect();
            let mut row = match token_revoke::choose(rows)? {
                Ok(row) => row,
                Err(outcome) => return Ok(outcome),
            };
            let at = ts(now);
            row.revoked_at = Some(at);
            tx.t.tokens.insert(row.hash.clone(), row.clone());
            tx.append_audit("token_revoke", &details::token_revoke(&row.hash, at, actor));
            Ok(RevokeToken::Done(Box::new(row.into_record()?)))
        })
    }

    fn record_renewal(&self, r: &RenewalRequest<'_>) -> Result<RenewOutcome> {
        self.write(|tx| {
            let now = ts(r.now);
            let Some(presented) = tx.cert(r.presented_serial)? else {
                return Ok(RenewOutcome::Refused(Presented::Unknown));
            };
            if let Err(state) = presented.standing(r.presented_fingerprint, r.now) {
                return Ok(RenewOutcome::Refused(state));
            }
            let earlier = tx.children(r.presented_serial)?;
            if earlier.is_empty() {
                tx.insert_cert(r.cert)?;
                tx.append_audit("renew", &details::cert(r.cert));
                return Ok(RenewOutcome::Recorded);
            }
            for child in &earlier {
                if child.spki_sha256()? == r.new_key_sha256 {
                    return Ok(match child.revoked_at {
                        None => RenewOutcome::Existing(Box::new(child.clone())),
                        Some(_) => RenewOutcome::ExistingRevoked {
                            serial: child.serial.clone(),
                        },
                    });
                }
            }
            // Renewed before with another key: revoke the whole lineage.
            let root = tx.lineage_root(r.presented_serial);
            let root_live = tx.t.certs.get(&root).is_some_and(|c| live(c, now));
            let mut members = vec![(root.clone(), root_live)];
            members.extend(tx.descendants(&root, now));
            let revoked: Vec<String> = members
                .into_iter()
                .filter_map(|(serial, live)| live.then_some(serial))
                .collect();
            let renewed_as: Vec<String> = earlier.iter().map(|c| c.serial.clone()).collect();
            tx.append_audit(
                "suspected_key_theft",
                &serde_json::json!({
                    "v": VERSION,
                    "presented_serial": r.presented_serial,
                    "renewed_as": renewed_as,
                    "spiffe_id": presented.spiffe_id,
                    "revoked": revoked,
                }),
            );
            for serial in &revoked {
                tx.revoke_one(
                    serial,
                    Some("keyCompromise"),
                    "ca",
                    now,
                    RevokeCause::KeyTheft {
                        presented: r.presented_serial,
                    },
                );
            }
            if !revoked.is_empty() {
                tx.bump_revocation_epoch()?;
            }
            Ok(RenewOutcome::Replayed {
                renewed_as,
                revoked,
            })
        })
    }

    fn find_cert(&self, serial: &str) -> Result<Option<CertRecord>> {
        self.read(|t| t.certs.get(serial).cloned())
            .map(CertRow::into_record)
            .transpose()
    }

    fn list_certs(&self) -> Result<Vec<CertRecord>> {
        self.read(|t| {
            records(sorted_certs(
                t,
                |_| true,
                |c| (c.issued_at, c.serial.clone()),
            ))
        })
    }

    fn revoke(
        &self,
        serial: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Revoke> {
        self.write(|tx| {
            let now = ts(now);
            let Some(target) = tx.cert(serial)? else {
                return Ok(Revoke::UnknownSerial);
            };
            let mut revoked = Vec::new();
            if target.revoked_at.is_none() {
                tx.revoke_one(serial, reason, actor, now, RevokeCause::Requested);
                revoked.push(serial.to_string());
            }
            for (child, live) in tx.descendants(serial, now) {
                if live {
                    tx.revoke_one(&child, reason, actor, now, RevokeCause::Ancestor(serial));
                    revoked.push(child);
                }
            }
            if revoked.is_empty() {
                return Ok(Revoke::AlreadyRevoked);
            }
            tx.bump_revocation_epoch()?;
            Ok(Revoke::Done { revoked })
        })
    }

    fn revoke_identity(
        &self,
        spiffe_id: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<String>> {
        self.write(|tx| {
            let now = ts(now);
            let live: Vec<String> = sorted_certs(
                &tx.t,
                |c| c.spiffe_id == spiffe_id && live(c, now),
                |c| (c.issued_at, c.serial.clone()),
            )
            .into_iter()
            .map(|c| c.serial.clone())
            .collect();
            for serial in &live {
                tx.revoke_one(serial, reason, actor, now, RevokeCause::Identity);
            }
            if !live.is_empty() {
                tx.bump_revocation_epoch()?;
            }
            Ok(live)
        })
    }

    fn revoked_unexpired(&self, now: OffsetDateTime) -> Result<Vec<CertRecord>> {
        let now = ts(now);
        self.read(|t| {
            records(sorted_certs(
                t,
                |c| c.revoked_at.is_some() && c.not_after > now,
                |c| (c.revoked_at.unwrap_or(0), c.serial.clone()),
            ))
        })
    }

    fn revocation_epoch(&self) -> Result<u64> {
        self.read(epoch)
    }

    fn verify_audit(&self) -> Result<AuditCheck> {
        Ok(self.read(|t| {
            let mut tokens: Vec<TokenRow> = t.tokens.values().cloned().collect();
            tokens.sort_by(|a, b| (a.created_at, &a.hash).cmp(&(b.created_at, &b.hash)));
            let mut certs: Vec<CertRow> = t.certs.values().cloned().collect();
            certs.sort_by(|a, b| (a.issued_at, &a.serial).cmp(&(b.issued_at, &b.serial)));
            replay::check(
                &t.audit,
                &tokens,
                &certs,
                &sorted_entries(t, |_| true),
                &t.federations.values().cloned().collect::<Vec<_>>(),
            )
        }))
    }

    fn audit_head(&self) -> Result<Option<AuditHead>> {
        Ok(self.read(|t| {
            t.audit.last().map(|e| AuditHead {
                seq: e.seq,
                hash: e.hash.clone(),
            })
        }))
    }

    fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        Ok(self.read(|t| {
            t.audit
                .iter()
                .find(|e| e.seq == seq)
                .map(|e| e.hash.clone())
        }))
    }

    fn record_event(&self, event: &str, detail: &serde_json::Value) -> Result<()> {
        self.write(|tx| {
            tx.append_audit(event, detail);
            Ok(())
        })
    }

    fn record_ocsp_responder(&self, cert: &CertRecord) -> Result<()> {
        self.write(|tx| {
            tx.insert_cert(cert)?;
            tx.append_audit("ocsp_responder", &details::cert(cert));
            Ok(())
        })
    }

    fn create_entry(&self, entry: &EntryRecord) -> Result<CreateEntry> {
        self.write(|tx| {
            let row = entry_row(entry);
            if let Some(existing) = tx.t.entries.values().find(|e| {
                e.parent_id == row.parent_id
                    && e.spiffe_id == row.spiffe_id
                    && e.selectors == row.selectors
            }) {
                return Ok(CreateEntry::Duplicate {
                    id: existing.id.clone(),
                });
            }
            if tx.t.entries.contains_key(&row.id) {
                return Err(StoreError::Duplicate {
                    table: "entries",
                    key: row.id,
                });
            }
            tx.t.entries.insert(row.id.clone(), row);
            tx.bump_entry_revision()?;
            tx.append_audit("entry_create", &details::entry_create(entry));
            Ok(CreateEntry::Created)
        })
    }

    fn delete_entry(&self, id: &str, actor: &str, now: OffsetDateTime) -> Result<bool> {
        self.write(|tx| {
            if tx.t.entries.remove(id).is_none() {
                return Ok(false);
            }
            tx.bump_entry_revision()?;
            tx.append_audit("entry_delete", &details::entry_delete(id, ts(now), actor));
            Ok(true)
        })
    }

    fn find_entry(&self, id: &str) -> Result<Option<EntryRecord>> {
        self.read(|t| t.entries.get(id).cloned())
            .map(EntryRow::into_record)
            .transpose()
    }

    fn list_entries(&self, parent_id: Option<&str>) -> Result<Vec<EntryRecord>> {
        self.read(|t| sorted_entries(t, |e| parent_id.is_none_or(|p| e.parent_id == p)))
            .into_iter()
            .map(EntryRow::into_record)
            .collect()
    }

    fn entry_revision(&self) -> Result<u64> {
        self.read(entry_revision)
    }

    fn record_agent_issue(&self, r: &AgentIssue<'_>) -> Result<AgentOutcome> {
        self.write(|tx| {
            let Some(entry) = tx.t.entries.get(r.entry_id).cloned() else {
                return Ok(AgentOutcome::UnknownEntry);
            };
            if entry.parent_id != r.agent_id {
                return Ok(AgentOutcome::NotParent {
                    parent: entry.parent_id,
                });
            }
            let Some(agent) = tx.cert(r.agent_serial)? else {
                return Ok(AgentOutcome::Refused(Presented::Unknown));
            };
            if let Err(state) = agent.standing(r.agent_fingerprint, r.now) {
                return Ok(AgentOutcome::Refused(state));
            }
            if let AgentIssued::Svid(cert) = r.issued {
                tx.insert_cert(cert)?;
            }
            let (event, detail) = details::agent_issue(r, &entry.spiffe_id);
            tx.append_audit(event, &detail);
            Ok(AgentOutcome::Recorded)
        })
    }

    fn next_crl_number(&self, at_least: u64) -> Result<u64> {
        self.write(|tx| {
            let stored = match tx.t.meta.get(CRL_NUMBER) {
                Some(v) => Some(
                    v.parse::<u64>()
                        .map_err(|_| StoreError::Corrupt(format!("{CRL_NUMBER} {v:?}")))?,
                ),
                None => None,
            };
            let next = stored.map_or(at_least, |n| at_least.max(n.saturating_add(1)));
            tx.t.meta.insert(CRL_NUMBER.to_string(), next.to_string());
            Ok(next)
        })
    }

    fn add_federation(&self, federation: &FederationRecord, actor: &str) -> Result<bool> {
        self.write(|tx| {
            if tx.t.federations.contains_key(&federation.trust_domain) {
                return Ok(false);
            }
            let mut stored = federation.clone();
            stored.bundle = None;
            stored.refreshed_at = None;
            tx.t.federations
                .insert(federation.trust_domain.clone(), stored);
            tx.append_audit(
                "federation_add",
                &federations::add_detail(federation, actor),
            );
            Ok(true)
        })
    }

    fn remove_federation(
        &self,
        trust_domain: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        self.write(|tx| {
            if tx.t.federations.remove(trust_domain).is_none() {
                return Ok(false);
            }
            tx.append_audit(
                "federation_remove",
                &federations::remove_detail(trust_domain, ts(now), actor),
            );
            Ok(true)
        })
    }

    fn list_federations(&self) -> Result<Vec<FederationRecord>> {
        Ok(self.read(|t| t.federations.values().cloned().collect()))
    }

    fn store_federated_bundle(
        &self,
        trust_domain: &str,
        bundle: &str,
        roots: &[String],
        sequence: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<StoredBundle> {
        self.write(|tx| {
            let Some(row) = tx.t.federations.get_mut(trust_domain) else {
                return Ok(StoredBundle::Gone);
            };
            let changed = row.bundle.as_deref() != Some(bundle);
            row.bundle = Some(bundle.to_string());
            row.refreshed_at = Some(ts(now));
            if !changed {
                return Ok(StoredBundle::Unchanged);
            }
            tx.append_audit(
                "federation_bundle",
                &federations::bundle_detail(trust_domain, bundle, roots, sequence, ts(now)),
            );
            Ok(StoredBundle::Changed)
        })
    }

    fn health_probe(&self, now: OffsetDateTime) -> std::result::Result<(), String> {
        self.write(|tx| {
            tx.t.meta
                .insert("heartbeat".to_string(), ts(now).to_string());
            Ok(())
        })
        .map_err(|e| match e {
            StoreError::Unavailable(reason) => reason,
            other => other.to_string(),
        })
    }
}
