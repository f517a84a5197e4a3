//! The simulator's notifications: template, subscribe, Official Account subscribe
//! (bizsend) and legacy (wxopen) sends with WeChat's checks and error codes (customer-service
//! messages are in [`super::custom`]).
//!
//! Rules kept: 40003 for an openid not of this app, 40037 for an unknown template, 43004
//! for a person who does not follow the account, 43019 for one who blocked it, 43101 with
//! no remaining subscription (one-time acceptances are counted, on bizsend as on
//! subscribe/send), 47003 for a subscribe value that breaks its rule, 41028/41029/41030
//! for legacy form ids and pages, daily quotas (45009), and at most one template message
//! per (openid, client_msg_id) within 10 minutes. Msgids are 64-bit and above 2^53, so a float anywhere on the way shows.

use super::token::{TokenQuery, caller_app};
use super::{Sim, WxBody, body, wx_error};
use crate::clock::beijing_day;
use crate::wechat::types::{
    BizSendRequest, ErrorBody, FormSendRequest, SubscribeSendRequest, TemplateSendRequest,
    WireDataItem,
};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rand::RngExt;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

/// WeChat drops a template message repeating an (openid, client_msg_id) within this long.
const CLIENT_MSG_ID_WINDOW_SECS: i64 = 600;
const TEMPLATE_DAILY_LIMIT: u64 = 100_000;
const SUBSCRIBE_DAILY_LIMIT: u64 = 10_000_000;
pub(super) const FORM_ID_TTL_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Default)]
pub(super) struct Subscription {
    pub remaining: u64,
    pub long_term: bool,
}

#[derive(Debug, Clone)]
pub(super) struct SimFormId {
    pub appid: String,
    pub person: String,
    pub uses_left: u32,
    /// A prepay_id is unknown to WeChat until a moment after the payment.
    pub registered_at: i64,
    pub expires_at: i64,
}

/// What the simulator accepted and "delivered", readable at `/_sim/messages`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReceivedMessage {
    pub channel: &'static str,
    pub appid: String,
    pub touser: String,
    pub person: String,
    pub template_id: String,
    pub data: BTreeMap<String, WireDataItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miniprogram_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Customer-service messages: WeChat's `msgtype` and its content object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgtype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    /// As a string: JSON readers that use floats would mangle it.
    pub msgid: String,
    pub received_at: i64,
    /// The same instant in milliseconds: what a test of the send rate reads.
    pub received_ms: i64,
}

#[derive(Default)]
pub struct MessageState {
    /// (appid, person) who do not follow the Official Account (everyone else does).
    pub(super) not_following: HashSet<(String, String)>,
    /// (appid, person) who blocked the account (43019).
    pub(super) blocked: HashSet<(String, String)>,
    /// (appid, person, template id) -> what the person accepted.
    pub(super) subscriptions: HashMap<(String, String, String), Subscription>,
    pub(super) form_ids: HashMap<String, SimFormId>,
    /// appid -> the mini-program's pages; when set, a page must be one of them (41030).
    pub(super) pages: HashMap<String, HashSet<String>>,
    /// (appid, openid, client_msg_id) -> (msgid, when)
    client_msg_ids: HashMap<(String, String, String), (i64, i64)>,
    /// (appid, channel, Beijing day) -> sends
    daily: HashMap<(String, &'static str, i64), u64>,
    /// appid -> openid -> person: filled on demand from the people list.
    openids: HashMap<String, HashMap<String, String>>,
    pub(super) received: Vec<ReceivedMessage>,
}

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/cgi-bin/message/template/send", post(send_template))
        .route("/cgi-bin/message/subscribe/send", post(send_subscribe))
        .route(
            "/cgi-bin/message/subscribe/bizsend",
            post(send_oa_subscribe),
        )
        .route("/cgi-bin/message/wxopen/template/send", post(send_form))
}

impl Sim {
    /// The person behind an openid of an app.
    pub(super) fn person_by_openid(&self, appid: &str, openid: &str) -> Option<String> {
        if let Some(p) = self
            .lock()
            .messages
            .openids
            .get(appid)
            .and_then(|m| m.get(openid))
        {
            return Some(p.clone());
        }
        let index: HashMap<String, String> = self
            .people()
            .into_iter()
            .map(|p| (self.openid_of(appid, &p.id), p.id))
            .collect();
        let found = index.get(openid).cloned();
        self.lock().messages.openids.insert(appid.to_owned(), index);
        found
    }

