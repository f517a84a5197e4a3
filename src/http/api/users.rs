//! Users and their identities: look up, bind, unbind, and mint link tickets.

use super::{ApiJson, Caller, known_app, parse_user};
use crate::config::AppKind;
use crate::context::Ctx;
use crate::domain::{OAuthScope, OpenId, ReturnTo, UnionId};
use crate::error::ApiError;
use crate::link::{self, BindError};
use crate::store::NewIdentity;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn router() -> Router<Ctx> {
    Router::new()
        .route("/api/v1/users/{user_id}", get(get_user))
        .route(
            "/api/v1/users/{user_id}/identities/{app}/{openid}",
            put(bind).delete(unbind),
        )
        .route("/api/v1/users/{user_id}/link-tickets", post(create_ticket))
}

async fn get_user(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = parse_user(&user_id)?;
    let identities = ctx.store.user_identities(&user).await?;
    if identities.is_empty() {
        return Err(ApiError::not_found(
            "user_not_found",
            format!("no identity is bound to user {user}"),
        ));
    }
    Ok(Json(json!({ "user_id": user, "identities": identities })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BindRequest {
    unionid: Option<String>,
}

/// Binds an identity the backend learnt elsewhere (e.g. its own mini-program login).
/// The body is optional: `{"unionid": "..."}`.
async fn bind(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path((user_id, app, openid)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let user = parse_user(&user_id)?;
    let app_cfg = known_app(&ctx, &app)?;
    let openid = OpenId::parse(&openid).map_err(|e| ApiError::invalid("invalid_openid", e.0))?;
    let req: BindRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BindRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid("invalid_json", e.to_string()))?
    };
    let unionid = req
        .unionid
        .as_deref()
        .map(UnionId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("invalid_unionid", e.0))?;
    let now = ctx.clock.now();
    // A unionid that belongs to someone else is refused before it is stored: otherwise the
    // refused claim would stay on the openid and lead it to the other user later.
    if let Some(u) = &unionid
        && let Some(conflict) = link::unionid_conflict(&ctx.store, u, &user).await?
    {
        return Err(conflict_error(conflict));
    }
    if let Some(existing) = ctx.store.identity(&app_cfg.id, &openid).await?
        && let (Some(have), Some(given)) = (&existing.unionid, &unionid)
        && have != given
    {
        return Err(ApiError::invalid(
            "unionid_mismatch",
            "this identity is stored with a different unionid",
        ));
    }
    ctx.store
        .upsert_identity(
            &NewIdentity {
                app: app_cfg.id.clone(),
                openid: openid.clone(),
                unionid,
                scope: OAuthScope::Base,
                profile: None,
                is_snapshot: false,
            },
            now,
        )
        .await?;
    match link::bind_user(&ctx.store, &app_cfg.id, &openid, &user, now).await {
        Ok(Ok(identity)) => Ok(Json(json!({ "identity": identity }))),
        Ok(Err(conflict)) => Err(conflict_error(conflict)),
        Err(BindError::NotFound) => Err(ApiError::not_found(
            "identity_not_found",
            "that identity cannot be bound (it is a snapshot-mode identity)",
        )),
        Err(BindError::Store(e)) => Err(e.into()),
    }
}

fn conflict_error(conflict: link::Conflict) -> ApiError {
    ApiError::Conflict {
        code: "identity_conflict",
        message: conflict.message(),
        details: json!({
            "existing_user_id": conflict.existing,
            "requested_user_id": conflict.requested,
            "via": conflict.via,
        }),
    }
}

async fn unbind(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path((user_id, app, openid)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = parse_user(&user_id)?;
    let app_cfg = known_app(&ctx, &app)?;
    let openid = OpenId::parse(&openid).map_err(|e| ApiError::invalid("invalid_openid", e.0))?;
    if ctx
        .store
        .unbind_identity(&app_cfg.id, &openid, &user, ctx.clock.now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "identity_not_bound",
            format!("that identity is not bound to user {user}"),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketRequest {
    app: String,
    scope: Option<String>,
    return_to: Option<String>,
}

/// A single-use authorization link for this user: the mini-program jump-out URL.
async fn create_ticket(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<TicketRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = parse_user(&user_id)?;
    let app_cfg = known_app(&ctx, &req.app)?;
    if app_cfg.kind != AppKind::OfficialAccount {
        return Err(ApiError::invalid(
            "not_web_app",
            format!(
                "app {} is a mini-program; link tickets need an Official Account app",
                app_cfg.id
            ),
        ));
    }
    let scope = OAuthScope::parse(req.scope.as_deref().unwrap_or("snsapi_base"))
        .map_err(|e| ApiError::invalid("invalid_scope", e.0))?;
    let return_to = req
        .return_to
        .as_deref()
        .map(|r| ReturnTo::parse(r, &ctx.config.return_to_allow))
        .transpose()
        .map_err(|e| ApiError::invalid("return_to_not_allowed", e.0))?;
    let (url, expires_at) =
        link::mint_ticket(&ctx, app_cfg, &user, scope, return_to.as_ref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "url": url, "expires_at": expires_at, "scope": scope })),
    ))
}
