//! Mini-program login: exchange the `wx.login` code at `jscode2session`, keep the identity
//! (openid, unionid) and the session key sealed under the storage key, then bind the
//! identity to the given business user or find its user through openid or unionid.
//!
//! The session key never leaves this module in clear: it is sealed at once and the
//! caller only learns who the person is.

use super::link::{self, BindError, Conflict, Lookup};
use crate::config::{AppConfig, AppKind};
use crate::context::Context;
use crate::domain::{AppId, OAuthScope, OpenId, UnionId, UserId};
use crate::seal::Keyring;
use crate::store::{NewIdentity, StoreError};
use crate::wechat::WechatError;

const ENDPOINT: &str = "sns/jscode2session";

/// Who logged in, and the business user they belong to (`None`: new to the company).
#[derive(Debug, Clone)]
pub struct Login {
    pub app: AppId,
    pub openid: OpenId,
    pub unionid: Option<UnionId>,
    pub user_id: Option<UserId>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("app {0} is not a mini-program; sessions need a mini_program app")]
    NotMiniProgram(AppId),
    #[error(transparent)]
    Wechat(#[from] WechatError),
    /// The identity is stored, but binding it to the requested user would re-point it or
    /// join two users.
    #[error("{}", .conflict.message())]
    Conflict { conflict: Conflict, login: Login },
    /// No user was requested and the identity's unionid belongs to several users.
    #[error("this person's unionid is bound to several users ({}); refusing to pick one", join_users(.users))]
    Ambiguous { users: Vec<UserId>, login: Login },
    #[error("no storage_key is configured to seal the session key")]
    NoStorageKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn join_users(users: &[UserId]) -> String {
    users
        .iter()
        .map(UserId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The associated data that binds a sealed session key to its row.
pub fn session_key_aad(app: &AppId, openid: &OpenId) -> Vec<u8> {
    crate::store::session_key_aad(app, openid)
}

/// Logs a person in with the code of `wx.login` and binds or looks up their user.
pub async fn login(
    ctx: &Context,
    app: &AppConfig,
    js_code: &str,
    user: Option<&UserId>,
) -> Result<Login, LoginError> {
    if app.kind != AppKind::MiniProgram {
        return Err(LoginError::NotMiniProgram(app.id.clone()));
    }
    let key: &Keyring = ctx
        .config
        .storage_key
        .as_ref()
        .ok_or(LoginError::NoStorageKey)?;
    let session = ctx.wechat.jscode2session(&app.wechat, js_code).await?;
    let malformed = |what: &str| WechatError::Protocol {
        endpoint: ENDPOINT,
        detail: format!("malformed {what}"),
    };
    let openid = OpenId::parse(&session.openid).map_err(|_| malformed("openid"))?;
    let unionid = session
        .unionid
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(UnionId::parse)
        .transpose()
        .map_err(|_| malformed("unionid"))?;
    if session.session_key.is_empty() {
        return Err(malformed("session_key").into());
    }

    let now = ctx.clock.timestamp();
    let identity = ctx
        .store
        .upsert_identity(
            &NewIdentity {
                app: app.id.clone(),
                openid: openid.clone(),
                unionid,
                // Mini-program identities carry no web scope; base is the least claim.
                scope: OAuthScope::Base,
                profile: None,
                is_snapshot: false,
            },
            now,
        )
        .await?;
    let sealed = key.seal(
        session.session_key.as_bytes(),
        &session_key_aad(&app.id, &openid),
    );
    drop(session);
    ctx.store
        .save_session_key(&app.id, &openid, &sealed, now)
        .await?;

    let mut login = Login {
        app: app.id.clone(),
        openid: openid.clone(),
        // The stored unionid: WeChat may leave it out on a later login.
        unionid: identity.unionid.clone(),
        user_id: None,
    };
    login.user_id = match user {
        Some(user) => match link::bind_user(&ctx.store, &app.id, &openid, user, now).await {
            Ok(Ok(i)) => i.user_id,
            Ok(Err(conflict)) => {
                tracing::warn!(app = %app.id, openid = %openid.redacted(), via = conflict.via, "mini-program login: binding conflict");
                return Err(LoginError::Conflict { conflict, login });
            }
            Err(BindError::NotFound) => None,
            Err(BindError::Store(e)) => return Err(e.into()),
        },
        None => match link::find_user(&ctx.store, &identity, now).await? {
            Lookup::User(u) => Some(u),
            Lookup::Unknown => None,
            Lookup::Ambiguous(users) => return Err(LoginError::Ambiguous { users, login }),
        },
    };
    tracing::info!(app = %app.id, openid = %openid.redacted(), bound = login.user_id.is_some(), "mini-program login");
    Ok(login)
}

/// The session key of an identity's latest login, opened with the storage key: for
/// features that decrypt the mini-program's encrypted data. `None` when there is none or
/// it opens with neither `storage_key` nor `storage_key_previous`; the next login stores a
/// fresh one.
pub async fn session_key(
    ctx: &Context,
    app: &AppId,
    openid: &OpenId,
) -> Result<Option<secrecy::SecretString>, StoreError> {
    let (Some(key), Some(sealed)) = (
        ctx.config.storage_key.as_ref(),
        ctx.store.sealed_session_key(app, openid).await?,
    ) else {
        return Ok(None);
    };
    match key.open(&sealed, &session_key_aad(app, openid)) {
        Ok((plain, _)) => Ok(String::from_utf8(plain)
            .ok()
            .map(secrecy::SecretString::from)),
        Err(e) => {
            tracing::warn!(app = %app, openid = %openid.redacted(), error = %e, "stored session key does not open");
            Ok(None)
        }
    }
}
