//! Profiles refreshed with the person's own web tokens: the stored access token while it
//! lives, one `sns/oauth2/refresh_token` call after, a stale profile (409 with a fresh link)
//! once the refresh token is dead; snsapi_base identities cannot; one refresh for many
//! concurrent calls; `keep_web_tokens = false` keeps none.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const DAY: i64 = 86_400;

/// A count read straight from the test database.
async fn sql_count(url: &str, sql: &str) -> i64 {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

async fn sql_exec(url: &str, sql: &str) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

async fn web_tokens(t: &TestApp) -> i64 {
    sql_count(
        &t.ctx.config.database_url,
        "SELECT COUNT(*) FROM web_tokens",
    )
    .await
}

/// A person who authorized `scope` through a link ticket of `user`: (person id, openid).
async fn authorized(t: &TestApp, user: &str, nickname: &str, scope: &str) -> (String, String) {
    let person = t.simulator.person(nickname).await;
    let pid = person["id"].as_str().unwrap().to_owned();
    let openid = person["openids"][OA_APPID].as_str().unwrap().to_owned();
    authorize_again(t, user, &pid, scope).await;
    (pid, openid)
}

async fn authorize_again(t: &TestApp, user: &str, pid: &str, scope: &str) {
    let url = t
        .link_ticket(user, json!({"app": "oa", "scope": scope}))
        .await;
    let (status, outcome, _) =
        outcome(t.sign_in_url(&wechat_browser(), &url, pid, "allow").await).await;
    assert_eq!((status, outcome.as_str()), (StatusCode::OK, "linked"));
}

async fn refresh(t: &TestApp, user: &str, openid: &str) -> (StatusCode, Value) {
    let r = t
        .api_post(
            &format!("/api/v1/users/{user}/identities/oa/{openid}/profile/refresh"),
            json!({}),
        )
        .await;
    (r.status(), r.json().await.unwrap())
}

async fn change_profile(t: &TestApp, pid: &str, change: Value) {
    let r = t
        .api
        .post(t.simulator.url(&format!("/_sim/people/{pid}")))
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// The user's one identity as `GET /api/v1/users/{id}` shows it.
async fn shown(t: &TestApp, user: &str) -> Value {
    let v = t.api_json(&format!("/api/v1/users/{user}")).await;
    let ids = v["identities"].as_array().unwrap();
    assert_eq!(ids.len(), 1, "{v}");
    ids[0].clone()
}

#[tokio::test]
async fn within_the_access_tokens_life_no_refresh_call_is_made() {
    let t = TestApp::spawn().await;
    let (pid, openid) = authorized(&t, "u-live", "Before", "snsapi_userinfo").await;
    let id = shown(&t, "u-live").await;
    assert_eq!(id["profile"]["nickname"], "Before");
    assert_eq!(id["profile_status"]["refreshable"], true);
    let until = id["profile_status"]["refreshable_until"].as_i64().unwrap();
    let now = t.clock.now();
    assert!((now + 30 * DAY - until).abs() <= 2, "{id}");

    change_profile(
        &t,
        &pid,
        json!({"nickname": "After", "headimgurl": "https://thirdwx.qlogo.cn/mmopen/new/132"}),
    )
    .await;
    t.advance(3600);
    let (status, body) = refresh(&t, "u-live", &openid).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identity"]["profile"]["nickname"], "After");
    assert_eq!(
        body["identity"]["profile"]["headimgurl"],
        "https://thirdwx.qlogo.cn/mmopen/new/132"
    );
    assert_eq!(t.simulator.counter("refreshes").await, 0);
    assert_eq!(t.simulator.counter("userinfo").await, 2);

    let id = shown(&t, "u-live").await;
    assert_eq!(id["profile"]["nickname"], "After", "stored");
    assert_eq!(id["profile_status"]["age_secs"], 0);
    t.advance(600);
    assert_eq!(shown(&t, "u-live").await["profile_status"]["age_secs"], 600);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once() {
    let t = TestApp::spawn().await;
    let (pid, openid) = authorized(&t, "u-exp", "Old", "snsapi_userinfo").await;
    change_profile(&t, &pid, json!({"nickname": "New"})).await;
    t.advance(7200 + 1);
    let (status, body) = refresh(&t, "u-exp", &openid).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identity"]["profile"]["nickname"], "New");
    assert_eq!(t.simulator.counter("refreshes").await, 1);

    // The new access token is stored: the next refresh uses it.
    let (status, _) = refresh(&t, "u-exp", &openid).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t.simulator.counter("refreshes").await, 1);
    // The refresh token keeps its 30 days from the authorization.
    let id = shown(&t, "u-exp").await;
    let until = id["profile_status"]["refreshable_until"].as_i64().unwrap();
    let now = t.clock.now();
    assert!((now - 7201 + 30 * DAY - until).abs() <= 2, "{id}");
}

async fn assert_stale(t: &TestApp, user: &str, status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "profile_stale");
    let url = body["error"]["ticket_url"].as_str().unwrap();
    assert!(url.starts_with(&t.base), "{url}");
    assert!(body["error"]["ticket_expires_at"].as_i64().unwrap() > t.clock.now());
    let id = shown(t, user).await;
    assert_eq!(id["profile_stale"], true, "{id}");
    assert_eq!(id["profile_status"]["refreshable"], false);
    assert!(id["profile_status"]["refreshable_until"].is_null());
    assert_eq!(web_tokens(t).await, 0, "the dead tokens are gone");
}

#[tokio::test]
async fn an_expired_refresh_token_marks_the_profile_stale_and_offers_a_link() {
    let t = TestApp::spawn().await;
    let (pid, openid) = authorized(&t, "u-dead", "Dead", "snsapi_userinfo").await;
    t.advance(30 * DAY + 1);
    let (status, body) = refresh(&t, "u-dead", &openid).await;
    assert_stale(&t, "u-dead", status, &body).await;
    assert_eq!(
        t.simulator.counter("refreshes").await,
        0,
        "known dead: not asked"
    );

    // The link brings the person back: a fresh, refreshable profile.
    change_profile(&t, &pid, json!({"nickname": "Back"})).await;
    let url = body["error"]["ticket_url"].as_str().unwrap();
    let (status, outcome, _) =
        outcome(t.sign_in_url(&wechat_browser(), url, &pid, "allow").await).await;
    assert_eq!((status, outcome.as_str()), (StatusCode::OK, "linked"));
    let id = shown(&t, "u-dead").await;
    assert_eq!(id["profile"]["nickname"], "Back");
    assert_eq!(id["profile_stale"], false);
    assert_eq!(id["profile_status"]["refreshable"], true);
}

#[tokio::test]
async fn a_refresh_token_wechat_refuses_marks_the_profile_stale() {
    let t = TestApp::spawn().await;
    let (_, openid) = authorized(&t, "u-refused", "Refused", "snsapi_userinfo").await;
    // We believe the token lives longer than WeChat does: WeChat's 42002 decides.
    sql_exec(
        &t.ctx.config.database_url,
        "UPDATE web_tokens SET refresh_expires_at = refresh_expires_at + 864000",
    )
    .await;
    t.advance(30 * DAY + 1);
    let (status, body) = refresh(&t, "u-refused", &openid).await;
    assert_eq!(t.simulator.counter("refreshes").await, 1);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("42002"),
        "{body}"
    );
    assert_stale(&t, "u-refused", status, &body).await;
}