    /// Counts a send against the day's quota (and an injected `quota_after`); false: 45009.
    pub(super) fn take_send_quota(&self, appid: &str, channel: &'static str, limit: u64) -> bool {
        let day = beijing_day(self.clock.now());
        let mut st = self.lock();
        if let Some(left) = st.faults.quota_after.as_mut() {
            if *left == 0 {
                return false;
            }
            *left -= 1;
        }
        let n = st
            .messages
            .daily
            .entry((appid.to_owned(), channel, day))
            .or_default();
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    pub(super) fn record(&self, m: ReceivedMessage) {
        self.count(&format!("{}_sent", m.channel));
        self.lock().messages.received.push(m);
    }

    pub fn received_messages(&self) -> Vec<ReceivedMessage> {
        self.lock().messages.received.clone()
    }
}

/// A 64-bit msgid above 2^53.
pub(super) fn new_msgid() -> i64 {
    rand::rng().random_range((1i64 << 60)..i64::MAX)
}

/// What every send names: a recipient and a template.
trait SendBody {
    fn touser(&self) -> &str;
    fn template_id(&self) -> &str;
}

macro_rules! send_body {
    ($($t:ty),*) => {$(
        impl SendBody for $t {
            fn touser(&self) -> &str { &self.touser }
            fn template_id(&self) -> &str { &self.template_id }
        }
    )*};
}
send_body!(
    TemplateSendRequest,
    SubscribeSendRequest,
    BizSendRequest,
    FormSendRequest
);

/// The checks every send starts with: the token's app is of `app_kind` (48001), the body
/// parses (47001), the openid is of that app (40003), the template is one of its
/// `template_kind` templates (40037). Returns the appid, the body and the person.
fn checked_send<T: SendBody>(
    sim: &Sim,
    q: &TokenQuery,
    b: WxBody<T>,
    app_kind: &str,
    template_kind: &str,
) -> Result<(String, T, String), Response> {
    let appid = caller_app(sim, q, app_kind)?;
    let req = body(b)?;
    let person = sim
        .person_by_openid(&appid, req.touser())
        .ok_or_else(|| wx_error(40003, "invalid openid"))?;
    if sim
        .template(&appid, template_kind, req.template_id())
        .is_none()
    {
        return Err(wx_error(40037, "invalid template_id"));
    }
    Ok((appid, req, person))
}

fn answer(r: Result<Option<i64>, Response>) -> Response {
    match r {
        Ok(Some(msgid)) => {
            Json(json!({ "errcode": 0, "errmsg": "ok", "msgid": msgid })).into_response()
        }
        Ok(None) => Json(ErrorBody::new(0, "ok")).into_response(),
        Err(e) => e,
    }
}

async fn send_template(
    State(sim): State<Sim>,
    Query(q): Query<TokenQuery>,
    b: WxBody<TemplateSendRequest>,
) -> Response {
    sim.count("template_send_calls");
    answer(template_send(&sim, &q, b).map(Some))
}

fn template_send(
    sim: &Sim,
    q: &TokenQuery,
    b: WxBody<TemplateSendRequest>,
) -> Result<i64, Response> {
    let (appid, req, person) = checked_send(sim, q, b, "official_account", "template")?;
    {
        let st = sim.lock();
        let key = (appid.clone(), person.clone());
        if st.messages.blocked.contains(&key) {
            return Err(wx_error(43019, "require remove blacklist"));
        }
        if st.messages.not_following.contains(&key) {
            return Err(wx_error(43004, "require subscribe"));
        }
    }
    if req.data.values().any(|v| v.value.contains(['\n', '\r'])) {
        return Err(wx_error(47001, "data format error"));
    }
    let now = sim.clock.now();
    if let Some(cmid) = &req.client_msg_id {
        let key = (appid.clone(), req.touser.clone(), cmid.clone());
        let seen = sim.lock().messages.client_msg_ids.get(&key).copied();
        if let Some((msgid, at)) = seen
            && now - at < CLIENT_MSG_ID_WINDOW_SECS
        {
            sim.count("template_duplicates_dropped");
            return Ok(msgid);
        }
    }
    if !sim.take_send_quota(&appid, "template", TEMPLATE_DAILY_LIMIT) {
        return Err(wx_error(45009, "reach max api daily quota limit"));
    }
    let msgid = new_msgid();
    if let Some(cmid) = &req.client_msg_id {
        sim.lock().messages.client_msg_ids.insert(
            (appid.clone(), req.touser.clone(), cmid.clone()),
            (msgid, now),
        );
    }
    // WeChat pushes the delivery report to the account's server (when it has one).
    let _ = sim.after_template_send(&appid, &req.touser, msgid);
    sim.record(ReceivedMessage {
        channel: "template",
        appid,
        touser: req.touser,
        person,
        template_id: req.template_id,
        data: req.data,
        url: req.url,
        miniprogram: req.miniprogram.map(|m| json!(m)),
        client_msg_id: req.client_msg_id,
        msgid: msgid.to_string(),
        received_at: now,
        received_ms: sim.clock.now_ms(),
        ..Default::default()
    });
    Ok(msgid)
}

/// WeChat's subscribe value limits (characters); its message names the field.
fn subscribe_value_problem(key: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return Some(format!("argument invalid! data.{key}.value is empty"));
    }
    if value.chars().any(char::is_control) {
        return Some(format!(
            "argument invalid! data.{key}.value contains invalid characters"
        ));
    }
    let kind = key.trim_end_matches(|c: char| c.is_ascii_digit());
    let max = match kind {
        "thing" | "name" => 20,
        "number" | "letter" | "character_string" => 32,
        "symbol" | "phrase" => 5,
        "phone_number" => 17,
        "car_number" => 8,
        _ => 64,
    };
    (value.chars().count() > max)
        .then(|| format!("argument invalid! data.{key}.value exceeds the length limit"))
}

