//! `audit verify`: checks the hash chain, replays it into the tokens and certificates it
//! implies, and compares that with the tables both ways. Every row and every `revoked_at`,
//! `revoke_reason` and `used_at` must be implied by an entry with equal fields, and everything
//! the chain implies must be in the tables, so a cleared `revoked_at`, an inserted token row or
//! a deleted certificate row shows even though the chain itself is intact. Each stored PEM is
//! checked against its row too: the CRL is built from the `certs` table, so this is what makes
//! the CRL rest on verified state.
//!
//! Entries of the first format (no `"v"`) carry fewer fields; they are replayed with what they
//! have: a token is known by the 12-hex-digit prefix of its hash (`token_hash_prefix`) and
//! matches the row whose hash starts with it; the creation time of tokens, `not_before`,
//! `issued_at` and the token's `used_at` of certificates, and the time of revocations are not
//! compared for them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::entries::EntryRow;
use super::federations::FederationRecord;
use super::replay_federations::FederationReplay;
use super::rows::{AuditRow, CertRow, TokenRow};
use super::{AuditCheck, AuditHead};
use crate::audit;

/// Length of the token hash prefix the first entry format recorded.
const LEGACY_PREFIX_LEN: usize = 12;

/// Checks the chain, then the tables against it.
pub fn check(
    entries: &[AuditRow],
    tokens: &[TokenRow],
    certs: &[CertRow],
    registrations: &[EntryRow],
    federations: &[FederationRecord],
) -> AuditCheck {
    if let Some(broken) = check_chain(entries) {
        return broken;
    }
    let mut replay = Replay::default();
    for entry in entries {
        if let Err(problem) = replay.apply(entry) {
            replay
                .problems
                .push(format!("entry {} ({}): {problem}", entry.seq, entry.event));
        }
    }
    replay.compare_tokens(tokens);
    replay.compare_certs(certs);
    replay.compare_entries(registrations);
    let replayed = std::mem::take(&mut replay.federations);
    replayed.compare(federations, &mut replay.problems);
    for row in certs {
        check_pem(row, &mut replay.problems);
    }
    let entries_count = entries.len() as u64;
    if replay.problems.is_empty() {
        AuditCheck::Intact {
            entries: entries_count,
            head: entries.last().map(|e| AuditHead {
                seq: e.seq,
                hash: e.hash.clone(),
            }),
        }
    } else {
        AuditCheck::Mismatch {
            entries: entries_count,
            problems: replay.problems,
        }
    }
}

/// The first entry whose sequence, link or hash is wrong.
fn check_chain(entries: &[AuditRow]) -> Option<AuditCheck> {
    let mut prev = audit::GENESIS.to_string();
    for (expected_seq, e) in (1i64..).zip(entries) {
        let reason = if e.seq != expected_seq {
            format!("entry {expected_seq} is missing (found {} next)", e.seq)
        } else if e.prev_hash != prev {
            "its prev_hash does not match the previous entry's hash".into()
        } else if audit::entry_hash(&e.prev_hash, e.seq, &e.at, &e.event, &e.detail) != e.hash {
            "its content does not match its hash (the row was edited)".into()
        } else {
            prev = e.hash.clone();
            continue;
        };
        return Some(AuditCheck::Broken { seq: e.seq, reason });
    }
    None
}

/// A token as the chain describes it.
struct Token {
    /// The entry that created it.
    seq: i64,
    spiffe_id: String,
    dns: Value,
    ips: Value,
    created_at: Option<i64>,
    expires_at: i64,
    used: Option<Use>,
    /// The `token_revoke` entry (seq) and the time it recorded.
    revoked: Option<(i64, i64)>,
    matched: bool,
}

struct Use {
    seq: i64,
    at: Option<i64>,
    serial: String,
}

/// A certificate as the chain describes it.
struct Cert {
    seq: i64,
    spiffe_id: String,
    dns: Value,
    ips: Value,
    not_before: Option<i64>,
    not_after: i64,
    issued_at: Option<i64>,
    kind: &'static str,
    renewed_from: Option<String>,
    fingerprint: String,
    revoked: Option<Revocation>,
    matched: bool,
}

