//! Where the store lives, as `--store` names it: `sqlite:PATH` or a PostgreSQL URL.

use std::path::PathBuf;

/// The store a CA process opens (docs/operations.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file (the default: `ca.db` in the data directory).
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its connection URL (it may hold a password: never shown).
    Postgres(String),
}

impl StoreLocation {
    /// Parses `--store`. The message never repeats the value, which may hold a password.
    pub fn parse(s: &str) -> Result<StoreLocation, String> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("sqlite: needs a file path, e.g. sqlite:/var/lib/mtls-ca/ca.db".into());
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            // The URL itself is checked when connecting, with the driver's message.
            return Ok(StoreLocation::Postgres(s.to_string()));
        }
        Err(
            "expected sqlite:PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE \
             (docs/operations.md)"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn store_locations_parse_and_bad_ones_are_refused_without_echoing_them() {
        assert_eq!(
            StoreLocation::parse("sqlite:/x/ca.db").unwrap(),
            StoreLocation::Sqlite("/x/ca.db".into())
        );
        assert_eq!(
            StoreLocation::parse("postgresql://u@h/db").unwrap(),
            StoreLocation::Postgres("postgresql://u@h/db".into())
        );
        assert!(StoreLocation::parse("sqlite:").is_err());
        let err = StoreLocation::parse("mysql://u:secret@h/db").unwrap_err();
        assert!(
            !err.contains("secret") && err.contains("postgres://"),
            "{err}"
        );
    }
}
