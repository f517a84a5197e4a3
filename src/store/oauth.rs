//! The short-lived things of the authorization flow: link tickets, login codes, code
//! exchanges, and the per-person web tokens.

use super::sealed::{OAUTH_OUTCOME, WEB_ACCESS_TOKEN, WEB_REFRESH_TOKEN};
use super::{Store, StoreError, with_pool};
use crate::clock::Timestamp;
use crate::domain::{AppId, OAuthScope, OpenId, UserId};

/// Why a one-time code or ticket was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeProblem {
    Unknown,
    Used,
    Expired,
}

#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    pub ticket_hash: String,
    pub app: &'a AppId,
    pub user_id: &'a UserId,
    pub scope: OAuthScope,
    pub return_to: Option<&'a str>,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct LinkTicket {
    pub app: AppId,
    pub user_id: UserId,
    pub scope: OAuthScope,
    pub return_to: Option<String>,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// A `link_tickets` row; its instants are in seconds.
#[derive(sqlx::FromRow)]
struct TicketRow {
    app: AppId,
    user_id: UserId,
    scope: OAuthScope,
    return_to: Option<String>,
    expires_at: i64,
    used_at: Option<i64>,
}

impl From<TicketRow> for LinkTicket {
    fn from(r: TicketRow) -> Self {
        Self {
            app: r.app,
            user_id: r.user_id,
            scope: r.scope,
            return_to: r.return_to,
            expires_at: Timestamp::from_secs(r.expires_at),
            used_at: r.used_at.map(Timestamp::from_secs),
        }
    }
}

/// A claimed code exchange and, once finished, its outcome (serialized by the caller;
/// stored sealed: it may carry a live login code).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Exchange {
    pub app: String,
    pub state_hash: String,
    pub outcome: Option<String>,
}

/// A person's web token pair; the refresh token never leaves the server. Both are stored
/// sealed.
#[derive(Clone)]
pub struct WebToken<'a> {
    pub access_token: &'a str,
    pub refresh_token: &'a str,
    pub scope: OAuthScope,
    pub expires_at: Timestamp,
    pub refresh_expires_at: Timestamp,
}

/// What [`Store::exchange`] reports for an outcome that no longer opens: not a valid
/// stored answer, so the callback says it is unavailable rather than waiting for it.
const UNOPENED_OUTCOME: &str = "unopened";

const TICKET_COLUMNS: &str = "app, user_id, scope, return_to, expires_at, used_at";

