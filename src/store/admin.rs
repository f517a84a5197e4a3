//! The admin pages' reads: each app's token bookkeeping (never the token itself), today's
//! messages and pushes per app, quota holds, the identity search, the outbox and the pushes
//! filtered and paged. Nothing here writes; every query runs on the readers' pool.

use super::identities::{COLUMNS as IDENTITY_COLUMNS, IdentityRow};
use super::outbox::{COLUMNS as MESSAGE_COLUMNS, MessageRow};
use super::push::{EVENT_COLUMNS, EventRow};
use super::{Identity, Message, Store, StoreError, StoredEvent, with_pool};
use crate::domain::{AppId, Channel, MessageId, MessageStatus};

/// An app's `access_tokens` row without the token: what the overview shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub app: String,
    pub mode: String,
    /// 1 when a token is stored.
    pub has_token: i64,
    pub expires_at: i64,
    /// Bumped by every stored refresh (the compare-and-set fence).
    pub version: i64,
    pub fetched_at: Option<i64>,
    pub lease_until: i64,
    /// The Beijing day `fetch_count` counts (WeChat's quota day).
    pub fetch_day: i64,
    pub fetch_count: i64,
    pub force_day: i64,
    pub force_count: i64,
    pub last_force_at: i64,
}

/// How many of an app's messages created since a time are in one state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppDay {
    pub app: String,
    pub status: String,
    pub count: i64,
}

/// Which messages the outbox page lists: newest first, `limit` at a time, older than
/// `before` (the last id of the previous page).
#[derive(Debug, Clone, Default)]
pub struct MessageFilter<'a> {
    pub status: Option<MessageStatus>,
    pub app: Option<&'a AppId>,
    pub channel: Option<Channel>,
    pub before: Option<&'a str>,
    pub limit: i64,
}

/// Which pushes the pushes page lists: newest first, `limit` at a time, below `before_id`.
#[derive(Debug, Clone, Default)]
pub struct PushFilter<'a> {
    pub app: Option<&'a AppId>,
    /// The event name or message type, exactly (`TEMPLATESENDJOBFINISH`, `subscribe`, `text`).
    pub kind: Option<&'a str>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Every app's token row, without the token.
    pub async fn admin_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let sql = "SELECT app, mode,
                          CAST(CASE WHEN access_token IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_token,
                          expires_at, version, fetched_at, lease_until, fetch_day, fetch_count,
                          force_day, force_count, last_force_at
                   FROM access_tokens ORDER BY app";
        Ok(with_pool!(&self.db, |pool| {
            sqlx::query_as(sql).fetch_all(pool).await?
        }))
    }

    /// Messages created since `since_ms`, counted per app and state.
    pub async fn admin_messages_since(&self, since_ms: i64) -> Result<Vec<AppDay>, StoreError> {
        let sql = "SELECT app, status, COUNT(*) AS count FROM messages WHERE id >= $1
                   GROUP BY app, status ORDER BY app, status";
        // Ids sort by acceptance time: a time range is a range of the primary key.
        let from = MessageId::first_at(since_ms);
        Ok(with_pool!(&self.db, |pool| {
            sqlx::query_as(sql).bind(&from).fetch_all(pool).await?
        }))
    }

    /// Holds in force: `(app, channel, until_ms, reason)`.
    pub async fn admin_holds(
        &self,
        now_ms: i64,
    ) -> Result<Vec<(String, String, i64, String)>, StoreError> {
        let sql = "SELECT app, channel, until_ms, reason FROM send_holds WHERE until_ms > $1
                   ORDER BY app, channel";
        Ok(with_pool!(&self.db, |pool| {
            sqlx::query_as(sql).bind(now_ms).fetch_all(pool).await?
        }))
    }

    /// Identities whose user id, openid or unionid is `q` exactly (snapshot ones too).
    pub async fn admin_find_identities(
        &self,
        q: &str,
        limit: i64,
    ) -> Result<Vec<Identity>, StoreError> {
        let sql = format!(
            "SELECT {IDENTITY_COLUMNS} FROM identities
             WHERE user_id = $1 OR openid = $1 OR unionid = $1
             ORDER BY user_id, app, openid LIMIT $2"
        );
        let rows: Vec<IdentityRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql)
                .bind(q)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Identity::try_from).collect()
    }

    /// Pushes received since `since` (Unix seconds), counted per app.
    pub async fn admin_pushes_since(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT app, COUNT(*) FROM push_events WHERE received_at >= $1 GROUP BY app";
        Ok(with_pool!(&self.db, |pool| {
            sqlx::query_as(sql).bind(since).fetch_all(pool).await?
        }))
    }

    /// One page of received pushes, newest first.
    pub async fn admin_pushes(&self, f: &PushFilter<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM push_events
             WHERE id < $1 AND ($2 IS NULL OR app = $2) AND ($3 IS NULL OR kind = $3)
             ORDER BY id DESC LIMIT $4"
        );
        let rows: Vec<EventRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql)
                .bind(f.before_id.unwrap_or(i64::MAX))
                .bind(f.app)
                .bind(f.kind)
                .bind(f.limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// One page of the outbox, newest first.
    pub async fn admin_messages(&self, f: &MessageFilter<'_>) -> Result<Vec<Message>, StoreError> {
        // Ids start with "m"; "n" sorts after every one of them.
        let mut binds: Vec<String> = vec![f.before.unwrap_or("n").to_owned()];
        let mut conds = vec!["id < $1".to_owned()];
        let mut add = |column: &str, value: String| {
            binds.push(value);
            conds.push(format!("{column} = ${}", binds.len()));
        };
        if let Some(s) = f.status {
            add("status", s.as_str().to_owned());
        }
        if let Some(a) = f.app {
            add("app", a.as_str().to_owned());
        }
        if let Some(c) = f.channel {
            add("channel", c.as_str().to_owned());
        }
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {} ORDER BY id DESC LIMIT ${}",
            conds.join(" AND "),
            binds.len() + 1
        );
        let rows: Vec<MessageRow> = with_pool!(&self.db, |pool| {
            let mut q = sqlx::query_as(&sql);
            for b in &binds {
                q = q.bind(b);
            }
            q.bind(f.limit).fetch_all(pool).await?
        });
        rows.into_iter().map(Message::try_from).collect()
    }
}
