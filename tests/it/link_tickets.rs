//! A forwarded link ticket: when the ticket's user has a mini-program identity with a
//! unionid and someone with another unionid completes the ticket, nothing is bound
//! (`ticket_other_person`, on the page or back to `return_to`), and the ticket still works
//! for its own person.

use crate::support::browser::{location, outcome, query_param, wechat_browser};
use crate::support::{MP_APPID, OA_APPID, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn mini_program_user(t: &TestApp, user: &str) -> Value {
    let p = t.simulator.person(user).await;
    let code = t
        .simulator
        .login_code(p["id"].as_str().unwrap(), MP_APPID)
        .await;
    let r = t
        .mp_session("mp", json!({"js_code": code, "user_id": user}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    p
}

#[tokio::test]
async fn a_forwarded_ticket_does_not_bind_a_stranger() {
    let t = TestApp::spawn().await;
    let owner = mini_program_user(&t, "u-owner").await;
    let stranger = t.simulator.person("stranger").await;
    assert_ne!(owner["unionids"][MP_APPID], stranger["unionids"][OA_APPID]);
    let url = t
        .link_ticket(
            "u-owner",
            json!({"app": "oa", "return_to": "https://shop.example.com/linked"}),
        )
        .await;

    // The stranger opens the forwarded link: back to return_to with the error, nothing bound.
    let r = t
        .sign_in_url(
            &wechat_browser(),
            &url,
            stranger["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let back = location(&r);
    assert!(
        back.starts_with("https://shop.example.com/linked?"),
        "{back}"
    );
    assert_eq!(
        query_param(&back, "wxlink_error").as_deref(),
        Some("ticket_other_person")
    );
    assert!(query_param(&back, "wxlink_code").is_none());
    let openid = stranger["openids"][OA_APPID].as_str().unwrap();
    let v = t
        .api_json(&format!("/api/v1/apps/oa/identities/{openid}"))
        .await;
    assert!(v["user_id"].is_null(), "{v}");
    let ids: Value = t.api_json("/api/v1/users/u-owner").await;
    assert_eq!(ids["identities"].as_array().unwrap().len(), 1, "{ids}");

    // Its own person completes the same ticket.
    let r = t
        .sign_in_url(
            &wechat_browser(),
            &url,
            owner["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let redeemed = t.redeem_from(&r).await;
    assert_eq!(redeemed["user_id"], "u-owner");
    assert_eq!(redeemed["openid"], owner["openids"][OA_APPID]);
}

#[tokio::test]
async fn without_return_to_the_stranger_sees_a_page() {
    let t = TestApp::spawn().await;
    mini_program_user(&t, "u-owner").await;
    let stranger = t.simulator.person("stranger").await;
    let url = t.link_ticket("u-owner", json!({"app": "oa"})).await;
    let r = t
        .sign_in_url(
            &wechat_browser(),
            &url,
            stranger["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let (status, outcome, body) = outcome(r).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(outcome, "ticket_other_person", "{body}");
    assert!(!body.contains("u-owner"), "no user id on a person page");
}
