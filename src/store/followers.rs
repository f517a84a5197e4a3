//! Follower info: identities completed from WeChat's `user/info`, the queue of lookups a
//! `subscribe` push asks for, the background fill's daily quota, and follower imports
//! (their cursor, progress and lease).

use super::identities::{COLUMNS, IdentityRow};
use super::{Backend, Identity, Store, StoreError, StoreTx, with_pool, with_tx};
use crate::clock::Timestamp;
use crate::domain::{AppId, OpenId, UnionId};
use serde::Serialize;
use tokio::sync::Notify;

/// Wakes this process's follower lookup workers: a lookup was queued or an import started.
pub static FOLLOWERS_QUEUED: Notify = Notify::const_new();

/// What one lookup said about a person, parsed (see `crate::followers`).
#[derive(Debug, Clone)]
pub struct LookedUp {
    pub openid: OpenId,
    pub follows: bool,
    /// When they followed (WeChat's `subscribe_time`), for followers.
    pub since: Option<Timestamp>,
    pub unionid: Option<UnionId>,
}

/// One import of an app's followers.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FollowerImport {
    pub app: AppId,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// WeChat's follower count (`user/get`'s `total`), once the first page is read.
    pub total: Option<i64>,
    /// Followers stored so far.
    pub imported: i64,
    /// Of those, bound to a business user (already, or now through their unionid).
    pub bound: i64,
    /// `user/get` pages finished.
    pub pages: i64,
    /// Why the last attempt stopped (the import is retried) or why it failed.
    pub last_error: Option<String>,
    pub started_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// The `next_openid` the current page is fetched with (empty: the first page).
    #[serde(skip)]
    pub next_openid: String,
    /// How many openids of the current page are stored.
    #[serde(skip)]
    pub page_done: i64,
}

const IMPORT_COLUMNS: &str = "app, state, total, imported, bound, pages, last_error, started_at, updated_at, finished_at, next_openid, page_done";

