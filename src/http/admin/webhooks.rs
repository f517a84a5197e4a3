//! `/admin/webhooks?endpoint=`: the configured endpoints (queue, failures, disabled or not)
//! and one endpoint's latest deliveries with every attempt and the receiver's answers.
//! Read-only like every admin page: replay, test and enable are API calls (named on the
//! page), so the page has no form to forge.

use super::{Admin, bad_request, beijing_ms, render};
use crate::context::Ctx;
use crate::store::{DeliveryView, EndpointState};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

const PAGE_SIZE: i64 = 50;

#[derive(Deserialize, Default)]
pub(super) struct Filters {
    #[serde(default)]
    endpoint: String,
}

struct EndpointLine {
    name: String,
    url: String,
    events: String,
    secrets: usize,
    pending: i64,
    oldest: String,
    failures: i64,
    next_attempt: String,
    disabled: String,
}

struct AttemptLine {
    attempt: i64,
    at: String,
    duration_ms: i64,
    answer: String,
    ok: bool,
}

struct DeliveryLine {
    id: String,
    kind: String,
    occurred: String,
    user_id: String,
    status: String,
    attempts: Vec<AttemptLine>,
}

impl From<DeliveryView> for DeliveryLine {
    fn from(d: DeliveryView) -> Self {
        Self {
            id: d.event.id.to_string(),
            kind: d.event.kind.as_str().to_owned(),
            occurred: beijing_ms(d.event.occurred_ms.millis()),
            user_id: d.event.user_id.map(|u| u.to_string()).unwrap_or_default(),
            status: d.status,
            attempts: d
                .attempts
                .into_iter()
                .map(|a| AttemptLine {
                    attempt: a.attempt,
                    at: beijing_ms(a.at_ms),
                    duration_ms: a.duration_ms,
                    ok: a.status_code.is_some_and(|c| (200..300).contains(&c)),
                    answer: match (a.status_code, a.error) {
                        (Some(c), _) => format!("HTTP {c} {}", a.answer.unwrap_or_default()),
                        (None, Some(e)) => e,
                        (None, None) => "no answer".to_owned(),
                    },
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/webhooks.html")]
struct WebhooksPage {
    nav: &'static str,
    now: String,
    endpoints: Vec<EndpointLine>,
    shown: String,
    deliveries: Vec<DeliveryLine>,
}

pub(super) async fn page(
    _admin: Admin,
    State(ctx): State<Ctx>,
    query: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(f)) = query else {
        return bad_request("the filters could not be read");
    };
    let shown = match f.endpoint.as_str() {
        "" => ctx.webhooks.endpoints().next().map(|e| e.name.clone()),
        name => match ctx.webhooks.endpoint(name) {
            Some(e) => Some(e.name.clone()),
            None => return bad_request("endpoint: no such [[webhooks]] endpoint is configured"),
        },
    };
    let states = match ctx.store.webhook_endpoints().await {
        Ok(s) => s,
        Err(e) => return crate::http::error::Page::from(e).into_response(),
    };
    let deliveries = match &shown {
        Some(name) => match ctx.store.webhook_deliveries(name, None, PAGE_SIZE).await {
            Ok(d) => d,
            Err(e) => return crate::http::error::Page::from(e).into_response(),
        },
        None => Vec::new(),
    };
    let endpoints = ctx
        .webhooks
        .endpoints()
        .map(|e| {
            let s: Option<&EndpointState> = states.iter().find(|s| s.name == e.name);
            let mut url = e.url.clone();
            url.set_query(None);
            let _ = url.set_password(None);
            EndpointLine {
                name: e.name.clone(),
                url: url.to_string(),
                events: e.events.join(", "),
                secrets: e.secrets.len(),
                pending: s.map_or(0, |s| s.pending),
                oldest: s
                    .and_then(|s| s.oldest_pending_ms)
                    .map(|t| beijing_ms(t.millis()))
                    .unwrap_or_default(),
                failures: s.map_or(0, |s| s.failures),
                next_attempt: s
                    .filter(|s| s.failures > 0)
                    .map(|s| beijing_ms(s.next_attempt_ms.millis()))
                    .unwrap_or_default(),
                disabled: s
                    .and_then(|s| s.disabled_reason.clone())
                    .unwrap_or_default(),
            }
        })
        .collect();
    render(&WebhooksPage {
        nav: "webhooks",
        now: super::beijing(ctx.clock.now()),
        endpoints,
        shown: shown.unwrap_or_default(),
        deliveries: deliveries.into_iter().map(DeliveryLine::from).collect(),
    })
}
