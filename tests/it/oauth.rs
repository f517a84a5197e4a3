//! The web authorization flow, end to end against the simulator.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;

const RETURN_TO: &str = "https://shop.example.com/after-login?from=wx";

fn authorize_path(app: &str, scope: &str) -> String {
    format!(
        "/oauth/{app}/authorize?scope={scope}&return_to={}",
        encode(RETURN_TO)
    )
}

#[tokio::test]
async fn snsapi_base_stores_the_identity_and_hands_a_login_code_to_return_to() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("小明").await;
    let b = wechat_browser();

    let r = t
        .sign_in(
            &b,
            &authorize_path("oa", "snsapi_base"),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let to = location(&r);
    assert!(
        to.starts_with("https://shop.example.com/after-login?from=wx&wxlink_code="),
        "{to}"
    );

    let id = t.redeem_from(&r).await;
    assert_eq!(id["app"], "oa");
    assert_eq!(id["openid"], p["openids"][OA_APPID]);
    assert_eq!(id["unionid"], p["unionids"][OA_APPID]);
    assert_eq!(id["scope"], "snsapi_base");
    assert!(id["user_id"].is_null());
    assert!(id["profile"].is_null());
    assert!(id.get("refresh_token").is_none() && id.get("access_token").is_none());
}

#[tokio::test]
async fn snsapi_userinfo_fetches_and_stores_the_profile() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("小红").await;
    let b = wechat_browser();
    let r = t
        .sign_in(
            &b,
            &authorize_path("oa", "snsapi_userinfo"),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let id = t.redeem_from(&r).await;
    assert_eq!(id["scope"], "snsapi_userinfo");
    assert_eq!(id["profile"]["nickname"], "小红");
    assert_eq!(id["profile"]["headimgurl"], p["headimgurl"]);
    assert_eq!(t.simulator.stats().await["userinfo"], 1);
}

#[tokio::test]
async fn a_declined_consent_shows_a_page_and_exchanges_nothing() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let r = t
        .sign_in(
            &b,
            &authorize_path("oa", "snsapi_userinfo"),
            p["id"].as_str().unwrap(),
            "deny",
        )
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        location(&r),
        format!("{RETURN_TO}&wxlink_error=declined"),
        "back to the business, which learns the person declined"
    );
    assert_eq!(t.simulator.code_exchanges().await, 0);

    // Without a return_to the person gets a page, in Chinese, with a way on.
    let r = t
        .sign_in(
            &b,
            "/oauth/oa/authorize?scope=snsapi_userinfo",
            p["id"].as_str().unwrap(),
            "deny",
        )
        .await;
    let (status, outcome, body) = outcome(r).await;
    assert_eq!((status, outcome.as_str()), (StatusCode::OK, "declined"));
    assert!(visible_text(&body).contains("你已取消授权"), "{body}");
    assert!(action_href(&body, "retry").is_some());
}

#[tokio::test]
async fn a_repeated_callback_is_answered_from_the_first_exchange() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let callback = t
        .through_wechat(
            &b,
            &t.url(&authorize_path("oa", "snsapi_base")),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;

    // WeChat's double redirect: the same callback twice at once, then once more.
    let (r1, r2) = tokio::join!(b.get(&callback).send(), b.get(&callback).send());
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    let r3 = b.get(&callback).send().await.unwrap();
    for r in [&r1, &r2, &r3] {
        assert_eq!(r.status(), StatusCode::FOUND);
    }
    assert_eq!(location(&r1), location(&r2));
    assert_eq!(location(&r1), location(&r3));
    assert_eq!(
        t.simulator.code_exchanges().await,
        1,
        "the code went to WeChat exactly once"
    );
    let stats = t.simulator.stats().await;
    assert!(
        stats.get("code_rejected_used").is_none(),
        "no 40163: {stats}"
    );
    // The login code in the repeated answer works once.
    let id = t.redeem_from(&r3).await;
    assert_eq!(id["openid"], p["openids"][OA_APPID]);
}

#[tokio::test]
async fn a_callback_replayed_from_another_browser_is_refused() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let callback = t
        .through_wechat(
            &b,
            &t.url(&authorize_path("oa", "snsapi_base")),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);

    let attacker = wechat_browser();
    let (status, outcome, _) = outcome(attacker.get(&callback).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(outcome, "state_unknown");
    assert_eq!(t.simulator.code_exchanges().await, 1);
}

