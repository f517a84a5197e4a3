//! Mini-program sessions: the sealed session key of each (app, openid). The store only
//! keeps bytes; sealing and opening happen in `crate::identity::mini_program` with the storage key.

use super::{Store, StoreError, with_pool};
use crate::clock::Timestamp;
use crate::domain::{AppId, OpenId};

impl Store {
    /// Keeps the sealed session key of the latest login of an identity (which must exist).
    pub async fn save_session_key(
        &self,
        app: &AppId,
        openid: &OpenId,
        sealed: &[u8],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO mp_sessions (app, openid, session_key, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $4)
                   ON CONFLICT (app, openid) DO UPDATE SET
                      session_key = excluded.session_key,
                      logins = mp_sessions.logins + 1,
                      updated_at = excluded.updated_at";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(app)
                .bind(openid)
                .bind(sealed)
                .bind(now.secs())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The sealed session key of an identity's latest login, as stored.
    pub async fn sealed_session_key(
        &self,
        app: &AppId,
        openid: &OpenId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = "SELECT session_key FROM mp_sessions WHERE app = $1 AND openid = $2";
        let row: Option<(Vec<u8>,)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(openid)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(b,)| b))
    }
}
