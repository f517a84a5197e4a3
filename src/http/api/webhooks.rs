//! `/api/v1/webhooks`: the configured endpoints and how they are doing, each endpoint's
//! deliveries with every attempt and answer, replays (one event, or every event since a
//! time, under their original ids), test events, and enabling a disabled endpoint.

use super::Caller;
use super::doc::api_errors;
use super::{ApiJson, ApiPath, no_fields};
use crate::clock::Timestamp;
use crate::context::Ctx;
use crate::domain::EventId;
use crate::http::error::{ApiError, ErrorCode};
use crate::store::{DeliveryView, EndpointState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(deliveries))
        .routes(routes!(replay))
        .routes(routes!(test))
        .routes(routes!(enable))
}

/// `{name}` in a route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct NamePath {
    /// The endpoint's `[[webhooks]] name`.
    name: String,
}

/// One configured endpoint and its state.
#[derive(Serialize, ToSchema)]
struct EndpointView {
    name: String,
    /// The URL without its query (which may hold a credential).
    url: String,
    /// The filter as configured.
    events: Vec<String>,
    /// How many secrets sign each delivery (two or more while rotating).
    secrets: usize,
    /// Null until the endpoint's first start-up.
    state: Option<EndpointState>,
}

#[derive(Serialize, ToSchema)]
struct EndpointsBody {
    webhooks: Vec<EndpointView>,
}

api_errors!(ListErrors: InternalError);

/// The configured endpoints, their queues and failures.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    security(("api_key" = ["webhooks"])),
    responses((status = 200, description = "Every endpoint", body = EndpointsBody), ListErrors)
)]
async fn list(State(ctx): State<Ctx>, caller: Caller) -> Result<Json<EndpointsBody>, ApiError> {
    caller.check_every_app()?;
    let states = ctx.store.webhook_endpoints().await?;
    let webhooks = ctx
        .webhooks
        .endpoints()
        .map(|e| {
            let mut url = e.url.clone();
            url.set_query(None);
            let _ = url.set_password(None);
            EndpointView {
                name: e.name.clone(),
                url: url.to_string(),
                events: e.events.clone(),
                secrets: e.secrets.len(),
                state: states.iter().find(|s| s.name == e.name).cloned(),
            }
        })
        .collect();
    Ok(Json(EndpointsBody { webhooks }))
}

fn known(ctx: &Ctx, name: &str) -> Result<String, ApiError> {
    ctx.webhooks
        .endpoint(name)
        .map(|e| e.name.clone())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownWebhook,
                format!(
                    "no webhook endpoint named {:?} is configured",
                    name.chars().take(40).collect::<String>()
                ),
            )
        })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    /// Deliveries of events before this time (unix milliseconds): the previous page's
    /// `next_before`.
    before: Option<i64>,
    /// 1 to 200, default 50.
    limit: Option<i64>,
}

/// One page of deliveries, newest event first.
#[derive(Serialize, ToSchema)]
struct DeliveriesBody {
    deliveries: Vec<DeliveryView>,
    /// The `before` of the next page; null on the last one.
    next_before: Option<i64>,
}

api_errors!(DeliveriesErrors: UnknownWebhook, InvalidQuery);

/// An endpoint's deliveries with every attempt and the receiver's answers.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{name}/deliveries",
    tag = "webhooks",
    security(("api_key" = ["webhooks"])),
    params(NamePath, DeliveriesQuery),
    responses((status = 200, description = "One page", body = DeliveriesBody), DeliveriesErrors)
)]
async fn deliveries(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    q: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveriesBody>, ApiError> {
    caller.check_every_app()?;
    let name = known(&ctx, &name)?;
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "limit must be 1..=200",
        ));
    }
    let deliveries = ctx
        .store
        .webhook_deliveries(&name, q.before.map(Timestamp::from_millis), limit)
        .await?;
    let next_before = (deliveries.len() as i64 == limit)
        .then(|| deliveries.last().map(|d| d.event.occurred_ms.millis()))
        .flatten();
    Ok(Json(DeliveriesBody {
        deliveries,
        next_before,
    }))
}

