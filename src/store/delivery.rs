//! Where the push endpoint meets the outbox: delivery reports turn `sent(msgid)` messages
//! into `delivered` or `failed`, and subscription choices pushed by WeChat move the ledger.
//!
//! A report can beat the send's own answer into the store (WeChat pushes fast, our finisher
//! writes in batches), and on PostgreSQL the two transactions can pass each other unseen.
//! Such a report waits in `push_delivery_reports` until a sweep finds its message `sent`.

use super::outbox::history_line;
use super::{Store, StoreError, StoreTx, with_tx};
use crate::domain::{AppId, MessageStatus, OpenId};
use serde_json::json;

/// A sweep applies at most this many waiting reports at once.
const SWEEP_BATCH: i64 = 500;

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
        now_ms: i64,
    ) -> Result<Option<(String, String, MessageStatus)>, StoreError> {
        let find =
            "SELECT id, channel FROM messages WHERE app = $1 AND msgid = $2 AND status = 'sent'";
        let found: Option<(String, String)> = with_tx!(self, |conn| {
            sqlx::query_as(find)
                .bind(app.as_str())
                .bind(msgid)
                .fetch_optional(&mut *conn)
                .await?
        });
        let Some((id, channel)) = found else {
            return Ok(None);
        };
        let state = self
            .settle_message(&id, app, msgid, report_status, now_ms)
            .await?;
        Ok(Some((id, channel, state)))
    }

    /// `sent` -> `delivered` or `failed(reason)`, and the report marked applied.
    async fn settle_message(
        &mut self,
        id: &str,
        app: &AppId,
        msgid: i64,
        report_status: &str,
        now_ms: i64,
    ) -> Result<MessageStatus, StoreError> {
        let state = outcome_of(report_status);
        let reason = (state == MessageStatus::Failed).then_some(report_status);
        let line = history_line(
            state,
            now_ms,
            json!({ "detail": format!("WeChat's delivery report: {report_status}") }),
        );
        let update =
            "UPDATE messages SET status = $1, reason = $2, updated_ms = $3, history = history || $4
                      WHERE id = $5 AND status = 'sent'";
        let applied = "UPDATE push_delivery_reports SET applied_at = $1
                       WHERE app = $2 AND msgid = $3 AND applied_at IS NULL";
        with_tx!(self, |conn| {
            sqlx::query(update)
                .bind(state.as_str())
                .bind(reason)
                .bind(now_ms)
                .bind(&line)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            sqlx::query(applied)
                .bind(now_ms / 1000)
                .bind(app.as_str())
                .bind(msgid)
                .execute(&mut *conn)
                .await?;
        });
        Ok(state)
    }

    /// The person accepted one more send of a subscribe template (WeChat's own word).
    pub async fn credit_subscription(
        &mut self,
        app: &AppId,
        openid: &OpenId,
        template_id: &str,
        now: i64,
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
        now: i64,
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
        now: i64,
    ) -> Result<(), StoreError> {
        with_tx!(self, |conn| {
            sqlx::query(sql)
                .bind(app.as_str())
                .bind(openid.as_str())
                .bind(template_id)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }
}

impl Store {
    /// Applies the reports that arrived before their message was recorded `sent`. Returns
    /// the messages settled: id, channel, new state.
    pub async fn apply_waiting_reports(
        &self,
        now_ms: i64,
    ) -> Result<Vec<(String, String, MessageStatus)>, StoreError> {
        let waiting = "SELECT m.id, m.channel, r.app, r.msgid, r.status
                       FROM push_delivery_reports r
                       JOIN messages m ON m.app = r.app AND m.msgid = r.msgid
                       WHERE r.applied_at IS NULL AND m.status = 'sent'
                       LIMIT $1";
        let mut tx = self.begin().await?;
        let rows: Vec<(String, String, String, i64, String)> = with_tx!(&mut tx, |conn| {
            sqlx::query_as(waiting)
                .bind(SWEEP_BATCH)
                .fetch_all(&mut *conn)
                .await?
        });
        let mut settled = Vec::with_capacity(rows.len());
        for (id, channel, app, msgid, status) in rows {
            let app = AppId::parse(&app).map_err(|e| super::corrupt("push_delivery_reports", e))?;
            let state = tx.settle_message(&id, &app, msgid, &status, now_ms).await?;
            settled.push((id, channel, state));
        }
        tx.commit().await?;
        Ok(settled)
    }
}
