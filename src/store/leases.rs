//! The refresh lease of a value the whole fleet shares (an app's access token, its JS-SDK
//! tickets): one instance at a time may fetch the next value for the version it read, and a
//! lease left by a dead instance runs out after `lease_secs`.

use super::{Store, StoreError, with_pool};

/// A row holding a fleet-shared value: its table and the key columns naming it.
pub(super) struct Leased<'a> {
    pub table: &'static str,
    /// `(column, value)` pairs that name the row.
    pub keys: Vec<(&'static str, &'a str)>,
}

impl Leased<'_> {
    /// ` AND col = $n ...` for the keys, numbered from `first`.
    fn key_filter(&self, first: usize) -> String {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, (col, _))| format!(" AND {col} = ${}", first + i))
            .collect()
    }
}

impl Store {
    /// Takes (or renews) the right to refresh the value that is at `version` now. True for
    /// one instance at a time.
    pub(super) async fn try_lease(
        &self,
        row: &Leased<'_>,
        owner: &str,
        version: i64,
        now: i64,
        lease_secs: i64,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {} SET lease_owner = $1, lease_until = $2
             WHERE version = $3 AND (lease_until <= $4 OR lease_owner = $1){}",
            row.table,
            row.key_filter(5)
        );
        let n = with_pool!(&self.write, |pool| {
            let mut q = sqlx::query(&sql)
                .bind(owner)
                .bind(now + lease_secs)
                .bind(version)
                .bind(now);
            for (_, v) in &row.keys {
                q = q.bind(*v);
            }
            q.execute(pool).await?.rows_affected()
        });
        Ok(n == 1)
    }

    /// Gives the lease back (a fetch failed): another instance may try at once.
    pub(super) async fn release_lease(
        &self,
        row: &Leased<'_>,
        owner: &str,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE {} SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1{}",
            row.table,
            row.key_filter(2)
        );
        with_pool!(&self.write, |pool| {
            let mut q = sqlx::query(&sql).bind(owner);
            for (_, v) in &row.keys {
                q = q.bind(*v);
            }
            q.execute(pool).await?;
        });
        Ok(())
    }
}
