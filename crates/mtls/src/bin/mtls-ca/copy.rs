//! `mtls-ca migrate-store` and `mtls-ca backup`: copying a store elsewhere (docs/operations.md).

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use mtls_ca::datadir::DataDir;
use mtls_ca::store::copy::sqlite_to_postgres;
use mtls_ca::store::{backup_sqlite, AuditCheck, StoreLocation};

/// Copies the SQLite store at `from` into the empty PostgreSQL database `to`.
pub fn migrate_store(from: &Path, to: &str) -> anyhow::Result<ExitCode> {
    let copied = sqlite_to_postgres(from, to)?;
    for (table, rows) in &copied.counts {
        eprintln!("{table}: {rows} row(s) copied");
    }
    let head = copied
        .head
        .map(|h| format!("head {}:{}", h.seq, h.hash))
        .unwrap_or_else(|| "empty".into());
    println!(
        "copied {} into {}: audit chain verified there ({head})",
        from.display(),
        copied.target
    );
    Ok(ExitCode::SUCCESS)
}

/// Backs up the SQLite store of `dir` (or `--store sqlite:PATH`) to the new file `to`.
pub fn backup(
    dir: &DataDir,
    location: Option<&StoreLocation>,
    to: &Path,
) -> anyhow::Result<ExitCode> {
    if let Some(StoreLocation::Postgres(_)) = location {
        bail!(
            "backup copies a SQLite store; back up a PostgreSQL database with pg_dump \
             (docs/operations.md, \"Backup and restore\")"
        );
    }
    let src = dir.db();
    if !src.is_file() {
        bail!(
            "{} does not exist: give the CA's --data-dir (or its --store sqlite:PATH)",
            src.display()
        );
    }
    match backup_sqlite(&src, to)? {
        AuditCheck::Intact { entries, head } => {
            let head = head
                .map(|h| format!("head {}:{}", h.seq, h.hash))
                .unwrap_or_else(|| "empty".into());
            println!(
                "backed up {} to {}: {entries} audit entries, chain verified ({head})",
                src.display(),
                to.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        // backup_sqlite renames only an intact copy.
        other => bail!("the backup does not verify: {other:?}"),
    }
}
