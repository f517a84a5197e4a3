//! Send by business user id: accept a message (checked, then stored before the answer),
//! read its status and history, list a user's messages.

use super::{ApiJson, Caller, parse_user};
use crate::context::Ctx;
use crate::domain::{IdempotencyKey, hash_token};
use crate::error::ApiError;
use crate::outbox::accept::SendRequest;
use crate::outbox::auto::AutoRequest;
use crate::store::Message;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::time::Duration;

const PAGE_DEFAULT: i64 = 50;
const PAGE_MAX: i64 = 200;

pub fn router() -> Router<Ctx> {
    Router::new()
        .route(
            "/api/v1/users/{user_id}/messages",
            post(send).get(list_for_user),
        )
        .route("/api/v1/messages/{id}", get(get_message))
}

/// `POST /api/v1/users/{user_id}/messages[?wait=SECONDS]`, `Idempotency-Key` honoured.
async fn send(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(user_id): Path<String>,
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
                    ApiError::invalid(
                        "invalid_idempotency_key",
                        "Idempotency-Key: use 1 to 64 letters, digits or any of _ - . :",
                    )
                })
        })
        .transpose()?;
    // The same request, whatever its key order or spacing, hashes the same.
    let request_hash = hash_token(&format!("{user}\n{body}"));
    let invalid = |e: serde_json::Error| ApiError::invalid("invalid_body", e.to_string());
    let accepted = if body.get("channel").and_then(Value::as_str) == Some("auto") {
        let req: AutoRequest = serde_json::from_value(body).map_err(invalid)?;
        ctx.outbox
            .accept_auto(&caller.name, &user, key.as_ref(), &req, &request_hash)
            .await?
    } else {
        let req: SendRequest = serde_json::from_value(body).map_err(invalid)?;
        ctx.outbox
            .accept(&caller.name, &user, key.as_ref(), &req, &request_hash)
            .await?
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
        Json(json!({ "id": accepted.id, "status": accepted.status, "channel": accepted.channel })),
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
        ApiError::invalid(
            "invalid_wait",
            format!("wait must be a whole number of seconds from 0 to {max}"),
        )
    })
}

async fn get_message(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = ctx.store.message(&id).await?.ok_or_else(|| {
        ApiError::not_found(
            "message_not_found",
            format!("no message {:?}", id.chars().take(40).collect::<String>()),
        )
    })?;
    Ok(Json(view(&ctx, m).await?))
}

/// A message as the API shows it; a queued message of a held app says until when.
async fn view(ctx: &Ctx, m: Message) -> Result<Value, ApiError> {
    let hold = if m.status == crate::domain::MessageStatus::Queued {
        ctx.store
            .channel_hold(&m.app, m.channel, ctx.clock.now_ms())
            .await?
    } else {
        None
    };
    let mut v = serde_json::to_value(&m).expect("a message serializes");
    if let Some((until_ms, reason)) = hold {
        v["held_until_ms"] = json!(until_ms);
        v["hold_reason"] = json!(reason);
    }
    // 43004 says only "not following"; the follow events we received say since when.
    if m.errcode == Some(43004) {
        let identity = ctx.store.identity(&m.app, &m.openid).await?;
        let unfollowed_at = identity
            .filter(|i| i.follows == Some(false))
            .and_then(|i| i.follow_changed_at);
        v["explanation"] = json!(match unfollowed_at {
            Some(at) => format!(
                "the person unfollowed the Official Account (at {at}, Unix time) and must follow it again to receive template messages"
            ),
            None => "the person does not follow the Official Account, which template messages need"
                .to_owned(),
        });
        if let Some(at) = unfollowed_at {
            v["unfollowed_at"] = json!(at);
        }
    }
    Ok(v)
}

/// `GET /api/v1/users/{user_id}/messages?limit=&before=`: newest first.
async fn list_for_user(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(user_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
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
                        ApiError::invalid(
                            "invalid_limit",
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
    Ok(Json(json!({ "messages": messages, "next": next })))
}
