//! The one place SQL lives. A [`Store`] runs on SQLite (embedded, the default) or PostgreSQL
//! (several instances); the same SQL text serves both wherever the dialects agree, since
//! sqlx's SQLite driver accepts `$N` placeholders.

mod admin;
mod check;
mod checkpoint;
mod custom_windows;
mod delivery;
mod file_watch;
mod finish;
mod followers;
mod forward;
mod group_commit;
mod identities;
mod invalidations;
mod leases;
mod ledger;
mod lifecycle;
mod oauth;
mod outbox;
mod push;
mod retention;
mod sealed;
mod sessions;
mod sql;
mod tickets;
mod tokens;
mod webhook_views;
mod webhooks;

pub use admin::{AppDay, MessageFilter, PushFilter, TokenRow};
pub use check::{Schema, check_database};
pub use checkpoint::CHECKPOINT_INTERVAL;
pub use custom_windows::CustomWindow;
pub use delivery::SentMessages;
pub use file_watch::WATCH_INTERVAL;
pub use followers::{FOLLOWERS_QUEUED, FollowerImport, ImportStep, LookedUp};
pub use forward::{ForwardFailure, ForwardRecord, ForwardState, ForwardWrite};
pub use group_commit::{Commit, GroupCommit, Unanswered};
pub use identities::{BindOutcome, Identity, NewIdentity};
pub use ledger::{FormId, FormIdKind, Subscription};
pub use lifecycle::{ERASED_OPENID, ERASED_PAYLOAD, ERASED_REASON, Erased};
pub use oauth::{CodeProblem, Exchange, LinkTicket, NewTicket, StoredWebToken, WebToken};
pub use outbox::{Claimed, Enqueued, Learned, Message, NewMessage, Outcome};
pub use push::{DeliveryReport, EventFilter, NewPush, Recorded, StoredEvent};
pub use retention::Prunable;
pub use sealed::{ResealCount, reseal, session_key_aad};
pub use tickets::StoredTicket;
pub use tokens::{
    FORCE_REFRESH_MIN_INTERVAL, FORCE_REFRESH_PER_DAY, ForceRefreshDenied, StoredToken,
};
pub use webhook_views::{AttemptView, DeliveryView, EndpointState};
pub use webhooks::{AttemptRecord, EVENTS_WRITTEN, PendingDelivery, StoredWebhookEvent};

use crate::config::DatabaseSettings;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A batched write (several requests in one transaction) failed; the cause is logged once.
    #[error("batched write failed: {0}")]
    Batch(String),
    /// The database's disk is full (or its size cap reached); nothing was written.
    #[error("storage full: {0}")]
    Full(String),
    /// A secret would be stored but no `storage_key` was given to seal it.
    #[error("no storage_key is configured to seal what would be stored")]
    NoStorageKey,
    /// The SQLite file was deleted or replaced while running: writes are not kept.
    #[error("{0}")]
    Lost(String),
    /// A stored value no longer parses: someone edited the database by hand.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    /// The lock file beside a new SQLite database could not be taken (a read-only folder).
    #[error("cannot take the start-up lock beside the database: {0}")]
    StartupLock(String),
}

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever pool is configured; `$pool` is bound to it.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// A transaction on whichever backend is configured, for work that must land together
/// (an event's effect and its "handled" mark).
pub enum StoreTx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs the same body against the transaction's connection; `$conn` is bound to it.
macro_rules! with_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::StoreTx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::StoreTx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use with_tx;

impl StoreTx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(t) => t.commit().await?,
            Self::Postgres(t) => t.commit().await?,
        }
        // Cheap when nothing waits: the deliverers look for events this may have written.
        webhooks::events_written();
        Ok(())
    }
}

/// What differs between the two backends beyond the SQL both accept.
pub(crate) trait Backend {
    type Database: sqlx::Database;

    /// A transaction that will write. SQLite must take the write lock up front: a read
    /// transaction that later writes fails with "database is locked" instead of waiting.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>,
    > + Send;

    /// The suffix that lets several instances claim rows without waiting on each other.
    fn skip_locked(&self) -> &'static str;
}

