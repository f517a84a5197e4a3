//! The global access token: `/cgi-bin/token` (classic) and `/cgi-bin/stable_token`, and the
//! check every API taking `access_token` goes through.
//!
//! Classic: each fetch issues a new token; the previous one keeps working for 5 minutes.
//! Stable: the same token while valid, a new one in its last 5 minutes (both then work);
//! `force_refresh` issues a new one and kills the old at once (UNCONFIRMED whether WeChat
//! keeps an overlap there; we take the strict reading), 20 a day, 30 s apart.

use super::{Sim, WxBody, wx_error};
use crate::clock::beijing_day;
use crate::domain::random_alphanumeric;
use crate::wechat::types::AccessTokenResponse;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::HashMap;

const CLASSIC_DAILY_LIMIT: u64 = 2000;
const STABLE_DAILY_LIMIT: u64 = 500_000;
const FORCE_DAILY_LIMIT: u64 = 20;
const FORCE_MIN_INTERVAL_SECS: i64 = 30;
const OVERLAP_SECS: i64 = 300;

#[derive(Debug, Clone)]
struct IssuedToken {
    appid: String,
    expires_at: i64,
    /// Replaced by a newer token: refused with 40001 ("not latest") rather than 42001.
    superseded: bool,
}

#[derive(Default)]
pub struct TokenState {
    tokens: HashMap<String, IssuedToken>,
    classic_current: HashMap<String, String>,
    stable_current: HashMap<String, String>,
    /// (appid, what, Beijing day) -> calls
    daily: HashMap<(String, &'static str, i64), u64>,
    last_force: HashMap<String, i64>,
}

impl TokenState {
    /// Every global access token issued so far.
    pub(super) fn issued(&self) -> impl Iterator<Item = &String> {
        self.tokens.keys()
    }

    pub(super) fn appid_of(&self, token: &str) -> Option<&str> {
        self.tokens.get(token).map(|t| t.appid.as_str())
    }
}

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/cgi-bin/token", get(classic))
        .route("/cgi-bin/stable_token", post(stable))
        .route("/cgi-bin/get_api_domain_ip", get(api_domain_ip))
}

impl Sim {
    /// Counts one call against a daily quota; false once the quota is spent.
    pub(super) fn take_quota(&self, appid: &str, what: &'static str, limit: u64) -> bool {
        let day = beijing_day(self.clock.now());
        let mut st = self.lock();
        let n = st
            .tokens
            .daily
            .entry((appid.to_owned(), what, day))
            .or_default();
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    fn issue(&self, app: &super::SimApp) -> (String, i64) {
        let token = random_alphanumeric(136);
        let expires_at = self.clock.now() + app.token_ttl();
        self.lock().tokens.tokens.insert(
            token.clone(),
            IssuedToken {
                appid: app.appid.clone(),
                expires_at,
                superseded: false,
            },
        );
        self.count(&format!("tokens_issued:{}", app.appid));
        (token, expires_at)
    }

    /// Ends a token's life at `at` (if it would have lived longer).
    fn cut_short(&self, token: &str, at: i64) {
        if let Some(t) = self.lock().tokens.tokens.get_mut(token) {
            t.expires_at = t.expires_at.min(at);
            t.superseded = true;
        }
    }

    /// The check every API that takes `access_token` makes: 41001 missing, 40001 unknown or
    /// superseded, 42001 expired. Returns the token's appid.
    pub(crate) fn check_access_token(&self, token: Option<&str>) -> Result<String, Response> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(wx_error(41001, "access_token missing"));
        };
        let found = self.lock().tokens.tokens.get(token).cloned();
        let now = self.clock.now();
        match found {
            Some(t) if now < t.expires_at => Ok(t.appid),
            Some(t) if !t.superseded => {
                self.count("token_rejected_expired");
                Err(wx_error(42001, "access_token expired"))
            }
            _ => {
                self.count("token_rejected_invalid");
                Err(wx_error(
                    40001,
                    "invalid credential, access_token is invalid or not latest",
                ))
            }
        }
    }
}

#[derive(Deserialize)]
struct ClassicQuery {
    grant_type: Option<String>,
    appid: Option<String>,
    secret: Option<String>,
}

