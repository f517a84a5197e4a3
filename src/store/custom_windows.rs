//! Customer-service windows: from the pushes that open one (see
//! [`crate::wechat::custom::window_grant`]), the latest interaction per (app, openid) and
//! until when the account may write. Written with the pushes ([`note_windows!`], inside
//! the transaction that stores them), read by the outbox before it queues a `custom`
//! message.

use super::{Store, StoreError, with_pool};
use crate::clock::Timestamp;
use crate::domain::{AppId, OpenId};
use std::collections::HashMap;

/// A person's window with an Official Account, as wxlink saw it open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomWindow {
    /// When they last did something that opens it.
    pub last_at: Timestamp,
    /// What that was: `message`, `menu`, `follow` or `scan`.
    pub last_kind: String,
    /// The end of the latest-ending window opened so far.
    pub open_until: Timestamp,
}

/// One row to upsert: (app, openid, last_at, kind, open_until), all instants in seconds.
pub(super) type WindowRow = (AppId, String, i64, &'static str, i64);

/// The windows these pushes open, one row per person (the latest interaction, the
/// latest end). The interaction's time is WeChat's `CreateTime` when it is not after the
/// push's arrival, else the arrival.
pub(super) fn window_rows(pushes: &[&super::NewPush]) -> Vec<WindowRow> {
    let mut rows: HashMap<(AppId, String), WindowRow> = HashMap::new();
    for p in pushes {
        let (Some(openid), Some(grant)) = (
            p.openid.as_deref().filter(|o| !o.is_empty()),
            crate::wechat::custom::window_grant(&p.msg_type, p.event.as_deref()),
        ) else {
            continue;
        };
        let received = p.received_at.secs();
        let at = p.create_time.filter(|t| *t <= received).unwrap_or(received);
        let row = (
            p.app.clone(),
            openid.to_owned(),
            at,
            grant.kind,
            at + grant.secs,
        );
        rows.entry((p.app.clone(), openid.to_owned()))
            .and_modify(|r| {
                if at >= r.2 {
                    (r.2, r.3) = (at, grant.kind);
                }
                r.4 = r.4.max(row.4);
            })
            .or_insert(row);
    }
    rows.into_values().collect()
}

/// The upsert of `n` window rows: the latest interaction and the latest end win.
pub(super) fn upsert_sql(n: usize) -> String {
    let values = (0..n)
        .map(|r| {
            let b = r * 5;
            format!(
                "(${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO custom_windows (app, openid, last_at, last_kind, open_until) VALUES {values}
         ON CONFLICT (app, openid) DO UPDATE SET
             last_kind = CASE WHEN excluded.last_at >= custom_windows.last_at
                              THEN excluded.last_kind ELSE custom_windows.last_kind END,
             last_at = CASE WHEN excluded.last_at > custom_windows.last_at
                            THEN excluded.last_at ELSE custom_windows.last_at END,
             open_until = CASE WHEN excluded.open_until > custom_windows.open_until
                               THEN excluded.open_until ELSE custom_windows.open_until END"
    )
}

/// Records the windows a batch of pushes opens, on the connection of the transaction that
/// stores them: `note_windows!(&mut *tx, &pushes)`.
macro_rules! note_windows {
    ($conn:expr, $pushes:expr) => {{
        let rows = $crate::store::custom_windows::window_rows($pushes);
        // In chunks: SQLite binds by a scan per parameter (see push.rs ROWS_PER_STATEMENT).
        for chunk in rows.chunks($crate::store::sql::ROWS_PER_STATEMENT) {
            let sql = $crate::store::custom_windows::upsert_sql(chunk.len());
            let mut q = sqlx::query(&sql);
            for (app, openid, at, kind, until) in chunk {
                q = q.bind(app).bind(openid).bind(*at).bind(*kind).bind(*until);
            }
            q.execute(&mut *$conn).await?;
        }
    }};
}
pub(crate) use note_windows;

impl Store {
    /// The person's window with the app, if any push of theirs ever opened one.
    pub async fn custom_window(
        &self,
        app: &AppId,
        openid: &OpenId,
    ) -> Result<Option<CustomWindow>, StoreError> {
        let sql = "SELECT last_at, last_kind, open_until FROM custom_windows WHERE app = $1 AND openid = $2";
        let row: Option<(i64, String, i64)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(openid)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(last_at, last_kind, until)| CustomWindow {
            last_at: Timestamp::from_secs(last_at),
            last_kind,
            open_until: Timestamp::from_secs(until),
        }))
    }
}
