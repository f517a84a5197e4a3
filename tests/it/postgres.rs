//! The authorization flow on PostgreSQL: identities, tickets, login codes, code exchanges
//! and browser sessions all live there. Skipped (and says so) without
//! `WXLINK_TEST_POSTGRES_URL`.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn ticket_binding_replay_and_redeem_on_postgres() {
    let Some(server) = postgres_url() else { return };
    let t = TestApp::spawn_with(Options {
        postgres: Some(server),
        ..Default::default()
    })
    .await;
    let health: serde_json::Value = t
        .api
        .get(t.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["store"], "postgres");

    let p = t.simulator.person("a").await;
    let url = t.link_ticket("42", json!({"app": "oa", "scope": "snsapi_userinfo", "return_to": "https://shop.example.com/x"})).await;
    let b = wechat_browser();
    let callback = t
        .through_wechat(&b, &url, p["id"].as_str().unwrap(), "allow")
        .await;
    let (r1, r2) = tokio::join!(b.get(&callback).send(), b.get(&callback).send());
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.status(), StatusCode::FOUND);
    assert_eq!(location(&r1), location(&r2));
    assert_eq!(t.simulator.code_exchanges().await, 1);
    let id = t.redeem_from(&r1).await;
    assert_eq!(id["user_id"], "42");
    assert_eq!(id["profile"]["nickname"], "a");

    let again = t
        .api_post(
            "/api/v1/login-codes/redeem",
            json!({"code": query_param(&location(&r2), "wxlink_code")}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::GONE);

    // Unionid auto-binding and conflicts behave the same.
    let mp = p["openids"][MP_APPID].as_str().unwrap();
    let r = t
        .bind("43", "mp", mp, json!({"unionid": p["unionids"][MP_APPID]}))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "the unionid already belongs to user 42"
    );
    let r = t
        .bind("42", "mp", mp, json!({"unionid": p["unionids"][MP_APPID]}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let user: serde_json::Value = t.api_json("/api/v1/users/42").await;
    assert_eq!(user["identities"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn two_instances_share_one_token_on_postgres() {
    let Some(server) = postgres_url() else { return };
    let t = TestApp::spawn_with(Options {
        postgres: Some(server),
        ..Default::default()
    })
    .await;
    let get = async |base: &str| -> serde_json::Value {
        t.api
            .get(format!("{base}/api/v1/apps/oa/access-token"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let first = get(&t.base).await;
    let (other, _) = t.another_instance(t.clock.clone()).await;
    assert_eq!(
        get(&other).await,
        first,
        "the second instance reuses the stored token"
    );
    let calls = format!("stable_token_calls:{OA_APPID}");
    assert_eq!(t.simulator.counter(&calls).await, 1);

    t.advance(7200 - 300 + 61);
    for _ in 0..100 {
        let (a, b) = (get(&t.base).await, get(&other).await);
        if a != first && a == b {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (a, b) = (get(&t.base).await, get(&other).await);
    assert_ne!(a, first);
    assert_eq!(a, b);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        t.simulator.counter(&calls).await,
        2,
        "one fetch for the window"
    );
}

#[tokio::test]
async fn a_database_outage_is_answered_503_and_heals_by_itself() {
    let Some(server) = postgres_url() else { return };
    let u = url::Url::parse(&server).unwrap();
    let proxy = DbProxy::start(format!(
        "{}:{}",
        u.host_str().unwrap(),
        u.port().unwrap_or(5432)
    ))
    .await;
    let t = TestApp::spawn_with(Options {
        postgres: Some(proxy.url_for(&server)),
        extra_toml: "[database]\nacquire_timeout_ms = 1000\n".into(),
        ..Default::default()
    })
    .await;
    let p = t.simulator.person("a").await;
    let openid = p["openids"][OA_APPID].as_str().unwrap();
    assert_eq!(
        t.bind("42", "oa", openid, json!({})).await.status(),
        StatusCode::OK
    );
    let tpl = t
        .simulator
        .template(OA_APPID, "template", "{{keyword1.DATA}}")
        .await;
    let body =
        json!({"channel": "template", "app": "oa", "template_id": tpl, "data": {"keyword1": "1"}});
    t.send_ok("42", body.clone()).await;

    proxy.cut();
    let started = std::time::Instant::now();
    let r = t.api_get("/api/v1/users/42").await;
    let status = r.status();
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    assert_eq!(e["error"]["code"], "database_unavailable");
    assert!(e["error"]["message"].as_str().unwrap().contains("database"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered, not hung"
    );
    let r = t.send("42", body.clone()).await;
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not accepted, so nothing to lose"
    );
    let health = t.api.get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    let mut healed = false;
    for _ in 0..100 {
        if t.api_get("/api/v1/users/42").await.status() == StatusCode::OK {
            healed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(healed, "the service recovers without a restart");
    let id = t.send_ok("42", body).await;
    t.sent(&id).await;
}
