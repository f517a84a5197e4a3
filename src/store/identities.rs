//! Identities and their binding to business users.

use super::{Backend, Store, StoreError, corrupt, with_pool};
use crate::clock::{Timestamp, serde_unix};
use crate::domain::{AppId, EventType, NewEvent, OAuthScope, OpenId, UnionId, UserId};
use crate::wechat::types::UserInfo;
use serde::Serialize;
use serde_json::json;

/// One person's identity in one app.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Identity {
    pub app: AppId,
    pub openid: OpenId,
    pub unionid: Option<UnionId>,
    pub user_id: Option<UserId>,
    pub scope: OAuthScope,
    pub profile: Option<UserInfo>,
    #[serde(skip)]
    pub is_snapshot: bool,
    #[serde(serialize_with = "serde_unix::secs")]
    #[schema(value_type = i64)]
    pub created_at: Timestamp,
    #[serde(serialize_with = "serde_unix::secs")]
    #[schema(value_type = i64)]
    pub updated_at: Timestamp,
    #[serde(serialize_with = "serde_unix::opt_secs")]
    #[schema(value_type = Option<i64>)]
    pub bound_at: Option<Timestamp>,
    /// Follows the Official Account (from subscribe/unsubscribe pushes); None: never heard.
    /// Explains a 43004 ("recipient does not follow") answer to a template send.
    pub follows: Option<bool>,
    /// WeChat's time of the latest follow or unfollow.
    #[serde(serialize_with = "serde_unix::opt_secs")]
    #[schema(value_type = Option<i64>)]
    pub follow_changed_at: Option<Timestamp>,
    /// When `profile` was last read from WeChat (Unix seconds).
    #[serde(serialize_with = "serde_unix::opt_secs")]
    #[schema(value_type = Option<i64>)]
    pub profile_at: Option<Timestamp>,
    /// The profile can no longer be refreshed: the person must authorize again
    /// (snsapi_userinfo).
    pub profile_stale: bool,
}

/// What we learnt about a person from WeChat.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    pub app: AppId,
    pub openid: OpenId,
    pub unionid: Option<UnionId>,
    pub scope: OAuthScope,
    pub profile: Option<UserInfo>,
    /// WeChat's snapshot-page mode: the openid is virtual, kept only for the record.
    pub is_snapshot: bool,
}

#[derive(Debug)]
pub enum BindOutcome {
    /// Now bound to the user (it may have been already).
    Bound(Box<Identity>),
    /// Bound to someone else; never re-pointed silently.
    Conflict {
        existing: UserId,
    },
    NotFound,
}

#[derive(sqlx::FromRow)]
pub(super) struct IdentityRow {
    app: AppId,
    openid: OpenId,
    unionid: Option<UnionId>,
    user_id: Option<UserId>,
    scope: OAuthScope,
    profile: Option<String>,
    is_snapshot: bool,
    created_at: i64,
    updated_at: i64,
    bound_at: Option<i64>,
    follows: Option<bool>,
    follow_changed_at: Option<i64>,
    profile_at: Option<i64>,
    profile_stale: bool,
}

pub(super) const COLUMNS: &str = "app, openid, unionid, user_id, scope, profile, is_snapshot, created_at, updated_at, bound_at, follows, follow_changed_at, profile_at, profile_stale";

impl TryFrom<IdentityRow> for Identity {
    type Error = StoreError;
    fn try_from(r: IdentityRow) -> Result<Self, StoreError> {
        Ok(Identity {
            app: r.app,
            openid: r.openid,
            unionid: r.unionid,
            user_id: r.user_id,
            scope: r.scope,
            profile: r
                .profile
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("identities", e))?,
            is_snapshot: r.is_snapshot,
            created_at: Timestamp::from_secs(r.created_at),
            updated_at: Timestamp::from_secs(r.updated_at),
            bound_at: r.bound_at.map(Timestamp::from_secs),
            follows: r.follows,
            follow_changed_at: r.follow_changed_at.map(Timestamp::from_secs),
            profile_at: r.profile_at.map(Timestamp::from_secs),
            profile_stale: r.profile_stale,
        })
    }
}

