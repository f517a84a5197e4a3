//! Channel `custom`: customer-service messages by user id, only within the window the
//! person's own interaction opened (48 h after a message of theirs, a minute after a menu
//! click, follow or scan). wxlink knows the window from the pushes it stored and refuses
//! before queueing when it is closed; WeChat's own 45015 / 45047 end the message for good.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn text(content: &str) -> Value {
    json!({"channel": "custom", "app": "oa", "msgtype": "text", "text": {"content": content}})
}

/// The person writes to the Official Account (a text message pushed by the simulator);
/// returns once wxlink acknowledged the push.
async fn person_writes(t: &TestApp, openid: &str) {
    let before = t.sim.pushes().len();
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[我的订单呢？]]></Content><MsgId>{}</MsgId></xml>",
        t.sim_clock.now(),
        1_000_000 + before
    );
    t.simulator
        .post("/_sim/push/event", json!({"appid": OA_APPID, "xml": xml}))
        .await;
    let pushes = t.settled_pushes(before + 1).await;
    assert!(pushes[before].acknowledged, "{:#?}", pushes[before]);
}

async fn refused(t: &TestApp, user: &str, body: Value) -> Value {
    let r = t.send(user, body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "custom_window_closed", "{v}");
    v["error"].clone()
}

async fn custom_received(t: &TestApp) -> Vec<Value> {
    t.simulator.messages("?channel=custom").await
}

#[tokio::test]
async fn after_the_person_writes_every_kind_of_custom_message_reaches_them() {
    let t = TestApp::spawn().await;
    let (_, openid) = t.person_for("u1", "oa", OA_APPID).await;
    person_writes(&t, &openid).await;
    let bodies = [
        text("您的订单已发货"),
        json!({"channel": "custom", "app": "oa", "msgtype": "image", "image": {"media_id": "MEDIA_1"}}),
        json!({"channel": "custom", "app": "oa", "msgtype": "miniprogrampage", "miniprogrampage": {
            "title": "订单详情", "appid": MP_APPID, "pagepath": "pages/order?id=1",
            "thumb_media_id": "THUMB_1"}}),
        json!({"channel": "custom", "app": "oa", "msgtype": "link", "link": {
            "title": "物流", "description": "顺丰 SF123", "url": "https://shop.example.com/track/1",
            "thumb_url": "https://shop.example.com/p.png"}}),
    ];
    for body in bodies {
        let id = t.send_ok("u1", body).await;
        let m = t.sent(&id).await;
        assert_eq!(m["channel"], "custom");
        assert_eq!(m["template_id"], Value::Null);
        let note = m["history"][0]["detail"].as_str().unwrap();
        assert!(note.contains("window open until"), "{note}");
        assert!(note.contains("last interaction: message"), "{note}");
    }
    let got = custom_received(&t).await;
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(got.iter().all(|m| m["touser"] == openid.as_str()));
    assert_eq!(got[0]["msgtype"], "text");
    assert_eq!(got[0]["content"]["content"], "您的订单已发货");
    assert_eq!(got[1]["content"]["media_id"], "MEDIA_1");
    assert_eq!(got[2]["msgtype"], "miniprogrampage");
    assert_eq!(got[2]["content"]["appid"], MP_APPID);
    // An Official Account's link card goes as a one-article `news`.
    assert_eq!(got[3]["msgtype"], "news");
    assert_eq!(
        got[3]["content"]["articles"][0]["url"],
        "https://shop.example.com/track/1"
    );
    assert_eq!(
        got[3]["content"]["articles"][0]["picurl"],
        "https://shop.example.com/p.png"
    );
}

