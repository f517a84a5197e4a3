//! `POST /api/v1/login-codes/redeem`: a backend turns the `wxlink_code` it received on its
//! return_to URL into the person's identity.

use super::doc::api_errors;
use super::{ApiJson, Caller};
use crate::context::Ctx;
use crate::domain::{AppId, OAuthScope, OpenId, UnionId, UserId, hash_token};
use crate::http::error::{ApiError, ErrorCode};
use crate::store::CodeProblem;
use crate::wechat::types::UserInfo;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(redeem))
}

/// The `wxlink_code` a callback put on the return_to URL.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RedeemRequest {
    code: String,
}

/// The person behind a login code.
#[derive(Serialize, ToSchema)]
struct RedeemedBody {
    app: AppId,
    openid: OpenId,
    unionid: Option<UnionId>,
    /// The business user the identity is bound to; null when it is bound to nobody yet.
    user_id: Option<UserId>,
    scope: OAuthScope,
    /// With `snsapi_userinfo`.
    profile: Option<UserInfo>,
}

api_errors!(RedeemErrors:
    InvalidJson, InvalidBody, IdentityGone, LoginCodeUnknown, LoginCodeUsed, LoginCodeExpired,
    BodyTooLarge, UnsupportedMediaType,
);

/// Exchanges the one-time `wxlink_code` from a callback for the person's identity.
#[utoipa::path(
    post,
    path = "/api/v1/login-codes/redeem",
    tag = "login",
    security(("api_key" = ["identities"])),
    request_body = RedeemRequest,
    responses(
        (status = 200, description = "The identity", body = RedeemedBody),
        RedeemErrors,
    )
)]
async fn redeem(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiJson(req): ApiJson<RedeemRequest>,
) -> Result<Json<RedeemedBody>, ApiError> {
    let now = ctx.clock.timestamp();
    let hash = hash_token(&req.code);
    // Checked before the code is used up: a refused key must leave it to the right one.
    if let Some(app) = ctx.store.login_code_app(&hash).await? {
        caller.check_app(&app)?;
    }
    let (app, openid) = match ctx.store.redeem_login_code(&hash, now).await? {
        Ok(v) => v,
        Err(CodeProblem::Unknown) => {
            return Err(ApiError::new(
                ErrorCode::LoginCodeUnknown,
                "no such login code",
            ));
        }
        Err(CodeProblem::Used) => {
            return Err(ApiError::new(
                ErrorCode::LoginCodeUsed,
                "this login code has already been redeemed",
            ));
        }
        Err(CodeProblem::Expired) => {
            return Err(ApiError::new(
                ErrorCode::LoginCodeExpired,
                "this login code has expired",
            ));
        }
    };
    let identity = ctx.store.identity(&app, &openid).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::IdentityGone,
            "the identity behind this code no longer exists",
        )
    })?;
    Ok(Json(RedeemedBody {
        app: identity.app,
        openid: identity.openid,
        unionid: identity.unionid,
        user_id: identity.user_id,
        scope: identity.scope,
        profile: identity.profile,
    }))
}