struct Revocation {
    seq: i64,
    at: Option<i64>,
    reason: Option<String>,
}

/// A registration entry as the chain describes it.
struct Registration {
    seq: i64,
    spiffe_id: String,
    parent_id: String,
    selectors: Value,
    ttl_seconds: i64,
    dns: Value,
    created_at: i64,
    /// The `entry_delete` entry that deleted it.
    deleted: Option<i64>,
    matched: bool,
}

#[derive(Default)]
struct Replay {
    /// Registration entries by ID.
    registrations: BTreeMap<String, Registration>,
    /// Keyed by the full token hash, or by its prefix for first-format entries.
    tokens: BTreeMap<String, Token>,
    certs: BTreeMap<String, Cert>,
    federations: FederationReplay,
    problems: Vec<String>,
}

fn text(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("lacks the field {key:?}"))
}

fn int(v: &Value, key: &str) -> Result<i64, String> {
    v.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("lacks the integer field {key:?}"))
}

fn list(v: &Value, key: &str) -> Result<Value, String> {
    match v.get(key) {
        Some(l @ Value::Array(_)) => Ok(l.clone()),
        _ => Err(format!("lacks the list field {key:?}")),
    }
}

/// A token hash shortened for messages (it is a hash of a secret, not the secret).
fn short(hash: &str) -> &str {
    &hash[..hash.len().min(LEGACY_PREFIX_LEN)]
}

fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(pki::timefmt::rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn opt_when(t: Option<i64>) -> String {
    t.map(when).unwrap_or_else(|| "NULL".into())
}

fn opt_text(t: &Option<String>) -> String {
    t.as_deref()
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|| "NULL".into())
}

impl Replay {
    fn apply(&mut self, e: &AuditRow) -> Result<(), String> {
        let v: Value =
            serde_json::from_str(&e.detail).map_err(|_| "its detail is not JSON".to_string())?;
        let v2 = match v.get("v") {
            None => false,
            Some(n) if n.as_u64() == Some(super::details::VERSION) => true,
            Some(n) => return Err(format!("unknown entry format v={n}")),
        };
        if self.federations.apply(e.seq, &e.event, &v)? {
            return Ok(());
        }
        match e.event.as_str() {
            "token" => self.token(e.seq, &v, v2),
            "token_revoke" => self.token_revoke(e.seq, &v),
            "issue" => self.cert(e.seq, &v, v2, "sign"),
            "renew" => self.cert(e.seq, &v, v2, "renew"),
            "revoke" => self.revoke(e.seq, &v, v2),
            "entry_create" => self.entry_create(e.seq, &v),
            "entry_delete" => self.entry_delete(e.seq, &v),
            "agent_svid" => self
                .agent_issue(&v)
                .and_then(|()| self.cert(e.seq, &v, v2, "agent")),
            "agent_jwt" => self.agent_issue(&v),
            "ocsp_responder" => self.cert(e.seq, &v, v2, "ocsp-responder"),
            // No table state: a refused agent request.
            "agent_refused" => Ok(()),
            // No table state: the CA's own in-memory certificate, and the theft alarm (its
            // revocations have their own entries).
            "api_cert" | "suspected_key_theft" => Ok(()),
            // Root rotation steps: their state is one metadata value (`root_rotation.rs`),
            // not table rows.
            "root_rotate" | "root_activate" | "root_retire" => Ok(()),
            other => Err(format!("unknown event {other:?}")),
        }
    }

    fn token(&mut self, seq: i64, v: &Value, v2: bool) -> Result<(), String> {
        let key = text(
            v,
            if v2 {
                "token_hash"
            } else {
                "token_hash_prefix"
            },
        )?;
        if let Some(first) = self.tokens.get(&key) {
            return Err(format!(
                "creates token {} again (entry {} created it)",
                short(&key),
                first.seq
            ));
        }
        let token = Token {
            seq,
            spiffe_id: text(v, "spiffe_id")?,
            dns: list(v, "dns")?,
            ips: list(v, "ips")?,
            created_at: if v2 {
                Some(int(v, "created_at")?)
            } else {
                None
            },
            expires_at: int(v, "expires_at")?,
            used: None,
            revoked: None,
            matched: false,
        };
        self.tokens.insert(key, token);
        Ok(())
    }

