//! Injected upstream trouble: WeChat busy (-1), WeChat down (HTTP 503, no JSON), added latency.
//! Set with `POST /_sim/faults`; applies to the WeChat API routes, never to `/_sim/`.

use super::Sim;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
    #[serde(default)]
    pub latency_ms: u64,
    /// The code answered in `errcode` mode.
    #[serde(default)]
    pub errcode: i64,
}

pub async fn inject(State(sim): State<Sim>, req: Request, next: Next) -> Response {
    let (mode, latency, errcode) = {
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
        (mode, f.latency_ms, f.errcode)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match mode {
        FaultMode::None => next.run(req).await,
        FaultMode::Busy => {
            sim.count("faults_busy");
            axum::Json(crate::wechat::types::ErrorBody::new(-1, "system error")).into_response()
        }
        FaultMode::Errcode => {
            sim.count(&format!("faults_errcode:{errcode}"));
            axum::Json(crate::wechat::types::ErrorBody::new(
                errcode,
                "injected by the simulator",
            ))
            .into_response()
        }
        FaultMode::Down => {
            sim.count("faults_down");
            (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response()
        }
    }
}

impl Sim {
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }
}
