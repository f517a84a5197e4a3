//! One helper for every feature test: starts the WeChat simulator and the service on random
//! loopback ports, each test with its own database, and drives them over real HTTP.
#![allow(dead_code)]

pub mod alone;
pub mod process;
pub mod push;

use reqwest::header::{HeaderMap, HeaderValue, USER_AGENT};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::{CancellationToken, DropGuard};
use wxlink::app::App;
use wxlink::clock::Clock;
use wxlink::config::Config;
use wxlink::sim::{Sim, SimApp};

pub const OA_APPID: &str = "wxtestoa00000001";
pub const MP_APPID: &str = "wxtestmp00000002";
pub const OA2_APPID: &str = "wxtestoa20000003";
/// An Official Account whose token is fetched the classic way.
pub const CL_APPID: &str = "wxtestcl00000004";
/// A mini-program outside any unionid group, known to the simulator only; a test that
/// needs it in the service adds it with `Options::extra_toml`.
pub const MP2_APPID: &str = "wxtestmp20000005";
/// The test services' storage_key (32 bytes, base64).
pub const STORAGE_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const API_KEY: &str = "test-api-key-0123456789";
/// Push settings of the test apps: `oa` and `mp` in safe mode, `oa2` plain, `cl` compatible.
pub const OA_PUSH_TOKEN: &str = "oaPushToken1";
pub const OA_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const MP_PUSH_TOKEN: &str = "mpPushToken2";
pub const MP_AES_KEY: &str = "MpKey0123456789abcdefghijklmnopqrstuvwxyzAB";
pub const OA2_PUSH_TOKEN: &str = "oa2PushToken3";
pub const CL_PUSH_TOKEN: &str = "clPushToken4";
pub const CL_AES_KEY: &str = "ClKey0123456789abcdefghijklmnopqrstuvwxyzAB";
pub const WECHAT_UA: &str =
    "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.50 NetType/WIFI";

pub struct TestApp {
    /// The service, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
    pub sim_base: String,
    pub sim: Sim,
    /// The service's clock (state, ticket and login-code expiry).
    pub clock: Clock,
    /// The simulator's clock (code and token expiry).
    pub sim_clock: Clock,
    pub api: Client,
    /// The service's shared state (token manager, store...).
    pub ctx: wxlink::context::Ctx,
    config_toml: String,
    token: CancellationToken,
    _guard: DropGuard,
    _dir: tempfile::TempDir,
}

/// Extra TOML appended to the generated configuration.
#[derive(Default)]
pub struct Options {
    /// Appended to the configuration (e.g. more `[[apps]]`).
    pub extra_toml: String,
    /// Lines of the `[tokens]` section (the default checks the store every 50 ms).
    pub tokens_toml: Option<String>,
    /// Lifetime of the simulator's global access tokens (WeChat: 7200 s).
    pub sim_token_ttl_secs: Option<i64>,
    /// Run on PostgreSQL instead of SQLite: the server URL (a fresh database is created).
    pub postgres: Option<String>,
    /// Lines of the `[outbox]` section (the default polls every 20 ms and retries after
    /// 20 ms, doubling up to 200 ms).
    pub outbox_toml: Option<String>,
}

/// The PostgreSQL server tests may use, from `WXLINK_TEST_POSTGRES_URL` (set by `.ci/run`).
/// Without it, PostgreSQL tests say they were skipped.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("WXLINK_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        // Straight to stderr: the test harness would swallow eprintln!.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: WXLINK_TEST_POSTGRES_URL is not set, so this PostgreSQL test did not run (.ci/run sets it)"
        );
    }
    url
}

