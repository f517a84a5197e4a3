//! The sandbox page at `/` and its forms: walk the whole flow in a desktop browser as a
//! simulated WeChat user, against the built-in simulator. Without the sandbox, `/` is a
//! short landing page and the forms answer 404.

use super::{ORDER_SHIPPED, ORDER_STATUS, Sandbox};
use crate::context::Ctx;
use crate::domain::{
    AppId, CardUrl, Channel, MessageData, OAuthScope, PagePath, Payload, RawDataValue, ReturnTo,
    TemplateId, UserId, hash_token,
};
use crate::http::error::{ApiError, Page};
use crate::outbox::MessageDraft;
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use std::sync::Arc;

/// The sandbox as the pages see it: absent when the sandbox is off.
type Shared = Option<Arc<Sandbox>>;

pub fn router(sandbox: Shared) -> Router<Ctx> {
    Router::new()
        .route("/", get(index))
        .route("/sandbox/people", post(add_person))
        .route("/sandbox/ticket", post(ticket))
        .route("/sandbox/mp-login", post(mp_login))
        .route("/sandbox/result", get(result))
        .route("/sandbox/send", post(send))
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
    render(&IndexPage {
        base: ctx.url(""),
        api_key: sb.api_key.clone(),
        people: sb.sim.people(),
        current: crate::sim::person_cookie(&headers).unwrap_or_default(),
        return_to: ctx.url("/sandbox/result"),
    })
}

fn sandbox_only(sandbox: &Shared) -> Result<&Sandbox, Page> {
    sandbox.as_deref().ok_or_else(|| {
        Page::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "页面不存在 / Not found",
            "The sandbox is off.",
        )
    })
}

#[derive(Deserialize)]
struct PersonForm {
    nickname: Option<String>,
    snapshot: Option<String>,
}

