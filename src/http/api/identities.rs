//! `GET /api/v1/apps/{app}/identities/{openid}`: the reverse lookup, from an openid WeChat
//! named (in a push, a message of its own) to the identity and its business user.

use super::doc::api_errors;
use super::{ApiPath, Caller};
use crate::context::Ctx;
use crate::domain::OpenId;
use crate::http::error::{ApiError, ErrorCode};
use crate::store::Identity;
use axum::Json;
use axum::extract::State;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(lookup))
}

/// `{app}` and `{openid}`.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct LookupPath {
    /// A configured app's short name.
    app: String,
    /// The person's openid in that app.
    openid: String,
}

api_errors!(LookupErrors: UnknownApp, InvalidOpenid, IdentityUnknown);

/// The identity behind an openid, with its `user_id` (null when nobody is bound).
#[utoipa::path(
    get,
    path = "/api/v1/apps/{app}/identities/{openid}",
    tag = "users",
    security(("api_key" = ["identities"])),
    params(LookupPath),
    responses((status = 200, description = "The identity", body = Identity), LookupErrors)
)]
async fn lookup(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath((app, openid)): ApiPath<(String, String)>,
) -> Result<Json<Identity>, ApiError> {
    let app = caller.app(&ctx, &app)?;
    let openid =
        OpenId::parse(&openid).map_err(|e| ApiError::new(ErrorCode::InvalidOpenid, e.0))?;
    let identity = ctx
        .store
        .identity(&app.id, &openid)
        .await?
        .filter(|i| !i.is_snapshot)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::IdentityUnknown,
                format!(
                    "no identity with openid {} is stored for app {}",
                    openid.redacted(),
                    app.id
                ),
            )
        })?;
    Ok(Json(identity))
}
