//! Browser routes of the web authorization flow: `/oauth/{app}/authorize` and
//! `/oauth/{app}/callback`: the browser session, the state check, and the page of each
//! outcome. The rules of the one exchange of a code live in [`crate::identity::web_oauth`].

use crate::config::{AppConfig, AppKind};
use crate::context::Ctx;
use crate::domain::{OAuthScope, OAuthState, ReturnTo, hash_token};
use crate::http::error::Page;
use crate::identity::web_oauth::{self, Completed, Replay, Started};
use crate::store::CodeProblem;
use crate::wechat::oauth::authorize_url;
use crate::wechat::{ErrCode, WechatError};
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

const SESSION_KEY: &str = "wxlink.oauth";
/// Pending authorizations kept per browser (several tabs); the oldest drop off.
const MAX_PENDING: usize = 8;

pub fn router() -> Router<Ctx> {
    Router::new()
        .route("/oauth/{app}/authorize", get(authorize))
        .route("/oauth/{app}/callback", get(callback))
}

/// One authorization this browser started, kept in its session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingAuth {
    state: OAuthState,
    app: String,
    scope: OAuthScope,
    return_to: Option<ReturnTo>,
    ticket_hash: Option<String>,
    created_at: i64,
    /// Set once a code was exchanged under this state; only that code may come back.
    used_code_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    scope: Option<String>,
    return_to: Option<String>,
    ticket: Option<String>,
    /// Sandbox only: treat this browser as WeChat's.
    wxsim: Option<String>,
}

#[derive(Template)]
#[template(path = "open_in_wechat.html")]
struct OpenInWechat {
    url: String,
    qr_svg: String,
    sandbox_url: Option<String>,
}

fn web_app<'a>(ctx: &'a Ctx, app: &str) -> Result<&'a AppConfig, Page> {
    let app_cfg = ctx.config.app_named(app).map_err(|e| {
        Page::new(
            StatusCode::NOT_FOUND,
            "unknown_app",
            "链接无效 / Unknown app",
            format!("There is no app named {:?} here.", e.name),
        )
    })?;
    if app_cfg.kind != AppKind::OfficialAccount {
        return Err(Page::new(
            StatusCode::BAD_REQUEST,
            "not_web_app",
            "链接无效 / Not a web app",
            format!(
                "App {} is a mini-program; web authorization needs an Official Account app.",
                app_cfg.id
            ),
        ));
    }
    Ok(app_cfg)
}

fn ticket_page(problem: CodeProblem) -> Page {
    let (status, outcome, msg) = match problem {
        CodeProblem::Unknown => (
            StatusCode::NOT_FOUND,
            "ticket_unknown",
            "This link is not valid.",
        ),
        CodeProblem::Used => (
            StatusCode::GONE,
            "ticket_used",
            "This link has already been used.",
        ),
        CodeProblem::Expired => (StatusCode::GONE, "ticket_expired", "This link has expired."),
    };
    Page::new(status, outcome, "链接已失效 / Link no longer valid", msg)
        .detail("请回到小程序重新打开 / Go back to the mini-program and open it again.")
}