/// The page must be relative and, when the app's pages are known, one of them.
fn page_problem(sim: &Sim, appid: &str, page: Option<&str>) -> bool {
    let Some(page) = page else { return false };
    let path = page.split('?').next().unwrap_or("");
    if path.is_empty() || path.starts_with('/') || page.contains("://") {
        return true;
    }
    sim.lock()
        .messages
        .pages
        .get(appid)
        .is_some_and(|pages| !pages.contains(path))
}

async fn send_subscribe(
    State(sim): State<Sim>,
    Query(q): Query<TokenQuery>,
    b: WxBody<SubscribeSendRequest>,
) -> Response {
    sim.count("subscribe_send_calls");
    answer(subscribe_send(&sim, &q, b).map(Some))
}

fn subscribe_send(
    sim: &Sim,
    q: &TokenQuery,
    b: WxBody<SubscribeSendRequest>,
) -> Result<i64, Response> {
    let (appid, req, person) = checked_send(sim, q, b, "mini_program", "subscribe")?;
    if let Some(problem) = req
        .data
        .iter()
        .find_map(|(k, v)| subscribe_value_problem(k, &v.value))
    {
        return Err(wx_error(47003, &problem));
    }
    if req
        .miniprogram_state
        .as_deref()
        .is_some_and(|s| !matches!(s, "developer" | "trial" | "formal"))
    {
        return Err(wx_error(47003, "argument invalid! miniprogram_state"));
    }
    if page_problem(sim, &appid, req.page.as_deref()) {
        return Err(wx_error(41030, "invalid page"));
    }
    spend_acceptance(sim, &appid, &person, &req.template_id)?;
    if !sim.take_send_quota(&appid, "subscribe", SUBSCRIBE_DAILY_LIMIT) {
        return Err(wx_error(45009, "reach max api daily quota limit"));
    }
    let msgid = new_msgid();
    let _ = sim.after_subscribe_send(&appid, &req.touser, &req.template_id, msgid, 0);
    sim.record(ReceivedMessage {
        channel: "subscribe",
        appid,
        touser: req.touser,
        person,
        template_id: req.template_id,
        data: req.data,
        page: req.page,
        miniprogram_state: req.miniprogram_state,
        lang: req.lang,
        msgid: msgid.to_string(),
        received_at: sim.clock.now(),
        received_ms: sim.clock.now_ms(),
        ..Default::default()
    });
    Ok(msgid)
}

