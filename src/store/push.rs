//! WeChat pushes: the replay guard, the event log (stored before the acknowledgement,
//! handled after), delivery reports by msgid, and follow status.

use super::sql::{ROWS_PER_STATEMENT, id_list, placeholders};
use super::{Backend, Store, StoreError, StoreTx, with_pool, with_tx};
use crate::clock::{Timestamp, serde_unix};
use crate::domain::{AppId, OpenId, UserId};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// A verified push, about to be stored.
#[derive(Debug, Clone)]
pub struct NewPush {
    pub app: AppId,
    pub timestamp: i64,
    pub nonce: String,
    pub signature: String,
    pub dedup_key: String,
    pub msg_type: String,
    pub event: Option<String>,
    pub kind: String,
    pub openid: Option<String>,
    pub create_time: Option<i64>,
    pub encrypted: bool,
    pub xml: String,
    pub received_at: Timestamp,
    /// The outcome when the event needs no handling (stored as handled at once); `None`
    /// leaves it to be handled, claimed by this instance until `claim_until`.
    pub outcome_now: Option<String>,
    pub claim_until: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored for the first time, with this id.
    New(i64),
    /// The same event was stored before (a retry): acknowledge, do nothing.
    Duplicate,
    /// The (timestamp, nonce, signature) came with another event before.
    Replayed,
}

/// One stored push, as the events API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    pub id: i64,
    pub app: AppId,
    #[serde(rename = "type")]
    pub kind: String,
    pub msg_type: String,
    pub event: Option<String>,
    pub openid: Option<String>,
    /// WeChat's `CreateTime`, as it sent it (Unix seconds).
    pub create_time: Option<i64>,
    pub encrypted: bool,
    #[serde(skip)]
    pub dedup_key: String,
    pub xml: String,
    #[serde(serialize_with = "serde_unix::secs")]
    #[schema(value_type = i64)]
    pub received_at: Timestamp,
    /// Acknowledged repeats of this event (WeChat's retries).
    pub duplicates: i64,
    #[serde(serialize_with = "serde_unix::opt_secs")]
    #[schema(value_type = Option<i64>)]
    pub handled_at: Option<Timestamp>,
    pub outcome: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The business user bound to `openid` in this app now, when the listing looked.
    pub user_id: Option<UserId>,
}

/// A `push_events` row; its instants are in seconds.
#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    id: i64,
    app: AppId,
    kind: String,
    msg_type: String,
    event: Option<String>,
    openid: Option<String>,
    create_time: Option<i64>,
    encrypted: bool,
    dedup_key: String,
    xml: String,
    received_at: i64,
    duplicates: i64,
    handled_at: Option<i64>,
    outcome: Option<String>,
    attempts: i64,
    last_error: Option<String>,
    /// Only the events listing reads it.
    #[sqlx(default)]
    user_id: Option<UserId>,
}

impl From<EventRow> for StoredEvent {
    fn from(r: EventRow) -> Self {
        Self {
            id: r.id,
            app: r.app,
            kind: r.kind,
            msg_type: r.msg_type,
            event: r.event,
            openid: r.openid,
            create_time: r.create_time,
            encrypted: r.encrypted,
            dedup_key: r.dedup_key,
            xml: r.xml,
            received_at: Timestamp::from_secs(r.received_at),
            duplicates: r.duplicates,
            handled_at: r.handled_at.map(Timestamp::from_secs),
            outcome: r.outcome,
            attempts: r.attempts,
            last_error: r.last_error,
            user_id: r.user_id,
        }
    }
}

pub(super) const EVENT_COLUMNS: &str = "id, app, kind, msg_type, event, openid, create_time, encrypted, dedup_key, xml, received_at, duplicates, handled_at, outcome, attempts, last_error";

/// A TEMPLATESENDJOBFINISH report, kept by (app, msgid) until the outbox applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    pub app: AppId,
    pub msgid: i64,
    /// As WeChat sent it: `success`, `failed:user block`, `failed: system failed`...
    pub status: String,
    pub openid: Option<String>,
    pub event_id: i64,
    #[serde(serialize_with = "serde_unix::secs")]
    pub reported_at: Timestamp,
    #[serde(serialize_with = "serde_unix::opt_secs")]
    pub applied_at: Option<Timestamp>,
}

