//! The one exchange of an authorization code: store the identity, bind it, mint the login
//! code; and the answer to a repeated callback carrying the same code.

use super::{Answer, PendingAuth, bad_request, ticket_page};
use crate::config::AppConfig;
use crate::context::Ctx;
use crate::domain::{OAuthScope, OneTimeCode, OpenId, UnionId};
use crate::http::error::Page;
use crate::link;
use crate::store::{CodeProblem, NewIdentity, WebToken};
use crate::wechat::{ErrCode, WechatError};
use axum::http::StatusCode;
use std::time::Duration;

/// Web tokens last 2 h, refresh tokens 30 days (WeChat's rules).
const REFRESH_TOKEN_SECS: i64 = 30 * 24 * 3600;

/// A second callback with the same code (WeChat's double redirect): wait for the first to
/// finish and answer the same. Only the browser that holds the same state gets it.
pub(super) async fn replay(ctx: &Ctx, code_hash: &str, state_hash: &str) -> Result<Answer, Page> {
    for _ in 0..100 {
        let Some(ex) = ctx.store.exchange(code_hash).await? else {
            break;
        };
        if ex.state_hash != state_hash {
            return Err(bad_request(
                "code_reused",
                "This authorization code belongs to another sign-in.",
            ));
        }
        if let Some(outcome) = ex.outcome {
            return serde_json::from_str(&outcome).map_err(|e| {
                tracing::error!(error = %e, "stored callback answer does not parse");
                Page::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Error",
                    "internal error",
                )
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Page::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "in_progress",
        "正在处理 / Still working",
        "This authorization is still being completed. Reload the page in a moment.",
    ))
}

/// The one exchange of a code: store the identity, bind it, mint the login code.
/// Every failure becomes a page, which is stored like a success.
pub(super) async fn complete(
    ctx: &Ctx,
    app_cfg: &AppConfig,
    entry: &PendingAuth,
    code: &str,
) -> Result<Answer, Page> {
    let restart_link = ctx.url(&format!("/oauth/{}/authorize", app_cfg.id));
    let tok = match ctx.wechat.exchange_code(&app_cfg.wechat, code).await {
        Ok(t) => t,
        Err(e) => {
            return Ok(Answer::Page(
                wechat_failure_page(&e).link(restart_link, "重新授权 / Start again"),
            ));
        }
    };
    let bad_answer = |what: &str| {
        tracing::error!(app = %app_cfg.id, "WeChat returned a malformed {what}");
        Answer::Page(Page::new(
            StatusCode::BAD_GATEWAY,
            "wechat_error",
            "微信返回异常 / WeChat answered oddly",
            format!("WeChat returned a malformed {what}."),
        ))
    };
    let Ok(openid) = OpenId::parse(&tok.openid) else {
        return Ok(bad_answer("openid"));
    };
    let unionid = match tok
        .unionid
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(UnionId::parse)
    {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err(_)) => return Ok(bad_answer("unionid")),
    };
    let scope = OAuthScope::from_granted(&tok.scope);
    let now = ctx.clock.now();

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
        return Ok(Answer::Page(
            Page::new(
                StatusCode::OK,
                "snapshot",
                "请打开完整页面 / Open the full page",
                "你正在浏览快照页面。请点击页面底部的“使用完整服务”后重试。",
            )
            .detail("You are viewing a snapshot of this page. Tap \"use full service\" at the bottom, then try again.")
            .link(restart_link, "重新授权 / Start again"),
        ));
    }

    ctx.store
        .save_web_token(
            &app_cfg.id,
            &openid,
            &WebToken {
                access_token: &tok.access_token,
                refresh_token: &tok.refresh_token,
                scope,
                expires_at: now + tok.expires_in,
                refresh_expires_at: now + REFRESH_TOKEN_SECS,
            },
            now,
        )
        .await?;

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
    let identity = ctx
        .store
        .upsert_identity(
            &NewIdentity {
                app: app_cfg.id.clone(),
                openid: openid.clone(),
                unionid: unionid.or_else(|| {
                    profile
                        .as_ref()
                        .and_then(|p| p.unionid.as_deref())
                        .and_then(|u| UnionId::parse(u).ok())
                }),
                scope,
                profile,
                is_snapshot: false,
            },
            now,
        )
        .await?;

    let user_id = if let Some(ticket_hash) = &entry.ticket_hash {
        let ticket = match ctx.store.consume_ticket(ticket_hash, now).await? {
            Ok(t) if t.app == app_cfg.id => t,
            Ok(_) => return Ok(Answer::Page(ticket_page(CodeProblem::Unknown))),
            Err(problem) => return Ok(Answer::Page(ticket_page(problem))),
        };
        match link::bind_user(&ctx.store, &app_cfg.id, &openid, &ticket.user_id, now).await {
            Ok(Ok(i)) => i.user_id,
            Ok(Err(conflict)) => {
                tracing::warn!(app = %app_cfg.id, openid = %openid.redacted(), via = conflict.via, "binding conflict");
                return Ok(Answer::Page(
                    Page::new(
                        StatusCode::CONFLICT,
                        "conflict",
                        "绑定冲突 / Already linked to another account",
                        "这个微信身份已绑定到另一个账号，未做任何更改。",
                    )
                    .detail(conflict.message()),
                ));
            }
            Err(link::BindError::NotFound) => None,
            Err(link::BindError::Store(e)) => return Err(e.into()),
        }
    } else {
        link::auto_bind(&ctx.store, &identity, now).await?
    };
    tracing::info!(app = %app_cfg.id, openid = %openid.redacted(), bound = user_id.is_some(), "authorization completed");

    if let Some(return_to) = &entry.return_to {
        let login_code = OneTimeCode::generate();
        ctx.store
            .create_login_code(
                &login_code.hash(),
                &app_cfg.id,
                &openid,
                now,
                now + ctx.config.oauth.login_code_ttl_secs,
            )
            .await?;
        return Ok(Answer::Redirect {
            location: return_to.with_param("wxlink_code", login_code.expose()),
        });
    }
    let mut page = Page::new(
        StatusCode::OK,
        "linked",
        "授权成功 / Authorized",
        "你已完成微信授权，可以关闭此页面。",
    )
    .detail(format!("App: {}", app_cfg.id));
    if let Some(u) = &user_id {
        page = page.detail(format!("Linked to user {u}"));
    }
    Ok(Answer::Page(page))
}

fn wechat_failure_page(e: &WechatError) -> Page {
    match e.code() {
        Some(
            ErrCode::CodeUsed | ErrCode::InvalidCode | ErrCode::CodeExpired | ErrCode::MissingCode,
        ) => {
            tracing::info!(error = %e, "authorization code refused");
            Page::new(
                StatusCode::BAD_REQUEST,
                "code_invalid",
                "授权已失效 / Authorization expired",
                "This authorization can no longer be completed. Please start again.",
            )
            .detail(format!(
                "WeChat: {}",
                e.code().map(|c| c.to_string()).unwrap_or_default()
            ))
        }
        Some(code) => {
            tracing::error!(error = %e, "WeChat refused the code exchange");
            Page::new(
                StatusCode::BAD_GATEWAY,
                "wechat_error",
                "微信授权失败 / WeChat refused",
                format!("WeChat answered error {code}."),
            )
        }
        None => {
            tracing::error!(error = %e, "WeChat unreachable during code exchange");
            Page::new(
                StatusCode::BAD_GATEWAY,
                "wechat_unreachable",
                "无法连接微信 / WeChat unreachable",
                "WeChat did not answer. Please try again in a moment.",
            )
        }
    }
}
