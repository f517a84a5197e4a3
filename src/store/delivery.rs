//! Where the push endpoint meets the outbox: delivery reports turn `sent(msgid)` messages
//! into `delivered` or `failed`, and subscription choices pushed by WeChat move the ledger.
//!
//! A report can beat the send's own answer into the store (WeChat pushes fast, our finisher
//! writes in batches), and on PostgreSQL the two transactions can pass each other unseen.
//! Such a report waits in `push_delivery_reports` until a sweep finds its message `sent`.

use super::outbox::history_line;
use super::{Store, StoreError, StoreTx, with_pool, with_tx};
use crate::clock::Timestamp;
use crate::domain::{
    AppId, Channel, EventType, IdempotencyKey, MessageId, MessageStatus, NewEvent, OpenId, UserId,
};
use serde_json::json;
use std::collections::HashMap;

/// Messages in state `sent` by (app, msgid): their id, channel and last change.
pub type SentMessages = HashMap<(AppId, i64), (MessageId, Channel, Timestamp)>;

/// A sweep applies at most this many waiting reports at once.
const SWEEP_BATCH: i64 = 500;
/// Reports older than this are not waiting for a send of ours.
const WAIT_WINDOW_SECS: i64 = 3600;

/// Runs after every batch of sends: it must stay an index search, never a scan. Only reports
/// whose message is `sent` come back: reports for messages some other system sent on the
/// same account wait forever, and must not take the places of ours.
const WAITING_REPORTS: &str = "SELECT r.app, r.msgid, r.status FROM push_delivery_reports r
                               JOIN messages m ON m.app = r.app AND m.msgid = r.msgid
                               WHERE r.applied_at IS NULL AND r.reported_at >= $1
                                 AND m.status = 'sent'
                               ORDER BY r.reported_at LIMIT $2";

/// Gives an Official Account subscribe notification the msgid of its sent event; runs for
/// every sent event, so it stays on indexes (the partial `messages_awaiting_msgid`, then
/// `messages_msgid`): a test holds the plan.
const ADOPT_MSGID: &str = "UPDATE messages SET msgid = $4
                   WHERE id = (SELECT id FROM messages
                               WHERE app = $1 AND openid = $2 AND template_id = $3
                                 AND channel = 'oa_subscribe' AND msgid IS NULL
                                 AND status IN ('sending', 'sent')
                               ORDER BY CASE WHEN status = 'sent' THEN 0 ELSE 1 END, id
                               LIMIT 1)
                     AND msgid IS NULL
                     AND NOT EXISTS (SELECT 1 FROM messages WHERE app = $1 AND msgid = $4)
                   RETURNING id, channel, status, updated_ms";

/// What a report's status means for its message.
fn outcome_of(report_status: &str) -> MessageStatus {
    if report_status == "success" {
        MessageStatus::Delivered
    } else {
        MessageStatus::Failed
    }
}

impl StoreTx {
    /// Applies a stored report to the message that is `sent(msgid)`, if there is one yet.
    /// Returns the message id, its channel and its new state.
    pub async fn apply_delivery_report(
        &mut self,
        app: &AppId,
        msgid: i64,
        report_status: &str,
        now: Timestamp,
    ) -> Result<Option<(MessageId, Channel, MessageStatus)>, StoreError> {
        let find = "SELECT id, channel, updated_ms FROM messages
                    WHERE app = $1 AND msgid = $2 AND status = 'sent'";
        let found: Option<(MessageId, Channel, i64)> = with_tx!(self, |conn| {
            sqlx::query_as(find)
                .bind(app)
                .bind(msgid)
                .fetch_optional(&mut *conn)
                .await?
        });
        let Some((id, channel, updated_ms)) = found else {
            return Ok(None);
        };
        let state = self
            .settle_message(
                &id,
                app,
                msgid,
                report_status,
                Timestamp::from_millis(updated_ms),
                now,
            )
            .await?;
        Ok(Some((id, channel, state)))
    }

