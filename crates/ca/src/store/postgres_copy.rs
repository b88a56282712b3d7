//! Loading a copied store (`copy.rs`) into an empty PostgreSQL database, in one transaction
//! under the write lock: the target has everything or nothing.

use tokio_postgres::types::{ToSql, Type};

use super::copy::{Cell, Snapshot, TABLES};
use super::postgres::PostgresStore;
use super::postgres_ops::{col, pg, take_write_lock};
use super::{migrations, Result, StoreError};

/// Meta keys every migrated database holds before any CA used it: copied over, not refused.
const FRESH_META: &[&str] = &[
    migrations::VERSION_KEY,
    "revocation_epoch",
    "entry_revision",
];

impl PostgresStore {
    /// Copies every row of `snapshot` into this database, which must be empty (migrated, but
    /// never used by a CA: no token, certificate, entry or audit entry, no meta value beyond
    /// the schema's own). The schema version is the target's (the caller checked both match).
    pub fn load_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        self.run(async {
            let mut pooled = self.client().await?;
            let tx = pooled
                .transaction()
                .await
                .map_err(pg("starting a transaction"))?;
            take_write_lock(&tx).await?;
            for (table, _) in TABLES {
                let used: i64 = if *table == "meta" {
                    let fresh: Vec<String> = FRESH_META.iter().map(|k| k.to_string()).collect();
                    tx.query_one(
                        "SELECT count(*) FROM meta WHERE NOT (key = ANY($1))",
                        &[&fresh],
                    )
                    .await
                    .map_err(pg("checking that the target is empty"))
                    .and_then(|r| col(&r, 0))?
                } else {
                    tx.query_one(&format!("SELECT count(*) FROM {table}"), &[])
                        .await
                        .map_err(pg("checking that the target is empty"))
                        .and_then(|r| col(&r, 0))?
                };
                if used > 0 {
                    return Err(StoreError::Setup(format!(
                        "the target database {} is not empty ({table} has {used} row(s)): \
                         migrate-store only copies into a new database, it never merges two \
                         CAs' records; create an empty database and name that one",
                        self.name()
                    )));
                }
            }
            for (table, columns) in TABLES {
                let placeholders: Vec<String> =
                    (1..=columns.len()).map(|i| format!("${i}")).collect();
                let mut sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    columns.join(", "),
                    placeholders.join(", ")
                );
                if *table == "meta" {
                    // The fresh values (epochs at 0) give way to the source's; the schema
                    // version stays the target's.
                    sql.push_str(
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value \
                         WHERE meta.key <> 'schema_version'",
                    );
                }
                let stmt = tx.prepare(&sql).await.map_err(pg("preparing the copy"))?;
                for row in snapshot.rows(table) {
                    let params: Vec<Box<dyn ToSql + Sync + Send>> = row
                        .iter()
                        .zip(stmt.params())
                        .map(|(cell, ty)| -> Box<dyn ToSql + Sync + Send> {
                            match cell {
                                Cell::Int(n) => Box::new(*n),
                                Cell::Text(s) => Box::new(s.clone()),
                                // NULL typed as the column is.
                                Cell::Null if *ty == Type::INT8 => Box::new(None::<i64>),
                                Cell::Null => Box::new(None::<String>),
                            }
                        })
                        .collect();
                    let refs: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    tx.execute(&stmt, &refs)
                        .await
                        .map_err(pg("copying a row"))?;
                }
            }
            tx.commit().await.map_err(pg("committing"))?;
            Ok(())
        })
    }
}
