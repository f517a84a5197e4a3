//! `POST /api/v1/apps/{app}/sessions`: mini-program login. The backend passes the code of
//! `wx.login` (and the business user id when it knows it) and learns who the person is.

use super::doc::api_errors;
use super::{ApiJson, ApiPath, AppPath, Caller, parse_user};
use crate::context::Ctx;
use crate::domain::{AppId, OpenId, UnionId, UserId};
use crate::http::error::{ApiError, ErrorCode};
use crate::identity::mini_program::{self, LoginError};
use crate::wechat::{ErrCode, WechatError};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// WeChat's per-person login limit is counted per minute.
const LOGIN_RETRY_AFTER_SECS: i64 = 60;
/// `wx.login` codes are short; anything much longer is not one.
const MAX_JS_CODE_LEN: usize = 128;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(create_session))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    /// The code `wx.login` returned in the mini-program (valid 5 minutes, once).
    js_code: String,
    /// The business user to bind the person to, when the backend knows it.
    user_id: Option<String>,
}

/// Who logged in. The session key is stored sealed and never returned.
#[derive(Serialize, ToSchema)]
struct SessionBody {
    /// Null: the person is new to you (no binding through the openid or the unionid).
    user_id: Option<UserId>,
    app: AppId,
    openid: OpenId,
    unionid: Option<UnionId>,
}

api_errors!(CreateSessionErrors:
    InvalidJson, InvalidBody, InvalidUserId, NotMiniProgram, JsCodeInvalid, UserBlocked,
    UnknownApp, IdentityConflict, JsCodeUsed, BodyTooLarge, UnsupportedMediaType, LoginRateLimited,
    WechatError, WechatRefused, StorageKeyMissing,
);

/// Mini-program login: exchanges the `wx.login` code at jscode2session, stores the
/// identity, and binds it to `user_id` or finds its user through the openid or unionid.
#[utoipa::path(
    post,
    path = "/api/v1/apps/{app}/sessions",
    tag = "login",
    security(("api_key" = ["identities"])),
    params(AppPath),
    request_body = SessionRequest,
    responses(
        (status = 200, description = "The person", body = SessionBody),
        CreateSessionErrors,
    )
)]
async fn create_session(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(app): ApiPath<String>,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<Json<SessionBody>, ApiError> {
    let app_cfg = caller.app(&ctx, &app)?;
    let user = req.user_id.as_deref().map(parse_user).transpose()?;
    let js_code = req.js_code.trim();
    if js_code.is_empty()
        || js_code.len() > MAX_JS_CODE_LEN
        || !js_code.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::new(
            ErrorCode::JsCodeInvalid,
            "js_code must be the code wx.login returned (1 to 128 visible ASCII characters)",
        ));
    }
    let login = mini_program::login(&ctx, app_cfg, js_code, user.as_ref())
        .await
        .map_err(login_error)?;
    Ok(Json(SessionBody {
        user_id: login.user_id,
        app: login.app,
        openid: login.openid,
        unionid: login.unionid,
    }))
}

/// The one mapping of login failures to API answers.
fn login_error(e: LoginError) -> ApiError {
    match e {
        LoginError::NotMiniProgram(app) => ApiError::new(
            ErrorCode::NotMiniProgram,
            format!("app {app} is an Official Account; sessions need a mini_program app"),
        ),
        LoginError::Conflict { conflict, login } => {
            ApiError::new(ErrorCode::IdentityConflict, conflict.message()).with_details(json!({
                "existing_user_id": conflict.existing,
                "requested_user_id": conflict.requested,
                "via": conflict.via,
                "app": login.app,
                "openid": login.openid,
                "unionid": login.unionid,
            }))
        }
        LoginError::Ambiguous { users, login } => ApiError::new(
            ErrorCode::IdentityConflict,
            format!(
                "this person's unionid is bound to several users ({}); bind the identity explicitly or unbind one of them",
                users
                    .iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_details(json!({
                "user_ids": users,
                "via": "unionid",
                "app": login.app,
                "openid": login.openid,
                "unionid": login.unionid,
        })),
        LoginError::NoStorageKey => ApiError::new(
            ErrorCode::StorageKeyMissing,
            "no storage_key is configured, so session keys cannot be stored",
        ),
        LoginError::Store(e) => ApiError::Store(e),
        LoginError::Wechat(e) => wechat_login_error(e),
    }
}

fn wechat_login_error(e: WechatError) -> ApiError {
    let Some(code) = e.code() else {
        return ApiError::Upstream(e);
    };
    let rejected = |api_code, message: &str, retry_after_secs| {
        tracing::info!(
            errcode = code.code(),
            "mini-program login refused by WeChat"
        );
        ApiError::new(api_code, message)
            .with_errcode(code.code())
            .retry_after(retry_after_secs)
    };
    match code {
        ErrCode::InvalidCode | ErrCode::CodeExpired | ErrCode::MissingCode => rejected(
            ErrorCode::JsCodeInvalid,
            "WeChat does not accept this js_code (mistyped, from another mini-program, or older than 5 minutes); call wx.login again",
            None,
        ),
        ErrCode::CodeUsed => rejected(
            ErrorCode::JsCodeUsed,
            "this js_code was already exchanged; each wx.login code works once: call wx.login again",
            None,
        ),
        ErrCode::MinuteQuota => rejected(
            ErrorCode::LoginRateLimited,
            "WeChat allows 100 logins per person per minute; try again in a minute",
            Some(LOGIN_RETRY_AFTER_SECS),
        ),
        ErrCode::HighRiskUser => rejected(
            ErrorCode::UserBlocked,
            "WeChat blocks this person's mini-program login as high-risk (40226)",
            None,
        ),
        ErrCode::InvalidAppId
        | ErrCode::InvalidAppSecret
        | ErrCode::AppSecretFrozen
        | ErrCode::IpNotWhitelisted
        | ErrCode::IpAwaitingConfirmation
        | ErrCode::IpAwaitingConfirmation2 => {
            tracing::error!(error = %e, "WeChat refused the mini-program's credentials");
            ApiError::new(
                ErrorCode::WechatRefused,
                format!(
                    "WeChat refused this mini-program's credentials or this server's IP: {}",
                    code.description()
                ),
            )
            .with_errcode(code.code())
        }
        _ => ApiError::Upstream(e),
    }
}
