//! `GET /api/v1/apps/{app}/events`: what WeChat pushed, with what became of it.

use super::{Caller, known_app};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::store::EventFilter;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn router() -> Router<Ctx> {
    Router::new().route("/api/v1/apps/{app}/events", get(list))
}

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// The event name (`TEMPLATESENDJOBFINISH`, `subscribe`...) or message type (`text`).
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Received at or after this unix time.
    since: Option<i64>,
    /// Events after this id (the previous page's `next_after`).
    after: Option<i64>,
    limit: Option<i64>,
}

async fn list(
    State(ctx): State<Ctx>,
    _caller: Caller,
    Path(app): Path<String>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let app = known_app(&ctx, &app)?;
    let Query(q) = q.map_err(|e| ApiError::invalid("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_query",
            format!("limit must be 1..={MAX_LIMIT}"),
        ));
    }
    let filter = EventFilter {
        kind: q.kind.filter(|k| !k.is_empty()),
        since: q.since,
        after_id: q.after,
        limit,
    };
    let events = ctx.store.list_events(&app.id, &filter).await?;
    let next_after = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    let events: Vec<Value> = events
        .into_iter()
        .map(|e| {
            let fields = crate::push::xml::parse(&e.xml)
                .map(|root| root.to_json())
                .unwrap_or(Value::Null);
            let mut v = json!(e);
            v["fields"] = fields;
            v
        })
        .collect();
    Ok(Json(json!({ "events": events, "next_after": next_after })))
}
