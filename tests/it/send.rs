//! Send by business user id: every check before queueing, the outbox's states and history,
//! idempotency, retries, quota holds, the subscription ledger and legacy form ids, all
//! over HTTP against the simulator.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SHIPPED: &str =
    "{{first.DATA}}\n订单号：{{keyword1.DATA}}\n快递：{{keyword2.DATA}}\n{{remark.DATA}}";
const SUB_CONTENT: &str = "商品：{{thing1.DATA}}\n数量：{{number2.DATA}}\n时间：{{time3.DATA}}";

async fn error_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    (status, v["error"].clone())
}

/// A user 42 bound in `oa`, and a template message body for them.
async fn template_setup(t: &TestApp) -> (String, Value) {
    let (person, _) = t.person_for("42", "oa", OA_APPID).await;
    let tpl = t.simulator.template(OA_APPID, "template", SHIPPED).await;
    let body = json!({
        "channel": "template", "app": "oa", "template_id": tpl,
        "data": {"keyword1": "339208499", "keyword2": {"value": "顺丰", "color": "#173177"}},
        "url": "https://shop.example.com/orders/339208499",
    });
    (person, body)
}

/// One message through, so the token and the template list are fetched before faults.
/// One message sent, and every app's start-up token fetch done: a fault injected after
/// this meets only the sends (a late fetch of another app's token would take its share).
async fn prime(t: &TestApp, body: &Value) {
    let id = t.send_ok("42", body.clone()).await;
    t.sent(&id).await;
    t.tokens_fetched().await;
}

