//! Refreshing a person's profile with their own web tokens (snsapi_userinfo): the stored
//! access token while it lives, else one `sns/oauth2/refresh_token` call, then
//! `sns/userinfo`. Concurrent refreshes of one identity share one flight: WeChat's refresh
//! token stays valid after use (it is not rotated), so two instances refreshing at once
//! only spend a call each, and single flight within the process is enough.

use super::web_oauth::REFRESH_TOKEN_SECS;
use crate::config::AppConfig;
use crate::context::Context;
use crate::domain::{AppId, OAuthScope, OpenId, UnionId, UserId};
use crate::store::{Identity, StoreError, StoredWebToken, WebToken};
use crate::wechat::{ErrCode, WechatError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A stored access token this close to its expiry is refreshed rather than used.
const ACCESS_MARGIN_SECS: i64 = 60;

/// Why a profile cannot be refreshed without the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// No web token is kept (`keep_web_tokens = false`, unbound, or pruned).
    NoToken,
    /// The refresh token is older than its 30 days.
    Expired,
    /// WeChat refused the refresh token (42002 expired, 40030 invalid).
    Refused(i64),
}

impl Stale {
    pub fn message(self) -> String {
        match self {
            Self::NoToken => "no web token is kept for this identity".into(),
            Self::Expired => "the refresh token is older than 30 days".into(),
            Self::Refused(code) => format!("WeChat refused the refresh token ({code})"),
        }
    }
}

/// How a refresh ended.
#[derive(Debug, Clone)]
pub enum Refreshed {
    /// The new profile, stored.
    Profile(Box<Identity>),
    /// That identity is not bound to that user.
    NotBound,
    /// The identity was authorized with snsapi_base only: WeChat gives no profile.
    BaseScope,
    /// The person must authorize again; the profile is marked stale.
    Stale(Stale),
}

/// One flight's slot: the latest result, and when it was reached.
type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Refreshed)>>>;

/// Single flight per identity: callers of one identity queue on its slot, and a caller
/// that arrived while the one before it was working takes that result. One per instance
/// (the route that refreshes holds it).
#[derive(Default)]
pub struct Flights {
    slots: Mutex<HashMap<(AppId, OpenId), Slot>>,
}

impl Flights {
    fn slot(&self, key: &(AppId, OpenId)) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(key.clone()).or_default().clone()
    }

    /// Forgets the slot once nobody else holds it.
    fn release(&self, key: &(AppId, OpenId), slot: Slot) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        drop(slot);
        if slots.get(key).is_some_and(|s| Arc::strong_count(s) == 1) {
            slots.remove(key);
        }
    }
}

/// Refreshes the profile of `user`'s identity `openid` in `app`.
pub async fn refresh(
    ctx: &Context,
    flights: &Flights,
    app: &AppConfig,
    user: &UserId,
    openid: &OpenId,
) -> Result<Refreshed, WechatOrStore> {
    let arrived = Instant::now();
    let key = (app.id.clone(), openid.clone());
    let slot = flights.slot(&key);
    let result = {
        let mut last = slot.lock().await;
        match last.as_ref() {
            Some((at, r)) if *at >= arrived => Ok(r.clone()),
            _ => {
                let r = fly(ctx, app, user, openid).await;
                if let Ok(r) = &r {
                    *last = Some((Instant::now(), r.clone()));
                }
                r
            }
        }
    };
    flights.release(&key, slot);
    // A result shared from another caller's flight was for the same identity; the binding
    // is checked again for this caller's user.
    match result {
        Ok(Refreshed::Profile(i)) if i.user_id.as_ref() != Some(user) => Ok(Refreshed::NotBound),
        other => other,
    }
}

