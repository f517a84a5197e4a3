//! The simulator's mini-program login: `wx.login` codes minted through a control route for
//! a person and a mini-program, exchanged once at `/sns/jscode2session`.
//!
//! Rules kept: a code works once (40163 after), belongs to one app and dies after 5 minutes
//! (40029 for unknown, foreign or expired codes: WeChat does not tell these apart here,
//! UNCONFIRMED for expiry), 100 exchanges per person and app per minute (45011), and a
//! per-person "high-risk" switch (40226).

use super::{CODE_TTL_SECS, Sim, wx_error};
use crate::domain::random_alphanumeric;
use crate::wechat::types::Code2SessionResponse;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};

/// jscode2session calls allowed per person and app in any 60 seconds.
const LOGINS_PER_MINUTE: usize = 100;

#[derive(Debug, Clone)]
struct LoginCode {
    appid: String,
    person: String,
    issued_at: i64,
    used: bool,
}

#[derive(Default)]
pub struct LoginState {
    codes: HashMap<String, LoginCode>,
    /// (appid, person) -> times of recent jscode2session calls, oldest first.
    calls: HashMap<(String, String), VecDeque<i64>>,
    blocked: HashSet<String>,
    /// (appid, person) -> the session key of the latest successful login.
    session_keys: HashMap<(String, String), String>,
}

/// The WeChat API route (behind the fault injector).
pub fn router() -> Router<Sim> {
    Router::new().route("/sns/jscode2session", get(jscode2session))
}

/// The `/_sim/` control routes of mini-program login.
pub fn control_router() -> Router<Sim> {
    Router::new()
        .route("/_sim/login-codes", post(mint))
        .route("/_sim/people/{id}/block", post(block))
        .route("/_sim/people/{id}/unblock", post(unblock))
}

/// Why a `wx.login` code could not be minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintError {
    UnknownPerson,
    UnknownApp,
    NotMiniProgram,
}

impl Sim {
    /// What `wx.login` returns inside the mini-program `appid` for `person`.
    pub fn mint_login_code(&self, appid: &str, person: &str) -> Result<String, MintError> {
        if self.person(person).is_none() {
            return Err(MintError::UnknownPerson);
        }
        let kind = self.lock().apps.get(appid).map(|a| a.kind.clone());
        match kind.as_deref() {
            None => return Err(MintError::UnknownApp),
            Some("mini_program") => {}
            Some(_) => return Err(MintError::NotMiniProgram),
        }
        let code = random_alphanumeric(32);
        let issued_at = self.clock.now();
        self.lock().login.codes.insert(
            code.clone(),
            LoginCode {
                appid: appid.to_owned(),
                person: person.to_owned(),
                issued_at,
                used: false,
            },
        );
        self.count("login_codes_issued");
        Ok(code)
    }

    /// Marks a person high-risk (jscode2session answers 40226) or clears it.
    /// False when there is no such person.
    pub fn set_blocked(&self, person: &str, blocked: bool) -> bool {
        if self.person(person).is_none() {
            return false;
        }
        let mut st = self.lock();
        if blocked {
            st.login.blocked.insert(person.to_owned());
        } else {
            st.login.blocked.remove(person);
        }
        true
    }

    pub fn is_blocked(&self, person: &str) -> bool {
        self.lock().login.blocked.contains(person)
    }

    /// The session key handed out by the person's latest login to that mini-program, so
    /// tests can check it never leaves wxlink in clear.
    pub fn session_key_of(&self, appid: &str, person: &str) -> Option<String> {
        self.lock()
            .login
            .session_keys
            .get(&(appid.to_owned(), person.to_owned()))
            .cloned()
    }

    /// Records one call for the person; false when it is past the per-minute limit.
    fn take_login_slot(&self, appid: &str, person: &str) -> bool {
        let now = self.clock.now();
        let mut st = self.lock();
        let calls = st
            .login
            .calls
            .entry((appid.to_owned(), person.to_owned()))
            .or_default();
        while calls.front().is_some_and(|&t| t <= now - 60) {
            calls.pop_front();
        }
        calls.push_back(now);
        calls.len() <= LOGINS_PER_MINUTE
    }
}

