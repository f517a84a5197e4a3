//! What the business backend gets, shown as the API answers it (formatted JSON): the
//! callback's `wxlink_code` redeemed, or the `wxlink_error` it brought; a notification
//! sent, then followed to `delivered`. A send is a POST answered with 303 to the message's
//! own page, which reloads itself until the message settles, so reloading never sends
//! again.

use super::pages::{Shared, answer, sandbox_only};
use super::{ORDER_NOTICE, ORDER_SHIPPED, ORDER_STATUS};
use crate::context::Ctx;
use crate::http::error::{Page, ReturnError};
use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

#[derive(Template)]
#[template(path = "sandbox_result.html")]
pub(super) struct ResultPage {
    title: &'static str,
    outcome: &'static str,
    message: String,
    /// A message's status, shown apart.
    status: Option<String>,
    /// Reload every second (a message not settled yet).
    following: bool,
    sections: Vec<Section>,
    links: Vec<Link>,
}

/// One call and its answer.
struct Section {
    heading: String,
    note: String,
    json: String,
}

struct Link {
    href: String,
    label: &'static str,
    action: &'static str,
}

impl ResultPage {
    pub(super) fn new(
        title: &'static str,
        outcome: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            title,
            outcome,
            message: message.into(),
            status: None,
            following: false,
            sections: Vec::new(),
            links: vec![Link {
                href: "/".into(),
                label: "返回沙箱 / Back to the sandbox",
                action: "back",
            }],
        }
    }

    pub(super) fn section(
        mut self,
        heading: impl Into<String>,
        note: impl Into<String>,
        json: String,
    ) -> Self {
        self.sections.push(Section {
            heading: heading.into(),
            note: note.into(),
            json,
        });
        self
    }

    fn link(mut self, href: impl Into<String>, label: &'static str, action: &'static str) -> Self {
        self.links.push(Link {
            href: href.into(),
            label,
            action,
        });
        self
    }

    pub(super) fn answer(&self, status: StatusCode) -> Response {
        match self.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "template failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// The first value of `name` in a query (a repeated one is not a reason to fail here).
fn first(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The backend's `return_to`: the person came back with a `wxlink_code` (redeemed here,
/// as the backend would) or a `wxlink_error`.
pub(super) async fn result(
    State(ctx): State<Ctx>,
    Extension(sandbox): Extension<Shared>,
    RawQuery(query): RawQuery,
) -> Response {
    answer(result_page(&ctx, &sandbox, query.as_deref()).await)
}

async fn result_page(ctx: &Ctx, sandbox: &Shared, query: Option<&str>) -> Result<Response, Page> {
    let sb = sandbox_only(sandbox)?;
    let client_state = first(query, "client_state");
    if let Some(code) = first(query, "wxlink_error") {
        let meaning = ReturnError::ALL
            .iter()
            .find(|e| e.code() == code)
            .map_or("not a code of the catalogue", |e| e.meaning());
        let got = json!({"wxlink_error": code, "client_state": client_state});
        return Ok(ResultPage::new(
            "授权未完成 / Not linked",
            "returned_error",
            format!(
                "The person came back to your return_to with wxlink_error={code}: {meaning}. \
                 Your backend shows its own page for it (see the README's table of codes)."
            ),
        )
        .section(
            "What your backend received",
            "On the return_to URL's query.",
            serde_json::to_string_pretty(&got).unwrap_or_default(),
        )
        .answer(StatusCode::OK));
    }
    let Some(code) = first(query, "wxlink_code") else {
        return Err(Page::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "缺少 wxlink_code / No wxlink_code",
            "This is the sandbox's return_to: the authorization sends the person here with a wxlink_code or a wxlink_error.",
        ));
    };
    let redeemed = sb
        .backend
        .call(
            ctx,
            Method::POST,
            "/api/v1/login-codes/redeem",
            Some(&json!({"code": code})),
        )
        .await;
    if !redeemed.ok() {
        return Ok(ResultPage::new(
            "登录码无效 / Login code not valid",
            "login_code_invalid",
            "Your backend redeemed the wxlink_code and was refused: a code is redeemed once (reloading this page redeems it again) within 5 minutes.",
        )
        .section(
            "POST /api/v1/login-codes/redeem",
            format!("Answered {}.", redeemed.status.as_u16()),
            redeemed.pretty(),
        )
        .answer(redeemed.status));
    }
    let mut page = ResultPage::new(
        "授权完成 / Authorization complete",
        "linked",
        "Your backend received a wxlink_code on its return_to URL and redeemed it with POST /api/v1/login-codes/redeem.",
    )
    .section(
        "POST /api/v1/login-codes/redeem",
        "The person's identity, and the business user it is bound to (null: nobody yet).",
        redeemed.pretty(),
    );
    if let Some(user) = redeemed.json["user_id"].as_str() {
        let path = format!("/api/v1/users/{}", urlencoding::encode(user));
        let identities = sb.backend.call(ctx, Method::GET, &path, None).await;
        page = page
            .section(
                format!("GET {path}"),
                "Every identity bound to this user.",
                identities.pretty(),
            )
            .link(
                "/#send",
                "给该用户发通知 / Send this user a notification",
                "send",
            );
    }
    Ok(page.answer(StatusCode::OK))
}

#[derive(Deserialize)]
pub(super) struct SendForm {
    user_id: String,
    channel: String,
    text: String,
}

/// Plays the backend's part of a notification: `POST /api/v1/users/{id}/messages`; for a
/// subscribe message (or an Official Account subscribe notification) the person "taps
/// allow" in the mini-program (or the Official Account page) first and the backend
/// records it (`POST /api/v1/users/{id}/subscriptions`, which in the sandbox is also the
/// simulated person's choice). Then 303 to the message's page.
pub(super) async fn send(
    State(ctx): State<Ctx>,
    Extension(sandbox): Extension<Shared>,
    Form(f): Form<SendForm>,
) -> Response {
    answer(send_page(&ctx, &sandbox, f).await)
}

async fn send_page(ctx: &Ctx, sandbox: &Shared, f: SendForm) -> Result<Response, Page> {
    let sb = sandbox_only(sandbox)?;
    let user = f.user_id.trim();
    let base = format!("/api/v1/users/{}", urlencoding::encode(user));
    let refused = |call: String, a: &super::backend::Answer, hint: &str| {
        ResultPage::new(
            "无法发送 / Not sent",
            "send_refused",
            format!(
                "Your backend's call was refused ({}).{hint}",
                a.error_code().unwrap_or("no code")
            ),
        )
        .section(call, format!("Answered {}.", a.status.as_u16()), a.pretty())
        .answer(a.status)
    };
    // A subscribe message needs the person's "allow" first: in the mini-program
    // (subscribe), or in an Official Account page's wx-open-subscribe (oa_subscribe). A
    // customer-service message needs the person to have written to the account.
    let (app, template, hint) = match f.channel.as_str() {
        "template" | "custom" => ("oa", ORDER_SHIPPED, ""),
        "oa_subscribe" => (
            "oa",
            ORDER_NOTICE,
            " This user has no Official Account identity yet: link one with card 3 first.",
        ),
        _ => (
            "mp",
            ORDER_STATUS,
            " This user has no mini-program identity yet: log in with card 4 first.",
        ),
    };
    if f.channel == "custom" {
        person_writes(ctx, sb, &base).await;
    } else if template != ORDER_SHIPPED {
        let accepted = sb
            .backend
            .call(
                ctx,
                Method::POST,
                &format!("{base}/subscriptions"),
                Some(&json!({"app": app, "template_id": template})),
            )
            .await;
        if !accepted.ok() {
            let hint = if accepted.error_code() == Some("no_identity") {
                hint
            } else {
                ""
            };
            return Ok(refused(
                format!("POST {base}/subscriptions"),
                &accepted,
                hint,
            ));
        }
    }
    let body = match f.channel.as_str() {
        "custom" => {
            json!({"channel": "custom", "app": "oa", "msgtype": "text", "text": {"content": f.text}})
        }
        "template" => json!({
            "channel": "template", "app": "oa", "template_id": ORDER_SHIPPED,
            "data": {"keyword1": f.text, "keyword2": "沙箱快递"},
            "url": ctx.url("/"), "truncate": true,
        }),
        "oa_subscribe" => json!({
            "channel": "oa_subscribe", "app": "oa", "template_id": ORDER_NOTICE,
            "data": {"thing1": f.text, "time2": "2026-11-25 15:01"},
            "url": ctx.url("/"), "truncate": true,
        }),
        _ => json!({
            "channel": "subscribe", "app": "mp", "template_id": ORDER_STATUS,
            "data": {"thing1": f.text, "time2": "2026-11-25 15:01"},
            "page": "pages/index", "truncate": true,
        }),
    };
    let sent = sb
        .backend
        .call(ctx, Method::POST, &format!("{base}/messages"), Some(&body))
        .await;
    let id = sent.json["id"].as_str().filter(|_| sent.ok());
    let Some(id) = id else {
        let hint = if sent.error_code() == Some("no_identity") {
            " This user has no identity in that app yet: link one with card 3 or 4 first."
        } else {
            ""
        };
        return Ok(refused(format!("POST {base}/messages"), &sent, hint));
    };
    Ok((
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            format!("/sandbox/messages/{}", urlencoding::encode(id)),
        )],
    )
        .into_response())
}

