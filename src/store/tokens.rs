//! The shared global access token per app: compare-and-set writes, a refresh lease, and the
//! force_refresh budget.

use super::leases::Leased;
use super::sealed::ACCESS_TOKEN;
use super::{Store, StoreError, with_pool};
use crate::domain::AppId;

/// WeChat allows 20 `force_refresh` calls a day, at least 30 s apart.
pub const FORCE_REFRESH_PER_DAY: i64 = 20;
pub const FORCE_REFRESH_MIN_INTERVAL: i64 = 30;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredToken {
    /// Opened: it is stored sealed under the storage key.
    pub access_token: Option<String>,
    pub expires_at: i64,
    pub version: i64,
    /// When the stored token was fetched from WeChat.
    pub fetched_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub fetch_day: i64,
    pub fetch_count: i64,
    pub force_day: i64,
    pub force_count: i64,
    pub last_force_at: i64,
}

/// Why a force_refresh may not be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForceRefreshDenied {
    DailyBudgetSpent,
    TooSoon { retry_after_secs: i64 },
}

/// The app's row, as the shared lease names it.
fn token_row(app: &AppId) -> Leased<'_> {
    Leased {
        table: "access_tokens",
        keys: vec![("app", app.as_str())],
    }
}

const COLUMNS: &str = "access_token, expires_at, version, fetched_at, lease_owner, lease_until, fetch_day, fetch_count, force_day, force_count, last_force_at";

impl Store {
    /// The app's token row, created empty on first use. Every refresher reads this each
    /// tick, so it only writes when the row is missing (an insert, even a no-op one, takes
    /// SQLite's write lock).
    pub async fn stored_token(
        &self,
        app: &AppId,
        mode: &str,
        now: i64,
    ) -> Result<StoredToken, StoreError> {
        let insert = "INSERT INTO access_tokens (app, mode, updated_at) VALUES ($1, $2, $3)
                      ON CONFLICT (app) DO NOTHING";
        let select = format!("SELECT {COLUMNS} FROM access_tokens WHERE app = $1");
        let mut row: StoredToken = with_pool!(&self.db, |pool| {
            let row = sqlx::query_as(&select)
                .bind(app)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => row,
                None => {
                    sqlx::query(insert)
                        .bind(app)
                        .bind(mode)
                        .bind(now)
                        .execute(pool)
                        .await?;
                    sqlx::query_as(&select).bind(app).fetch_one(pool).await?
                }
            }
        });
        // One that does not open is no token: the refresher fetches a new one.
        row.access_token = row
            .access_token
            .and_then(|t| self.open_text(&ACCESS_TOKEN, app.as_str(), "", &t));
        Ok(row)
    }

    /// Drops every stored token: the sandbox's simulator starts afresh each run and would
    /// refuse tokens a previous run stored.
    pub async fn forget_access_tokens(&self) -> Result<(), StoreError> {
        with_pool!(&self.write, |pool| {
            sqlx::query("DELETE FROM access_tokens")
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Takes (or renews) the right to refresh the token that is at `version` now. True for
    /// one instance at a time; a lease left by a dead instance runs out after `lease_secs`.
    pub async fn try_token_lease(
        &self,
        app: &AppId,
        owner: &str,
        version: i64,
        now: i64,
        lease_secs: i64,
    ) -> Result<bool, StoreError> {
        self.try_lease(&token_row(app), owner, version, now, lease_secs)
            .await
    }

    pub async fn release_token_lease(&self, app: &AppId, owner: &str) -> Result<(), StoreError> {
        self.release_lease(&token_row(app), owner).await
    }

    /// Writes a freshly fetched token over `expected_version` only (compare-and-set) and
    /// releases the lease. Returns the new version, or None if someone wrote first.
    #[allow(clippy::too_many_arguments)]
    pub async fn save_token(
        &self,
        app: &AppId,
        expected_version: i64,
        token: &str,
        expires_at: i64,
        now: i64,
        day: i64,
    ) -> Result<Option<i64>, StoreError> {
        let sql = "UPDATE access_tokens SET
                       access_token = $1, expires_at = $2, version = version + 1, fetched_at = $3,
                       lease_owner = NULL, lease_until = 0,
                       fetch_count = CASE WHEN fetch_day = $4 THEN fetch_count + 1 ELSE 1 END,
                       fetch_day = $4, updated_at = $3
                   WHERE app = $5 AND version = $6
                   RETURNING version";
        let sealed = self.seal_text(&ACCESS_TOKEN, app.as_str(), "", token)?;
        let v: Option<(i64,)> = with_pool!(&self.write, |pool| {
            sqlx::query_as(sql)
                .bind(sealed)
                .bind(expires_at)
                .bind(now)
                .bind(day)
                .bind(app)
                .bind(expected_version)
                .fetch_optional(pool)
                .await?
        });
        Ok(v.map(|(v,)| v))
    }

    /// Reserves one force_refresh within WeChat's budget, atomically across instances.
    pub async fn reserve_force_refresh(
        &self,
        app: &AppId,
        now: i64,
        day: i64,
    ) -> Result<Result<(), ForceRefreshDenied>, StoreError> {
        let sql = "UPDATE access_tokens SET
                       force_count = CASE WHEN force_day = $1 THEN force_count + 1 ELSE 1 END,
                       force_day = $1, last_force_at = $2
                   WHERE app = $3
                     AND (force_day <> $1 OR force_count < $4)
                     AND last_force_at <= $5";
        let n = with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(day)
                .bind(now)
                .bind(app)
                .bind(FORCE_REFRESH_PER_DAY)
                .bind(now - FORCE_REFRESH_MIN_INTERVAL)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if n == 1 {
            return Ok(Ok(()));
        }
        let row = self.stored_token(app, "stable", now).await?;
        Ok(Err(
            if row.force_day == day && row.force_count >= FORCE_REFRESH_PER_DAY {
                ForceRefreshDenied::DailyBudgetSpent
            } else {
                ForceRefreshDenied::TooSoon {
                    retry_after_secs: (row.last_force_at + FORCE_REFRESH_MIN_INTERVAL - now).max(1),
                }
            },
        ))
    }
}