impl Store {
    pub async fn create_ticket(&self, t: &NewTicket<'_>, now: Timestamp) -> Result<(), StoreError> {
        let sql = "INSERT INTO link_tickets (ticket_hash, app, user_id, scope, return_to, created_at, expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(&t.ticket_hash)
                .bind(t.app)
                .bind(t.user_id)
                .bind(t.scope)
                .bind(t.return_to)
                .bind(now.secs())
                .bind(t.expires_at.secs())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A ticket as stored, used or not: a refused link still knows where to send the
    /// person back to.
    pub async fn find_ticket(&self, hash: &str) -> Result<Option<LinkTicket>, StoreError> {
        let sql = format!("SELECT {TICKET_COLUMNS} FROM link_tickets WHERE ticket_hash = $1");
        let row: Option<TicketRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql).bind(hash).fetch_optional(pool).await?
        });
        Ok(row.map(LinkTicket::from))
    }

    /// Looks a ticket up without using it, to refuse a bad link before sending the person
    /// to WeChat.
    pub async fn check_ticket(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Result<LinkTicket, CodeProblem>, StoreError> {
        let Some(t) = self.find_ticket(hash).await? else {
            return Ok(Err(CodeProblem::Unknown));
        };
        Ok(if t.used_at.is_some() {
            Err(CodeProblem::Used)
        } else if t.expires_at <= now {
            Err(CodeProblem::Expired)
        } else {
            Ok(t)
        })
    }

    /// Uses a ticket up: of any number of concurrent callers exactly one succeeds.
    pub async fn consume_ticket(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Result<LinkTicket, CodeProblem>, StoreError> {
        let sql = format!(
            "UPDATE link_tickets SET used_at = $1
             WHERE ticket_hash = $2 AND used_at IS NULL AND expires_at > $1
             RETURNING {TICKET_COLUMNS}"
        );
        let row: Option<TicketRow> = with_pool!(&self.write, |pool| {
            sqlx::query_as(&sql)
                .bind(now.secs())
                .bind(hash)
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some(t) => Ok(Ok(t.into())),
            None => Ok(Err(self
                .check_ticket(hash, now)
                .await?
                .err()
                .unwrap_or(CodeProblem::Used))),
        }
    }

    pub async fn create_login_code(
        &self,
        hash: &str,
        app: &AppId,
        openid: &OpenId,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO login_codes (code_hash, app, openid, created_at, expires_at)
                   VALUES ($1, $2, $3, $4, $5)";
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(hash)
                .bind(app)
                .bind(openid)
                .bind(now.secs())
                .bind(expires_at.secs())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The app a login code belongs to, without using it up (so a key that may not act on
    /// that app is refused before the code is spent).
    pub async fn login_code_app(&self, hash: &str) -> Result<Option<AppId>, StoreError> {
        let sql = "SELECT app FROM login_codes WHERE code_hash = $1";
        let row: Option<(AppId,)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql).bind(hash).fetch_optional(pool).await?
        });
        Ok(row.map(|(a,)| a))
    }

    /// Uses a login code up and says whose it was.
    pub async fn redeem_login_code(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Result<(AppId, OpenId), CodeProblem>, StoreError> {
        let sql = "UPDATE login_codes SET used_at = $1
                   WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1
                   RETURNING app, openid";
        let row: Option<(AppId, OpenId)> = with_pool!(&self.write, |pool| {
            sqlx::query_as(sql)
                .bind(now.secs())
                .bind(hash)
                .fetch_optional(pool)
                .await?
        });
        if let Some(who) = row {
            return Ok(Ok(who));
        }
        let sql = "SELECT used_at, expires_at FROM login_codes WHERE code_hash = $1";
        let row: Option<(Option<i64>, i64)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql).bind(hash).fetch_optional(pool).await?
        });
        Ok(Err(match row {
            None => CodeProblem::Unknown,
            Some((Some(_), _)) => CodeProblem::Used,
            Some((None, _)) => CodeProblem::Expired,
        }))
    }

    /// Claims the right to exchange an authorization code. True for exactly one caller.
    pub async fn claim_exchange(
        &self,
        code_hash: &str,
        app: &AppId,
        state_hash: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO oauth_exchanges (code_hash, app, state_hash, created_at)
                   VALUES ($1, $2, $3, $4) ON CONFLICT (code_hash) DO NOTHING";
        let n = with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(code_hash)
                .bind(app)
                .bind(state_hash)
                .bind(now.secs())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn finish_exchange(
        &self,
        code_hash: &str,
        outcome: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE oauth_exchanges SET outcome = $1, finished_at = $2 WHERE code_hash = $3";
        let sealed = self.seal_text(&OAUTH_OUTCOME, code_hash, "", outcome)?;
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(sealed)
                .bind(now.secs())
                .bind(code_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn exchange(&self, code_hash: &str) -> Result<Option<Exchange>, StoreError> {
        let sql = "SELECT app, state_hash, outcome FROM oauth_exchanges WHERE code_hash = $1";
        let row: Option<Exchange> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(code_hash)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|mut ex| {
            if let Some(stored) = ex.outcome.take() {
                ex.outcome = Some(
                    self.open_text(&OAUTH_OUTCOME, code_hash, "", &stored)
                        .unwrap_or_else(|| UNOPENED_OUTCOME.to_owned()),
                );
            }
            ex
        }))
    }

    pub async fn save_web_token(
        &self,
        app: &AppId,
        openid: &OpenId,
        t: &WebToken<'_>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO web_tokens (app, openid, access_token, refresh_token, scope, expires_at, refresh_expires_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (app, openid) DO UPDATE SET
                      access_token = excluded.access_token,
                      refresh_token = excluded.refresh_token,
                      scope = excluded.scope,
                      expires_at = excluded.expires_at,
                      refresh_expires_at = excluded.refresh_expires_at,
                      updated_at = excluded.updated_at";
        let access = self.seal_text(
            &WEB_ACCESS_TOKEN,
            app.as_str(),
            openid.as_str(),
            t.access_token,
        )?;
        let refresh = self.seal_text(
            &WEB_REFRESH_TOKEN,
            app.as_str(),
            openid.as_str(),
            t.refresh_token,
        )?;
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(app)
                .bind(openid)
                .bind(&access)
                .bind(&refresh)
                .bind(t.scope)
                .bind(t.expires_at.secs())
                .bind(t.refresh_expires_at.secs())
                .bind(now.secs())
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

/// A stored web token pair, opened. No `Debug`: it holds live tokens.
#[derive(Clone)]
pub struct StoredWebToken {
    pub access_token: String,
    pub refresh_token: String,
    pub scope: OAuthScope,
    pub expires_at: Timestamp,
    pub refresh_expires_at: Timestamp,
}

impl Store {
    /// The person's web tokens, opened; None when none are kept or they no longer open
    /// (sealed under a key that is gone): either way they cannot serve.
    pub async fn web_token(
        &self,
        app: &AppId,
        openid: &OpenId,
    ) -> Result<Option<StoredWebToken>, StoreError> {
        let sql = "SELECT access_token, refresh_token, scope, expires_at, refresh_expires_at
                   FROM web_tokens WHERE app = $1 AND openid = $2";
        let row: Option<(String, String, OAuthScope, i64, i64)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(openid)
                .fetch_optional(pool)
                .await?
        });
        Ok(
            row.and_then(|(access, refresh, scope, expires_at, refresh_expires_at)| {
                Some(StoredWebToken {
                    access_token: self.open_text(
                        &WEB_ACCESS_TOKEN,
                        app.as_str(),
                        openid.as_str(),
                        &access,
                    )?,
                    refresh_token: self.open_text(
                        &WEB_REFRESH_TOKEN,
                        app.as_str(),
                        openid.as_str(),
                        &refresh,
                    )?,
                    scope,
                    expires_at: Timestamp::from_secs(expires_at),
                    refresh_expires_at: Timestamp::from_secs(refresh_expires_at),
                })
            }),
        )
    }

    /// Until when the identity's refresh token lives, when one is kept.
    pub async fn refresh_expiry(
        &self,
        app: &AppId,
        openid: &OpenId,
    ) -> Result<Option<Timestamp>, StoreError> {
        let sql = "SELECT refresh_expires_at FROM web_tokens WHERE app = $1 AND openid = $2";
        let row: Option<(i64,)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(openid)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(t,)| Timestamp::from_secs(t)))
    }
}
