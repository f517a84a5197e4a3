//! The webhooks' transactional outbox: outgoing events written inside the transaction of
//! the change that caused them, one delivery per endpoint whose filter takes the type;
//! endpoints claimed by one instance at a time under a lease (so each endpoint sees its
//! events in order), every attempt and its answer kept.

use super::{Backend, Store, StoreError, StoreTx, corrupt, with_pool, with_tx};
use crate::clock::{Timestamp, serde_unix};
use crate::domain::{AppId, EventId, EventType, NewEvent, OpenId, UnionId, UserId};
use serde::Serialize;
use std::sync::LazyLock;
use tokio::sync::Notify;

/// Woken after every commit that wrote events, so this process's deliverers start at once
/// instead of at their next poll. Other instances' events are found by polling.
pub static EVENTS_WRITTEN: LazyLock<Notify> = LazyLock::new(Notify::new);

/// `rows` outgoing events; user and unionid left out are filled from the identity.
pub(super) fn insert_events_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let p = |c: usize| format!("${}", r * 8 + c);
            format!(
                "({}, {}, {}, {app}, {openid},
                  COALESCE({}, (SELECT unionid FROM identities WHERE app = {app} AND openid = {openid})),
                  COALESCE({}, (SELECT user_id FROM identities WHERE app = {app} AND openid = {openid})),
                  {})",
                p(1),
                p(2),
                p(3),
                p(6),
                p(7),
                p(8),
                app = p(4),
                openid = p(5),
            )
        })
        .collect();
    format!(
        "INSERT INTO webhook_events (id, type, occurred_ms, app, openid, unionid, user_id, data)
         VALUES {} RETURNING seq, id",
        values.join(", ")
    )
}

/// One delivery for every endpoint whose filter (`,type,family.*,` or `,*,`) takes the
/// type, for `rows` events of `(id, seq, occurred_ms, type, family)`. The patterns are
/// built in the statement: SQLite (built with STAT4) re-prepares a statement each time a
/// LIKE pattern that is a bare parameter is bound again, which was 5% of the send
/// benchmark (bench/profile.sh).
pub(super) fn fan_out_sql(rows: usize) -> String {
    format!(
        "INSERT INTO webhook_deliveries (endpoint, event_id, event_seq, occurred_ms, status, created_ms)
         SELECT e.name, v.column1, v.column2, v.column3, 'pending', v.column3
         FROM webhook_endpoints e JOIN (VALUES {}) AS v
           ON e.event_types LIKE '%,' || v.column4 || ',%'
           OR e.event_types LIKE '%,' || v.column5 || '.*,%'
           OR e.event_types LIKE '%,*,%'",
        super::sql::placeholders(rows, 5)
    )
}

/// Writes events and their deliveries on a connection inside the caller's transaction,
/// [`super::sql::ROWS_PER_STATEMENT`] events per statement.
macro_rules! write_events {
    ($conn:expr, $events:expr) => {
        for chunk in $events.chunks($crate::store::sql::ROWS_PER_STATEMENT) {
            let sql = $crate::store::webhooks::insert_events_sql(chunk.len());
            let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
            for ev in chunk {
                q = q
                    .bind(&ev.id)
                    .bind(ev.kind)
                    .bind(ev.at.millis())
                    .bind(ev.app.as_ref())
                    .bind(ev.openid.as_ref())
                    .bind(ev.unionid.as_ref())
                    .bind(ev.user_id.as_ref())
                    .bind(ev.data.to_string());
            }
            let seqs: std::collections::HashMap<String, i64> = q
                .fetch_all(&mut *$conn)
                .await?
                .into_iter()
                .map(|(seq, id)| (id, seq))
                .collect();
            let sql = $crate::store::webhooks::fan_out_sql(chunk.len());
            let mut q = sqlx::query(&sql);
            for ev in chunk {
                let seq = seqs.get(ev.id.as_str()).copied().unwrap_or_default();
                q = q
                    .bind(&ev.id)
                    .bind(seq)
                    .bind(ev.at.millis())
                    .bind(ev.kind.as_str())
                    .bind(ev.kind.family());
            }
            q.execute(&mut *$conn).await?;
        }
    };
}
pub(super) use write_events;

impl StoreTx {
    /// Records outgoing events as part of this transaction: they exist exactly when the
    /// change that caused them does.
    pub async fn record_events(&mut self, events: &[NewEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        with_tx!(self, |conn| {
            write_events!(conn, events);
        });
        Ok(())
    }
}

/// Wakes this process's deliverers; called after a commit that wrote events.
pub(crate) fn events_written() {
    EVENTS_WRITTEN.notify_waiters();
}

/// An event waiting for an endpoint, with what its payload is made of.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub event: StoredWebhookEvent,
    /// Attempts made so far.
    pub attempts: i64,
    /// Replays of this delivery when it was read (see [`AttemptRecord::replays`]).
    pub replays: i64,
}

