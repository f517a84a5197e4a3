//! Forwarded pushes (`push_forwards`): the claim that makes one instance forward a push
//! once, the answer WeChat's retries are given (sealed: it is a reply to a person), and the
//! failures the admin page lists.

use super::sealed::FORWARD_ANSWER;
use super::{Backend, Store, StoreError, with_pool};
use crate::clock::Timestamp;
use crate::domain::AppId;

/// How a forward ended, as stored.
#[derive(Debug, Clone)]
pub struct ForwardRecord {
    /// `reply`, `success`, `timeout`, `unreachable`, `bad_status`, `bad_answer`.
    pub outcome: &'static str,
    /// The downstream's HTTP status, when it answered.
    pub status: Option<u16>,
    pub took_ms: i64,
    /// Why the downstream's answer was not used (failures only).
    pub error: Option<String>,
    /// What WeChat was answered: the downstream's answer, or `success` after a failure.
    pub content_type: String,
    pub answer: String,
}

/// A write to `push_forwards`. The forwarder hands them to one writer, which writes what
/// has queued up in one transaction: under load a forwarded push costs a share of a
/// commit, not two commits of its own on SQLite's one writer.
#[derive(Debug, Clone)]
pub enum ForwardWrite {
    /// The first arrival of a push claims its forward.
    Claim {
        app: AppId,
        dedup_key: String,
        kind: String,
        openid: Option<String>,
        at: Timestamp,
    },
    /// How a claimed forward ended and what WeChat was answered.
    Finish {
        app: AppId,
        dedup_key: String,
        record: ForwardRecord,
        at: Timestamp,
    },
}

const CLAIM_SQL: &str = "INSERT INTO push_forwards (app, dedup_key, kind, openid, started_at)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
const FINISH_SQL: &str =
    "UPDATE push_forwards SET finished_at = $1, outcome = $2, status = $3, took_ms = $4,
            error = $5, content_type = $6, answer = $7
     WHERE app = $8 AND dedup_key = $9";

/// What the store knows of a push's forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardState {
    /// Nobody claimed it.
    Missing,
    /// Claimed, not finished: a forward is in flight somewhere.
    InFlight,
    /// Finished; the answer is gone once older than its retention (or did not open).
    Answered {
        content_type: String,
        answer: Option<String>,
    },
}

/// A forward that did not get the downstream's answer to WeChat, for the admin page.
#[derive(Debug, Clone)]
pub struct ForwardFailure {
    pub app: AppId,
    pub kind: String,
    pub openid: Option<String>,
    pub started_at: Timestamp,
    pub outcome: String,
    pub status: Option<i64>,
    pub took_ms: Option<i64>,
    pub error: String,
}

impl Store {
    /// Writes `writes` in order, in one transaction. For each, whether it took: a claim
    /// is `false` when the push's forward was claimed before (a retry, here or on another
    /// instance), and then the first forward's answer is the one to give.
    pub async fn write_forwards(&self, writes: &[ForwardWrite]) -> Result<Vec<bool>, StoreError> {
        // Sealed before the transaction opens: the writer is held for statements only.
        let sealed = writes
            .iter()
            .map(|w| match w {
                ForwardWrite::Claim { .. } => Ok(String::new()),
                ForwardWrite::Finish {
                    app,
                    dedup_key,
                    record,
                    ..
                } => self.seal_text(&FORWARD_ANSWER, app.as_str(), dedup_key, &record.answer),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let took = with_pool!(&self.write, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                let mut took = Vec::with_capacity(writes.len());
                for (w, sealed) in writes.iter().zip(&sealed) {
                    let q = match w {
                        ForwardWrite::Claim {
                            app,
                            dedup_key,
                            kind,
                            openid,
                            at,
                        } => sqlx::query(CLAIM_SQL)
                            .bind(app)
                            .bind(dedup_key)
                            .bind(kind)
                            .bind(openid)
                            .bind(at.secs()),
                        ForwardWrite::Finish {
                            app,
                            dedup_key,
                            record: r,
                            at,
                        } => sqlx::query(FINISH_SQL)
                            .bind(at.secs())
                            .bind(r.outcome)
                            .bind(r.status.map(i64::from))
                            .bind(r.took_ms)
                            .bind(&r.error)
                            .bind(&r.content_type)
                            .bind(sealed)
                            .bind(app)
                            .bind(dedup_key),
                    };
                    took.push(q.execute(&mut *tx).await?.rows_affected() == 1);
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(took)
            }
            .await
        });
        self.kept(took.map_err(StoreError::from))
    }

    /// Where the forward of a push stands.
    pub async fn forward_state(
        &self,
        app: &AppId,
        dedup_key: &str,
    ) -> Result<ForwardState, StoreError> {
        let sql = "SELECT finished_at, content_type, answer FROM push_forwards
                   WHERE app = $1 AND dedup_key = $2";
        let row: Option<(Option<i64>, Option<String>, Option<String>)> =
            with_pool!(&self.db, |pool| {
                sqlx::query_as(sql)
                    .bind(app)
                    .bind(dedup_key)
                    .fetch_optional(pool)
                    .await?
            });
        Ok(match row {
            None => ForwardState::Missing,
            Some((None, _, _)) => ForwardState::InFlight,
            Some((Some(_), content_type, answer)) => ForwardState::Answered {
                content_type: content_type.unwrap_or_default(),
                answer: answer
                    .and_then(|a| self.open_text(&FORWARD_ANSWER, app.as_str(), dedup_key, &a)),
            },
        })
    }

    /// The latest failed forwards, newest first (of one app, or all).
    pub async fn forward_failures(
        &self,
        app: Option<&AppId>,
        limit: i64,
    ) -> Result<Vec<ForwardFailure>, StoreError> {
        type Row = (
            AppId,
            String,
            Option<String>,
            i64,
            Option<String>,
            Option<i64>,
            Option<i64>,
            String,
        );
        let sql = "SELECT app, kind, openid, started_at, outcome, status, took_ms, error
                   FROM push_forwards
                   WHERE error IS NOT NULL AND ($1 IS NULL OR app = $1)
                   ORDER BY started_at DESC LIMIT $2";
        let rows: Vec<Row> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(app, kind, openid, started, outcome, status, took_ms, error)| ForwardFailure {
                    app,
                    kind,
                    openid,
                    started_at: Timestamp::from_secs(started),
                    outcome: outcome.unwrap_or_default(),
                    status,
                    took_ms,
                    error,
                },
            )
            .collect())
    }
}
