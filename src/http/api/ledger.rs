//! What a person allowed: subscribe-message acceptances, legacy form ids, muted categories.

use super::doc::api_errors;
use super::{ApiJson, ApiPath, Caller, UserPath, parse_user};
use crate::config::AppConfig;
use crate::context::Ctx;
use crate::domain::{AppId, Category, Channel, OpenId, TemplateId, UserId};
use crate::http::error::{ApiError, ErrorCode};
use crate::store::FormIdKind;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// One acceptance request may add at most this many one-time sends.
const MAX_COUNT: i64 = 1000;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(add_subscription, list_subscriptions))
        .routes(routes!(add_form_id))
        .routes(routes!(set_preferences, get_preferences))
}

/// The app named (or the only one) that sends on `channel`, and the user's openid in it.
async fn channel_identity<'a>(
    ctx: &'a Ctx,
    caller: &Caller,
    user: &UserId,
    app: Option<&str>,
    channel: Channel,
) -> Result<(&'a AppConfig, OpenId), ApiError> {
    let app = ctx.outbox.app_for(channel, app)?;
    caller.check_app(&app.id)?;
    let identity = ctx
        .store
        .user_identity(user, &app.id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoIdentity,
                format!("user {user} has no identity in app {}", app.id),
            )
            .with_details(json!({ "app": app.id }))
        })?;
    Ok((app, identity.openid))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SubscriptionRequest {
    /// A mini-program (subscribe messages) or an Official Account (its subscribe
    /// notifications, `oa_subscribe`); may be left out when only one mini-program is
    /// configured.
    app: Option<String>,
    template_id: String,
    /// One-time sends the person accepted (1 to 1000; 0 only with `long_term`).
    #[serde(default = "one")]
    #[schema(default = 1)]
    count: i64,
    /// A long-term subscription (public-service templates).
    #[serde(default)]
    long_term: bool,
}

/// One line of a user's subscription ledger.
#[derive(Serialize, ToSchema)]
struct SubscriptionBody {
    app: AppId,
    template_id: String,
    /// One-time sends left.
    remaining: i64,
    long_term: bool,
    /// Unix seconds; in lists only.
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
}

/// The user's ledger in every app.
#[derive(Serialize, ToSchema)]
struct SubscriptionsBody {
    subscriptions: Vec<SubscriptionBody>,
}

fn one() -> i64 {
    1
}

api_errors!(AddSubscriptionErrors:
    InvalidJson, InvalidBody, InvalidUserId, InvalidTemplateId, AppRequired, NoAppForChannel,
    AppChannelMismatch, InvalidCount, UnknownApp, NoIdentity, BodyTooLarge, UnsupportedMediaType,
);

/// Records subscribe-message acceptances the person made in the mini-program
/// (`wx.requestSubscribeMessage`), or subscribe-notification acceptances made in an
/// Official Account page (`wx-open-subscribe`) that the backend learned of itself.
#[utoipa::path(
    post,
    path = "/api/v1/users/{user_id}/subscriptions",
    tag = "consent",
    security(("api_key" = ["send"])),
    params(UserPath),
    request_body = SubscriptionRequest,
    responses(
        (status = 201, description = "The ledger line after the addition", body = SubscriptionBody),
        AddSubscriptionErrors,
    )
)]
async fn add_subscription(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
    ApiJson(req): ApiJson<SubscriptionRequest>,
) -> Result<(StatusCode, Json<SubscriptionBody>), ApiError> {
    let user = parse_user(&user_id)?;
    let template = TemplateId::parse(&req.template_id)
        .map_err(|e| ApiError::new(ErrorCode::InvalidTemplateId, e.0))?;
    if !(0..=MAX_COUNT).contains(&req.count) || (req.count == 0 && !req.long_term) {
        return Err(ApiError::new(
            ErrorCode::InvalidCount,
            format!("count must be from 1 to {MAX_COUNT} (or 0 with long_term)"),
        ));
    }
    // An Official Account's acceptances are of its subscribe notifications (oa_subscribe);
    // without a named app, the one mini-program's.
    let channel = match req.app.as_deref().map(|n| ctx.config.app_named(n)) {
        Some(Ok(a)) if a.kind == crate::config::AppKind::OfficialAccount => Channel::OaSubscribe,
        _ => Channel::Subscribe,
    };
    let (app, openid) = channel_identity(&ctx, &caller, &user, req.app.as_deref(), channel).await?;
    let sub = ctx
        .store
        .add_subscription(
            &app.id,
            &openid,
            &template,
            req.count,
            req.long_term,
            ctx.clock.timestamp(),
        )
        .await?;
    // In the sandbox the acceptance was not made in a real mini-program: the simulated
    // person makes it now, or the simulator would refuse the send (43101).
    if let Some(sim) = &ctx.sandbox_sim {
        sim.accept_subscription_by_openid(
            app.wechat.appid.as_str(),
            openid.as_str(),
            template.as_str(),
            req.count.unsigned_abs(),
            req.long_term,
        );
    }
    Ok((
        StatusCode::CREATED,
        Json(SubscriptionBody {
            app: app.id.clone(),
            template_id: sub.template_id,
            remaining: sub.remaining,
            long_term: sub.long_term,
            updated_at: None,
        }),
    ))
}

api_errors!(ListSubscriptionsErrors:
    InvalidUserId,
);

