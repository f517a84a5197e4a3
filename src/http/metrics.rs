//! `GET /metrics` in Prometheus' text format. Open by default (it shows counts and app
//! ids, never a secret); with `[metrics] token` set it wants that bearer token.

use crate::context::Ctx;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub fn router() -> Router<Ctx> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Some(token) = &ctx.config.metrics.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        // Digests first, so the comparison takes the same time whatever the lengths.
        let want: [u8; 32] = Sha256::digest(token.expose_secret().as_bytes()).into();
        let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if presented.is_empty() || !bool::from(want.ct_eq(&got)) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need `Authorization: Bearer <metrics.token>`\n",
            )
                .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}