    /// An unused token revoked before use (format 2 only: the event is newer than format 1).
    fn token_revoke(&mut self, seq: i64, v: &Value) -> Result<(), String> {
        let hash = text(v, "token_hash")?;
        let at = int(v, "revoked_at")?;
        let token = self.tokens.get_mut(&hash).ok_or_else(|| {
            format!(
                "revokes token {}, which no earlier entry created",
                short(&hash)
            )
        })?;
        if let Some(used) = &token.used {
            return Err(format!(
                "revokes token {}, which entry {} redeemed",
                short(&hash),
                used.seq
            ));
        }
        if let Some((first, _)) = token.revoked {
            return Err(format!(
                "revokes token {} again (entry {first} revoked it)",
                short(&hash)
            ));
        }
        token.revoked = Some((seq, at));
        Ok(())
    }

    /// The implied token a redemption names: by full hash, or by a first-format prefix.
    fn token_key(&self, hash_or_prefix: &str) -> Option<String> {
        if self.tokens.contains_key(hash_or_prefix) {
            return Some(hash_or_prefix.to_string());
        }
        let prefix = short(hash_or_prefix);
        if self.tokens.contains_key(prefix) {
            return Some(prefix.to_string());
        }
        self.tokens
            .range(prefix.to_string()..)
            .next()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
    }

    fn cert(&mut self, seq: i64, v: &Value, v2: bool, kind: &'static str) -> Result<(), String> {
        let serial = text(v, "serial")?;
        if let Some(first) = self.certs.get(&serial) {
            return Err(format!(
                "issues serial {serial} again (entry {} issued it)",
                first.seq
            ));
        }
        let renewed_from = v
            .get("renewed_from")
            .and_then(Value::as_str)
            .map(str::to_string);
        if kind == "sign" {
            let (named, used_at) = if v2 {
                (text(v, "token_hash")?, Some(int(v, "used_at")?))
            } else {
                (text(v, "token_hash_prefix")?, None)
            };
            let key = self.token_key(&named).ok_or_else(|| {
                format!(
                    "redeems token {}, which no earlier entry created",
                    short(&named)
                )
            })?;
            let Some(token) = self.tokens.get_mut(&key) else {
                return Err(format!("redeems token {}, which is unknown", short(&named)));
            };
            if let Some(first) = &token.used {
                return Err(format!(
                    "redeems token {} again (entry {} redeemed it)",
                    short(&named),
                    first.seq
                ));
            }
            if let Some((revoked, _)) = token.revoked {
                return Err(format!(
                    "redeems token {}, which entry {revoked} revoked",
                    short(&named)
                ));
            }
            token.used = Some(Use {
                seq,
                at: used_at,
                serial: serial.clone(),
            });
        } else if kind == "renew" {
            let parent = renewed_from
                .as_deref()
                .ok_or("a renewal that names no renewed_from")?;
            if !self.certs.contains_key(parent) {
                return Err(format!("renews {parent}, which no earlier entry issued"));
            }
        }
        let cert = Cert {
            seq,
            spiffe_id: text(v, "spiffe_id")?,
            dns: list(v, "dns")?,
            ips: list(v, "ips")?,
            not_before: if v2 {
                Some(int(v, "not_before")?)
            } else {
                None
            },
            not_after: int(v, "not_after")?,
            issued_at: if v2 { Some(int(v, "issued_at")?) } else { None },
            kind,
            renewed_from,
            fingerprint: text(v, "fingerprint")?,
            revoked: None,
            matched: false,
        };
        self.certs.insert(serial, cert);
        Ok(())
    }

    fn entry_create(&mut self, seq: i64, v: &Value) -> Result<(), String> {
        let id = text(v, "id")?;
        if let Some(first) = self.registrations.get(&id) {
            return Err(format!(
                "creates entry {id} again (entry {} created it)",
                first.seq
            ));
        }
        let registration = Registration {
            seq,
            spiffe_id: text(v, "spiffe_id")?,
            parent_id: text(v, "parent_id")?,
            selectors: list(v, "selectors")?,
            ttl_seconds: int(v, "ttl_seconds")?,
            dns: list(v, "dns")?,
            created_at: int(v, "created_at")?,
            deleted: None,
            matched: false,
        };
        self.registrations.insert(id, registration);
        Ok(())
    }

