//! The simulated WeChat as tests see it: a simulator on a loopback port and one client of
//! its `/_sim/*` control routes, shared by the in-process tests (through `TestApp`) and
//! the tests whose service is a real process.

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use std::future::Future;
use wxlink::clock::Clock;
use wxlink::sim::Sim;

/// Starts a simulator on a random loopback port that serves until `stop`; returns its
/// state (for tests that read it directly) and a client of its control routes.
pub async fn start(
    clock: Clock,
    stop: impl Future<Output = ()> + Send + 'static,
) -> (Sim, SimClient) {
    let sim = Sim::new(clock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(wxlink::sim::serve(listener, sim.clone(), stop));
    (sim, SimClient::new(base))
}

/// A simulator for tests whose service runs in another process (`TestApp` starts its
/// own), on the system clock, serving until the test ends.
pub async fn standalone() -> (Sim, SimClient) {
    start(Clock::system(), std::future::pending()).await
}

/// A client of the simulator's control routes: one method per route the tests use, each
/// checking the simulator accepted the call.
#[derive(Clone)]
pub struct SimClient {
    base: String,
    http: Client,
}

impl SimClient {
    /// A client of the simulator at `base` (e.g. `http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: Client::new(),
        }
    }

    /// The simulator's base URL: the `api_base` and `open_base` of the apps it plays.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST`s a JSON body to a control route; the caller checks the answer.
    async fn send(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST {sim}/_sim/...` with a JSON body; expects a 2xx and returns the JSON answer.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self.send(path, &body).await;
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// `GET {sim}/_sim/...`: the JSON answer.
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `POST /_sim/apps`: registers (or replaces) an app, e.g.
    /// `{"appid", "secret", "kind", "auth_domain", "token_ttl_secs", "push_url", ...}`.
    pub async fn add_app(&self, app: Value) {
        let r = self.send("/_sim/apps", &app).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{app}");
    }

    /// `GET /_sim/apps`: the apps the simulator knows.
    pub async fn apps(&self) -> Value {
        self.get("/_sim/apps").await
    }

    /// A new simulated WeChat user: `{id, nickname, openids: {appid: openid}, unionids}`.
    pub async fn person(&self, nickname: &str) -> Value {
        self.new_person(json!({ "nickname": nickname })).await
    }

    /// `POST /_sim/people` with its whole body (e.g. `{"snapshot": true}`).
    pub async fn new_person(&self, body: Value) -> Value {
        let r = self.send("/_sim/people", &body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    /// A template registered for an app: `kind` is `template`, `subscribe` or `form`.
    /// Returns its id.
    pub async fn template(&self, appid: &str, kind: &str, content: &str) -> String {
        self.titled_template(appid, kind, "测试模板", content).await
    }

    /// [`Self::template`] with a title of its own.
    pub async fn titled_template(
        &self,
        appid: &str,
        kind: &str,
        title: &str,
        content: &str,
    ) -> String {
        let r = self
            .send(
                "/_sim/templates",
                &json!({"appid": appid, "kind": kind, "title": title, "content": content}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["template_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `POST /_sim/faults`: what WeChat does wrong next (`{}` puts everything right).
    pub async fn faults(&self, faults: Value) {
        self.post("/_sim/faults", faults).await;
    }

    /// What `wx.login` returns to `person` inside the mini-program `appid`.
    pub async fn login_code(&self, person: &str, appid: &str) -> String {
        let r = self
            .send(
                "/_sim/login-codes",
                &json!({ "person": person, "appid": appid }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        v["code"].as_str().unwrap().to_owned()
    }

    /// Everything the simulator counted.
    pub async fn stats(&self) -> Value {
        self.get("/_sim/stats").await
    }

    /// A counter, e.g. `stable_token_calls:<appid>`; 0 when never counted.
    pub async fn counter(&self, name: &str) -> u64 {
        self.stats().await[name].as_u64().unwrap_or(0)
    }

    /// How many times the simulator was asked to exchange a code.
    pub async fn code_exchanges(&self) -> u64 {
        self.stats().await["code_exchanges"].as_u64().unwrap_or(0)
    }

    /// The messages WeChat received, e.g. with the query `?channel=template`.
    pub async fn messages(&self, query: &str) -> Vec<Value> {
        let v = self.get(&format!("/_sim/messages{query}")).await;
        v["messages"].as_array().unwrap().clone()
    }
}
