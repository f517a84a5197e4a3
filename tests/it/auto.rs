//! `channel: "auto"`: the message goes where the person can get it. An Official Account
//! identity that follows (or whose follow status is unknown) gets the template message;
//! otherwise a remaining subscription gets the subscribe message; otherwise 409 says why.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Setup {
    oa_tpl: String,
    sub_tpl: String,
}

async fn setup(t: &TestApp) -> Setup {
    Setup {
        oa_tpl: t
            .simulator
            .template(OA_APPID, "template", "订单：{{keyword1.DATA}}")
            .await,
        sub_tpl: t
            .simulator
            .template(MP_APPID, "subscribe", "商品：{{thing1.DATA}}")
            .await,
    }
}

fn auto(s: &Setup) -> Value {
    json!({
        "channel": "auto",
        "template": {"app": "oa", "template_id": s.oa_tpl, "data": {"keyword1": "339208499"}},
        "subscribe": {"app": "mp", "template_id": s.sub_tpl, "data": {"thing1": "机械键盘"}},
        "category": "orders",
    })
}

/// A person known to both apps as `user`; returns the simulator's person id.
async fn person_in_both(t: &TestApp, user: &str) -> String {
    let p = t.simulator.person(user).await;
    for (app, appid) in [("oa", OA_APPID), ("mp", MP_APPID)] {
        let openid = p["openids"][appid].as_str().unwrap();
        let r = t.bind(user, app, openid, json!({})).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    p["id"].as_str().unwrap().to_owned()
}

async fn subscribe(t: &TestApp, user: &str, person: &str, s: &Setup) {
    t.simulator
        .post(
            "/_sim/subscriptions",
            json!({"appid": MP_APPID, "person": person, "template_id": s.sub_tpl}),
        )
        .await;
    let r = t
        .api_post(
            &format!("/api/v1/users/{user}/subscriptions"),
            json!({"app": "mp", "template_id": s.sub_tpl}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// Waits until the user's Official Account identity shows the pushed follow status (the
/// push is acknowledged first and handled right after).
async fn until_follows(t: &TestApp, user: &str, follows: bool) {
    for _ in 0..200 {
        let u: Value = t.api_json(&format!("/api/v1/users/{user}")).await;
        let oa = u["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["app"] == "oa")
            .cloned();
        if oa.is_some_and(|i| i["follows"] == json!(follows)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the follow status of {user} never became {follows}");
}

/// Sends the auto message; returns the 202 answer and the message once it reached WeChat.
async fn send_auto(t: &TestApp, user: &str, s: &Setup) -> (Value, Value) {
    let r = t.send(user, auto(s)).await;
    let status = r.status();
    let accepted: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let m = t.sent(accepted["id"].as_str().unwrap()).await;
    (accepted, m)
}

#[tokio::test]
async fn a_person_whose_follow_status_is_unknown_gets_the_template_message() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    person_in_both(&t, "u1").await;
    let (accepted, m) = send_auto(&t, "u1", &s).await;
    assert_eq!(accepted["channel"], "template");
    assert_eq!(m["channel"], "template");
    let note = m["history"][0]["detail"].as_str().unwrap();
    assert!(note.contains("chosen automatically: template"), "{note}");
    assert!(note.contains("unknown"), "{note}");
}

#[tokio::test]
async fn a_person_who_follows_gets_the_template_message() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    let person = person_in_both(&t, "u1").await;
    subscribe(&t, "u1", &person, &s).await;
    // WeChat pushes the follow; the identity knows.
    t.simulator
        .post(
            &format!("/_sim/people/{person}/follow"),
            json!({"appid": OA_APPID}),
        )
        .await;
    until_follows(&t, "u1", true).await;
    let (accepted, m) = send_auto(&t, "u1", &s).await;
    assert_eq!(accepted["channel"], "template");
    let note = m["history"][0]["detail"].as_str().unwrap();
    assert!(note.contains("follows the Official Account"), "{note}");
    // The subscription was not spent.
    let subs: Value = t.api_json("/api/v1/users/u1/subscriptions").await;
    assert_eq!(subs["subscriptions"][0]["remaining"], 1);
}

#[tokio::test]
async fn a_person_who_unfollowed_gets_the_subscribe_message() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    let person = person_in_both(&t, "u1").await;
    subscribe(&t, "u1", &person, &s).await;
    t.simulator
        .post(
            &format!("/_sim/people/{person}/unfollow"),
            json!({"appid": OA_APPID}),
        )
        .await;
    until_follows(&t, "u1", false).await;
    let (accepted, m) = send_auto(&t, "u1", &s).await;
    assert_eq!(accepted["channel"], "subscribe");
    assert_eq!(m["channel"], "subscribe");
    let got = t.simulator.messages("?channel=subscribe").await;
    assert_eq!(got.len(), 1);
    // The one acceptance is spent: nothing reaches the person now.
    let r = t.send("u1", auto(&s)).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "no_channel");
    let reasons = e["error"]["reasons"].as_array().unwrap();
    assert!(
        reasons[0].as_str().unwrap().contains("does not follow"),
        "{e}"
    );
    assert!(
        reasons[1].as_str().unwrap().contains("no subscription"),
        "{e}"
    );
}

#[tokio::test]
async fn a_mini_program_user_without_an_official_account_identity_gets_the_subscribe_message() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    let p = t.simulator.person("mp only").await;
    let person = p["id"].as_str().unwrap();
    let r = t
        .bind(
            "u2",
            "mp",
            p["openids"][MP_APPID].as_str().unwrap(),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    subscribe(&t, "u2", person, &s).await;
    let (accepted, _) = send_auto(&t, "u2", &s).await;
    assert_eq!(accepted["channel"], "subscribe");
}

#[tokio::test]
async fn a_43004_turns_the_next_auto_message_to_the_subscribe_channel() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    let person = person_in_both(&t, "u1").await;
    subscribe(&t, "u1", &person, &s).await;
    // WeChat knows the person left; we learn it only from the refusal.
    t.simulator
        .post(
            "/_sim/following",
            json!({"appid": OA_APPID, "person": person, "following": false}),
        )
        .await;
    let r = t.send("u1", auto(&s)).await;
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["channel"], "template");
    let m = t
        .message_until(first["id"].as_str().unwrap(), &["rejected"])
        .await;
    assert_eq!(m["errcode"], 43004);
    let (accepted, _) = send_auto(&t, "u1", &s).await;
    assert_eq!(accepted["channel"], "subscribe");
}

#[tokio::test]
async fn nobody_to_reach_and_malformed_auto_messages_are_refused() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    let r = t.send("nobody", auto(&s)).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "no_channel");
    assert_eq!(e["error"]["reasons"].as_array().unwrap().len(), 2);

    let r = t.send("nobody", json!({"channel": "auto"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut body = auto(&s);
    body["template"]["colour"] = json!("red");
    let r = t.send("nobody", body).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_body");

    // The chosen part is checked like any message: a field rule broken on that channel.
    person_in_both(&t, "u3").await;
    let mut body = auto(&s);
    body["template"]["data"] = json!({"keyword1": "a\nb"});
    let r = t.send("u3", body).await;
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_data");
}

#[tokio::test]
async fn a_repeated_auto_message_is_the_same_message() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    let person = person_in_both(&t, "u1").await;
    subscribe(&t, "u1", &person, &s).await;
    t.simulator
        .post(
            &format!("/_sim/people/{person}/unfollow"),
            json!({"appid": OA_APPID}),
        )
        .await;
    until_follows(&t, "u1", false).await;
    let first: Value = t
        .send_keyed("u1", "order-1-shipped", auto(&s))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["channel"], "subscribe");
    // The subscription is spent by the first, but the repeat is still that message.
    let r = t.send_keyed("u1", "order-1-shipped", auto(&s)).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["channel"], "subscribe");
}