/// A refresh that could not finish: WeChat failed (retry later) or the store did.
#[derive(Debug, thiserror::Error)]
pub enum WechatOrStore {
    #[error(transparent)]
    Wechat(#[from] WechatError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn fly(
    ctx: &Context,
    app: &AppConfig,
    user: &UserId,
    openid: &OpenId,
) -> Result<Refreshed, WechatOrStore> {
    let Some(identity) = ctx.store.identity(&app.id, openid).await? else {
        return Ok(Refreshed::NotBound);
    };
    if identity.user_id.as_ref() != Some(user) {
        return Ok(Refreshed::NotBound);
    }
    if identity.scope != OAuthScope::UserInfo {
        return Ok(Refreshed::BaseScope);
    }
    let now = ctx.clock.timestamp();
    let stale = |why: Stale| async move {
        tracing::info!(app = %app.id, openid = %openid.redacted(), reason = ?why, "profile is stale: the person must authorize again");
        ctx.store.mark_profile_stale(&app.id, openid, now).await?;
        Ok(Refreshed::Stale(why))
    };
    let Some(token) = ctx.store.web_token(&app.id, openid).await? else {
        return stale(Stale::NoToken).await;
    };
    if token.refresh_expires_at <= now {
        return stale(Stale::Expired).await;
    }
    let mut refreshed = false;
    let access = if token.expires_at.secs() - ACCESS_MARGIN_SECS > now.secs() {
        token.access_token.clone()
    } else {
        refreshed = true;
        match renew(ctx, app, openid, &token).await? {
            Ok(access) => access,
            Err(why) => return stale(why).await,
        }
    };
    let profile = match ctx.wechat.userinfo(&app.wechat, &access, openid).await {
        Ok(p) => p,
        // The stored access token was revoked early: renew once and read again.
        Err(WechatError::Api { code, .. })
            if !refreshed && code.class() == crate::wechat::ErrorClass::TokenInvalid =>
        {
            let access = match renew(ctx, app, openid, &token).await? {
                Ok(access) => access,
                Err(why) => return stale(why).await,
            };
            ctx.wechat.userinfo(&app.wechat, &access, openid).await?
        }
        Err(WechatError::Api {
            code: ErrCode::ApiUnauthorized,
            ..
        }) => {
            return Ok(Refreshed::BaseScope);
        }
        Err(e) => return Err(e.into()),
    };
    let unionid = profile
        .unionid
        .as_deref()
        .and_then(|u| UnionId::parse(u).ok());
    let now = ctx.clock.timestamp();
    match ctx
        .store
        .save_profile(&app.id, openid, &profile, unionid.as_ref(), now)
        .await?
    {
        Some(i) => Ok(Refreshed::Profile(Box::new(i))),
        None => Ok(Refreshed::NotBound),
    }
}

/// One `sns/oauth2/refresh_token` call; the new pair is stored. `Err(Stale)` when WeChat
/// refuses the refresh token.
async fn renew(
    ctx: &Context,
    app: &AppConfig,
    openid: &OpenId,
    token: &StoredWebToken,
) -> Result<Result<String, Stale>, WechatOrStore> {
    let tok = match ctx
        .wechat
        .refresh_web_token(&app.wechat, &token.refresh_token)
        .await
    {
        Ok(t) => t,
        Err(WechatError::Api { code, .. })
            if matches!(
                code,
                ErrCode::RefreshTokenExpired | ErrCode::InvalidRefreshToken
            ) =>
        {
            return Ok(Err(Stale::Refused(code.code())));
        }
        Err(e) => return Err(e.into()),
    };
    let now = ctx.clock.timestamp();
    // WeChat hands the same refresh token back, its 30 days counted from the authorization;
    // a new one starts its own 30 days.
    let refresh_expires_at =
        if tok.refresh_token == token.refresh_token || tok.refresh_token.is_empty() {
            token.refresh_expires_at
        } else {
            now.plus_secs(REFRESH_TOKEN_SECS)
        };
    let refresh_token = if tok.refresh_token.is_empty() {
        token.refresh_token.as_str()
    } else {
        tok.refresh_token.as_str()
    };
    ctx.store
        .save_web_token(
            &app.id,
            openid,
            &WebToken {
                access_token: &tok.access_token,
                refresh_token,
                scope: token.scope,
                expires_at: now.plus_secs(tok.expires_in),
                refresh_expires_at,
            },
            now,
        )
        .await?;
    Ok(Ok(tok.access_token))
}
