//! The central control server for other backends: the current access token of an app, and
//! "this token failed for me".

use super::{ApiJson, Caller, known_app};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::token::AccessToken;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub fn router() -> Router<Ctx> {
    Router::new()
        .route("/api/v1/apps/{app}/access-token", get(current))
        .route(
            "/api/v1/apps/{app}/access-token/invalidate",
            post(invalidate),
        )
}

/// Serialized straight from the shared token: no copy on the hot path.
#[derive(Serialize)]
struct TokenBody {
    access_token: Arc<str>,
    expires_at: i64,
}

impl From<AccessToken> for TokenBody {
    fn from(t: AccessToken) -> Self {
        Self {
            access_token: t.token,
            expires_at: t.expires_at,
        }
    }
}

async fn current(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(app): Path<String>,
) -> Result<Json<TokenBody>, ApiError> {
    let app = known_app(&ctx, &app)?;
    Ok(Json(ctx.tokens.get(&app.id).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidateRequest {
    access_token: String,
}

async fn invalidate(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(app): Path<String>,
    ApiJson(req): ApiJson<InvalidateRequest>,
) -> Result<Json<TokenBody>, ApiError> {
    let app = known_app(&ctx, &app)?;
    if req.access_token.is_empty() {
        return Err(ApiError::invalid("invalid_body", "access_token is empty"));
    }
    tracing::info!(app = %app.id, caller = %caller.name, "access token reported as failed");
    Ok(Json(
        ctx.tokens
            .invalidate(&app.id, &req.access_token)
            .await?
            .into(),
    ))
}
