//! Erasing a person (`DELETE /api/v1/users/{user_id}`): the one place that knows every
//! table holding something of theirs. Identities, web tokens, sealed session keys, link
//! tickets, login codes, consent (subscriptions, form ids, muted categories), follower-info
//! lookups and the pushes WeChat sent about them (with the answers of their forwards and
//! the customer-service windows they opened) are deleted; their messages stay, for counts
//! and states, with the payload and openid erased (unsettled ones fail, so no worker
//! claims an erased payload). One transaction, with the `user.deleted` event in it.

use super::outbox::history_line;
use super::{Backend, Store, StoreError, with_pool};
use crate::clock::Timestamp;
use crate::domain::{AppId, EventId, EventType, MessageStatus, NewEvent, OpenId, UserId};
use serde::Serialize;
use serde_json::json;

/// What a queued message of an erased person becomes: failed, with this reason.
pub const ERASED_REASON: &str = "user deleted";
/// The openid an erased message keeps (a valid openid that names nobody).
pub const ERASED_OPENID: &str = "erased";
/// The payload an erased message keeps: read back as no payload.
pub const ERASED_PAYLOAD: &str = "{}";

/// How many rows of each kind an erase removed (or, for messages, emptied).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Erased {
    /// Identities bound to the user (every app).
    pub identities: u64,
    /// Web access and refresh tokens of those identities.
    pub web_tokens: u64,
    /// Sealed mini-program session keys.
    pub session_keys: u64,
    /// Link tickets minted for the user (pending or used).
    pub link_tickets: u64,
    /// Login codes (`wxlink_code`) naming the identities.
    pub login_codes: u64,
    pub subscriptions: u64,
    pub form_ids: u64,
    pub muted_categories: u64,
    /// Pushes WeChat sent about the identities, and their delivery reports.
    pub push_events: u64,
    pub delivery_reports: u64,
    /// Those pushes' forwards to the app's downstream, with the replies they carried.
    pub push_forwards: u64,
    /// Customer-service windows the identities' pushes opened.
    pub custom_windows: u64,
    /// Follower-info lookups of the identities: done (when, and what WeChat said) or
    /// queued.
    pub follower_lookups: u64,
    /// Messages whose payload and openid were erased (their state and history stay).
    pub messages_erased: u64,
    /// Of those, messages not yet settled (queued, or being sent at that moment): now
    /// `failed`, reason `user deleted`, and never tried again.
    pub messages_cancelled: u64,
}

impl Erased {
    /// Whether anything was there to erase.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}

/// Which count of [`Erased`] a statement adds to.
type Counter = fn(&mut Erased) -> &mut u64;

/// The statements run for each identity, with the counter each adds to.
const PER_IDENTITY: [(&str, Counter); 11] = [
    (
        "DELETE FROM web_tokens WHERE app = $1 AND openid = $2",
        |e| &mut e.web_tokens,
    ),
    (
        "DELETE FROM mp_sessions WHERE app = $1 AND openid = $2",
        |e| &mut e.session_keys,
    ),
    (
        "DELETE FROM login_codes WHERE app = $1 AND openid = $2",
        |e| &mut e.login_codes,
    ),
    (
        "DELETE FROM subscriptions WHERE app = $1 AND openid = $2",
        |e| &mut e.subscriptions,
    ),
    ("DELETE FROM form_ids WHERE app = $1 AND openid = $2", |e| {
        &mut e.form_ids
    }),
    (
        "DELETE FROM push_delivery_reports WHERE app = $1 AND openid = $2",
        |e| &mut e.delivery_reports,
    ),
    (
        "DELETE FROM push_events WHERE app = $1 AND openid = $2",
        |e| &mut e.push_events,
    ),
    (
        "DELETE FROM push_forwards WHERE app = $1 AND openid = $2",
        |e| &mut e.push_forwards,
    ),
    (
        "DELETE FROM custom_windows WHERE app = $1 AND openid = $2",
        |e| &mut e.custom_windows,
    ),
    (
        "DELETE FROM follower_lookups WHERE app = $1 AND openid = $2",
        |e| &mut e.follower_lookups,
    ),
    (
        "DELETE FROM follower_refresh_queue WHERE app = $1 AND openid = $2",
        |e| &mut e.follower_lookups,
    ),
];

impl Store {
    /// Erases everything of `user` (see the module); idempotent: a second call finds
    /// nothing and records no event. The `user.deleted` event is written in the same
    /// transaction, so it exists exactly when the erase does.
    pub async fn erase_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<(Erased, Option<EventId>), StoreError> {
        let cancelled_line = history_line(
            MessageStatus::Failed,
            now,
            json!({ "detail": "not sent: the user was deleted" }),
        );
        let mut erased = Erased::default();
        let mut event_id = None;
        with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            let identities: Vec<(AppId, OpenId)> =
                sqlx::query_as("SELECT app, openid FROM identities WHERE user_id = $1")
                    .bind(user)
                    .fetch_all(&mut *tx)
                    .await?;
            for (app, openid) in &identities {
                for (sql, counter) in PER_IDENTITY {
                    *counter(&mut erased) += sqlx::query(sql)
                        .bind(app)
                        .bind(openid)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
            }
            erased.identities = sqlx::query("DELETE FROM identities WHERE user_id = $1")
                .bind(user)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            erased.link_tickets = sqlx::query("DELETE FROM link_tickets WHERE user_id = $1")
                .bind(user)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            erased.muted_categories =
                sqlx::query("DELETE FROM muted_categories WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            erased.messages_cancelled = sqlx::query(
                "UPDATE messages SET status = 'failed', reason = $2, updated_ms = $3,
                        history = history || $4
                 WHERE user_id = $1 AND status IN ('queued', 'sending')",
            )
            .bind(user)
            .bind(ERASED_REASON)
            .bind(now.millis())
            .bind(&cancelled_line)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            erased.messages_erased = sqlx::query(
                "UPDATE messages SET payload = $3, openid = $2
                 WHERE user_id = $1 AND (payload <> $3 OR openid <> $2)",
            )
            .bind(user)
            .bind(ERASED_OPENID)
            .bind(ERASED_PAYLOAD)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if erased.any() {
                let event = NewEvent {
                    id: EventId::generate(),
                    kind: EventType::UserDeleted,
                    at: now,
                    app: None,
                    openid: None,
                    unionid: None,
                    user_id: Some(user.clone()),
                    data: json!({ "erased": erased }),
                };
                super::webhooks::write_events!(tx, std::slice::from_ref(&event));
                event_id = Some(event.id);
            }
            tx.commit().await?;
        });
        if event_id.is_some() {
            super::webhooks::events_written();
        }
        Ok((erased, event_id))
    }
}
