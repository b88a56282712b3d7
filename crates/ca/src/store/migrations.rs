//! Versioned schema migrations, one small runner shared by both backends.
//!
//! Each backend lists its migrations in order (`sqlite_schema.rs`, `postgres_schema.rs`);
//! migration N brings the schema from version N-1 to N, and the version reached is kept in the
//! `meta` table under `schema_version` in the same transaction as the migration, so a crash
//! leaves either the old version or the new one. A database whose version is newer than every
//! migration this program knows was written by a newer CA: it is refused, never written to.
//!
//! Why not a migration crate (refinery, sqlx): one of them would have to drive both rusqlite
//! and tokio-postgres at the versions used here, and bring its own history table; the rule
//! needed is ten lines and must run inside the transaction and lock each backend already
//! takes (SQLite's IMMEDIATE transaction, PostgreSQL's advisory lock).

use super::{Result, StoreError};

/// The `meta` key that holds the schema version.
pub const VERSION_KEY: &str = "schema_version";

/// The versions to apply to a database at `found` to bring it to `migrations.len()`; refuses a
/// version newer than that. `what` names the database in the message.
pub fn pending(found: u32, migrations: &[&str], what: &str) -> Result<std::ops::Range<usize>> {
    let known = migrations.len();
    let found_index = found as usize;
    if found_index > known {
        return Err(StoreError::Setup(format!(
            "{what} has schema version {found}, but this mtls-ca knows versions up to {known}: \
             it was migrated by a newer mtls-ca; run that version (or newer) instead, since an \
             older one could misread what it stores"
        )));
    }
    Ok(found_index..known)
}

/// The migration (both backends) that lets `certs.kind` be `ocsp-responder`: no column or
/// constraint changes (the kind is free text), but an older mtls-ca reports such a row as a
/// corrupt store and its `audit verify` does not know the `ocsp_responder` event, so the
/// version moves on and an older program refuses the store instead of misreading it.
pub const MIGRATION_OCSP_RESPONDER_KIND: &str =
    "UPDATE meta SET value = value WHERE key = 'revocation_epoch';";

/// Parses a stored schema version (absent: 0, a database from before versioning).
pub fn parse_version(stored: Option<&str>) -> Result<u32> {
    match stored {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("meta {VERSION_KEY} {v:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_schema_is_refused_and_an_older_one_gets_the_rest() {
        let migrations = ["one", "two", "three"];
        assert_eq!(pending(0, &migrations, "db").unwrap(), 0..3);
        assert_eq!(pending(2, &migrations, "db").unwrap(), 2..3);
        assert_eq!(pending(3, &migrations, "db").unwrap(), 3..3);
        let err = pending(4, &migrations, "the CA database").unwrap_err();
        assert!(
            err.to_string().contains("schema version 4") && err.to_string().contains("up to 3"),
            "{err}"
        );
        assert_eq!(parse_version(None).unwrap(), 0);
        assert_eq!(parse_version(Some("2")).unwrap(), 2);
        assert!(parse_version(Some("x")).is_err());
    }
}
