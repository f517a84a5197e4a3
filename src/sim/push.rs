//! The simulator's server pushes: delivery reports after template sends, follow and
//! unfollow, subscription choices, and people's messages and menu clicks (`chat`); signed,
//! and encrypted in the app's mode, to the app's push URL. Like WeChat, a push that does
//! not get `success`, an empty answer or a valid passive reply within 5 s is retried 3
//! times. Every attempt and answer is recorded (`GET /_sim/pushes`), with the reply read
//! (decrypted in safe mode).
//!
//! Retries reuse the first attempt's timestamp, nonce and body: whether WeChat does is
//! UNCONFIRMED, and it is the harder case for the receiver's replay guard.

use super::Sim;
use super::chat::{Answered, ReplyCheck, read_answer};
use crate::domain::hash_token;
use crate::push::xml::cdata;
use crate::wechat::crypto::{MessageCrypto, signature};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

/// How the simulator pushes; set with `POST /_sim/push/settings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// Delay between a template send and its delivery report.
    pub report_delay_ms: u64,
    /// `Status` of the next delivery reports, e.g. `failed:user block`.
    pub report_status: String,
    /// How many reports get `report_status` before it reverts to `success`; absent: all.
    pub report_status_count: Option<u64>,
    /// How long WeChat waits for the answer to one attempt.
    pub timeout_ms: u64,
    /// Attempts after the first one when the answer is not `success` (WeChat: 3).
    pub retries: u32,
    /// Pause between attempts.
    pub retry_delay_ms: u64,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            report_delay_ms: 100,
            report_status: "success".into(),
            report_status_count: None,
            timeout_ms: 5000,
            retries: 3,
            retry_delay_ms: 200,
        }
    }
}

/// One push and everything that happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct PushRecord {
    pub id: u64,
    pub appid: String,
    /// The event (`TEMPLATESENDJOBFINISH`, `subscribe`...) or message type.
    pub kind: String,
    pub openid: Option<String>,
    pub msgid: Option<i64>,
    /// `plain`, `compatible` or `safe`.
    pub mode: String,
    /// The message before encryption.
    pub xml: String,
    pub attempts: Vec<PushAttempt>,
    /// Some attempt was answered `success`, empty, or with a valid passive reply.
    pub acknowledged: bool,
    /// The passive reply that answered it (decrypted when it came encrypted).
    pub reply: Option<String>,
    /// Why the last answer was not a reply WeChat could use (then it retried).
    pub reply_error: Option<String>,
    /// No more attempts will be made.
    pub finished: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PushAttempt {
    /// Simulator time.
    pub at: i64,
    pub status: Option<u16>,
    /// From sending the push to its answer (or giving up on it).
    pub took_ms: u64,
    /// The answer's body (first 200 characters).
    pub answer: String,
    /// Transport trouble: timeout, connection refused.
    pub error: Option<String>,
}

#[derive(Default)]
pub struct PushState {
    pub settings: PushSettings,
    records: Vec<PushRecord>,
    /// Numbers the people's messages (their MsgIds).
    msg_seq: u64,
}

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/_sim/push/settings", post(set_settings).get(get_settings))
        .route("/_sim/pushes", get(list))
        .route("/_sim/push/template-report", post(template_report))
        .route("/_sim/push/event", post(raw_event))
        .route("/_sim/people/{id}/follow", post(follow))
        .route("/_sim/people/{id}/unfollow", post(unfollow))
        .route("/_sim/people/{id}/subscriptions", post(subscriptions))
}

/// Why a push could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PushSetupError {
    #[error("no app with appid {0}")]
    UnknownApp(String),
    #[error("app {0} has no push_url and push_token")]
    NoPushUrl(String),
    #[error("no person {0}")]
    UnknownPerson(String),
    #[error("{0}")]
    Invalid(String),
}