/// A stored outgoing event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredWebhookEvent {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(serialize_with = "serde_unix::millis")]
    #[schema(value_type = i64)]
    pub occurred_ms: Timestamp,
    pub app: Option<AppId>,
    pub openid: Option<OpenId>,
    pub unionid: Option<UnionId>,
    pub user_id: Option<UserId>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    pub(super) id: EventId,
    kind: EventType,
    occurred_ms: i64,
    app: Option<AppId>,
    openid: Option<OpenId>,
    unionid: Option<UnionId>,
    user_id: Option<UserId>,
    data: String,
    attempts: i64,
    replays: i64,
}

pub(super) const EVENT_COLUMNS: &str =
    "e.id, e.type AS kind, e.occurred_ms, e.app, e.openid, e.unionid, e.user_id, e.data";

impl TryFrom<EventRow> for PendingDelivery {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(PendingDelivery {
            attempts: r.attempts,
            replays: r.replays,
            event: StoredWebhookEvent {
                id: r.id,
                kind: r.kind,
                occurred_ms: Timestamp::from_millis(r.occurred_ms),
                app: r.app,
                openid: r.openid,
                unionid: r.unionid,
                user_id: r.user_id,
                data: serde_json::from_str(&r.data).map_err(|e| corrupt("webhook_events", e))?,
            },
        })
    }
}

/// What one attempt came to, as recorded.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at: Timestamp,
    pub duration_ms: i64,
    /// The HTTP status, when an answer came.
    pub status_code: Option<u16>,
    /// Why it failed without an answer (refused, timed out...).
    pub error: Option<String>,
    /// The first bytes of the answer.
    pub answer: Option<String>,
    /// 2xx.
    pub delivered: bool,
    /// After a failure: when the endpoint is tried again.
    pub retry_at: Timestamp,
    /// After a failure that ends the retry period: why the endpoint is now disabled.
    pub disable: Option<String>,
    /// The delivery's replay count when its batch read it. A replay made while the attempt
    /// was in flight changes it, and the delivery then stays pending to be sent again.
    pub replays: i64,
}