    fn entry_delete(&mut self, seq: i64, v: &Value) -> Result<(), String> {
        let id = text(v, "id")?;
        let registration = self
            .registrations
            .get_mut(&id)
            .ok_or_else(|| format!("deletes entry {id}, which no earlier entry created"))?;
        if let Some(first) = registration.deleted {
            return Err(format!(
                "deletes entry {id} again (entry {first} deleted it)"
            ));
        }
        registration.deleted = Some(seq);
        Ok(())
    }

    /// An agent issuance must name a live entry of that agent at the time.
    fn agent_issue(&self, v: &Value) -> Result<(), String> {
        let id = text(v, "entry_id")?;
        let agent = text(v, "agent_id")?;
        let registration = self
            .registrations
            .get(&id)
            .ok_or_else(|| format!("issues for entry {id}, which no earlier entry created"))?;
        if let Some(deleted) = registration.deleted {
            return Err(format!(
                "issues for entry {id}, which entry {deleted} had deleted"
            ));
        }
        if registration.parent_id != agent {
            return Err(format!(
                "issues for entry {id} to {agent}, but its parent is {}",
                registration.parent_id
            ));
        }
        if text(v, "spiffe_id")? != registration.spiffe_id {
            return Err(format!(
                "issues {} for entry {id}, which names {}",
                text(v, "spiffe_id")?,
                registration.spiffe_id
            ));
        }
        Ok(())
    }

    fn compare_entries(&mut self, rows: &[EntryRow]) {
        for row in rows {
            let at = format!("entries row {}", row.id);
            let Some(r) = self.registrations.get_mut(&row.id).filter(|r| !r.matched) else {
                self.problems.push(format!(
                    "{at}: stored, but no audit entry created it (row inserted, or entries cut \
                     from the log)"
                ));
                continue;
            };
            r.matched = true;
            if let Some(deleted) = r.deleted {
                self.problems.push(format!(
                    "{at}: stored, but entry {deleted} deleted it (row restored?)"
                ));
                continue;
            }
            let mut diff = Diff::new(&at, r.seq, &mut self.problems);
            diff.text("spiffe_id", &row.spiffe_id, &r.spiffe_id);
            diff.text("parent_id", &row.parent_id, &r.parent_id);
            diff.json("selectors", &row.selectors, &r.selectors);
            diff.text(
                "ttl_seconds",
                &row.ttl_seconds.to_string(),
                &r.ttl_seconds.to_string(),
            );
            diff.json("dns", &row.dns, &r.dns);
            diff.time("created_at", row.created_at, r.created_at);
        }
        for (id, r) in &self.registrations {
            if !r.matched && r.deleted.is_none() {
                self.problems.push(format!(
                    "entry {} created registration entry {id}, but the entries table has no \
                     such row (row deleted without an entry_delete?)",
                    r.seq
                ));
            }
        }
    }

    fn revoke(&mut self, seq: i64, v: &Value, v2: bool) -> Result<(), String> {
        let serial = text(v, "serial")?;
        let at = if v2 {
            Some(int(v, "revoked_at")?)
        } else {
            None
        };
        let cert = self
            .certs
            .get_mut(&serial)
            .ok_or_else(|| format!("revokes {serial}, which no earlier entry issued"))?;
        if let Some(first) = &cert.revoked {
            return Err(format!(
                "revokes {serial} again (entry {} revoked it)",
                first.seq
            ));
        }
        cert.revoked = Some(Revocation {
            seq,
            at,
            reason: v.get("reason").and_then(Value::as_str).map(str::to_string),
        });
        Ok(())
    }