/// What to deliver again: one event (`event_id`) or every event since a time (`since`,
/// unix seconds) that the endpoint's filter takes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    event_id: Option<String>,
    since: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct ReplayBody {
    /// Events queued again; each keeps its original id (`webhook-id`).
    queued: u64,
}

api_errors!(ReplayErrors: UnknownWebhook, WebhookEventNotFound, InvalidBody, InvalidJson, UnsupportedMediaType, BodyTooLarge);

/// Queues events again for an endpoint, under their original ids, in their order.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{name}/replay",
    tag = "webhooks",
    security(("api_key" = ["webhooks"])),
    params(NamePath),
    request_body = ReplayRequest,
    responses((status = 202, description = "Queued", body = ReplayBody), ReplayErrors)
)]
async fn replay(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<(StatusCode, Json<ReplayBody>), ApiError> {
    caller.check_every_app()?;
    let name = known(&ctx, &name)?;
    let now = ctx.clock.timestamp();
    let queued = match (body.event_id, body.since) {
        (Some(id), None) => {
            let id = EventId::parse(&id).map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.0))?;
            if !ctx.store.replay_webhook_event(&name, &id, now).await? {
                return Err(ApiError::new(
                    ErrorCode::WebhookEventNotFound,
                    format!("no outgoing event has id {id}"),
                ));
            }
            1
        }
        (None, Some(since)) => {
            ctx.store
                .replay_webhook_since(&name, Timestamp::from_secs(since), now)
                .await?
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                "give either `event_id` or `since` (unix seconds)",
            ));
        }
    };
    Ok((StatusCode::ACCEPTED, Json(ReplayBody { queued })))
}

/// Nothing: the body may be empty or `{}`.
#[derive(ToSchema)]
struct NoFields {}

#[derive(Serialize, ToSchema)]
struct TestBody {
    /// The `webhook.test` event queued for the endpoint.
    event_id: EventId,
}

api_errors!(TestErrors: UnknownWebhook, InvalidJson, InvalidBody, BodyTooLarge);

/// Queues a `webhook.test` event for this endpoint only.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{name}/test",
    tag = "webhooks",
    security(("api_key" = ["webhooks"])),
    params(NamePath),
    request_body(content = Option<NoFields>, description = "Empty, or `{}`"),
    responses((status = 202, description = "Queued", body = TestBody), TestErrors)
)]
async fn test(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<TestBody>), ApiError> {
    no_fields(body, ctx.config.max_body_bytes)?;
    caller.check_every_app()?;
    let name = known(&ctx, &name)?;
    let event_id = ctx.webhooks.send_test(&name).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownWebhook,
            "the endpoint is not yet recorded; restart the instance",
        )
    })?;
    Ok((StatusCode::ACCEPTED, Json(TestBody { event_id })))
}

api_errors!(EnableErrors: UnknownWebhook, InvalidJson, InvalidBody, BodyTooLarge);

/// Enables an endpoint disabled after failing for the retry period: its waiting events
/// are delivered again, oldest first.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{name}/enable",
    tag = "webhooks",
    security(("api_key" = ["webhooks"])),
    params(NamePath),
    request_body(content = Option<NoFields>, description = "Empty, or `{}`"),
    responses((status = 204, description = "Enabled"), EnableErrors)
)]
async fn enable(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    no_fields(body, ctx.config.max_body_bytes)?;
    caller.check_every_app()?;
    let name = known(&ctx, &name)?;
    ctx.store.enable_webhook_endpoint(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What every delivery's body is (the OpenAPI document's `webhooks` describe it per type).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct WebhookPayload {
    /// The event's id: the same as the `webhook-id` header, across retries and replays.
    id: String,
    #[schema(value_type = crate::domain::EventType)]
    r#type: String,
    /// When it happened, RFC 3339 in UTC with milliseconds.
    timestamp: String,
    data: WebhookData,
}

/// The person an event is about, and the type's own fields (null or absent where they do
/// not apply).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct WebhookData {
    /// The business user: bound to the identity, or the one it was unlinked from; null
    /// when nobody is bound (yet).
    user_id: Option<String>,
    app: Option<String>,
    openid: Option<String>,
    unionid: Option<String>,
    /// `message.*`: the message, the caller's `Idempotency-Key`, the channel.
    message_id: Option<String>,
    idempotency_key: Option<String>,
    channel: Option<String>,
    /// `message.*`: WeChat's msgid, as a string.
    msgid: Option<String>,
    /// `message.rejected`: WeChat's errcode.
    errcode: Option<i64>,
    /// `message.failed`, `message.rejected`: why.
    reason: Option<String>,
    /// `subscription.*`: the template and WeChat's status (`accept`, `reject`, `ban`...)
    /// and event name.
    template_id: Option<String>,
    status: Option<String>,
    wechat_event: Option<String>,
    /// `follow.*`: WeChat's time of the (un)follow, unix seconds.
    wechat_time: Option<i64>,
    /// `identity.conflict`: who tried to link it, and through what (`openid`, `unionid`).
    requested_user_id: Option<String>,
    via: Option<String>,
    /// `authorization.declined`: the scope that was asked for.
    scope: Option<String>,
    /// `user.deleted`: what was erased, counts per kind (as `DELETE /api/v1/users/{user_id}`
    /// answered).
    #[schema(value_type = Option<Object>)]
    erased: Option<serde_json::Value>,
    /// `webhook.test`: the endpoint it was sent to.
    endpoint: Option<String>,
}

