//! The data directory of a CA whose store is PostgreSQL (docs/operations.md): the directory
//! holds only the root (`root.crt`, `root.key`); the database, shared by every replica,
//! records which root it belongs to (meta `root_fingerprint`) and its trust domain. Every
//! replica is given a copy of the same data directory; a replica with another root, or with
//! none next to a database that already has one, refuses to start.

use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use pki::{files, CaMaterial, TrustDomain};
use time::OffsetDateTime;

use crate::datadir::{load_external, pin_trust_domain, DataDir, RootOrigin, ROOT_FINGERPRINT};
use crate::store::{PostgresStore, Store, StoreLocation};

impl DataDir {
    /// For `serve` with `--store postgres://...`: connects (applying migrations), then loads
    /// the root of the directory (or the external one) or, for a database that records no root
    /// yet, creates one; checks that root against the one the database records.
    pub fn open_or_init_postgres(
        &self,
        url: &str,
        external: Option<(&Path, &Path)>,
        trust_domain: &TrustDomain,
        now: OffsetDateTime,
    ) -> anyhow::Result<(CaMaterial, RootOrigin, PostgresStore)> {
        self.secure()?;
        self.refuse_orphan_intermediate()?;
        let store = PostgresStore::connect(url)?;
        let recorded = store.get_meta(ROOT_FINGERPRINT)?;
        let has_root = self.root_cert().try_exists()?;
        let (ca, origin) = match (external, has_root, &recorded) {
            (Some((cert, key)), _, _) => {
                let ca = load_external(cert, key)?;
                if has_root {
                    self.pin_root_of(&ca)?;
                } else {
                    files::write_atomic(
                        &self.root_cert(),
                        ca.cert_pem().as_bytes(),
                        files::PUBLIC_MODE,
                    )?;
                }
                (ca, RootOrigin::Loaded)
            }
            (None, true, _) if self.is_two_tier()? => {
                (self.serving_intermediate(&store)?, RootOrigin::Loaded)
            }
            (None, true, _) => (self.load_own_root()?, RootOrigin::Loaded),
            (None, false, Some(fp)) => bail!(
                "the CA database {} belongs to root {fp}, but {} holds no root: copy root.crt \
                 and root.key from the data directory of the CA that created the database \
                 (every replica needs the same root)",
                store.name(),
                self.path.display()
            ),
            (None, false, None) => {
                let ca = CaMaterial::generate_root("mtls-mesh Root CA", now)?;
                files::write_atomic(&self.root_key(), ca.key_pem()?.as_bytes(), files::KEY_MODE)?;
                files::write_atomic(
                    &self.root_cert(),
                    ca.cert_pem().as_bytes(),
                    files::PUBLIC_MODE,
                )?;
                (ca, RootOrigin::Created)
            }
        };
        // A two-tier CA's intermediate follows the root rotation state; the directory's
        // identity stays the root it was made with (`root.crt`).
        let fp = match ca.is_intermediate() {
            true => self.stored_root_fingerprint()?,
            false => ca.root_fingerprint(),
        };
        // Records our root unless the database has one; a replica that raced us to an empty
        // database and won makes this one refuse, below.
        let stored = store.init_meta(ROOT_FINGERPRINT, &fp)?;
        if stored != fp {
            bail!(
                "the CA database {} belongs to root {stored}, but {} is root {fp}: every replica \
                 must use the data directory (root.crt, root.key) of the CA that created the \
                 database; copy it here",
                store.name(),
                self.root_cert().display()
            );
        }
        pin_trust_domain(&store, trust_domain)?;
        Ok((ca, origin, store))
    }

    /// For the admin subcommands with `--store postgres://...`: connects to a database a CA
    /// has initialised; when this directory holds a root, it must be the database's.
    pub fn open_existing_postgres(&self, url: &str) -> anyhow::Result<PostgresStore> {
        let store = PostgresStore::connect(url)?;
        let Some(recorded) = store.get_meta(ROOT_FINGERPRINT)? else {
            bail!(
                "the CA database {} holds no CA yet; start the CA once with the same --store first",
                store.name()
            );
        };
        if self.root_cert().try_exists()? {
            let ours = self.stored_root_fingerprint()?;
            if ours != recorded {
                bail!(
                    "the CA database {} belongs to root {recorded}, but {} is root {ours}; use \
                     the data directory of that CA, or the right --store",
                    store.name(),
                    self.root_cert().display()
                );
            }
        }
        Ok(store)
    }
}

impl DataDir {
    /// The data directory at `path` for the store `--store` names (None: `ca.db` in it).
    pub fn for_store(path: &Path, store: Option<&StoreLocation>) -> DataDir {
        match store {
            Some(StoreLocation::Sqlite(db)) => DataDir::with_db(path, db),
            _ => DataDir::new(path),
        }
    }

    /// `open_or_init` or `open_or_init_postgres`, as `store` says.
    pub fn open_or_init_store(
        &self,
        store: Option<&StoreLocation>,
        external: Option<(&Path, &Path)>,
        trust_domain: &TrustDomain,
        now: OffsetDateTime,
    ) -> anyhow::Result<(CaMaterial, RootOrigin, Arc<dyn Store>)> {
        Ok(match store {
            Some(StoreLocation::Postgres(url)) => {
                let (ca, origin, s) =
                    self.open_or_init_postgres(url, external, trust_domain, now)?;
                (ca, origin, Arc::new(s))
            }
            _ => {
                let (ca, origin, s) = self.open_or_init(external, trust_domain, now)?;
                (ca, origin, Arc::new(s))
            }
        })
    }

    /// `open_existing_store` or `open_existing_postgres`, as `store` says.
    pub fn open_existing(&self, store: Option<&StoreLocation>) -> anyhow::Result<Box<dyn Store>> {
        Ok(match store {
            Some(StoreLocation::Postgres(url)) => Box::new(self.open_existing_postgres(url)?),
            _ => Box::new(self.open_existing_store()?),
        })
    }

    /// `mtls-ca migrate`: applies the migrations the store lacks (opening it does) and
    /// returns the schema version it now has. A PostgreSQL database may be migrated before
    /// any CA started on it; a SQLite file must exist.
    pub fn migrate(&self, store: Option<&StoreLocation>) -> anyhow::Result<u32> {
        match store {
            Some(StoreLocation::Postgres(url)) => Ok(PostgresStore::connect(url)?.migrate()?),
            _ => {
                self.open_existing_store()?;
                Ok(crate::store::SQLITE_SCHEMA_VERSION)
            }
        }
    }
}