async fn authorize(
    State(ctx): State<Ctx>,
    Path(app): Path<String>,
    Query(q): Query<AuthorizeQuery>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    session: Session,
) -> Result<Response, Page> {
    let app_cfg = web_app(&ctx, &app)?;
    let now = ctx.clock.now();

    let (scope, return_to, ticket_hash) = if let Some(ticket) = &q.ticket {
        let hash = hash_token(ticket);
        let t = ctx
            .store
            .check_ticket(&hash, ctx.clock.timestamp())
            .await?
            .map_err(ticket_page)?;
        if t.app != app_cfg.id {
            return Err(ticket_page(CodeProblem::Unknown));
        }
        let return_to = t
            .return_to
            .as_deref()
            .map(|r| ReturnTo::parse(r, &ctx.config.return_to_allow))
            .transpose()
            .map_err(|e| bad_request("return_to_not_allowed", e.0))?;
        (t.scope, return_to, Some(hash))
    } else {
        let scope = OAuthScope::parse(q.scope.as_deref().unwrap_or("snsapi_base"))
            .map_err(|e| bad_request("invalid_scope", e.0))?;
        let return_to = q
            .return_to
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|r| ReturnTo::parse(r, &ctx.config.return_to_allow))
            .transpose()
            .map_err(|e| bad_request("return_to_not_allowed", e.0))?;
        (scope, return_to, None)
    };

    let in_wechat = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("MicroMessenger"))
        || (ctx.config.sandbox && q.wxsim.as_deref() == Some("1"));
    if !in_wechat {
        let here = match &raw_query {
            Some(qs) => ctx.url(&format!("/oauth/{}/authorize?{qs}", app_cfg.id)),
            None => ctx.url(&format!("/oauth/{}/authorize", app_cfg.id)),
        };
        let qr_svg = qrcode::QrCode::new(here.as_bytes())
            .map(|c| {
                c.render::<qrcode::render::svg::Color>()
                    .min_dimensions(200, 200)
                    .build()
            })
            .unwrap_or_default();
        let sandbox_url = ctx.config.sandbox.then(|| {
            let sep = if here.contains('?') { '&' } else { '?' };
            format!("{here}{sep}wxsim=1")
        });
        let page = OpenInWechat {
            url: here,
            qr_svg,
            sandbox_url,
        };
        return Ok(Html(page.render().map_err(|e| {
            tracing::error!(error = %e, "template failed");
            Page::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Error",
                "template error",
            )
        })?)
        .into_response());
    }

    let state = OAuthState::generate();
    let mut pending: Vec<PendingAuth> = session
        .get(SESSION_KEY)
        .await
        .map_err(session_error)?
        .unwrap_or_default();
    pending.retain(|p| p.created_at + ctx.config.oauth.state_ttl_secs > now);
    pending.push(PendingAuth {
        state: state.clone(),
        app: app_cfg.id.to_string(),
        scope,
        return_to,
        ticket_hash,
        created_at: now,
        used_code_hash: None,
    });
    if pending.len() > MAX_PENDING {
        pending.drain(..pending.len() - MAX_PENDING);
    }
    session
        .insert(SESSION_KEY, &pending)
        .await
        .map_err(session_error)?;

    let redirect_uri = ctx.url(&format!("/oauth/{}/callback", app_cfg.id));
    let location = authorize_url(
        &app_cfg.wechat.open_base,
        app_cfg.wechat.appid.as_str(),
        &redirect_uri,
        scope,
        &state,
    );
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

fn bad_request(outcome: &str, message: impl Into<String>) -> Page {
    Page::new(
        StatusCode::BAD_REQUEST,
        outcome,
        "请求无效 / Invalid request",
        message,
    )
}

fn session_error(e: tower_sessions::session::Error) -> Page {
    tracing::error!(error = %e, "session store failed");
    Page::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "session_unavailable",
        "服务暂时不可用 / Service unavailable",
        "Your browser session could not be read or saved. Please try again.",
    )
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// What a callback answered, kept so a repeated callback gets the very same answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Answer {
    Redirect { location: String },
    Page(Page),
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Redirect { location } => {
                (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
            }
            Answer::Page(p) => p.into_response(),
        }
    }
}

/// The callback, counted by outcome (`wxlink_oauth_callbacks_total`).
async fn callback(
    State(ctx): State<Ctx>,
    Path(app): Path<String>,
    Query(q): Query<CallbackQuery>,
    session: Session,
) -> Result<Answer, Page> {
    let answer = complete_callback(&ctx, &app, q, session).await;
    let outcome = match &answer {
        Ok(Answer::Redirect { .. }) => "linked",
        Ok(Answer::Page(p)) | Err(p) => p.outcome.as_str(),
    };
    let app = ctx.config.app_named(&app).ok().map(|a| &a.id);
    crate::metrics::oauth_callback(app, outcome);
    answer
}