async fn add_person(
    Extension(sandbox): Extension<Shared>,
    Form(f): Form<PersonForm>,
) -> Result<Response, Page> {
    let sb = sandbox_only(&sandbox)?;
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
) -> Result<Response, Page> {
    sandbox_only(&sandbox)?;
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
        crate::identity::link::mint_ticket(&ctx, app, &user, scope, Some(&return_to)).await?;
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
) -> Result<Response, Page> {
    let sb = sandbox_only(&sandbox)?;
    let bad = |status: StatusCode, m: String| {
        Page::new(status, "invalid", "请求无效 / Invalid request", m)
    };
    let user = UserId::parse(f.user_id.trim()).map_err(|e| bad(StatusCode::BAD_REQUEST, e.0))?;
    let person = match crate::sim::person_cookie(&headers).filter(|p| sb.sim.person(p).is_some()) {
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
    crate::identity::mini_program::login(&ctx, mp, &code, Some(&user))
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
        crate::identity::link::mint_ticket(&ctx, oa, &user, OAuthScope::Base, Some(&return_to))
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

#[derive(Deserialize)]
struct ResultQuery {
    wxlink_code: Option<String>,
}

/// Plays the backend's part after the callback: redeem the login code and show what it gives.
async fn result(
    State(ctx): State<Ctx>,
    Extension(sandbox): Extension<Shared>,
    Query(q): Query<ResultQuery>,
) -> Result<Response, Page> {
    sandbox_only(&sandbox)?;
    let Some(code) = q.wxlink_code else {
        return Err(Page::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "缺少 wxlink_code",
            "No wxlink_code in the URL.",
        ));
    };
    let now = ctx.clock.timestamp();
    let (app, openid) = ctx
        .store
        .redeem_login_code(&hash_token(&code), now)
        .await?
        .map_err(|p| {
            Page::new(
                StatusCode::GONE,
                "login_code_invalid",
                "登录码无效 / Login code not valid",
                format!("{p:?}"),
            )
        })?;
    let identity = ctx.store.identity(&app, &openid).await?;
    let json = serde_json::to_string_pretty(&identity).unwrap_or_default();
    let mut page = Page::new(
        StatusCode::OK,
        "linked",
        "授权完成 / Authorization complete",
        "Your backend received a wxlink_code on its return_to URL and redeemed it with POST /api/v1/login-codes/redeem. This is what it got:",
    );
    for line in json.lines() {
        page = page.detail(line.to_owned());
    }
    if let Some(user) = identity.as_ref().and_then(|i| i.user_id.as_ref()) {
        page = page.detail(format!(
            "GET /api/v1/users/{user}: every identity bound to this user"
        ));
        for i in ctx.store.user_identities(user).await? {
            page = page.detail(format!(
                "{}: openid {}, unionid {}",
                i.app,
                i.openid,
                i.unionid.as_ref().map_or("-", |u| u.as_str())
            ));
        }
    }
    Ok(page.link("/", "返回 / Back to the sandbox").into_response())
}

#[derive(Deserialize)]
struct SendForm {
    user_id: String,
    channel: String,
    text: String,
}

/// Plays the backend's part of a notification: `POST /api/v1/users/{id}/messages?wait=5`.
/// For a subscribe message the person first "taps allow" in the mini-program, and the
/// backend records the acceptance.
async fn send(
    State(ctx): State<Ctx>,
    Extension(sandbox): Extension<Shared>,
    Form(f): Form<SendForm>,
) -> Result<Response, Page> {
    let sb = sandbox_only(&sandbox)?;
    let refused = |status: StatusCode, m: String| {
        Page::new(status, "send_refused", "无法发送 / Not sent", m).link("/", "返回 / Back")
    };
    let user =
        UserId::parse(f.user_id.trim()).map_err(|e| refused(StatusCode::BAD_REQUEST, e.0))?;
    let data = |pairs: [(&str, &str); 2]| {
        let raw = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), RawDataValue::Plain(v.to_owned())))
            .collect();
        // Over-long text is shortened, as with `"truncate": true`.
        MessageData::parse(&raw, true).map_err(|e| refused(StatusCode::BAD_REQUEST, e.to_string()))
    };
    let draft = match f.channel.as_str() {
        "template" => MessageDraft {
            channel: Channel::Template,
            app: AppId::parse("oa").expect("valid"),
            template_id: TemplateId::parse(ORDER_SHIPPED).expect("valid"),
            category: None,
            payload: Payload {
                url: Some(
                    CardUrl::parse(&ctx.url("/"))
                        .map_err(|e| refused(StatusCode::BAD_REQUEST, format!("url: {e}")))?,
                ),
                ..Payload::new(data([("keyword1", &f.text), ("keyword2", "沙箱快递")])?)
            },
        },
        _ => {
            let mp = AppId::parse("mp").expect("valid");
            let identity = ctx.store.user_identity(&user, &mp).await?.ok_or_else(|| {
                refused(
                    StatusCode::NOT_FOUND,
                    format!(
                        "user {user} has no mini-program identity yet: log in with card 4 first"
                    ),
                )
            })?;
            if let Some(app) = ctx.app(&mp) {
                sb.sim.accept_subscription_by_openid(
                    app.wechat.appid.as_str(),
                    identity.openid.as_str(),
                    ORDER_STATUS,
                );
            }
            let template = TemplateId::parse(ORDER_STATUS).expect("valid");
            ctx.store
                .add_subscription(
                    &mp,
                    &identity.openid,
                    &template,
                    1,
                    false,
                    ctx.clock.timestamp(),
                )
                .await?;
            MessageDraft {
                channel: Channel::Subscribe,
                app: mp,
                template_id: template,
                category: None,
                payload: Payload {
                    page: Some(PagePath::parse("pages/index").expect("valid")),
                    ..Payload::new(data([("thing1", &f.text), ("time2", "2026-11-25 15:01")])?)
                },
            }
        }
    };
    let accepted = ctx
        .outbox
        .accept("sandbox", &user, None, &draft)
        .await
        .map_err(|r| {
            let e = ApiError::from(r);
            refused(e.status(), e.to_string())
        })?;
    let m = ctx
        .outbox
        .wait_settled(&accepted.id, std::time::Duration::from_secs(5))
        .await?;
    let mut page = Page::new(
        StatusCode::OK,
        "message",
        "消息 / Message",
        format!(
            "Your backend called POST /api/v1/users/{user}/messages?wait=5; GET /api/v1/messages/{} shows:",
            accepted.id
        ),
    );
    let json = serde_json::to_string_pretty(&m).unwrap_or_default();
    for line in json.lines() {
        page = page.detail(line.to_owned());
    }
    Ok(page.link("/", "返回 / Back to the sandbox").into_response())
}
