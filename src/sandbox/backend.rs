//! The sandbox's pages play the business backend: they call the backend API in-process,
//! with the development key, and show its answers as they are, so what a developer sees
//! on the page is what their own backend will get.

use crate::context::Ctx;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use std::sync::OnceLock;
use tower::ServiceExt as _;

/// The API router, built on first use (it needs the finished context).
pub struct Backend {
    key: String,
    router: OnceLock<Router>,
}

/// One answer of the API.
pub struct Answer {
    pub status: StatusCode,
    pub json: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The body as a backend would print it.
    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(&self.json).unwrap_or_default()
    }

    /// The API's error code, when it refused.
    pub fn error_code(&self) -> Option<&str> {
        self.json["error"]["code"].as_str()
    }
}

impl Backend {
    pub fn new(key: &str) -> Self {
        Self {
            key: key.to_owned(),
            router: OnceLock::new(),
        }
    }

    /// `method path` with an optional JSON body, as a backend calls it.
    pub async fn call(
        &self,
        ctx: &Ctx,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let router = self
            .router
            .get_or_init(|| {
                crate::http::api::router(ctx.config.max_body_bytes).with_state(ctx.clone())
            })
            .clone();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        let request = match body {
            Some(b) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => request.body(Body::empty()),
        };
        let response = match request {
            Ok(r) => router.oneshot(r).await.unwrap_or_else(|e| match e {}),
            Err(e) => return internal(format!("cannot build the request: {e}")),
        };
        let status = response.status();
        match axum::body::to_bytes(response.into_body(), 1 << 20).await {
            Ok(bytes) if bytes.is_empty() => Answer {
                status,
                json: Value::Null,
            },
            Ok(bytes) => Answer {
                status,
                json: serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
            },
            Err(e) => internal(format!("cannot read the answer: {e}")),
        }
    }
}

fn internal(message: String) -> Answer {
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        json: serde_json::json!({"error": {"code": "internal_error", "message": message}}),
    }
}