impl PushSetupError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownApp(_) | Self::UnknownPerson(_) => StatusCode::NOT_FOUND,
            Self::NoPushUrl(_) => StatusCode::CONFLICT,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl Sim {
    pub(super) fn next_msg_seq(&self) -> u64 {
        let mut st = self.lock();
        st.push.msg_seq += 1;
        st.push.msg_seq
    }

    pub fn set_push_settings(&self, s: PushSettings) {
        self.lock().push.settings = s;
    }

    pub fn push_settings(&self) -> PushSettings {
        self.lock().push.settings.clone()
    }

    /// Every push so far, oldest first.
    pub fn pushes(&self) -> Vec<PushRecord> {
        self.lock().push.records.clone()
    }

    /// Whether the person follows the Official Account (everyone does until they leave):
    /// the state template sends answer 43004 from.
    pub fn follows(&self, appid: &str, person: &str) -> bool {
        let key = (appid.to_owned(), person.to_owned());
        !self.lock().messages.not_following.contains(&key)
    }

    /// What WeChat does after accepting a template send: after `report_delay_ms`, push a
    /// TEMPLATESENDJOBFINISH for `msgid` with the configured status. The template-send
    /// endpoint calls this once it has answered the msgid.
    pub fn after_template_send(
        &self,
        appid: &str,
        openid: &str,
        msgid: i64,
    ) -> Result<u64, PushSetupError> {
        self.template_report(appid, openid, msgid, None)
    }

    /// A delivery report with this status, or the configured one.
    pub fn template_report(
        &self,
        appid: &str,
        openid: &str,
        msgid: i64,
        status: Option<String>,
    ) -> Result<u64, PushSetupError> {
        let (status, delay) = {
            let mut st = self.lock();
            let s = &mut st.push.settings;
            let status = status.unwrap_or_else(|| match &mut s.report_status_count {
                Some(0) => "success".to_owned(),
                Some(n) => {
                    *n -= 1;
                    s.report_status.clone()
                }
                None => s.report_status.clone(),
            });
            (status, s.report_delay_ms)
        };
        let fields = format!("<MsgID>{msgid}</MsgID><Status>{}</Status>", cdata(&status));
        self.push_event(
            appid,
            Some(openid),
            "TEMPLATESENDJOBFINISH",
            &fields,
            Some(msgid),
            delay,
        )
    }

    /// What WeChat does after a subscribe-message send (mini-program subscribe/send, or an
    /// Official Account's bizsend): a `subscribe_msg_sent_event` with the send's result.
    pub fn after_subscribe_send(
        &self,
        appid: &str,
        openid: &str,
        template_id: &str,
        msgid: i64,
        error_code: i64,
    ) -> Result<u64, PushSetupError> {
        let status = if error_code == 0 { "success" } else { "fail" };
        let fields = format!(
            "<SubscribeMsgSentEvent><List><TemplateId>{}</TemplateId><MsgID>{msgid}</MsgID><ErrorCode>{error_code}</ErrorCode><ErrorStatus>{}</ErrorStatus></List></SubscribeMsgSentEvent>",
            cdata(template_id),
            cdata(status)
        );
        let delay = self.lock().push.settings.report_delay_ms;
        self.push_event(
            appid,
            Some(openid),
            "subscribe_msg_sent_event",
            &fields,
            Some(msgid),
            delay,
        )
    }

    /// The person follows (or leaves) the Official Account: WeChat pushes `subscribe` /
    /// `unsubscribe` at once.
    pub fn set_follow(
        &self,
        appid: &str,
        person: &str,
        follows: bool,
    ) -> Result<u64, PushSetupError> {
        if self.person(person).is_none() {
            return Err(PushSetupError::UnknownPerson(person.to_owned()));
        }
        let openid = self.openid_of(appid, person);
        {
            // The same state `/_sim/following` sets and template sends answer 43004 from.
            let key = (appid.to_owned(), person.to_owned());
            let mut st = self.lock();
            if follows {
                st.messages.not_following.remove(&key);
            } else {
                st.messages.not_following.insert(key);
            }
            st.followers.version += 1;
        }
        if follows {
            self.followed(appid, person);
        }
        let event = if follows { "subscribe" } else { "unsubscribe" };
        self.push_event(
            appid,
            Some(&openid),
            event,
            "<EventKey><![CDATA[]]></EventKey>",
            None,
            0,
        )
    }

    /// A person's choices in the subscription popup (`popup`: a mini-program's
    /// `wx.requestSubscribeMessage`, an Official Account page's `wx-open-subscribe`) or in
    /// settings (`change`): `(template_id, status, popup_scene)`.
    pub fn subscription_choices(
        &self,
        appid: &str,
        person: &str,
        change: bool,
        choices: &[(String, String, Option<i64>)],
    ) -> Result<u64, PushSetupError> {
        if self.person(person).is_none() {
            return Err(PushSetupError::UnknownPerson(person.to_owned()));
        }
        if choices.is_empty() {
            return Err(PushSetupError::Invalid("no choices".into()));
        }
        // WeChat's own record moves first: an accepted popup allows one send; a template
        // turned off in the settings, or banned, allows none.
        for (template, status, _) in choices {
            if status.starts_with("accept") && !change {
                self.accept_subscription(appid, person, template, 1, false, false);
            } else if status == "ban" || (status == "reject" && change) {
                self.accept_subscription(appid, person, template, 0, false, true);
            }
        }
        let openid = self.openid_of(appid, person);
        let (event, container) = if change {
            ("subscribe_msg_change_event", "SubscribeMsgChangeEvent")
        } else {
            ("subscribe_msg_popup_event", "SubscribeMsgPopupEvent")
        };
        let items: String = choices
            .iter()
            .map(|(t, s, scene)| {
                let scene = match (change, scene) {
                    (false, Some(n)) => format!("<PopupScene>{n}</PopupScene>"),
                    (false, None) => "<PopupScene>0</PopupScene>".to_owned(),
                    (true, _) => String::new(),
                };
                format!(
                    "<List><TemplateId>{}</TemplateId><SubscribeStatusString>{}</SubscribeStatusString>{scene}</List>",
                    cdata(t),
                    cdata(s)
                )
            })
            .collect();
        let fields = format!("<{container}>{items}</{container}>");
        self.push_event(appid, Some(&openid), event, &fields, None, 0)
    }

    /// Pushes any message XML as it is (for tests of events wxlink does not act on).
    pub fn push_raw(&self, appid: &str, xml: &str) -> Result<u64, PushSetupError> {
        self.start_push(appid, None, "raw".into(), None, xml.to_owned(), 0)
    }

    /// An event from `openid` to the app, with `fields` after the standard header.
    fn push_event(
        &self,
        appid: &str,
        openid: Option<&str>,
        event: &str,
        fields: &str,
        msgid: Option<i64>,
        delay_ms: u64,
    ) -> Result<u64, PushSetupError> {
        let xml = format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event>{}</Event>{fields}</xml>",
            cdata(&original_id(appid)),
            cdata(openid.unwrap_or("")),
            self.clock.now(),
            cdata(event),
        );
        self.start_push(
            appid,
            openid.map(str::to_owned),
            event.to_owned(),
            msgid,
            xml,
            delay_ms,
        )
    }

    pub(super) fn start_push(
        &self,
        appid: &str,
        openid: Option<String>,
        kind: String,
        msgid: Option<i64>,
        xml: String,
        delay_ms: u64,
    ) -> Result<u64, PushSetupError> {
        // The person acted whether or not the account's server hears of it.
        self.note_push_interaction(appid, &xml);
        let app = self
            .lock()
            .apps
            .get(appid)
            .cloned()
            .ok_or_else(|| PushSetupError::UnknownApp(appid.to_owned()))?;
        let (Some(url), Some(token)) = (&app.push_url, &app.push_token) else {
            return Err(PushSetupError::NoPushUrl(appid.to_owned()));
        };
        let url = url::Url::parse(url)
            .map_err(|e| PushSetupError::Invalid(format!("push_url of {appid}: {e}")))?;
        let mode = app.push_mode();
        let key = match (&app.encoding_aes_key, mode) {
            (_, "plain") => None,
            (Some(k), _) => Some(MessageCrypto::new(k).map_err(|e| {
                PushSetupError::Invalid(format!("encoding_aes_key of {appid}: {e}"))
            })?),
            (None, _) => {
                return Err(PushSetupError::Invalid(format!(
                    "app {appid} is in {mode} mode without encoding_aes_key"
                )));
            }
        };
        let id = {
            let mut st = self.lock();
            let id = st.push.records.len() as u64 + 1;
            st.push.records.push(PushRecord {
                id,
                appid: appid.to_owned(),
                kind,
                openid,
                msgid,
                mode: mode.to_owned(),
                xml: xml.clone(),
                attempts: Vec::new(),
                acknowledged: false,
                reply: None,
                reply_error: None,
                finished: false,
            });
            id
        };
        self.count("pushes");
        let sim = self.clone();
        let (token, mode) = (token.clone(), mode.to_owned());
        let from = crate::push::xml::parse(&xml)
            .ok()
            .and_then(|r| r.field("FromUserName").map(|s| s.trim().to_owned()))
            .filter(|s| !s.is_empty());
        tokio::spawn(async move {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            let (url, body) = sign(url, &token, &app.appid, &mode, key.as_ref(), &xml, &sim);
            let check = ReplyCheck {
                token,
                appid: app.appid.clone(),
                key,
                mode,
                openid: from,
            };
            sim.deliver(id, &url, body, &check).await;
        });
        Ok(id)
    }

    /// Attempts until `success` (or a reply) or the retries are spent.
    async fn deliver(&self, id: u64, url: &str, body: String, check: &ReplyCheck) {
        let s = self.push_settings();
        for attempt in 0..=s.retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(s.retry_delay_ms)).await;
            }
            let started = std::time::Instant::now();
            let sent = self
                .http
                .post(url)
                .header("content-type", "text/xml")
                .timeout(Duration::from_millis(s.timeout_ms))
                .body(body.clone())
                .send()
                .await;
            let (status, answer, error) = match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    match r.text().await {
                        Ok(t) => (Some(status), t, None),
                        Err(e) => (Some(status), String::new(), Some(e.to_string())),
                    }
                }
                Err(e) => (None, String::new(), Some(e.without_url().to_string())),
            };
            let took_ms = started.elapsed().as_millis() as u64;
            let read = if status == Some(200) && error.is_none() {
                read_answer(&answer, check)
            } else {
                Answered::Bad(String::new())
            };
            let ack = !matches!(read, Answered::Bad(_));
            self.count("push_attempts");
            let last = ack || attempt == s.retries;
            let mut st = self.lock();
            if let Some(r) = st.push.records.iter_mut().find(|r| r.id == id) {
                r.attempts.push(PushAttempt {
                    at: self.clock.now(),
                    status,
                    took_ms,
                    answer: answer.chars().take(200).collect(),
                    error,
                });
                r.acknowledged = ack;
                match read {
                    Answered::Reply(xml) => r.reply = Some(xml),
                    Answered::Bad(why) if !why.is_empty() => r.reply_error = Some(why),
                    _ => {}
                }
                r.finished = last;
            }
            drop(st);
            if last {
                self.count(if ack {
                    "pushes_acknowledged"
                } else {
                    "pushes_unacknowledged"
                });
                return;
            }
        }
    }
}