async fn classic(State(sim): State<Sim>, Query(q): Query<ClassicQuery>) -> Response {
    let appid = q.appid.unwrap_or_default();
    sim.count(&format!("token_fetches:{appid}"));
    if q.grant_type.as_deref() != Some("client_credential") {
        return wx_error(40002, "invalid grant_type");
    }
    let app = match sim.check_credentials(&appid, Some(q.secret.as_deref().unwrap_or(""))) {
        Ok(a) => a,
        Err(e) => return e,
    };
    if !sim.take_quota(&appid, "token", CLASSIC_DAILY_LIMIT) {
        return wx_error(45009, "reach max api daily quota limit");
    }
    let (token, expires_at) = sim.issue(&app);
    let now = sim.clock.now();
    let previous = sim
        .lock()
        .tokens
        .classic_current
        .insert(appid, token.clone());
    if let Some(prev) = previous {
        sim.cut_short(&prev, now + OVERLAP_SECS.min(app.renewal_window().max(1)));
    }
    Json(AccessTokenResponse {
        access_token: token,
        expires_in: expires_at - now,
    })
    .into_response()
}

#[derive(Deserialize)]
struct StableRequest {
    grant_type: Option<String>,
    appid: Option<String>,
    secret: Option<String>,
    #[serde(default)]
    force_refresh: bool,
}

async fn stable(State(sim): State<Sim>, b: WxBody<StableRequest>) -> Response {
    let req = match super::body(b) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let appid = req.appid.unwrap_or_default();
    sim.count(&format!("stable_token_calls:{appid}"));
    if req.grant_type.as_deref() != Some("client_credential") {
        return wx_error(40002, "invalid grant_type");
    }
    let app = match sim.check_credentials(&appid, Some(req.secret.as_deref().unwrap_or(""))) {
        Ok(a) => a,
        Err(e) => return e,
    };
    if !sim.take_quota(&appid, "stable_token", STABLE_DAILY_LIMIT) {
        return wx_error(45009, "reach max api daily quota limit");
    }
    let now = sim.clock.now();
    let current = {
        let st = sim.lock();
        st.tokens
            .stable_current
            .get(&appid)
            .and_then(|t| st.tokens.tokens.get(t).map(|i| (t.clone(), i.expires_at)))
    };
    if req.force_refresh {
        let last = sim.lock().tokens.last_force.get(&appid).copied();
        if last.is_some_and(|l| now - l < FORCE_MIN_INTERVAL_SECS) {
            return wx_error(45011, "force_refresh more than once in 30 seconds");
        }
        if !sim.take_quota(&appid, "force_refresh", FORCE_DAILY_LIMIT) {
            return wx_error(45009, "reach max api daily quota limit (force_refresh)");
        }
        sim.lock().tokens.last_force.insert(appid.clone(), now);
        sim.count(&format!("stable_token_forced:{appid}"));
        if let Some((old, _)) = &current {
            sim.cut_short(old, now);
        }
    } else if let Some((token, expires_at)) = current
        && expires_at - now > app.renewal_window()
    {
        return Json(AccessTokenResponse {
            access_token: token,
            expires_in: expires_at - now,
        })
        .into_response();
    }
    let (token, expires_at) = sim.issue(&app);
    sim.lock()
        .tokens
        .stable_current
        .insert(appid, token.clone());
    Json(AccessTokenResponse {
        access_token: token,
        expires_in: expires_at - now,
    })
    .into_response()
}

/// A cheap API that takes an access token: WeChat's server IP list.
async fn api_domain_ip(
    State(sim): State<Sim>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    sim.count("api_domain_ip");
    match sim.check_access_token(q.get("access_token").map(String::as_str)) {
        Ok(_) => Json(serde_json::json!({ "ip_list": ["101.226.103.0/25", "101.226.233.128/25"] }))
            .into_response(),
        Err(e) => e,
    }
}

/// The `access_token` query parameter of WeChat's APIs.
#[derive(Deserialize)]
pub(super) struct TokenQuery {
    access_token: Option<String>,
}

/// The token's app, which must be of `kind` (48001 otherwise).
pub(super) fn caller_app(sim: &Sim, q: &TokenQuery, kind: &str) -> Result<String, Response> {
    let appid = sim.check_access_token(q.access_token.as_deref())?;
    if sim.app_kind(&appid) != kind {
        return Err(wx_error(48001, "api unauthorized"));
    }
    Ok(appid)
}
