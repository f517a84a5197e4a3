//! The backend JSON API under `/api/v1`, authenticated by `Authorization: Bearer <key>`.
//!
//! Every route is registered through utoipa-axum's `routes!`, so the axum router and the
//! OpenAPI document ([`doc`]) come from one list and cannot drift apart.

pub mod doc;
mod events;
mod identities;
mod ledger;
mod login_codes;
mod messages;
mod profiles;
mod sessions;
mod tokens;
mod users;
mod webhooks;

use crate::context::Ctx;
use crate::domain::UserId;
use crate::http::error::{ApiError, ErrorCode};
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;

/// The API's routes together with their OpenAPI document.
pub fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .merge(users::router())
        .merge(profiles::router())
        .merge(login_codes::router())
        .merge(tokens::router())
        .merge(events::router())
        .merge(messages::router())
        .merge(ledger::router())
        .merge(sessions::router())
        .merge(identities::router())
        .merge(webhooks::router())
}

/// The OpenAPI document of the API, as `GET /api/v1/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// The API's routes, `GET /api/v1/openapi.json` and the Swagger UI at `/api/docs`.
pub fn router(max_body_bytes: usize) -> Router<Ctx> {
    let (api, openapi) = routes().split_for_parts();
    api.layer(DefaultBodyLimit::max(max_body_bytes))
        .merge(doc::router(openapi))
}

/// `{user_id}` in a route.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// The company's own user id: 1 to 128 letters, digits or any of `_ - . : @`.
    #[allow(dead_code)]
    user_id: String,
}

/// `{app}` in a route.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct AppPath {
    /// A configured app's short name (`[[apps]] id`), e.g. `oa`.
    #[allow(dead_code)]
    app: String,
}

/// The backend that called, identified by its API key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
}

impl FromRequestParts<Ctx> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(
                ErrorCode::MissingApiKey,
                "send the API key as `Authorization: Bearer <key>`",
            ));
        };
        let invalid = || ApiError::new(ErrorCode::InvalidApiKey, "the API key is not valid");
        let key = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(invalid)?;
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Compare against every key without stopping early, in constant time each.
        let mut found: Option<&str> = None;
        for k in &ctx.config.api_keys {
            if bool::from(k.sha256.ct_eq(&presented)) {
                found = Some(&k.name);
            }
        }
        let name = found.ok_or_else(invalid)?;
        tracing::Span::current().record("api_key", name);
        Ok(Caller {
            name: name.to_owned(),
        })
    }
}

/// `Json<T>` whose rejections are answered in the API's error format.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Ctx> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, ctx: &Ctx) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, ctx).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection, ctx.config.max_body_bytes)),
        }
    }
}

fn json_rejection(r: JsonRejection, limit: usize) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("request body is larger than {limit} bytes"),
        ),
        JsonRejection::JsonDataError(e) => ApiError::new(ErrorCode::InvalidBody, e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(ErrorCode::InvalidJson, e.body_text()),
        other => ApiError::new(ErrorCode::InvalidBody, other.body_text()),
    }
}

pub(crate) fn parse_user(s: &str) -> Result<UserId, ApiError> {
    UserId::parse(s).map_err(|e| ApiError::new(ErrorCode::InvalidUserId, e.0))
}

/// A configured app by name, or 404.
pub(crate) fn known_app<'a>(
    ctx: &'a Ctx,
    s: &str,
) -> Result<&'a crate::config::AppConfig, ApiError> {
    Ok(ctx.config.app_named(s)?)
}

impl From<crate::config::UnknownApp> for ApiError {
    fn from(e: crate::config::UnknownApp) -> Self {
        ApiError::new(ErrorCode::UnknownApp, e.to_string())
    }
}
