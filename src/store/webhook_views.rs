//! What the API and the admin page read and change of the webhooks' outbox: endpoint
//! states, deliveries with their attempts, replays, test events, re-enabling.

use super::webhooks::{
    EVENT_COLUMNS, EventRow, PendingDelivery, StoredWebhookEvent, events_written, insert_events_sql,
};
use super::{Backend, Store, StoreError, with_pool};
use crate::clock::{Timestamp, serde_unix};
use crate::domain::{EventId, NewEvent};
use serde::Serialize;

/// An endpoint as the fleet shares it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndpointState {
    pub name: String,
    /// Failed attempts in a row (0 when the last one succeeded).
    pub failures: i64,
    #[serde(serialize_with = "serde_unix::opt_millis")]
    #[schema(value_type = Option<i64>)]
    pub failing_since_ms: Option<Timestamp>,
    #[serde(serialize_with = "serde_unix::millis")]
    #[schema(value_type = i64)]
    pub next_attempt_ms: Timestamp,
    /// Set when it failed for the whole retry period; nothing is delivered until enabled.
    #[serde(serialize_with = "serde_unix::opt_millis")]
    #[schema(value_type = Option<i64>)]
    pub disabled_ms: Option<Timestamp>,
    pub disabled_reason: Option<String>,
    /// Deliveries waiting, and the time of the oldest one's event.
    pub pending: i64,
    #[serde(serialize_with = "serde_unix::opt_millis")]
    #[schema(value_type = Option<i64>)]
    pub oldest_pending_ms: Option<Timestamp>,
}

/// One delivery with every attempt, newest first in lists.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub event: StoredWebhookEvent,
    /// `pending` or `delivered`.
    pub status: String,
    #[serde(serialize_with = "serde_unix::opt_millis")]
    #[schema(value_type = Option<i64>)]
    pub delivered_ms: Option<Timestamp>,
    pub attempts: Vec<AttemptView>,
}

/// One attempt and the receiver's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct AttemptView {
    pub attempt: i64,
    pub at_ms: i64,
    pub duration_ms: i64,
    /// The HTTP status; null when no answer came.
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// The first bytes of the answer's body.
    pub answer: Option<String>,
}