#[tokio::test]
async fn outside_the_window_the_send_is_refused_before_queueing_until_the_person_writes_again() {
    let t = TestApp::spawn().await;
    let (_, openid) = t.person_for("u1", "oa", OA_APPID).await;
    let e = refused(&t, "u1", text("hi")).await;
    assert_eq!(e["last_interaction"], Value::Null, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("no such interaction"),
        "{e}"
    );

    person_writes(&t, &openid).await;
    let wrote_at = t.clock.now();
    t.advance(48 * 3600 + 1);
    let e = refused(&t, "u1", text("hi")).await;
    let d = &e;
    assert_eq!(d["last_interaction"], "message", "{e}");
    let at = d["last_interaction_at"].as_i64().unwrap();
    assert!((wrote_at - at).abs() <= 2, "{e}");
    assert_eq!(d["window_closed_at"].as_i64().unwrap(), at + 48 * 3600);
    // Nothing was queued, nothing reached WeChat.
    let list: Value = t.api_json("/api/v1/users/u1/messages").await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 0, "{list}");
    assert_eq!(t.simulator.counter("custom_send_calls").await, 0);

    person_writes(&t, &openid).await;
    let id = t.send_ok("u1", text("hi again")).await;
    t.sent(&id).await;
    assert_eq!(custom_received(&t).await.len(), 1);
}