#[tokio::test]
async fn a_template_message_is_queued_sent_and_recorded() {
    let t = TestApp::spawn().await;
    let (_, body) = template_setup(&t).await;
    let id = t.send_ok("42", body.clone()).await;
    let m = t.sent(&id).await;
    assert_eq!(m["user_id"], "42");
    assert_eq!(m["channel"], "template");
    assert_eq!(m["attempts"], 1);
    let msgid = m["msgid"].as_str().expect("msgid as a string");
    let states: Vec<&str> = m["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["queued", "sending", "sent"]);

    let got = t.simulator.messages("?channel=template").await;
    assert_eq!(got.len(), 1);
    let g = &got[0];
    // The msgid survives the trip exactly (it is above 2^53).
    assert_eq!(g["msgid"], msgid);
    assert!(msgid.parse::<i64>().unwrap() > 1 << 53);
    assert_eq!(g["template_id"], body["template_id"]);
    assert_eq!(g["data"]["keyword1"]["value"], "339208499");
    assert_eq!(g["data"]["keyword2"]["color"], "#173177");
    assert_eq!(g["url"], body["url"]);
    // Without an Idempotency-Key the message id is the client_msg_id.
    assert_eq!(g["client_msg_id"], id.as_str());
}

#[tokio::test]
async fn wait_answers_with_the_outcome() {
    let t = TestApp::spawn().await;
    let (_, body) = template_setup(&t).await;
    let r = t
        .api
        .post(t.url("/api/v1/users/42/messages?wait=5"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["status"], "sent");
    assert!(m["msgid"].is_string());

    let r = t
        .api
        .post(t.url("/api/v1/users/42/messages?wait=soon"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, e) = error_of(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "invalid_wait");
}

#[tokio::test]
async fn refusals_before_queueing_name_the_problem() {
    let t = TestApp::spawn().await;
    let (_, body) = template_setup(&t).await;
    let with = |patch: Value| {
        let mut b = body.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let cases = [
        (with(json!({"channel": "sms"})), 400, "invalid_channel"),
        (with(json!({"app": "nope"})), 404, "unknown_app"),
        (with(json!({"app": "mp"})), 400, "app_channel_mismatch"),
        (with(json!({"app": null})), 400, "app_required"),
        (
            with(json!({"template_id": "bad id!"})),
            400,
            "invalid_template_id",
        ),
        (
            with(json!({"template_id": "NoSuchTemplate"})),
            404,
            "unknown_template",
        ),
        (
            with(json!({"page": "pages/x"})),
            400,
            "field_not_for_channel",
        ),
        (with(json!({"url": "ftp://x"})), 400, "invalid_body"),
        (with(json!({"data": {}})), 400, "invalid_data"),
        (
            with(json!({"data": {"keyword1": "a\nb", "keyword2": "x"}})),
            400,
            "invalid_data",
        ),
        (
            with(json!({"data": {"keyword1": {"value": "1", "color": "blue"}, "keyword2": "x"}})),
            400,
            "invalid_data",
        ),
        (
            with(json!({"data": {"keyword1": "1"}})),
            400,
            "data_keys_mismatch",
        ),
        (
            with(json!({"data": {"keyword1": "1", "keyword2": "2", "keyword9": "3"}})),
            400,
            "data_keys_mismatch",
        ),
        (
            with(json!({"category": "Not A Category"})),
            400,
            "invalid_category",
        ),
        (with(json!({"colour": "red"})), 400, "invalid_body"),
    ];
    for (b, status, code) in cases {
        let (s, e) = error_of(t.send("42", b.clone()).await).await;
        assert_eq!(
            (s.as_u16(), e["code"].as_str().unwrap()),
            (status, code),
            "{b}: {e}"
        );
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    // The mismatch says which keys.
    let (_, e) = error_of(
        t.send(
            "42",
            with(json!({"data": {"keyword1": "1", "keyword9": "3"}})),
        )
        .await,
    )
    .await;
    assert_eq!(e["unknown"], json!(["keyword9"]));
    assert_eq!(e["missing"], json!(["keyword2"]));
    // No identity for that user on that app.
    let (s, e) = error_of(t.send("43", body.clone()).await).await;
    assert_eq!(
        (s, e["code"].as_str().unwrap()),
        (StatusCode::NOT_FOUND, "no_identity")
    );
    assert_eq!(e["app"], "oa");
    // Nothing was queued by any of them.
    let list: Value = t.api_json("/api/v1/users/42/messages").await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 0);
    assert!(t.simulator.messages("").await.is_empty());
}

#[tokio::test]
async fn a_muted_category_is_refused() {
    let t = TestApp::spawn().await;
    let (_, mut body) = template_setup(&t).await;
    let r = t
        .api_put(
            "/api/v1/users/42/preferences",
            json!({"muted": ["marketing"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    body["category"] = json!("marketing");
    let (s, e) = error_of(t.send("42", body.clone()).await).await;
    assert_eq!(
        (s, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "muted")
    );
    body["category"] = json!("orders");
    t.send_ok("42", body).await;
    let prefs: Value = t.api_json("/api/v1/users/42/preferences").await;
    assert_eq!(prefs["muted"], json!(["marketing"]));
}

#[tokio::test]
async fn idempotency_keys_return_the_same_message_and_refuse_a_different_body() {
    let t = TestApp::spawn().await;
    let (_, body) = template_setup(&t).await;
    let r = t
        .send_keyed("42", "order-339208499-shipped", body.clone())
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let first: Value = r.json().await.unwrap();
    let id = first["id"].as_str().unwrap();
    t.sent(id).await;

    let r = t
        .send_keyed("42", "order-339208499-shipped", body.clone())
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["id"], id);
    assert!(again["status"] == "sent" || again["status"] == "delivered");

    let mut other = body.clone();
    other["data"]["keyword1"] = json!("000");
    let (s, e) = error_of(t.send_keyed("42", "order-339208499-shipped", other).await).await;
    assert_eq!(
        (s, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "idempotency_conflict")
    );
    assert_eq!(e["existing_id"], id);

    let (s, e) = error_of(
        t.send_keyed("42", "bad key with spaces", body.clone())
            .await,
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "invalid_idempotency_key")
    );

    let got = t.simulator.messages("?channel=template").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["client_msg_id"], "order-339208499-shipped");

    // Twenty at once under one new key (they share a commit): one message for all.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (api, url, body) = (
            t.api.clone(),
            t.url("/api/v1/users/42/messages"),
            body.clone(),
        );
        set.spawn(async move {
            let r = api
                .post(url)
                .bearer_auth(API_KEY)
                .header("idempotency-key", "concurrent-key")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        });
    }
    let ids = set.join_all().await;
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    let list: Value = t.api_json("/api/v1/users/42/messages").await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn retryable_errors_back_off_and_then_deliver() {
    let t = TestApp::spawn().await;
    let (_, body) = template_setup(&t).await;
    prime(&t, &body).await;
    t.simulator
        .post("/_sim/faults", json!({"mode": "busy", "count": 2}))
        .await;
    let id = t.send_ok("42", body).await;
    let m = t.sent(&id).await;
    assert_eq!(m["attempts"], 3);
    let retries: Vec<&Value> = m["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "queued" && h["errcode"] == -1)
        .collect();
    assert_eq!(retries.len(), 2, "{m:#}");
}

#[tokio::test]
async fn attempts_are_bounded_then_the_message_fails() {
    let t = TestApp::spawn_with(Options {
        outbox_toml: Some(
            "poll_interval_ms = 20\nbackoff_base_ms = 10\nbackoff_max_ms = 40\nmax_attempts = 3"
                .into(),
        ),
        ..Default::default()
    })
    .await;
    let (_, body) = template_setup(&t).await;
    prime(&t, &body).await;
    t.simulator
        .post("/_sim/faults", json!({"mode": "busy"}))
        .await;
    let id = t.send_ok("42", body).await;
    let m = t.message_until(&id, &["failed"]).await;
    assert_eq!(m["attempts"], 3);
    assert!(
        m["reason"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{m}"
    );
}

#[tokio::test]
async fn permanent_errors_reject_at_once() {
    let t = TestApp::spawn().await;
    let (person, body) = template_setup(&t).await;
    t.simulator
        .post(
            "/_sim/following",
            json!({"appid": OA_APPID, "person": person, "following": false}),
        )
        .await;
    let id = t.send_ok("42", body.clone()).await;
    let m = t.message_until(&id, &["rejected"]).await;
    assert_eq!(m["errcode"], 43004);
    assert_eq!(m["attempts"], 1);

    // An openid WeChat does not know: 40003.
    let r = t
        .bind("7", "oa", "oNotARealPersonAtAll000000000", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = t.send_ok("7", body).await;
    let m = t.message_until(&id, &["rejected"]).await;
    assert_eq!(m["errcode"], 40003);
}

#[tokio::test]
async fn the_daily_quota_holds_the_queue_until_midnight_beijing() {
    let t = TestApp::spawn().await;
    let (_, body) = template_setup(&t).await;
    t.simulator
        .post("/_sim/faults", json!({"quota_after": 1}))
        .await;
    let first = t.send_ok("42", body.clone()).await;
    t.sent(&first).await;
    let second = t.send_ok("42", body.clone()).await;
    let m = t.message_until(&second, &["queued"]).await;
    // Wait for the attempt to come back with the hold.
    let mut m = m;
    for _ in 0..200 {
        if m["held_until_ms"].is_i64() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        m = t.message(&second).await;
    }
    let until = m["held_until_ms"].as_i64().expect("held");
    let midnight = wxlink::clock::next_beijing_midnight(t.clock.now()) * 1000;
    assert_eq!(until, midnight);
    assert!(m["hold_reason"].as_str().unwrap().contains("45009"), "{m}");
    assert_eq!(m["attempts"], 0, "a held attempt does not count");
    // A third message waits behind the hold without being tried.
    let third = t.send_ok("42", body.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(t.message(&third).await["attempts"], 0);
    assert_eq!(t.simulator.counter("template_send_calls").await, 2);

    // The next Beijing day: the quota is back.
    t.simulator.post("/_sim/faults", json!({})).await;
    let to_midnight = (midnight / 1000) - t.clock.now() + 1;
    t.advance(to_midnight);
    t.sent(&second).await;
    t.sent(&third).await;
}

#[tokio::test]
async fn a_refused_token_is_replaced_and_the_send_retried_at_once() {
    let t = TestApp::spawn().await;
    let (_, body) = template_setup(&t).await;
    let id = t.send_ok("42", body.clone()).await;
    t.sent(&id).await;
    // Someone force-refreshes the stable token behind our back: ours dies at once.
    let r = t
        .api
        .post(format!("{}/cgi-bin/stable_token", t.simulator.base()))
        .json(&json!({"grant_type": "client_credential", "appid": OA_APPID, "secret": "oa-secret", "force_refresh": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let id = t.send_ok("42", body).await;
    let m = t.sent(&id).await;
    assert_eq!(
        m["attempts"], 1,
        "the token retry is inside one attempt: {m:#}"
    );
}

#[tokio::test]
async fn a_message_of_a_dead_worker_is_taken_over_after_its_lease() {
    let t = TestApp::spawn().await;
    let (_, body) = template_setup(&t).await;
    // The dead instance claimed a message just now and never finished it.
    let id = t.send_ok("42", body).await;
    t.sent(&id).await;
    let store = &t.ctx.store;
    let id = wxlink::domain::MessageId::parse(&id).unwrap();
    let m = store.message(&id).await.unwrap().unwrap();
    let now_ms = t.clock.now_ms() + 3_600_000;
    let new_id = format!("m{:012x}deadworker", now_ms);
    store
        .enqueue(
            &[wxlink::store::NewMessage {
                id: wxlink::domain::MessageId::parse(&new_id).unwrap(),
                caller: "tests".into(),
                idempotency_key: None,
                request_hash: "x".into(),
                user_id: m.user_id,
                app: m.app,
                channel: m.channel,
                openid: m.openid,
                template_id: m.template_id,
                category: None,
                payload: m.payload.expect("not erased"),
                note: None,
            }],
            wxlink::clock::Timestamp::from_millis(now_ms),
        )
        .await
        .unwrap();
    let claimed = store
        .claim_messages(
            "dead-instance",
            wxlink::clock::Timestamp::from_millis(now_ms),
            60_000,
            10,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // An hour later the message is due, but the lease keeps the others off it.
    t.advance(3600 + 30);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(t.message(&new_id).await["status"], "sending");
    // The lease runs out: this instance takes over.
    t.advance(31);
    let m = t.sent(&new_id).await;
    assert_eq!(m["attempts"], 2);
    let sending = m["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "sending")
        .count();
    assert_eq!(sending, 2);
}

#[tokio::test]
async fn a_fifth_of_requests_failing_still_delivers_everything_once() {
    let t = TestApp::spawn().await;
    let (_, body) = template_setup(&t).await;
    prime(&t, &body).await;
    t.simulator
        .post("/_sim/faults", json!({"busy_rate": 0.2, "drop_rate": 0.1}))
        .await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let mut b = body.clone();
        b["data"]["keyword1"] = json!(format!("order-{i}"));
        ids.push(t.send_ok("42", b).await);
    }
    for id in &ids {
        t.sent(id).await;
    }
    let got = t.simulator.messages("?channel=template").await;
    assert_eq!(got.len(), 41, "each message reached WeChat exactly once");
    let stats = t.simulator.stats().await;
    assert!(stats["faults_busy"].as_u64().unwrap_or(0) > 0);
}

#[tokio::test]
async fn sends_are_paced_per_app() {
    let t = TestApp::spawn_with(Options {
        outbox_toml: Some("poll_interval_ms = 20\nrate_per_sec = 20".into()),
        ..Default::default()
    })
    .await;
    let (_, body) = template_setup(&t).await;
    prime(&t, &body).await;
    let start = std::time::Instant::now();
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(t.send_ok("42", body.clone()).await);
    }
    for id in &ids {
        t.sent(id).await;
    }
    // 20 a second with a burst of 2: 30 sends cannot take less than (30 - 2) / 20 s.
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(1400),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_users_messages_are_listed_newest_first_in_pages() {
    let t = TestApp::spawn().await;
    let (_, body) = template_setup(&t).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(t.send_ok("42", body.clone()).await);
    }
    let page: Value = t.api_json("/api/v1/users/42/messages?limit=3").await;
    let got: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [&ids[4], &ids[3], &ids[2]]);
    let next = page["next"].as_str().unwrap();
    let page: Value = t
        .api_json(&format!("/api/v1/users/42/messages?limit=3&before={next}"))
        .await;
    let got: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [&ids[1], &ids[0]]);
    assert!(page["next"].is_null());
    let r = t.api_get("/api/v1/messages/m000nosuchmessage").await;
    assert_eq!(error_of(r).await.1["code"], "message_not_found");
}

/// A user 42 bound in the mini-program, with a subscribe template.
async fn subscribe_setup(t: &TestApp) -> (String, Value) {
    let (person, _) = t.person_for("42", "mp", MP_APPID).await;
    let tpl = t
        .simulator
        .template(MP_APPID, "subscribe", SUB_CONTENT)
        .await;
    let body = json!({
        "channel": "subscribe", "template_id": tpl, "page": "pages/order?id=1",
        "miniprogram_state": "formal", "lang": "zh_CN",
        "data": {"thing1": "机械键盘", "number2": "2", "time3": "2026-11-25 15:01"},
    });
    (person, body)
}

/// The person accepts in the mini-program (at WeChat) and the backend records it (with us).
async fn accept(t: &TestApp, person: &str, tpl: &str, count: u64) {
    t.simulator
        .post(
            "/_sim/subscriptions",
            json!({"appid": MP_APPID, "person": person, "template_id": tpl, "count": count}),
        )
        .await;
    let r = t
        .api_post(
            "/api/v1/users/42/subscriptions",
            json!({"app": "mp", "template_id": tpl, "count": count}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn subscribe_messages_spend_the_ledger_one_acceptance_each() {
    let t = TestApp::spawn().await;
    let (person, body) = subscribe_setup(&t).await;
    let tpl = body["template_id"].as_str().unwrap().to_owned();
    let (s, e) = error_of(t.send("42", body.clone()).await).await;
    assert_eq!(
        (s, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "no_subscription")
    );

    accept(&t, &person, &tpl, 2).await;
    let a = t.send_ok("42", body.clone()).await;
    let b = t.send_ok("42", body.clone()).await;
    let (s, e) = error_of(t.send("42", body.clone()).await).await;
    assert_eq!(
        (s, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "no_subscription")
    );
    t.sent(&a).await;
    t.sent(&b).await;
    let got = t.simulator.messages("?channel=subscribe").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["page"], "pages/order?id=1");
    assert_eq!(got[0]["miniprogram_state"], "formal");
    assert_eq!(got[0]["data"]["thing1"]["value"], "机械键盘");
    let subs: Value = t.api_json("/api/v1/users/42/subscriptions").await;
    assert_eq!(subs["subscriptions"][0]["remaining"], 0);
}

#[tokio::test]
async fn subscribe_values_follow_the_field_rules_or_are_truncated_on_request() {
    let t = TestApp::spawn().await;
    let (person, mut body) = subscribe_setup(&t).await;
    let tpl = body["template_id"].as_str().unwrap().to_owned();
    accept(&t, &person, &tpl, 1).await;
    let long = "这是一件非常非常非常非常长的商品名称超过二十个字";
    for (field, value) in [
        ("thing1", long),
        ("number2", "two"),
        ("time3", "tomorrow"),
        ("thing1", ""),
        ("thing1", "line\nbreak"),
    ] {
        let mut b = body.clone();
        b["data"][field] = json!(value);
        let (s, e) = error_of(t.send("42", b).await).await;
        assert_eq!(
            (s, e["code"].as_str().unwrap()),
            (StatusCode::BAD_REQUEST, "invalid_data"),
            "{field}={value:?}"
        );
        assert_eq!(e["field"], field);
        assert!(e["message"].as_str().unwrap().contains(field));
    }
    // The refusals spent nothing: the one acceptance is still there.
    body["data"]["thing1"] = json!(long);
    body["truncate"] = json!(true);
    let id = t.send_ok("42", body).await;
    let m = t.sent(&id).await;
    let got = t.simulator.messages("?channel=subscribe").await;
    let value = got[0]["data"]["thing1"]["value"].as_str().unwrap();
    assert_eq!(value.chars().count(), 20);
    assert!(value.ends_with('…') && long.starts_with(value.trim_end_matches('…')));
    assert!(
        m["history"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("thing1")
    );
}

#[tokio::test]
async fn wechat_saying_no_subscription_clears_the_ledger() {
    let t = TestApp::spawn().await;
    let (_, body) = subscribe_setup(&t).await;
    let tpl = body["template_id"].as_str().unwrap();
    // Our ledger says 3, but the person never accepted at WeChat.
    let r = t
        .api_post(
            "/api/v1/users/42/subscriptions",
            json!({"template_id": tpl, "count": 3}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = t.send_ok("42", body.clone()).await;
    let m = t.message_until(&id, &["rejected"]).await;
    assert_eq!(m["errcode"], 43101);
    let subs: Value = t.api_json("/api/v1/users/42/subscriptions").await;
    assert_eq!(subs["subscriptions"][0]["remaining"], 0);
    let (s, e) = error_of(t.send("42", body).await).await;
    assert_eq!(
        (s, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "no_subscription")
    );
}

#[tokio::test]
async fn a_rejected_subscribe_message_gives_its_acceptance_back() {
    let t = TestApp::spawn().await;
    let (person, mut body) = subscribe_setup(&t).await;
    let tpl = body["template_id"].as_str().unwrap().to_owned();
    accept(&t, &person, &tpl, 1).await;
    t.simulator
        .post(
            "/_sim/pages",
            json!({"appid": MP_APPID, "pages": ["pages/index"]}),
        )
        .await;
    let id = t.send_ok("42", body.clone()).await;
    let m = t.message_until(&id, &["rejected"]).await;
    assert_eq!(m["errcode"], 41030);
    // Not spent at WeChat, so not spent in the ledger.
    body["page"] = json!("pages/index");
    let id = t.send_ok("42", body).await;
    t.sent(&id).await;
}

#[tokio::test]
async fn long_term_subscriptions_are_not_counted_down() {
    let t = TestApp::spawn().await;
    let (person, body) = subscribe_setup(&t).await;
    let tpl = body["template_id"].as_str().unwrap();
    t.simulator.post(
        "/_sim/subscriptions",
        json!({"appid": MP_APPID, "person": person, "template_id": tpl, "long_term": true, "count": 0}),
    )
    .await;
    let r = t
        .api_post(
            "/api/v1/users/42/subscriptions",
            json!({"template_id": tpl, "count": 0, "long_term": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    for _ in 0..3 {
        let id = t.send_ok("42", body.clone()).await;
        t.sent(&id).await;
    }
}

/// A user 42 bound in the mini-program, with a legacy template.
async fn form_setup(t: &TestApp) -> (String, Value) {
    let (person, _) = t.person_for("42", "mp", MP_APPID).await;
    let tpl = t
        .simulator
        .template(
            MP_APPID,
            "form",
            "订单：{{keyword1.DATA}}\n状态：{{keyword2.DATA}}",
        )
        .await;
    let body = json!({
        "channel": "form", "template_id": tpl, "page": "pages/order",
        "data": {"keyword1": "339208499", "keyword2": "已发货"},
        "emphasis_keyword": "keyword2.DATA",
    });
    (person, body)
}

async fn mp_openid(t: &TestApp, person: &str) -> String {
    let p = t.simulator.get(&format!("/_sim/people/{person}")).await;
    p["openids"][MP_APPID].as_str().unwrap().to_owned()
}

async fn mint_form_id(t: &TestApp, person: &str, kind: &str, delay: i64) -> String {
    let v = t
        .simulator.post(
            "/_sim/form-ids",
            json!({"appid": MP_APPID, "person": person, "kind": kind, "register_delay_secs": delay}),
        )
        .await;
    let id = v["form_id"].as_str().unwrap().to_owned();
    let key = if kind == "form" {
        "form_id"
    } else {
        "prepay_id"
    };
    let r = t
        .api_post("/api/v1/users/42/form-ids", json!({ key: id }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    id
}

#[tokio::test]
async fn legacy_messages_spend_form_ids_and_prepay_ids() {
    let t = TestApp::spawn().await;
    let (person, body) = form_setup(&t).await;
    let (s, e) = error_of(t.send("42", body.clone()).await).await;
    assert_eq!(
        (s, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "no_form_id")
    );

    let prepay = mint_form_id(&t, &person, "prepay", 0).await;
    for _ in 0..3 {
        let id = t.send_ok("42", body.clone()).await;
        t.sent(&id).await;
    }
    let (s, e) = error_of(t.send("42", body.clone()).await).await;
    assert_eq!(
        (s, e["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "no_form_id"),
        "a prepay_id is good for 3 sends"
    );
    let got = t.simulator.messages("?channel=form").await;
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|m| m["form_id"] == prepay.as_str()));
}

#[tokio::test]
async fn a_used_up_form_id_is_skipped_and_the_next_one_used() {
    let t = TestApp::spawn().await;
    let (person, body) = form_setup(&t).await;
    let first = mint_form_id(&t, &person, "form", 0).await;
    let second = mint_form_id(&t, &person, "form", 0).await;
    // The first was spent elsewhere: WeChat knows, our store does not.
    let token = t
        .api_get("/api/v1/apps/mp/access-token")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let r: Value = t
        .api
        .post(format!("{}/cgi-bin/message/wxopen/template/send", t.simulator.base()))
        .query(&[("access_token", token["access_token"].as_str().unwrap())])
        .json(&json!({"touser": mp_openid(&t, &person).await, "template_id": body["template_id"],
                      "form_id": first, "data": {"keyword1": {"value": "x"}, "keyword2": {"value": "y"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["errcode"], 0);
    let id = t.send_ok("42", body).await;
    t.sent(&id).await;
    let got = t.simulator.messages("?channel=form").await;
    assert_eq!(got.last().unwrap()["form_id"], second.as_str());
}

#[tokio::test]
async fn a_prepay_id_wechat_has_not_registered_yet_is_retried_shortly() {
    // Short retries of 400, 800, 1600 ms cover WeChat's one-second delay.
    let t = TestApp::spawn_with(Options {
        outbox_toml: Some("poll_interval_ms = 20\nbackoff_base_ms = 400".into()),
        ..Default::default()
    })
    .await;
    let (person, body) = form_setup(&t).await;
    // WeChat registers this prepay_id 1 s after the payment.
    let prepay = mint_form_id(&t, &person, "prepay", 1).await;
    let id = t.send_ok("42", body).await;
    let m = t.message_until(&id, &["sent", "failed", "rejected"]).await;
    assert_eq!(m["status"], "sent", "{m:#}");
    let got = t.simulator.messages("?channel=form").await;
    assert_eq!(got[0]["form_id"], prepay.as_str());
}
