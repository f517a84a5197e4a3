//! Users and their identities: look up, bind, unbind, and mint link tickets.

use super::doc::api_errors;
use super::{ApiJson, ApiPath, Caller, UserPath, body_bytes, parse_user};
use crate::config::AppKind;
use crate::context::Ctx;
use crate::domain::{EventId, OAuthScope, OpenId, ReturnTo, UnionId, UserId};
use crate::http::error::{ApiError, ErrorCode};
use crate::identity::link::{self, BindError};
use crate::store::{Erased, Identity, NewIdentity};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(get_user, delete_user))
        .routes(routes!(bind, unbind))
        .routes(routes!(create_ticket))
}

/// A user and every identity bound to them.
#[derive(Serialize, ToSchema)]
struct UserBody {
    user_id: UserId,
    identities: Vec<UserIdentity>,
}

/// An identity, with what its profile is worth.
#[derive(Serialize, ToSchema)]
struct UserIdentity {
    #[serde(flatten)]
    identity: Identity,
    /// Present when a profile is stored.
    profile_status: Option<ProfileStatus>,
}

/// How old the stored profile is, and whether `POST .../profile/refresh` can renew it.
#[derive(Serialize, ToSchema)]
struct ProfileStatus {
    /// Seconds since the profile was read from WeChat.
    age_secs: i64,
    /// A refresh can still read it from WeChat without the person.
    refreshable: bool,
    /// Unix seconds: when the refresh token expires (only while refreshable).
    refreshable_until: Option<i64>,
}

api_errors!(GetUserErrors:
    InvalidUserId, UserNotFound,
);

/// The user's identities across apps.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}",
    tag = "users",
    security(("api_key" = ["identities"])),
    params(UserPath),
    responses(
        (status = 200, description = "The user's identities", body = UserBody),
        GetUserErrors,
    )
)]
async fn get_user(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<UserBody>, ApiError> {
    let user = parse_user(&user_id)?;
    let mut identities = ctx.store.user_identities(&user).await?;
    // A key limited to some apps sees only the identities in them.
    identities.retain(|i| caller.sees_app(&i.app));
    if identities.is_empty() {
        return Err(ApiError::new(
            ErrorCode::UserNotFound,
            format!("no identity is bound to user {user}"),
        ));
    }
    let now = ctx.clock.timestamp();
    let mut shown = Vec::with_capacity(identities.len());
    for identity in identities {
        let profile_status = match identity.profile_at {
            Some(at) if identity.profile.is_some() => {
                let until = if identity.profile_stale {
                    None
                } else {
                    ctx.store
                        .refresh_expiry(&identity.app, &identity.openid)
                        .await?
                        .filter(|t| *t > now)
                };
                Some(ProfileStatus {
                    age_secs: (now.secs() - at.secs()).max(0),
                    refreshable: until.is_some(),
                    refreshable_until: until.map(|t| t.secs()),
                })
            }
            _ => None,
        };
        shown.push(UserIdentity {
            identity,
            profile_status,
        });
    }
    Ok(Json(UserBody {
        user_id: user,
        identities: shown,
    }))
}

/// What an erase removed.
#[derive(Serialize, ToSchema)]
struct ErasedBody {
    user_id: UserId,
    /// Counts per kind; all zero when there was nothing (left) to erase.
    erased: Erased,
    /// The `user.deleted` event recorded with the erase; null when nothing was erased.
    event_id: Option<EventId>,
}

api_errors!(DeleteUserErrors: InvalidUserId);

/// Erases a person: every identity bound to the user, their web tokens, session keys,
/// link tickets, login codes, consent and pushes; their messages keep their state and
/// history with the payload and openid erased (queued ones fail, `user deleted`).
/// Idempotent; the first erase that finds something records `user.deleted`. Spans every
/// app, so a key limited to some apps is refused.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{user_id}",
    tag = "users",
    security(("api_key" = ["users:delete"])),
    params(UserPath),
    responses(
        (status = 200, description = "Erased (or nothing was left to erase)", body = ErasedBody),
        DeleteUserErrors,
    )
)]
async fn delete_user(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<ErasedBody>, ApiError> {
    let user = parse_user(&user_id)?;
    caller.check_every_app()?;
    let (erased, event_id) = ctx.store.erase_user(&user, ctx.clock.timestamp()).await?;
    tracing::info!(user = %user, caller = %caller.name, identities = erased.identities, messages = erased.messages_erased, "user erased");
    Ok(Json(ErasedBody {
        user_id: user,
        erased,
        event_id,
    }))
}

/// The optional body of a bind: the unionid, when the backend knows it.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct BindRequest {
    unionid: Option<String>,
}

/// `{user_id}`, `{app}` and `{openid}` of one identity.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct IdentityPath {
    /// The company's own user id.
    user_id: String,
    /// A configured app's short name, e.g. `oa`.
    app: String,
    /// The person's openid in that app.
    openid: String,
}

/// The identity as bound.
#[derive(Serialize, ToSchema)]
struct BoundBody {
    identity: Identity,
}

api_errors!(BindErrors:
    InvalidJson, InvalidUserId, InvalidOpenid, InvalidUnionid, UnionidMismatch, UnknownApp,
    IdentityNotFound, IdentityConflict, BodyTooLarge, UnsupportedMediaType,
);

