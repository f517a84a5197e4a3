//! A webhook receiver for the tests: an HTTP server on loopback that keeps every delivery,
//! checks its signature with the Standard Webhooks crate's own verifier against each
//! secret it is given, and answers what the test queued (200 by default).

use super::service::{Options, TestApp};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Secrets for the tests' endpoints (Standard Webhooks' `whsec_` and base64).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const NEW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One delivery as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Value,
    /// The body as sent, and the `webhook-*` headers: what another library verifies.
    pub raw: String,
    pub headers: Vec<(String, String)>,
    /// Which of the receiver's secrets verified it (by index).
    pub verified_by: Vec<usize>,
}

/// What the receiver answers to the next delivery.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// Answers only after this long (longer than the service waits).
    Hang(Duration),
    /// Answers 200 once the test releases the gate: an attempt the test keeps in flight.
    Hold(Arc<tokio::sync::Notify>),
}

#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    arrived: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct Shared {
    got: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    /// The ids of the requests that reached the receiver, answered or not.
    arrived: Arc<Mutex<Vec<String>>>,
    secrets: Arc<Vec<String>>,
    /// Added before every answer.
    latency: Duration,
}

impl Receiver {
    /// Starts a receiver that verifies with each of `secrets`.
    pub async fn start(secrets: &[&str]) -> Self {
        Self::start_slow(secrets, Duration::ZERO).await
    }

    /// A receiver that takes `latency` over each answer.
    pub async fn start_slow(secrets: &[&str], latency: Duration) -> Self {
        let shared = Shared {
            got: Arc::default(),
            replies: Arc::default(),
            arrived: Arc::default(),
            secrets: Arc::new(secrets.iter().map(|s| s.to_string()).collect()),
            latency,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            got: shared.got,
            replies: shared.replies,
            arrived: shared.arrived,
        }
    }

    /// Queues the answers to the next deliveries, in order.
    pub fn reply(&self, replies: &[Reply]) {
        self.replies.lock().unwrap().extend(replies.iter().cloned());
    }

    /// Waits (10 s at most) until `n` requests reached the receiver, answered or not;
    /// returns their `webhook-id`s.
    pub async fn arrived(&self, n: usize) -> Vec<String> {
        for _ in 0..1000 {
            let ids = self.arrived.lock().unwrap().clone();
            if ids.len() >= n {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the receiver never saw {n} requests");
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (10 s at most) until `pick` finds what it wants among the deliveries.
    pub async fn until<T>(&self, what: &str, pick: impl Fn(&[Received]) -> Option<T>) -> T {
        for _ in 0..1000 {
            if let Some(found) = pick(&self.received()) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let types: Vec<String> = self
            .received()
            .iter()
            .map(|r| r.body["type"].to_string())
            .collect();
        panic!("the receiver never got {what}; it got {types:?}");
    }

    /// Waits until at least `n` deliveries arrived; returns them all.
    pub async fn at_least(&self, n: usize) -> Vec<Received> {
        self.until(&format!("{n} deliveries"), |r| {
            (r.len() >= n).then(|| r.to_vec())
        })
        .await
    }

    /// Waits until an event of type `kind` arrived; returns the first.
    pub async fn event(&self, kind: &str) -> Received {
        self.until(kind, |r| r.iter().find(|e| e.body["type"] == kind).cloned())
            .await
    }
}

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let verified_by = s
        .secrets
        .iter()
        .enumerate()
        .filter(|(_, secret)| {
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(&body, &headers)
                .is_ok()
        })
        .map(|(i, _)| i)
        .collect();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    s.arrived.lock().unwrap().push(header("webhook-id"));
    let reply = s.replies.lock().unwrap().pop_front();
    match &reply {
        Some(Reply::Hang(d)) => tokio::time::sleep(*d).await,
        Some(Reply::Hold(gate)) => gate.notified().await,
        _ => {}
    }
    tokio::time::sleep(s.latency).await;
    s.got.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp").parse().unwrap_or(0),
        signature: header("webhook-signature"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: String::from_utf8_lossy(&body).into_owned(),
        headers: ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|h| (h.to_string(), header(h)))
            .collect(),
        verified_by,
    });
    match reply {
        Some(Reply::Status(c)) => StatusCode::from_u16(c).unwrap(),
        _ => StatusCode::OK,
    }
}

/// `[[webhooks]]` and `[webhook_delivery]` TOML for a test service: one endpoint named
/// `name` taking `events`, signed with `secrets`; polling fast, timing out at 300 ms, the
/// first retry after a minute (tests move the clock).
pub fn webhook_toml(name: &str, url: &str, events: &[&str], secrets: &[&str]) -> String {
    let list = |v: &[&str]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[[webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\nevents = [{}]\nsecrets = [{}]\n",
        list(events),
        list(secrets)
    )
}

/// `[webhook_delivery]` for tests.
pub const DELIVERY_TOML: &str = "[webhook_delivery]\npoll_interval_ms = 20\ntimeout_ms = 300\nlease_secs = 5\nbackoff_base_ms = 60000\nbackoff_max_ms = 3600000\nretry_for_secs = 86400\n";

/// A service with one endpoint `crm` taking `events`, and its receiver.
pub async fn with_receiver(events: &[&str], secrets: &[&str]) -> (TestApp, Receiver) {
    let receiver = Receiver::start(&[SECRET, NEW_SECRET]).await;
    let t = TestApp::spawn_with(Options {
        extra_toml: format!(
            "{}\n{DELIVERY_TOML}",
            webhook_toml("crm", &receiver.url, events, secrets)
        ),
        ..Options::default()
    })
    .await;
    (t, receiver)
}

/// The retry delay the endpoint is waiting out now, in seconds (rounded up).
pub async fn waiting_secs(t: &TestApp, last_attempt_ms: i64) -> i64 {
    let w: Value = t.api_json("/api/v1/webhooks").await;
    let next = w["webhooks"][0]["state"]["next_attempt_ms"]
        .as_i64()
        .unwrap();
    (next - last_attempt_ms + 999) / 1000
}

pub async fn attempts_of(t: &TestApp, event: &str, n: usize) -> Vec<Value> {
    for _ in 0..500 {
        let d: Value = t.api_json("/api/v1/webhooks/crm/deliveries").await;
        if let Some(x) = d["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["event"]["id"] == event)
        {
            let a = x["attempts"].as_array().unwrap();
            if a.len() >= n {
                return a.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("event {event} never had {n} attempts");
}
