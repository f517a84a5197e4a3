//! The backend JSON API under `/api/v1`, authenticated by `Authorization: Bearer <key>`.
//!
//! Every route is registered through utoipa-axum's `routes!`, so the axum router and the
//! OpenAPI document ([`doc`]) come from one list and cannot drift apart.

pub mod doc;
mod events;
mod followers;
mod identities;
mod js_sdk;
mod ledger;
mod login_codes;
mod messages;
mod profiles;
mod scopes;
mod sessions;
mod tokens;
mod users;
mod webhooks;

use crate::config::ApiKey;
use crate::context::Ctx;
use crate::domain::{AppId, UserId};
use crate::http::error::{ApiError, ErrorCode};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri, header};
use serde::de::DeserializeOwned;
use serde_json::json;
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
        .merge(js_sdk::router())
        .merge(events::router())
        .merge(messages::router())
        .merge(ledger::router())
        .merge(sessions::router())
        .merge(identities::router())
        .merge(followers::router())
        .merge(webhooks::router())
}

/// The OpenAPI document of the API, as `GET /api/v1/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().into_openapi();
    utoipa::Modify::modify(&doc::PathErrors, &mut doc);
    doc
}

/// The API's routes, `GET /api/v1/openapi.json` and the Swagger UI at `/api/docs`.
pub fn router(max_body_bytes: usize) -> Router<Ctx> {
    let (api, mut openapi) = routes().split_for_parts();
    utoipa::Modify::modify(&doc::PathErrors, &mut openapi);
    api.method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
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

/// The backend that called, identified by its API key, already checked to hold the scope
/// its route needs (the route's `security` in the OpenAPI document names it). The apps it
/// may act on are checked by the handler, through [`Caller::app`] and friends, before
/// anything happens.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    key: ApiKey,
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
        let mut found: Option<&ApiKey> = None;
        for k in &ctx.config.api_keys {
            if bool::from(k.sha256.ct_eq(&presented)) {
                found = Some(k);
            }
        }
        let key = found.ok_or_else(invalid)?;
        tracing::Span::current().record("api_key", key.name.as_str());
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let Some(scope) = route.and_then(|r| scopes::of(&parts.method, r)) else {
            tracing::error!(route = ?route, method = %parts.method, "API route without a scope");
            return Err(ApiError::new(
                ErrorCode::InternalError,
                "this route names no scope; the cause is in the service log",
            ));
        };
        if !key.allows_scope(scope) {
            return Err(ApiError::new(
                ErrorCode::MissingScope,
                format!(
                    "the API key {:?} lacks the scope `{scope}` this route needs",
                    key.name
                ),
            )
            .with_details(json!({ "scope": scope.as_str() })));
        }
        Ok(Caller {
            name: key.name.clone(),
            key: key.clone(),
        })
    }
}

impl Caller {
    /// A configured app by the name the caller gave, if the key may act on it: 404
    /// `unknown_app`, or 403 `app_not_allowed`.
    pub(crate) fn app<'a>(
        &self,
        ctx: &'a Ctx,
        name: &str,
    ) -> Result<&'a crate::config::AppConfig, ApiError> {
        let app = ctx.config.app_named(name)?;
        self.check_app(&app.id)?;
        Ok(app)
    }

    /// 403 `app_not_allowed` unless the key may act on `app`.
    pub(crate) fn check_app(&self, app: &AppId) -> Result<(), ApiError> {
        if self.key.allows_app(app) {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::AppNotAllowed,
            format!("the API key {:?} may not act on app {app}", self.name),
        )
        .with_details(json!({ "app": app })))
    }

    /// Whether the key may act on `app` (for lists filtered to what the key may see).
    pub(crate) fn sees_app(&self, app: &AppId) -> bool {
        self.key.allows_app(app)
    }

    /// 403 `app_not_allowed` unless the key may act on every app: routes whose effect or
    /// answer spans apps (erasing a user, the webhooks) need this.
    pub(crate) fn check_every_app(&self) -> Result<(), ApiError> {
        if self.key.allows_every_app() {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::AppNotAllowed,
            format!(
                "the API key {:?} is limited to some apps; this route spans every app",
                self.name
            ),
        ))
    }
}

/// A path's parameters, whose rejections (invalid UTF-8 after percent-decoding) are
/// answered in the API's error format.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<Ctx> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, ctx).await {
            Ok(Path(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError::new(ErrorCode::InvalidPath, rejection.body_text())),
        }
    }
}

/// 405 for a method a route does not take; axum adds the `Allow` header.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not take {method} (see `Allow`)", uri.path()),
    )
}

/// The body of a route that takes no fields: empty, or `{}`.
pub(crate) fn no_fields(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<(), ApiError> {
    let body = body_bytes(body, limit)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
    if v.as_object().is_some_and(|o| o.is_empty()) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidBody,
            "this route takes no fields: send no body, or `{}`",
        ))
    }
}

/// A raw body, its rejection (over `max_body_bytes`) answered in the API's error format.
pub(crate) fn body_bytes(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::BodyTooLarge,
                format!("request body is larger than {limit} bytes"),
            )
        } else {
            ApiError::new(ErrorCode::InvalidBody, r.body_text())
        }
    })
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

impl From<crate::config::UnknownApp> for ApiError {
    fn from(e: crate::config::UnknownApp) -> Self {
        ApiError::new(ErrorCode::UnknownApp, e.to_string())
    }
}