/// 43101 unless the person accepted the template: a one-time acceptance is spent, a
/// long-term one kept.
fn spend_acceptance(sim: &Sim, appid: &str, person: &str, template: &str) -> Result<(), Response> {
    let mut st = sim.lock();
    let key = (appid.to_owned(), person.to_owned(), template.to_owned());
    match st.messages.subscriptions.get_mut(&key) {
        Some(s) if s.long_term => Ok(()),
        Some(s) if s.remaining > 0 => {
            s.remaining -= 1;
            Ok(())
        }
        _ => Err(wx_error(43101, "user refuse to accept the msg")),
    }
}

async fn send_oa_subscribe(
    State(sim): State<Sim>,
    Query(q): Query<TokenQuery>,
    b: WxBody<BizSendRequest>,
) -> Response {
    sim.count("oa_subscribe_send_calls");
    answer(oa_subscribe_send(&sim, &q, b).map(|_| None))
}

/// An Official Account's subscribe notification: the subscribe value rules and acceptances
/// of the mini-program's subscribe messages. WeChat answers no msgid here; it comes with
/// the `subscribe_msg_sent_event` pushed after the send.
fn oa_subscribe_send(
    sim: &Sim,
    q: &TokenQuery,
    b: WxBody<BizSendRequest>,
) -> Result<i64, Response> {
    let (appid, req, person) = checked_send(sim, q, b, "official_account", "subscribe")?;
    if let Some(problem) = req
        .data
        .iter()
        .find_map(|(k, v)| subscribe_value_problem(k, &v.value))
    {
        return Err(wx_error(47003, &problem));
    }
    spend_acceptance(sim, &appid, &person, &req.template_id)?;
    if !sim.take_send_quota(&appid, "oa_subscribe", SUBSCRIBE_DAILY_LIMIT) {
        return Err(wx_error(45009, "reach max api daily quota limit"));
    }
    let msgid = new_msgid();
    let _ = sim.after_subscribe_send(&appid, &req.touser, &req.template_id, msgid, 0);
    sim.record(ReceivedMessage {
        channel: "oa_subscribe",
        appid,
        touser: req.touser,
        person,
        template_id: req.template_id,
        data: req.data,
        page: req.page,
        miniprogram: req.miniprogram.map(|m| json!(m)),
        msgid: msgid.to_string(),
        received_at: sim.clock.now(),
        received_ms: sim.clock.now_ms(),
        ..Default::default()
    });
    Ok(msgid)
}

async fn send_form(
    State(sim): State<Sim>,
    Query(q): Query<TokenQuery>,
    b: WxBody<FormSendRequest>,
) -> Response {
    sim.count("form_send_calls");
    answer(form_send(&sim, &q, b).map(|_| None))
}

/// The legacy send answers no msgid; one is still recorded for `/_sim/messages`.
fn form_send(sim: &Sim, q: &TokenQuery, b: WxBody<FormSendRequest>) -> Result<i64, Response> {
    let (appid, req, person) = checked_send(sim, q, b, "mini_program", "form")?;
    if page_problem(sim, &appid, req.page.as_deref()) {
        return Err(wx_error(41030, "invalid page"));
    }
    let now = sim.clock.now();
    {
        let mut st = sim.lock();
        let usable = st
            .messages
            .form_ids
            .get_mut(&req.form_id)
            .filter(|f| f.appid == appid && f.person == person);
        match usable {
            Some(f) if now < f.registered_at || now >= f.expires_at => {
                return Err(wx_error(41028, "invalid form id"));
            }
            Some(f) if f.uses_left == 0 => {
                return Err(wx_error(41029, "form id used count reach limit"));
            }
            Some(f) => f.uses_left -= 1,
            None => return Err(wx_error(41028, "invalid form id")),
        }
    }
    let msgid = new_msgid();
    sim.record(ReceivedMessage {
        channel: "form",
        appid,
        touser: req.touser,
        person,
        template_id: req.template_id,
        data: req.data,
        page: req.page,
        form_id: Some(req.form_id),
        msgid: msgid.to_string(),
        received_at: now,
        received_ms: sim.clock.now_ms(),
        ..Default::default()
    });
    Ok(msgid)
}