    /// Which of these reported msgids belong to a message in state `sent`, in one query
    /// per app and few hundred msgids: what a batch of pushed reports settles.
    pub async fn sent_messages(
        &mut self,
        reported: &[(AppId, i64)],
    ) -> Result<SentMessages, StoreError> {
        let mut by_app: HashMap<&AppId, Vec<i64>> = HashMap::new();
        for (app, msgid) in reported {
            by_app.entry(app).or_default().push(*msgid);
        }
        let mut found = SentMessages::new();
        for (app, msgids) in by_app {
            for chunk in msgids.chunks(SWEEP_BATCH as usize) {
                let list: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT msgid, id, channel, updated_ms FROM messages
                     WHERE app = $1 AND status = 'sent' AND msgid IN ({})",
                    list.join(", ")
                );
                let rows: Vec<(i64, MessageId, Channel, i64)> = with_tx!(self, |conn| {
                    let mut q = sqlx::query_as(&sql).bind(app);
                    for m in chunk {
                        q = q.bind(*m);
                    }
                    q.fetch_all(&mut *conn).await?
                });
                for (msgid, id, channel, updated_ms) in rows {
                    found.insert(
                        (app.clone(), msgid),
                        (id, channel, Timestamp::from_millis(updated_ms)),
                    );
                }
            }
        }
        Ok(found)
    }

    /// `sent` -> `delivered` or `failed(reason)`, and the report marked applied. The
    /// line is stamped no earlier than the message's last change (`last`): a report taken
    /// by an instance whose clock runs behind the sender's must not run history backwards.
    pub async fn settle_message(
        &mut self,
        id: &MessageId,
        app: &AppId,
        msgid: i64,
        report_status: &str,
        last: Timestamp,
        now: Timestamp,
    ) -> Result<MessageStatus, StoreError> {
        let at = now.max(last);
        let state = outcome_of(report_status);
        let reason = (state == MessageStatus::Failed).then_some(report_status);
        let line = history_line(
            state,
            at,
            json!({ "detail": format!("WeChat's delivery report: {report_status}") }),
        );
        let update =
            "UPDATE messages SET status = $1, reason = $2, updated_ms = $3, history = history || $4
                      WHERE id = $5 AND status = 'sent'
                      RETURNING channel, user_id, openid, idempotency_key";
        let applied = "UPDATE push_delivery_reports SET applied_at = $1
                       WHERE app = $2 AND msgid = $3 AND applied_at IS NULL";
        with_tx!(self, |conn| {
            let ended: Option<(Channel, UserId, OpenId, Option<IdempotencyKey>)> =
                sqlx::query_as(update)
                    .bind(state)
                    .bind(reason)
                    .bind(at.millis())
                    .bind(&line)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            if let Some((channel, user, openid, key)) = ended {
                let kind = if state == MessageStatus::Delivered {
                    EventType::MessageDelivered
                } else {
                    EventType::MessageFailed
                };
                let extra = json!({ "msgid": msgid.to_string(), "reason": reason });
                let data = super::finish::message_data(id, &channel, key, extra);
                let event = NewEvent::about(kind, now, app, &openid, data).user(Some(&user));
                super::webhooks::write_events!(conn, std::slice::from_ref(&event));
            }
            sqlx::query(applied)
                .bind(now.secs())
                .bind(app)
                .bind(msgid)
                .execute(&mut *conn)
                .await?;
        });
        Ok(state)
    }

    /// An Official Account subscribe notification's msgid, from its `subscribe_msg_sent_event`
    /// (bizsend answers none): given to the oldest send of that template to that person that
    /// has none yet, `sent` before `sending` (its answer may not be recorded yet; the
    /// recording keeps the msgid). A msgid some message has already is never given again (a
    /// repeated report). Returns that message's id, channel, status and last change.
    pub async fn adopt_msgid(
        &mut self,
        app: &AppId,
        openid: &str,
        template_id: &str,
        msgid: i64,
    ) -> Result<Option<(MessageId, Channel, MessageStatus, Timestamp)>, StoreError> {
        let sql = ADOPT_MSGID;
        let row: Option<(MessageId, Channel, MessageStatus, i64)> = with_tx!(self, |conn| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(openid)
                .bind(template_id)
                .bind(msgid)
                .fetch_optional(&mut *conn)
                .await?
        });
        Ok(row.map(|(id, channel, status, at)| (id, channel, status, Timestamp::from_millis(at))))
    }

    /// The person accepted one more send of a subscribe template (WeChat's own word).
    pub async fn credit_subscription(
        &mut self,
        app: &AppId,
        openid: &OpenId,
        template_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql =
            "INSERT INTO subscriptions (app, openid, template_id, remaining, long_term, updated_at)
                   VALUES ($1, $2, $3, 1, FALSE, $4)
                   ON CONFLICT (app, openid, template_id) DO UPDATE SET
                       remaining = subscriptions.remaining + 1, updated_at = excluded.updated_at";
        self.exec_ledger(sql, app, openid, template_id, now).await
    }

    /// The person turned a template off (or WeChat banned it): nothing more may be sent.
    pub async fn clear_subscription(
        &mut self,
        app: &AppId,
        openid: &OpenId,
        template_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE subscriptions SET remaining = 0, long_term = FALSE, updated_at = $4
                   WHERE app = $1 AND openid = $2 AND template_id = $3";
        self.exec_ledger(sql, app, openid, template_id, now).await
    }

    async fn exec_ledger(
        &mut self,
        sql: &str,
        app: &AppId,
        openid: &OpenId,
        template_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        with_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(app)
                .bind(openid)
                .bind(template_id)
                .bind(now.secs())
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }
}

