//! The SQL of federated trust domains on PostgreSQL (see `federations.rs`); the same columns
//! and audit entries as `sqlite_federations.rs`.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::federations::{self, FederationRecord, StoredBundle};
use super::postgres_ops::{col, query_all, query_one, PgTx};
use super::Result;

/// Version 3 of the PostgreSQL schema.
pub const MIGRATION_FEDERATIONS: &str = "
CREATE TABLE federations (
    trust_domain TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    endpoint_spiffe_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    bundle TEXT,
    refreshed_at BIGINT
);";

const COLUMNS: &str =
    "trust_domain, endpoint, endpoint_spiffe_id, fingerprint, created_at, bundle, refreshed_at";

fn read(r: &Row) -> Result<FederationRecord> {
    Ok(FederationRecord {
        trust_domain: col(r, 0)?,
        endpoint: col(r, 1)?,
        endpoint_spiffe_id: col(r, 2)?,
        fingerprint: col(r, 3)?,
        created_at: col(r, 4)?,
        bundle: col(r, 5)?,
        refreshed_at: col(r, 6)?,
    })
}

pub async fn add(tx: &PgTx<'_>, f: &FederationRecord, actor: &str) -> Result<bool> {
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO federations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL, NULL)
                 ON CONFLICT (trust_domain) DO NOTHING"
            ),
            &[
                &f.trust_domain,
                &f.endpoint,
                &f.endpoint_spiffe_id,
                &f.fingerprint,
                &f.created_at,
            ],
            "storing the federation",
        )
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    tx.append_audit("federation_add", &federations::add_detail(f, actor))
        .await?;
    Ok(true)
}

pub async fn remove(tx: &PgTx<'_>, trust_domain: &str, actor: &str, now: i64) -> Result<bool> {
    let changed = tx
        .execute(
            "DELETE FROM federations WHERE trust_domain = $1",
            &[&trust_domain],
            "removing the federation",
        )
        .await?;
    if changed == 0 {
        return Ok(false);
    }
    tx.append_audit(
        "federation_remove",
        &federations::remove_detail(trust_domain, now, actor),
    )
    .await?;
    Ok(true)
}

pub async fn list(client: &impl GenericClient) -> Result<Vec<FederationRecord>> {
    query_all(
        client,
        &format!("SELECT {COLUMNS} FROM federations ORDER BY trust_domain"),
        &[],
        read,
        "reading federations",
    )
    .await
}

pub async fn store_bundle(
    tx: &PgTx<'_>,
    trust_domain: &str,
    bundle: &str,
    roots: &[String],
    sequence: Option<u64>,
    now: i64,
) -> Result<StoredBundle> {
    let stored: Option<Option<String>> = query_one(
        tx.tx,
        "SELECT bundle FROM federations WHERE trust_domain = $1 FOR UPDATE",
        &[&trust_domain],
        |r| col(r, 0),
        "reading the federated bundle",
    )
    .await?;
    let Some(stored) = stored else {
        return Ok(StoredBundle::Gone);
    };
    tx.execute(
        "UPDATE federations SET bundle = $2, refreshed_at = $3 WHERE trust_domain = $1",
        &[&trust_domain, &bundle, &now],
        "storing the federated bundle",
    )
    .await?;
    if stored.as_deref() == Some(bundle) {
        return Ok(StoredBundle::Unchanged);
    }
    tx.append_audit(
        "federation_bundle",
        &federations::bundle_detail(trust_domain, bundle, roots, sequence, now),
    )
    .await?;
    Ok(StoredBundle::Changed)
}
