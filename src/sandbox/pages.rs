//! The sandbox page at `/` and its forms: walk the whole flow in a desktop browser as a
//! simulated WeChat user, against the built-in simulator. Without the sandbox, `/` is a
//! short landing page and the forms answer 404. The cards' defaults follow the person:
//! the business user their identities are bound to, else a user id nobody has yet, so the
//! cards work in order without a binding conflict.

use super::Sandbox;
use crate::context::Ctx;
use crate::domain::{AppId, OAuthScope, OpenId, ReturnTo, UserId};
use crate::http::error::Page;
use askama::Template;
use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use std::sync::Arc;

/// The sandbox as the pages see it: absent when the sandbox is off.
pub(super) type Shared = Option<Arc<Sandbox>>;

pub fn router(sandbox: Shared) -> Router<Ctx> {
    Router::new()
        .route("/", get(index))
        .route("/sandbox/people", post(add_person))
        .route("/sandbox/ticket", post(ticket))
        .route("/sandbox/mp-login", post(mp_login))
        .route("/sandbox/result", get(super::results::result))
        .route("/sandbox/send", post(super::results::send))
        .route("/sandbox/js-sdk-config", post(super::js_sdk::config))
        .route("/sandbox/messages/{id}", get(super::results::message))
        .layer(Extension(sandbox))
}

#[derive(Template)]
#[template(path = "sandbox.html")]
struct IndexPage {
    base: String,
    api_key: String,
    people: Vec<crate::sim::Person>,
    current: String,
    return_to: String,
    /// The default business user id of cards 3, 4 and 5.
    user_id: String,
    return_to_allow: Vec<String>,
    public: bool,
    /// The JS-SDK card's page URL: one of the sandbox's own (its JS-safe domain).
    js_page: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct PlainIndex;

fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn index(
    State(ctx): State<Ctx>,
    Extension(sandbox): Extension<Shared>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(sb) = &sandbox else {
        return render(&PlainIndex);
    };
    let current = crate::sim::person_cookie(&headers)
        .filter(|p| sb.sim.person(p).is_some())
        .unwrap_or_default();
    let user_id = match suggested_user(&ctx, sb, &current).await {
        Ok(u) => u,
        Err(p) => return with_back(p).into_response(),
    };
    render(&IndexPage {
        base: ctx.url(""),
        api_key: sb.api_key.clone(),
        people: sb.sim.people(),
        current,
        return_to: ctx.url("/sandbox/result"),
        user_id,
        return_to_allow: sb.return_to_allow.iter().map(|u| u.to_string()).collect(),
        public: sb.public,
        js_page: ctx.url("/sandbox/result?from=menu#share"),
    })
}

/// The business user the current person's identities are bound to; else the first of
/// 42, 43, ... that nobody is bound to yet.
async fn suggested_user(ctx: &Ctx, sb: &Sandbox, person: &str) -> Result<String, Page> {
    if !person.is_empty() {
        for app in &ctx.config.apps {
            let openid = sb.sim.openid_of(app.wechat.appid.as_str(), person);
            let Ok(openid) = OpenId::parse(&openid) else {
                continue;
            };
            if let Some(user) = ctx
                .store
                .identity(&app.id, &openid)
                .await?
                .and_then(|i| i.user_id)
            {
                return Ok(user.to_string());
            }
        }
    }
    for n in 42..242 {
        let user = UserId::parse(&n.to_string()).expect("digits are a user id");
        if ctx.store.user_identities(&user).await?.is_empty() {
            return Ok(user.to_string());
        }
    }
    Ok("42".into())
}

pub(super) fn sandbox_only(sandbox: &Shared) -> Result<&Sandbox, Page> {
    sandbox.as_deref().ok_or_else(|| {
        Page::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "页面不存在 / Not found",
            "The sandbox is off.",
        )
    })
}

/// Every sandbox page leads back to the sandbox.
pub(super) fn with_back(page: Page) -> Page {
    if page.link.is_some() {
        return page;
    }
    page.link("/", "返回沙箱 / Back to the sandbox")
}

/// A handler's answer, its refusal with the way back.
pub(super) fn answer(r: Result<Response, Page>) -> Response {
    r.unwrap_or_else(|p| with_back(p).into_response())
}

#[derive(Deserialize)]
struct PersonForm {
    nickname: Option<String>,
    snapshot: Option<String>,
}

async fn add_person(Extension(sandbox): Extension<Shared>, Form(f): Form<PersonForm>) -> Response {
    answer(add_person_page(&sandbox, f))
}

