//! The store on PostgreSQL, for several CA replicas sharing one database (docs/operations.md).
//!
//! The `Store` trait is synchronous (the API calls it from `spawn_blocking`, the admin
//! subcommands from plain `main`), the driver (`tokio-postgres`, pooled by `deadpool-postgres`)
//! is async. The store owns a small runtime of its own whose one worker drives the database
//! connections; each call polls its future to completion on the calling thread with that
//! runtime entered (`futures::executor::block_on`). That blocks the caller exactly as a SQLite
//! call does, works the same from a blocking task, an async worker (the CA audits its API
//! certificate from one) or a program without a runtime, and can never hit tokio's "runtime
//! within a runtime" panic, which `Handle::block_on` would on an async worker. The sync
//! `postgres` crate was not used: it has no maintained pool of its own.
//!
//! Writes go through group commit (`postgres_batch.rs`): concurrent calls on one replica share
//! one transaction and one commit, each in its own savepoint. Token redemptions, the issuance
//! path, reach the batch in rounds whose statements are sent pipelined (`postgres_pipeline.rs`).
//!
//! Replicas: every write transaction takes one advisory lock first (`postgres_ops::WRITE_LOCK`)
//! and runs at READ COMMITTED, so each statement after the lock sees every commit made before
//! it: token redemption is single-use (`UPDATE ... WHERE used_at IS NULL`), the audit chain is
//! one chain appended in the same transaction as its change, and revocations and renewals see
//! each other as on SQLite. Serials are the primary key. Every CRL request reads the revocation
//! epoch from the database, so a revocation committed through any replica is in every
//! replica's next CRL. Connections are plain TCP, unix sockets, or TLS as the URL's `sslmode`
//! asks (`postgres_tls.rs`, docs/operations.md).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use pki::clock::{Clock, SystemClock};
use time::OffsetDateTime;
use tokio_postgres::{IsolationLevel, NoTls};

use super::details;
use super::entries::{AgentIssue, AgentOutcome, CreateEntry, EntryRecord, EntryRow};
use super::federations::{FederationRecord, StoredBundle};
use super::migrations;
use super::postgres_batch::{self, PgGroup, PgWriter};
use super::postgres_federations;
use super::postgres_lineage as lineage;
use super::postgres_ops;
use super::postgres_ops::{
    cert, col, json, pg, query_all, query_one, read_audit, read_cert, read_token, take_write_lock,
    ts, PgTx, CERT_COLUMNS, MIGRATIONS, TOKEN_COLUMNS,
};
use super::postgres_pipeline::{Pipeline, RedeemRequest};
use super::postgres_tls;
use super::postgres_tokens;
use super::rows::CertRow;
use super::sqlite_ops::log_appended;
use super::{
    replay, AuditCheck, AuditHead, CertRecord, Redeem, RenewOutcome, RenewalRequest, Result,
    Revoke, RevokeToken, Store, StoreError, TokenRecord,
};

/// Connections per CA process: the API's blocking pool rarely has more calls in flight.
const POOL_SIZE: usize = 16;
/// How long a call waits for a connection (new or from the pool) before answering 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The CA's store in a PostgreSQL database (see the module documentation).
pub struct PostgresStore {
    /// Drives the connections; taken out and shut down in the background on drop, since a
    /// runtime may not be dropped on an async thread.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// The connection write calls are batched on (group commit, `postgres_batch.rs`).
    writer: PgGroup,
    /// Token redemptions, sent to the batch in pipelined rounds (`postgres_pipeline.rs`).
    pipeline: Pipeline,
    /// The database as the operator named it, without a password (for messages).
    name: String,
    /// Dates the audit entries.
    clock: Arc<dyn Clock>,
}