    fn compare_tokens(&mut self, rows: &[TokenRow]) {
        for row in rows {
            let at = format!("tokens row {}", short(&row.hash));
            let key = if self.tokens.contains_key(&row.hash) {
                row.hash.clone()
            } else {
                // A first-format entry knows only the prefix.
                short(&row.hash).to_string()
            };
            let Some(t) = self.tokens.get_mut(&key).filter(|t| !t.matched) else {
                self.problems.push(format!(
                    "{at}: stored, but no audit entry created it (row inserted, or entries cut \
                     from the log)"
                ));
                continue;
            };
            t.matched = true;
            let mut diff = Diff::new(&at, t.seq, &mut self.problems);
            diff.text("spiffe_id", &row.spiffe_id, &t.spiffe_id);
            diff.json("dns", &row.dns, &t.dns);
            diff.json("ips", &row.ips, &t.ips);
            if let Some(created) = t.created_at {
                diff.time("created_at", row.created_at, created);
            }
            diff.time("expires_at", row.expires_at, t.expires_at);
            match (row.used_at, &t.used) {
                // A link without a redemption would be answered by no sign, but it is still a
                // row the log does not account for.
                (None, None) => {
                    if let Some(serial) = &row.used_serial {
                        self.problems.push(format!(
                            "{at}: used_serial is {serial}, but no audit entry redeemed it"
                        ));
                    }
                }
                (Some(used), None) => self.problems.push(format!(
                    "{at}: used_at is {}, but no audit entry redeemed it",
                    when(used)
                )),
                (None, Some(u)) => self.problems.push(format!(
                    "{at}: used_at is NULL, but entry {} redeemed it (for {})",
                    u.seq, u.serial
                )),
                (Some(used), Some(u)) => {
                    let mut diff = Diff::new(&at, u.seq, &mut self.problems);
                    if let Some(expected) = u.at {
                        diff.time("used_at", used, expected);
                    }
                    diff.text(
                        "used_serial",
                        row.used_serial.as_deref().unwrap_or("NULL"),
                        &u.serial,
                    );
                }
            }
            match (row.revoked_at, t.revoked) {
                (None, None) => {}
                (Some(stored), None) => self.problems.push(format!(
                    "{at}: revoked_at is {}, but no audit entry revoked it",
                    when(stored)
                )),
                (None, Some((seq, _))) => self.problems.push(format!(
                    "{at}: revoked_at is NULL, but entry {seq} revoked it"
                )),
                (Some(stored), Some((seq, expected))) => {
                    Diff::new(&at, seq, &mut self.problems).time("revoked_at", stored, expected);
                }
            }
        }
        for (key, t) in &self.tokens {
            if !t.matched {
                self.problems.push(format!(
                    "entry {} created token {}, but the tokens table has no such row (row deleted?)",
                    t.seq,
                    short(key)
                ));
            }
        }
    }

    fn compare_certs(&mut self, rows: &[CertRow]) {
        for row in rows {
            let at = format!("certs row {}", row.serial);
            let Some(c) = self.certs.get_mut(&row.serial).filter(|c| !c.matched) else {
                self.problems.push(format!(
                    "{at}: stored, but its issue entry is missing (row inserted, or entries cut \
                     from the log)"
                ));
                continue;
            };
            c.matched = true;
            let mut diff = Diff::new(&at, c.seq, &mut self.problems);
            diff.text("spiffe_id", &row.spiffe_id, &c.spiffe_id);
            diff.json("dns", &row.dns, &c.dns);
            diff.json("ips", &row.ips, &c.ips);
            if let Some(nb) = c.not_before {
                diff.time("not_before", row.not_before, nb);
            }
            diff.time("not_after", row.not_after, c.not_after);
            if let Some(issued) = c.issued_at {
                diff.time("issued_at", row.issued_at, issued);
            }
            diff.text("kind", &row.kind, c.kind);
            diff.text(
                "renewed_from",
                &opt_text(&row.renewed_from),
                &opt_text(&c.renewed_from),
            );
            diff.text("fingerprint", &row.fingerprint, &c.fingerprint);
            match (row.revoked_at, &c.revoked) {
                (None, None) => {
                    if row.revoke_reason.is_some() {
                        self.problems.push(format!(
                            "{at}: revoke_reason is {}, but the certificate is not revoked",
                            opt_text(&row.revoke_reason)
                        ));
                    }
                }
                (None, Some(r)) => self.problems.push(format!(
                    "{at}: revoked_at is NULL, but entry {} revoked it at {} (un-revoked?)",
                    r.seq,
                    opt_when(r.at)
                )),
                (Some(revoked), None) => self.problems.push(format!(
                    "{at}: revoked_at is {}, but no audit entry revoked it",
                    when(revoked)
                )),
                (Some(revoked), Some(r)) => {
                    let mut diff = Diff::new(&at, r.seq, &mut self.problems);
                    if let Some(expected) = r.at {
                        diff.time("revoked_at", revoked, expected);
                    }
                    diff.text(
                        "revoke_reason",
                        &opt_text(&row.revoke_reason),
                        &opt_text(&r.reason),
                    );
                }
            }
        }
        for (serial, c) in &self.certs {
            if !c.matched {
                self.problems.push(format!(
                    "entry {} issued {serial}, but the certs table has no such row (row deleted?)",
                    c.seq
                ));
            }
        }
    }
}