fn add_person_page(sandbox: &Shared, f: PersonForm) -> Result<Response, Page> {
    let sb = sandbox_only(sandbox)?;
    let nickname = f
        .nickname
        .filter(|n| !n.trim().is_empty())
        .map(|n| n.trim().chars().take(32).collect());
    let p = sb.sim.add_person(nickname, f.snapshot.is_some());
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_owned()),
            (header::SET_COOKIE, crate::sim::set_person_cookie(&p.id)),
        ],
    )
        .into_response())
}

#[derive(Deserialize)]
struct TicketForm {
    user_id: String,
    scope: String,
}

/// Plays the backend's part of the jump-out flow: mint a ticket, then open it "in WeChat".
async fn ticket(
    State(ctx): State<Ctx>,
    Extension(sandbox): Extension<Shared>,
    Form(f): Form<TicketForm>,
) -> Response {
    answer(ticket_page(&ctx, &sandbox, f).await)
}

async fn ticket_page(ctx: &Ctx, sandbox: &Shared, f: TicketForm) -> Result<Response, Page> {
    sandbox_only(sandbox)?;
    let bad = |m: String| {
        Page::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "请求无效 / Invalid request",
            m,
        )
    };
    let user = UserId::parse(f.user_id.trim()).map_err(|e| bad(e.0))?;
    let scope = OAuthScope::parse(&f.scope).map_err(|e| bad(e.0))?;
    let app = ctx
        .app(&AppId::parse("oa").expect("valid"))
        .ok_or_else(|| bad("no oa app".into()))?;
    let return_to = ReturnTo::parse(&ctx.url("/sandbox/result"), &ctx.config.return_to_allow)
        .map_err(|e| bad(e.0))?;
    let (url, _) =
        crate::identity::link::mint_ticket(ctx, app, &user, scope, Some(&return_to)).await?;
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("{url}&wxsim=1"))],
    )
        .into_response())
}

#[derive(Deserialize)]
struct MpLoginForm {
    user_id: String,
}

/// The jump-out flow from the start: the simulated person logs in to the sandbox
/// mini-program (`wx.login` + `POST /api/v1/apps/mp/sessions` with the user id), then the
/// mini-program opens a link ticket for that user in its web-view.
async fn mp_login(
    State(ctx): State<Ctx>,
    Extension(sandbox): Extension<Shared>,
    headers: axum::http::HeaderMap,
    Form(f): Form<MpLoginForm>,
) -> Response {
    answer(mp_login_page(&ctx, &sandbox, &headers, f).await)
}

async fn mp_login_page(
    ctx: &Ctx,
    sandbox: &Shared,
    headers: &axum::http::HeaderMap,
    f: MpLoginForm,
) -> Result<Response, Page> {
    let sb = sandbox_only(sandbox)?;
    let bad = |status: StatusCode, m: String| {
        Page::new(status, "invalid", "请求无效 / Invalid request", m)
    };
    let user = UserId::parse(f.user_id.trim()).map_err(|e| bad(StatusCode::BAD_REQUEST, e.0))?;
    let person = match crate::sim::person_cookie(headers).filter(|p| sb.sim.person(p).is_some()) {
        Some(p) => p,
        None => sb.sim.add_person(None, false).id,
    };
    let (mp, oa) = (
        ctx.app(&AppId::parse("mp").expect("valid")),
        ctx.app(&AppId::parse("oa").expect("valid")),
    );
    let (Some(mp), Some(oa)) = (mp, oa) else {
        return Err(bad(
            StatusCode::NOT_FOUND,
            "the sandbox apps mp and oa are not both configured".into(),
        ));
    };
    let code = sb
        .sim
        .mint_login_code(mp.wechat.appid.as_str(), &person)
        .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("wx.login failed: {e:?}")))?;
    crate::identity::mini_program::login(ctx, mp, &code, Some(&user))
        .await
        .map_err(|e| {
            let status = match &e {
                crate::identity::mini_program::LoginError::Conflict { .. }
                | crate::identity::mini_program::LoginError::Ambiguous { .. } => {
                    StatusCode::CONFLICT
                }
                crate::identity::mini_program::LoginError::Wechat(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Page::new(
                status,
                "mp_login_failed",
                "小程序登录失败 / Mini-program login failed",
                e.to_string(),
            )
        })?;
    let return_to = ReturnTo::parse(&ctx.url("/sandbox/result"), &ctx.config.return_to_allow)
        .map_err(|e| bad(StatusCode::BAD_REQUEST, e.0))?;
    let (url, _) =
        crate::identity::link::mint_ticket(ctx, oa, &user, OAuthScope::Base, Some(&return_to))
            .await?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, format!("{url}&wxsim=1")),
            (header::SET_COOKIE, crate::sim::set_person_cookie(&person)),
        ],
    )
        .into_response())
}
