//! The outbox: messages written before the API answers, claimed by workers with a lease,
//! finished in batches. No transaction is ever held across a call to WeChat.

use super::sql::{ROWS_PER_STATEMENT, placeholders};
use super::{Backend, Store, StoreError, corrupt, with_pool};
use crate::clock::{Timestamp, serde_unix};
use crate::domain::{
    AppId, Category, Channel, IdempotencyKey, MessageId, MessageStatus, OpenId, Payload,
    TemplateId, UserId,
};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashSet;

/// A message as accepted, ready to be written.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    /// The API key's name: idempotency keys are per caller.
    pub caller: String,
    pub idempotency_key: Option<IdempotencyKey>,
    /// SHA-256 of the request, to tell a retry from a different request under the same key.
    pub request_hash: String,
    pub user_id: UserId,
    pub app: AppId,
    pub channel: Channel,
    pub openid: OpenId,
    /// `None` for a customer-service message (stored as an empty text).
    pub template_id: Option<TemplateId>,
    pub category: Option<Category>,
    pub payload: Payload,
    /// Extra facts for the first history line (e.g. fields shortened by `truncate`).
    pub note: Option<String>,
}

/// What writing a message came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    New,
    /// The caller used this idempotency key before (see [`Store::message_by_key`]).
    KeyTaken,
    /// A subscribe message, and the person has no subscription left for the template.
    NoSubscription,
}

/// A stored message with its history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub user_id: UserId,
    pub app: AppId,
    pub channel: Channel,
    pub openid: OpenId,
    /// `null` for a customer-service message.
    #[schema(value_type = Option<String>)]
    pub template_id: Option<TemplateId>,
    pub category: Option<Category>,
    pub status: MessageStatus,
    /// WeChat's msgid as a string: a 64-bit integer does not survive a JSON float.
    #[serde(serialize_with = "msgid_as_string")]
    #[schema(value_type = Option<String>)]
    pub msgid: Option<i64>,
    pub errcode: Option<i64>,
    pub reason: Option<String>,
    pub attempts: i64,
    #[serde(serialize_with = "serde_unix::millis")]
    #[schema(value_type = i64)]
    pub next_attempt_ms: Timestamp,
    #[serde(serialize_with = "serde_unix::millis")]
    #[schema(value_type = i64)]
    pub created_ms: Timestamp,
    #[serde(serialize_with = "serde_unix::millis")]
    #[schema(value_type = i64)]
    pub updated_ms: Timestamp,
    /// Every state the message was in, oldest first: `{"status","at_ms",...}`.
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<Value>,
    #[serde(skip)]
    pub request_hash: String,
    /// `None` once the user was erased.
    #[serde(skip)]
    pub payload: Option<Payload>,
}

fn msgid_as_string<S: serde::Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(id) => s.serialize_str(&id.to_string()),
        None => s.serialize_none(),
    }
}

/// A message claimed by this instance for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: MessageId,
    pub app: AppId,
    pub channel: Channel,
    pub openid: OpenId,
    pub template_id: Option<TemplateId>,
    pub payload: Payload,
    pub idempotency_key: Option<IdempotencyKey>,
    /// This attempt's number, from 1.
    pub attempt: i64,
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        msgid: Option<i64>,
    },
    /// Try again at `at` (retryable error).
    Retry {
        at: Timestamp,
        errcode: Option<i64>,
        reason: String,
    },
    /// The app's channel is held (daily quota); back in the queue, the attempt not counted.
    Held {
        until: Timestamp,
        reason: String,
    },
    /// WeChat refused it for good, and what the refusal says about the person.
    Rejected {
        errcode: i64,
        errmsg: String,
        learned: Option<Learned>,
    },
    /// We gave up (attempts spent, or nothing to send it with).
    Failed {
        reason: String,
    },
}

/// What a refusal teaches about the person, recorded with the message's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// They have no subscription left for this template, whatever the ledger thought
    /// (long-term ones included).
    NoSubscriptionLeft,
    /// They do not follow the Official Account (any more).
    NotFollowing,
}

