//! From a send through the API to WeChat's delivery report: the simulator pushes its report
//! to the service's push endpoint (signed, in the app's mode), and the message ends
//! `delivered` or `failed` from that push alone; subscription choices pushed by WeChat move
//! the ledger; a person who stopped following shows on the identity.

use crate::support::push::{craft, post};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SHIPPED: &str = "订单号：{{keyword1.DATA}}";
const SUB: &str = "商品：{{thing1.DATA}}";

fn states(m: &Value) -> Vec<String> {
    m["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn template_body(t: &TestApp, user: &str) -> (String, Value) {
    let (person, _) = t.person_for(user, "oa", OA_APPID).await;
    let tpl = t.simulator.template(OA_APPID, "template", SHIPPED).await;
    (
        person,
        json!({"channel": "template", "app": "oa", "template_id": tpl, "data": {"keyword1": "339208499"}}),
    )
}

#[tokio::test]
async fn a_template_message_ends_delivered_from_the_simulators_push() {
    let t = TestApp::spawn().await;
    let (_, body) = template_body(&t, "42").await;
    let id = t.send_ok("42", body).await;
    let m = t.message_until(&id, &["delivered"]).await;
    assert_eq!(states(&m), ["queued", "sending", "sent", "delivered"]);
    assert!(m["reason"].is_null());
    // It came through the push endpoint: the report is in the event log.
    let events: Value = t
        .api_json("/api/v1/apps/oa/events?type=TEMPLATESENDJOBFINISH")
        .await;
    let e = &events["events"][0];
    assert_eq!(e["outcome"], "delivered", "{events}");
}

#[tokio::test]
async fn a_blocked_report_ends_the_message_failed_with_the_reason() {
    let t = TestApp::spawn().await;
    let (_, body) = template_body(&t, "42").await;
    t.simulator
        .post(
            "/_sim/push/settings",
            json!({"report_status": "failed:user block", "report_status_count": 1}),
        )
        .await;
    let blocked = t.send_ok("42", body.clone()).await;
    let m = t.message_until(&blocked, &["failed"]).await;
    assert_eq!(m["reason"], "failed:user block");
    assert_eq!(states(&m), ["queued", "sending", "sent", "failed"]);
    // The next report is a success again.
    let next = t.send_ok("42", body).await;
    t.message_until(&next, &["delivered"]).await;
}

#[tokio::test]
async fn a_report_that_beats_the_sends_answer_is_not_lost() {
    let t = TestApp::spawn().await;
    let (_, body) = template_body(&t, "42").await;
    let id = t.send_ok("42", body.clone()).await;
    t.message_until(&id, &["delivered"]).await;
    // WeChat answers the send slowly but pushes the report at once: the report is stored
    // (and waits) before the outbox records sent(msgid).
    t.simulator
        .post("/_sim/push/settings", json!({"report_delay_ms": 0}))
        .await;
    t.simulator
        .post("/_sim/faults", json!({"latency_ms": 400}))
        .await;
    let id = t.send_ok("42", body).await;
    let m = t.message_until(&id, &["delivered"]).await;
    assert_eq!(states(&m), ["queued", "sending", "sent", "delivered"]);
    let events: Value = t
        .api_json("/api/v1/apps/oa/events?type=TEMPLATESENDJOBFINISH")
        .await;
    let outcomes: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"waiting_for_send"), "{outcomes:?}");
}

