//! Pruning finished records in small batches ([`crate::retention`] schedules it).

use super::{Store, StoreError, with_pool};

/// A kind of record the pruner deletes once it is older than its retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prunable {
    /// By `created_at` (seconds).
    OauthExchanges,
    /// By `expires_at` (seconds).
    LoginCodes,
    /// By `expires_at` (seconds).
    LinkTickets,
    /// By `refresh_expires_at` (seconds).
    WebTokens,
    /// Finished ones, by `updated_ms` (milliseconds).
    Messages,
    /// Handled ones, by `received_at` (seconds).
    PushEvents,
    /// By `reported_at` (seconds).
    PushDeliveryReports,
    /// Forwarded pushes' records, by `started_at` (seconds), like the pushes.
    PushForwards,
    /// Not deleted: the stored answer (a reply to a person) is emptied, by `started_at`
    /// (seconds); WeChat's retries of a push come within a minute.
    PushForwardAnswers,
    /// Customer-service windows, by `open_until` (seconds): closed as long as the pushes
    /// that opened them are kept.
    CustomWindows,
}

impl Prunable {
    pub const ALL: [Prunable; 10] = [
        Self::OauthExchanges,
        Self::LoginCodes,
        Self::LinkTickets,
        Self::WebTokens,
        Self::Messages,
        Self::PushEvents,
        Self::PushDeliveryReports,
        Self::PushForwards,
        Self::PushForwardAnswers,
        Self::CustomWindows,
    ];

    /// The table, as logs and metrics name it.
    pub fn table(self) -> &'static str {
        match self {
            Self::OauthExchanges => "oauth_exchanges",
            Self::LoginCodes => "login_codes",
            Self::LinkTickets => "link_tickets",
            Self::WebTokens => "web_tokens",
            Self::Messages => "messages",
            Self::PushEvents => "push_events",
            Self::PushDeliveryReports => "push_delivery_reports",
            Self::PushForwards => "push_forwards",
            Self::PushForwardAnswers => "push_forwards.answer",
            Self::CustomWindows => "custom_windows",
        }
    }

    /// One batch: the oldest `$2` rows older than `$1`, through the retention indexes.
    fn sql(self) -> &'static str {
        match self {
            Self::OauthExchanges => {
                "DELETE FROM oauth_exchanges WHERE code_hash IN
                    (SELECT code_hash FROM oauth_exchanges WHERE created_at < $1 ORDER BY created_at LIMIT $2)"
            }
            Self::LoginCodes => {
                "DELETE FROM login_codes WHERE code_hash IN
                    (SELECT code_hash FROM login_codes WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)"
            }
            Self::LinkTickets => {
                "DELETE FROM link_tickets WHERE ticket_hash IN
                    (SELECT ticket_hash FROM link_tickets WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)"
            }
            Self::WebTokens => {
                "DELETE FROM web_tokens WHERE (app, openid) IN
                    (SELECT app, openid FROM web_tokens WHERE refresh_expires_at < $1
                     ORDER BY refresh_expires_at LIMIT $2)"
            }
            Self::Messages => {
                "DELETE FROM messages WHERE id IN
                    (SELECT id FROM messages
                     WHERE status IN ('sent', 'delivered', 'failed', 'rejected') AND updated_ms < $1
                     ORDER BY updated_ms LIMIT $2)"
            }
            Self::PushEvents => {
                "DELETE FROM push_events WHERE id IN
                    (SELECT id FROM push_events WHERE handled_at IS NOT NULL AND received_at < $1
                     ORDER BY id LIMIT $2)"
            }
            Self::PushDeliveryReports => {
                "DELETE FROM push_delivery_reports WHERE (app, msgid) IN
                    (SELECT app, msgid FROM push_delivery_reports WHERE reported_at < $1
                     ORDER BY reported_at LIMIT $2)"
            }
            Self::PushForwards => {
                "DELETE FROM push_forwards WHERE (app, dedup_key) IN
                    (SELECT app, dedup_key FROM push_forwards WHERE started_at < $1
                     ORDER BY started_at LIMIT $2)"
            }
            Self::PushForwardAnswers => {
                "UPDATE push_forwards SET answer = NULL WHERE (app, dedup_key) IN
                    (SELECT app, dedup_key FROM push_forwards
                     WHERE answer IS NOT NULL AND started_at < $1 ORDER BY started_at LIMIT $2)"
            }
            Self::CustomWindows => {
                "DELETE FROM custom_windows WHERE (app, openid) IN
                    (SELECT app, openid FROM custom_windows WHERE open_until < $1
                     ORDER BY open_until LIMIT $2)"
            }
        }
    }
}

impl Store {
    /// Deletes at most `batch` records of `kind` older than `before` (in the kind's unit);
    /// returns how many went. One short statement: the writer is free again at once.
    pub async fn prune_batch(
        &self,
        kind: Prunable,
        before: i64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let n = with_pool!(&self.write, |pool| {
            sqlx::query(kind.sql())
                .bind(before)
                .bind(batch)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n)
    }
}