impl Backend for SqlitePool {
    type Database = sqlx::Sqlite;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }

    // One writer at a time: a claiming UPDATE is atomic on its own.
    fn skip_locked(&self) -> &'static str {
        ""
    }
}

impl Backend for PgPool {
    type Database = sqlx::Postgres;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }

    fn skip_locked(&self) -> &'static str {
        "FOR UPDATE SKIP LOCKED"
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pub(crate) db: Db,
    /// Writes. On SQLite one connection: writers then queue here, in order, instead of in
    /// SQLite's busy handler, which sleeps in steps of up to 100 ms and ruins latency.
    pub(crate) write: Db,
    /// Set when a write failed for lack of space, cleared by the next write that lands:
    /// what `/readyz` reports.
    pub(crate) full: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Seals the secrets written and opens those read back ([`Store::with_keys`]).
    pub(crate) keys: Option<std::sync::Arc<crate::seal::Keyring>>,
    /// The SQLite file, watched (none for PostgreSQL or an in-memory database).
    pub(crate) file: Option<std::sync::Arc<file_watch::DbFile>>,
}

impl Store {
    /// Connects and applies migrations.
    pub async fn connect(url: &str, settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let acquire = Duration::from_millis(settings.acquire_timeout_ms);
        let mut file = None;
        let (db, write) = if url.starts_with("sqlite:") {
            let (read, write, path) =
                Self::open_sqlite(url, settings.max_connections, acquire).await?;
            file = path
                .and_then(|p| file_watch::DbFile::open(&p))
                .map(std::sync::Arc::new);
            (Db::Sqlite(read), Db::Sqlite(write))
        } else {
            let statement_timeout = format!("{}ms", settings.statement_timeout_ms);
            let opts = PgConnectOptions::from_str(url)?
                .options([("statement_timeout", statement_timeout.as_str())]);
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(acquire)
                .connect_with(opts)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            (Db::Postgres(pool.clone()), Db::Postgres(pool))
        };
        Ok(Self {
            db,
            write,
            full: Default::default(),
            keys: None,
            file,
        })
    }

    /// The store that seals secrets under `keys` (the configured `storage_key`). Without
    /// keys, writing a secret fails with [`StoreError::NoStorageKey`].
    pub fn with_keys(mut self, keys: Option<crate::seal::Keyring>) -> Self {
        self.keys = keys.map(std::sync::Arc::new);
        self
    }

