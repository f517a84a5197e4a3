//! Least privilege: API keys limited to scopes and apps are refused with 403
//! `missing_scope` / `app_not_allowed` before anything happens (a login code is not spent,
//! a message is not stored), keys without `scopes` keep full access, and one key cannot
//! spend an app's `force_refresh` budget (`tokens.invalidations_per_key_per_day`).

use crate::support::browser::{encode, location, query_param, wechat_browser};
use crate::support::{API_KEY, OA_APPID, Options, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Keys of the test service besides the full-access `tests` key.
const SENDER: &str = "sender-key-0123456789";
const OA_ONLY: &str = "oa-only-key-0123456789";
const MP_ONLY: &str = "mp-only-key-0123456789";

fn key_toml(name: &str, key: &str, scopes: &str, apps: Option<&str>) -> String {
    format!(
        "[[api_keys]]\nname = \"{name}\"\nkey_sha256 = \"{}\"\nscopes = {scopes}\n{}\n",
        wxlink::domain::hash_token(key),
        apps.map(|a| format!("apps = {a}")).unwrap_or_default()
    )
}

async fn spawn(extra: &str) -> TestApp {
    TestApp::spawn_with(Options {
        extra_toml: [
            key_toml("sender", SENDER, r#"["send"]"#, None),
            key_toml(
                "oa-only",
                OA_ONLY,
                r#"["identities", "tokens:read", "send", "events"]"#,
                Some(r#"["oa"]"#),
            ),
            key_toml(
                "mp-only",
                MP_ONLY,
                r#"["identities", "tokens:read", "tokens:invalidate", "users:delete", "webhooks"]"#,
                Some(r#"["mp"]"#),
            ),
            extra.to_owned(),
        ]
        .concat(),
        ..Options::default()
    })
    .await
}

async fn call(
    t: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = t.api.request(method, t.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn refused(got: (StatusCode, Value), code: &str) -> Value {
    let (status, v) = got;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    v
}

#[tokio::test]
async fn a_key_without_the_scope_is_refused_naming_it() {
    let t = spawn("").await;
    let v = refused(
        call(
            &t,
            SENDER,
            Method::GET,
            "/api/v1/apps/oa/access-token",
            None,
        )
        .await,
        "missing_scope",
    );
    assert_eq!(v["error"]["scope"], "tokens:read");
    for (method, path, scope) in [
        (
            Method::POST,
            "/api/v1/apps/oa/access-token/invalidate",
            "tokens:invalidate",
        ),
        (Method::GET, "/api/v1/users/u-1", "identities"),
        (Method::DELETE, "/api/v1/users/u-1", "users:delete"),
        (Method::GET, "/api/v1/apps/oa/events", "events"),
        (Method::GET, "/api/v1/webhooks", "webhooks"),
    ] {
        let v = refused(
            call(
                &t,
                SENDER,
                method.clone(),
                path,
                Some(json!({"access_token": "x"})),
            )
            .await,
            "missing_scope",
        );
        assert_eq!(v["error"]["scope"], scope, "{method} {path}");
    }
    // Its own scope works: a send reaches the outbox's checks.
    let (status, v) = call(&t, SENDER, Method::GET, "/api/v1/users/u-1/messages", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // The full-access key (no `scopes`) still does everything.
    assert_eq!(
        t.api_get("/api/v1/apps/oa/events").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_limited_to_other_apps_is_refused_naming_the_app() {
    let t = spawn("").await;
    let v = refused(
        call(
            &t,
            OA_ONLY,
            Method::GET,
            "/api/v1/apps/mp/access-token",
            None,
        )
        .await,
        "app_not_allowed",
    );
    assert_eq!(v["error"]["app"], "mp");
    let (status, _) = call(
        &t,
        OA_ONLY,
        Method::GET,
        "/api/v1/apps/oa/access-token",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Binding in another app stores nothing.
    refused(
        call(
            &t,
            OA_ONLY,
            Method::PUT,
            "/api/v1/users/u-9/identities/oa2/o_stranger",
            Some(json!({})),
        )
        .await,
        "app_not_allowed",
    );
    let v = t.api_json("/api/v1/apps/oa2/identities/o_stranger").await;
    assert_eq!(v["error"]["code"], "identity_unknown", "{v}");

    // A message through another app is not stored.
    let tpl = t
        .simulator
        .template("wxtestoa20000003", "template", "x{{keyword1.DATA}}")
        .await;
    t.bind("u-9", "oa2", "o_nine", json!({})).await;
    refused(
        call(&t, OA_ONLY, Method::POST, "/api/v1/users/u-9/messages",
             Some(json!({"channel": "template", "app": "oa2", "template_id": tpl, "data": {"keyword1": "a"}}))).await,
        "app_not_allowed",
    );
    let listed: Value = t.api_json("/api/v1/users/u-9/messages").await;
    assert_eq!(listed["messages"].as_array().unwrap().len(), 0, "{listed}");

    // A user's identities in other apps are not shown to it.
    t.bind("u-9", "oa", "o_nine_oa", json!({})).await;
    let (status, v) = call(&t, OA_ONLY, Method::GET, "/api/v1/users/u-9", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let apps: Vec<&str> = v["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["app"].as_str().unwrap())
        .collect();
    assert_eq!(apps, ["oa"]);

    // Routes that span every app need a key for every app.
    refused(
        call(&t, MP_ONLY, Method::DELETE, "/api/v1/users/u-9", None).await,
        "app_not_allowed",
    );
    refused(
        call(&t, MP_ONLY, Method::GET, "/api/v1/webhooks", None).await,
        "app_not_allowed",
    );
    assert_eq!(
        t.api_json("/api/v1/users/u-9").await["identities"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// The login code of an `oa` sign-in, redeemed by a key limited to `mp`: refused, and the
/// code is still good for a key that may act on `oa` (it used to be spent before the 403).
#[tokio::test]
async fn a_refused_key_does_not_spend_a_login_code() {
    let t = spawn("").await;
    let p = t.simulator.person("p").await;
    let b = wechat_browser();
    let r = t
        .sign_in(
            &b,
            &format!(
                "/oauth/oa/authorize?scope=snsapi_base&return_to={}",
                encode("https://shop.example.com/x")
            ),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let code = query_param(&location(&r), "wxlink_code").unwrap();
    let redeem = |key: &'static str| {
        let code = code.clone();
        let t = &t;
        async move {
            call(
                t,
                key,
                Method::POST,
                "/api/v1/login-codes/redeem",
                Some(json!({ "code": code })),
            )
            .await
        }
    };
    refused(redeem(MP_ONLY).await, "app_not_allowed");
    let (status, v) = redeem(OA_ONLY).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["openid"], p["openids"][OA_APPID]);
    let (status, v) = redeem(API_KEY).await;
    assert_eq!(status, StatusCode::GONE, "{v}");
}

/// One key may report only so many current tokens as failed per app and day; a report of
/// a token already replaced costs nothing; another key has its own count.
#[tokio::test]
async fn one_key_cannot_spend_the_force_refresh_budget() {
    let t = TestApp::spawn_with(Options {
        extra_toml: key_toml(
            "mp-only",
            MP_ONLY,
            r#"["tokens:read", "tokens:invalidate"]"#,
            Some(r#"["mp"]"#),
        ),
        tokens_toml: Some(
            "check_interval_ms = 50\njitter_secs = 60\ninvalidations_per_key_per_day = 2".into(),
        ),
        ..Options::default()
    })
    .await;
    let current = async |key: &str| -> String {
        let (status, v) = call(&t, key, Method::GET, "/api/v1/apps/mp/access-token", None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    };
    let invalidate = async |key: &str, token: &str| {
        let r = t
            .api
            .post(t.url("/api/v1/apps/mp/access-token/invalidate"))
            .bearer_auth(key)
            .json(&json!({ "access_token": token }))
            .send()
            .await
            .unwrap();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse::<i64>().unwrap());
        (r.status(), retry_after, r.json::<Value>().await.unwrap())
    };
    let first = current(MP_ONLY).await;
    // Ten workers sharing the key report the same token at once: one forced refresh,
    // counted once, every report answered with the new token.
    let answers =
        futures_util::future::join_all((0..10).map(|_| invalidate(MP_ONLY, &first))).await;
    let second = answers[0].2["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    for (status, _, v) in &answers {
        assert_eq!(*status, StatusCode::OK, "{v}");
        assert_eq!(v["access_token"], second.as_str());
    }
    // Reporting the replaced token again costs nothing.
    for _ in 0..3 {
        let (status, _, v) = invalidate(MP_ONLY, &first).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["access_token"], second);
    }
    // A second forced refresh (30 s apart, our rule from WeChat's) reaches the limit of 2.
    t.advance(31);
    let (status, _, v) = invalidate(MP_ONLY, &second).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let third = v["access_token"].as_str().unwrap().to_owned();
    t.advance(31);
    let (status, retry_after, v) = invalidate(MP_ONLY, &third).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["code"], "invalidation_limit", "{v}");
    let now = t.clock.now();
    let wait = wxlink::clock::next_beijing_midnight(now) - now;
    let retry_after = retry_after.expect("Retry-After");
    assert!(
        (wait..=wait + 2).contains(&retry_after),
        "{retry_after} vs {wait}"
    );
    assert_eq!(current(MP_ONLY).await, third, "nothing was refreshed");
    // Another key has its own count.
    let (status, _, v) = invalidate(API_KEY, &third).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_ne!(v["access_token"], third);
}