impl Store {
    /// Inserts or refreshes an identity. A later snsapi_base visit never downgrades the
    /// scope or drops a profile or unionid we already have; a new profile replaces the old
    /// one and is fresh again.
    pub async fn upsert_identity(
        &self,
        id: &NewIdentity,
        now: Timestamp,
    ) -> Result<Identity, StoreError> {
        let profile = id
            .profile
            .as_ref()
            .map(|p| serde_json::to_string(p).expect("profile serializes"));
        let sql = format!(
            "INSERT INTO identities (app, openid, unionid, user_id, scope, profile, is_snapshot, created_at, updated_at, profile_at)
             VALUES ($1, $2, $3, NULL, $4, $5, $7, $6, $6, CASE WHEN $5 IS NULL THEN NULL ELSE $6 END)
             ON CONFLICT (app, openid) DO UPDATE SET
                unionid = COALESCE(excluded.unionid, identities.unionid),
                scope = CASE WHEN excluded.scope = 'snsapi_userinfo' THEN excluded.scope ELSE identities.scope END,
                profile = COALESCE(excluded.profile, identities.profile),
                profile_at = COALESCE(excluded.profile_at, identities.profile_at),
                profile_stale = CASE WHEN excluded.scope = 'snsapi_userinfo' THEN FALSE ELSE identities.profile_stale END,
                updated_at = excluded.updated_at
             RETURNING {COLUMNS}"
        );
        let row: IdentityRow = with_pool!(&self.write, |pool| {
            sqlx::query_as(&sql)
                .bind(&id.app)
                .bind(&id.openid)
                .bind(id.unionid.as_ref())
                .bind(id.scope)
                .bind(profile.as_deref())
                .bind(now.secs())
                .bind(id.is_snapshot)
                .fetch_one(pool)
                .await?
        });
        row.try_into()
    }

