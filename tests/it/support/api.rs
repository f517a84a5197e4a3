//! The service's HTTP API as tests call it: authenticated requests and one helper per
//! route the tests use often (bind, send, messages, events, tickets, logins).

use super::browser::{location, query_param};
use super::service::{API_KEY, TestApp};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

impl TestApp {
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

    /// A simulated person bound to `user` in `app` (by their openid there); returns the
    /// person's id and openid.
    pub async fn person_for(&self, user: &str, app: &str, appid: &str) -> (String, String) {
        let p = self.simulator.person(&format!("user {user}")).await;
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

    /// Mints a link ticket for `user` through the API and returns its URL.
    pub async fn link_ticket(&self, user: &str, body: Value) -> String {
        let r = self
            .api_post(&format!("/api/v1/users/{user}/link-tickets"), body)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        v["url"].as_str().unwrap().to_owned()
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
