//! `/admin/pushes?app=&type=&before=`: what WeChat pushed, newest first, with what became
//! of each push (handled, its outcome, retries) and the XML it carried; above them the
//! latest forwards to the apps' downstreams that failed (WeChat got `success` instead of
//! the downstream's answer).

use super::{Admin, bad_request, beijing, render};
use crate::context::Ctx;
use crate::store::{ForwardFailure, PushFilter, StoredEvent};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

const PAGE_SIZE: i64 = 50;
/// Forward failures shown.
const FAILURES: i64 = 20;

/// The filters as given (empty means any).
#[derive(Deserialize, Default)]
pub(super) struct Filters {
    #[serde(default)]
    app: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    before: String,
}

/// One push as the page shows it.
struct PushLine {
    id: i64,
    received: String,
    app: String,
    kind: String,
    openid: String,
    encrypted: bool,
    duplicates: i64,
    /// `handled`, `pending` or `failing`.
    state: &'static str,
    outcome: String,
    attempts: i64,
    last_error: String,
    xml: String,
}

impl From<StoredEvent> for PushLine {
    fn from(e: StoredEvent) -> Self {
        Self {
            id: e.id,
            received: beijing(e.received_at.secs()),
            app: e.app.to_string(),
            kind: e.kind,
            openid: e.openid.unwrap_or_default(),
            encrypted: e.encrypted,
            duplicates: e.duplicates,
            state: match (e.handled_at, &e.last_error) {
                (Some(_), _) => "handled",
                (None, Some(_)) => "failing",
                (None, None) => "pending",
            },
            outcome: e.outcome.unwrap_or_default(),
            attempts: e.attempts,
            last_error: e.last_error.unwrap_or_default(),
            xml: e.xml,
        }
    }
}

/// One failed forward as the page shows it.
struct FailureLine {
    at: String,
    app: String,
    kind: String,
    openid: String,
    outcome: String,
    status: String,
    took: String,
    error: String,
}

impl From<ForwardFailure> for FailureLine {
    fn from(f: ForwardFailure) -> Self {
        Self {
            at: beijing(f.started_at.secs()),
            app: f.app.to_string(),
            kind: f.kind,
            openid: f.openid.unwrap_or_default(),
            outcome: f.outcome,
            status: f.status.map(|s| s.to_string()).unwrap_or_default(),
            took: f.took_ms.map(|t| format!("{t} ms")).unwrap_or_default(),
            error: f.error,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/pushes.html")]
struct PushesPage {
    nav: &'static str,
    now: String,
    app: String,
    kind: String,
    apps: Vec<String>,
    pushes: Vec<PushLine>,
    /// Apps with a downstream (`forward_url`), by id.
    forwarding: Vec<String>,
    failures: Vec<FailureLine>,
    older: Option<String>,
    first_page: bool,
}

pub(super) async fn list(
    _admin: Admin,
    State(ctx): State<Ctx>,
    query: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(f)) = query else {
        return bad_request("the filters could not be read");
    };
    let app = match f.app.as_str() {
        "" => None,
        a => match ctx.config.app_named(a) {
            Ok(app) => Some(app.id.clone()),
            Err(_) => return bad_request("app: no such app is configured"),
        },
    };
    if f.kind.len() > 64 {
        return bad_request("type: an event name or message type");
    }
    let before_id = match f.before.as_str() {
        "" => None,
        b => match b.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => return bad_request("before: not a push id"),
        },
    };
    let filter = PushFilter {
        app: app.as_ref(),
        kind: (!f.kind.is_empty()).then_some(f.kind.as_str()),
        before_id,
        limit: PAGE_SIZE,
    };
    let pushes = match ctx.store.admin_pushes(&filter).await {
        Ok(p) => p,
        Err(e) => return crate::http::error::Page::from(e).into_response(),
    };
    let failures = match ctx.store.forward_failures(app.as_ref(), FAILURES).await {
        Ok(f) => f,
        Err(e) => return crate::http::error::Page::from(e).into_response(),
    };
    let older = (pushes.len() as i64 == PAGE_SIZE)
        .then(|| pushes.last())
        .flatten()
        .map(|last| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in [("app", &f.app), ("type", &f.kind)] {
                if !v.is_empty() {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("before", &last.id.to_string());
            q.finish()
        });
    render(&PushesPage {
        nav: "pushes",
        now: beijing(ctx.clock.now()),
        apps: ctx.config.apps.iter().map(|a| a.id.to_string()).collect(),
        pushes: pushes.into_iter().map(PushLine::from).collect(),
        forwarding: ctx
            .config
            .apps
            .iter()
            .filter(|a| a.forward.is_some())
            .map(|a| a.id.to_string())
            .collect(),
        failures: failures.into_iter().map(FailureLine::from).collect(),
        older,
        first_page: before_id.is_none(),
        app: f.app,
        kind: f.kind,
    })
}
