//! The HTTP surfaces, one module per audience: browser OAuth pages, the backend JSON API
//! (with its OpenAPI document), WeChat's server push, and `/metrics` and the admin pages
//! for operators; [`error`] holds each one's error, its mapping to a response, and the
//! catalogue of codes. The root only merges them; the sandbox's pages
//! ([`crate::sandbox::pages`]) and the shared layers (request ids, tracing, rate limits)
//! are added in `app.rs`.

pub mod admin;
pub mod api;
pub mod error;
pub mod metrics;
pub mod oauth;
pub mod person;
pub mod push;
pub mod ratelimit;

use crate::context::Ctx;
use crate::http::error::{ApiError, ErrorCode, Page};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// The OAuth routes a browser visits; the caller wraps them in the session layer.
pub fn browser_router() -> Router<Ctx> {
    oauth::router()
}

/// Everything, given the browser routes already wrapped in their session layer.
pub fn router(ctx: Ctx, browser: Router<Ctx>) -> Router {
    let browser = browser.layer(axum::middleware::from_fn_with_state(
        ctx.clone(),
        person::pages,
    ));
    Router::new()
        .merge(browser)
        .merge(api::router(ctx.config.max_body_bytes))
        .merge(metrics::router())
        .merge(admin::router())
        .merge(push::router(ctx.config.push.max_body_bytes))
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(ctx)
}

async fn healthz(State(ctx): State<Ctx>) -> Response {
    match ctx.store.ping().await {
        Ok(()) => {
            axum::Json(json!({"status": "ok", "store": ctx.store.backend_name()})).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "health check: store not answering");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "unavailable", "reason": "database not answering"})),
            )
                .into_response()
        }
    }
}

/// Readiness, for load balancers: 503 with the reason while the database does not answer
/// or the last write failed for lack of space (writes would be refused), 200 otherwise.
async fn readyz(State(ctx): State<Ctx>) -> Response {
    let reason = match ctx.store.ping().await {
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store not answering");
            Some((
                "database_unavailable",
                "the database is not answering".to_owned(),
            ))
        }
        Ok(()) if ctx.store.is_full() => Some((
            "storage_full",
            "the database's disk is full: writes are refused until there is room".to_owned(),
        )),
        Ok(()) => ctx
            .store
            .file_problem()
            .map(|why| ("database_file_missing", why)),
    };
    match reason {
        None => axum::Json(json!({"status": "ready"})).into_response(),
        Some((reason, message)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "reason": reason, "message": message})),
        )
            .into_response(),
    }
}

/// Liveness without touching the database (for load balancers that probe often).
async fn livez() -> axum::Json<serde_json::Value> {
    axum::Json(json!({"status": "ok"}))
}

async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        ApiError::new(
            ErrorCode::NoSuchRoute,
            format!("no route {} {}", req.method(), req.uri().path()),
        )
        .into_response()
    } else {
        not_found_page().into_response()
    }
}

/// The page of a path that does not exist.
pub(crate) fn not_found_page() -> Page {
    Page::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "页面不存在 / Not found",
        "There is no page here.",
    )
}
