//! `POST /api/v1/users/{user_id}/identities/{app}/{openid}/profile/refresh`: a profile read
//! again from WeChat with the person's own web tokens (see [`crate::identity::profile`]).

use super::doc::api_errors;
use super::users::IdentityPath;
use super::{ApiPath, Caller, no_fields, parse_user};
use crate::config::AppKind;
use crate::context::Ctx;
use crate::domain::{OAuthScope, OpenId};
use crate::http::error::{ApiError, ErrorCode};
use crate::identity::link;
use crate::identity::profile::{self, Flights, Refreshed, WechatOrStore};
use crate::store::Identity;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(refresh_profile))
        .layer(Extension(Arc::new(Flights::default())))
}

/// The optional body of a refresh: nothing to say yet.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {}

/// The identity with its new profile.
#[derive(Serialize, ToSchema)]
struct RefreshedBody {
    identity: Identity,
}

api_errors!(RefreshErrors:
    InvalidJson, InvalidBody, BodyTooLarge, InvalidUserId, InvalidOpenid, UnknownApp, NotWebApp, IdentityNotBound,
    UserinfoAuthorizationNeeded, ProfileStale, WechatError,
);

/// Reads the person's profile (nickname, avatar...) again from WeChat and stores it. Uses
/// the stored web access token while it lives, else refreshes it once with the refresh
/// token (30 days from the person's snsapi_userinfo authorization). Concurrent calls for
/// one identity share one refresh.
#[utoipa::path(
    post,
    path = "/api/v1/users/{user_id}/identities/{app}/{openid}/profile/refresh",
    tag = "users",
    params(IdentityPath),
    security(("api_key" = ["identities"])),
    request_body(content = Option<RefreshRequest>, description = "Optional: `{}`"),
    responses(
        (status = 200, description = "The new profile, stored", body = RefreshedBody),
        RefreshErrors,
    )
)]
async fn refresh_profile(
    State(ctx): State<Ctx>,
    Extension(flights): Extension<Arc<Flights>>,
    caller: Caller,
    ApiPath((user_id, app, openid)): ApiPath<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RefreshedBody>, ApiError> {
    no_fields(body, ctx.config.max_body_bytes)?;
    let user = parse_user(&user_id)?;
    let app_cfg = caller.app(&ctx, &app)?;
    if app_cfg.kind != AppKind::OfficialAccount {
        return Err(ApiError::new(
            ErrorCode::NotWebApp,
            format!(
                "app {} is a mini-program: WeChat gives profiles through web authorization of an Official Account app",
                app_cfg.id
            ),
        ));
    }
    let openid =
        OpenId::parse(&openid).map_err(|e| ApiError::new(ErrorCode::InvalidOpenid, e.0))?;
    let outcome = match profile::refresh(&ctx, &flights, app_cfg, &user, &openid).await {
        Ok(o) => o,
        Err(WechatOrStore::Wechat(e)) => return Err(e.into()),
        Err(WechatOrStore::Store(e)) => return Err(e.into()),
    };
    let (code, message) = match outcome {
        Refreshed::Profile(identity) => {
            return Ok(Json(RefreshedBody {
                identity: *identity,
            }));
        }
        Refreshed::NotBound => {
            return Err(ApiError::new(
                ErrorCode::IdentityNotBound,
                format!("that identity is not bound to user {user}"),
            ));
        }
        Refreshed::BaseScope => (
            ErrorCode::UserinfoAuthorizationNeeded,
            "this identity was authorized with snsapi_base: a snsapi_userinfo authorization is needed for its profile".to_owned(),
        ),
        Refreshed::Stale(why) => (
            ErrorCode::ProfileStale,
            format!(
                "{}: the person must authorize again (snsapi_userinfo)",
                why.message()
            ),
        ),
    };
    let (url, expires_at) =
        link::mint_ticket(&ctx, app_cfg, &user, OAuthScope::UserInfo, None).await?;
    Err(ApiError::new(code, message)
        .with_details(json!({ "ticket_url": url, "ticket_expires_at": expires_at })))
}