/// Creates an empty database on the server and returns its URL.
pub async fn fresh_postgres_database(server: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .expect("PostgreSQL reachable");
    let name = format!(
        "wxlink_test_{}",
        wxlink::domain::OneTimeCode::generate()
            .expose()
            .to_lowercase()
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> Self {
        let token = CancellationToken::new();
        let sim_clock = Clock::system();
        let sim = Sim::new(sim_clock.clone());
        let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim_base = format!("http://{}", sim_listener.local_addr().unwrap());
        let t = token.clone();
        tokio::spawn(wxlink::sim::serve(sim_listener, sim.clone(), async move {
            t.cancelled().await
        }));

        let dir = tempfile::tempdir().unwrap();
        // WXLINK_TEST_ALL_ON_POSTGRES=1 (with WXLINK_TEST_POSTGRES_URL) runs every test on PostgreSQL.
        let everything_on_postgres =
            std::env::var("WXLINK_TEST_ALL_ON_POSTGRES").as_deref() == Ok("1");
        let server = opts.postgres.clone().or_else(|| {
            everything_on_postgres
                .then(|| std::env::var("WXLINK_TEST_POSTGRES_URL").ok())
                .flatten()
        });
        let db = match &server {
            Some(server) => fresh_postgres_database(server).await,
            None => format!("sqlite://{}", dir.path().join("wxlink.db").display()),
        };
        let toml = format!(
            r#"
            listen = "127.0.0.1:0"
            database_url = "{db}"
            return_to_allow = ["https://shop.example.com/"]
            storage_key = "{STORAGE_KEY}"

            [[api_keys]]
            name = "tests"
            key_sha256 = "{key}"

            [[apps]]
            id = "oa"
            kind = "official_account"
            appid = "{OA_APPID}"
            secret = "oa-secret"
            push_token = "{OA_PUSH_TOKEN}"
            encoding_aes_key = "{OA_AES_KEY}"
            api_base = "{sim_base}"
            open_base = "{sim_base}"

            [[apps]]
            id = "mp"
            kind = "mini_program"
            appid = "{MP_APPID}"
            secret = "mp-secret"
            push_token = "{MP_PUSH_TOKEN}"
            encoding_aes_key = "{MP_AES_KEY}"
            api_base = "{sim_base}"
            open_base = "{sim_base}"

            [[apps]]
            id = "oa2"
            kind = "official_account"
            appid = "{OA2_APPID}"
            secret = "oa2-secret"
            push_token = "{OA2_PUSH_TOKEN}"
            api_base = "{sim_base}"
            open_base = "{sim_base}"

            [[apps]]
            id = "cl"
            kind = "official_account"
            appid = "{CL_APPID}"
            secret = "cl-secret"
            token_mode = "classic"
            push_token = "{CL_PUSH_TOKEN}"
            encoding_aes_key = "{CL_AES_KEY}"
            push_mode = "compatible"
            api_base = "{sim_base}"
            open_base = "{sim_base}"
            {extra}

            [tokens]
            {tokens}

            [outbox]
            {outbox}
            "#,
            key = wxlink::domain::hash_token(API_KEY),
            extra = opts.extra_toml.replace("{SIM}", &sim_base),
            tokens = opts
                .tokens_toml
                .as_deref()
                .unwrap_or("check_interval_ms = 50\njitter_secs = 60"),
            outbox = opts
                .outbox_toml
                .as_deref()
                .unwrap_or("poll_interval_ms = 20\nbackoff_base_ms = 20\nbackoff_max_ms = 200"),
        );
        let clock = Clock::system();
        // The simulator knows the apps before the service (and its token refreshers) start.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let base = format!("http://127.0.0.1:{port}");
        let domain = format!("127.0.0.1:{port}");
        let toml = toml.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        // The standard apps as the service has them (secrets, push settings), pushing to it.
        let config = Config::from_toml_str(&toml).expect("test configuration");
        for (appid, group) in [
            (OA_APPID, Some("g1")),
            (MP_APPID, Some("g1")),
            (OA2_APPID, None),
            (CL_APPID, None),
        ] {
            let app = config
                .apps
                .iter()
                .find(|a| a.wechat.appid.as_str() == appid)
                .expect("standard test app");
            sim.add_app(SimApp {
                auth_domain: Some(domain.clone()),
                unionid_group: group.map(str::to_owned),
                token_ttl_secs: opts.sim_token_ttl_secs,
                ..SimApp::for_config(app, &base)
            });
        }
        // A mini-program some tests add to the service with `extra_toml`.
        sim.add_app(SimApp {
            appid: MP2_APPID.into(),
            secret: "mp2-secret".into(),
            kind: "mini_program".into(),
            auth_domain: Some(domain.clone()),
            unionid_group: None,
            token_ttl_secs: opts.sim_token_ttl_secs,
            push_url: None,
            push_token: None,
            encoding_aes_key: None,
            push_mode: None,
        });
        let (_, ctx) = start_instance(&toml, clock.clone(), token.clone()).await;

        TestApp {
            base,
            sim_base,
            sim,
            clock,
            sim_clock,
            api: Client::new(),
            ctx,
            config_toml: toml,
            _guard: token.clone().drop_guard(),
            token,
            _dir: dir,
        }
    }

    /// Another wxlink instance on the same database and simulator (what a second process or
    /// a restart sees), with its own clock. Returns its base URL and state.
    pub async fn another_instance(&self, clock: Clock) -> (String, wxlink::context::Ctx) {
        let port = self.base.rsplit(':').next().unwrap();
        let toml = self
            .config_toml
            .replace(
                &format!("listen = \"127.0.0.1:{port}\""),
                "listen = \"127.0.0.1:0\"",
            )
            .replace(
                "return_to_allow",
                &format!("public_url = \"{}\"\nreturn_to_allow", self.base),
            );
        start_instance(&toml, clock, self.token.clone()).await
    }

    /// Moves both the service's and the simulator's clocks.
    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
        self.sim_clock.advance(secs);
    }

    /// A simulator counter, e.g. `stable_token_calls:<appid>`.
    pub async fn counter(&self, name: &str) -> u64 {
        self.sim_stats().await[name].as_u64().unwrap_or(0)
    }

    /// A new simulated WeChat user: `{id, nickname, openids: {appid: openid}, unionids}`.
    pub async fn person(&self, nickname: &str) -> Value {
        self.new_person(json!({ "nickname": nickname })).await
    }

    pub async fn new_person(&self, body: Value) -> Value {
        let r = self
            .api
            .post(format!("{}/_sim/people", self.sim_base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    pub async fn sim_stats(&self) -> Value {
        self.api
            .get(format!("{}/_sim/stats", self.sim_base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// How many times the simulator was asked to exchange a code.
    pub async fn code_exchanges(&self) -> u64 {
        self.sim_stats().await["code_exchanges"]
            .as_u64()
            .unwrap_or(0)
    }

    /// A browser inside WeChat: cookies kept, redirects not followed.
    pub fn wechat_browser(&self) -> Client {
        let mut h = HeaderMap::new();
        h.insert(USER_AGENT, HeaderValue::from_static(WECHAT_UA));
        browser(h)
    }

    /// A desktop browser, outside WeChat.
    pub fn desktop_browser(&self) -> Client {
        browser(HeaderMap::new())
    }

    /// Waits until the simulator has finished at least `n` pushes (acknowledged or retries
    /// spent) and returns every push.
    pub async fn settled_pushes(&self, n: usize) -> Vec<wxlink::sim::push::PushRecord> {
        for _ in 0..300 {
            let pushes = self.sim.pushes();
            if pushes.iter().filter(|p| p.finished).count() >= n {
                return pushes;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("fewer than {n} pushes settled: {:#?}", self.sim.pushes());
    }

    /// `GET /api/v1/apps/{app}/events?{query}`: the events array.
    pub async fn events(&self, app: &str, query: &str) -> Vec<Value> {
        let r = self
            .api_get(&format!("/api/v1/apps/{app}/events?{query}"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        v["events"].as_array().unwrap().clone()
    }

    /// Waits until the event `id` of `app` is handled; returns it.
    pub async fn handled_event(&self, app: &str, id: i64) -> Value {
        for _ in 0..300 {
            let events = self.events(app, &format!("after={}&limit=1", id - 1)).await;
            if let Some(e) = events.first().filter(|e| !e["handled_at"].is_null()) {
                return e.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("event {id} of {app} was not handled");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn api_get(&self, path: &str) -> Response {
        self.api
            .get(self.url(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
    }

    /// `GET` an API path and its JSON body (whatever the status).
    pub async fn api_json(&self, path: &str) -> Value {
        self.api_get(path).await.json().await.unwrap()
    }

    pub async fn api_post(&self, path: &str, body: Value) -> Response {
        self.api
            .post(self.url(path))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn api_put(&self, path: &str, body: Value) -> Response {
        self.api
            .put(self.url(path))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Binds `(app, openid)` to `user` through the API.
    pub async fn bind(&self, user: &str, app: &str, openid: &str, body: Value) -> Response {
        self.api_put(
            &format!("/api/v1/users/{user}/identities/{app}/{openid}"),
            body,
        )
        .await
    }

    pub async fn api_delete(&self, path: &str) -> Response {
        self.api
            .delete(self.url(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
    }

    /// A template registered in the simulator for an app: `kind` is `template`,
    /// `subscribe` or `form`. Returns its id.
    pub async fn template(&self, appid: &str, kind: &str, content: &str) -> String {
        let r = self
            .api
            .post(format!("{}/_sim/templates", self.sim_base))
            .json(&json!({"appid": appid, "kind": kind, "title": "测试模板", "content": content}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["template_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A simulated person bound to `user` in `app` (by their openid there); returns the
    /// person's id and openid.
    pub async fn person_for(&self, user: &str, app: &str, appid: &str) -> (String, String) {
        let p = self.person(&format!("user {user}")).await;
        let id = p["id"].as_str().unwrap().to_owned();
        let openid = p["openids"][appid].as_str().unwrap().to_owned();
        let r = self.bind(user, app, &openid, json!({})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        (id, openid)
    }

    /// `POST /api/v1/users/{user}/messages`.
    pub async fn send(&self, user: &str, body: Value) -> Response {
        self.api_post(&format!("/api/v1/users/{user}/messages"), body)
            .await
    }

    /// Sends with an `Idempotency-Key`.
    pub async fn send_keyed(&self, user: &str, key: &str, body: Value) -> Response {
        self.api
            .post(self.url(&format!("/api/v1/users/{user}/messages")))
            .bearer_auth(API_KEY)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Sends and expects 202; returns the message id.
    pub async fn send_ok(&self, user: &str, body: Value) -> String {
        let r = self.send(user, body).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["status"], "queued");
        v["id"].as_str().unwrap().to_owned()
    }

    /// `GET /api/v1/messages/{id}`.
    pub async fn message(&self, id: &str) -> Value {
        let r = self.api_get(&format!("/api/v1/messages/{id}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Polls a message until its status is one of `states` (10 s at most).
    pub async fn message_until(&self, id: &str, states: &[&str]) -> Value {
        let mut last = Value::Null;
        for _ in 0..500 {
            last = self.message(id).await;
            if states.iter().any(|s| last["status"] == *s) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("message {id} never reached {states:?}: {last:#}");
    }

    /// Polls until the message reached WeChat: `sent`, or already `delivered` (the
    /// simulator pushes its delivery report 100 ms after a template send).
    pub async fn sent(&self, id: &str) -> Value {
        self.message_until(id, &["sent", "delivered"]).await
    }

    /// What the simulator received, e.g. `?channel=template`.
    pub async fn sim_messages(&self, query: &str) -> Vec<Value> {
        let v: Value = self
            .api
            .get(format!("{}/_sim/messages{query}", self.sim_base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["messages"].as_array().unwrap().clone()
    }

    /// `POST {sim}/_sim/...` with a JSON body; expects a 2xx.
    pub async fn sim_post(&self, path: &str, body: Value) -> Value {
        let r = self
            .api
            .post(format!("{}{path}", self.sim_base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Opens an authorize URL of ours in `browser` and lets the simulator answer as
    /// `person` (`consent` is `allow` or `deny` for snsapi_userinfo). Returns the callback
    /// URL WeChat sent the browser to; the callback itself is not requested yet.
    pub async fn through_wechat(
        &self,
        browser: &Client,
        authorize_url: &str,
        person: &str,
        consent: &str,
    ) -> String {
        let r = browser.get(authorize_url).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FOUND,
            "authorize should redirect to WeChat: {}",
            r.text().await.unwrap()
        );
        let to_wechat = location(&r);
        assert!(to_wechat.starts_with(&self.sim_base), "{to_wechat}");
        let r = browser
            .get(&to_wechat)
            .header("x-wxsim-person", person)
            .header("x-wxsim-consent", consent)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FOUND,
            "simulator should redirect back: {}",
            r.text().await.unwrap()
        );
        let back = location(&r);
        assert!(back.starts_with(&self.base), "{back}");
        back
    }

    /// The whole flow: authorize, WeChat, callback. Returns the callback's response.
    pub async fn sign_in(
        &self,
        browser: &Client,
        authorize_path: &str,
        person: &str,
        consent: &str,
    ) -> Response {
        let callback = self
            .through_wechat(browser, &self.url(authorize_path), person, consent)
            .await;
        browser.get(callback).send().await.unwrap()
    }

    /// Mints a link ticket for `user` through the API and returns its URL.
    pub async fn link_ticket(&self, user: &str, body: Value) -> String {
        let r = self
            .api_post(&format!("/api/v1/users/{user}/link-tickets"), body)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        v["url"].as_str().unwrap().to_owned()
    }

    /// What `wx.login` returns to `person` inside the mini-program `appid` (simulator).
    pub async fn login_code(&self, person: &str, appid: &str) -> String {
        let r = self
            .api
            .post(format!("{}/_sim/login-codes", self.sim_base))
            .json(&json!({ "person": person, "appid": appid }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        v["code"].as_str().unwrap().to_owned()
    }

    /// Mini-program login through the API: `POST /api/v1/apps/{app}/sessions`.
    pub async fn mp_session(&self, app: &str, body: Value) -> Response {
        self.api_post(&format!("/api/v1/apps/{app}/sessions"), body)
            .await
    }

    /// Redeems the `wxlink_code` of a redirect to return_to; returns the identity JSON.
    pub async fn redeem_from(&self, redirect: &Response) -> Value {
        let code =
            query_param(&location(redirect), "wxlink_code").expect("wxlink_code in the redirect");
        let r = self
            .api_post("/api/v1/login-codes/redeem", json!({ "code": code }))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }
}

async fn start_instance(
    toml: &str,
    clock: Clock,
    stop: CancellationToken,
) -> (String, wxlink::context::Ctx) {
    let config = Config::from_toml_str(toml).expect("test configuration");
    let app = App::build(config, clock).await.expect("service starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let ctx = app.context().clone();
    tokio::spawn(app.run_until_stopped(async move { stop.cancelled().await }));
    (base, ctx)
}

fn browser(headers: HeaderMap) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

pub fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `data-outcome` a page declares.
pub async fn outcome(r: Response) -> (StatusCode, String, String) {
    let status = r.status();
    let body = r.text().await.unwrap();
    let outcome = body
        .split("data-outcome=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("")
        .to_owned();
    (status, outcome, body)
}

pub fn encode(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

/// A TCP forwarder in front of PostgreSQL that a test can cut and restore: a database
/// outage without touching the server every other test uses.
pub struct DbProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl DbProxy {
    pub async fn start(target: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (u, g) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                let mut cut = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            generation,
        }
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by this proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(self.port)).unwrap();
        u.to_string()
    }
}