/// The user's subscription ledger in every app.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}/subscriptions",
    tag = "consent",
    security(("api_key" = ["send"])),
    params(UserPath),
    responses(
        (status = 200, description = "Every ledger line of the user's identities (empty for an unknown user)", body = SubscriptionsBody),
        ListSubscriptionsErrors,
    )
)]
async fn list_subscriptions(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<SubscriptionsBody>, ApiError> {
    let user = parse_user(&user_id)?;
    let mut out = Vec::new();
    let identities = ctx.store.user_identities(&user).await?;
    for identity in identities.iter().filter(|i| caller.sees_app(&i.app)) {
        for sub in ctx
            .store
            .subscriptions(&identity.app, &identity.openid)
            .await?
        {
            out.push(SubscriptionBody {
                app: identity.app.clone(),
                template_id: sub.template_id,
                remaining: sub.remaining,
                long_term: sub.long_term,
                updated_at: Some(sub.updated_at.secs()),
            });
        }
    }
    Ok(Json(SubscriptionsBody { subscriptions: out }))
}

/// Exactly one of `form_id` and `prepay_id`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FormIdRequest {
    /// A mini-program app; may be left out when only one is configured.
    app: Option<String>,
    /// From a `<form report-submit>`: one send.
    form_id: Option<String>,
    /// From a payment: three sends.
    prepay_id: Option<String>,
}

/// A stored form_id or prepay_id.
#[derive(Serialize, ToSchema)]
struct FormIdBody {
    app: AppId,
    form_id: String,
    kind: FormIdKind,
    uses_left: i64,
    /// Unix seconds: 7 days after it was stored.
    expires_at: i64,
}

api_errors!(AddFormIdErrors:
    InvalidJson, InvalidBody, InvalidUserId, AppRequired, NoAppForChannel, AppChannelMismatch,
    InvalidFormId, UnknownApp, NoIdentity, BodyTooLarge, UnsupportedMediaType,
);

/// Stores a legacy form_id (one send) or prepay_id (three sends), each valid 7 days.
#[utoipa::path(
    post,
    path = "/api/v1/users/{user_id}/form-ids",
    tag = "consent",
    security(("api_key" = ["send"])),
    params(UserPath),
    request_body = FormIdRequest,
    responses(
        (status = 201, description = "Stored", body = FormIdBody),
        AddFormIdErrors,
    )
)]
async fn add_form_id(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
    ApiJson(req): ApiJson<FormIdRequest>,
) -> Result<(StatusCode, Json<FormIdBody>), ApiError> {
    let user = parse_user(&user_id)?;
    let (id, kind) = match (&req.form_id, &req.prepay_id) {
        (Some(f), None) => (f, FormIdKind::Form),
        (None, Some(p)) => (p, FormIdKind::Prepay),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                "send exactly one of form_id and prepay_id",
            ));
        }
    };
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::new(
            ErrorCode::InvalidFormId,
            "a form_id or prepay_id is 1 to 128 printable ASCII characters",
        ));
    }
    let (app, openid) =
        channel_identity(&ctx, &caller, &user, req.app.as_deref(), Channel::Form).await?;
    let stored = ctx
        .store
        .add_form_id(&app.id, &openid, id, kind, ctx.clock.timestamp())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(FormIdBody {
            app: app.id.clone(),
            form_id: stored.form_id,
            kind: stored.kind,
            uses_left: stored.uses_left,
            expires_at: stored.expires_at.secs(),
        }),
    ))
}

/// The categories a user muted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Preferences {
    /// e.g. `["marketing"]`; an empty list unmutes everything.
    muted: Vec<String>,
}

/// The categories the user muted, as stored.
#[derive(Serialize, ToSchema)]
struct PreferencesBody {
    muted: Vec<Category>,
}

api_errors!(SetPreferencesErrors:
    InvalidJson, InvalidBody, InvalidUserId, InvalidCategory, BodyTooLarge, UnsupportedMediaType,
);

/// Replaces the categories the user muted; a send in a muted `category` is refused.
#[utoipa::path(
    put,
    path = "/api/v1/users/{user_id}/preferences",
    tag = "consent",
    security(("api_key" = ["send"])),
    params(UserPath),
    request_body = Preferences,
    responses(
        (status = 200, description = "The muted categories now", body = PreferencesBody),
        SetPreferencesErrors,
    )
)]
async fn set_preferences(
    State(ctx): State<Ctx>,
    _caller: Caller,
    ApiPath(user_id): ApiPath<String>,
    ApiJson(req): ApiJson<Preferences>,
) -> Result<Json<PreferencesBody>, ApiError> {
    let user = parse_user(&user_id)?;
    let muted = req
        .muted
        .iter()
        .map(|c| Category::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::new(ErrorCode::InvalidCategory, e.0))?;
    ctx.store
        .set_muted(&user, &muted, ctx.clock.timestamp())
        .await?;
    Ok(Json(PreferencesBody {
        muted: ctx.store.muted(&user).await?,
    }))
}

api_errors!(GetPreferencesErrors:
    InvalidUserId,
);

/// The categories the user muted.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}/preferences",
    tag = "consent",
    security(("api_key" = ["send"])),
    params(UserPath),
    responses(
        (status = 200, description = "The muted categories (empty when none)", body = PreferencesBody),
        GetPreferencesErrors,
    )
)]
async fn get_preferences(
    State(ctx): State<Ctx>,
    _caller: Caller,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<PreferencesBody>, ApiError> {
    let user = parse_user(&user_id)?;
    Ok(Json(PreferencesBody {
        muted: ctx.store.muted(&user).await?,
    }))
}