impl Store {
    /// Stores what lookups said, in one transaction: each identity created when new (as an
    /// unbound snsapi_base identity), its unionid learnt when it had none, its follow state
    /// set unless a newer push said otherwise. Snapshot identities are left alone.
    pub async fn save_follower_infos(
        &self,
        app: &AppId,
        infos: &[LookedUp],
        now: Timestamp,
    ) -> Result<Vec<Identity>, StoreError> {
        // A follower's state comes with its time; a non-follower's time is unknown
        // (WeChat gives nothing but `subscribe: 0`): it is set without moving the time.
        let upsert = format!(
            "INSERT INTO identities (app, openid, unionid, scope, is_snapshot, created_at, updated_at, follows, follow_changed_at)
             VALUES ($1, $2, $3, 'snsapi_base', FALSE, $4, $4, $5, $6)
             ON CONFLICT (app, openid) DO UPDATE SET
                unionid = COALESCE(identities.unionid, excluded.unionid),
                follows = CASE
                    WHEN excluded.follow_changed_at IS NULL THEN excluded.follows
                    WHEN identities.follow_changed_at IS NULL
                      OR identities.follow_changed_at <= excluded.follow_changed_at THEN excluded.follows
                    ELSE identities.follows END,
                follow_changed_at = CASE
                    WHEN excluded.follow_changed_at IS NOT NULL
                     AND (identities.follow_changed_at IS NULL
                          OR identities.follow_changed_at <= excluded.follow_changed_at)
                    THEN excluded.follow_changed_at
                    ELSE identities.follow_changed_at END,
                updated_at = excluded.updated_at
             WHERE NOT identities.is_snapshot
             RETURNING {COLUMNS}"
        );
        let lookup = "INSERT INTO follower_lookups (app, openid, looked_up_at, result) VALUES ($1, $2, $3, $4)
                      ON CONFLICT (app, openid) DO UPDATE SET looked_up_at = excluded.looked_up_at, result = excluded.result";
        let rows: Vec<IdentityRow> = with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut rows = Vec::with_capacity(infos.len());
            for info in infos {
                let row: Option<IdentityRow> = sqlx::query_as(&upsert)
                    .bind(app)
                    .bind(&info.openid)
                    .bind(info.unionid.as_ref())
                    .bind(now.secs())
                    .bind(info.follows)
                    .bind(info.since.map(Timestamp::secs))
                    .fetch_optional(&mut *tx)
                    .await?;
                sqlx::query(lookup)
                    .bind(app)
                    .bind(&info.openid)
                    .bind(now.secs())
                    .bind(if info.follows {
                        "follows"
                    } else {
                        "not_following"
                    })
                    .execute(&mut *tx)
                    .await?;
                rows.extend(row);
            }
            tx.commit().await?;
            rows
        });
        rows.into_iter().map(Identity::try_from).collect()
    }

    /// Identities stored for the app (snapshot ones aside).
    pub async fn identity_count(&self, app: &AppId) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM identities WHERE app = $1 AND NOT is_snapshot";
        let (n,): (i64,) = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql).bind(app).fetch_one(pool).await?
        });
        Ok(n)
    }

    /// Which of these unionids are bound to a user through some identity.
    pub async fn bound_unionids(&self, unionids: &[UnionId]) -> Result<Vec<UnionId>, StoreError> {
        if unionids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        // Bounded lists of placeholders, well under both backends' limits.
        for chunk in unionids.chunks(500) {
            let list = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT DISTINCT unionid FROM identities
                 WHERE unionid IN ({list}) AND user_id IS NOT NULL AND NOT is_snapshot"
            );
            let rows: Vec<(UnionId,)> = with_pool!(&self.db, |pool| {
                let mut q = sqlx::query_as(&sql);
                for u in chunk {
                    q = q.bind(u);
                }
                q.fetch_all(pool).await?
            });
            found.extend(rows.into_iter().map(|(u,)| u));
        }
        Ok(found)
    }

    /// WeChat does not know this openid for the app (40003): not asked again by the
    /// background fill.
    pub async fn mark_openid_invalid(
        &self,
        app: &AppId,
        openid: &OpenId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO follower_lookups (app, openid, looked_up_at, result) VALUES ($1, $2, $3, 'invalid_openid')
                   ON CONFLICT (app, openid) DO UPDATE SET looked_up_at = excluded.looked_up_at, result = excluded.result";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(app)
                .bind(openid)
                .bind(now.secs())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Identities of `app` without a unionid that were never looked up: the background
    /// fill's work, oldest first.
    pub async fn identities_to_fill(
        &self,
        app: &AppId,
        limit: i64,
    ) -> Result<Vec<OpenId>, StoreError> {
        let sql = "SELECT i.openid FROM identities i
                   LEFT JOIN follower_lookups l ON l.app = i.app AND l.openid = i.openid
                   WHERE i.app = $1 AND i.unionid IS NULL AND NOT i.is_snapshot AND l.openid IS NULL
                   ORDER BY i.created_at, i.openid LIMIT $2";
        let rows: Vec<(OpenId,)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(o,)| o).collect())
    }

    /// Takes up to `want` lookups of the app's `day` from a daily budget of `limit`,
    /// shared by every instance; returns how many were granted (0 when it is spent).
    pub async fn take_follower_quota(
        &self,
        app: &AppId,
        day: i64,
        want: i64,
        limit: i64,
    ) -> Result<i64, StoreError> {
        let ensure = "INSERT INTO follower_quota (app, day, used) VALUES ($1, $2, 0) ON CONFLICT (app, day) DO NOTHING";
        let take = "UPDATE follower_quota SET used = used + $3
                    WHERE app = $1 AND day = $2 AND used + $3 <= $4 RETURNING used";
        let mut want = want.min(limit);
        for _ in 0..5 {
            if want <= 0 {
                return Ok(0);
            }
            let taken: Option<(i64,)> = with_pool!(&self.write, |pool| {
                sqlx::query(ensure)
                    .bind(app)
                    .bind(day)
                    .execute(pool)
                    .await?;
                sqlx::query_as(take)
                    .bind(app)
                    .bind(day)
                    .bind(want)
                    .bind(limit)
                    .fetch_optional(pool)
                    .await?
            });
            if taken.is_some() {
                return Ok(want);
            }
            // Less is left than asked: ask for what is left (another instance may take
            // it first; then ask again).
            want = limit - self.follower_quota_used(app, day).await?;
        }
        Ok(0)
    }

    /// Lookups the background fill spent on the app's `day`.
    pub async fn follower_quota_used(&self, app: &AppId, day: i64) -> Result<i64, StoreError> {
        let sql = "SELECT used FROM follower_quota WHERE app = $1 AND day = $2";
        let row: Option<(i64,)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(day)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map_or(0, |(u,)| u))
    }

    /// Claims up to `limit` queued lookups due at `now` (across apps), holding them for
    /// `hold_secs`: another instance takes them only after that. Returns `(app, openid,
    /// attempts so far)`.
    pub async fn claim_follower_refreshes(
        &self,
        now: Timestamp,
        hold_secs: i64,
        limit: i64,
    ) -> Result<Vec<(AppId, OpenId, i64)>, StoreError> {
        let rows: Vec<(AppId, OpenId, i64)> = with_pool!(&self.write, |pool| {
            let sql = format!(
                "UPDATE follower_refresh_queue SET not_before = $1, attempts = attempts + 1
                 WHERE not_before <= $2 AND (app, openid) IN (
                     SELECT app, openid FROM follower_refresh_queue
                     WHERE not_before <= $2 ORDER BY queued_at LIMIT $3 {skip_locked})
                 RETURNING app, openid, attempts",
                skip_locked = pool.skip_locked()
            );
            sqlx::query_as(&sql)
                .bind(now.plus_secs(hold_secs).secs())
                .bind(now.secs())
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Lookups done (or given up): off the queue.
    pub async fn finish_follower_refreshes(
        &self,
        app: &AppId,
        openids: &[OpenId],
    ) -> Result<(), StoreError> {
        let sql = "DELETE FROM follower_refresh_queue WHERE app = $1 AND openid = $2";
        with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            for o in openids {
                sqlx::query(sql).bind(app).bind(o).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Lookups waiting in the queue (all apps).
    pub async fn follower_refreshes_queued(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = with_pool!(&self.db, |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM follower_refresh_queue")
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }
}

impl StoreTx {
    /// Queues a lookup of the person (a `subscribe` push), in the push's transaction, and
    /// wakes the workers (`crate::followers`); the push is never held up by the lookup.
    pub async fn queue_follower_refresh(
        &mut self,
        app: &AppId,
        openid: &OpenId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO follower_refresh_queue (app, openid, queued_at, not_before, attempts)
                   VALUES ($1, $2, $3, $3, 0)
                   ON CONFLICT (app, openid) DO UPDATE SET not_before = excluded.not_before, attempts = 0";
        with_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(app)
                .bind(openid)
                .bind(now.secs())
                .execute(&mut *conn)
                .await?;
        });
        FOLLOWERS_QUEUED.notify_waiters();
        Ok(())
    }
}

/// How far an import got with one batch of a page.
#[derive(Debug, Clone, Copy)]
pub struct ImportStep {
    /// Openids of the current page now stored.
    pub page_done: i64,
    pub imported: i64,
    pub bound: i64,
}

impl Store {
    /// Starts an import of the app's followers from the first page; `Err` with the running
    /// one when one runs already (a finished or failed one is started afresh).
    pub async fn start_follower_import(
        &self,
        app: &AppId,
        now: Timestamp,
    ) -> Result<Result<FollowerImport, FollowerImport>, StoreError> {
        let sql = format!(
            "INSERT INTO follower_imports (app, state, started_at, updated_at) VALUES ($1, 'running', $2, $2)
             ON CONFLICT (app) DO UPDATE SET state = 'running', next_openid = '', page_done = 0,
                total = NULL, imported = 0, bound = 0, pages = 0, last_error = NULL,
                lease_owner = NULL, lease_until = 0, started_at = excluded.started_at,
                updated_at = excluded.updated_at, finished_at = NULL
             WHERE follower_imports.state <> 'running'
             RETURNING {IMPORT_COLUMNS}"
        );
        let row: Option<FollowerImport> = with_pool!(&self.write, |pool| {
            sqlx::query_as(&sql)
                .bind(app)
                .bind(now.secs())
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some(r) => Ok(Ok(r)),
            None => match self.follower_import(app).await? {
                Some(running) => Ok(Err(running)),
                // Deleted between the two statements: nothing runs; try once more.
                None => Box::pin(self.start_follower_import(app, now)).await,
            },
        }
    }

    pub async fn follower_import(&self, app: &AppId) -> Result<Option<FollowerImport>, StoreError> {
        let sql = format!("SELECT {IMPORT_COLUMNS} FROM follower_imports WHERE app = $1");
        Ok(with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql).bind(app).fetch_optional(pool).await?
        }))
    }

    /// Every app's latest import, for the admin page.
    pub async fn follower_imports(&self) -> Result<Vec<FollowerImport>, StoreError> {
        let sql = format!("SELECT {IMPORT_COLUMNS} FROM follower_imports ORDER BY app");
        Ok(with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql).fetch_all(pool).await?
        }))
    }

    /// Takes a running import whose lease ran out (new, or its instance died or paused it)
    /// for `owner` until `now + lease_secs`; one instance at a time runs an app's import.
    /// `only`: that app's import, none other.
    pub async fn claim_follower_import(
        &self,
        owner: &str,
        only: Option<&AppId>,
        now: Timestamp,
        lease_secs: i64,
    ) -> Result<Option<FollowerImport>, StoreError> {
        let filter = if only.is_some() { "AND app = $4" } else { "" };
        let sql = format!(
            "UPDATE follower_imports SET lease_owner = $1, lease_until = $2
             WHERE state = 'running' AND lease_until <= $3 AND app = (
                 SELECT app FROM follower_imports WHERE state = 'running' AND lease_until <= $3 {filter}
                 ORDER BY updated_at, app LIMIT 1)
             RETURNING {IMPORT_COLUMNS}"
        );
        Ok(with_pool!(&self.write, |pool| {
            let mut q = sqlx::query_as(&sql)
                .bind(owner)
                .bind(now.plus_secs(lease_secs).secs())
                .bind(now.secs());
            if let Some(app) = only {
                q = q.bind(app);
            }
            q.fetch_optional(pool).await?
        }))
    }

    /// Records a stored batch of the current page and renews the lease; false when the
    /// lease is no longer `owner`'s (it stops).
    pub async fn advance_follower_import(
        &self,
        app: &AppId,
        owner: &str,
        step: ImportStep,
        total: i64,
        now: Timestamp,
        lease_secs: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE follower_imports SET page_done = $1, imported = imported + $2, bound = bound + $3,
                       total = $4, updated_at = $5, lease_until = $6, last_error = NULL
                   WHERE app = $7 AND lease_owner = $8 AND state = 'running'";
        let n = with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(step.page_done)
                .bind(step.imported)
                .bind(step.bound)
                .bind(total)
                .bind(now.secs())
                .bind(now.plus_secs(lease_secs).secs())
                .bind(app)
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// The current page is stored: the next one is fetched with `next_openid`.
    pub async fn next_follower_page(
        &self,
        app: &AppId,
        owner: &str,
        next_openid: &str,
        now: Timestamp,
        lease_secs: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE follower_imports SET next_openid = $1, page_done = 0, pages = pages + 1,
                       updated_at = $2, lease_until = $3
                   WHERE app = $4 AND lease_owner = $5 AND state = 'running'";
        let n = with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(next_openid)
                .bind(now.secs())
                .bind(now.plus_secs(lease_secs).secs())
                .bind(app)
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Ends an import: `done`, or `failed` with why.
    pub async fn finish_follower_import(
        &self,
        app: &AppId,
        owner: &str,
        failed: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE follower_imports SET state = $1, last_error = $2, finished_at = $3, updated_at = $3,
                       lease_owner = NULL, lease_until = 0
                   WHERE app = $4 AND lease_owner = $5 AND state = 'running'";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(if failed.is_some() { "failed" } else { "done" })
                .bind(failed)
                .bind(now.secs())
                .bind(app)
                .bind(owner)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Gives the import back until `retry_at` (WeChat's quota, an outage), noting why.
    pub async fn pause_follower_import(
        &self,
        app: &AppId,
        owner: &str,
        why: &str,
        retry_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE follower_imports SET last_error = $1, lease_owner = NULL, lease_until = $2, updated_at = $3
                   WHERE app = $4 AND lease_owner = $5 AND state = 'running'";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(why)
                .bind(retry_at.secs())
                .bind(now.secs())
                .bind(app)
                .bind(owner)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
