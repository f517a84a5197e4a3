//! Official Account subscribe notifications (`oa_subscribe`, bizsend): the acceptance
//! ledger moved by the account's pushed subscription events (popup, change) and by the
//! API, spent one acceptance a send and refused before sending when nothing is left,
//! 43101 and 47003 from WeChat, the sent event as the delivery result, idempotency, and
//! `auto` choosing the channel; on PostgreSQL too.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const NOTICE: &str = "订单内容：{{thing1.DATA}}\n更新时间：{{time2.DATA}}";

struct Setup {
    person: String,
    tpl: String,
    body: Value,
}

/// User 42 bound in `oa`, a subscribe-notification template there, and a message for them.
async fn setup(t: &TestApp) -> Setup {
    let (person, _) = t.person_for("42", "oa", OA_APPID).await;
    let tpl = t.simulator.template(OA_APPID, "subscribe", NOTICE).await;
    let body = json!({
        "channel": "oa_subscribe", "app": "oa", "template_id": tpl,
        "data": {"thing1": "机械键盘", "time2": "2026-11-25 15:01"},
        "url": "https://shop.example.com/orders/1",
        "miniprogram": {"appid": MP_APPID, "pagepath": "pages/order?id=1"},
    });
    Setup { person, tpl, body }
}

async fn error_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    (status, v["error"].clone())
}