    /// The readers' pool, the one-connection writer, and the file's path (none in memory).
    /// The file is created and migrated by a connection of its own; the pools never
    /// create it, so a connection reopened after the file was deleted fails instead of
    /// starting an empty database.
    async fn open_sqlite(
        url: &str,
        readers: u32,
        acquire: Duration,
    ) -> Result<(SqlitePool, SqlitePool, Option<std::path::PathBuf>), StoreError> {
        use sqlx::{ConnectOptions, Connection};
        let opts = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Statement journals and sorts in memory: on disk each multi-row write created,
            // wrote and unlinked a file in /var/tmp inside the writer's transaction
            // (`etilqs_*`, seen with strace under the send benchmark).
            .pragma("temp_store", "memory")
            // Checkpoints are the checkpointer's job (`checkpoint.rs`), not the commits'.
            .pragma(
                "wal_autocheckpoint",
                checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
            );
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let path = (!in_memory).then(|| opts.get_filename().to_owned());
        // Several processes opening a new file at once race on creating it, switching it to
        // WAL and migrating it: sqlx takes no lock for SQLite migrations, so two of them
        // could both see a migration missing and both run it. A lock on a file beside the
        // database makes them take turns; the later ones find the work done.
        let _turn = match &path {
            Some(p) => Some(StartupLock::take(p).await?),
            None => None,
        };
        let mut first = opts.clone().create_if_missing(true).connect().await?;
        let migrated = sqlx::migrate!("./migrations/sqlite").run(&mut first).await;
        // An in-memory database lives as long as a connection holds it: keep this one.
        let opts = if in_memory {
            opts.create_if_missing(true)
        } else {
            first.close().await?;
            opts.create_if_missing(false)
        };
        migrated?;
        // No ping before each acquire (sqlx's default): a local file's connection does not
        // drop like a network one, a failing one is closed by `healthy_after_use` once it
        // is handed back, and the ping was a round trip to its thread per query (3.5% of
        // the send benchmark).
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(healthy_after_use(conn)))
            .acquire_timeout(acquire)
            .connect_with(opts.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(readers.min(8))
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(healthy_after_use(conn)))
            .acquire_timeout(acquire)
            .connect_with(opts)
            .await?;
        Ok((read, write, path))
    }

    /// Starts a transaction; dropped without [`StoreTx::commit`] it rolls back.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        Ok(match &self.write {
            Db::Sqlite(pool) => StoreTx::Sqlite(pool.begin_write().await?),
            Db::Postgres(pool) => StoreTx::Postgres(pool.begin_write().await?),
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Whether the database answers; used by `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(&self.db, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }
}

/// Whether a connection handed back may serve again. After "database or disk is full"
/// SQLite may have rolled the transaction back itself; sqlx's own ROLLBACK then fails and
/// it believes the connection is still inside a transaction, refusing every later BEGIN.
/// Such a connection is closed, and the pool opens a fresh one. Only a connection that
/// still counts a transaction is pinged (which lets a queued rollback run first): a ping on
/// every release was a round trip to the connection's thread per query, on the hot path.
async fn healthy_after_use(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    Ok(!conn.is_in_transaction())
}

impl Store {
    /// Whether the last write that ended failed for lack of space (`/readyz`).
    pub fn is_full(&self) -> bool {
        self.full.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Notes how a write ended: a full disk makes the store not ready until a write lands.
    pub fn note_write<T>(&self, r: &Result<T, StoreError>) {
        use std::sync::atomic::Ordering;
        match r {
            Ok(_) => self.full.store(false, Ordering::Relaxed),
            Err(e) if e.is_full() => {
                if !self.full.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, "the database is full: writes are refused until there is room");
                }
            }
            Err(_) => {}
        }
    }

    /// Caps the SQLite file at its current size (`Some`), or lifts the cap (`None`): how
    /// tests play a full disk. Applies to the writer's current connection only.
    #[doc(hidden)]
    pub async fn cap_sqlite_pages(&self, pages: Option<u32>) -> Result<(), StoreError> {
        if let Db::Sqlite(pool) = &self.write {
            let n = pages.unwrap_or(1_073_741_823);
            sqlx::query(&format!("PRAGMA max_page_count = {n}"))
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}

impl StoreError {
    /// The disk (or SQLite's page cap) is full: SQLite's SQLITE_FULL (13), PostgreSQL's
    /// disk_full (53100).
    pub fn is_full(&self) -> bool {
        match self {
            Self::Full(_) => true,
            Self::Database(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|c| c == "13" || c == "53100")
            }
            _ => false,
        }
    }

    /// The database cannot be reached right now (down, restarting, pool exhausted): the
    /// caller should be told to come back, not that we failed.
    pub fn is_unavailable(&self) -> bool {
        let Self::Database(e) = self else {
            return matches!(self, Self::Lost(_));
        };
        match e {
            // A connection cut during the handshake reads as a protocol error.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => true,
            // PostgreSQL: 08xxx connection exceptions, 57P01-57P03 shutting down or starting;
            // SQLite: 5 busy and 6 locked, past the busy timeout (another process writing).
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("57P") || c == "5" || c == "6"
            }),
            _ => false,
        }
    }
}

/// An exclusive lock on `<database>-startup-lock`, held while one process creates and
/// migrates the file. The lock file stays: removing it would let a waiter hold a lock on
/// a file the next process no longer sees. SQLite's own locks are on the database file
/// and are not touched (closing any other descriptor of that file would drop them).
struct StartupLock(std::fs::File);

impl StartupLock {
    async fn take(database: &std::path::Path) -> Result<Self, StoreError> {
        let mut name = database.as_os_str().to_owned();
        name.push("-startup-lock");
        let path = std::path::PathBuf::from(name);
        let locked = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        locked
            .map(Self)
            .map_err(|e| StoreError::StartupLock(e.to_string()))
    }
}

impl Drop for StartupLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}
