//! Follower info routes (see [`crate::followers`]): `POST
//! /api/v1/apps/{app}/identities/{openid}/refresh` looks one identity up in WeChat now;
//! `POST` / `GET /api/v1/apps/{app}/follower-import` start an import of the app's
//! followers and show its progress.

use super::doc::api_errors;
use super::{ApiPath, Caller, no_fields};
use crate::config::{AppConfig, AppKind};
use crate::context::Ctx;
use crate::domain::OpenId;
use crate::followers::{Followers, LookupError, Outcome};
use crate::http::error::{ApiError, ErrorCode};
use crate::store::{FollowerImport, Identity};
use crate::wechat::{ErrorClass, WechatError};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(refresh))
        .routes(routes!(start_import, import_progress))
}

/// `{app}` and `{openid}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct RefreshPath {
    /// A configured Official Account's short name.
    app: String,
    /// The person's openid in that app.
    openid: String,
}

/// `{app}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct AppPath {
    /// A configured Official Account's short name.
    app: String,
}

/// The optional body of these routes: nothing to say yet.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct EmptyRequest {}

/// The identity as WeChat's follower info left it.
#[derive(Serialize, ToSchema)]
struct RefreshedBody {
    identity: Identity,
}

/// An import and where it is.
#[derive(Serialize, ToSchema)]
struct ImportBody {
    import: FollowerImport,
}

api_errors!(RefreshErrors:
    InvalidJson, InvalidBody, BodyTooLarge, InvalidOpenid, UnknownApp, NotOfficialAccount,
    WechatUnknownOpenid, TokenUnavailable, WechatRefused, WechatQuota, WechatError,
);

/// Reads the person's follower info (`cgi-bin/user/info`) now and stores it: unionid, follow
/// state and follow time. An unbound identity whose unionid is already bound to one user is
/// bound to that user; a bound identity is never re-pointed. An identity not stored yet is
/// created (WeChat knows the openid).
#[utoipa::path(
    post,
    path = "/api/v1/apps/{app}/identities/{openid}/refresh",
    tag = "users",
    params(RefreshPath),
    security(("api_key" = ["identities"])),
    request_body(content = Option<EmptyRequest>, description = "Optional: `{}`"),
    responses(
        (status = 200, description = "The identity, completed", body = RefreshedBody),
        RefreshErrors,
    )
)]
async fn refresh(
    State(ctx): State<Ctx>,
    Extension(followers): Extension<Followers>,
    caller: Caller,
    ApiPath((app, openid)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RefreshedBody>, ApiError> {
    no_fields(body, ctx.config.max_body_bytes)?;
    let app = official_account(caller.app(&ctx, &app)?)?;
    let openid =
        OpenId::parse(&openid).map_err(|e| ApiError::new(ErrorCode::InvalidOpenid, e.0))?;
    let outcomes = followers
        .look_up(app, std::slice::from_ref(&openid), "refresh")
        .await
        .map_err(lookup_error)?;
    match outcomes.into_iter().next() {
        Some(Outcome::Identity(identity)) => Ok(Json(RefreshedBody {
            identity: *identity,
        })),
        Some(Outcome::InvalidOpenid(_)) => Err(ApiError::new(
            ErrorCode::WechatUnknownOpenid,
            format!(
                "WeChat does not know openid {} for app {}",
                openid.redacted(),
                app.id
            ),
        )
        .with_errcode(40003)),
        // WeChat answered for another openid, or a snapshot identity was left alone.
        None => Err(ApiError::new(
            ErrorCode::WechatError,
            "WeChat's answer did not name the openid asked for",
        )),
    }
}

api_errors!(StartErrors:
    InvalidJson, InvalidBody, BodyTooLarge, UnknownApp, NotOfficialAccount, FollowerImportRunning,
);

/// Starts importing every follower of the Official Account (`user/get`, 10,000 a page,
/// and `batchget`): each follower's identity is stored with its unionid and follow time,
/// and bound when its unionid is already bound to one user. One instance of the fleet runs
/// it; another resumes it if that one dies. A finished or failed import is started afresh.
#[utoipa::path(
    post,
    path = "/api/v1/apps/{app}/follower-import",
    tag = "users",
    params(AppPath),
    security(("api_key" = ["identities"])),
    request_body(content = Option<EmptyRequest>, description = "Optional: `{}`"),
    responses(
        (status = 202, description = "Started; `GET` shows its progress", body = ImportBody),
        StartErrors,
    )
)]
async fn start_import(
    State(ctx): State<Ctx>,
    Extension(followers): Extension<Followers>,
    caller: Caller,
    ApiPath(app): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ImportBody>), ApiError> {
    no_fields(body, ctx.config.max_body_bytes)?;
    let app = official_account(caller.app(&ctx, &app)?)?;
    match followers.start_import(&app.id).await? {
        Ok(import) => Ok((StatusCode::ACCEPTED, Json(ImportBody { import }))),
        Err(running) => Err(ApiError::new(
            ErrorCode::FollowerImportRunning,
            format!(
                "an import of app {}'s followers is running ({} imported so far)",
                app.id, running.imported
            ),
        )
        .with_details(json!({ "import": running }))),
    }
}

api_errors!(ProgressErrors: UnknownApp, NotOfficialAccount, NoFollowerImport);

/// The app's latest follower import: `running` (with how far it got), `done` or `failed`.
#[utoipa::path(
    get,
    path = "/api/v1/apps/{app}/follower-import",
    tag = "users",
    params(AppPath),
    security(("api_key" = ["identities"])),
    responses(
        (status = 200, description = "The import and its progress", body = ImportBody),
        ProgressErrors,
    )
)]
async fn import_progress(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(app): ApiPath<String>,
) -> Result<Json<ImportBody>, ApiError> {
    let app = official_account(caller.app(&ctx, &app)?)?;
    let import = ctx.store.follower_import(&app.id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NoFollowerImport,
            format!("no import of app {}'s followers was started", app.id),
        )
    })?;
    Ok(Json(ImportBody { import }))
}

fn official_account(app: &AppConfig) -> Result<&AppConfig, ApiError> {
    if app.kind == AppKind::OfficialAccount {
        return Ok(app);
    }
    Err(ApiError::new(
        ErrorCode::NotOfficialAccount,
        format!(
            "app {} is a mini-program: followers and their info belong to Official Accounts",
            app.id
        ),
    ))
}

/// A failed lookup as the API answers it; WeChat's quota by its errcode's class.
fn lookup_error(e: LookupError) -> ApiError {
    match e {
        LookupError::Token(t) => t.into(),
        LookupError::Store(s) => s.into(),
        LookupError::Wechat(w) => match &w {
            WechatError::Api { code, .. } if code.class() == ErrorClass::DailyQuota => {
                ApiError::new(ErrorCode::WechatQuota, w.to_string()).with_errcode(code.code())
            }
            _ => w.into(),
        },
    }
}
