//! A WeChat stand-in that keeps WeChat's rules: strict authorize links, single-use codes
//! that die after 5 minutes, refresh tokens for 30 days, unionid across apps of one group,
//! snapshot-mode people. Served alone by `wxlink sim`, or under `/sim` in the sandbox.
//!
//! It also pushes to the apps' push URLs as WeChat does (delivery reports, follow and
//! unfollow, subscription choices, people's text messages and menu clicks), signed and
//! encrypted in each app's mode, and reads the passive replies they are answered with.
//!
//! Control routes under `/_sim/` register apps, create people, mint mini-program login
//! codes, block people, move the clock and report what was served and pushed.

mod chat;
mod control;
pub mod custom;
mod faults;
mod followers;
mod message;
mod message_control;
mod miniprogram;
mod oauth;
pub mod push;
mod templates;
mod ticket;
mod token;

pub use message::ReceivedMessage;
pub use miniprogram::MintError;
pub use templates::SimTemplate;

use crate::clock::Clock;
use crate::domain::hash_token;
use axum::Router;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A code dies this long after it was issued.
const CODE_TTL_SECS: i64 = 300;
const WEB_TOKEN_TTL_SECS: i64 = 7200;
const REFRESH_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;

/// An app the simulator knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimApp {
    pub appid: String,
    pub secret: String,
    /// `official_account` or `mini_program`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// The web-authorization domain (`host` or `host:port`) redirect_uri must match.
    #[serde(default)]
    pub auth_domain: Option<String>,
    /// Apps in the same group share unionids (one Open Platform account).
    #[serde(default)]
    pub unionid_group: Option<String>,
    /// Lifetime of global access tokens (WeChat: 7200); shorten it to test expiry.
    #[serde(default)]
    pub token_ttl_secs: Option<i64>,
    /// The console's server URL: where pushes go (e.g. `https://auth.example.com/wechat/oa/push`).
    #[serde(default)]
    pub push_url: Option<String>,
    /// The console's Token, signing every push.
    #[serde(default)]
    pub push_token: Option<String>,
    /// The console's EncodingAESKey, for compatible and safe mode.
    #[serde(default)]
    pub encoding_aes_key: Option<String>,
    /// `plain`, `compatible` or `safe`; default safe with a key, plain without.
    #[serde(default)]
    pub push_mode: Option<String>,
    /// The console's JS接口安全域名 (`host`, `host:port` or `host/path`): the pages whose
    /// `wx.config` is accepted.
    #[serde(default)]
    pub js_safe_domains: Vec<String>,
    /// Lifetime of JS-SDK tickets (WeChat: 7200); shorten it to test expiry.
    #[serde(default)]
    pub ticket_ttl_secs: Option<i64>,
    /// getticket calls allowed per Beijing day and ticket type before 45009.
    #[serde(default)]
    pub ticket_daily_limit: Option<u64>,
}

impl SimApp {
    /// The simulator's copy of a configured app: same appid, secret and push settings,
    /// pushing to `service_base` + `/wechat/{id}/push`. No authorization domain or unionid
    /// group: callers add them.
    pub fn for_config(app: &crate::config::AppConfig, service_base: &str) -> Self {
        use secrecy::ExposeSecret;
        let push_token = app
            .push_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned());
        Self {
            appid: app.wechat.appid.to_string(),
            secret: app.wechat.secret.expose_secret().to_owned(),
            kind: app.kind.as_str().to_owned(),
            auth_domain: None,
            unionid_group: None,
            token_ttl_secs: None,
            push_url: push_token.as_ref().map(|_| {
                format!(
                    "{}/wechat/{}/push",
                    service_base.trim_end_matches('/'),
                    app.id
                )
            }),
            push_token,
            encoding_aes_key: app
                .encoding_aes_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            push_mode: Some(app.push_mode.as_str().to_owned()),
            js_safe_domains: app
                .js_safe_domains
                .entries()
                .iter()
                .map(|d| d.as_str().to_owned())
                .collect(),
            ticket_ttl_secs: None,
            ticket_daily_limit: None,
        }
    }

    fn token_ttl(&self) -> i64 {
        self.token_ttl_secs.unwrap_or(7200).max(1)
    }

    /// How pushes are sent: `plain`, `compatible` or `safe`.
    pub fn push_mode(&self) -> &str {
        match (self.push_mode.as_deref(), &self.encoding_aes_key) {
            (Some(m @ ("plain" | "compatible" | "safe")), _) => m,
            (_, Some(_)) => "safe",
            (_, None) => "plain",
        }
    }

    /// The "last 5 minutes" of a token, shrunk for short test lifetimes.
    fn renewal_window(&self) -> i64 {
        (self.token_ttl() / 4).min(300)
    }
}

fn default_kind() -> String {
    "official_account".into()
}