/// The app's original id (`gh_...`), WeChat's `ToUserName`.
pub fn original_id(appid: &str) -> String {
    format!("gh_{}", &hash_token(&format!("gh|{appid}"))[..12])
}

/// The URL with WeChat's query and the body, in the app's mode.
fn sign(
    mut url: url::Url,
    token: &str,
    appid: &str,
    mode: &str,
    key: Option<&MessageCrypto>,
    xml: &str,
    sim: &Sim,
) -> (String, String) {
    let ts = sim.clock.now().to_string();
    let nonce =
        rand::RngExt::random_range(&mut rand::rng(), 100_000_000u64..10_000_000_000).to_string();
    let openid = crate::push::xml::parse(xml)
        .ok()
        .and_then(|r| r.field("FromUserName").map(str::to_owned))
        .unwrap_or_default();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("signature", &signature(&[token, &ts, &nonce]));
        q.append_pair("timestamp", &ts);
        q.append_pair("nonce", &nonce);
        q.append_pair("openid", &openid);
    }
    let Some(key) = key else {
        return (url.into(), xml.to_owned());
    };
    let encrypt = key.encrypt(xml, appid);
    url.query_pairs_mut()
        .append_pair("encrypt_type", "aes")
        .append_pair("msg_signature", &signature(&[token, &ts, &nonce, &encrypt]));
    let body = if mode == "compatible" {
        match xml.rfind("</xml>") {
            Some(end) => format!(
                "{}<Encrypt>{}</Encrypt></xml>",
                &xml[..end],
                cdata(&encrypt)
            ),
            None => xml.to_owned(),
        }
    } else {
        format!(
            "<xml><ToUserName>{}</ToUserName><Encrypt>{}</Encrypt></xml>",
            cdata(&original_id(appid)),
            cdata(&encrypt)
        )
    };
    (url.into(), body)
}

