//! What a person allowed us to send: subscribe-message subscriptions, legacy form ids, and
//! the categories a user muted.

use super::{Backend, Store, StoreError, with_pool};
use crate::clock::{Timestamp, serde_unix};
use crate::domain::{AppId, Category, OpenId, ParseError, TemplateId, UserId, stored_as_text};
use serde::Serialize;

/// WeChat keeps a form_id or prepay_id usable for 7 days.
pub const FORM_ID_TTL_SECS: i64 = 7 * 24 * 3600;

/// One ledger line: how many more one-time sends, or a long-term subscription.
#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    pub template_id: String,
    pub remaining: i64,
    pub long_term: bool,
    #[serde(serialize_with = "serde_unix::secs")]
    pub updated_at: Timestamp,
}

/// A `subscriptions` row; `updated_at` is in seconds.
#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    template_id: String,
    remaining: i64,
    long_term: bool,
    updated_at: i64,
}

impl From<SubscriptionRow> for Subscription {
    fn from(r: SubscriptionRow) -> Self {
        Self {
            template_id: r.template_id,
            remaining: r.remaining,
            long_term: r.long_term,
            updated_at: Timestamp::from_secs(r.updated_at),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormIdKind {
    /// From a `<form report-submit>`: one send.
    Form,
    /// From a payment: three sends.
    Prepay,
}

impl FormIdKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Form => "form",
            Self::Prepay => "prepay",
        }
    }

    pub fn uses(self) -> i64 {
        match self {
            Self::Form => 1,
            Self::Prepay => 3,
        }
    }

    fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "form" => Ok(Self::Form),
            "prepay" => Ok(Self::Prepay),
            other => Err(ParseError(format!("unknown form id kind {other:?}"))),
        }
    }
}

stored_as_text!(FormIdKind);

/// A stored form_id or prepay_id.
#[derive(Debug, Clone, Serialize)]
pub struct FormId {
    pub form_id: String,
    pub kind: FormIdKind,
    pub uses_left: i64,
    #[serde(serialize_with = "serde_unix::secs")]
    pub created_at: Timestamp,
    #[serde(serialize_with = "serde_unix::secs")]
    pub expires_at: Timestamp,
}

/// A `form_ids` row; its instants are in seconds.
#[derive(sqlx::FromRow)]
struct FormIdRow {
    form_id: String,
    kind: FormIdKind,
    uses_left: i64,
    created_at: i64,
    expires_at: i64,
}

impl From<FormIdRow> for FormId {
    fn from(r: FormIdRow) -> Self {
        Self {
            form_id: r.form_id,
            kind: r.kind,
            uses_left: r.uses_left,
            created_at: Timestamp::from_secs(r.created_at),
            expires_at: Timestamp::from_secs(r.expires_at),
        }
    }
}