/// Collects "`at`: `field` is X, but entry N recorded Y" for each differing field.
struct Diff<'a> {
    at: &'a str,
    seq: i64,
    problems: &'a mut Vec<String>,
}

impl<'a> Diff<'a> {
    fn new(at: &'a str, seq: i64, problems: &'a mut Vec<String>) -> Self {
        Diff { at, seq, problems }
    }

    fn push(&mut self, field: &str, stored: String, recorded: String) {
        self.problems.push(format!(
            "{}: {field} is {stored}, but entry {} recorded {recorded}",
            self.at, self.seq
        ));
    }

    fn text(&mut self, field: &str, stored: &str, recorded: &str) {
        if stored != recorded {
            self.push(field, stored.to_string(), recorded.to_string());
        }
    }

    fn time(&mut self, field: &str, stored: i64, recorded: i64) {
        if stored != recorded {
            self.push(field, when(stored), when(recorded));
        }
    }

    /// `stored` is the column's JSON text, `recorded` the entry's value.
    fn json(&mut self, field: &str, stored: &str, recorded: &Value) {
        match serde_json::from_str::<Value>(stored) {
            Ok(v) if &v == recorded => {}
            _ => self.push(field, stored.to_string(), recorded.to_string()),
        }
    }
}

/// The stored certificate must be what its row says: the CRL and the API hand out rows.
fn check_pem(row: &CertRow, problems: &mut Vec<String>) {
    let at = format!("certs row {}", row.serial);
    let der = match pki::pem::parse_certificates(row.pem.as_bytes()) {
        Ok(mut certs) if certs.len() == 1 => certs.remove(0),
        _ => {
            problems.push(format!("{at}: its pem is not exactly one certificate"));
            return;
        }
    };
    let fingerprint = pki::sha256_hex(&der);
    if fingerprint != row.fingerprint {
        problems.push(format!(
            "{at}: the SHA-256 of its pem is {fingerprint}, but its fingerprint is {} (pem \
             swapped or edited?)",
            row.fingerprint
        ));
    }
    let info = match pki::CertInfo::from_der(&der) {
        Ok(info) => info,
        Err(e) => {
            problems.push(format!("{at}: its pem does not parse: {e}"));
            return;
        }
    };
    let mut mismatch = |field: &str, in_pem: String, stored: String| {
        if in_pem != stored {
            problems.push(format!(
                "{at}: {field} is {stored}, but the certificate in its pem says {in_pem}"
            ));
        }
    };
    mismatch("serial", info.serial_hex.clone(), row.serial.clone());
    mismatch(
        "spiffe_id",
        // A certificate without one (the OCSP responder) is stored with "".
        info.spiffe_id()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        row.spiffe_id.clone(),
    );
    mismatch(
        "not_before",
        when(info.not_before.unix_timestamp()),
        when(row.not_before),
    );
    mismatch(
        "not_after",
        when(info.not_after.unix_timestamp()),
        when(row.not_after),
    );
    let dns: Vec<String> = serde_json::from_str(&row.dns).unwrap_or_default();
    mismatch("dns", format!("{:?}", info.dns), format!("{dns:?}"));
    let ips: Vec<std::net::IpAddr> = serde_json::from_str(&row.ips).unwrap_or_default();
    mismatch("ips", format!("{:?}", info.ips), format!("{ips:?}"));
}