/// The person's choice in an Official Account page's `wx-open-subscribe` popup (or, with
/// `event` `change`, in the notification settings): WeChat records it and pushes it.
/// `scene` tells two equal choices within one second apart (else they are one push, retried).
async fn choose_in(t: &TestApp, s: &Setup, event: &str, status: &str, scene: i64) {
    let r = t
        .api
        .post(
            t.simulator
                .url(&format!("/_sim/people/{}/subscriptions", s.person)),
        )
        .json(&json!({"appid": OA_APPID, "event": event,
                      "choices": [{"template_id": s.tpl, "status": status, "popup_scene": scene}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

async fn choose(t: &TestApp, s: &Setup, event: &str, status: &str) {
    choose_in(t, s, event, status, 0).await;
}

/// The user's `oa` ledger line of the template: (remaining, long_term).
async fn ledger(t: &TestApp, s: &Setup) -> (i64, bool) {
    let subs: Value = t.api_json("/api/v1/users/42/subscriptions").await;
    subs["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["app"] == "oa" && l["template_id"] == s.tpl.as_str())
        .map(|l| {
            (
                l["remaining"].as_i64().unwrap(),
                l["long_term"].as_bool().unwrap(),
            )
        })
        .unwrap_or((0, false))
}

/// The ledger line once its remaining count is `n` (5 s at most).
async fn ledger_until(t: &TestApp, s: &Setup, n: i64) -> (i64, bool) {
    let mut line = (0, false);
    for _ in 0..250 {
        line = ledger(t, s).await;
        if line.0 == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    line
}

/// Waits until the newest `event` push of `oa` is handled with `outcome`.
async fn handled(t: &TestApp, event: &str, outcome: &str) {
    for _ in 0..250 {
        let events = t.events("oa", &format!("type={event}")).await;
        if events.last().is_some_and(|e| e["outcome"] == outcome) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "no {event} handled as {outcome}: {:?}",
        t.events("oa", "").await
    );
}

async fn bizsend_calls(t: &TestApp) -> u64 {
    t.simulator.counter("oa_subscribe_send_calls").await
}

fn states(m: &Value) -> Vec<&str> {
    m["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect()
}

/// The whole round: popup accepted at WeChat and pushed, one send delivered through its
/// sent event, then refused before sending.
async fn one_time_acceptance_round(t: &TestApp) {
    let s = setup(t).await;
    let (status, e) = error_of(t.send("42", s.body.clone()).await).await;
    assert_eq!(
        (status, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "no_subscription")
    );
    choose(t, &s, "popup", "accept").await;
    handled(
        t,
        "subscribe_msg_popup_event",
        "ledger_credited_1_cleared_0",
    )
    .await;
    assert_eq!(ledger(t, &s).await, (1, false));

    let id = t.send_ok("42", s.body.clone()).await;
    let m = t.message_until(&id, &["delivered"]).await;
    assert_eq!(states(&m), ["queued", "sending", "sent", "delivered"]);
    assert_eq!(m["channel"], "oa_subscribe");
    // bizsend answers no msgid: the sent event's MsgID is the message's now.
    let got = t.simulator.messages("?channel=oa_subscribe").await;
    assert_eq!(got.len(), 1);
    assert_eq!(m["msgid"], got[0]["msgid"]);
    assert_eq!(got[0]["page"], "https://shop.example.com/orders/1");
    assert_eq!(got[0]["miniprogram"]["pagepath"], "pages/order?id=1");
    assert_eq!(got[0]["data"]["thing1"]["value"], "机械键盘");
    assert_eq!(ledger(t, &s).await, (0, false));

    // Nothing left: refused here, and nothing reaches WeChat.
    let (status, e) = error_of(t.send("42", s.body.clone()).await).await;
    assert_eq!(
        (status, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "no_subscription")
    );
    assert!(e["message"].as_str().unwrap().contains(&s.tpl), "{e}");
    assert_eq!(bizsend_calls(t).await, 1);
}

#[tokio::test]
async fn a_popup_acceptance_sends_once_then_is_refused_before_sending() {
    let t = TestApp::spawn().await;
    one_time_acceptance_round(&t).await;
}

#[tokio::test]
async fn a_popup_acceptance_sends_once_on_postgres() {
    let Some(server) = postgres_url() else {
        return;
    };
    let t = TestApp::spawn_with(Options {
        postgres: Some(server),
        ..Options::default()
    })
    .await;
    one_time_acceptance_round(&t).await;
}

#[tokio::test]
async fn a_long_term_acceptance_is_kept_send_after_send() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    t.simulator
        .post(
            "/_sim/subscriptions",
            json!({"appid": OA_APPID, "person": s.person, "template_id": s.tpl,
                   "count": 0, "long_term": true}),
        )
        .await;
    let r = t
        .api_post(
            "/api/v1/users/42/subscriptions",
            json!({"app": "oa", "template_id": s.tpl, "count": 0, "long_term": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let line: Value = r.json().await.unwrap();
    assert_eq!(
        (line["app"].as_str(), line["long_term"].as_bool()),
        (Some("oa"), Some(true))
    );
    for _ in 0..3 {
        let id = t.send_ok("42", s.body.clone()).await;
        t.message_until(&id, &["delivered"]).await;
    }
    assert_eq!(bizsend_calls(&t).await, 3);
    assert_eq!(ledger(&t, &s).await, (0, true));
}

#[tokio::test]
async fn a_popup_rejection_leaves_nothing_to_send() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    choose(&t, &s, "popup", "reject").await;
    handled(
        &t,
        "subscribe_msg_popup_event",
        "ledger_credited_0_cleared_0",
    )
    .await;
    let events = t.events("oa", "type=subscribe_msg_popup_event").await;
    assert_eq!(
        events[0]["fields"]["SubscribeMsgPopupEvent"]["List"]["SubscribeStatusString"], "reject",
        "{events:?}"
    );
    let (status, e) = error_of(t.send("42", s.body.clone()).await).await;
    assert_eq!(
        (status, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "no_subscription")
    );
    assert_eq!(bizsend_calls(&t).await, 0);
}

#[tokio::test]
async fn a_revocation_in_the_settings_clears_the_ledger() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    for scene in [0, 1] {
        choose_in(&t, &s, "popup", "accept", scene).await;
    }
    assert_eq!(ledger_until(&t, &s, 2).await, (2, false));
    choose(&t, &s, "change", "reject").await;
    handled(
        &t,
        "subscribe_msg_change_event",
        "ledger_credited_0_cleared_1",
    )
    .await;
    assert_eq!(ledger(&t, &s).await, (0, false));
    let r = t.send("42", s.body.clone()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(bizsend_calls(&t).await, 0);
}

#[tokio::test]
async fn wechat_saying_43101_rejects_at_once_and_clears_the_ledger() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    // The person accepted twice; then turned it off at WeChat without a push reaching us.
    t.simulator
        .post(
            "/_sim/subscriptions",
            json!({"appid": OA_APPID, "person": s.person, "template_id": s.tpl, "count": 2}),
        )
        .await;
    let r = t
        .api_post(
            "/api/v1/users/42/subscriptions",
            json!({"app": "oa", "template_id": s.tpl, "count": 2}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    t.simulator
        .post(
            "/_sim/subscriptions",
            json!({"appid": OA_APPID, "person": s.person, "template_id": s.tpl, "revoke": true}),
        )
        .await;
    let id = t.send_ok("42", s.body.clone()).await;
    let m = t.message_until(&id, &["rejected"]).await;
    assert_eq!(m["errcode"], 43101);
    assert_eq!(m["attempts"], 1, "a permanent refusal is not retried: {m}");
    assert_eq!(ledger(&t, &s).await, (0, false));
    let r = t.send("42", s.body.clone()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(bizsend_calls(&t).await, 1);
}

#[tokio::test]
async fn field_rules_refuse_before_sending_and_wechats_47003_gives_the_acceptance_back() {
    let t = TestApp::spawn().await;
    let (person, _) = t.person_for("42", "oa", OA_APPID).await;
    let tpl = t
        .simulator
        .template(OA_APPID, "subscribe", "{{thing1.DATA}}{{keyword2.DATA}}")
        .await;
    let s = Setup {
        person,
        tpl: tpl.clone(),
        body: json!({"channel": "oa_subscribe", "app": "oa", "template_id": tpl,
                     "data": {"thing1": "机械键盘", "keyword2": "ok"}}),
    };
    choose(&t, &s, "popup", "accept").await;
    handled(
        &t,
        "subscribe_msg_popup_event",
        "ledger_credited_1_cleared_0",
    )
    .await;
    // The subscribe field rules, checked here: nothing queued, nothing spent.
    for (field, value) in [
        ("thing1", "这是一件非常非常非常非常长的商品名称超过二十个字"),
        ("thing1", "line\nbreak"),
        ("keyword2", ""),
    ] {
        let mut b = s.body.clone();
        b["data"][field] = json!(value);
        let (status, e) = error_of(t.send("42", b).await).await;
        assert_eq!(
            (status, e["code"].as_str().unwrap()),
            (StatusCode::BAD_REQUEST, "invalid_data"),
            "{field}={value:?}"
        );
        assert_eq!(e["field"], field);
    }
    // A page path is the mini-program channel's: here the web page is `url`.
    let mut b = s.body.clone();
    b["page"] = json!("pages/order?id=1");
    let (status, e) = error_of(t.send("42", b).await).await;
    assert_eq!(
        (status, e["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "field_not_for_channel")
    );
    assert!(e["message"].as_str().unwrap().contains("url"), "{e}");
    assert_eq!(bizsend_calls(&t).await, 0);
    assert_eq!(ledger(&t, &s).await, (1, false));

    // A value our rules let through and WeChat's do not (an untyped key over 64): 47003.
    let mut b = s.body.clone();
    b["data"]["keyword2"] = json!("长".repeat(80));
    let id = t.send_ok("42", b).await;
    let m = t.message_until(&id, &["rejected"]).await;
    assert_eq!(m["errcode"], 47003);
    assert!(m["reason"].as_str().unwrap().contains("keyword2"), "{m}");
    // WeChat spent nothing, so neither did the ledger.
    assert_eq!(ledger(&t, &s).await, (1, false));
    let id = t.send_ok("42", s.body.clone()).await;
    t.message_until(&id, &["delivered"]).await;
}

#[tokio::test]
async fn a_repeated_request_is_the_same_message_and_spends_one_acceptance() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    t.simulator
        .post(
            "/_sim/subscriptions",
            json!({"appid": OA_APPID, "person": s.person, "template_id": s.tpl, "count": 2}),
        )
        .await;
    t.api_post(
        "/api/v1/users/42/subscriptions",
        json!({"app": "oa", "template_id": s.tpl, "count": 2}),
    )
    .await;
    let first = t.send_keyed("42", "notice-1", s.body.clone()).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let again = t.send_keyed("42", "notice-1", s.body.clone()).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(
        again.headers()["idempotent-replayed"].to_str().unwrap(),
        "true"
    );
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    t.message_until(first["id"].as_str().unwrap(), &["delivered"])
        .await;
    assert_eq!(ledger(&t, &s).await, (1, false));
    assert_eq!(bizsend_calls(&t).await, 1);
    let mut other = s.body.clone();
    other["data"]["thing1"] = json!("别的");
    let r = t.send_keyed("42", "notice-1", other).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn auto_sends_a_subscribe_notification_to_a_person_who_does_not_follow() {
    let t = TestApp::spawn().await;
    let s = setup(&t).await;
    let oa_tpl = t
        .simulator
        .template(OA_APPID, "template", "订单：{{keyword1.DATA}}")
        .await;
    let auto = json!({
        "channel": "auto",
        "template": {"app": "oa", "template_id": oa_tpl, "data": {"keyword1": "339208499"}},
        "oa_subscribe": {"app": "oa", "template_id": s.tpl,
                         "data": {"thing1": "机械键盘", "time2": "2026-11-25 15:01"}},
    });
    choose(&t, &s, "popup", "accept").await;
    handled(
        &t,
        "subscribe_msg_popup_event",
        "ledger_credited_1_cleared_0",
    )
    .await;
    t.simulator
        .post(
            &format!("/_sim/people/{}/unfollow", s.person),
            json!({"appid": OA_APPID}),
        )
        .await;
    handled(&t, "unsubscribe", "unfollow_recorded").await;
    let r = t.send("42", auto.clone()).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let accepted: Value = r.json().await.unwrap();
    assert_eq!(accepted["channel"], "oa_subscribe");
    let m = t
        .message_until(accepted["id"].as_str().unwrap(), &["delivered"])
        .await;
    let note = m["history"][0]["detail"].as_str().unwrap();
    assert!(
        note.contains("chosen automatically: oa_subscribe"),
        "{note}"
    );
    // Spent: no channel is left, and each part says why.
    let (status, e) = error_of(t.send("42", auto.clone()).await).await;
    assert_eq!(
        (status, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "no_channel")
    );
    let reasons: Vec<&str> = e["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("does not follow"), "{reasons:?}");
    assert!(reasons[1].contains("no subscription"), "{reasons:?}");
    // Following again: the template message, the acceptance untouched.
    t.simulator
        .post(
            &format!("/_sim/people/{}/follow", s.person),
            json!({"appid": OA_APPID}),
        )
        .await;
    handled(&t, "subscribe", "follow_recorded").await;
    choose_in(&t, &s, "popup", "accept", 1).await;
    assert_eq!(ledger_until(&t, &s, 1).await, (1, false));
    let r = t.send("42", auto).await;
    let accepted: Value = r.json().await.unwrap();
    assert_eq!(accepted["channel"], "template");
    assert_eq!(ledger(&t, &s).await, (1, false));
}