#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    id: MessageId,
    user_id: UserId,
    app: AppId,
    channel: Channel,
    openid: OpenId,
    template_id: String,
    category: Option<Category>,
    payload: String,
    status: MessageStatus,
    msgid: Option<i64>,
    errcode: Option<i64>,
    reason: Option<String>,
    attempts: i64,
    next_attempt_ms: i64,
    created_ms: i64,
    updated_ms: i64,
    history: String,
    request_hash: String,
}

pub(super) const COLUMNS: &str = "id, user_id, app, channel, openid, template_id, category, payload, status, msgid, errcode, reason, attempts, next_attempt_ms, created_ms, updated_ms, history, request_hash";

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: MessageId,
    app: AppId,
    channel: Channel,
    openid: OpenId,
    template_id: String,
    payload: String,
    idempotency_key: Option<IdempotencyKey>,
    attempts: i64,
}

fn bad(e: impl std::fmt::Display) -> StoreError {
    corrupt("messages", e)
}

/// The template id column: empty for a message without a template (channel `custom`).
fn stored_template(text: &str) -> Result<Option<TemplateId>, StoreError> {
    (!text.is_empty())
        .then(|| TemplateId::parse(text))
        .transpose()
        .map_err(bad)
}

/// What the template id column holds for a message.
fn template_text(t: &Option<TemplateId>) -> &str {
    t.as_ref().map_or("", TemplateId::as_str)
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        Ok(Message {
            user_id: r.user_id,
            app: r.app,
            channel: r.channel,
            openid: r.openid,
            template_id: stored_template(&r.template_id)?,
            category: r.category,
            payload: (r.payload != super::lifecycle::ERASED_PAYLOAD)
                .then(|| serde_json::from_str(&r.payload))
                .transpose()
                .map_err(bad)?,
            history: r
                .history
                .lines()
                .filter(|l| !l.is_empty())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
                .map_err(bad)?,
            id: r.id,
            status: r.status,
            msgid: r.msgid,
            errcode: r.errcode,
            reason: r.reason,
            attempts: r.attempts,
            next_attempt_ms: Timestamp::from_millis(r.next_attempt_ms),
            created_ms: Timestamp::from_millis(r.created_ms),
            updated_ms: Timestamp::from_millis(r.updated_ms),
            request_hash: r.request_hash,
        })
    }
}

impl TryFrom<ClaimedRow> for Claimed {
    type Error = StoreError;
    fn try_from(r: ClaimedRow) -> Result<Self, StoreError> {
        Ok(Claimed {
            app: r.app,
            channel: r.channel,
            openid: r.openid,
            template_id: stored_template(&r.template_id)?,
            payload: serde_json::from_str(&r.payload).map_err(bad)?,
            idempotency_key: r.idempotency_key,
            id: r.id,
            attempt: r.attempts,
        })
    }
}

/// One line of a message's history.
pub(crate) fn history_line(status: MessageStatus, at: Timestamp, extra: Value) -> String {
    let mut v = json!({ "status": status, "at_ms": at.millis() });
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    let mut line = v.to_string();
    line.push('\n');
    line
}