/// A `push_delivery_reports` row; its instants are in seconds.
#[derive(sqlx::FromRow)]
struct ReportRow {
    app: AppId,
    msgid: i64,
    status: String,
    openid: Option<String>,
    event_id: i64,
    reported_at: i64,
    applied_at: Option<i64>,
}

impl From<ReportRow> for DeliveryReport {
    fn from(r: ReportRow) -> Self {
        Self {
            app: r.app,
            msgid: r.msgid,
            status: r.status,
            openid: r.openid,
            event_id: r.event_id,
            reported_at: Timestamp::from_secs(r.reported_at),
            applied_at: r.applied_at.map(Timestamp::from_secs),
        }
    }
}

/// Filters of the events API.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub kind: Option<String>,
    /// Received at or after.
    pub since: Option<Timestamp>,
    /// Ids above this one (paging).
    pub after_id: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Stores a verified push before it is acknowledged: its replay key, then the event
    /// (once per dedup key). A repeat of the same (timestamp, nonce, signature) with the
    /// same event is a retry; with another event it is a replay.
    pub async fn record_push(&self, p: &NewPush) -> Result<Recorded, StoreError> {
        Ok(self.record_pushes(&[p]).await?[0])
    }

    /// [`Store::record_push`] for several pushes in one transaction (group commit): one
    /// multi-row statement for the replay keys and one for the events, whatever the batch
    /// size. A replay writes nothing, so no push of the batch can spoil another.
    pub async fn record_pushes(&self, pushes: &[&NewPush]) -> Result<Vec<Recorded>, StoreError> {
        if pushes.is_empty() {
            return Ok(Vec::new());
        }
        let nonce_sql = |rows: usize| {
            format!(
                "INSERT INTO push_nonces (app, timestamp, nonce, signature, dedup_key, seen_at)
                 VALUES {} ON CONFLICT DO NOTHING RETURNING app, timestamp, nonce, signature",
                placeholders(rows, 6)
            )
        };
        let earlier_sql = "SELECT dedup_key FROM push_nonces
             WHERE app = $1 AND timestamp = $2 AND nonce = $3 AND signature = $4";
        let dup_sql =
            "UPDATE push_events SET duplicates = duplicates + 1 WHERE app = $1 AND dedup_key = $2";
        let results = with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut fresh: HashSet<(AppId, i64, String, String)> = HashSet::new();
            for chunk in pushes.chunks(ROWS_PER_STATEMENT) {
                let sql = nonce_sql(chunk.len());
                let mut q = sqlx::query_as::<_, (AppId, i64, String, String)>(&sql);
                for p in chunk {
                    q = q
                        .bind(&p.app)
                        .bind(p.timestamp)
                        .bind(&p.nonce)
                        .bind(&p.signature)
                        .bind(&p.dedup_key)
                        .bind(p.received_at.secs());
                }
                fresh.extend(q.fetch_all(&mut *tx).await?);
            }
            // The first push of the batch with a replay key owns its row.
            let mut results: Vec<Option<Recorded>> = Vec::with_capacity(pushes.len());
            let mut new: Vec<&NewPush> = Vec::new();
            for p in pushes {
                let key = (
                    p.app.clone(),
                    p.timestamp,
                    p.nonce.clone(),
                    p.signature.clone(),
                );
                if fresh.remove(&key) {
                    results.push(None);
                    new.push(p);
                    continue;
                }
                let (earlier,): (String,) = sqlx::query_as(earlier_sql)
                    .bind(&p.app)
                    .bind(p.timestamp)
                    .bind(&p.nonce)
                    .bind(&p.signature)
                    .fetch_one(&mut *tx)
                    .await?;
                results.push(Some(if earlier == p.dedup_key {
                    Recorded::Duplicate
                } else {
                    Recorded::Replayed
                }));
            }
            let mut ids: HashMap<(AppId, String), i64> = HashMap::new();
            for chunk in new.chunks(ROWS_PER_STATEMENT) {
                let event_sql = format!(
                    "INSERT INTO push_events (app, dedup_key, msg_type, event, kind, openid, create_time,
                         encrypted, xml, received_at, handled_at, outcome, claimed_until)
                     VALUES {} ON CONFLICT (app, dedup_key) DO NOTHING RETURNING id, app, dedup_key",
                    placeholders(chunk.len(), 13)
                );
                let mut q = sqlx::query_as::<_, (i64, AppId, String)>(&event_sql);
                for p in chunk {
                    let handled = p.outcome_now.is_some();
                    q = q
                        .bind(&p.app)
                        .bind(&p.dedup_key)
                        .bind(&p.msg_type)
                        .bind(&p.event)
                        .bind(&p.kind)
                        .bind(&p.openid)
                        .bind(p.create_time)
                        .bind(p.encrypted)
                        .bind(&p.xml)
                        .bind(p.received_at.secs())
                        .bind(handled.then_some(p.received_at.secs()))
                        .bind(&p.outcome_now)
                        .bind(if handled { 0 } else { p.claim_until.secs() });
                }
                ids.extend(
                    q.fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .map(|(id, app, key)| ((app, key), id)),
                );
            }
            if !new.is_empty() {
                // A person's message, click, follow or scan opens their customer-service window.
                super::custom_windows::note_windows!(&mut *tx, &new);
            }
            let mut recorded = Vec::with_capacity(pushes.len());
            for (p, r) in pushes.iter().zip(results) {
                let r = r.unwrap_or_else(|| {
                    // The first push of the batch with a dedup key owns the event.
                    match ids.remove(&(p.app.clone(), p.dedup_key.clone())) {
                        Some(id) => Recorded::New(id),
                        None => Recorded::Duplicate,
                    }
                });
                if r == Recorded::Duplicate {
                    sqlx::query(dup_sql)
                        .bind(&p.app)
                        .bind(&p.dedup_key)
                        .execute(&mut *tx)
                        .await?;
                }
                recorded.push(r);
            }
            tx.commit().await?;
            recorded
        });
        Ok(results)
    }

    /// Marks an event handled with its outcome (`follow_recorded`, `delivered`...).
    pub async fn finish_event(
        &self,
        id: i64,
        outcome: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE push_events SET handled_at = $1, outcome = $2, claimed_until = 0, last_error = NULL
                   WHERE id = $3 AND handled_at IS NULL";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(now.secs())
                .bind(outcome)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Handling failed: keep the error, release the claim so a later sweep retries.
    pub async fn event_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        let sql = "UPDATE push_events SET last_error = $1, claimed_until = 0 WHERE id = $2";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql).bind(error).bind(id).execute(pool).await?;
        });
        Ok(())
    }

    /// Claims up to `limit` unhandled events whose claim has run out (their instance died or
    /// failed), for `lease_secs`. Concurrent sweepers never claim the same event.
    pub async fn claim_unhandled_events(
        &self,
        now: Timestamp,
        lease_secs: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = with_pool!(&self.write, |pool| {
            // PostgreSQL: concurrent sweepers skip each other's rows instead of waiting.
            let sql = format!(
                "UPDATE push_events SET claimed_until = $1, attempts = attempts + 1
                 WHERE id IN (SELECT id FROM push_events
                              WHERE handled_at IS NULL AND claimed_until < $2 ORDER BY id LIMIT $3 {})
                   AND handled_at IS NULL AND claimed_until < $2
                 RETURNING {EVENT_COLUMNS}",
                pool.skip_locked()
            );
            sqlx::query_as(&sql)
                .bind(now.secs() + lease_secs)
                .bind(now.secs())
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// What arrived for an app, oldest first.
    pub async fn list_events(
        &self,
        app: &AppId,
        f: &EventFilter,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS},
                    (SELECT i.user_id FROM identities i
                     WHERE i.app = push_events.app AND i.openid = push_events.openid) AS user_id
             FROM push_events
             WHERE app = $1 AND ($2 IS NULL OR kind = $2) AND received_at >= $3 AND id > $4
             ORDER BY id LIMIT $5"
        );
        let rows: Vec<EventRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql)
                .bind(app)
                .bind(f.kind.as_deref())
                .bind(f.since.map_or(i64::MIN, Timestamp::secs))
                .bind(f.after_id.unwrap_or(0))
                .bind(f.limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// The report for a msgid, if it arrived: what the outbox consults when it records
    /// `sent(msgid)`, since a report may beat the send's own response.
    pub async fn delivery_report(
        &self,
        app: &AppId,
        msgid: i64,
    ) -> Result<Option<DeliveryReport>, StoreError> {
        let sql = "SELECT app, msgid, status, openid, event_id, reported_at, applied_at
                   FROM push_delivery_reports WHERE app = $1 AND msgid = $2";
        let row: Option<ReportRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(msgid)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(DeliveryReport::from))
    }

    /// The outbox applied this report to its message.
    pub async fn mark_delivery_report_applied(
        &self,
        app: &AppId,
        msgid: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE push_delivery_reports SET applied_at = $1
                   WHERE app = $2 AND msgid = $3 AND applied_at IS NULL";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(now.secs())
                .bind(app)
                .bind(msgid)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Forgets replay keys whose timestamp left the window. (Handled events and delivery
    /// reports are pruned with the other records: [`crate::retention`].)
    pub async fn prune_push_nonces(&self, before: Timestamp) -> Result<u64, StoreError> {
        Ok(with_pool!(&self.write, |pool| {
            sqlx::query("DELETE FROM push_nonces WHERE timestamp < $1")
                .bind(before.secs())
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

/// The writes of event handling, inside one transaction per batch.
impl StoreTx {
    /// Marks these events handled; returns the ones that were not already (by another
    /// task or instance): only their effects may be applied.
    pub async fn start_handling(
        &mut self,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<HashSet<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let mut started = HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE push_events SET handled_at = $1, claimed_until = 0, last_error = NULL
                 WHERE handled_at IS NULL AND id IN ({}) RETURNING id",
                id_list(2, chunk.len())
            );
            let rows: Vec<(i64,)> = with_tx!(self, |conn| {
                let mut q = sqlx::query_as(&sql).bind(now.secs());
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(&mut *conn).await?
            });
            started.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(started)
    }

    /// What handling these events did (`follow_recorded`, `delivered`...).
    pub async fn set_event_outcome(
        &mut self,
        ids: &[i64],
        outcome: &str,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE push_events SET outcome = $1 WHERE id IN ({})",
                id_list(2, chunk.len())
            );
            with_tx!(self, |conn| {
                let mut q = sqlx::query(&sql).bind(outcome);
                for id in chunk {
                    q = q.bind(id);
                }
                q.execute(&mut *conn).await?;
            });
        }
        Ok(())
    }

    /// Keeps a delivery report for the outbox; the first report of a msgid wins.
    pub async fn record_delivery_report(
        &mut self,
        app: &AppId,
        msgid: i64,
        status: &str,
        openid: Option<&str>,
        event_id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let sql =
            "INSERT INTO push_delivery_reports (app, msgid, status, openid, event_id, reported_at)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
        let n = with_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(app)
                .bind(msgid)
                .bind(status)
                .bind(openid)
                .bind(event_id)
                .bind(now.secs())
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records a follow or unfollow at WeChat's time `at`, creating the (unbound) identity
    /// of an openid we have not seen. An older event never overrides a newer one. Returns
    /// false when it was older than what we have.
    pub async fn set_follow(
        &mut self,
        app: &AppId,
        openid: &OpenId,
        follows: bool,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        // An identity first seen through a push knows only its openid, as snsapi_base would.
        let sql = "INSERT INTO identities (app, openid, scope, is_snapshot, created_at, updated_at, follows, follow_changed_at)
                   VALUES ($1, $2, 'snsapi_base', FALSE, $3, $3, $4, $5)
                   ON CONFLICT (app, openid) DO UPDATE SET
                       follows = excluded.follows,
                       follow_changed_at = excluded.follow_changed_at,
                       updated_at = excluded.updated_at
                   WHERE identities.follow_changed_at IS NULL
                      OR identities.follow_changed_at <= excluded.follow_changed_at";
        let n = with_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(app)
                .bind(openid)
                .bind(now.secs())
                .bind(follows)
                .bind(at.secs())
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }
}
