//! `audit verify` for federated trust domains: replays `federation_add`, `federation_remove`
//! and `federation_bundle` into the federations they imply and compares them with the
//! `federations` table both ways, so a federation inserted, kept after its removal, or a
//! bundle swapped behind the log's back (a foreign root the CA would then vouch for) shows.

use std::collections::BTreeMap;

use serde_json::Value;

use super::federations::FederationRecord;

/// A federation as the chain describes it.
struct Federation {
    /// The `federation_add` entry.
    seq: i64,
    endpoint: String,
    endpoint_spiffe_id: String,
    fingerprint: String,
    created_at: i64,
    /// SHA-256 of the last bundle stored, and the entry that stored it.
    bundle: Option<(String, i64)>,
}

#[derive(Default)]
pub struct FederationReplay {
    live: BTreeMap<String, Federation>,
}

fn text(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("lacks the field {key:?}"))
}

impl FederationReplay {
    /// Applies one federation event; Ok(false) for an event that is not one.
    pub fn apply(&mut self, seq: i64, event: &str, v: &Value) -> Result<bool, String> {
        let td = match event {
            "federation_add" | "federation_remove" | "federation_bundle" => {
                text(v, "trust_domain")?
            }
            _ => return Ok(false),
        };
        match event {
            "federation_add" => {
                if let Some(first) = self.live.get(&td) {
                    return Err(format!(
                        "federates {td} again (entry {} federated it)",
                        first.seq
                    ));
                }
                let created_at = v
                    .get("created_at")
                    .and_then(Value::as_i64)
                    .ok_or("lacks the integer field \"created_at\"")?;
                self.live.insert(
                    td,
                    Federation {
                        seq,
                        endpoint: text(v, "endpoint")?,
                        endpoint_spiffe_id: text(v, "endpoint_spiffe_id")?,
                        fingerprint: text(v, "fingerprint")?,
                        created_at,
                        bundle: None,
                    },
                );
            }
            "federation_remove" => {
                self.live
                    .remove(&td)
                    .ok_or_else(|| format!("removes {td}, which is not federated"))?;
            }
            _ => {
                let federation = self
                    .live
                    .get_mut(&td)
                    .ok_or_else(|| format!("stores a bundle for {td}, which is not federated"))?;
                federation.bundle = Some((text(v, "bundle_sha256")?, seq));
            }
        }
        Ok(true)
    }

    /// Compares the table with the federations the chain implies.
    pub fn compare(mut self, rows: &[FederationRecord], problems: &mut Vec<String>) {
        for row in rows {
            let at = format!("federations row {}", row.trust_domain);
            let Some(f) = self.live.remove(&row.trust_domain) else {
                problems.push(format!(
                    "{at}: stored, but no live federation_add entry created it (row inserted, or \
                     kept after its removal)"
                ));
                continue;
            };
            let fields = [
                ("endpoint", &row.endpoint, &f.endpoint),
                (
                    "endpoint_spiffe_id",
                    &row.endpoint_spiffe_id,
                    &f.endpoint_spiffe_id,
                ),
                ("fingerprint", &row.fingerprint, &f.fingerprint),
            ];
            for (name, stored, logged) in fields {
                if stored != logged {
                    problems.push(format!(
                        "{at}: {name} is {stored:?}, entry {} recorded {logged:?}",
                        f.seq
                    ));
                }
            }
            if row.created_at != f.created_at {
                problems.push(format!(
                    "{at}: created_at is {}, entry {} recorded {}",
                    row.created_at, f.seq, f.created_at
                ));
            }
            let logged = f.bundle.as_ref().map(|(sha, _)| sha.clone());
            if row.bundle_sha256() != logged {
                problems.push(match &f.bundle {
                    Some((_, seq)) => format!(
                        "{at}: the stored bundle is not the one entry {seq} recorded (bundle \
                         replaced behind the log's back?)"
                    ),
                    None => format!(
                        "{at}: holds a bundle no federation_bundle entry recorded (bundle \
                         written behind the log's back?)"
                    ),
                });
            }
        }
        for (td, f) in self.live {
            problems.push(format!(
                "entry {} federated {td}, but the federations table has no such row (row \
                 deleted without a federation_remove?)",
                f.seq
            ));
        }
    }
}