async fn jscode2session(
    State(sim): State<Sim>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    sim.count("jscode2session");
    let appid = q.get("appid").map(String::as_str).unwrap_or("");
    if let Err(e) = sim.check_credentials(
        appid,
        Some(q.get("secret").map(String::as_str).unwrap_or("")),
    ) {
        return e;
    }
    if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return wx_error(40002, "invalid grant_type");
    }
    let Some(js_code) = q.get("js_code").filter(|c| !c.is_empty()) else {
        return wx_error(41008, "missing code");
    };
    let issued = sim
        .lock()
        .login
        .codes
        .get(js_code)
        .filter(|c| c.appid == appid)
        .cloned();
    let Some(issued) = issued else {
        sim.count("login_rejected_invalid");
        return wx_error(40029, "invalid code");
    };
    if !sim.take_login_slot(appid, &issued.person) {
        sim.count("login_rate_limited");
        return wx_error(
            45011,
            "api minute-quota reach limit  mustslower  retry next minute",
        );
    }
    if sim.is_blocked(&issued.person) {
        sim.count("login_blocked");
        return wx_error(40226, "invalid user, high risk user");
    }
    if issued.used {
        sim.count("login_rejected_used");
        return wx_error(40163, "code been used");
    }
    if sim.clock.now() >= issued.issued_at + CODE_TTL_SECS {
        sim.count("login_rejected_expired");
        return wx_error(40029, "invalid code");
    }
    let mut raw = [0u8; 16];
    rand::RngExt::fill(&mut rand::rng(), &mut raw);
    let session_key = base64::engine::general_purpose::STANDARD.encode(raw);
    {
        let mut st = sim.lock();
        if let Some(c) = st.login.codes.get_mut(js_code) {
            c.used = true;
        }
        st.login.session_keys.insert(
            (appid.to_owned(), issued.person.clone()),
            session_key.clone(),
        );
    }
    sim.count("logins");
    Json(Code2SessionResponse {
        openid: sim.openid_of(appid, &issued.person),
        session_key,
        unionid: sim.unionid_of(appid, &issued.person),
    })
    .into_response()
}

#[derive(Deserialize)]
struct MintRequest {
    person: String,
    appid: String,
}

async fn mint(State(sim): State<Sim>, Json(req): Json<MintRequest>) -> (StatusCode, Json<Value>) {
    match sim.mint_login_code(&req.appid, &req.person) {
        Ok(code) => (
            StatusCode::CREATED,
            Json(json!({
                "code": code,
                "expires_in": CODE_TTL_SECS,
                "openid": sim.openid_of(&req.appid, &req.person),
                "unionid": sim.unionid_of(&req.appid, &req.person),
            })),
        ),
        Err(e) => {
            let (status, message) = match e {
                MintError::UnknownPerson => (StatusCode::NOT_FOUND, "no such person"),
                MintError::UnknownApp => (StatusCode::NOT_FOUND, "no such app"),
                MintError::NotMiniProgram => (
                    StatusCode::BAD_REQUEST,
                    "wx.login codes exist only for mini_program apps",
                ),
            };
            (status, Json(json!({ "error": message })))
        }
    }
}

fn answer_blocked(sim: &Sim, id: &str, blocked: bool) -> (StatusCode, Json<Value>) {
    if sim.set_blocked(id, blocked) {
        (
            StatusCode::OK,
            Json(json!({ "id": id, "blocked": blocked })),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such person" })),
        )
    }
}

async fn block(State(sim): State<Sim>, Path(id): Path<String>) -> (StatusCode, Json<Value>) {
    answer_blocked(&sim, &id, true)
}

async fn unblock(State(sim): State<Sim>, Path(id): Path<String>) -> (StatusCode, Json<Value>) {
    answer_blocked(&sim, &id, false)
}
