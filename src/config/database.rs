//! `[database]`: the connection pool, and the ranges its settings must keep.

use super::ConfigError;
use serde::Deserialize;

/// The database connection pool.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// PostgreSQL: connections per instance. SQLite: reading connections (writes always go
    /// through one).
    pub max_connections: u32,
    /// How long a request waits for a connection before it is answered 503.
    pub acquire_timeout_ms: u64,
    /// PostgreSQL: a statement running longer than this is cancelled.
    pub statement_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout_ms: 5000,
            statement_timeout_ms: 10_000,
        }
    }
}

/// `[database]` within its ranges.
pub(super) fn check(settings: &DatabaseSettings) -> Result<(), ConfigError> {
    let db = settings;
    super::check_ranges(&[
        (
            "database.max_connections",
            db.max_connections as i64,
            1,
            1000,
        ),
        (
            "database.acquire_timeout_ms",
            db.acquire_timeout_ms as i64,
            10,
            600_000,
        ),
        (
            "database.statement_timeout_ms",
            db.statement_timeout_ms as i64,
            10,
            3_600_000,
        ),
    ])?;
    Ok(())
}
