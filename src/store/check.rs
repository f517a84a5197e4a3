//! `wxlink check`'s look at the database: does it open, and how does its schema compare
//! with this build's migrations. Read-only: nothing is created, migrated or written.

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::collections::BTreeSet;
use std::str::FromStr;

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// What the database looks like to this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    /// A SQLite file that is not there yet: `serve` creates it.
    NotCreated,
    /// Every migration of this build is applied.
    UpToDate,
    /// `serve` will apply these many migrations at start.
    Pending(usize),
}

/// Opens the database read-only and compares its applied migrations with this build's.
/// An error names what is wrong in words an operator can act on.
pub async fn check_database(url: &str) -> Result<Schema, String> {
    let (applied, migrator) = if url.starts_with("sqlite:") {
        let opts = SqliteConnectOptions::from_str(url).map_err(|e| e.to_string())?;
        let file = opts.get_filename().to_owned();
        let in_memory = file.as_os_str() == ":memory:" || url.contains("mode=memory");
        if in_memory {
            return Ok(Schema::NotCreated);
        }
        if !file.exists() {
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            return if dir.is_dir() {
                Ok(Schema::NotCreated)
            } else {
                Err(format!(
                    "{} does not exist, and neither does its directory {}",
                    file.display(),
                    dir.display()
                ))
            };
        }
        let mut conn = opts
            .read_only(true)
            .create_if_missing(false)
            .connect()
            .await
            .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
        // SQLite keeps its tables in sqlite_master; PostgreSQL answers to_regclass below.
        let (exists,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let applied = if exists > 0 {
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations")
                .fetch_all(&mut conn)
                .await
                .map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        let _ = conn.close().await;
        (applied, &SQLITE)
    } else {
        let opts = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
        let mut conn = sqlx::PgConnection::connect_with(&opts)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (exists,): (bool,) =
            sqlx::query_as("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        let applied = if exists {
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations")
                .fetch_all(&mut conn)
                .await
                .map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        let _ = conn.close().await;
        (applied, &POSTGRES)
    };
    compare(&applied, migrator)
}

fn compare(applied: &[(i64, bool)], migrator: &Migrator) -> Result<Schema, String> {
    if let Some((v, _)) = applied.iter().find(|(_, ok)| !ok) {
        return Err(format!(
            "migration {v} failed part-way earlier; fix the database by hand before starting"
        ));
    }
    let known: BTreeSet<i64> = migrator.iter().map(|m| m.version).collect();
    if let Some((v, _)) = applied.iter().find(|(v, _)| !known.contains(v)) {
        return Err(format!(
            "the database has migration {v}, which this build does not know: a newer wxlink migrated it"
        ));
    }
    let pending = known.len() - applied.len();
    Ok(if pending == 0 {
        Schema::UpToDate
    } else {
        Schema::Pending(pending)
    })
}