/// A simulated WeChat user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub nickname: String,
    pub headimgurl: String,
    /// In snapshot-page mode WeChat hands out a virtual openid and `is_snapshotuser=1`.
    pub snapshot: bool,
}

#[derive(Debug, Clone)]
struct IssuedCode {
    appid: String,
    person: String,
    scope: String,
    issued_at: i64,
    used: bool,
}

#[derive(Debug, Clone)]
struct WebGrant {
    appid: String,
    person: String,
    scope: String,
    expires_at: i64,
}

#[derive(Default)]
struct SimState {
    apps: BTreeMap<String, SimApp>,
    people: BTreeMap<String, Person>,
    codes: HashMap<String, IssuedCode>,
    access_tokens: HashMap<String, WebGrant>,
    refresh_tokens: HashMap<String, WebGrant>,
    stats: BTreeMap<String, u64>,
    next_id: u64,
    tokens: token::TokenState,
    tickets: ticket::TicketState,
    messages: message::MessageState,
    templates: templates::TemplateState,
    login: miniprogram::LoginState,
    faults: faults::Faults,
    push: push::PushState,
    custom: custom::CustomState,
    followers: followers::FollowerState,
}

/// The simulator; cheap to clone.
#[derive(Clone)]
pub struct Sim {
    state: Arc<Mutex<SimState>>,
    clock: Clock,
    /// Pushes to the apps' push URLs.
    http: reqwest::Client,
}

impl Sim {
    pub fn new(clock: Clock) -> Self {
        Self {
            state: Arc::new(Mutex::new(SimState::default())),
            clock,
            http: reqwest::Client::new(),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The simulator's routes, to be served at its base URL.
    pub fn router(&self) -> Router {
        Router::new()
            .merge(oauth::router())
            .merge(token::router())
            .merge(ticket::router())
            .merge(message::router())
            .merge(templates::router())
            .merge(miniprogram::router())
            .merge(custom::router())
            .merge(followers::router())
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                faults::inject,
            ))
            .layer(axum::middleware::from_fn(wechat_shape))
            .merge(control::router())
            .merge(ticket::control_router())
            .merge(push::router())
            .merge(chat::router())
            .merge(message_control::router())
            .merge(miniprogram::control_router())
            .merge(custom::control_router())
            .merge(followers::control_router())
            .with_state(self.clone())
    }

    pub fn add_app(&self, app: SimApp) {
        self.lock().apps.insert(app.appid.clone(), app);
    }

    pub fn add_person(&self, nickname: Option<String>, snapshot: bool) -> Person {
        let mut st = self.lock();
        st.next_id += 1;
        let id = format!("p{}", st.next_id);
        let person = Person {
            nickname: nickname.unwrap_or_else(|| format!("微信用户{}", st.next_id)),
            headimgurl: format!("https://thirdwx.qlogo.cn/mmopen/sim/{id}/132"),
            id: id.clone(),
            snapshot,
        };
        st.people.insert(id, person.clone());
        person
    }

    /// Changes a person's profile; false when there is no such person.
    pub fn change_person(
        &self,
        id: &str,
        nickname: Option<String>,
        headimgurl: Option<String>,
    ) -> bool {
        let mut st = self.lock();
        let Some(p) = st.people.get_mut(id) else {
            return false;
        };
        if let Some(n) = nickname {
            p.nickname = n;
        }
        if let Some(h) = headimgurl {
            p.headimgurl = h;
        }
        true
    }

    pub fn people(&self) -> Vec<Person> {
        self.lock().people.values().cloned().collect()
    }

    pub fn person(&self, id: &str) -> Option<Person> {
        self.lock().people.get(id).cloned()
    }

    /// The openid this person has in that app (virtual for snapshot-mode people).
    pub fn openid_of(&self, appid: &str, person: &str) -> String {
        let snapshot = self.person(person).is_some_and(|p| p.snapshot);
        let tag = if snapshot { "snapshot" } else { "openid" };
        format!("o{}", &hash_token(&format!("{tag}|{appid}|{person}"))[..27])
    }

    /// The person's unionid for that app, when the app belongs to a group.
    pub fn unionid_of(&self, appid: &str, person: &str) -> Option<String> {
        let group = {
            let st = self.lock();
            if st.followers.no_unionid.contains(person) {
                return None;
            }
            st.apps.get(appid)?.unionid_group.clone()?
        };
        if self.person(person).is_some_and(|p| p.snapshot) {
            return None;
        }
        Some(format!(
            "u{}",
            &hash_token(&format!("unionid|{group}|{person}"))[..27]
        ))
    }

