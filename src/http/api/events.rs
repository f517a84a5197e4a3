//! `GET /api/v1/apps/{app}/events`: what WeChat pushed, with what became of it.

use super::doc::api_errors;
use super::{ApiPath, AppPath, Caller};
use crate::clock::Timestamp;
use crate::context::Ctx;
use crate::http::error::{ApiError, ErrorCode};
use crate::store::{EventFilter, StoredEvent};
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(list))
}

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// The event name (`TEMPLATESENDJOBFINISH`, `subscribe`...) or message type (`text`).
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Received at or after this unix time.
    since: Option<i64>,
    /// Events after this id (the previous page's `next_after`).
    after: Option<i64>,
    /// 1 to 1000, default 100.
    limit: Option<i64>,
}

/// One push with its fields parsed from the XML.
#[derive(Serialize, ToSchema)]
struct EventView {
    #[serde(flatten)]
    event: StoredEvent,
    /// The XML's elements as JSON (null if it does not parse).
    #[schema(value_type = Object)]
    fields: Value,
}

/// One page of events, oldest first.
#[derive(Serialize, ToSchema)]
struct EventsBody {
    events: Vec<EventView>,
    /// The `after` of the next page; null on the last one.
    next_after: Option<i64>,
}

api_errors!(ListEventsErrors:
    InvalidQuery, UnknownApp,
);

/// What WeChat pushed to this app (delivery reports, follows, subscription choices,
/// messages), oldest first, with what became of each.
#[utoipa::path(
    get,
    path = "/api/v1/apps/{app}/events",
    tag = "events",
    security(("api_key" = ["events"])),
    params(AppPath, ListQuery),
    responses(
        (status = 200, description = "One page", body = EventsBody),
        ListEventsErrors,
    )
)]
async fn list(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(app): ApiPath<String>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventsBody>, ApiError> {
    let app = caller.app(&ctx, &app)?;
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit must be 1..={MAX_LIMIT}"),
        ));
    }
    let filter = EventFilter {
        kind: q.kind.filter(|k| !k.is_empty()),
        since: q.since.map(Timestamp::from_secs),
        after_id: q.after,
        limit,
    };
    let events = ctx.store.list_events(&app.id, &filter).await?;
    let next_after = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    let events = events
        .into_iter()
        .map(|event| EventView {
            fields: crate::push::xml::parse(&event.xml)
                .map(|root| root.to_json())
                .unwrap_or(Value::Null),
            event,
        })
        .collect();
    Ok(Json(EventsBody { events, next_after }))
}