impl Store {
    /// Writes accepted messages in one transaction (concurrent requests share a commit),
    /// [`ROWS_PER_STATEMENT`] rows per INSERT. A subscribe message takes one unit of the
    /// person's subscription in the same transaction, so a crash can neither lose nor
    /// double it.
    pub async fn enqueue(
        &self,
        batch: &[NewMessage],
        now: Timestamp,
    ) -> Result<Vec<Enqueued>, StoreError> {
        let take_subscription = "UPDATE subscriptions
                SET remaining = CASE WHEN long_term THEN remaining ELSE remaining - 1 END, updated_at = $1
                WHERE app = $2 AND openid = $3 AND template_id = $4 AND (long_term OR remaining > 0)
                RETURNING long_term";
        let give_back = "UPDATE subscriptions SET remaining = remaining + 1
                WHERE app = $1 AND openid = $2 AND template_id = $3";
        let insert = |rows: usize| {
            format!(
                "INSERT INTO messages (id, caller, idempotency_key, request_hash, user_id, app, channel,
                    openid, template_id, category, payload, holds_subscription, history,
                    next_attempt_ms, created_ms, status, updated_ms)
                VALUES {}
                ON CONFLICT (caller, idempotency_key) DO NOTHING
                RETURNING id",
                placeholders(rows, 17)
            )
        };
        let mut out: Vec<Option<Enqueued>> = vec![None; batch.len()];
        with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            // Subscriptions first, one message at a time (two messages may share one).
            let mut holds = vec![false; batch.len()];
            for (i, m) in batch.iter().enumerate() {
                if !m.channel.uses_ledger() {
                    continue;
                }
                let taken: Option<(bool,)> = sqlx::query_as(take_subscription)
                    .bind(now.secs())
                    .bind(&m.app)
                    .bind(&m.openid)
                    .bind(template_text(&m.template_id))
                    .fetch_optional(&mut *tx)
                    .await?;
                match taken {
                    None => out[i] = Some(Enqueued::NoSubscription),
                    Some((long_term,)) => holds[i] = !long_term,
                }
            }
            let rows: Vec<usize> = (0..batch.len()).filter(|&i| out[i].is_none()).collect();
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let sql = insert(chunk.len());
                let mut q = sqlx::query_as::<_, (String,)>(&sql);
                for &i in chunk {
                    let m = &batch[i];
                    let payload = serde_json::to_string(&m.payload).expect("payload serializes");
                    let extra = match &m.note {
                        Some(note) => json!({ "detail": note }),
                        None => Value::Null,
                    };
                    q = q
                        .bind(&m.id)
                        .bind(&m.caller)
                        .bind(m.idempotency_key.as_ref())
                        .bind(&m.request_hash)
                        .bind(&m.user_id)
                        .bind(&m.app)
                        .bind(m.channel)
                        .bind(&m.openid)
                        .bind(template_text(&m.template_id))
                        .bind(m.category.as_ref())
                        .bind(payload)
                        .bind(holds[i])
                        .bind(history_line(MessageStatus::Queued, now, extra))
                        .bind(now.millis())
                        .bind(now.millis())
                        .bind(MessageStatus::Queued.as_str())
                        .bind(now.millis());
                }
                let inserted: HashSet<String> = q
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|(id,)| id)
                    .collect();
                for &i in chunk {
                    let m = &batch[i];
                    if inserted.contains(m.id.as_str()) {
                        out[i] = Some(Enqueued::New);
                        continue;
                    }
                    // The caller's idempotency key is taken (by an earlier message or one
                    // earlier in this batch): the unit goes back.
                    if holds[i] {
                        sqlx::query(give_back)
                            .bind(&m.app)
                            .bind(&m.openid)
                            .bind(template_text(&m.template_id))
                            .execute(&mut *tx)
                            .await?;
                    }
                    out[i] = Some(Enqueued::KeyTaken);
                }
            }
            tx.commit().await?;
        });
        Ok(out
            .into_iter()
            .map(|e| e.expect("every message was decided"))
            .collect())
    }

    /// The message a caller sent under an idempotency key, if any.
    pub async fn message_by_key(
        &self,
        caller: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<Message>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM messages WHERE caller = $1 AND idempotency_key = $2");
        let row: Option<MessageRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql)
                .bind(caller)
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        row.map(Message::try_from).transpose()
    }

    pub async fn message(&self, id: &MessageId) -> Result<Option<Message>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = $1");
        let row: Option<MessageRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(Message::try_from).transpose()
    }

    /// A user's messages, newest first, `limit` at a time; `before` is the last id of the
    /// previous page.
    pub async fn user_messages(
        &self,
        user: &UserId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        // Ids start with "m"; "n" sorts after every one of them.
        let before = before.unwrap_or("n");
        let rows: Vec<MessageRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql)
                .bind(user)
                .bind(before)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Message::try_from).collect()
    }

    /// Claims up to `limit` due messages for `owner` until `now + lease_ms`: queued ones,
    /// and sending ones whose worker's lease ran out. Held apps are skipped.
    pub async fn claim_messages(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let head = format!(
            r#"{{"status":"sending","at_ms":{},"attempt":"#,
            now.millis()
        );
        let rows: Vec<ClaimedRow> = with_pool!(&self.write, |pool| {
            let sql = format!(
                "UPDATE messages SET status = 'sending', lease_owner = $1, lease_until_ms = $2,
                        attempts = attempts + 1, updated_ms = $3,
                        history = history || $4 || CAST(attempts + 1 AS TEXT) || $5
                 WHERE id IN (
                     SELECT id FROM messages m
                     WHERE m.status IN ('queued', 'sending') AND m.next_attempt_ms <= $3
                       AND m.lease_until_ms <= $3
                       AND NOT EXISTS (SELECT 1 FROM send_holds h
                                       WHERE h.app = m.app AND h.channel = m.channel AND h.until_ms > $3)
                     ORDER BY m.next_attempt_ms
                     LIMIT $6 {skip_locked})
                 RETURNING id, app, channel, openid, template_id, payload, idempotency_key, attempts",
                skip_locked = pool.skip_locked()
            );
            sqlx::query_as(&sql)
                .bind(owner)
                .bind(now.plus_millis(lease_ms).millis())
                .bind(now.millis())
                .bind(&head)
                .bind("}\n")
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Claimed::try_from).collect()
    }

    /// Puts every message `owner` is sending back in the queue, due at once, its lease
    /// cleared and the attempt it was claimed for not counted (shutdown: the instance
    /// will not finish them). Returns the channels of the messages given back.
    pub async fn release_claims(
        &self,
        owner: &str,
        now: Timestamp,
    ) -> Result<Vec<Channel>, StoreError> {
        let line = history_line(
            MessageStatus::Queued,
            now,
            json!({ "detail": "given back to the queue at shutdown" }),
        );
        let sql = "UPDATE messages SET status = 'queued', lease_owner = NULL, lease_until_ms = 0,
                          attempts = attempts - 1, updated_ms = $2, history = history || $3
                   WHERE lease_owner = $1 AND status = 'sending'
                   RETURNING channel";
        let rows: Vec<(Channel,)> = with_pool!(&self.write, |pool| {
            sqlx::query_as(sql)
                .bind(owner)
                .bind(now.millis())
                .bind(&line)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// Holds an app's channel until `until` (WeChat's daily quota is spent).
    pub async fn hold_channel(
        &self,
        app: &AppId,
        channel: Channel,
        until: Timestamp,
        reason: &str,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO send_holds (app, channel, until_ms, reason) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (app, channel) DO UPDATE SET until_ms = excluded.until_ms, reason = excluded.reason";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(app)
                .bind(channel)
                .bind(until.millis())
                .bind(reason)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The hold on an app's channel, if one is in force: until when, and why.
    pub async fn channel_hold(
        &self,
        app: &AppId,
        channel: Channel,
        now: Timestamp,
    ) -> Result<Option<(Timestamp, String)>, StoreError> {
        let sql = "SELECT until_ms, reason FROM send_holds WHERE app = $1 AND channel = $2 AND until_ms > $3";
        let row: Option<(i64, String)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(channel)
                .bind(now.millis())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(until, reason)| (Timestamp::from_millis(until), reason)))
    }

    /// Messages waiting or in flight: how many, and when the oldest was accepted.
    pub async fn outbox_depth(&self) -> Result<(i64, Option<Timestamp>), StoreError> {
        let sql =
            "SELECT COUNT(*), MIN(created_ms) FROM messages WHERE status IN ('queued', 'sending')";
        let (depth, oldest): (i64, Option<i64>) = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql).fetch_one(pool).await?
        });
        Ok((depth, oldest.map(Timestamp::from_millis)))
    }

    /// Says `owner` is alive at `now`, forgets instances not seen since `stale_before`, and
    /// counts the instances sending (this one included): what its share of the rate is.
    pub async fn outbox_heartbeat(
        &self,
        owner: &str,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<u32, StoreError> {
        let n: i64 = with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO outbox_instances (owner, seen_ms) VALUES ($1, $2)
                 ON CONFLICT (owner) DO UPDATE SET seen_ms = excluded.seen_ms",
            )
            .bind(owner)
            .bind(now.millis())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM outbox_instances WHERE seen_ms < $1")
                .bind(stale_before.millis())
                .execute(&mut *tx)
                .await?;
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox_instances")
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        Ok(n.clamp(1, u32::MAX as i64) as u32)
    }

    /// `owner` stops sending: the others' shares grow at their next heartbeat.
    pub async fn outbox_leave(&self, owner: &str) -> Result<(), StoreError> {
        with_pool!(&self.write, |pool| {
            sqlx::query("DELETE FROM outbox_instances WHERE owner = $1")
                .bind(owner)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