    /// Checks appid and (when given) secret, in constant time: 41002 for a missing appid,
    /// 40013 for an unknown one, 41004 for a missing secret, 40125 for a wrong one.
    fn check_credentials(
        &self,
        appid: &str,
        secret: Option<&str>,
    ) -> Result<SimApp, axum::response::Response> {
        if appid.is_empty() {
            return Err(wx_error(41002, "appid missing"));
        }
        let app = self.lock().apps.get(appid).cloned();
        let Some(app) = app else {
            return Err(wx_error(40013, "invalid appid"));
        };
        if let Some(secret) = secret {
            if secret.is_empty() {
                return Err(wx_error(41004, "appsecret missing"));
            }
            let ok: bool =
                subtle::ConstantTimeEq::ct_eq(app.secret.as_bytes(), secret.as_bytes()).into();
            if !ok {
                return Err(wx_error(40125, "invalid appsecret"));
            }
        }
        Ok(app)
    }

    /// The kind (`official_account`, `mini_program`) of a registered app; empty if unknown.
    fn app_kind(&self, appid: &str) -> String {
        self.lock()
            .apps
            .get(appid)
            .map(|a| a.kind.clone())
            .unwrap_or_default()
    }

    /// Every token the simulator has issued (global access tokens, JS-SDK tickets, web
    /// access and refresh tokens): what a test looks for where none may appear.
    pub fn issued_tokens(&self) -> Vec<String> {
        let s = self.lock();
        s.tokens
            .issued()
            .chain(s.tickets.issued())
            .chain(s.access_tokens.keys())
            .chain(s.refresh_tokens.keys())
            .cloned()
            .collect()
    }

    fn count(&self, what: &str) {
        *self.lock().stats.entry(what.to_owned()).or_default() += 1;
    }

    pub fn stats(&self) -> BTreeMap<String, u64> {
        self.lock().stats.clone()
    }
}

/// A JSON body as WeChat reads it: whatever the `Content-Type` (stock wechatpy sends none),
/// 44002 for an empty body, 47001 for one that is not JSON or not of the expected shape.
/// The outcome is kept so a handler checks the access token first, as WeChat does.
pub(crate) struct WxBody<T>(Result<T, axum::response::Response>);

impl<T, S> axum::extract::FromRequest<S> for WxBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(_) => return Ok(Self(Err(wx_error(47001, "data format error")))),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Err(wx_error(44002, "empty post data"))));
        }
        Ok(Self(
            serde_json::from_slice(&bytes).map_err(|_| wx_error(47001, "data format error")),
        ))
    }
}

/// The parsed body, or WeChat's answer to a bad one.
fn body<T>(b: WxBody<T>) -> Result<T, axum::response::Response> {
    b.0
}

/// WeChat's error answer: HTTP 200 with `{"errcode","errmsg"}`, the message ending in the
/// request id WeChat appends (` rid: 6571f5a6-1c2d3e4f-5a6b7c8d`).
fn wx_error(code: i64, msg: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    axum::Json(crate::wechat::types::ErrorBody::new(code, with_rid(msg))).into_response()
}

/// `msg` with a fresh WeChat-style request id appended.
fn with_rid(msg: &str) -> String {
    let r: [u32; 3] = rand::random();
    format!("{msg} rid: {:08x}-{:08x}-{:08x}", r[0], r[1], r[2])
}

/// Keeps every WeChat route in WeChat's shape where the framework would answer on its own:
/// a wrong method is 43002 (`GET` on a POST route) or 43001, a query or body the extractors
/// refuse is 47001, all as JSON with HTTP 200; `/sns/*` answers JSON labelled `text/plain`,
/// as WeChat's servers do there.
async fn wechat_shape(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    let sns = req.uri().path().starts_with("/sns/");
    // A route refusing GET takes POST, and the other way round.
    let wants_post = req.method() == axum::http::Method::GET;
    let mut resp = next.run(req).await;
    let status = resp.status();
    let is = |resp: &axum::response::Response, ct: &str| {
        resp.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(ct))
    };
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp = if wants_post {
            wx_error(43002, "require POST method")
        } else {
            wx_error(43001, "require GET method")
        };
    } else if status.is_client_error() && status != StatusCode::NOT_FOUND && !is(&resp, "text/html")
    {
        resp = wx_error(47001, "data format error");
    }
    if sns && is(&resp, "application/json") {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
    }
    resp
}

/// The cookie that remembers which simulated person uses this browser.
pub const PERSON_COOKIE: &str = "wxsim_person";

/// The simulated person named by the `wxsim_person` cookie, if any.
pub fn person_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    let prefix = format!("{PERSON_COOKIE}=");
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&prefix).map(str::to_owned))
}

/// The `Set-Cookie` value that makes `person` this browser's simulated person.
pub fn set_person_cookie(person: &str) -> String {
    format!("{PERSON_COOKIE}={person}; Path=/; SameSite=Lax")
}

/// Runs the simulator alone on a listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sim: Sim,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, sim.router())
        .with_graceful_shutdown(shutdown)
        .await
}
