//! The linking rules: which business user an identity belongs to.
//!
//! - An openid bound to one user is never re-pointed to another (conflict).
//! - A unionid joins a person's identities across apps: an unbound identity whose unionid
//!   is already bound to exactly one user is bound to that user.
//! - Binding an identity to a user while its unionid belongs to a different user is a
//!   conflict too: the two users are never merged silently.
//! - An unbound identity whose unionid already belongs to several users is bound to none
//!   of them; the mini-program login reports that as a conflict naming them.
//! - Unbinding one identity leaves the user's other identities bound.

use crate::clock::Timestamp;
use crate::domain::{AppId, EventType, NewEvent, OpenId, UnionId, UserId};
use crate::store::{BindOutcome, Identity, Store, StoreError};

/// Why an identity could not be bound to the requested user.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub existing: UserId,
    pub requested: UserId,
    /// `openid` (that identity is bound elsewhere) or `unionid` (the same person is).
    pub via: &'static str,
}

impl Conflict {
    pub fn message(&self) -> String {
        match self.via {
            "openid" => format!(
                "this WeChat identity is already bound to user {}; unbind it first to bind it to user {}",
                self.existing, self.requested
            ),
            _ => format!(
                "this person's unionid is already bound to user {}; refusing to join them with user {}",
                self.existing, self.requested
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("no such identity")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Binds `(app, openid)` to `user` under the rules above. A refusal is recorded as an
/// `identity.conflict` event for the identity's owner (the linking itself, as
/// `identity.linked`, by the store in the binding's transaction).
pub async fn bind_user(
    store: &Store,
    app: &AppId,
    openid: &OpenId,
    user: &UserId,
    now: Timestamp,
) -> Result<Result<Identity, Conflict>, BindError> {
    let outcome = try_bind(store, app, openid, user, now).await?;
    if let Err(c) = &outcome {
        let data = serde_json::json!({ "requested_user_id": c.requested, "via": c.via });
        let event = NewEvent::about(EventType::IdentityConflict, now, app, openid, data)
            .user(Some(&c.existing));
        store.record_events(&[event]).await?;
    }
    Ok(outcome)
}

async fn try_bind(
    store: &Store,
    app: &AppId,
    openid: &OpenId,
    user: &UserId,
    now: Timestamp,
) -> Result<Result<Identity, Conflict>, BindError> {
    let identity = store
        .identity(app, openid)
        .await?
        .filter(|i| !i.is_snapshot)
        .ok_or(BindError::NotFound)?;
    if let Some(existing) = identity.user_id.as_ref().filter(|u| *u != user) {
        return Ok(Err(Conflict {
            existing: existing.clone(),
            requested: user.clone(),
            via: "openid",
        }));
    }
    if let Some(unionid) = &identity.unionid
        && let Some(conflict) = unionid_conflict(store, unionid, user).await?
    {
        return Ok(Err(conflict));
    }
    match store.bind_identity(app, openid, user, now).await? {
        BindOutcome::Bound(i) => Ok(Ok(*i)),
        BindOutcome::Conflict { existing } => Ok(Err(Conflict {
            existing,
            requested: user.clone(),
            via: "openid",
        })),
        BindOutcome::NotFound => Err(BindError::NotFound),
    }
}

/// Whether the person behind `unionid` already belongs to a user other than `user`.
pub async fn unionid_conflict(
    store: &Store,
    unionid: &UnionId,
    user: &UserId,
) -> Result<Option<Conflict>, StoreError> {
    Ok(store
        .users_with_unionid(unionid)
        .await?
        .into_iter()
        .find(|u| u != user)
        .map(|other| Conflict {
            existing: other,
            requested: user.clone(),
            via: "unionid",
        }))
}

/// Who an identity that arrived without a requested user belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Bound already, or now bound through its unionid.
    User(UserId),
    /// Nobody yet: the person is new to the company.
    Unknown,
    /// Its unionid belongs to several users: nothing was bound.
    Ambiguous(Vec<UserId>),
}

/// For an identity that arrived without a requested user: its current user, or the one
/// user its unionid already belongs to (the identity is then bound to that user).
pub async fn find_user(
    store: &Store,
    identity: &Identity,
    now: Timestamp,
) -> Result<Lookup, StoreError> {
    if let Some(u) = &identity.user_id {
        return Ok(Lookup::User(u.clone()));
    }
    let Some(unionid) = &identity.unionid else {
        return Ok(Lookup::Unknown);
    };
    let users = store.users_with_unionid(unionid).await?;
    let user = match users.as_slice() {
        [] => return Ok(Lookup::Unknown),
        [user] => user,
        _ => {
            tracing::warn!(
                app = %identity.app,
                openid = %identity.openid.redacted(),
                "unionid is bound to several users; not binding automatically"
            );
            return Ok(Lookup::Ambiguous(users));
        }
    };
    match bind_user(store, &identity.app, &identity.openid, user, now).await {
        Ok(Ok(i)) => Ok(i.user_id.map_or(Lookup::Unknown, Lookup::User)),
        Ok(Err(_)) | Err(BindError::NotFound) => Ok(Lookup::Unknown),
        Err(BindError::Store(e)) => Err(e),
    }
}

/// [`find_user`] for the browser flow, where an ambiguous unionid simply binds nothing.
pub async fn auto_bind(
    store: &Store,
    identity: &Identity,
    now: Timestamp,
) -> Result<Option<UserId>, StoreError> {
    Ok(match find_user(store, identity, now).await? {
        Lookup::User(u) => Some(u),
        Lookup::Unknown | Lookup::Ambiguous(_) => None,
    })
}

/// Mints a single-use authorization link for `user`: the jump-out URL a mini-program opens
/// in its web-view. Returns the URL and its expiry.
pub async fn mint_ticket(
    ctx: &crate::context::Context,
    app: &crate::config::AppConfig,
    user: &UserId,
    scope: crate::domain::OAuthScope,
    return_to: Option<&crate::domain::ReturnTo>,
) -> Result<(String, i64), StoreError> {
    let now = ctx.clock.timestamp();
    let expires_at = now.plus_secs(ctx.config.oauth.ticket_ttl_secs);
    let ticket = crate::domain::OneTimeCode::generate();
    ctx.store
        .create_ticket(
            &crate::store::NewTicket {
                ticket_hash: ticket.hash(),
                app: &app.id,
                user_id: user,
                scope,
                return_to: return_to.map(|r| r.as_str()),
                expires_at,
            },
            now,
        )
        .await?;
    let url = ctx.url(&format!(
        "/oauth/{}/authorize?ticket={}",
        app.id,
        ticket.expose()
    ));
    Ok((url, expires_at.secs()))
}