/// Binds an identity the backend learnt elsewhere (e.g. its own mini-program login). The
/// body is optional.
#[utoipa::path(
    put,
    path = "/api/v1/users/{user_id}/identities/{app}/{openid}",
    tag = "users",
    security(("api_key" = ["identities"])),
    params(IdentityPath),
    request_body(content = Option<BindRequest>, description = "Optional: `{\"unionid\"}`"),
    responses(
        (status = 200, description = "Bound (it may have been already)", body = BoundBody),
        BindErrors,
    )
)]
async fn bind(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath((user_id, app, openid)): ApiPath<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BoundBody>, ApiError> {
    let body = body_bytes(body, ctx.config.max_body_bytes)?;
    let user = parse_user(&user_id)?;
    let app_cfg = caller.app(&ctx, &app)?;
    let openid =
        OpenId::parse(&openid).map_err(|e| ApiError::new(ErrorCode::InvalidOpenid, e.0))?;
    let req: BindRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BindRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?
    };
    let unionid = req
        .unionid
        .as_deref()
        .map(UnionId::parse)
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::InvalidUnionid, e.0))?;
    let now = ctx.clock.timestamp();
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
        return Err(ApiError::new(
            ErrorCode::UnionidMismatch,
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
        Ok(Ok(identity)) => Ok(Json(BoundBody { identity })),
        Ok(Err(conflict)) => Err(conflict_error(conflict)),
        Err(BindError::NotFound) => Err(ApiError::new(
            ErrorCode::IdentityNotFound,
            "that identity cannot be bound (it is a snapshot-mode identity)",
        )),
        Err(BindError::Store(e)) => Err(e.into()),
    }
}

fn conflict_error(conflict: link::Conflict) -> ApiError {
    ApiError::new(ErrorCode::IdentityConflict, conflict.message()).with_details(json!({
        "existing_user_id": conflict.existing,
        "requested_user_id": conflict.requested,
        "via": conflict.via,
    }))
}

api_errors!(UnbindErrors:
    InvalidUserId, InvalidOpenid, UnknownApp, IdentityNotBound,
);

/// Unbinds that one identity; the user's other identities stay.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{user_id}/identities/{app}/{openid}",
    tag = "users",
    security(("api_key" = ["identities"])),
    params(IdentityPath),
    responses(
        (status = 204, description = "Unbound"),
        UnbindErrors,
    )
)]
async fn unbind(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath((user_id, app, openid)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = parse_user(&user_id)?;
    let app_cfg = caller.app(&ctx, &app)?;
    let openid =
        OpenId::parse(&openid).map_err(|e| ApiError::new(ErrorCode::InvalidOpenid, e.0))?;
    if ctx
        .store
        .unbind_identity(&app_cfg.id, &openid, &user, ctx.clock.timestamp())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorCode::IdentityNotBound,
            format!("that identity is not bound to user {user}"),
        ))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TicketRequest {
    /// An Official Account app.
    #[schema(example = "oa")]
    app: String,
    /// `snsapi_base` (default) or `snsapi_userinfo`.
    scope: Option<String>,
    /// Where the person lands afterwards, with a `wxlink_code`; must be under `return_to_allow`.
    return_to: Option<String>,
}

/// A minted link ticket.
#[derive(Serialize, ToSchema)]
struct TicketBody {
    /// Open it in the mini-program's web-view.
    url: String,
    /// Unix seconds; at most `ticket_ttl_secs` (10 minutes) away.
    expires_at: i64,
    scope: OAuthScope,
}

api_errors!(CreateTicketErrors:
    InvalidJson, InvalidBody, InvalidUserId, InvalidScope, ReturnToNotAllowed, NotWebApp,
    UnknownApp, BodyTooLarge, UnsupportedMediaType,
);

/// A single-use, short-lived authorization link for this user: what a mini-program opens
/// in its web-view (the jump-out flow).
#[utoipa::path(
    post,
    path = "/api/v1/users/{user_id}/link-tickets",
    tag = "users",
    security(("api_key" = ["identities"])),
    params(UserPath),
    request_body = TicketRequest,
    responses(
        (status = 201, description = "The link", body = TicketBody),
        CreateTicketErrors,
    )
)]
async fn create_ticket(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
    ApiJson(req): ApiJson<TicketRequest>,
) -> Result<(StatusCode, Json<TicketBody>), ApiError> {
    let user = parse_user(&user_id)?;
    let app_cfg = caller.app(&ctx, &req.app)?;
    if app_cfg.kind != AppKind::OfficialAccount {
        return Err(ApiError::new(
            ErrorCode::NotWebApp,
            format!(
                "app {} is a mini-program; link tickets need an Official Account app",
                app_cfg.id
            ),
        ));
    }
    let scope = OAuthScope::parse(req.scope.as_deref().unwrap_or("snsapi_base"))
        .map_err(|e| ApiError::new(ErrorCode::InvalidScope, e.0))?;
    let return_to = req
        .return_to
        .as_deref()
        .map(|r| ReturnTo::parse(r, &ctx.config.return_to_allow))
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::ReturnToNotAllowed, e.0))?;
    let (url, expires_at) =
        link::mint_ticket(&ctx, app_cfg, &user, scope, return_to.as_ref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(TicketBody {
            url,
            expires_at,
            scope,
        }),
    ))
}
