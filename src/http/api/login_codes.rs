//! `POST /api/v1/login-codes/redeem`: a backend turns the `wxlink_code` it received on its
//! return_to URL into the person's identity.

use super::{ApiJson, Caller};
use crate::context::Ctx;
use crate::domain::hash_token;
use crate::error::ApiError;
use crate::store::CodeProblem;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn router() -> Router<Ctx> {
    Router::new().route("/api/v1/login-codes/redeem", post(redeem))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemRequest {
    code: String,
}

async fn redeem(
    State(ctx): State<Ctx>,
    _caller: Caller,
    ApiJson(req): ApiJson<RedeemRequest>,
) -> Result<Json<Value>, ApiError> {
    let now = ctx.clock.now();
    let (app, openid) = match ctx
        .store
        .redeem_login_code(&hash_token(&req.code), now)
        .await?
    {
        Ok(v) => v,
        Err(CodeProblem::Unknown) => {
            return Err(ApiError::not_found(
                "login_code_unknown",
                "no such login code",
            ));
        }
        Err(CodeProblem::Used) => {
            return Err(ApiError::Gone {
                code: "login_code_used",
                message: "this login code has already been redeemed".into(),
            });
        }
        Err(CodeProblem::Expired) => {
            return Err(ApiError::Gone {
                code: "login_code_expired",
                message: "this login code has expired".into(),
            });
        }
    };
    let identity = ctx.store.identity(&app, &openid).await?.ok_or_else(|| {
        ApiError::not_found(
            "identity_gone",
            "the identity behind this code no longer exists",
        )
    })?;
    Ok(Json(json!({
        "app": identity.app,
        "openid": identity.openid,
        "unionid": identity.unionid,
        "user_id": identity.user_id,
        "scope": identity.scope,
        "profile": identity.profile,
    })))
}
