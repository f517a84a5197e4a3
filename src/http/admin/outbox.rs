//! `/admin/outbox?state=&app=&channel=&before=`: messages newest first, filtered and paged;
//! `/admin/messages/{id}`: one message with what was sent and its whole history.

use super::{Admin, bad_request, beijing, beijing_ms, render};
use crate::context::Ctx;
use crate::domain::{Channel, MessageId, MessageStatus};
use crate::store::{Message, MessageFilter};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

const PAGE_SIZE: i64 = 50;

/// One message in a list.
pub(super) struct MessageLine {
    pub id: String,
    pub created: String,
    pub user_id: String,
    pub app: String,
    pub channel: &'static str,
    pub template_id: String,
    pub status: &'static str,
    pub attempts: i64,
    /// WeChat's errcode and the reason, when there is one.
    pub problem: String,
}

impl From<&Message> for MessageLine {
    fn from(m: &Message) -> Self {
        let problem = match (m.errcode, &m.reason) {
            (Some(code), Some(reason)) => format!("{code} {reason}"),
            (Some(code), None) => code.to_string(),
            (None, Some(reason)) => reason.clone(),
            (None, None) => String::new(),
        };
        Self {
            id: m.id.to_string(),
            created: beijing_ms(m.created_ms.millis()),
            user_id: m.user_id.to_string(),
            app: m.app.to_string(),
            channel: m.channel.as_str(),
            template_id: m
                .template_id
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default(),
            status: m.status.as_str(),
            attempts: m.attempts,
            problem,
        }
    }
}

/// The filters as given (empty means any).
#[derive(Deserialize, Default)]
pub(super) struct Filters {
    #[serde(default)]
    state: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    before: String,
}

#[derive(Template)]
#[template(path = "admin/outbox.html")]
struct OutboxPage {
    nav: &'static str,
    now: String,
    state: String,
    app: String,
    channel: String,
    states: Vec<&'static str>,
    apps: Vec<String>,
    channels: Vec<&'static str>,
    messages: Vec<MessageLine>,
    /// The query string of the next (older) page.
    older: Option<String>,
    first_page: bool,
}

const STATES: [MessageStatus; 6] = [
    MessageStatus::Queued,
    MessageStatus::Sending,
    MessageStatus::Sent,
    MessageStatus::Delivered,
    MessageStatus::Failed,
    MessageStatus::Rejected,
];

pub(super) async fn list(
    _admin: Admin,
    State(ctx): State<Ctx>,
    query: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(f)) = query else {
        return bad_request("the filters could not be read");
    };
    let status = match f.state.as_str() {
        "" => None,
        s => match MessageStatus::parse(s) {
            Ok(s) => Some(s),
            Err(_) => {
                return bad_request(
                    "state: use queued, sending, sent, delivered, failed or rejected",
                );
            }
        },
    };
    let app = match f.app.as_str() {
        "" => None,
        a => match ctx.config.app_named(a) {
            Ok(app) => Some(app.id.clone()),
            Err(_) => return bad_request("app: no such app is configured"),
        },
    };
    let channel = match f.channel.as_str() {
        "" => None,
        c => match Channel::parse(c) {
            Ok(c) => Some(c),
            Err(_) => {
                return bad_request(
                    "channel: use template, subscribe, form, custom or oa_subscribe",
                );
            }
        },
    };
    // Ids are short ASCII; anything else cannot be a page boundary.
    if f.before.len() > 64 || !f.before.chars().all(|c| c.is_ascii_alphanumeric()) {
        return bad_request("before: not a message id");
    }
    let filter = MessageFilter {
        status,
        app: app.as_ref(),
        channel,
        before: (!f.before.is_empty()).then_some(f.before.as_str()),
        limit: PAGE_SIZE,
    };
    let messages = match ctx.store.admin_messages(&filter).await {
        Ok(m) => m,
        Err(e) => return crate::http::error::Page::from(e).into_response(),
    };
    let older = (messages.len() as i64 == PAGE_SIZE)
        .then(|| messages.last())
        .flatten()
        .map(|last| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in [
                ("state", &f.state),
                ("app", &f.app),
                ("channel", &f.channel),
            ] {
                if !v.is_empty() {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("before", last.id.as_str());
            q.finish()
        });
    render(&OutboxPage {
        nav: "outbox",
        now: beijing(ctx.clock.now()),
        states: STATES.iter().map(|s| s.as_str()).collect(),
        apps: ctx.config.apps.iter().map(|a| a.id.to_string()).collect(),
        channels: vec!["template", "subscribe", "form", "custom", "oa_subscribe"],
        messages: messages.iter().map(MessageLine::from).collect(),
        older,
        first_page: f.before.is_empty(),
        state: f.state,
        app: f.app,
        channel: f.channel,
    })
}

/// One line of a message's history.
struct HistoryLine {
    status: String,
    at: String,
    /// The line's other fields (errcode, detail, msgid...), as JSON.
    details: String,
}

#[derive(Template)]
#[template(path = "admin/message.html")]
struct MessagePage {
    nav: &'static str,
    now: String,
    m: MessageLine,
    openid: String,
    category: String,
    msgid: String,
    next_attempt: String,
    updated: String,
    hold: Option<String>,
    payload: String,
    history: Vec<HistoryLine>,
}

pub(super) async fn message(
    _admin: Admin,
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
) -> Response {
    let found = match MessageId::parse(&id) {
        Ok(id) => ctx.store.message(&id).await,
        // Not an id we would hand out: no message has it.
        Err(_) => Ok(None),
    };
    let m = match found {
        Ok(Some(m)) => m,
        Ok(None) => {
            return crate::http::error::Page::new(
                StatusCode::NOT_FOUND,
                "admin_message_not_found",
                "没有这条消息 / No such message",
                "No message has that id.",
            )
            .link("/admin/outbox", "Outbox")
            .into_response();
        }
        Err(e) => return crate::http::error::Page::from(e).into_response(),
    };
    let hold = if m.status == MessageStatus::Queued {
        match ctx
            .store
            .channel_hold(&m.app, m.channel, ctx.clock.timestamp())
            .await
        {
            Ok(h) => h.map(|(until, reason)| {
                format!("held until {}: {reason}", beijing_ms(until.millis()))
            }),
            Err(e) => return crate::http::error::Page::from(e).into_response(),
        }
    } else {
        None
    };
    let history = m
        .history
        .iter()
        .map(|line| {
            let mut rest = line.as_object().cloned().unwrap_or_default();
            let status = rest
                .remove("status")
                .and_then(|s| s.as_str().map(str::to_owned))
                .unwrap_or_default();
            let at = rest
                .remove("at_ms")
                .and_then(|v| v.as_i64())
                .map(beijing_ms)
                .unwrap_or_default();
            HistoryLine {
                status,
                at,
                details: if rest.is_empty() {
                    String::new()
                } else {
                    Value::Object(rest).to_string()
                },
            }
        })
        .collect();
    render(&MessagePage {
        nav: "outbox",
        now: beijing(ctx.clock.now()),
        openid: m.openid.to_string(),
        category: m
            .category
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        msgid: m.msgid.map(|v| v.to_string()).unwrap_or_default(),
        next_attempt: if m.status.is_settled() {
            String::new()
        } else {
            beijing_ms(m.next_attempt_ms.millis())
        },
        updated: beijing_ms(m.updated_ms.millis()),
        hold,
        payload: serde_json::to_string_pretty(&m.payload).unwrap_or_default(),
        history,
        m: MessageLine::from(&m),
    })
}