/// Plays the person's part before a customer-service message: they write to the Official
/// Account (the simulator pushes the text message to wxlink), which opens the window the
/// message needs. Without an `oa` identity nothing is pushed, and the send says why.
async fn person_writes(ctx: &Ctx, sb: &super::Sandbox, base: &str) {
    let user = sb.backend.call(ctx, Method::GET, base, None).await;
    let openid = user.json["identities"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["app"] == "oa")
        .and_then(|i| i["openid"].as_str())
        .map(str::to_owned);
    let Some(openid) = openid else { return };
    let now = ctx.clock.now();
    let xml = format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[我的订单到哪了？]]></Content><MsgId>{}</MsgId></xml>",
        crate::push::xml::cdata(&crate::sim::push::original_id(super::OA_APPID)),
        crate::push::xml::cdata(&openid),
        ctx.clock.now_ms()
    );
    let Ok(id) = sb.sim.push_raw(super::OA_APPID, &xml) else {
        return;
    };
    // The send must find the window open: wait for wxlink's answer to the push.
    for _ in 0..250 {
        if sb.sim.pushes().iter().any(|p| p.id == id && p.finished) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A message as `GET /api/v1/messages/{id}` shows it, reloaded until it settles.
pub(super) async fn message(
    State(ctx): State<Ctx>,
    Extension(sandbox): Extension<Shared>,
    Path(id): Path<String>,
) -> Response {
    answer(message_page(&ctx, &sandbox, &id).await)
}

async fn message_page(ctx: &Ctx, sandbox: &Shared, id: &str) -> Result<Response, Page> {
    let sb = sandbox_only(sandbox)?;
    let path = format!("/api/v1/messages/{}", urlencoding::encode(id));
    let m = sb.backend.call(ctx, Method::GET, &path, None).await;
    if !m.ok() {
        return Ok(ResultPage::new(
            "消息不存在 / No such message",
            "message_not_found",
            "The API knows no message with this id.",
        )
        .section(format!("GET {path}"), "", m.pretty())
        .answer(m.status));
    }
    let status = m.json["status"].as_str().unwrap_or("").to_owned();
    let user = m.json["user_id"].as_str().unwrap_or("");
    let mut page = ResultPage::new(
        "消息 / Message",
        "message",
        format!(
            "Your backend called POST /api/v1/users/{user}/messages; the message goes queued, sending, sent, then delivered when WeChat's delivery report comes in."
        ),
    );
    // WeChat reports nothing after a customer-service send: `sent` is where it ends.
    let reported = m.json["channel"] != "custom";
    page.following =
        matches!(status.as_str(), "queued" | "sending") || (status == "sent" && reported);
    page.status = Some(status);
    Ok(page
        .section(format!("GET {path}"), "Its status and history.", m.pretty())
        .link("/#send", "再发一条 / Send another", "send")
        .answer(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_query_parameter_reads_its_first_value() {
        assert_eq!(
            first(Some("wxlink_code=a&wxlink_code=b"), "wxlink_code").as_deref(),
            Some("a")
        );
        assert_eq!(first(None, "wxlink_code"), None);
    }
}
