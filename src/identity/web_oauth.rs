//! The rules of the web authorization flow (Official Account pages): the one exchange of
//! an authorization code (store the identity, bind it, mint the login code), and what a
//! repeated callback carrying the same code is owed. The browser routes in
//! `http/oauth` keep the session, the state check and the pages.

use super::link::{self, BindError, Conflict};
use crate::config::AppConfig;
use crate::context::Context;
use crate::domain::{OAuthScope, OneTimeCode, OpenId, ReturnTo, UnionId, UserId};
use crate::store::{CodeProblem, NewIdentity, StoreError, WebToken};
use crate::wechat::WechatError;
use std::time::Duration;

/// Web tokens last 2 h, refresh tokens 30 days (WeChat's rules).
pub const REFRESH_TOKEN_SECS: i64 = 30 * 24 * 3600;

/// What the browser brought to the callback besides the code.
#[derive(Debug, Clone, Copy)]
pub struct Started<'a> {
    /// The jump-out ticket the authorization was started with, hashed.
    pub ticket_hash: Option<&'a str>,
    /// Where the browser goes back to with a login code.
    pub return_to: Option<&'a ReturnTo>,
    /// The business's own opaque value, handed back beside the login code.
    pub client_state: Option<&'a str>,
}

/// How the one exchange of a code ended. Every case but a store failure is an answer the
/// browser gets, and gets again on a repeated callback.
#[derive(Debug)]
pub enum Completed {
    /// Back to the caller's page with a login code (`wxlink_code`) to redeem.
    Redirect { location: String },
    /// No page to go back to: the identity is stored, and bound to `user_id` if known.
    Linked { user_id: Option<UserId> },
    /// WeChat refused the code, or could not be reached.
    CodeRefused(WechatError),
    /// WeChat answered with an openid or unionid that is not one.
    Malformed(&'static str),
    /// WeChat's snapshot page ("use full service" not tapped): nothing is bound.
    Snapshot,
    /// The jump-out ticket is unknown, used or expired (or belongs to another app).
    Ticket(CodeProblem),
    /// The identity is bound to another user, or its unionid is.
    Conflict(Conflict),
    /// The ticket's user has a mini-program identity with another unionid: someone else
    /// opened a forwarded link. Nothing is bound and the ticket stays usable.
    TicketOtherPerson,
}

/// The one exchange of a code: store the identity, bind it, mint the login code.
pub async fn complete(
    ctx: &Context,
    app_cfg: &AppConfig,
    started: Started<'_>,
    code: &str,
) -> Result<Completed, StoreError> {
    let tok = match ctx.wechat.exchange_code(&app_cfg.wechat, code).await {
        Ok(t) => t,
        Err(e) => return Ok(Completed::CodeRefused(e)),
    };
    let malformed = |what: &'static str| {
        tracing::error!(app = %app_cfg.id, "WeChat returned a malformed {what}");
        Completed::Malformed(what)
    };
    let Ok(openid) = OpenId::parse(&tok.openid) else {
        return Ok(malformed("openid"));
    };
    let unionid = match tok
        .unionid
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(UnionId::parse)
    {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err(_)) => return Ok(malformed("unionid")),
    };
    let scope = OAuthScope::from_granted(&tok.scope);
    let now = ctx.clock.timestamp();

    if tok.is_snapshotuser == 1 {
        let record = NewIdentity {
            app: app_cfg.id.clone(),
            openid,
            unionid: None,
            scope,
            profile: None,
            is_snapshot: true,
        };
        ctx.store.upsert_identity(&record, now).await?;
        return Ok(Completed::Snapshot);
    }

    // Only a userinfo token can refresh a profile; a new authorization replaces the old
    // pair. A base sign-in leaves a userinfo pair alone.
    if scope == OAuthScope::UserInfo && ctx.config.oauth.keep_web_tokens {
        ctx.store
            .save_web_token(
                &app_cfg.id,
                &openid,
                &WebToken {
                    access_token: &tok.access_token,
                    refresh_token: &tok.refresh_token,
                    scope,
                    expires_at: now.plus_secs(tok.expires_in),
                    refresh_expires_at: now.plus_secs(REFRESH_TOKEN_SECS),
                },
                now,
            )
            .await?;
    }

    let profile = if scope == OAuthScope::UserInfo {
        match ctx
            .wechat
            .userinfo(&app_cfg.wechat, &tok.access_token, &openid)
            .await
        {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(app = %app_cfg.id, error = %e, "userinfo failed; storing the identity without a profile");
                None
            }
        }
    } else {
        None
    };
    let unionid = unionid.or_else(|| {
        profile
            .as_ref()
            .and_then(|p| p.unionid.as_deref())
            .and_then(|u| UnionId::parse(u).ok())
    });
    if let Some(ticket_hash) = started.ticket_hash
        && let Some(u) = &unionid
        && other_person(ctx, ticket_hash, u, now).await?
    {
        tracing::warn!(app = %app_cfg.id, openid = %openid.redacted(), "link ticket opened by another person (unionid differs from the user's mini-program identity)");
        return Ok(Completed::TicketOtherPerson);
    }
    let identity = ctx
        .store
        .upsert_identity(
            &NewIdentity {
                app: app_cfg.id.clone(),
                openid: openid.clone(),
                unionid,
                scope,
                profile,
                is_snapshot: false,
            },
            now,
        )
        .await?;

    let user_id = if let Some(ticket_hash) = started.ticket_hash {
        let ticket = match ctx.store.consume_ticket(ticket_hash, now).await? {
            Ok(t) if t.app == app_cfg.id => t,
            Ok(_) => return Ok(Completed::Ticket(CodeProblem::Unknown)),
            Err(problem) => return Ok(Completed::Ticket(problem)),
        };
        match link::bind_user(&ctx.store, &app_cfg.id, &openid, &ticket.user_id, now).await {
            Ok(Ok(i)) => i.user_id,
            Ok(Err(conflict)) => {
                tracing::warn!(app = %app_cfg.id, openid = %openid.redacted(), via = conflict.via, "binding conflict");
                return Ok(Completed::Conflict(conflict));
            }
            Err(BindError::NotFound) => None,
            Err(BindError::Store(e)) => return Err(e),
        }
    } else {
        link::auto_bind(&ctx.store, &identity, now).await?
    };
    tracing::info!(app = %app_cfg.id, openid = %openid.redacted(), bound = user_id.is_some(), "authorization completed");

    if let Some(return_to) = started.return_to {
        let login_code = OneTimeCode::generate();
        ctx.store
            .create_login_code(
                &login_code.hash(),
                &app_cfg.id,
                &openid,
                now,
                now.plus_secs(ctx.config.oauth.login_code_ttl_secs),
            )
            .await?;
        let mut params = vec![("wxlink_code", login_code.expose())];
        if let Some(cs) = started.client_state {
            params.push(("client_state", cs));
        }
        return Ok(Completed::Redirect {
            location: return_to.with_params(&params),
        });
    }
    Ok(Completed::Linked { user_id })
}