impl Store {
    /// Every endpoint's state, with its queue's length and age.
    pub async fn webhook_endpoints(&self) -> Result<Vec<EndpointState>, StoreError> {
        type Row = (
            String,
            i64,
            Option<i64>,
            i64,
            Option<i64>,
            Option<String>,
            i64,
            Option<i64>,
        );
        let sql = "SELECT e.name, e.failures, e.failing_since_ms, e.next_attempt_ms, e.disabled_ms,
                          e.disabled_reason,
                          (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint = e.name AND d.status = 'pending'),
                          (SELECT MIN(occurred_ms) FROM webhook_deliveries d WHERE d.endpoint = e.name AND d.status = 'pending')
                   FROM webhook_endpoints e ORDER BY e.name";
        let rows: Vec<Row> =
            with_pool!(&self.db, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        Ok(rows
            .into_iter()
            .map(|r| EndpointState {
                name: r.0,
                failures: r.1,
                failing_since_ms: r.2.map(Timestamp::from_millis),
                next_attempt_ms: Timestamp::from_millis(r.3),
                disabled_ms: r.4.map(Timestamp::from_millis),
                disabled_reason: r.5,
                pending: r.6,
                oldest_pending_ms: r.7.map(Timestamp::from_millis),
            })
            .collect())
    }

    /// An endpoint's deliveries, newest event first, each with its attempts; `before` is
    /// the previous page's last event time.
    pub async fn webhook_deliveries(
        &self,
        endpoint: &str,
        before: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            event: EventRow,
            status: String,
            delivered_ms: Option<i64>,
        }
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, d.attempts, d.replays, d.status, d.delivered_ms FROM webhook_deliveries d
             JOIN webhook_events e ON e.id = d.event_id
             WHERE d.endpoint = $1 AND d.occurred_ms < $2
             ORDER BY d.occurred_ms DESC, d.event_seq DESC LIMIT $3"
        );
        let attempts_sql = "SELECT attempt, at_ms, duration_ms, status_code, error, answer
                            FROM webhook_attempts WHERE endpoint = $1 AND event_id = $2 ORDER BY attempt";
        let mut out = Vec::new();
        with_pool!(&self.db, |pool| {
            let rows: Vec<Row> = sqlx::query_as(&sql)
                .bind(endpoint)
                .bind(before.map_or(i64::MAX, Timestamp::millis))
                .bind(limit)
                .fetch_all(pool)
                .await?;
            for r in rows {
                let attempts: Vec<AttemptView> = sqlx::query_as(attempts_sql)
                    .bind(endpoint)
                    .bind(&r.event.id)
                    .fetch_all(pool)
                    .await?;
                out.push(DeliveryView {
                    event: PendingDelivery::try_from(r.event)?.event,
                    status: r.status,
                    delivered_ms: r.delivered_ms.map(Timestamp::from_millis),
                    attempts,
                });
            }
        });
        Ok(out)
    }

    /// Queues one event again for an endpoint, under its original id (whatever its
    /// filter). False when there is no such event.
    pub async fn replay_webhook_event(
        &self,
        endpoint: &str,
        event: &EventId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO webhook_deliveries (endpoint, event_id, event_seq, occurred_ms, status, created_ms)
                   SELECT $1, id, seq, occurred_ms, 'pending', $3 FROM webhook_events WHERE id = $2
                   ON CONFLICT (endpoint, event_id) DO UPDATE SET status = 'pending', delivered_ms = NULL,
                                 replays = webhook_deliveries.replays + 1";
        let n = with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(endpoint)
                .bind(event)
                .bind(now.millis())
                .execute(pool)
                .await?
                .rows_affected()
        });
        if n > 0 {
            events_written();
        }
        Ok(n > 0)
    }

    /// Queues again every event since `since` that the endpoint's filter takes (test
    /// events aside). Returns how many.
    pub async fn replay_webhook_since(
        &self,
        endpoint: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let sql = "INSERT INTO webhook_deliveries (endpoint, event_id, event_seq, occurred_ms, status, created_ms)
                   SELECT w.name, e.id, e.seq, e.occurred_ms, 'pending', $3
                   FROM webhook_events e JOIN webhook_endpoints w ON w.name = $1
                   WHERE e.occurred_ms >= $2 AND e.type <> 'webhook.test'
                     AND (w.event_types LIKE '%,*,%'
                          OR w.event_types LIKE '%,' || e.type || ',%'
                          OR w.event_types LIKE '%,' || SUBSTR(e.type, 1, INSTR(e.type, '.')) || '*,%')
                   ON CONFLICT (endpoint, event_id) DO UPDATE SET status = 'pending', delivered_ms = NULL,
                                 replays = webhook_deliveries.replays + 1";
        let sql = match &self.write {
            // PostgreSQL has no INSTR; STRPOS is the same function.
            super::Db::Postgres(_) => sql.replace("INSTR(", "STRPOS("),
            super::Db::Sqlite(_) => sql.to_owned(),
        };
        let n = with_pool!(&self.write, |pool| {
            sqlx::query(&sql)
                .bind(endpoint)
                .bind(since.millis())
                .bind(now.millis())
                .execute(pool)
                .await?
                .rows_affected()
        });
        if n > 0 {
            events_written();
        }
        Ok(n)
    }

    /// A test event for one endpoint only.
    pub async fn record_test_event(
        &self,
        endpoint: &str,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let n = with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            let (seq, _): (i64, String) = sqlx::query_as(&insert_events_sql(1))
                .bind(&event.id)
                .bind(event.kind)
                .bind(event.at.millis())
                .bind(event.app.as_ref())
                .bind(event.openid.as_ref())
                .bind(event.unionid.as_ref())
                .bind(event.user_id.as_ref())
                .bind(event.data.to_string())
                .fetch_one(&mut *tx)
                .await?;
            let n = sqlx::query(
                "INSERT INTO webhook_deliveries (endpoint, event_id, event_seq, occurred_ms, status, created_ms)
                 SELECT name, $2, $3, $4, 'pending', $4 FROM webhook_endpoints WHERE name = $1",
            )
            .bind(endpoint)
            .bind(&event.id)
            .bind(seq)
            .bind(event.at.millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        events_written();
        Ok(n == 1)
    }

    /// Enables a disabled endpoint: its waiting events are delivered again from the oldest.
    pub async fn enable_webhook_endpoint(&self, endpoint: &str) -> Result<bool, StoreError> {
        let n = with_pool!(&self.write, |pool| {
            sqlx::query(
                "UPDATE webhook_endpoints SET disabled_ms = NULL, disabled_reason = NULL,
                        failures = 0, failing_since_ms = NULL, next_attempt_ms = 0
                 WHERE name = $1",
            )
            .bind(endpoint)
            .execute(pool)
            .await?
            .rows_affected()
        });
        events_written();
        Ok(n == 1)
    }
}