#[tokio::test]
async fn a_base_scope_identity_needs_a_userinfo_authorization() {
    let t = TestApp::spawn().await;
    let (_, openid) = authorized(&t, "u-base", "Base", "snsapi_base").await;
    assert_eq!(web_tokens(&t).await, 0, "a snsapi_base token is not kept");
    let (status, body) = refresh(&t, "u-base", &openid).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "userinfo_authorization_needed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("snsapi_userinfo")
    );
    let url = body["error"]["ticket_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/oauth/oa/authorize?ticket=", t.base)),
        "{url}"
    );
    assert_eq!(t.simulator.counter("userinfo").await, 0);
    assert!(shown(&t, "u-base").await["profile_status"].is_null());

    // Someone else's identity, or no identity: not bound.
    let (status, body) = refresh(&t, "u-other", &openid).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "identity_not_bound");
}

#[tokio::test]
async fn twenty_concurrent_refreshes_make_one_wechat_refresh() {
    let t = TestApp::spawn().await;
    let (pid, openid) = authorized(&t, "u-many", "Many", "snsapi_userinfo").await;
    change_profile(&t, &pid, json!({"nickname": "Many again"})).await;
    t.advance(7200 + 1);
    let url = t.url(&format!(
        "/api/v1/users/u-many/identities/oa/{openid}/profile/refresh"
    ));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (api, url) = (t.api.clone(), url.clone());
        set.spawn(async move {
            let r = api.post(url).bearer_auth(API_KEY).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        });
    }
    for (status, body) in &set.join_all().await {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["identity"]["profile"]["nickname"], "Many again");
    }
    assert_eq!(t.simulator.counter("refreshes").await, 1);
    let userinfo = t.simulator.counter("userinfo").await;
    assert!(userinfo <= 21, "at most one read per flight: {userinfo}");
}