/// One `webhooks` entry per event type, the Standard Webhooks headers on each.
pub(super) struct Payloads;

impl utoipa::Modify for Payloads {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use crate::domain::EventType;
        use utoipa::openapi::path::{
            HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
        };
        use utoipa::openapi::request_body::RequestBodyBuilder;
        use utoipa::openapi::response::ResponseBuilder;
        use utoipa::openapi::{Content, ObjectBuilder, PathsBuilder, Ref, Required, Type};
        let header = |name: &str, what: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some(what))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        };
        let mut paths = PathsBuilder::new();
        for kind in EventType::ALL {
            let op = OperationBuilder::new()
                .tag("webhooks")
                .operation_id(Some(kind.as_str()))
                .summary(Some(summary(kind)))
                .description(Some(
                    "POSTed to each `[[webhooks]]` endpoint whose `events` take the type. Verify the signature with a Standard Webhooks library before trusting the body; deduplicate by `webhook-id`. Answer 2xx within `webhook_delivery.timeout_ms`; anything else is retried with backoff.",
                ))
                .parameter(header("webhook-id", "The event's id; the same on every retry and replay."))
                .parameter(header("webhook-timestamp", "Unix seconds of this attempt (the signer's clock)."))
                .parameter(header(
                    "webhook-signature",
                    "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one per active secret, space-separated.",
                ))
                .request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/json",
                            Content::new(Some(Ref::from_schema_name("WebhookPayload"))),
                        )
                        .required(Some(Required::True))
                        .build(),
                ))
                .response(
                    "2XX",
                    ResponseBuilder::new().description("Received; not sent again").build(),
                )
                .build();
            paths = paths.path(kind.as_str(), PathItem::new(HttpMethod::Post, op));
        }
        openapi.webhooks = Some(paths.build());
    }
}

fn summary(kind: crate::domain::EventType) -> &'static str {
    use crate::domain::EventType::*;
    match kind {
        IdentityLinked => {
            "An identity was bound to a user (by a link, a login, a unionid match or the API)"
        }
        IdentityUnlinked => "An identity was unbound from a user",
        IdentityConflict => {
            "Someone tried to link an identity (or its unionid) bound to another user; nothing changed"
        }
        UserDeleted => {
            "A user was erased (`DELETE /api/v1/users/{user_id}`): identities, tokens, consent; `erased` counts them"
        }
        MessageSent => "WeChat accepted a message (msgid)",
        MessageDelivered => "WeChat reported a message delivered",
        MessageFailed => "A message failed: WeChat's delivery report, or retries spent",
        MessageRejected => "WeChat refused a message for good (errcode)",
        FollowSubscribed => "The person followed the Official Account",
        FollowUnsubscribed => "The person unfollowed the Official Account",
        SubscriptionAccepted => "The person accepted a subscribe-message template",
        SubscriptionRejected => "The person rejected (or banned) a subscribe-message template",
        AuthorizationDeclined => "The person declined the authorization page",
        WebhookTest => "A test event asked for through the API",
    }
}
