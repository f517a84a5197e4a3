//! The sandbox's own webhook receiver: the sandbox configures an endpoint `sandbox` that
//! points back at itself, and `/sandbox/webhooks` shows what arrived there, newest first,
//! with whether each signature verifies (checked with the Standard Webhooks library, as a
//! real receiver would). A newcomer sees webhooks working without writing a receiver.

use super::Sandbox;
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// Deliveries kept in memory; older ones are dropped.
pub const KEPT: usize = 100;

/// One delivery as the sandbox's receiver saw it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub received_ms: i64,
    pub webhook_id: String,
    pub kind: String,
    pub user_id: String,
    /// `None` when the signature verifies, else why not.
    pub refused: Option<String>,
    pub body: String,
}

pub fn router(sandbox: Arc<Sandbox>) -> Router {
    Router::new()
        .route("/sandbox/webhooks", get(page).post(receive))
        .with_state(sandbox)
}

async fn receive(State(sb): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let verdict =
        standardwebhooks::Webhook::new(&sb.webhook_secret).and_then(|w| w.verify(&body, &headers));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(100)
            .collect::<String>()
    };
    let d = Delivery {
        received_ms: sb.sim.clock().now_ms(),
        webhook_id: header("webhook-id"),
        kind: json["type"]
            .as_str()
            .unwrap_or("?")
            .chars()
            .take(64)
            .collect(),
        user_id: json["data"]["user_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        refused: verdict.err().map(|e| e.to_string()),
        body: serde_json::to_string_pretty(&json).unwrap_or_default(),
    };
    let ok = d.refused.is_none();
    let mut kept = sb
        .webhooks_received
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    kept.push_front(d);
    kept.truncate(KEPT);
    if ok {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}

#[derive(Template)]
#[template(path = "sandbox_webhooks.html")]
struct WebhooksPage {
    deliveries: Vec<Delivery>,
    kept: usize,
}

impl WebhooksPage {
    fn time(&self, ms: &i64) -> String {
        crate::webhooks::payload::rfc3339(crate::clock::Timestamp::from_millis(*ms))
    }
}

async fn page(State(sb): State<Arc<Sandbox>>) -> Response {
    let deliveries = sb
        .webhooks_received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    match (WebhooksPage {
        deliveries,
        kept: KEPT,
    })
    .render()
    {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
