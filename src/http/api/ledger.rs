//! What a person allowed: subscribe-message acceptances, legacy form ids, muted categories.

use super::{ApiJson, Caller, parse_user};
use crate::config::AppConfig;
use crate::context::Ctx;
use crate::domain::{Category, Channel, OpenId, TemplateId, UserId};
use crate::error::ApiError;
use crate::store::FormIdKind;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// One acceptance request may add at most this many one-time sends.
const MAX_COUNT: i64 = 1000;

pub fn router() -> Router<Ctx> {
    Router::new()
        .route(
            "/api/v1/users/{user_id}/subscriptions",
            post(add_subscription).get(list_subscriptions),
        )
        .route("/api/v1/users/{user_id}/form-ids", post(add_form_id))
        .route(
            "/api/v1/users/{user_id}/preferences",
            put(set_preferences).get(get_preferences),
        )
}

/// The mini-program app named (or the only one) and the user's openid in it.
async fn mini_program_identity<'a>(
    ctx: &'a Ctx,
    user: &UserId,
    app: Option<&str>,
    channel: Channel,
) -> Result<(&'a AppConfig, OpenId), ApiError> {
    let app = ctx.outbox.app_for(channel, app)?;
    let identity = ctx
        .store
        .user_identity(user, &app.id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "no_identity",
                format!("user {user} has no identity in app {}", app.id),
            )
            .with_details(json!({ "app": app.id }))
        })?;
    Ok((app, identity.openid))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionRequest {
    app: Option<String>,
    template_id: String,
    #[serde(default = "one")]
    count: i64,
    #[serde(default)]
    long_term: bool,
}

fn one() -> i64 {
    1
}

/// Records acceptances the person made in the mini-program (wx.requestSubscribeMessage).
async fn add_subscription(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<SubscriptionRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = parse_user(&user_id)?;
    let template = TemplateId::parse(&req.template_id)
        .map_err(|e| ApiError::invalid("invalid_template_id", e.0))?;
    if !(0..=MAX_COUNT).contains(&req.count) || (req.count == 0 && !req.long_term) {
        return Err(ApiError::invalid(
            "invalid_count",
            format!("count must be from 1 to {MAX_COUNT} (or 0 with long_term)"),
        ));
    }
    let (app, openid) =
        mini_program_identity(&ctx, &user, req.app.as_deref(), Channel::Subscribe).await?;
    let sub = ctx
        .store
        .add_subscription(
            &app.id,
            &openid,
            &template,
            req.count,
            req.long_term,
            ctx.clock.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "app": app.id, "template_id": sub.template_id, "remaining": sub.remaining,
            "long_term": sub.long_term,
        })),
    ))
}

async fn list_subscriptions(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = parse_user(&user_id)?;
    let mut out = Vec::new();
    for identity in ctx.store.user_identities(&user).await? {
        for sub in ctx
            .store
            .subscriptions(&identity.app, &identity.openid)
            .await?
        {
            out.push(json!({
                "app": identity.app, "template_id": sub.template_id, "remaining": sub.remaining,
                "long_term": sub.long_term, "updated_at": sub.updated_at,
            }));
        }
    }
    Ok(Json(json!({ "subscriptions": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormIdRequest {
    app: Option<String>,
    form_id: Option<String>,
    prepay_id: Option<String>,
}

/// Stores a legacy form_id (one send) or prepay_id (three sends), each valid 7 days.
async fn add_form_id(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<FormIdRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = parse_user(&user_id)?;
    let (id, kind) = match (&req.form_id, &req.prepay_id) {
        (Some(f), None) => (f, FormIdKind::Form),
        (None, Some(p)) => (p, FormIdKind::Prepay),
        _ => {
            return Err(ApiError::invalid(
                "invalid_body",
                "send exactly one of form_id and prepay_id",
            ));
        }
    };
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "invalid_form_id",
            "a form_id or prepay_id is 1 to 128 printable ASCII characters",
        ));
    }
    let (app, openid) =
        mini_program_identity(&ctx, &user, req.app.as_deref(), Channel::Form).await?;
    let stored = ctx
        .store
        .add_form_id(&app.id, &openid, id, kind, ctx.clock.now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "app": app.id, "form_id": stored.form_id, "kind": stored.kind,
            "uses_left": stored.uses_left, "expires_at": stored.expires_at,
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Preferences {
    muted: Vec<String>,
}

/// Replaces the categories the user muted; a send in a muted category is refused.
async fn set_preferences(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<Preferences>,
) -> Result<Json<Value>, ApiError> {
    let user = parse_user(&user_id)?;
    let muted = req
        .muted
        .iter()
        .map(|c| Category::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid("invalid_category", e.0))?;
    ctx.store.set_muted(&user, &muted, ctx.clock.now()).await?;
    Ok(Json(json!({ "muted": ctx.store.muted(&user).await? })))
}

async fn get_preferences(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = parse_user(&user_id)?;
    Ok(Json(json!({ "muted": ctx.store.muted(&user).await? })))
}
