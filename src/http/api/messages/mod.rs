//! Send by business user id: accept a message (checked, then stored before the answer),
//! read its status and history, list a user's messages. The request as sent and its
//! parsing are in [`wire`]; the outbox's refusals become API errors in [`refusal`].

mod custom_wire;
mod refusal;
pub mod wire;

use super::doc::api_errors;
use super::{ApiJson, ApiPath, Caller, UserPath, parse_user};
use crate::clock::Timestamp;
use crate::context::Ctx;
use crate::domain::{Channel, IdempotencyKey, MessageId, MessageStatus};
use crate::http::error::{ApiError, ErrorCode};
use crate::store::Message;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wire::{AutoRequest, CustomRequest, Request, SendRequest};

const PAGE_DEFAULT: i64 = 50;
const PAGE_MAX: i64 = 200;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(send, list_for_user))
        .routes(routes!(get_message))
}

/// A message stored and queued.
#[derive(Serialize, ToSchema)]
struct AcceptedBody {
    id: MessageId,
    /// `queued` (a replayed request answers its message's status now).
    status: MessageStatus,
    /// The channel it goes by: the one asked for, or the one `auto` chose.
    channel: Channel,
}

/// A message for one channel, or `"channel": "auto"` with a message for each.
#[derive(ToSchema)]
#[serde(untagged)]
// Only a schema, never made.
#[allow(dead_code, clippy::large_enum_variant)]
enum SendBody {
    Channel(SendRequest),
    Auto(Box<AutoRequest>),
    Custom(CustomRequest),
}

/// A message as the API shows it: while its app's channel is held (45009, the daily
/// quota), a queued message says until when.
#[derive(Serialize, ToSchema)]
struct MessageView {
    #[serde(flatten)]
    message: Message,
    /// Unix milliseconds: when the app's channel may send again.
    #[serde(skip_serializing_if = "Option::is_none")]
    held_until_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hold_reason: Option<String>,
    /// For a 43004 rejection: why, in words, from the follow events WeChat pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<String>,
    /// For a 43004 rejection: when the person unfollowed (Unix seconds), if we know.
    #[serde(skip_serializing_if = "Option::is_none")]
    unfollowed_at: Option<i64>,
}

/// `?wait=` of a send.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct SendQuery {
    /// Seconds to wait for WeChat's outcome (0 to `outbox.max_wait_secs`, default 0).
    wait: Option<u64>,
}

api_errors!(SendErrors:
    InvalidJson, InvalidBody, InvalidUserId, InvalidChannel, InvalidTemplateId, InvalidCategory,
    InvalidWait, InvalidIdempotencyKey, FieldNotForChannel, AppRequired, NoAppForChannel,
    AppChannelMismatch, DataKeysMismatch, InvalidData, UnknownApp, NoIdentity, UnknownTemplate,
    Muted, NoSubscription, NoFormId, NoChannel, CustomWindowClosed, IdempotencyConflict, BodyTooLarge,
    UnsupportedMediaType, TemplatesUnavailable, IdempotencyRace,
);

/// Checks a message against WeChat's rules, stores it, and answers once it is durable; the
/// outbox sends it. `Idempotency-Key` makes a retried request answer the same message.
#[utoipa::path(
    post,
    path = "/api/v1/users/{user_id}/messages",
    tag = "messages",
    security(("api_key" = ["send"])),
    params(
        UserPath,
        SendQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 64 letters, digits or any of `_ - . :`; per API key. The same key with the same request answers the same message (`Idempotent-Replayed: true`); with another request, 409 `idempotency_conflict`"),
    ),
    request_body = SendBody,
    responses(
        (status = 202, description = "Stored and queued", body = AcceptedBody,
         headers(("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same key"))),
        (status = 200, description = "With `wait`: WeChat's outcome came in time (sent, rejected, failed)", body = MessageView),
        SendErrors,
    )
)]
async fn send(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let user = parse_user(&user_id)?;
    let wait = wait_secs(query.as_deref(), ctx.config.outbox.max_wait_secs)?;
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| IdempotencyKey::parse(v.trim()).ok())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidIdempotencyKey,
                        "Idempotency-Key: use 1 to 64 letters, digits or any of _ - . :",
                    )
                })
        })
        .transpose()?;
    let idempotency = wire::idempotency(key, &user, &body);
    let outbox = &ctx.outbox;
    let accepted = match Request::from_json(body)? {
        Request::One(req) => {
            let draft = req.draft(outbox)?;
            caller.check_app(&draft.app)?;
            outbox
                .accept(&caller.name, &user, idempotency.as_ref(), &draft)
                .await?
        }
        Request::Custom(req) => {
            let draft = req.draft(outbox)?;
            caller.check_app(&draft.app)?;
            outbox
                .accept_custom(&caller.name, &user, idempotency.as_ref(), &draft)
                .await?
        }
        Request::Auto(req) => {
            let draft = req.draft(outbox)?;
            for app in draft.apps() {
                caller.check_app(app)?;
            }
            outbox
                .accept_auto(&caller.name, &user, idempotency.as_ref(), &draft)
                .await?
        }
    };
    if wait > 0
        && let Some(m) = ctx
            .outbox
            .wait_settled(&accepted.id, Duration::from_secs(wait))
            .await?
        && m.status.is_settled()
    {
        return Ok(Json(view(&ctx, m).await?).into_response());
    }
    let mut response = (
        StatusCode::ACCEPTED,
        Json(AcceptedBody {
            id: accepted.id,
            status: accepted.status,
            channel: accepted.channel,
        }),
    )
        .into_response();
    if accepted.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `?wait=SECONDS`, at most the configured `outbox.max_wait_secs`.
