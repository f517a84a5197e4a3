//! Signed webhooks: every event type produced by a real flow against the simulator arrives
//! at a receiver that verifies it with the Standard Webhooks crate, keyed by user id; a
//! failing receiver gets retries with growing delays (the clock moved, not slept) under
//! one `webhook-id`, and an endpoint failing for the retry period is disabled; rotation
//! signs with both secrets; replays keep the original id.

use crate::support::webhooks::{
    NEW_SECRET, Received, Reply, SECRET, attempts_of, waiting_secs, with_receiver,
};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const SHIPPED: &str = "订单号：{{keyword1.DATA}}";
const SUB: &str = "商品：{{thing1.DATA}}";

fn of_type<'a>(got: &'a [Received], kind: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.body["type"] == kind).collect()
}

/// Waits until the pushes the simulator sent were answered, and their events handled.
async fn pushes_settle(t: &TestApp, n: usize) {
    t.settled_pushes(n).await;
}

#[tokio::test]
async fn every_event_type_arrives_signed_and_keyed_by_user_id() {
    let (t, rx) = with_receiver(&["*"], &[SECRET]).await;

    // identity.linked (API bind), then identity.conflict (someone else claims it).
    let (person, openid) = t.person_for("42", "oa", OA_APPID).await;
    let r = t.bind("43", "oa", &openid, json!({})).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // message.sent and message.delivered (the simulator's report), with the caller's key.
    let tpl = t.simulator.template(OA_APPID, "template", SHIPPED).await;
    let body = json!({"channel": "template", "app": "oa", "template_id": tpl, "data": {"keyword1": "339208499"}});
    let r = t.send_keyed("42", "order-339208499", body.clone()).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let sent_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    t.message_until(&sent_id, &["delivered"]).await;

    // message.failed: WeChat reports the next one blocked.
    t.simulator
        .post(
            "/_sim/push/settings",
            json!({"report_status": "failed:user block", "report_status_count": 1}),
        )
        .await;
    let failed = t.send_ok("42", body.clone()).await;
    t.message_until(&failed, &["failed"]).await;

    // follow.unsubscribed, then message.rejected (43004), then follow.subscribed.
    t.simulator
        .post(
            &format!("/_sim/people/{person}/unfollow"),
            json!({"appid": OA_APPID}),
        )
        .await;
    rx.event("follow.unsubscribed").await;
    let rejected = t.send_ok("42", body.clone()).await;
    t.message_until(&rejected, &["rejected"]).await;
    t.simulator
        .post(
            &format!("/_sim/people/{person}/follow"),
            json!({"appid": OA_APPID}),
        )
        .await;

    // subscription.accepted and subscription.rejected from the mini-program's popup.
    let (mp_person, _) = t.person_for("42", "mp", MP_APPID).await;
    let sub = t.simulator.template(MP_APPID, "subscribe", SUB).await;
    t.simulator
        .post(
            &format!("/_sim/people/{mp_person}/subscriptions"),
            json!({"appid": MP_APPID, "choices": [
                {"template_id": sub, "status": "accept"},
                {"template_id": "tplNope", "status": "reject"}]}),
        )
        .await;

    // authorization.declined, on a link minted for user 42.
    let link = t
        .link_ticket(
            "42",
            json!({"app": "oa", "scope": "snsapi_userinfo", "return_to": "https://shop.example.com/done"}),
        )
        .await;
    let b = wechat_browser();
    let callback = t.through_wechat(&b, &link, &person, "deny").await;
    let r = b.get(callback).send().await.unwrap();
    assert_eq!(
        query_param(&location(&r), "wxlink_error").as_deref(),
        Some("declined")
    );

    // identity.unlinked.
    let r = t
        .api_delete(&format!("/api/v1/users/42/identities/oa/{openid}"))
        .await;
    assert!(r.status().is_success(), "{}", r.status());

    // webhook.test.
    let r = t.api_post("/api/v1/webhooks/crm/test", json!({})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let test_id = r.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let expected = [
        "identity.linked",
        "identity.conflict",
        "message.sent",
        "message.delivered",
        "message.failed",
        "message.rejected",
        "follow.unsubscribed",
        "follow.subscribed",
        "subscription.accepted",
        "subscription.rejected",
        "authorization.declined",
        "identity.unlinked",
        "webhook.test",
    ];
    let got = rx
        .until("every event type", |got| {
            let types: BTreeSet<&str> =
                got.iter().filter_map(|r| r.body["type"].as_str()).collect();
            expected
                .iter()
                .all(|e| types.contains(e))
                .then(|| got.to_vec())
        })
        .await;
    pushes_settle(&t, 1).await;

    for r in &got {
        assert_eq!(
            r.verified_by,
            [0],
            "signed with the one secret: {:?}",
            r.body
        );
        assert_eq!(r.id, r.body["id"], "webhook-id is the event id");
        let person_event = !matches!(r.body["type"].as_str(), Some("webhook.test"));
        if person_event && r.body["type"] != "identity.conflict" {
            assert_eq!(r.body["data"]["user_id"], "42", "{}", r.body);
        }
    }
    let conflict = &of_type(&got, "identity.conflict")[0].body["data"];
    assert_eq!(conflict["user_id"], "42");
    assert_eq!(conflict["requested_user_id"], "43");
    assert_eq!(conflict["openid"], openid);

    let sent = &of_type(&got, "message.sent")[0].body["data"];
    assert_eq!(sent["message_id"], sent_id);
    assert_eq!(sent["idempotency_key"], "order-339208499");
    assert_eq!(sent["channel"], "template");
    assert_eq!(sent["app"], "oa");
    assert!(sent["msgid"].is_string());
    let delivered = of_type(&got, "message.delivered");
    assert!(
        delivered
            .iter()
            .any(|d| d.body["data"]["message_id"] == sent_id)
    );
    let failed_ev = of_type(&got, "message.failed");
    assert_eq!(failed_ev[0].body["data"]["message_id"], failed);
    assert_eq!(failed_ev[0].body["data"]["reason"], "failed:user block");
    let rejected_ev = &of_type(&got, "message.rejected")[0].body["data"];
    assert_eq!(rejected_ev["message_id"], rejected);
    assert_eq!(rejected_ev["errcode"], 43004);
    let accepted = &of_type(&got, "subscription.accepted")[0].body["data"];
    assert_eq!(accepted["template_id"], sub);
    assert_eq!(accepted["app"], "mp");
    let declined = &of_type(&got, "authorization.declined")[0].body["data"];
    assert_eq!(declined["app"], "oa");
    assert_eq!(declined["scope"], "snsapi_userinfo");
    assert_eq!(of_type(&got, "webhook.test")[0].id, test_id);

    // In order per endpoint: every cause before its effect.
    let pos = |pred: &dyn Fn(&Received) -> bool| got.iter().position(pred).unwrap();
    let kind = |k: &'static str| move |r: &Received| r.body["type"] == k;
    let about = |k: &'static str, m: String| {
        move |r: &Received| r.body["type"] == k && r.body["data"]["message_id"] == m
    };
    assert!(
        pos(&about("message.sent", sent_id.clone()))
            < pos(&about("message.delivered", sent_id.clone()))
    );
    assert!(
        pos(&about("message.sent", failed.clone())) < pos(&about("message.failed", failed.clone()))
    );
    assert!(pos(&kind("follow.unsubscribed")) < pos(&kind("message.rejected")));
    assert!(pos(&kind("message.rejected")) < pos(&kind("follow.subscribed")));
    assert!(pos(&kind("identity.linked")) < pos(&kind("identity.unlinked")));

    // The deliveries API shows each with its attempt and the receiver's answer.
    let attempts = attempts_of(&t, &test_id, 1).await;
    assert_eq!(attempts[0]["status_code"], 200);
    let d: Value = t
        .api_json("/api/v1/webhooks/crm/deliveries?limit=200")
        .await;
    let test = d["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["event"]["id"] == test_id)
        .unwrap()
        .clone();
    assert_eq!(test["status"], "delivered");
}

#[tokio::test]
async fn a_filter_sends_only_its_types_and_the_reverse_lookup_names_the_user() {
    let (t, rx) = with_receiver(&["message.*"], &[SECRET]).await;
    let (_, openid) = t.person_for("42", "oa", OA_APPID).await;
    let tpl = t.simulator.template(OA_APPID, "template", SHIPPED).await;
    let id = t
        .send_ok(
            "42",
            json!({"channel": "template", "app": "oa", "template_id": tpl, "data": {"keyword1": "1"}}),
        )
        .await;
    t.message_until(&id, &["delivered"]).await;
    let got = rx
        .until("message.delivered", |r| {
            r.iter()
                .any(|e| e.body["type"] == "message.delivered")
                .then(|| r.to_vec())
        })
        .await;
    assert!(
        got.iter()
            .all(|r| r.body["type"].as_str().unwrap().starts_with("message.")),
        "identity.linked is not sent to a message.* endpoint"
    );

    let who: Value = t
        .api_json(&format!("/api/v1/apps/oa/identities/{openid}"))
        .await;
    assert_eq!(who["user_id"], "42");
    let r = t.api_get("/api/v1/apps/oa/identities/nobodyhere").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "identity_unknown"
    );
    // The events API names the user too.
    let events = t.events("oa", "type=TEMPLATESENDJOBFINISH").await;
    assert_eq!(events[0]["user_id"], "42");

    // The OpenAPI document describes every payload under `webhooks`.
    let doc: Value = t.api_json("/api/v1/openapi.json").await;
    let hook = &doc["webhooks"]["message.delivered"]["post"];
    assert_eq!(
        hook["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/WebhookPayload"
    );
    assert!(doc["components"]["schemas"]["WebhookData"]["properties"]["user_id"].is_object());
    assert_eq!(doc["webhooks"].as_object().unwrap().len(), 14);
}

#[tokio::test]
async fn a_failing_receiver_gets_growing_delays_under_one_id_until_it_answers() {
    let (t, rx) = with_receiver(&["*"], &[SECRET]).await;
    // Refused, timed out, 500, 503; then 200.
    rx.reply(&[
        Reply::Status(500),
        Reply::Hang(Duration::from_millis(600)),
        Reply::Status(500),
        Reply::Status(503),
    ]);
    let r = t.api_post("/api/v1/webhooks/crm/test", json!({})).await;
    let id = r.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut delays = Vec::new();
    for n in 1..=4 {
        let attempts = attempts_of(&t, &id, n).await;
        let last = &attempts[n - 1];
        assert!(last["status_code"] != 200, "{last}");
        let wait = waiting_secs(&t, last["at_ms"].as_i64().unwrap()).await;
        delays.push(wait);
        // Not a second early: nothing more arrives until the clock passes the delay.
        t.clock.advance(wait);
    }
    // The receiver never finishes the attempt that timed out (the service hung up), so it
    // sees four of the five.
    let got = rx
        .until("the fifth attempt", |r| (r.len() >= 4).then(|| r.to_vec()))
        .await;
    assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
    assert!(
        delays[0] >= 60,
        "the first retry after the base delay: {delays:?}"
    );
    assert!(
        got.iter().all(|r| r.id == id),
        "one webhook-id across retries"
    );
    // Signed at the wall clock's time, whatever the service's clock says: the receiver's
    // library compares it with its own.
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        got.iter()
            .all(|r| (r.timestamp - wall).abs() < 60 && r.verified_by == [0])
    );
    let attempts = attempts_of(&t, &id, 5).await;
    assert_eq!(attempts[0]["status_code"], 500);
    assert!(attempts[1]["status_code"].is_null());
    assert_eq!(attempts[1]["error"], "timed out");
    assert_eq!(attempts[4]["status_code"], 200);
    let w: Value = t.api_json("/api/v1/webhooks").await;
    assert_eq!(w["webhooks"][0]["state"]["failures"], 0);
    assert_eq!(w["webhooks"][0]["state"]["pending"], 0);
}