    pub async fn identity(
        &self,
        app: &AppId,
        openid: &OpenId,
    ) -> Result<Option<Identity>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM identities WHERE app = $1 AND openid = $2");
        let row: Option<IdentityRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql)
                .bind(app)
                .bind(openid)
                .fetch_optional(pool)
                .await?
        });
        row.map(Identity::try_from).transpose()
    }

    /// The distinct business users already bound to any identity with this unionid.
    pub async fn users_with_unionid(&self, unionid: &UnionId) -> Result<Vec<UserId>, StoreError> {
        let sql = "SELECT DISTINCT user_id FROM identities
                   WHERE unionid = $1 AND user_id IS NOT NULL AND NOT is_snapshot
                   ORDER BY user_id";
        let rows: Vec<(UserId,)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(sql).bind(unionid).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    /// Binds an unbound identity to `user`, atomically: two racing binds cannot both win.
    pub async fn bind_identity(
        &self,
        app: &AppId,
        openid: &OpenId,
        user: &UserId,
        now: Timestamp,
    ) -> Result<BindOutcome, StoreError> {
        let sql = format!(
            "UPDATE identities SET user_id = $1, bound_at = $2, updated_at = $2
             WHERE app = $3 AND openid = $4 AND user_id IS NULL AND NOT is_snapshot
             RETURNING {COLUMNS}"
        );
        let row: Option<IdentityRow> = with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            let row: Option<IdentityRow> = sqlx::query_as(&sql)
                .bind(user)
                .bind(now.secs())
                .bind(app)
                .bind(openid)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(r) = &row {
                let event = NewEvent::about(EventType::IdentityLinked, now, app, openid, json!({}))
                    .user(Some(user))
                    .unionid(r.unionid.as_ref());
                super::webhooks::write_events!(tx, std::slice::from_ref(&event));
            }
            tx.commit().await?;
            row
        });
        if let Some(row) = row {
            super::webhooks::events_written();
            return Ok(BindOutcome::Bound(Box::new(row.try_into()?)));
        }
        Ok(match self.identity(app, openid).await? {
            None => BindOutcome::NotFound,
            Some(i) if i.is_snapshot => BindOutcome::NotFound,
            Some(i) => match &i.user_id {
                Some(existing) if existing == user => BindOutcome::Bound(Box::new(i)),
                Some(existing) => BindOutcome::Conflict {
                    existing: existing.clone(),
                },
                // Unbound again between our two statements: let the caller retry.
                None => BindOutcome::NotFound,
            },
        })
    }

    /// Unbinds one identity from `user`; false when it was not bound to that user.
    pub async fn unbind_identity(
        &self,
        app: &AppId,
        openid: &OpenId,
        user: &UserId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE identities SET user_id = NULL, bound_at = NULL, updated_at = $1
                   WHERE app = $2 AND openid = $3 AND user_id = $4";
        // The person's web tokens served this binding only.
        let tokens = "DELETE FROM web_tokens WHERE app = $1 AND openid = $2";
        let done = with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(sql)
                .bind(now.secs())
                .bind(app)
                .bind(openid)
                .bind(user)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                sqlx::query(tokens)
                    .bind(app)
                    .bind(openid)
                    .execute(&mut *tx)
                    .await?;
                let event =
                    NewEvent::about(EventType::IdentityUnlinked, now, app, openid, json!({}))
                        .user(Some(user));
                super::webhooks::write_events!(tx, std::slice::from_ref(&event));
            }
            tx.commit().await?;
            n
        });
        if done == 1 {
            super::webhooks::events_written();
        }
        Ok(done == 1)
    }

    /// The identity a message to `user` in `app` goes to: the most recently bound one.
    pub async fn user_identity(
        &self,
        user: &UserId,
        app: &AppId,
    ) -> Result<Option<Identity>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM identities WHERE user_id = $1 AND app = $2 AND NOT is_snapshot
             ORDER BY bound_at DESC, openid LIMIT 1"
        );
        let row: Option<IdentityRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql)
                .bind(user)
                .bind(app)
                .fetch_optional(pool)
                .await?
        });
        row.map(Identity::try_from).transpose()
    }

    pub async fn user_identities(&self, user: &UserId) -> Result<Vec<Identity>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM identities WHERE user_id = $1 AND NOT is_snapshot ORDER BY app, openid"
        );
        let rows: Vec<IdentityRow> = with_pool!(&self.db, |pool| {
            sqlx::query_as(&sql).bind(user).fetch_all(pool).await?
        });
        rows.into_iter().map(Identity::try_from).collect()
    }
}

impl Store {
    /// Replaces the profile with one just read from WeChat: fresh again, and its unionid
    /// learnt when the identity had none.
    pub async fn save_profile(
        &self,
        app: &AppId,
        openid: &OpenId,
        profile: &UserInfo,
        unionid: Option<&UnionId>,
        now: Timestamp,
    ) -> Result<Option<Identity>, StoreError> {
        let json = serde_json::to_string(profile).expect("profile serializes");
        let sql = format!(
            "UPDATE identities SET profile = $1, profile_at = $2, profile_stale = FALSE,
                unionid = COALESCE(unionid, $3), updated_at = $2
             WHERE app = $4 AND openid = $5
             RETURNING {COLUMNS}"
        );
        let row: Option<IdentityRow> = with_pool!(&self.write, |pool| {
            sqlx::query_as(&sql)
                .bind(&json)
                .bind(now.secs())
                .bind(unionid)
                .bind(app)
                .bind(openid)
                .fetch_optional(pool)
                .await?
        });
        row.map(Identity::try_from).transpose()
    }

    /// The profile can no longer be refreshed; its dead web tokens go with the mark.
    pub async fn mark_profile_stale(
        &self,
        app: &AppId,
        openid: &OpenId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mark = "UPDATE identities SET profile_stale = TRUE, updated_at = $1
                    WHERE app = $2 AND openid = $3";
        let tokens = "DELETE FROM web_tokens WHERE app = $1 AND openid = $2";
        with_pool!(&self.write, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(mark)
                .bind(now.secs())
                .bind(app)
                .bind(openid)
                .execute(&mut *tx)
                .await?;
            sqlx::query(tokens)
                .bind(app)
                .bind(openid)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