type Answer = (StatusCode, Json<Value>);

fn answer(r: Result<u64, PushSetupError>) -> Answer {
    match r {
        Ok(id) => (StatusCode::ACCEPTED, Json(json!({ "push": id }))),
        Err(e) => (e.status(), Json(json!({ "error": e.to_string() }))),
    }
}

async fn set_settings(State(sim): State<Sim>, Json(s): Json<PushSettings>) -> Json<PushSettings> {
    sim.set_push_settings(s.clone());
    Json(s)
}

async fn get_settings(State(sim): State<Sim>) -> Json<PushSettings> {
    Json(sim.push_settings())
}

async fn list(State(sim): State<Sim>) -> Json<Value> {
    Json(json!({ "pushes": sim.pushes() }))
}

#[derive(Deserialize)]
struct ReportRequest {
    appid: String,
    openid: String,
    msgid: i64,
    status: Option<String>,
}

async fn template_report(State(sim): State<Sim>, Json(r): Json<ReportRequest>) -> Answer {
    answer(sim.template_report(&r.appid, &r.openid, r.msgid, r.status))
}

#[derive(Deserialize)]
struct RawEvent {
    appid: String,
    xml: String,
}

async fn raw_event(State(sim): State<Sim>, Json(r): Json<RawEvent>) -> Answer {
    answer(sim.push_raw(&r.appid, &r.xml))
}

