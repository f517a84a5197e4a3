//! The central control server for other backends: the current access token of an app, and
//! "this token failed for me".

use super::doc::api_errors;
use super::{ApiJson, ApiPath, AppPath, Caller};
use crate::context::Ctx;
use crate::http::error::{ApiError, ErrorCode};
use crate::token::AccessToken;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(current))
        .routes(routes!(invalidate))
}

/// The app's current global access token. Serialized straight from the shared token: no
/// copy on the hot path.
#[derive(Serialize, ToSchema)]
struct TokenBody {
    #[schema(value_type = String)]
    access_token: Arc<str>,
    /// Unix seconds.
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

api_errors!(CurrentErrors:
    UnknownApp, WechatError, WechatRefused, WechatQuota, TokenUnavailable,
);

/// The app's current global access token (from memory; refreshed ahead of expiry).
#[utoipa::path(
    get,
    path = "/api/v1/apps/{app}/access-token",
    tag = "access-token",
    security(("api_key" = ["tokens:read"])),
    params(AppPath),
    responses(
        (status = 200, description = "The current token", body = TokenBody),
        CurrentErrors,
    )
)]
async fn current(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(app): ApiPath<String>,
) -> Result<Json<TokenBody>, ApiError> {
    let app = caller.app(&ctx, &app)?;
    Ok(Json(ctx.tokens.get(&app.id).await?.into()))
}

/// A token that failed for the caller.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InvalidateRequest {
    access_token: String,
}

api_errors!(InvalidateErrors:
    InvalidJson, InvalidBody, UnknownApp, BodyTooLarge, UnsupportedMediaType, ForceRefreshBudget,
    InvalidationLimit,
    WechatError, WechatRefused, WechatQuota, TokenUnavailable,
);

/// "This token failed for me": replaced only if it is still the current one (a stable token
/// with `force_refresh`, within WeChat's budget). Answers the current, possibly new, token.
#[utoipa::path(
    post,
    path = "/api/v1/apps/{app}/access-token/invalidate",
    tag = "access-token",
    security(("api_key" = ["tokens:invalidate"])),
    params(AppPath),
    request_body = InvalidateRequest,
    responses(
        (status = 200, description = "The current token", body = TokenBody),
        InvalidateErrors,
    )
)]
async fn invalidate(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(app): ApiPath<String>,
    ApiJson(req): ApiJson<InvalidateRequest>,
) -> Result<Json<TokenBody>, ApiError> {
    let app = caller.app(&ctx, &app)?;
    if req.access_token.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            "access_token is empty",
        ));
    }
    tracing::info!(app = %app.id, caller = %caller.name, "access token reported as failed");
    Ok(Json(
        ctx.tokens
            .invalidate_by(&app.id, &req.access_token, Some(&caller.name))
            .await?
            .into(),
    ))
}