impl Store {
    /// Records `count` more one-time acceptances (and a long-term one when `long_term`).
    pub async fn add_subscription(
        &self,
        app: &AppId,
        openid: &OpenId,
        template: &TemplateId,
        count: i64,
        long_term: bool,
        now: Timestamp,
    ) -> Result<Subscription, StoreError> {
        let sql =
            "INSERT INTO subscriptions (app, openid, template_id, remaining, long_term, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (app, openid, template_id) DO UPDATE SET
                       remaining = subscriptions.remaining + excluded.remaining,
                       long_term = subscriptions.long_term OR excluded.long_term,
                       updated_at = excluded.updated_at
                   RETURNING template_id, remaining, long_term, updated_at";
        let row: SubscriptionRow = with_pool!(&self.write, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(openid)
                .bind(template)
                .bind(count)
                .bind(long_term)
                .bind(now.secs())
                .fetch_one(pool)
                .await?
        });
        Ok(row.into())
    }

    /// A person's ledger in one app.
    pub async fn subscriptions(
        &self,
        app: &AppId,
        openid: &OpenId,
    ) -> Result<Vec<Subscription>, StoreError> {
        let sql = "SELECT template_id, remaining, long_term, updated_at FROM subscriptions
                   WHERE app = $1 AND openid = $2 ORDER BY template_id";
        let rows: Vec<SubscriptionRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(openid)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Subscription::from).collect())
    }

    /// Stores a form_id or prepay_id; storing the same id again changes nothing.
    pub async fn add_form_id(
        &self,
        app: &AppId,
        openid: &OpenId,
        form_id: &str,
        kind: FormIdKind,
        now: Timestamp,
    ) -> Result<FormId, StoreError> {
        let insert =
            "INSERT INTO form_ids (app, form_id, openid, kind, uses_left, created_at, expires_at)
                      VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (app, form_id) DO NOTHING";
        let select = "SELECT form_id, kind, uses_left, created_at, expires_at FROM form_ids
                      WHERE app = $1 AND form_id = $2";
        let row: FormIdRow = with_pool!(&self.write, |pool| {
            sqlx::query(insert)
                .bind(app)
                .bind(form_id)
                .bind(openid)
                .bind(kind)
                .bind(kind.uses())
                .bind(now.secs())
                .bind(now.secs() + FORM_ID_TTL_SECS)
                .execute(pool)
                .await?;
            sqlx::query_as(select)
                .bind(app)
                .bind(form_id)
                .fetch_one(pool)
                .await?
        });
        Ok(row.into())
    }

    /// The usable form id that expires first: the one to spend next.
    pub async fn next_form_id(
        &self,
        app: &AppId,
        openid: &OpenId,
        now: Timestamp,
    ) -> Result<Option<FormId>, StoreError> {
        let sql = "SELECT form_id, kind, uses_left, created_at, expires_at FROM form_ids
                   WHERE app = $1 AND openid = $2 AND uses_left > 0 AND expires_at > $3
                   ORDER BY expires_at, form_id LIMIT 1";
        let row: Option<FormIdRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(app)
                .bind(openid)
                .bind(now.secs())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(FormId::from))
    }

    /// One use of a form id went through.
    pub async fn use_form_id(&self, app: &AppId, form_id: &str) -> Result<(), StoreError> {
        let sql = "UPDATE form_ids SET uses_left = uses_left - 1
                   WHERE app = $1 AND form_id = $2 AND uses_left > 0";
        self.exec2(sql, app, form_id).await
    }

    /// WeChat says the id is used up or invalid: never try it again.
    pub async fn spend_form_id(&self, app: &AppId, form_id: &str) -> Result<(), StoreError> {
        let sql = "UPDATE form_ids SET uses_left = 0 WHERE app = $1 AND form_id = $2";
        self.exec2(sql, app, form_id).await
    }

    async fn exec2(&self, sql: &str, app: &AppId, form_id: &str) -> Result<(), StoreError> {
        with_pool!(&self.write, |pool| {
            sqlx::query(sql)
                .bind(app)
                .bind(form_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Replaces the categories a user muted.
    pub async fn set_muted(
        &self,
        user: &UserId,
        categories: &[Category],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM muted_categories WHERE user_id = $1")
                .bind(user)
                .execute(&mut *tx)
                .await?;
            for c in categories {
                sqlx::query(
                    "INSERT INTO muted_categories (user_id, category, muted_at) VALUES ($1, $2, $3)
                     ON CONFLICT (user_id, category) DO NOTHING",
                )
                .bind(user)
                .bind(c)
                .bind(now.secs())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn muted(&self, user: &UserId) -> Result<Vec<Category>, StoreError> {
        let sql = "SELECT category FROM muted_categories WHERE user_id = $1 ORDER BY category";
        let rows: Vec<(Category,)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql).bind(user).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    pub async fn is_muted(&self, user: &UserId, category: &Category) -> Result<bool, StoreError> {
        let sql = "SELECT 1 FROM muted_categories WHERE user_id = $1 AND category = $2";
        let row: Option<(i32,)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(user)
                .bind(category)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.is_some())
    }
}
