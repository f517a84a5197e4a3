//! Injected upstream trouble: WeChat busy (-1), WeChat down (HTTP 503, no JSON), added
//! latency, a share of requests answered -1 or cut off after being processed, and the daily
//! quota running out after N sends. Set with `POST /_sim/faults`; applies to the WeChat API
//! routes, never to `/_sim/`.

use super::Sim;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    #[default]
    None,
    /// `{"errcode":-1,"errmsg":"system error"}`
    Busy,
    /// HTTP 503 with a plain-text body, as a broken proxy would answer.
    Down,
    /// `{"errcode": <errcode>}`, e.g. 40164 (IP not whitelisted) or 45011.
    Errcode,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    #[serde(default)]
    pub mode: FaultMode,
    /// How many requests the fault applies to; absent means until changed.
    #[serde(default)]
    pub count: Option<u64>,
    /// Added to every answer, after the request took effect.
    #[serde(default)]
    pub latency_ms: u64,
    /// The code answered in `errcode` mode.
    #[serde(default)]
    pub errcode: i64,
    /// This share of requests (0..=1) answers -1 without doing anything.
    #[serde(default)]
    pub busy_rate: f64,
    /// This share of requests is processed, then the connection is cut before the answer:
    /// the caller cannot know whether it worked.
    #[serde(default)]
    pub drop_rate: f64,
    /// Sends (template, subscribe, legacy) left before every send answers 45009.
    #[serde(default)]
    pub quota_after: Option<u64>,
    /// Only requests made for this appid (named in the query's `appid`, a JSON body's
    /// `appid`, or by a global access token issued to it): a test can fault one app while
    /// the service's background work for the others goes on untouched.
    #[serde(default)]
    pub appid: Option<String>,
}

pub async fn inject(State(sim): State<Sim>, req: Request, next: Next) -> Response {
    let scope = sim.lock().faults.appid.clone();
    let req = match scope {
        None => req,
        Some(appid) => {
            let (req, for_app) = sim.names_app(req, &appid).await;
            if !for_app {
                return next.run(req).await;
            }
            req
        }
    };
    let (mode, latency, errcode, busy_rate, drop_rate) = {
        let mut st = sim.lock();
        let f = &mut st.faults;
        let mode = match f.count {
            Some(0) => FaultMode::None,
            Some(ref mut n) if f.mode != FaultMode::None => {
                *n -= 1;
                f.mode
            }
            _ => f.mode,
        };
        (mode, f.latency_ms, f.errcode, f.busy_rate, f.drop_rate)
    };
    let roll = |rate: f64| rate > 0.0 && rand::rng().random_bool(rate.min(1.0));
    let answer = match mode {
        FaultMode::None if roll(busy_rate) => {
            sim.count("faults_busy");
            super::wx_error(-1, "system error")
        }
        FaultMode::None if roll(drop_rate) => {
            let done = next.run(req).await;
            sim.count("faults_dropped");
            cut_off(done)
        }
        FaultMode::None => next.run(req).await,
        FaultMode::Busy => {
            sim.count("faults_busy");
            super::wx_error(-1, "system error")
        }
        FaultMode::Errcode => {
            sim.count(&format!("faults_errcode:{errcode}"));
            super::wx_error(errcode, "injected by the simulator")
        }
        FaultMode::Down => {
            sim.count("faults_down");
            (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response()
        }
    };
    // The delay comes after the work, as on a slow network: a caller that gives up (or
    // dies) while waiting cannot tell whether its request took effect.
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    answer
}

/// The answer's head goes out, then the body fails: the connection is cut mid-answer.
fn cut_off(done: Response) -> Response {
    let (parts, _) = done.into_parts();
    let failing = futures_util::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::other("connection dropped by the simulator"))
    });
    Response::from_parts(parts, axum::body::Body::from_stream(failing))
}

impl Sim {
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Whether `req` is made for `appid`; the body is read (WeChat's bodies are small) and
    /// put back.
    async fn names_app(&self, req: Request, appid: &str) -> (Request, bool) {
        let query = req.uri().query().unwrap_or("");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let named = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        if let Some(a) = named("appid") {
            return (req, a == appid);
        }
        if let Some(token) = named("access_token") {
            let for_app = self.lock().tokens.appid_of(token) == Some(appid);
            return (req, for_app);
        }
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let for_app = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .is_some_and(|v| v["appid"] == appid);
        (Request::from_parts(parts, bytes.into()), for_app)
    }
}