/// Reports for messages this service never sent (another system on the same Official
/// Account) wait forever; they must not take the places of reports that beat their own send.
#[tokio::test]
async fn foreign_reports_cannot_starve_a_report_that_beats_its_send() {
    let t = TestApp::spawn().await;
    let (_, body) = template_body(&t, "42").await;
    for i in 0..600i64 {
        let xml = format!(
            "<xml><ToUserName>gh_x</ToUserName><FromUserName>oForeign{i}</FromUserName><CreateTime>{}</CreateTime><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>{}</MsgID><Status>success</Status></xml>",
            t.clock.now(),
            9_000_000_000 + i
        );
        let r = t
            .api
            .post(t.simulator.url("/_sim/push/event"))
            .json(&json!({"appid": OA_APPID, "xml": xml}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let mut waiting = 0;
    for _ in 0..500 {
        let foreign = t
            .events("oa", "type=TEMPLATESENDJOBFINISH&limit=1000")
            .await;
        waiting = foreign
            .iter()
            .filter(|e| e["outcome"] == "waiting_for_send")
            .count();
        if waiting == 600 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(waiting, 600, "every foreign report is handled and waits");
    // The clock moves on, so the real report comes after every foreign one.
    t.advance(5);
    t.simulator
        .post("/_sim/push/settings", json!({"report_delay_ms": 0}))
        .await;
    t.simulator
        .post("/_sim/faults", json!({"latency_ms": 400}))
        .await;
    let id = t.send_ok("42", body).await;
    let m = t.message_until(&id, &["delivered"]).await;
    assert_eq!(states(&m), ["queued", "sending", "sent", "delivered"]);
}

#[tokio::test]
async fn a_subscribe_message_ends_delivered_and_the_popup_fills_the_ledger() {
    let t = TestApp::spawn().await;
    let (person, _) = t.person_for("42", "mp", MP_APPID).await;
    let tpl = t.simulator.template(MP_APPID, "subscribe", SUB).await;
    let body = json!({"channel": "subscribe", "template_id": tpl, "data": {"thing1": "机械键盘"}});
    let r = t.send("42", body.clone()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "no acceptance yet");
    // The person taps "allow" in the popup; WeChat pushes the choice; nobody calls our API.
    t.simulator
        .post(
            &format!("/_sim/people/{person}/subscriptions"),
            json!({"appid": MP_APPID, "choices": [{"template_id": tpl, "status": "accept"}]}),
        )
        .await;
    let mut remaining = 0;
    for _ in 0..100 {
        let subs: Value = t.api_json("/api/v1/users/42/subscriptions").await;
        remaining = subs["subscriptions"][0]["remaining"].as_i64().unwrap_or(0);
        if remaining == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(remaining, 1, "the pushed acceptance credited the ledger");
    let id = t.send_ok("42", body.clone()).await;
    let m = t.message_until(&id, &["delivered"]).await;
    assert_eq!(states(&m), ["queued", "sending", "sent", "delivered"]);
    // Accepted again, then turned off in the settings page: the ledger ends empty.
    for (event, status) in [("popup", "accept"), ("change", "reject")] {
        t.simulator.post(
            &format!("/_sim/people/{person}/subscriptions"),
            json!({"appid": MP_APPID, "event": event, "choices": [{"template_id": tpl, "status": status}]}),
        )
        .await;
    }
    t.settled_pushes(4).await;
    let mut handled = false;
    for _ in 0..100 {
        let events: Value = t
            .api_json("/api/v1/apps/mp/events?type=subscribe_msg_change_event")
            .await;
        if events["events"][0]["outcome"] == "ledger_credited_0_cleared_1" {
            handled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(handled);
    let subs: Value = t.api_json("/api/v1/users/42/subscriptions").await;
    assert_eq!(subs["subscriptions"][0]["remaining"], 0);
    let r = t.send("42", body).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn an_unfollow_shows_on_the_identity_and_explains_43004() {
    let t = TestApp::spawn().await;
    let (person, body) = template_body(&t, "42").await;
    t.simulator
        .post(
            &format!("/_sim/people/{person}/unfollow"),
            json!({"appid": OA_APPID}),
        )
        .await;
    let mut follows = Value::Null;
    for _ in 0..100 {
        let user: Value = t.api_json("/api/v1/users/42").await;
        follows = user["identities"][0]["follows"].clone();
        if follows == json!(false) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(follows, json!(false));
    let id = t.send_ok("42", body.clone()).await;
    let m = t.message_until(&id, &["rejected"]).await;
    assert_eq!(m["errcode"], 43004);
    assert!(
        m["explanation"]
            .as_str()
            .unwrap_or("")
            .contains("unfollowed"),
        "{m:#}"
    );
}

#[tokio::test]
async fn a_43004_marks_the_identity_as_not_following() {
    let t = TestApp::spawn().await;
    let (person, body) = template_body(&t, "42").await;
    // WeChat knows; no push told us (the account has no push configured for this).
    t.simulator
        .post(
            "/_sim/following",
            json!({"appid": OA_APPID, "person": person, "following": false}),
        )
        .await;
    let id = t.send_ok("42", body).await;
    t.message_until(&id, &["rejected"]).await;
    let user: Value = t.api_json("/api/v1/users/42").await;
    assert_eq!(user["identities"][0]["follows"], json!(false));
}

/// Every instant of a message, checked to run forwards: created, each history line, updated.
fn assert_monotonic(m: &Value) {
    let created = m["created_ms"].as_i64().unwrap();
    let mut last = created;
    for h in m["history"].as_array().unwrap() {
        let at = h["at_ms"].as_i64().unwrap();
        assert!(at >= last, "history runs backwards at {h}: {m:#}");
        last = at;
    }
    assert!(
        m["updated_ms"].as_i64().unwrap() >= last,
        "updated_ms before the last history line: {m:#}"
    );
}

#[tokio::test]
async fn a_messages_history_runs_forwards_even_when_the_report_is_stamped_earlier() {
    let t = TestApp::spawn().await;
    let (_, body) = template_body(&t, "42").await;
    // The simulator's own report would come an hour later: this test pushes it by hand.
    t.simulator
        .post("/_sim/push/settings", json!({"report_delay_ms": 3_600_000}))
        .await;
    let id = t.send_ok("42", body).await;
    let m = t.message_until(&id, &["sent"]).await;
    assert_monotonic(&m);
    let msgid = m["msgid"].as_str().unwrap().to_owned();
    let openid = m["openid"].as_str().unwrap().to_owned();

    // The instance that takes the push runs behind the one that sent (clocks of a fleet
    // differ; a clock can be stepped back): its "now" is before the `sent` line.
    t.clock.advance(-30);
    let now = t.clock.now();
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>{msgid}</MsgID><Status><![CDATA[success]]></Status></xml>"
    );
    let c = craft(
        OA_PUSH_TOKEN,
        now,
        "n0nce1",
        &xml,
        Some((OA_AES_KEY, OA_APPID)),
    );
    let (status, text) = post(&t, "oa", &c).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let m = t.message_until(&id, &["delivered"]).await;
    assert_eq!(states(&m), ["queued", "sending", "sent", "delivered"]);
    assert_monotonic(&m);
}