impl Store {
    /// Records outgoing events in their own transaction (for events that change nothing
    /// else: a conflict refused, a consent declined).
    pub async fn record_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            write_events!(tx, events);
            tx.commit().await?;
        });
        events_written();
        Ok(())
    }

    /// Makes the stored endpoints those configured: their filters refreshed, removed ones
    /// (and their undelivered events) dropped.
    pub async fn sync_webhook_endpoints(
        &self,
        endpoints: &[(String, String)],
    ) -> Result<(), StoreError> {
        with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            let known: Vec<(String,)> = sqlx::query_as("SELECT name FROM webhook_endpoints")
                .fetch_all(&mut *tx)
                .await?;
            for (name,) in known {
                if !endpoints.iter().any(|(n, _)| *n == name) {
                    sqlx::query("DELETE FROM webhook_endpoints WHERE name = $1")
                        .bind(&name)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "DELETE FROM webhook_deliveries WHERE endpoint = $1 AND status = 'pending'",
                    )
                    .bind(&name)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for (name, filter) in endpoints {
                sqlx::query(
                    "INSERT INTO webhook_endpoints (name, event_types) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET event_types = excluded.event_types",
                )
                .bind(name)
                .bind(filter)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Claims up to `limit` endpoints that have events waiting and are due, for `owner`
    /// until `lease_until`. Concurrent instances never claim the same endpoint.
    pub async fn claim_webhook_endpoints(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<(String, i64, Option<Timestamp>)>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>)> = with_pool!(&self.write, |pool| {
            let sql = format!(
                "UPDATE webhook_endpoints SET lease_owner = $1, lease_until_ms = $2
                 WHERE name IN (
                     SELECT name FROM webhook_endpoints e
                     WHERE e.disabled_ms IS NULL AND e.next_attempt_ms <= $3 AND e.lease_until_ms <= $3
                       AND EXISTS (SELECT 1 FROM webhook_deliveries d
                                   WHERE d.endpoint = e.name AND d.status = 'pending')
                     ORDER BY e.next_attempt_ms
                     LIMIT $4 {})
                   AND lease_until_ms <= $3 AND disabled_ms IS NULL
                 RETURNING name, failures, failing_since_ms",
                pool.skip_locked()
            );
            sqlx::query_as(&sql)
                .bind(owner)
                .bind(lease_until.millis())
                .bind(now.millis())
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(n, f, s)| (n, f, s.map(Timestamp::from_millis)))
            .collect())
    }

    /// The next events waiting for an endpoint, in the order they were written (on SQLite
    /// the commit order; either way every cause before its effect).
    pub async fn pending_deliveries(
        &self,
        endpoint: &str,
        limit: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, d.attempts, d.replays FROM webhook_deliveries d
             JOIN webhook_events e ON e.id = d.event_id
             WHERE d.endpoint = $1 AND d.status = 'pending'
             ORDER BY d.event_seq LIMIT $2"
        );
        let rows: Vec<EventRow> = with_pool!(&self.write, |pool| {
            sqlx::query_as(&sql)
                .bind(endpoint)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(PendingDelivery::try_from).collect()
    }

    /// Records a batch's attempts (oldest first; only the last may have failed) and their
    /// effect on the deliveries and the endpoint, and gives the endpoint back, in one
    /// transaction, if `owner` still holds it. Returns false when the lease was lost
    /// (another instance took the endpoint over): nothing is written then.
    pub async fn record_webhook_attempts(
        &self,
        owner: &str,
        endpoint: &str,
        attempts: &[(EventId, i64, AttemptRecord)],
    ) -> Result<bool, StoreError> {
        let Some((_, _, last)) = attempts.last() else {
            return Ok(true);
        };
        let endpoint_sql = if last.delivered {
            "UPDATE webhook_endpoints SET failures = 0, failing_since_ms = NULL, next_attempt_ms = 0,
                    lease_owner = NULL, lease_until_ms = 0
             WHERE name = $1 AND lease_owner = $2"
        } else if last.disable.is_some() {
            "UPDATE webhook_endpoints SET failures = failures + 1,
                    failing_since_ms = COALESCE(failing_since_ms, $3), next_attempt_ms = $4,
                    lease_owner = NULL, lease_until_ms = 0, disabled_ms = $3, disabled_reason = $5
             WHERE name = $1 AND lease_owner = $2"
        } else {
            "UPDATE webhook_endpoints SET failures = failures + 1,
                    failing_since_ms = COALESCE(failing_since_ms, $3), next_attempt_ms = $4,
                    lease_owner = NULL, lease_until_ms = 0
             WHERE name = $1 AND lease_owner = $2"
        };
        with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            let q = sqlx::query(endpoint_sql).bind(endpoint).bind(owner);
            let q = match (last.delivered, &last.disable) {
                (true, _) => q,
                (false, None) => q.bind(last.at.millis()).bind(last.retry_at.millis()),
                (false, Some(why)) => q
                    .bind(last.at.millis())
                    .bind(last.retry_at.millis())
                    .bind(why.as_str()),
            };
            if q.execute(&mut *tx).await?.rows_affected() == 0 {
                return Ok(false);
            }
            for (event, attempt, r) in attempts {
                sqlx::query(
                    "INSERT INTO webhook_attempts (endpoint, event_id, attempt, at_ms, duration_ms, status_code, error, answer)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (endpoint, event_id, attempt) DO NOTHING",
                )
                .bind(endpoint)
                .bind(event)
                .bind(attempt)
                .bind(r.at.millis())
                .bind(r.duration_ms)
                .bind(r.status_code.map(i64::from))
                .bind(r.error.as_deref())
                .bind(r.answer.as_deref())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE webhook_deliveries SET attempts = $3, last_attempt_ms = $4,
                            status = CASE WHEN $5 AND replays = $6 THEN 'delivered' ELSE status END,
                            delivered_ms = CASE WHEN $5 AND replays = $6 THEN $4 ELSE delivered_ms END
                     WHERE endpoint = $1 AND event_id = $2",
                )
                .bind(endpoint)
                .bind(event)
                .bind(attempt)
                .bind(r.at.millis())
                .bind(r.delivered)
                .bind(r.replays)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Gives an endpoint back (its batch is done): any instance may claim it again.
    pub async fn release_webhook_endpoint(
        &self,
        owner: &str,
        endpoint: &str,
    ) -> Result<(), StoreError> {
        with_pool!(&self.write, |pool| {
            sqlx::query(
                "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until_ms = 0
                 WHERE name = $1 AND lease_owner = $2",
            )
            .bind(endpoint)
            .bind(owner)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Gives back every endpoint `owner` holds (shutdown), so another instance need not
    /// wait for the leases to run out.
    pub async fn release_webhook_endpoints(&self, owner: &str) -> Result<u64, StoreError> {
        let n = with_pool!(&self.write, |pool| {
            sqlx::query(
                "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until_ms = 0
                 WHERE lease_owner = $1",
            )
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n)
    }

    /// Deletes what is older than `before`: attempts, delivered deliveries, and events no
    /// delivery waits for any more. Returns how many rows went.
    pub async fn prune_webhook_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        let statements = [
            "DELETE FROM webhook_attempts WHERE at_ms < $1
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                               WHERE d.endpoint = webhook_attempts.endpoint
                                 AND d.event_id = webhook_attempts.event_id AND d.status = 'pending')",
            "DELETE FROM webhook_deliveries WHERE status = 'delivered' AND occurred_ms < $1",
            "DELETE FROM webhook_events WHERE occurred_ms < $1
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)",
        ];
        let mut total = 0;
        for sql in statements {
            total += with_pool!(&self.write, |pool| {
                sqlx::query(sql)
                    .bind(before.millis())
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
        }
        Ok(total)
    }
}
