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
}

pub async fn inject(State(sim): State<Sim>, req: Request, next: Next) -> Response {
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
}