/// Whether the ticket was minted for a user whose mini-program identity carries another
/// unionid than the person completing it: a forwarded link must not bind a stranger. A
/// ticket that is not usable is left to `consume_ticket` to explain.
async fn other_person(
    ctx: &Context,
    ticket_hash: &str,
    unionid: &UnionId,
    now: crate::clock::Timestamp,
) -> Result<bool, StoreError> {
    let Ok(ticket) = ctx.store.check_ticket(ticket_hash, now).await? else {
        return Ok(false);
    };
    let mini_programs: Vec<_> = ctx
        .config
        .apps
        .iter()
        .filter(|a| a.kind == crate::config::AppKind::MiniProgram)
        .map(|a| &a.id)
        .collect();
    Ok(ctx
        .store
        .user_identities(&ticket.user_id)
        .await?
        .iter()
        .filter(|i| mini_programs.contains(&&i.app))
        .filter_map(|i| i.unionid.as_ref())
        .any(|theirs| theirs != unionid))
}

/// What a second callback with an already claimed code is owed.
#[derive(Debug)]
pub enum Replay {
    /// The first callback's answer, as it stored it.
    Stored(String),
    /// The code was claimed under another state: another browser's sign-in.
    OtherSignIn,
    /// The first callback has not finished in time.
    StillWorking,
}

/// A second callback with the same code (WeChat's double redirect): wait for the first to
/// finish and answer the same. Only the browser that holds the same state gets it.
pub async fn replay(
    ctx: &Context,
    code_hash: &str,
    state_hash: &str,
) -> Result<Replay, StoreError> {
    for _ in 0..100 {
        let Some(ex) = ctx.store.exchange(code_hash).await? else {
            break;
        };
        if ex.state_hash != state_hash {
            return Ok(Replay::OtherSignIn);
        }
        if let Some(outcome) = ex.outcome {
            return Ok(Replay::Stored(outcome));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Replay::StillWorking)
}
