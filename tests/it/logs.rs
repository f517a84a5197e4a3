//! Logs: a whole flow (web sign-in with a ticket and without, a repeated callback, login
//! codes, mini-program login, tokens handed out and invalidated, sends, refusals) logged at
//! debug level as JSON, the way `WXLINK_LOG_FORMAT=json` writes them, then searched for
//! every secret the run configured or handed out: none may appear. Lines written while a
//! request is handled carry its request id; outbox lines carry their message id.
//!
//! The capturing subscriber is the process's global default, so the test runs alone in a
//! process of its own (`support::alone`).

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::EnvFilter;

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Capture(buf.clone());
    // cookie_store logs the cookies the tests' own browsers receive; wxlink does not use it.
    wxlink::telemetry::init_with(EnvFilter::new("debug,cookie_store=off"), true, move || {
        writer.clone()
    });
    buf
}

#[tokio::test]
async fn a_whole_flow_logs_no_secret_and_names_its_requests() {
    if !alone::in_own_process(
        module_path!(),
        "a_whole_flow_logs_no_secret_and_names_its_requests",
    )
    .await
    {
        return;
    }
    let logs = capture();
    let app = TestApp::spawn().await;
    let mut secrets: Vec<(String, String)> = [
        ("oa secret", "oa-secret"),
        ("mp secret", "mp-secret"),
        ("oa2 secret", "oa2-secret"),
        ("cl secret", "cl-secret"),
        ("API key", API_KEY),
        ("storage key", STORAGE_KEY),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    let mut keep = |what: &str, value: &str| {
        assert!(
            value.len() >= 8,
            "{what} {value:?} is too short to search for"
        );
        secrets.push((what.to_owned(), value.to_owned()));
    };

    // Global access tokens handed out.
    for a in ["oa", "mp", "oa2", "cl"] {
        let r = app.api_get(&format!("/api/v1/apps/{a}/access-token")).await;
        assert!(r.headers().contains_key("x-request-id"));
        let v: Value = r.json().await.unwrap();
        keep("access token", v["access_token"].as_str().unwrap());
    }

    // Web sign-in (userinfo, return_to): the session cookie, state, code, wxlink_code.
    let person = app.simulator.person("Secretive").await;
    let pid = person["id"].as_str().unwrap().to_owned();
    let browser = wechat_browser();
    let authorize = app.url(&format!(
        "/oauth/oa/authorize?scope=snsapi_userinfo&return_to={}",
        encode("https://shop.example.com/done")
    ));
    let r = browser.get(&authorize).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let sid = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("wxlink_sid=")
        .to_owned();
    keep("session cookie", &sid);
    let to_wechat = location(&r);
    keep("OAuth state", &query_param(&to_wechat, "state").unwrap());
    let r = browser
        .get(&to_wechat)
        .header("x-wxsim-person", &pid)
        .header("x-wxsim-consent", "allow")
        .send()
        .await
        .unwrap();
    let callback = location(&r);
    keep(
        "authorization code",
        &query_param(&callback, "code").unwrap(),
    );
    let r = browser.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let back = location(&r);
    keep("login code", &query_param(&back, "wxlink_code").unwrap());
    let identity = app.redeem_from(&r).await;
    // Openids are logged truncated, never whole.
    keep("openid", identity["openid"].as_str().unwrap());
    // WeChat's double redirect: the same callback again.
    let again = browser.get(&callback).send().await.unwrap();
    assert_eq!(location(&again), back);
    // The login code again: refused.
    let r = app
        .api_post(
            "/api/v1/login-codes/redeem",
            json!({"code": query_param(&back, "wxlink_code").unwrap()}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::GONE);

    // A link ticket, completed by the same person in another browser.
    let url = app
        .link_ticket("u-logs", json!({"app": "oa2", "scope": "snsapi_base"}))
        .await;
    keep("link ticket", &query_param(&url, "ticket").unwrap());
    let other = wechat_browser();
    let callback = app.through_wechat(&other, &url, &pid, "allow").await;
    keep(
        "authorization code",
        &query_param(&callback, "code").unwrap(),
    );
    let (_, linked, _) = outcome(other.get(&callback).send().await.unwrap()).await;
    assert_eq!(linked, "linked");

    // Mini-program login: the wx.login code and the session key; then the code reused.
    let js_code = app.simulator.login_code(&pid, MP_APPID).await;
    keep("js_code", &js_code);
    let r = app
        .mp_session("mp", json!({"js_code": js_code, "user_id": "u-logs"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    keep(
        "session key",
        &app.sim.session_key_of(MP_APPID, &pid).unwrap(),
    );
    let r = app
        .mp_session("mp", json!({"js_code": js_code, "user_id": "u-logs"}))
        .await;
    assert_eq!(r.status(), StatusCode::GONE);

    // A template message sent, one refused by WeChat.
    let template = app
        .simulator
        .template(OA_APPID, "template", "订单号：{{keyword1.DATA}}")
        .await;
    let openid = identity["openid"].as_str().unwrap();
    let r = app.bind("u-logs", "oa", openid, json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let send = |n: u32| {
        json!({"channel": "template", "app": "oa", "template_id": template,
               "data": {"keyword1": format!("order {n}")}})
    };
    let sent = app.send_ok("u-logs", send(1)).await;
    app.sent(&sent).await;
    app.simulator
        .post(
            "/_sim/faults",
            json!({"mode": "errcode", "errcode": 43004, "count": 1}),
        )
        .await;
    let refused = app.send_ok("u-logs", send(2)).await;
    app.message_until(&refused, &["rejected"]).await;

    // A token reported as failed: a forced replacement, handed out too.
    let current: Value = app.api_json("/api/v1/apps/oa/access-token").await;
    let r = app
        .api_post(
            "/api/v1/apps/oa/access-token/invalidate",
            json!({"access_token": current["access_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    keep(
        "replacement access token",
        v["access_token"].as_str().unwrap(),
    );

    // A wrong API key, and WeChat refusing the secret during a refresh.
    let r = app
        .api
        .get(app.url("/api/v1/users/u-logs"))
        .bearer_auth("wrong-key-9f8e7d6c5b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    keep("wrong API key", "wrong-key-9f8e7d6c5b");
    let current: Value = app.api_json("/api/v1/apps/oa2/access-token").await;
    app.simulator
        .post(
            "/_sim/faults",
            json!({"mode": "errcode", "errcode": 40125, "count": 1}),
        )
        .await;
    let r = app
        .api_post(
            "/api/v1/apps/oa2/access-token/invalidate",
            json!({"access_token": current["access_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);

    // Web access and refresh tokens (they never leave the database), as WeChat issued them.
    for token in app.sim.issued_tokens() {
        keep("issued token", &token);
    }
    drop(app);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.lines().count() > 100, "debug logs were captured");
    for (what, secret) in &secrets {
        if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
            panic!("{what} appears in the logs: {line}");
        }
    }

    // Every line written inside a request's span carries its request id.
    let mut in_requests = 0;
    let mut in_sends = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let spans = v["spans"].as_array().cloned().unwrap_or_default();
        if let Some(req) = spans.iter().find(|s| s["name"] == "request") {
            let id = req["request_id"].as_str().unwrap_or("");
            assert!(id.len() >= 32, "no request id: {line}");
            in_requests += 1;
        }
        if let Some(send) = spans.iter().find(|s| s["name"] == "outbox_send") {
            assert!(
                send["message_id"]
                    .as_str()
                    .is_some_and(|m| m.starts_with('m')),
                "{line}"
            );
            in_sends += 1;
        }
    }
    assert!(in_requests > 20, "{in_requests} lines inside requests");
    assert!(in_sends >= 2, "{in_sends} lines inside sends");
}