#[derive(Deserialize)]
struct ForApp {
    appid: String,
}

async fn follow(State(sim): State<Sim>, Path(id): Path<String>, Json(r): Json<ForApp>) -> Answer {
    answer(sim.set_follow(&r.appid, &id, true))
}

async fn unfollow(State(sim): State<Sim>, Path(id): Path<String>, Json(r): Json<ForApp>) -> Answer {
    answer(sim.set_follow(&r.appid, &id, false))
}

#[derive(Deserialize)]
struct Choice {
    template_id: String,
    status: String,
    popup_scene: Option<i64>,
}

#[derive(Deserialize)]
struct ChoicesRequest {
    appid: String,
    /// `popup` (default) or `change`.
    #[serde(default)]
    event: Option<String>,
    choices: Vec<Choice>,
}

async fn subscriptions(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(r): Json<ChoicesRequest>,
) -> Answer {
    let change = match r.event.as_deref() {
        None | Some("popup") => false,
        Some("change") => true,
        Some(other) => {
            return answer(Err(PushSetupError::Invalid(format!(
                "event must be popup or change, not {other:?}"
            ))));
        }
    };
    let choices: Vec<_> = r
        .choices
        .into_iter()
        .map(|c| (c.template_id, c.status, c.popup_scene))
        .collect();
    answer(sim.subscription_choices(&r.appid, &id, change, &choices))
}