#[tokio::test]
async fn a_new_userinfo_authorization_replaces_tokens_and_profile() {
    let t = TestApp::spawn().await;
    let (pid, openid) = authorized(&t, "u-again", "First", "snsapi_userinfo").await;
    t.advance(10 * DAY);
    change_profile(&t, &pid, json!({"nickname": "Second"})).await;
    authorize_again(&t, "u-again", &pid, "snsapi_userinfo").await;
    let db = &t.ctx.config.database_url;
    let q = format!("SELECT COUNT(*) FROM identities WHERE openid = '{openid}'");
    assert_eq!(sql_count(db, &q).await, 1, "never duplicated");
    assert_eq!(web_tokens(&t).await, 1, "one pair, replaced");
    let id = shown(&t, "u-again").await;
    assert_eq!(id["profile"]["nickname"], "Second");
    // The new pair lives 30 days from the new authorization.
    let until = id["profile_status"]["refreshable_until"].as_i64().unwrap();
    let now = t.clock.now();
    assert!((now + 30 * DAY - until).abs() <= 2, "{id}");

    // A later snsapi_base visit keeps the userinfo pair.
    authorize_again(&t, "u-again", &pid, "snsapi_base").await;
    assert_eq!(web_tokens(&t).await, 1);
    t.advance(25 * DAY);
    let (status, body) = refresh(&t, "u-again", &openid).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(t.simulator.counter("refreshes").await, 1);
}

#[tokio::test]
async fn unbinding_removes_the_persons_tokens() {
    let t = TestApp::spawn().await;
    let (_, openid) = authorized(&t, "u-unbind", "Unbind", "snsapi_userinfo").await;
    assert_eq!(web_tokens(&t).await, 1);
    let r = t
        .api_delete(&format!("/api/v1/users/u-unbind/identities/oa/{openid}"))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(web_tokens(&t).await, 0);
}

#[tokio::test]
async fn keep_web_tokens_false_stores_no_token() {
    let t = TestApp::spawn_with(Options {
        extra_toml: "[oauth]\nkeep_web_tokens = false\n".into(),
        ..Default::default()
    })
    .await;
    let (_, openid) = authorized(&t, "u-none", "None", "snsapi_userinfo").await;
    let id = shown(&t, "u-none").await;
    assert_eq!(
        id["profile"]["nickname"], "None",
        "the sign-in still reads the profile"
    );
    assert_eq!(id["profile_status"]["refreshable"], false);
    assert_eq!(web_tokens(&t).await, 0);
    let (status, body) = refresh(&t, "u-none", &openid).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "profile_stale");
}