#[tokio::test]
async fn an_expired_code_is_refused_with_a_page() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let callback = t
        .through_wechat(
            &b,
            &t.url(&authorize_path("oa", "snsapi_base")),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    t.sim_clock.advance(301);
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        query_param(&location(&r), "wxlink_error").as_deref(),
        Some("code_invalid")
    );
    assert_eq!(t.simulator.stats().await["code_rejected_expired"], 1);

    // Without a return_to: a page that offers to start again, and no WeChat error number.
    let callback = t
        .through_wechat(
            &b,
            &t.url("/oauth/oa/authorize"),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    t.sim_clock.advance(301);
    let (status, outcome, body) = outcome(b.get(&callback).send().await.unwrap()).await;
    assert_eq!(
        (status, outcome.as_str()),
        (StatusCode::BAD_REQUEST, "code_invalid")
    );
    assert!(!body.contains("42003"), "{body}");
    assert!(action_href(&body, "retry").is_some());
}

#[tokio::test]
async fn missing_forged_and_foreign_states_are_refused_without_an_exchange() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let callback = t
        .through_wechat(
            &b,
            &t.url(&authorize_path("oa", "snsapi_base")),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let code = query_param(&callback, "code").unwrap();

    let cases = [
        (format!("/oauth/oa/callback?code={code}"), "state_missing"),
        (
            format!("/oauth/oa/callback?code={code}&state=forged123"),
            "state_unknown",
        ),
        (
            format!("/oauth/oa/callback?code={code}&state=bad-chars!"),
            "state_invalid",
        ),
        // The right state, but on another app's callback.
        (
            callback
                .replacen("/oauth/oa/", "/oauth/oa2/", 1)
                .replacen(&t.base, "", 1),
            "state_unknown",
        ),
    ];
    for (path, expected) in cases {
        let (status, got, _) = outcome(b.get(t.url(&path)).send().await.unwrap()).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::BAD_REQUEST, expected),
            "{path}"
        );
    }
    // Another browser (another session) with the genuine callback URL.
    let other = wechat_browser();
    let (status, got, _) = outcome(other.get(&callback).send().await.unwrap()).await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::BAD_REQUEST, "state_unknown")
    );
    assert_eq!(t.simulator.code_exchanges().await, 0);

    // The genuine callback still works afterwards.
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let callback = t
        .through_wechat(
            &b,
            &t.url(&authorize_path("oa", "snsapi_base")),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    t.clock.advance(601);
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        location(&r),
        format!("{RETURN_TO}&wxlink_error=state_expired")
    );
    assert_eq!(t.simulator.code_exchanges().await, 0);
}