#[tokio::test]
async fn a_follow_opens_the_window_for_a_minute_and_an_unfollow_closes_it() {
    let t = TestApp::spawn().await;
    let (person, _) = t.person_for("u1", "oa", OA_APPID).await;
    let before = t.sim.pushes().len();
    t.simulator
        .post(
            &format!("/_sim/people/{person}/follow"),
            json!({"appid": OA_APPID}),
        )
        .await;
    t.settled_pushes(before + 1).await;
    let id = t.send_ok("u1", text("欢迎关注")).await;
    t.sent(&id).await;
    t.advance(61);
    let e = refused(&t, "u1", text("too late")).await;
    assert_eq!(e["last_interaction"], "follow", "{e}");

    // A fresh follow reopens it; leaving closes it at once.
    t.simulator
        .post(
            &format!("/_sim/people/{person}/follow"),
            json!({"appid": OA_APPID}),
        )
        .await;
    t.simulator
        .post(
            &format!("/_sim/people/{person}/unfollow"),
            json!({"appid": OA_APPID}),
        )
        .await;
    t.settled_pushes(before + 3).await;
    // The unfollow is handled right after its acknowledgement.
    let mut last = Value::Null;
    for _ in 0..200 {
        last = t.send("u1", text("bye")).await.json().await.unwrap();
        if last["error"]["unfollowed_at"].is_i64() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(last["error"]["code"], "custom_window_closed", "{last}");
    assert!(last["error"]["unfollowed_at"].is_i64(), "{last}");
}

#[tokio::test]
async fn wechat_45015_rejects_the_message_for_good_when_it_saw_the_window_close() {
    let t = TestApp::spawn().await;
    let (_, openid) = t.person_for("u1", "oa", OA_APPID).await;
    person_writes(&t, &openid).await;
    // WeChat's clock runs ahead of wxlink's: to WeChat the window is long closed.
    t.sim_clock.advance(49 * 3600);
    let id = t.send_ok("u1", text("hi")).await;
    let m = t.message_until(&id, &["rejected", "failed"]).await;
    assert_eq!(m["status"], "rejected", "{m:#}");
    assert_eq!(m["errcode"], 45015);
    assert_eq!(m["attempts"], 1, "not retried: {m:#}");
    assert!(custom_received(&t).await.is_empty());
}

#[tokio::test]
async fn past_the_windows_sends_wechat_answers_45047_and_past_the_days_quota_the_channel_waits() {
    let t = TestApp::spawn().await;
    let (_, openid) = t.person_for("u1", "oa", OA_APPID).await;
    t.simulator
        .post(
            "/_sim/custom/settings",
            json!({"message_sends": 1, "daily_limit": 2}),
        )
        .await;
    person_writes(&t, &openid).await;
    let first = t.send_ok("u1", text("one")).await;
    t.sent(&first).await;
    let second = t.send_ok("u1", text("two")).await;
    let m = t.message_until(&second, &["rejected", "failed"]).await;
    assert_eq!(
        (m["status"].as_str(), m["errcode"].as_i64()),
        (Some("rejected"), Some(45047)),
        "{m:#}"
    );

    // A new message from the person gives another send; the day's quota (2) then ends it.
    person_writes(&t, &openid).await;
    let third = t.send_ok("u1", text("three")).await;
    let m = t
        .message_until(&third, &["sent", "rejected", "failed"])
        .await;
    assert_eq!(m["status"], "sent", "{m:#}");
    person_writes(&t, &openid).await;
    let fourth = t.send_ok("u1", text("four")).await;
    let mut held = Value::Null;
    for _ in 0..300 {
        held = t.message(&fourth).await;
        if held["held_until_ms"].is_i64() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(held["status"], "queued", "{held:#}");
    assert!(
        held["hold_reason"].as_str().unwrap().contains("45009"),
        "{held:#}"
    );
    assert_eq!(custom_received(&t).await.len(), 2);
}

#[tokio::test]
async fn a_retried_request_with_its_idempotency_key_answers_the_same_message() {
    let t = TestApp::spawn().await;
    let (_, openid) = t.person_for("u1", "oa", OA_APPID).await;
    person_writes(&t, &openid).await;
    let r1 = t.send_keyed("u1", "reply-1", text("hi")).await;
    assert_eq!(r1.status(), StatusCode::ACCEPTED);
    let a: Value = r1.json().await.unwrap();
    let r2 = t.send_keyed("u1", "reply-1", text("hi")).await;
    assert_eq!(r2.status(), StatusCode::ACCEPTED);
    assert_eq!(r2.headers()["idempotent-replayed"], "true");
    let b: Value = r2.json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    t.sent(a["id"].as_str().unwrap()).await;
    // Another body under the same key is refused.
    let r3 = t.send_keyed("u1", "reply-1", text("other")).await;
    assert_eq!(r3.status(), StatusCode::CONFLICT);
    assert_eq!(custom_received(&t).await.len(), 1);
}

#[tokio::test]
async fn auto_falls_back_to_custom_only_when_asked_and_the_window_is_open() {
    let t = TestApp::spawn().await;
    let sub_tpl = t
        .simulator
        .template(MP_APPID, "subscribe", "商品：{{thing1.DATA}}")
        .await;
    let p = t.simulator.person("u1").await;
    for (app, appid) in [("oa", OA_APPID), ("mp", MP_APPID)] {
        let r = t
            .bind("u1", app, p["openids"][appid].as_str().unwrap(), json!({}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let body = json!({
        "channel": "auto",
        "subscribe": {"app": "mp", "template_id": sub_tpl, "data": {"thing1": "机械键盘"}},
        "custom": {"app": "oa", "msgtype": "text", "text": {"content": "机械键盘已发货"}},
    });
    // No subscription left, no window: nothing reaches the person, and the answer says why.
    let r = t.send("u1", body.clone()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "no_channel");
    let reasons = v["error"]["reasons"].to_string();
    assert!(reasons.contains("customer-service window"), "{reasons}");

    person_writes(&t, p["openids"][OA_APPID].as_str().unwrap()).await;
    let r = t.send("u1", body).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["channel"], "custom", "{v}");
    let m = t.sent(v["id"].as_str().unwrap()).await;
    let note = m["history"][0]["detail"].as_str().unwrap();
    assert!(note.contains("chosen automatically: custom"), "{note}");
    assert_eq!(custom_received(&t).await.len(), 1);
}

#[tokio::test]
async fn malformed_custom_messages_are_refused_naming_the_field() {
    let t = TestApp::spawn().await;
    t.person_for("u1", "oa", OA_APPID).await;
    let cases = [
        (
            json!({"channel": "custom", "app": "oa", "msgtype": "voice"}),
            "msgtype",
        ),
        (
            json!({"channel": "custom", "app": "oa", "msgtype": "text"}),
            "msgtype",
        ),
        (text(&"长".repeat(683)), "text.content"),
        (text("  "), "text.content"),
        (
            json!({"channel": "custom", "app": "oa", "msgtype": "image", "image": {"media_id": ""}}),
            "image.media_id",
        ),
        (
            json!({"channel": "custom", "app": "oa", "msgtype": "text", "text": {"content": "x"},
                "image": {"media_id": "m"}}),
            "image",
        ),
        (
            json!({"channel": "custom", "app": "oa", "msgtype": "link",
                "link": {"title": "t", "url": "javascript:alert(1)"}}),
            "link.url",
        ),
    ];
    for (body, field) in cases {
        let r = t.send("u1", body.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_body", "{v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let r = t
        .send(
            "u1",
            json!({"channel": "custom", "app": "mp", "msgtype": "text", "text": {"content": "x"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "app_channel_mismatch", "{v}");
}
