//! The webhook benchmark's receiver (bench/webhooks.sh): answers every delivery 200 at
//! once and keeps, per event type, how many arrived and how long after the event's time
//! (its lag). `GET /stats` reports counts and lag percentiles.
//!
//! Usage: webhook_sink [listen]   (default 127.0.0.1:19191)

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Default)]
struct Seen {
    counts: BTreeMap<String, u64>,
    ids: std::collections::HashSet<String>,
    lag_ms: Vec<f64>,
}

type Shared = Arc<Mutex<Seen>>;

async fn hook(State(s): State<Shared>, headers: axum::http::HeaderMap, Json(v): Json<Value>) {
    let now = OffsetDateTime::now_utc();
    let at = v["timestamp"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    let mut s = s.lock().unwrap();
    let id = headers
        .get("webhook-id")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !s.ids.insert(id) {
        *s.counts.entry("duplicates".into()).or_default() += 1;
        return;
    }
    *s.counts
        .entry(v["type"].as_str().unwrap_or("?").to_owned())
        .or_default() += 1;
    if let Some(at) = at {
        s.lag_ms.push((now - at).as_seconds_f64() * 1000.0);
    }
}

async fn stats(State(s): State<Shared>) -> Json<Value> {
    let s = s.lock().unwrap();
    let mut lag = s.lag_ms.clone();
    lag.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if lag.is_empty() {
            return 0.0;
        }
        lag[((lag.len() as f64 * p).ceil() as usize).clamp(1, lag.len()) - 1]
    };
    Json(json!({
        "counts": s.counts,
        "lag_p50_ms": pct(0.5),
        "lag_p99_ms": pct(0.99),
        "lag_max_ms": lag.last().copied().unwrap_or(0.0),
    }))
}

#[tokio::main]
async fn main() {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:19191".to_owned());
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/stats", get(stats))
        .with_state(Shared::default());
    let listener = tokio::net::TcpListener::bind(&listen).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