#[tokio::test]
async fn a_return_to_off_the_allow_list_is_refused_before_wechat() {
    let t = TestApp::spawn().await;
    let b = wechat_browser();
    for bad in [
        "https://evil.example.com/",
        "https://shop.example.com.evil.io/",
        "javascript:alert(1)",
        "//evil.io/",
    ] {
        let path = format!(
            "/oauth/oa/authorize?scope=snsapi_base&return_to={}",
            encode(bad)
        );
        let (status, got, _) = outcome(b.get(t.url(&path)).send().await.unwrap()).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::BAD_REQUEST, "return_to_not_allowed"),
            "{bad}"
        );
    }
    let r = t
        .api_post(
            "/api/v1/users/42/link-tickets",
            json!({"app": "oa", "return_to": "https://evil.example.com/"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "return_to_not_allowed");
    assert_eq!(
        t.simulator.stats().await["authorize_requests"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn an_unknown_scope_or_app_is_refused() {
    let t = TestApp::spawn().await;
    let b = wechat_browser();
    let (status, got, _) = outcome(
        b.get(t.url("/oauth/oa/authorize?scope=snsapi_login"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );
    let (status, got, _) =
        outcome(b.get(t.url("/oauth/nope/authorize")).send().await.unwrap()).await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::NOT_FOUND, "unknown_app")
    );
    let (status, got, _) = outcome(
        b.get(t.url("/oauth/nope/callback?code=x&state=y"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::NOT_FOUND, "unknown_app")
    );
    // A mini-program cannot do web authorization.
    let (status, got, _) = outcome(b.get(t.url("/oauth/mp/authorize")).send().await.unwrap()).await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::BAD_REQUEST, "not_web_app")
    );
}

#[tokio::test]
async fn outside_wechat_the_link_is_shown_as_a_qr_code() {
    let t = TestApp::spawn().await;
    let path = authorize_path("oa", "snsapi_base");
    let (status, got, body) =
        outcome(desktop_browser().get(t.url(&path)).send().await.unwrap()).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "open_in_wechat"));
    assert!(body.contains("<svg"), "a QR code is drawn");
    assert!(body.contains("请在微信中打开"));
    // Not in the sandbox: no way to pretend to be WeChat.
    assert!(!body.contains("wxsim=1"));
    let r = desktop_browser()
        .get(t.url(&format!("{path}&wxsim=1")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_link_ticket_binds_the_openid_to_its_user() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let r = t
        .api_post(
            "/api/v1/users/42/link-tickets",
            json!({"app": "oa", "scope": "snsapi_base", "return_to": RETURN_TO}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let ticket: serde_json::Value = r.json().await.unwrap();
    let url = ticket["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/oauth/oa/authorize?ticket=", t.base)),
        "{url}"
    );
    assert!(ticket["expires_at"].as_i64().unwrap() <= t.clock.now() + 600);

    let b = wechat_browser();
    let callback = t
        .through_wechat(&b, url, p["id"].as_str().unwrap(), "allow")
        .await;
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let id = t.redeem_from(&r).await;
    assert_eq!(id["user_id"], "42");

    let user: serde_json::Value = t.api_json("/api/v1/users/42").await;
    assert_eq!(user["identities"][0]["openid"], p["openids"][OA_APPID]);
    assert_eq!(user["identities"][0]["app"], "oa");

    // Single use: the same link again is refused before WeChat, back to its return_to.
    let r = wechat_browser().get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        location(&r),
        format!("{RETURN_TO}&wxlink_error=ticket_used")
    );
}

#[tokio::test]
async fn expired_and_unknown_tickets_are_refused() {
    let t = TestApp::spawn().await;
    let url = t.link_ticket("42", json!({"app": "oa"})).await;
    t.clock.advance(601);
    let b = wechat_browser();
    let (status, got, _) = outcome(b.get(&url).send().await.unwrap()).await;
    assert_eq!((status, got.as_str()), (StatusCode::GONE, "ticket_expired"));
    let (status, got, _) = outcome(
        b.get(t.url("/oauth/oa/authorize?ticket=nosuchticket"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::NOT_FOUND, "ticket_unknown")
    );
}

#[tokio::test]
async fn a_ticket_that_expires_while_the_person_is_at_wechat_binds_nothing() {
    let t = TestApp::spawn_with(Options {
        extra_toml: "[oauth]\nticket_ttl_secs = 60\n".into(),
        ..Default::default()
    })
    .await;
    let p = t.simulator.person("a").await;
    let url = t.link_ticket("42", json!({"app": "oa"})).await;
    let b = wechat_browser();
    let callback = t
        .through_wechat(&b, &url, p["id"].as_str().unwrap(), "allow")
        .await;
    t.clock.advance(61); // the ticket has expired, the state (600 s) has not
    let (status, got, _) = outcome(b.get(&callback).send().await.unwrap()).await;
    assert_eq!((status, got.as_str()), (StatusCode::GONE, "ticket_expired"));
    assert_eq!(
        t.api_get("/api/v1/users/42").await.status(),
        StatusCode::NOT_FOUND
    );
    // The identity itself was stored and can still be bound explicitly.
    let openid = p["openids"][OA_APPID].as_str().unwrap();
    let r = t.bind("42", "oa", openid, json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_unionid_already_bound_through_another_app_binds_automatically() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    // The backend learnt the mini-program identity from its own login and bound it.
    let mp_openid = p["openids"][MP_APPID].as_str().unwrap();
    let r = t
        .bind(
            "7",
            "mp",
            mp_openid,
            json!({"unionid": p["unionids"][MP_APPID]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // The same person authorizes the Official Account without any ticket.
    let b = wechat_browser();
    let r = t
        .sign_in(
            &b,
            &authorize_path("oa", "snsapi_base"),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let id = t.redeem_from(&r).await;
    assert_eq!(id["user_id"], "7");
    let user: serde_json::Value = t.api_json("/api/v1/users/7").await;
    let apps: Vec<&str> = user["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["app"].as_str().unwrap())
        .collect();
    assert_eq!(apps, ["mp", "oa"]);

    // An account without an Open Platform group has no unionid: nothing is joined.
    let r = t
        .sign_in(
            &b,
            &authorize_path("oa2", "snsapi_base"),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let id = t.redeem_from(&r).await;
    assert!(id["unionid"].is_null());
    assert!(id["user_id"].is_null());
}

#[tokio::test]
async fn an_openid_bound_to_one_user_is_never_repointed() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let person = p["id"].as_str().unwrap();
    for (user, expected_status) in [("1", StatusCode::FOUND), ("2", StatusCode::CONFLICT)] {
        let url = t
            .link_ticket(user, json!({"app": "oa", "return_to": RETURN_TO}))
            .await;
        let b = wechat_browser();
        let callback = t.through_wechat(&b, &url, person, "allow").await;
        let r = b.get(&callback).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        if expected_status == StatusCode::CONFLICT {
            assert_eq!(
                location(&r),
                format!("{RETURN_TO}&wxlink_error=identity_conflict")
            );
        }
    }
    let user1: serde_json::Value = t.api_json("/api/v1/users/1").await;
    assert_eq!(user1["identities"].as_array().unwrap().len(), 1);
    assert_eq!(
        t.api_get("/api/v1/users/2").await.status(),
        StatusCode::NOT_FOUND
    );

    // The API says the same.
    let openid = p["openids"][OA_APPID].as_str().unwrap();
    let r = t.bind("2", "oa", openid, json!({})).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "identity_conflict");
    assert_eq!(body["error"]["existing_user_id"], "1");
    assert_eq!(body["error"]["requested_user_id"], "2");
}

#[tokio::test]
async fn a_unionid_of_another_user_is_a_conflict_not_a_merge() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let mp_openid = p["openids"][MP_APPID].as_str().unwrap();
    t.bind(
        "7",
        "mp",
        mp_openid,
        json!({"unionid": p["unionids"][MP_APPID]}),
    )
    .await;
    let url = t.link_ticket("8", json!({"app": "oa"})).await;
    let b = wechat_browser();
    let callback = t
        .through_wechat(&b, &url, p["id"].as_str().unwrap(), "allow")
        .await;
    let (status, got, body) = outcome(b.get(&callback).send().await.unwrap()).await;
    assert_eq!((status, got.as_str()), (StatusCode::CONFLICT, "conflict"));
    let text = visible_text(&body);
    assert!(text.contains("已经关联了另一个账号"), "{text}");
    for id in ["7", "8", p["unionids"][OA_APPID].as_str().unwrap()] {
        assert!(!text.contains(id), "no internal id on the page: {text}");
    }
    assert_eq!(
        t.api_get("/api/v1/users/8").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_snapshot_mode_user_is_never_bound() {
    let t = TestApp::spawn().await;
    let p = t
        .simulator
        .new_person(json!({"nickname": "snap", "snapshot": true}))
        .await;
    let url = t
        .link_ticket("42", json!({"app": "oa", "return_to": RETURN_TO}))
        .await;
    let b = wechat_browser();
    let callback = t
        .through_wechat(&b, &url, p["id"].as_str().unwrap(), "allow")
        .await;
    let (status, got, body) = outcome(b.get(&callback).send().await.unwrap()).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "snapshot"));
    assert!(body.contains("完整"));
    assert_eq!(
        t.api_get("/api/v1/users/42").await.status(),
        StatusCode::NOT_FOUND
    );
    // Nor can the API bind the virtual openid.
    let openid = p["openids"][OA_APPID].as_str().unwrap();
    let r = t.bind("42", "oa", openid, json!({})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_return_to_the_callback_shows_a_result_page() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let r = t
        .sign_in(
            &b,
            "/oauth/oa/authorize",
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let (status, got, _) = outcome(r).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "linked"));
}

/// Follows a page's "try again" through WeChat and back: the callback's response.
async fn retry_from(
    t: &TestApp,
    b: &reqwest::Client,
    body: &str,
    person: &str,
    consent: &str,
) -> (String, reqwest::Response) {
    let retry = action_href(body, "retry").expect("a try-again button");
    let r = b.get(&retry).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "{retry}");
    let to_wechat = location(&r);
    let callback = t.through_wechat(b, &retry, person, consent).await;
    (to_wechat, b.get(callback).send().await.unwrap())
}

#[tokio::test]
async fn try_again_after_declining_resumes_the_same_userinfo_login() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let person = p["id"].as_str().unwrap();
    let b = wechat_browser();
    let r = t
        .sign_in(
            &b,
            "/oauth/oa/authorize?scope=snsapi_userinfo",
            person,
            "deny",
        )
        .await;
    let (_, got, body) = outcome(r).await;
    assert_eq!(got, "declined");
    let (to_wechat, r) = retry_from(&t, &b, &body, person, "allow").await;
    assert_eq!(
        query_param(&to_wechat, "scope").as_deref(),
        Some("snsapi_userinfo"),
        "the retry asks for the same scope: {to_wechat}"
    );
    let (_, got, _) = outcome(r).await;
    assert_eq!(got, "linked");
    assert_eq!(
        t.simulator.stats().await["userinfo"],
        1,
        "the profile was fetched"
    );
}

#[tokio::test]
async fn try_again_after_declining_a_ticket_binds_it() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let person = p["id"].as_str().unwrap();
    let url = t
        .link_ticket("42", json!({"app": "oa", "scope": "snsapi_userinfo"}))
        .await;
    let b = wechat_browser();
    let callback = t.through_wechat(&b, &url, person, "deny").await;
    let (_, got, body) = outcome(b.get(&callback).send().await.unwrap()).await;
    assert_eq!(got, "declined");
    assert!(!visible_text(&body).contains("授权成功"));

    let (_, r) = retry_from(&t, &b, &body, person, "allow").await;
    let (status, got, body) = outcome(r).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "linked"), "{body}");
    assert!(visible_text(&body).contains("授权成功"));
    let user: serde_json::Value = t.api_json("/api/v1/users/42").await;
    assert_eq!(user["identities"][0]["openid"], p["openids"][OA_APPID]);
}

#[tokio::test]
async fn try_again_after_an_expired_state_or_a_snapshot_resumes_the_ticket() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let person = p["id"].as_str().unwrap();
    let url = t.link_ticket("42", json!({"app": "oa"})).await;
    let b = wechat_browser();
    let callback = t.through_wechat(&b, &url, person, "allow").await;
    t.clock.advance(601); // the state (600 s) has expired; ticket_ttl_secs is 600 too...
    let (_, got, body) = outcome(b.get(&callback).send().await.unwrap()).await;
    assert_eq!(got, "state_expired");
    let retry = action_href(&body, "retry").expect("a try-again button");
    assert!(retry.contains("ticket="), "{retry}");
    // ...so the resumed attempt meets the ticket's own expiry, not a silent base login.
    let (status, got, _) = outcome(b.get(&retry).send().await.unwrap()).await;
    assert_eq!((status, got.as_str()), (StatusCode::GONE, "ticket_expired"));

    // A snapshot person: the page's retry is the same ticket link, still usable.
    let snap = t
        .simulator
        .new_person(json!({"nickname": "snap", "snapshot": true}))
        .await;
    let url = t.link_ticket("43", json!({"app": "oa"})).await;
    let callback = t
        .through_wechat(&b, &url, snap["id"].as_str().unwrap(), "allow")
        .await;
    let (_, got, body) = outcome(b.get(&callback).send().await.unwrap()).await;
    assert_eq!(got, "snapshot");
    let (_, r) = retry_from(&t, &b, &body, person, "allow").await;
    let (_, got, _) = outcome(r).await;
    assert_eq!(got, "linked");
    assert_eq!(t.api_get("/api/v1/users/43").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_state_page_never_restarts_a_different_authorization() {
    let t = TestApp::spawn().await;
    let b = wechat_browser();
    let (status, got, body) = outcome(
        b.get(t.url("/oauth/oa/callback?code=x&state=forged123"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::BAD_REQUEST, "state_unknown")
    );
    assert!(
        action_href(&body, "retry").is_none(),
        "nothing is known to resume: {body}"
    );
    assert!(body.contains("data-action=\"close\""));
}

#[tokio::test]
async fn duplicated_query_parameters_answer_a_page() {
    let t = TestApp::spawn().await;
    let b = wechat_browser();
    for path in [
        "/oauth/oa/authorize?scope=snsapi_base&scope=snsapi_userinfo",
        "/oauth/oa/callback?code=a&code=b&state=abc",
        "/oauth/oa/callback?code=a&state=abc&state=def",
    ] {
        let (status, got, body) = outcome(b.get(t.url(path)).send().await.unwrap()).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_query"),
            "{path}: {body}"
        );
        assert!(body.contains("链接无效"), "{body}");
    }
    // With a valid return_to, the business hears of it.
    let path = format!(
        "/oauth/oa/authorize?scope=a&scope=b&return_to={}&client_state=s1",
        encode(RETURN_TO)
    );
    let r = b.get(t.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        location(&r),
        format!("{RETURN_TO}&wxlink_error=invalid_query&client_state=s1")
    );
}
