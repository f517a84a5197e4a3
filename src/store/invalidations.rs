//! The per-key limit on token invalidations: one careless client must not spend an app's
//! 20 daily `force_refresh` calls. Counted in the store, so the limit holds across the fleet.

use super::{Store, StoreError, with_pool};
use crate::domain::AppId;

impl Store {
    /// Counts one invalidation by `key` for `app` on Beijing day `day`, unless `limit` are
    /// counted already; false when the limit is reached. Earlier days' counts are dropped.
    pub async fn reserve_invalidation(
        &self,
        key: &str,
        app: &AppId,
        day: i64,
        limit: i64,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO key_invalidations (api_key, app, day, count) VALUES ($1, $2, $3, 1)
                   ON CONFLICT (api_key, app, day) DO UPDATE SET count = key_invalidations.count + 1
                   WHERE key_invalidations.count < $4
                   RETURNING count";
        let counted = with_pool!(&self.write, |pool| {
            sqlx::query(
                "DELETE FROM key_invalidations WHERE api_key = $1 AND app = $2 AND day < $3",
            )
            .bind(key)
            .bind(app)
            .bind(day)
            .execute(pool)
            .await?;
            sqlx::query_as::<_, (i64,)>(sql)
                .bind(key)
                .bind(app)
                .bind(day)
                .bind(limit)
                .fetch_optional(pool)
                .await?
        });
        Ok(counted.is_some())
    }

    /// Gives back one counted invalidation that cost WeChat nothing (our own budget
    /// refused the `force_refresh` before WeChat was asked).
    pub async fn release_invalidation(
        &self,
        key: &str,
        app: &AppId,
        day: i64,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE key_invalidations SET count = count - 1
                   WHERE api_key = $1 AND app = $2 AND day = $3 AND count > 0";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(key)
                .bind(app)
                .bind(day)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