/// `url` without its password: the user, hosts, ports and database name.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, p)| match h {
            tokio_postgres::config::Host::Tcp(h) => format!("{h}:{p}"),
            tokio_postgres::config::Host::Unix(path) => format!("{}:{p}", path.display()),
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or("(default user)"),
        hosts.join(","),
        config.get_dbname().unwrap_or("(default database)")
    )
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db?params`, with
    /// TLS as its `sslmode` and friends say: `postgres_tls.rs`), applies the migrations it lacks under the write lock and
    /// returns the store. Refuses a bad URL, an unreachable database, and a schema newer than
    /// this program knows; initialises nothing else (see `initialise_meta`).
    pub fn connect(url: &str) -> Result<PostgresStore> {
        let (url, tls) = postgres_tls::split(url)?;
        let config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            StoreError::Setup(format!(
                "--store: {e}; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE \
                 (docs/operations.md)"
            ))
        })?;
        let name = describe(&config);
        let mut config = config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.ssl_mode(tls.driver_mode());
        let unix_socket = config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
        if unix_socket && tls.mode != postgres_tls::Mode::Disable {
            return Err(StoreError::Setup(format!(
                "--store {name}: sslmode={} needs TCP hosts, but the URL names a unix socket \
                 (local connections do not use TLS: leave sslmode out for them)",
                tls.mode.as_str()
            )));
        }
        let connector = tls.connector()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mtls-ca-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Setup(format!("starting the PostgreSQL runtime: {e}")))?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match connector {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = {
            let _entered = runtime.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CONNECT_TIMEOUT * 2))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| StoreError::Setup(format!("--store {name}: {e}")))?
        };
        let writer = postgres_batch::new_group(PgWriter::new(
            pool.clone(),
            runtime.handle().clone(),
            name.clone(),
        ));
        let store = PostgresStore {
            runtime: Some(runtime),
            pool,
            writer,
            pipeline: Pipeline::default(),
            name,
            clock: Arc::new(SystemClock),
        };
        let tls_hint = match tls.mode {
            postgres_tls::Mode::Disable => "",
            _ => {
                ", that the server has TLS on, and that its certificate is what sslmode \
                   checks (signed by a CA in sslrootcert; for verify-full, naming the host)"
            }
        };
        store.migrate().map_err(|e| match e {
            StoreError::Unreachable(cause) => StoreError::Setup(format!(
                "cannot connect to the CA database {} (sslmode={}): {cause}; check that \
                 PostgreSQL runs there and that the URL's user, password and database are \
                 right{tls_hint}",
                store.name,
                tls.mode.as_str()
            )),
            other => other,
        })?;
        Ok(store)
    }

    /// Dates audit entries by `clock` instead of the system clock (tests that set the time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> PostgresStore {
        self.clock = clock;
        self
    }

    /// The database, without its password.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `fut` to completion on this thread with the store's runtime entered.
    pub(super) fn run<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        let _entered = self.runtime.as_ref().map(|r| r.enter());
        futures::executor::block_on(fut)
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            let e = postgres_ops::with_causes(&e);
            tracing::error!(error = %e, database = %self.name, "no connection to the CA database");
            StoreError::Unreachable(e)
        })
    }

    /// Applies the pending migrations under the write lock (replicas starting together
    /// migrate once); returns the version now stored.
    pub fn migrate(&self) -> Result<u32> {
        self.run(async {
            let mut pooled = self.client().await?;
            let tx = pooled
                .transaction()
                .await
                .map_err(pg("starting a transaction"))?;
            take_write_lock(&tx).await?;
            let has_meta: bool = query_one(
                &tx,
                "SELECT to_regclass('meta') IS NOT NULL",
                &[],
                |r| col(r, 0),
                "looking for the schema",
            )
            .await?
            .unwrap_or(false);
            let stored: Option<String> = if has_meta {
                query_one(
                    &tx,
                    "SELECT value FROM meta WHERE key = $1",
                    &[&migrations::VERSION_KEY],
                    |r| col(r, 0),
                    "reading the schema version",
                )
                .await?
            } else {
                None
            };
            let found = migrations::parse_version(stored.as_deref())?;
            let what = format!("the CA database {}", self.name);
            let todo = migrations::pending(found, MIGRATIONS, &what)?;
            for index in todo {
                tx.batch_execute(MIGRATIONS[index])
                    .await
                    .map_err(pg("migrating the schema"))?;
                let version = (index + 1).to_string();
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&migrations::VERSION_KEY, &version],
                )
                .await
                .map_err(pg("recording the schema version"))?;
                tracing::info!(event = "schema_migrated", version = index + 1, database = %self.name);
            }
            tx.commit().await.map_err(pg("committing the schema"))?;
            Ok(MIGRATIONS.len() as u32)
        })
    }

    /// Runs `f` atomically and durably: in its own savepoint of a batch transaction that holds
    /// the write lock and is shared with concurrent calls, returning once the batch has
    /// committed; an Err rolls back `f`'s writes only. Audit entries appended in it are logged
    /// after the commit.
    fn write_tx<T>(&self, f: impl AsyncFnOnce(&PgTx<'_>) -> Result<T>) -> Result<T> {
        let (out, appended) = self.writer.write(|writer| {
            // Read inside the batch, while this call holds the connection (the group commit
            // tests gate this clock to build a batch step by step).
            let at = pki::timefmt::rfc3339(self.clock.now());
            writer.call(at, f)
        })?;
        log_appended(&appended);
        Ok(out)
    }

    /// How many batch transactions the writer has ended (group commit; tests and benchmarks).
    pub fn batches_committed(&self) -> usize {
        self.writer.commits()
    }

    /// How many rounds of pipelined token redemptions have run (`postgres_pipeline.rs`; tests
    /// and benchmarks).
    pub fn redemption_rounds(&self) -> usize {
        self.pipeline.rounds()
    }

    /// How many write calls are waiting for the writing connection right now (they will join
    /// the open batch); for tests that build a batch step by step.
    pub fn writers_waiting(&self) -> usize {
        self.writer.waiting() + self.pipeline.waiting()
    }

    /// Certificates matching `condition` (the SQL after WHERE) with `params`.
    fn certs_where(
        &self,
        condition: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<CertRecord>> {
        let rows = self.run(async {
            let client = self.client().await?;
            query_all(
                &client,
                &format!("SELECT {CERT_COLUMNS} FROM certs WHERE {condition}"),
                params,
                read_cert,
                "reading certificates",
            )
            .await
        })?;
        rows.into_iter().map(CertRow::into_record).collect()
    }

    /// A counter or other value of `meta`.
    fn meta(&self, key: &str, context: &'static str) -> Result<Option<String>> {
        self.run(async {
            let client = self.client().await?;
            query_one(
                &client,
                "SELECT value FROM meta WHERE key = $1",
                &[&key],
                |r| col(r, 0),
                context,
            )
            .await
        })
    }

    fn counter(&self, key: &str, context: &'static str) -> Result<u64> {
        let v = self.meta(key, context)?.unwrap_or_else(|| "0".into());
        v.parse()
            .map_err(|_| StoreError::Corrupt(format!("{key} {v:?}")))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Store for PostgresStore {
    fn init_meta(&self, key: &str, value: &str) -> Result<String> {
        self.write_tx(async |tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
                "writing metadata",
            )
            .await?;
            query_one(
                tx.tx,
                "SELECT value FROM meta WHERE key = $1",
                &[&key],
                |r| col(r, 0),
                "reading metadata",
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("meta {key} vanished")))
        })
    }

    fn swap_meta(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        event: &str,
        detail: &serde_json::Value,
    ) -> Result<bool> {
        self.write_tx(async |tx| {
            let changed = match expected {
                None => {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                        &[&key, &new],
                        "writing metadata",
                    )
                    .await?
                }
                Some(old) => {
                    tx.execute(
                        "UPDATE meta SET value = $2 WHERE key = $1 AND value = $3",
                        &[&key, &new, &old],
                        "writing metadata",
                    )
                    .await?
                }
            };
            if changed != 1 {
                return Ok(false);
            }
            tx.append_audit(event, detail).await?;
            Ok(true)
        })
    }

    fn get_meta(&self, key: &str) -> Result<Option<String>> {
        self.meta(key, "reading metadata")
    }

    fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        self.write_tx(async |tx| {
            tx.execute(
                "INSERT INTO tokens (hash, spiffe_id, dns, ips, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &t.hash,
                    &t.spiffe_id,
                    &json(&t.dns),
                    &json(&t.ips),
                    &ts(t.created_at),
                    &ts(t.expires_at),
                ],
                "storing the token",
            )
            .await?;
            tx.append_audit("token", &details::token(t)).await
        })
    }

    fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let row = self.run(async {
            let client = self.client().await?;
            query_one(
                &client,
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"),
                &[&hash],
                read_token,
                "looking up the token",
            )
            .await
        })?;
        row.map(|r| r.into_record()).transpose()
    }

    fn redeem_token(&self, hash: &str, now: OffsetDateTime, cert: &CertRecord) -> Result<Redeem> {
        let request = RedeemRequest {
            hash: hash.to_string(),
            used_at: ts(now),
            cert: cert.clone(),
        };
        self.pipeline
            .redeem(&self.writer, self.clock.as_ref(), request)
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.run(async {
            let client = self.client().await?;
            postgres_tokens::list(&client).await
        })
    }

    fn revoke_token(&self, id: &str, actor: &str, now: OffsetDateTime) -> Result<RevokeToken> {
        self.write_tx(async |tx| postgres_tokens::revoke(tx, id, actor, now).await)
    }

    fn record_renewal(&self, renewal: &RenewalRequest<'_>) -> Result<RenewOutcome> {
        self.write_tx(async |tx| lineage::renew(tx, renewal).await)
    }

    fn find_cert(&self, serial: &str) -> Result<Option<CertRecord>> {
        self.run(async {
            let client = self.client().await?;
            cert(&client, serial).await
        })
    }

    fn list_certs(&self) -> Result<Vec<CertRecord>> {
        self.certs_where("TRUE ORDER BY issued_at, serial", &[])
    }

    fn revoke(
        &self,
        serial: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Revoke> {
        self.write_tx(async |tx| lineage::revoke(tx, serial, reason, actor, ts(now)).await)
    }

    fn revoke_identity(
        &self,
        spiffe_id: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<String>> {
        self.write_tx(async |tx| {
            lineage::revoke_identity(tx, spiffe_id, reason, actor, ts(now)).await
        })
    }

    fn revoked_unexpired(&self, now: OffsetDateTime) -> Result<Vec<CertRecord>> {
        self.certs_where(
            "revoked_at IS NOT NULL AND not_after > $1 ORDER BY revoked_at, serial",
            &[&ts(now)],
        )
    }

    fn revocation_epoch(&self) -> Result<u64> {
        self.counter("revocation_epoch", "reading the revocation epoch")
    }

    fn next_crl_number(&self, at_least: u64) -> Result<u64> {
        // i64 holds milliseconds for 290 million years.
        let at_least = i64::try_from(at_least).unwrap_or(i64::MAX).to_string();
        let next: i64 = self.write_tx(async |tx| {
            query_one(
                tx.tx,
                "INSERT INTO meta (key, value) VALUES ('crl_number', $1)
                 ON CONFLICT (key) DO UPDATE
                 SET value = GREATEST(meta.value::BIGINT + 1, excluded.value::BIGINT)::TEXT
                 RETURNING value::BIGINT",
                &[&at_least],
                |r| col(r, 0),
                "taking a CRL number",
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("crl_number: no row returned".into()))
        })?;
        u64::try_from(next).map_err(|_| StoreError::Corrupt(format!("crl_number {next}")))
    }

    fn verify_audit(&self) -> Result<AuditCheck> {
        self.run(async {
            let mut pooled = self.client().await?;
            // One snapshot: the chain and the tables agree even while replicas keep writing.
            let tx = pooled
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg("starting a read transaction"))?;
            let entries = query_all(
                &tx,
                "SELECT seq, at, event, detail, prev_hash, hash FROM audit ORDER BY seq",
                &[],
                read_audit,
                "reading the audit log",
            )
            .await?;
            let tokens = query_all(
                &tx,
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, hash"),
                &[],
                read_token,
                "reading tokens",
            )
            .await?;
            let certs = query_all(
                &tx,
                &format!("SELECT {CERT_COLUMNS} FROM certs ORDER BY issued_at, serial"),
                &[],
                read_cert,
                "reading certificates",
            )
            .await?;
            let registrations: Vec<EntryRow> = lineage::entry_rows(&tx, None).await?;
            let federations = postgres_federations::list(&tx).await?;
            tx.commit()
                .await
                .map_err(pg("ending the read transaction"))?;
            Ok(replay::check(
                &entries,
                &tokens,
                &certs,
                &registrations,
                &federations,
            ))
        })
    }

    fn audit_head(&self) -> Result<Option<AuditHead>> {
        self.run(async {
            let client = self.client().await?;
            query_one(
                &client,
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                &[],
                |r| {
                    Ok(AuditHead {
                        seq: col(r, 0)?,
                        hash: col(r, 1)?,
                    })
                },
                "reading the audit head",
            )
            .await
        })
    }

    fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        self.run(async {
            let client = self.client().await?;
            query_one(
                &client,
                "SELECT hash FROM audit WHERE seq = $1",
                &[&seq],
                |r| col(r, 0),
                "reading the audit log",
            )
            .await
        })
    }

    fn record_event(&self, event: &str, detail: &serde_json::Value) -> Result<()> {
        self.write_tx(async |tx| tx.append_audit(event, detail).await)
    }

    fn record_ocsp_responder(&self, cert: &CertRecord) -> Result<()> {
        self.write_tx(async |tx| {
            tx.insert_cert(cert).await?;
            tx.append_audit("ocsp_responder", &details::cert(cert))
                .await
        })
    }

    fn create_entry(&self, entry: &EntryRecord) -> Result<CreateEntry> {
        self.write_tx(async |tx| lineage::create_entry(tx, entry).await)
    }

    fn delete_entry(&self, id: &str, actor: &str, now: OffsetDateTime) -> Result<bool> {
        self.write_tx(async |tx| lineage::delete_entry(tx, id, actor, ts(now)).await)
    }

    fn find_entry(&self, id: &str) -> Result<Option<EntryRecord>> {
        self.run(async {
            let client = self.client().await?;
            lineage::find_entry(&client, id).await
        })
    }

    fn list_entries(&self, parent_id: Option<&str>) -> Result<Vec<EntryRecord>> {
        let rows = self.run(async {
            let client = self.client().await?;
            lineage::entry_rows(&client, parent_id).await
        })?;
        rows.into_iter().map(EntryRow::into_record).collect()
    }

    fn entry_revision(&self) -> Result<u64> {
        self.counter("entry_revision", "reading the entry revision")
    }

    fn record_agent_issue(&self, issue: &AgentIssue<'_>) -> Result<AgentOutcome> {
        self.write_tx(async |tx| lineage::record_agent_issue(tx, issue).await)
    }

    fn add_federation(&self, federation: &FederationRecord, actor: &str) -> Result<bool> {
        self.write_tx(async |tx| postgres_federations::add(tx, federation, actor).await)
    }

    fn remove_federation(
        &self,
        trust_domain: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        self.write_tx(async |tx| {
            postgres_federations::remove(tx, trust_domain, actor, ts(now)).await
        })
    }

    fn list_federations(&self) -> Result<Vec<FederationRecord>> {
        self.run(async {
            let client = self.client().await?;
            postgres_federations::list(&client).await
        })
    }

    fn store_federated_bundle(
        &self,
        trust_domain: &str,
        bundle: &str,
        roots: &[String],
        sequence: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<StoredBundle> {
        self.write_tx(async |tx| {
            postgres_federations::store_bundle(tx, trust_domain, bundle, roots, sequence, ts(now))
                .await
        })
    }

    fn health_probe(&self, now: OffsetDateTime) -> std::result::Result<(), String> {
        let beat = ts(now).to_string();
        let written = self.write_tx(async |tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('heartbeat', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&beat],
                "writing the heartbeat",
            )
            .await
        });
        written.map(|_| ()).map_err(|e| match e {
            StoreError::Unreachable(_) => "the CA database cannot be reached".to_string(),
            other => {
                tracing::error!(error = %other, "health probe: writing to the CA database failed");
                "a write to the CA database failed (see the CA log)".to_string()
            }
        })
    }
}
