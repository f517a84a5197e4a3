//! The simulator's customer-service messages (`cgi-bin/message/custom/send`) with WeChat's
//! window: only a person's own interaction lets the account write to them, for a while and
//! a number of times ([`crate::wechat::custom::window_grant`]; both configurable here).
//! Every push the simulator makes passes through [`Sim::note_push_interaction`]; an
//! interaction the account's server never saw is told with `POST /_sim/people/{id}/interact`
//! (or [`Sim::interacted`]).
//!
//! Rules kept: 48001 for a caller that is not an Official Account, 40003 for an openid not
//! of this app, 43019 for a person who blocked the account, 45015 outside the window (or
//! after an unfollow), 45047 once the window's sends are spent, 45009 past the daily quota,
//! 40008 for an unknown `msgtype`, 47001 for a missing content object, 45002 for a text
//! over 2048 bytes, 40007 for an empty media id.

use super::message::ReceivedMessage;
use super::token::{TokenQuery, caller_app};
use super::{Sim, WxBody, body, wx_error};
use crate::wechat::custom::{CustomSendRequest, MESSAGE_GRANT, WindowGrant, window_grant};
use crate::wechat::types::ErrorBody;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The window rules and the daily quota; set with `POST /_sim/custom/settings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomSettings {
    /// How long a message the person sends lets the account write (WeChat: 48 h).
    pub message_window_secs: i64,
    /// How many messages it allows (WeChat: 5).
    pub message_sends: u32,
    /// The same for a menu click, follow or scan (WeChat: 60 s, 3 sends).
    pub event_window_secs: i64,
    pub event_sends: u32,
    /// Customer-service sends per account per Beijing day before 45009 (WeChat: 500,000).
    pub daily_limit: u64,
}

impl Default for CustomSettings {
    fn default() -> Self {
        Self {
            message_window_secs: MESSAGE_GRANT.secs,
            message_sends: MESSAGE_GRANT.sends,
            event_window_secs: 60,
            event_sends: 3,
            daily_limit: 500_000,
        }
    }
}

/// One person's window with one account.
#[derive(Debug, Clone, Copy)]
struct Window {
    until: i64,
    sends_left: u32,
}

#[derive(Default)]
pub struct CustomState {
    settings: CustomSettings,
    /// (appid, person) -> their window.
    windows: HashMap<(String, String), Window>,
}

pub fn router() -> Router<Sim> {
    Router::new().route("/cgi-bin/message/custom/send", post(send))
}

pub fn control_router() -> Router<Sim> {
    Router::new()
        .route(
            "/_sim/custom/settings",
            post(set_settings).get(get_settings),
        )
        .route("/_sim/people/{id}/interact", post(interact))
}

impl Sim {
    pub fn set_custom_settings(&self, s: CustomSettings) {
        self.lock().custom.settings = s;
    }

    pub fn custom_settings(&self) -> CustomSettings {
        self.lock().custom.settings.clone()
    }

    /// The person did something that opens their window with the account (what `grant`
    /// says, with this simulator's durations and counts). Like WeChat, windows do not add
    /// up: the later end and the larger count win.
    pub fn interacted(&self, appid: &str, person: &str, grant: WindowGrant) {
        let now = self.clock.now();
        let mut st = self.lock();
        let s = &st.custom.settings;
        let (secs, sends) = if grant.kind == MESSAGE_GRANT.kind {
            (s.message_window_secs, s.message_sends)
        } else {
            (s.event_window_secs, s.event_sends)
        };
        let key = (appid.to_owned(), person.to_owned());
        let w = st.custom.windows.entry(key).or_insert(Window {
            until: now,
            sends_left: 0,
        });
        let open = w.until > now;
        w.until = w.until.max(now + secs);
        w.sends_left = if open { w.sends_left.max(sends) } else { sends };
    }

    /// Every push passes here: one from a person that opens a window opens it.
    pub(super) fn note_push_interaction(&self, appid: &str, xml: &str) {
        let Ok(root) = crate::push::xml::parse(xml) else {
            return;
        };
        let (Some(msg_type), Some(from)) = (root.field("MsgType"), root.field("FromUserName"))
        else {
            return;
        };
        let Some(grant) = window_grant(msg_type.trim(), root.field("Event").map(str::trim)) else {
            return;
        };
        if let Some(person) = self.person_by_openid(appid, from.trim()) {
            self.interacted(appid, &person, grant);
        }
    }

    /// 45015 outside the window, 45047 when its sends are spent; otherwise one is used.
    fn take_custom_send(&self, appid: &str, person: &str) -> Result<(), Response> {
        let now = self.clock.now();
        let mut st = self.lock();
        let key = (appid.to_owned(), person.to_owned());
        match st.custom.windows.get_mut(&key) {
            Some(w) if w.until > now && w.sends_left > 0 => {
                w.sends_left -= 1;
                Ok(())
            }
            Some(w) if w.until > now => Err(wx_error(45047, "out of response count limit")),
            _ => Err(wx_error(
                45015,
                "response out of time limit or subscription is canceled",
            )),
        }
    }
}

async fn send(
    State(sim): State<Sim>,
    Query(q): Query<TokenQuery>,
    b: WxBody<CustomSendRequest>,
) -> Response {
    sim.count("custom_send_calls");
    match custom_send(&sim, &q, b) {
        Ok(()) => Json(ErrorBody::new(0, "ok")).into_response(),
        Err(e) => e,
    }
}

fn custom_send(sim: &Sim, q: &TokenQuery, b: WxBody<CustomSendRequest>) -> Result<(), Response> {
    let appid = caller_app(sim, q, "official_account")?;
    let req = body(b)?;
    let person = sim
        .person_by_openid(&appid, &req.touser)
        .ok_or_else(|| wx_error(40003, "invalid openid"))?;
    let content = content_of(&req)?;
    let key = (appid.clone(), person.clone());
    {
        let st = sim.lock();
        if st.messages.blocked.contains(&key) {
            return Err(wx_error(43019, "require remove blacklist"));
        }
        if st.messages.not_following.contains(&key) {
            return Err(wx_error(
                45015,
                "response out of time limit or subscription is canceled",
            ));
        }
    }
    sim.take_custom_send(&appid, &person)?;
    let limit = sim.custom_settings().daily_limit;
    if !sim.take_send_quota(&appid, "custom", limit) {
        return Err(wx_error(45009, "reach max api daily quota limit"));
    }
    sim.record(ReceivedMessage {
        channel: "custom",
        appid,
        touser: req.touser,
        person,
        msgtype: Some(req.msgtype),
        content: Some(content),
        // WeChat answers no msgid; `/_sim/messages` numbers it anyway.
        msgid: super::message::new_msgid().to_string(),
        received_at: sim.clock.now(),
        received_ms: sim.clock.now_ms(),
        ..Default::default()
    });
    Ok(())
}

/// The content object `msgtype` names, checked as WeChat does.
fn content_of(req: &CustomSendRequest) -> Result<Value, Response> {
    let missing = || wx_error(47001, "data format error: no content for the msgtype");
    let media = |id: &str| {
        if id.trim().is_empty() {
            Err(wx_error(40007, "invalid media_id"))
        } else {
            Ok(())
        }
    };
    Ok(match req.msgtype.as_str() {
        "text" => {
            let t = req.text.as_ref().ok_or_else(missing)?;
            if t.content.len() > 2048 {
                return Err(wx_error(45002, "content size out of limit"));
            }
            json!(t)
        }
        "image" => {
            let i = req.image.as_ref().ok_or_else(missing)?;
            media(&i.media_id)?;
            json!(i)
        }
        "miniprogrampage" => {
            let p = req.miniprogrampage.as_ref().ok_or_else(missing)?;
            media(&p.thumb_media_id)?;
            json!(p)
        }
        "news" => {
            let n = req.news.as_ref().ok_or_else(missing)?;
            // Since 2018 a customer-service news message carries one article.
            if n.articles.len() != 1 {
                return Err(wx_error(45008, "article size out of limit"));
            }
            json!(n)
        }
        _ => return Err(wx_error(40008, "invalid message type")),
    })
}

async fn set_settings(
    State(sim): State<Sim>,
    Json(s): Json<CustomSettings>,
) -> Json<CustomSettings> {
    sim.set_custom_settings(s.clone());
    Json(s)
}

async fn get_settings(State(sim): State<Sim>) -> Json<CustomSettings> {
    Json(sim.custom_settings())
}

#[derive(Deserialize)]
struct Interaction {
    appid: String,
    /// `message` (default), `menu`, `follow` or `scan`.
    #[serde(default)]
    kind: Option<String>,
}

/// An interaction the account's server did not see (nothing is pushed).
async fn interact(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(r): Json<Interaction>,
) -> (StatusCode, Json<Value>) {
    if !sim.lock().apps.contains_key(&r.appid) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "unknown appid"})),
        );
    }
    if sim.person(&id).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "unknown person"})),
        );
    }
    let grant = match r.kind.as_deref().unwrap_or("message") {
        "message" => Some(MESSAGE_GRANT),
        "menu" => window_grant("event", Some("CLICK")),
        "follow" => window_grant("event", Some("subscribe")),
        "scan" => window_grant("event", Some("SCAN")),
        _ => None,
    };
    let Some(grant) = grant else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "kind is message, menu, follow or scan"})),
        );
    };
    sim.interacted(&r.appid, &id, grant);
    (StatusCode::OK, Json(json!({"interacted": grant.kind})))
}