impl Store {
    /// Applies the reports that arrived before their message was recorded `sent`. Returns
    /// the messages settled: id, channel, new state. Only reports of the last hour are
    /// looked at: a report waits for its send for seconds (minutes when an instance died
    /// mid-send); an older one is for a message some other system sent.
    pub async fn apply_waiting_reports(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(MessageId, Channel, MessageStatus)>, StoreError> {
        let waiting = WAITING_REPORTS;
        // A read first: almost always there is nothing, and the writer stays free.
        let rows: Vec<(AppId, i64, String)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(waiting)
                .bind(now.secs() - WAIT_WINDOW_SECS)
                .bind(SWEEP_BATCH)
                .fetch_all(pool)
                .await?
        });
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let mut settled = Vec::new();
        for (app, msgid, status) in rows {
            if let Some(done) = tx.apply_delivery_report(&app, msgid, &status, now).await? {
                settled.push(done);
            }
        }
        tx.commit().await?;
        Ok(settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseSettings;
    use crate::store::Db;

    /// Every sent event looks for the notification awaiting its msgid: never a scan.
    #[tokio::test]
    async fn the_look_for_a_notification_awaiting_its_msgid_is_an_index_search() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = Store::connect(&url, &DatabaseSettings::default())
            .await
            .unwrap();
        let Db::Sqlite(pool) = &store.db else {
            unreachable!("a sqlite URL")
        };
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {ADOPT_MSGID}"))
                .bind("oa")
                .bind("o1")
                .bind("t1")
                .bind(1i64)
                .fetch_all(pool)
                .await
                .unwrap();
        let steps: Vec<&str> = plan.iter().map(|(_, _, _, d)| d.as_str()).collect();
        assert!(steps.iter().all(|d| !d.starts_with("SCAN")), "{steps:?}");
        assert!(
            steps.iter().any(|d| d.contains("messages_awaiting_msgid")),
            "{steps:?}"
        );
    }

    /// The look for waiting reports runs after every batch of sends; it once scanned every
    /// message while holding SQLite's only writer, and throughput halved.
    #[tokio::test]
    async fn the_look_for_waiting_reports_is_an_index_search() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = Store::connect(&url, &DatabaseSettings::default())
            .await
            .unwrap();
        let Db::Sqlite(pool) = &store.db else {
            unreachable!("a sqlite URL")
        };
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {WAITING_REPORTS}"))
                .bind(0i64)
                .bind(1i64)
                .fetch_all(pool)
                .await
                .unwrap();
        let steps: Vec<&str> = plan.iter().map(|(_, _, _, d)| d.as_str()).collect();
        assert!(steps.iter().all(|d| !d.starts_with("SCAN")), "{steps:?}");
        assert!(
            steps
                .iter()
                .any(|d| d.contains("push_delivery_reports_waiting")),
            "{steps:?}"
        );
    }
}
