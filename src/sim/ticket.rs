//! JS-SDK tickets: `GET /cgi-bin/ticket/getticket?type=jsapi|wx_card`, and the check a
//! page's `wx.config` gets from WeChat's JS side (`POST /_sim/js-sdk/verify`).
//!
//! getticket takes a valid access token (the token check every API makes: 40001 for an
//! unknown or superseded one past its overlap, 42001 expired) of an Official Account, and
//! is rationed per app, type and Beijing day (`ticket_daily_limit`, 45009 beyond; WeChat
//! does not publish its figure). Each call issues a new ticket; the previous one keeps
//! working for 5 minutes (UNCONFIRMED at WeChat; the overlap its tokens have). Control
//! routes: `POST /_sim/tickets/invalidate` kills an app's live tickets (what WeChat does
//! when it revokes one), after which `wx.config` answers "invalid signature".

use super::{Sim, wx_error};
use crate::domain::{TicketKind, random_alphanumeric};
use crate::wechat::ticket::js_sdk_signature;
use crate::wechat::types::{ErrorBody, TicketResponse};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

const DEFAULT_TTL_SECS: i64 = 7200;
/// WeChat publishes no figure; this is generous enough never to matter by accident.
const DEFAULT_DAILY_LIMIT: u64 = 10_000;
const OVERLAP_SECS: i64 = 300;

#[derive(Debug, Clone)]
struct IssuedTicket {
    appid: String,
    kind: TicketKind,
    expires_at: i64,
}

#[derive(Default)]
pub struct TicketState {
    tickets: HashMap<String, IssuedTicket>,
    current: HashMap<(String, TicketKind), String>,
}

impl TicketState {
    /// Every ticket issued so far.
    pub(super) fn issued(&self) -> impl Iterator<Item = &String> {
        self.tickets.keys()
    }
}

pub fn router() -> Router<Sim> {
    Router::new().route("/cgi-bin/ticket/getticket", get(getticket))
}

pub fn control_router() -> Router<Sim> {
    Router::new()
        .route("/_sim/js-sdk/verify", post(verify))
        .route("/_sim/tickets/invalidate", post(invalidate))
}

#[derive(Deserialize)]
struct TicketQuery {
    access_token: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn getticket(State(sim): State<Sim>, Query(q): Query<TicketQuery>) -> Response {
    let appid = match sim.check_access_token(q.access_token.as_deref()) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let Some(kind) = q.kind.as_deref().and_then(|k| TicketKind::parse(k).ok()) else {
        return wx_error(40097, "invalid args");
    };
    sim.count(&format!("ticket_fetches:{appid}:{kind}"));
    if sim.app_kind(&appid) != "official_account" {
        return wx_error(48001, "api unauthorized");
    }
    let Some(app) = sim.lock().apps.get(&appid).cloned() else {
        return wx_error(40013, "invalid appid");
    };
    let quota = match kind {
        TicketKind::Jsapi => "getticket:jsapi",
        TicketKind::WxCard => "getticket:wx_card",
    };
    if !sim.take_quota(
        &appid,
        quota,
        app.ticket_daily_limit.unwrap_or(DEFAULT_DAILY_LIMIT),
    ) {
        sim.count(&format!("ticket_quota_refused:{appid}:{kind}"));
        return wx_error(45009, "reach max api daily quota limit");
    }
    let now = sim.clock.now();
    let ttl = app.ticket_ttl_secs.unwrap_or(DEFAULT_TTL_SECS).max(1);
    let ticket = random_alphanumeric(86);
    {
        let mut st = sim.lock();
        let t = &mut st.tickets;
        t.tickets.insert(
            ticket.clone(),
            IssuedTicket {
                appid: appid.clone(),
                kind,
                expires_at: now + ttl,
            },
        );
        if let Some(prev) = t.current.insert((appid.clone(), kind), ticket.clone())
            && let Some(p) = t.tickets.get_mut(&prev)
        {
            p.expires_at = p.expires_at.min(now + OVERLAP_SECS.min(ttl / 4).max(1));
        }
    }
    sim.count(&format!("tickets_issued:{appid}:{kind}"));
    // WeChat answers errcode 0 and errmsg "ok" beside the ticket.
    let mut body = serde_json::to_value(TicketResponse {
        ticket,
        expires_in: ttl,
    })
    .unwrap_or_default();
    if let Value::Object(m) = &mut body
        && let Ok(Value::Object(ok)) = serde_json::to_value(ErrorBody::new(0, "ok"))
    {
        m.extend(ok);
    }
    Json(body).into_response()
}

/// What a page hands `wx.config`, and the page's own URL (`location.href`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WxConfig {
    app_id: String,
    url: String,
    timestamp: i64,
    nonce_str: String,
    signature: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    err_msg: &'static str,
}