async fn complete_callback(
    ctx: &Ctx,
    app: &str,
    q: CallbackQuery,
    session: Session,
) -> Result<Answer, Page> {
    let app_cfg = web_app(ctx, app)?;
    let now = ctx.clock.now();
    let restart = |p: Page| {
        p.link(
            ctx.url(&format!("/oauth/{}/authorize", app_cfg.id)),
            "重新授权 / Start again",
        )
    };

    let state = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            bad_request(
                "state_missing",
                "The authorization response carries no state; nothing was exchanged.",
            )
        })?;
    let state = OAuthState::parse(state).map_err(|_| {
        bad_request(
            "state_invalid",
            "The state in the authorization response is malformed; nothing was exchanged.",
        )
    })?;

    let mut pending: Vec<PendingAuth> = session
        .get(SESSION_KEY)
        .await
        .map_err(session_error)?
        .unwrap_or_default();
    let Some(idx) = pending
        .iter()
        .position(|p| p.state == state && p.app == app_cfg.id.as_str())
    else {
        return Err(restart(bad_request(
            "state_unknown",
            "This authorization was not started in this browser (or already finished long ago); nothing was exchanged.",
        )));
    };
    if pending[idx].created_at + ctx.config.oauth.state_ttl_secs <= now {
        pending.remove(idx);
        session
            .insert(SESSION_KEY, &pending)
            .await
            .map_err(session_error)?;
        return Err(restart(bad_request(
            "state_expired",
            "This authorization took too long and has expired; nothing was exchanged.",
        )));
    }

    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        declined(ctx, &app_cfg.id, &pending[idx]).await?;
        pending.remove(idx);
        session
            .insert(SESSION_KEY, &pending)
            .await
            .map_err(session_error)?;
        return Ok(Answer::Page(restart(Page::new(
            StatusCode::OK,
            "declined",
            "你已拒绝授权 / Authorization declined",
            "You chose not to authorize. Nothing was stored.",
        ))));
    };
    let code_hash = hash_token(&code);
    let state_hash = hash_token(state.as_str());
    if let Some(used) = &pending[idx].used_code_hash
        && *used != code_hash
    {
        return Err(restart(bad_request(
            "state_used",
            "This authorization has already been completed.",
        )));
    }

    let entry = pending[idx].clone();
    let answer = if ctx
        .store
        .claim_exchange(&code_hash, &app_cfg.id, &state_hash, ctx.clock.timestamp())
        .await?
    {
        let started = Started {
            ticket_hash: entry.ticket_hash.as_deref(),
            return_to: entry.return_to.as_ref(),
        };
        let completed = web_oauth::complete(ctx, app_cfg, started, &code).await?;
        let answer = answer_of(ctx, app_cfg, completed);
        let stored = serde_json::to_string(&answer).expect("answer serializes");
        ctx.store
            .finish_exchange(&code_hash, &stored, ctx.clock.timestamp())
            .await?;
        answer
    } else {
        replayed(web_oauth::replay(ctx, &code_hash, &state_hash).await?)?
    };
    pending[idx].used_code_hash = Some(code_hash);
    session
        .insert(SESSION_KEY, &pending)
        .await
        .map_err(session_error)?;
    Ok(answer)
}

/// The answer the browser gets for the one exchange of its code (stored for replays).
fn answer_of(ctx: &Ctx, app_cfg: &AppConfig, completed: Completed) -> Answer {
    let restart_link = ctx.url(&format!("/oauth/{}/authorize", app_cfg.id));
    let page = match completed {
        Completed::Redirect { location } => return Answer::Redirect { location },
        Completed::Linked { user_id } => {
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
            page
        }
        Completed::CodeRefused(e) => {
            wechat_failure_page(&e).link(restart_link, "重新授权 / Start again")
        }
        Completed::Malformed(what) => Page::new(
            StatusCode::BAD_GATEWAY,
            "wechat_error",
            "微信返回异常 / WeChat answered oddly",
            format!("WeChat returned a malformed {what}."),
        ),
        Completed::Snapshot => Page::new(
            StatusCode::OK,
            "snapshot",
            "请打开完整页面 / Open the full page",
            "你正在浏览快照页面。请点击页面底部的“使用完整服务”后重试。",
        )
        .detail("You are viewing a snapshot of this page. Tap \"use full service\" at the bottom, then try again.")
        .link(restart_link, "重新授权 / Start again"),
        Completed::Ticket(problem) => ticket_page(problem),
        Completed::Conflict(conflict) => Page::new(
            StatusCode::CONFLICT,
            "conflict",
            "绑定冲突 / Already linked to another account",
            "这个微信身份已绑定到另一个账号，未做任何更改。",
        )
        .detail(conflict.message()),
    };
    Answer::Page(page)
}

/// The answer to a repeated callback: the first one's, as stored.
fn replayed(replay: Replay) -> Result<Answer, Page> {
    match replay {
        Replay::Stored(outcome) => serde_json::from_str(&outcome).map_err(|e| {
            tracing::error!(error = %e, "stored callback answer does not parse");
            Page::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Error",
                "internal error",
            )
        }),
        Replay::OtherSignIn => Err(bad_request(
            "code_reused",
            "This authorization code belongs to another sign-in.",
        )),
        Replay::StillWorking => Err(Page::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "in_progress",
            "正在处理 / Still working",
            "This authorization is still being completed. Reload the page in a moment.",
        )),
    }
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

/// Records `authorization.declined`: for the ticket's user when the link was minted for
/// one (the person is not known otherwise: WeChat names nobody when consent is refused).
async fn declined(
    ctx: &Ctx,
    app: &crate::domain::AppId,
    auth: &PendingAuth,
) -> Result<(), crate::store::StoreError> {
    let now = ctx.clock.timestamp();
    let user = match &auth.ticket_hash {
        Some(hash) => ctx
            .store
            .check_ticket(hash, now)
            .await?
            .ok()
            .map(|t| t.user_id),
        None => None,
    };
    let event = crate::domain::NewEvent {
        id: crate::domain::EventId::generate(),
        kind: crate::domain::EventType::AuthorizationDeclined,
        at: now,
        app: Some(app.clone()),
        openid: None,
        unionid: None,
        user_id: user,
        data: serde_json::json!({ "scope": auth.scope }),
    };
    ctx.store.record_events(&[event]).await
}