#[tokio::test]
async fn an_endpoint_failing_for_the_retry_period_is_disabled_until_enabled() {
    let (t, rx) = with_receiver(&["*"], &[SECRET]).await;
    rx.reply(&vec![Reply::Status(500); 40]);
    let r = t.api_post("/api/v1/webhooks/crm/test", json!({})).await;
    let id = r.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut n = 1;
    let disabled = loop {
        let attempts = attempts_of(&t, &id, n).await;
        let w: Value = t.api_json("/api/v1/webhooks").await;
        let state = w["webhooks"][0]["state"].clone();
        if !state["disabled_ms"].is_null() {
            break state;
        }
        let at = attempts[n - 1]["at_ms"].as_i64().unwrap();
        t.clock.advance(waiting_secs(&t, at).await);
        n += 1;
        assert!(n < 40, "never disabled");
    };
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{disabled}"
    );
    // A day of failures (retry_for_secs) at delays doubling from a minute to an hour.
    assert!(n > 5, "{n} attempts");
    // Nothing is attempted while disabled, whatever the clock says.
    t.clock.advance(86_400);
    let metrics = t
        .api
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"wxlink_webhook_attempts_total{endpoint="crm",result="failed"}"#),
        "attempts are counted"
    );
    let r = t.api_post("/api/v1/webhooks/crm/enable", json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    rx.reply(&[]);
    // Enabled: the waiting event goes out again under its id (once the 500s queued run out).
    rx.until("delivery after enabling", |r| {
        (r.len() > n && r.iter().all(|x| x.id == id)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign() {
    let (t, rx) = with_receiver(&["*"], &[SECRET, NEW_SECRET]).await;
    t.api_post("/api/v1/webhooks/crm/test", json!({})).await;
    let got = rx.at_least(1).await;
    assert_eq!(
        got[0].verified_by,
        [0, 1],
        "the old and the new secret verify"
    );
    assert_eq!(got[0].signature.split(' ').count(), 2);
}

#[tokio::test]
async fn replay_redelivers_under_the_original_ids() {
    let (t, rx) = with_receiver(&["identity.*"], &[SECRET]).await;
    let since = t.clock.now();
    t.person_for("42", "oa", OA_APPID).await;
    t.person_for("43", "oa", OA_APPID).await;
    let first = rx.at_least(2).await;
    let ids: Vec<String> = first.iter().map(|r| r.id.clone()).collect();

    let r = t
        .api_post("/api/v1/webhooks/crm/replay", json!({"event_id": ids[0]}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let got = rx.at_least(3).await;
    assert_eq!(got[2].id, ids[0]);

    let r = t
        .api_post("/api/v1/webhooks/crm/replay", json!({"since": since}))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["queued"], 2);
    let got = rx.at_least(5).await;
    assert_eq!(
        [&got[3].id, &got[4].id],
        [&ids[0], &ids[1]],
        "in event order"
    );

    let r = t
        .api_post(
            "/api/v1/webhooks/crm/replay",
            json!({"event_id": "evt_nope"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = t.api_post("/api/v1/webhooks/nope/test", json!({})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unknown_webhook"
    );
}

/// A replay asked for while that very event's attempt is in flight must be delivered again,
/// not swallowed by the in-flight attempt's success.
#[tokio::test]
async fn a_replay_during_the_attempt_in_flight_is_delivered_again() {
    let (t, rx) = with_receiver(&["identity.*"], &[SECRET]).await;
    let gate = Arc::new(tokio::sync::Notify::new());
    rx.reply(&[Reply::Hold(gate.clone())]);
    t.person_for("42", "oa", OA_APPID).await;
    let id = rx.arrived(1).await.remove(0);
    let r = t
        .api_post("/api/v1/webhooks/crm/replay", json!({"event_id": id}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    gate.notify_one();
    rx.until("the replayed event a second time", |r| {
        (r.iter().filter(|e| e.id == id).count() >= 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn delivered_events_past_the_retention_are_pruned() {
    let (t, rx) = with_receiver(&["*"], &[SECRET]).await;
    let r = t.api_post("/api/v1/webhooks/crm/test", json!({})).await;
    let old = r.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    attempts_of(&t, &old, 1).await;
    rx.at_least(1).await;
    t.clock.advance(31 * 86_400);
    let r = t.api_post("/api/v1/webhooks/crm/test", json!({})).await;
    let new = r.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    attempts_of(&t, &new, 1).await;
    let mut ids = Vec::new();
    for _ in 0..500 {
        let d: Value = t.api_json("/api/v1/webhooks/crm/deliveries").await;
        ids = d["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["event"]["id"].as_str().unwrap().to_owned())
            .collect();
        if ids == [new.clone()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        ids,
        [new],
        "the month-old delivery is gone, the new one kept"
    );
    let r = t
        .api_post("/api/v1/webhooks/crm/replay", json!({"event_id": old}))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "the event itself is gone too"
    );
}