async fn verify(State(sim): State<Sim>, Json(c): Json<WxConfig>) -> Json<Verdict> {
    Json(Verdict {
        err_msg: sim.verify_js_config(&c.app_id, &c.url, c.timestamp, &c.nonce_str, &c.signature),
    })
}

impl Sim {
    /// The check WeChat's JS side makes of `wx.config` on the page at `url`: the page's
    /// domain must be one of the app's JS-safe domains, and the signature one made with a
    /// live jsapi ticket of the app over the URL without its fragment. Answers the
    /// `errMsg` a page sees: `config:ok`, `config:invalid url domain`, `config:invalid
    /// signature` (or `config:invalid appid`).
    pub fn verify_js_config(
        &self,
        appid: &str,
        url: &str,
        timestamp: i64,
        nonce: &str,
        signature: &str,
    ) -> &'static str {
        self.count("js_sdk_verifications");
        let Some(app) = self.lock().apps.get(appid).cloned() else {
            return "config:invalid appid";
        };
        let page = url.split('#').next().unwrap_or_default();
        if !app.js_safe_domains.iter().any(|d| under_domain(page, d)) {
            return "config:invalid url domain";
        }
        let now = self.clock.now();
        let live: Vec<String> = self
            .lock()
            .tickets
            .tickets
            .iter()
            .filter(|(_, t)| t.appid == appid && t.kind == TicketKind::Jsapi && now < t.expires_at)
            .map(|(k, _)| k.clone())
            .collect();
        let ok = live.iter().any(|ticket| {
            let expected = js_sdk_signature(ticket, nonce, timestamp, page);
            crate::wechat::crypto::signature_matches(&expected, signature)
        });
        if ok {
            "config:ok"
        } else {
            self.count("js_sdk_invalid_signature");
            "config:invalid signature"
        }
    }
}

/// `page` is on the console entry `domain` (`host[:port][/path]`): the same host and port,
/// the path under the entry's.
fn under_domain(page: &str, domain: &str) -> bool {
    let Ok(url) = url::Url::parse(page) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
        return false;
    }
    let (host, path) = match domain.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (domain, "/".to_owned()),
    };
    let Some(page_host) = crate::domain::host_and_port(&url) else {
        return false;
    };
    let path = path.trim_end_matches('/');
    page_host.eq_ignore_ascii_case(host)
        && (path.is_empty() || url.path() == path || url.path().starts_with(&format!("{path}/")))
}

#[derive(Deserialize)]
struct Invalidate {
    appid: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// Kills every live ticket of the app and type (default `jsapi`).
async fn invalidate(
    State(sim): State<Sim>,
    Json(req): Json<Invalidate>,
) -> Result<Json<Value>, axum::http::StatusCode> {
    let kind = match req.kind.as_deref() {
        None => TicketKind::Jsapi,
        Some(k) => TicketKind::parse(k).map_err(|_| axum::http::StatusCode::BAD_REQUEST)?,
    };
    let now = sim.clock.now();
    let mut n = 0;
    for t in sim.lock().tickets.tickets.values_mut() {
        if t.appid == req.appid && t.kind == kind && now < t.expires_at {
            t.expires_at = now;
            n += 1;
        }
    }
    Ok(Json(json!({ "invalidated": n })))
}
