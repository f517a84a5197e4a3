//! The one place SQL lives. A [`Store`] runs on SQLite (embedded, the default) or PostgreSQL
//! (several instances); the same SQL text serves both wherever the dialects agree, since
//! sqlx's SQLite driver accepts `$N` placeholders.

mod identities;
mod oauth;
mod push;
mod tokens;

pub use identities::{BindOutcome, Identity, NewIdentity};
pub use oauth::{CodeProblem, Exchange, LinkTicket, NewTicket, WebToken};
pub use push::{DeliveryReport, EventFilter, NewPush, Recorded, StoredEvent};
pub use tokens::{
    FORCE_REFRESH_MIN_INTERVAL, FORCE_REFRESH_PER_DAY, ForceRefreshDenied, StoredToken,
};

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
    /// A stored value no longer parses: someone edited the database by hand.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
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
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: Db,
}

impl Store {
    /// Connects and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let db = if url.starts_with("sqlite:") {
            // Several processes opening a new file at once race on creating it, switching it
            // to WAL and migrating it (sqlx takes no lock for SQLite migrations). The losers
            // see "database is locked" or "already exists"; each migration runs in its own
            // transaction, so a retry finds the winner's work committed and skips it.
            let mut attempt = 0;
            loop {
                match Self::open_sqlite(url).await {
                    Ok(pool) => break Db::Sqlite(pool),
                    Err(e) if attempt < 20 && is_startup_race(&e) => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100 * attempt.min(5))).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        } else {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(opts)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Db::Postgres(pool)
        };
        Ok(Self { db })
    }

    async fn open_sqlite(url: &str) -> Result<SqlitePool, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(pool)
    }

    /// Starts a transaction; dropped without [`StoreTx::commit`] it rolls back.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        Ok(match &self.db {
            Db::Sqlite(pool) => StoreTx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => StoreTx::Postgres(pool.begin().await?),
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

fn is_startup_race(e: &StoreError) -> bool {
    let text = e.to_string();
    text.contains("database is locked") || text.contains("already exists")
}

fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}