fn wait_secs(query: Option<&str>, max: u64) -> Result<u64, ApiError> {
    let Some(v) = query
        .into_iter()
        .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "wait")
        .map(|(_, v)| v)
    else {
        return Ok(0);
    };
    v.parse::<u64>().ok().filter(|s| *s <= max).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidWait,
            format!("wait must be a whole number of seconds from 0 to {max}"),
        )
    })
}

/// `{id}` of a message.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct MessagePath {
    /// The id a send answered.
    id: String,
}

api_errors!(GetMessageErrors:
    MessageNotFound,
);

/// A message: its status, WeChat's answer and its whole history.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}",
    tag = "messages",
    security(("api_key" = ["send"])),
    params(MessagePath),
    responses(
        (status = 200, description = "The message", body = MessageView),
        GetMessageErrors,
    )
)]
async fn get_message(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MessageView>, ApiError> {
    let found = match MessageId::parse(&id) {
        Ok(id) => ctx.store.message(&id).await?,
        // Not an id we would hand out: no message has it.
        Err(_) => None,
    };
    let m = found.ok_or_else(|| {
        ApiError::new(
            ErrorCode::MessageNotFound,
            format!("no message {:?}", id.chars().take(40).collect::<String>()),
        )
    })?;
    caller.check_app(&m.app)?;
    Ok(Json(view(&ctx, m).await?))
}

/// A message as the API shows it; a queued message of a held app says until when.
async fn view(ctx: &Ctx, m: Message) -> Result<MessageView, ApiError> {
    let hold = if m.status == MessageStatus::Queued {
        ctx.store
            .channel_hold(&m.app, m.channel, ctx.clock.timestamp())
            .await?
    } else {
        None
    };
    let (held_until_ms, hold_reason) = hold.unzip();
    // 43004 says only "not following"; the follow events we received say since when.
    let (mut explanation, mut unfollowed_at) = (None, None);
    if m.errcode == Some(43004) {
        let identity = ctx.store.identity(&m.app, &m.openid).await?;
        unfollowed_at = identity
            .filter(|i| i.follows == Some(false))
            .and_then(|i| i.follow_changed_at);
        explanation = Some(match unfollowed_at {
            Some(at) => format!(
                "the person unfollowed the Official Account (at {}, Unix time) and must follow it again to receive template messages",
                at.secs()
            ),
            None => "the person does not follow the Official Account, which template messages need"
                .to_owned(),
        });
    }
    Ok(MessageView {
        message: m,
        held_until_ms: held_until_ms.map(Timestamp::millis),
        hold_reason,
        explanation,
        unfollowed_at: unfollowed_at.map(Timestamp::secs),
    })
}

/// `?limit=&before=` of a user's messages.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQuery {
    /// 1 to 200, default 50.
    limit: Option<i64>,
    /// The previous page's `next`.
    before: Option<String>,
}

/// One page of a user's messages.
#[derive(Serialize, ToSchema)]
struct MessagesBody {
    messages: Vec<Message>,
    /// The `before` of the next page; null on the last one.
    next: Option<MessageId>,
}

api_errors!(ListForUserErrors:
    InvalidUserId, InvalidLimit,
);

/// The user's messages, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}/messages",
    tag = "messages",
    security(("api_key" = ["send"])),
    params(UserPath, ListQuery),
    responses(
        (status = 200, description = "One page", body = MessagesBody),
        ListForUserErrors,
    )
)]
async fn list_for_user(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<MessagesBody>, ApiError> {
    let user = parse_user(&user_id)?;
    let mut limit = PAGE_DEFAULT;
    let mut before = None;
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=PAGE_MAX).contains(n))
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidLimit,
                            format!("limit must be from 1 to {PAGE_MAX}"),
                        )
                    })?
            }
            "before" => before = Some(v.into_owned()),
            _ => {}
        }
    }
    let messages = ctx
        .store
        .user_messages(&user, before.as_deref(), limit)
        .await?;
    let next = (messages.len() as i64 == limit)
        .then(|| messages.last().map(|m| m.id.clone()))
        .flatten();
    // A key limited to some apps sees only their messages (a page may come out shorter).
    let mut messages = messages;
    messages.retain(|m| caller.sees_app(&m.app));
    Ok(Json(MessagesBody { messages, next }))
}
