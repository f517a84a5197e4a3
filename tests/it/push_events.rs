//! What pushed events do, over real HTTP with the simulator pushing: follow status,
//! delivery reports kept by msgid, subscription events, everything else listed, and the
//! sweeper finishing what a crash left.

use crate::support::push::*;
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wxlink::domain::AppId;

#[tokio::test]
async fn follow_and_unfollow_in_every_mode_set_the_follow_status() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("alice").await;
    // oa: safe, oa2: plain, cl: compatible.
    for (app, appid) in [("oa", OA_APPID), ("oa2", OA2_APPID), ("cl", CL_APPID)] {
        let openid = p["openids"][appid].as_str().unwrap();
        let r = t
            .api
            .post(t.simulator.url("/_sim/people/p1/follow"))
            .json(&json!({ "appid": appid }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let id: Value = r.json().await.unwrap();
        let pushes = t
            .settled_pushes(id["push"].as_u64().unwrap() as usize)
            .await;
        let push = pushes.last().unwrap();
        assert!(push.acknowledged, "{push:#?}");
        assert_eq!(push.attempts.len(), 1);
        assert_eq!(push.attempts[0].answer, "success");
        let events = t.events(app, "type=subscribe").await;
        assert_eq!(events.len(), 1, "{app}: {events:#?}");
        let ev = t
            .handled_event(app, events[0]["id"].as_i64().unwrap())
            .await;
        assert_eq!(ev["outcome"], "follow_recorded");
        assert_eq!(ev["encrypted"], app != "oa2");
        assert_eq!(ev["openid"], openid);
        assert_eq!(ev["fields"]["Event"], "subscribe");
        // A subscribe from an openid we never saw creates its identity, unbound.
        assert_eq!(follows(&t, app, openid).await, (Some(true), None));
    }
    assert_eq!(t.sim.pushes()[0].mode, "safe");
    assert_eq!(t.sim.pushes()[1].mode, "plain");
    assert_eq!(t.sim.pushes()[2].mode, "compatible");

    let r = t
        .api
        .post(t.simulator.url("/_sim/people/p1/unfollow"))
        .json(&json!({ "appid": OA_APPID }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    t.settled_pushes(4).await;
    let ev = t.events("oa", "type=unsubscribe").await;
    let ev = t.handled_event("oa", ev[0]["id"].as_i64().unwrap()).await;
    assert_eq!(ev["outcome"], "unfollow_recorded");
    let openid = p["openids"][OA_APPID].as_str().unwrap();
    assert_eq!(follows(&t, "oa", openid).await.0, Some(false));
    assert!(!t.sim.follows(OA_APPID, "p1"));

    // The identity API shows it once bound.
    let r = t.bind("u1", "oa", openid, json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let user: Value = t.api_json("/api/v1/users/u1").await;
    assert_eq!(user["identities"][0]["follows"], false);
    assert!(user["identities"][0]["follow_changed_at"].is_i64());
}

#[tokio::test]
async fn an_older_follow_event_never_overrides_a_newer_one() {
    let t = TestApp::spawn().await;
    let now = t.clock.now();
    let c = craft(
        OA2_PUSH_TOKEN,
        now,
        "1",
        &follow_xml("oLate", now, "subscribe"),
        None,
    );
    assert_eq!(post(&t, "oa2", &c).await.0, StatusCode::OK);
    // An unsubscribe stamped earlier arrives later (a delayed retry).
    let c = craft(
        OA2_PUSH_TOKEN,
        now,
        "2",
        &follow_xml("oLate", now - 10, "unsubscribe"),
        None,
    );
    assert_eq!(post(&t, "oa2", &c).await.0, StatusCode::OK);
    let ev = t.events("oa2", "type=unsubscribe").await;
    let ev = t.handled_event("oa2", ev[0]["id"].as_i64().unwrap()).await;
    assert_eq!(ev["outcome"], "follow_outdated");
    assert_eq!(follows(&t, "oa2", "oLate").await.0, Some(true));
}

#[tokio::test]
async fn delivery_reports_are_pushed_after_a_send_and_kept_by_msgid() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("bob").await;
    let openid = p["openids"][OA_APPID].as_str().unwrap().to_owned();
    // The send handler calls this; the control route triggers the same function.
    let msgid: i64 = 3_717_005_636_572_528_642;
    t.sim.after_template_send(OA_APPID, &openid, msgid).unwrap();
    let r = t
        .api
        .post(t.simulator.url("/_sim/push/template-report"))
        .json(&json!({"appid": OA_APPID, "openid": openid, "msgid": msgid + 1, "status": "failed:user block"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let pushes = t.settled_pushes(2).await;
    assert!(pushes.iter().all(|p| p.acknowledged), "{pushes:#?}");
    assert_eq!(pushes[0].msgid, Some(msgid));

    let events = t.events("oa", "type=TEMPLATESENDJOBFINISH").await;
    assert_eq!(events.len(), 2);
    for e in &events {
        let e = t.handled_event("oa", e["id"].as_i64().unwrap()).await;
        // No message of ours has these msgids: the reports wait for one.
        assert_eq!(e["outcome"], "waiting_for_send");
    }
    let app = AppId::parse("oa").unwrap();
    let r = t.ctx.store.delivery_report(&app, msgid).await.unwrap();
    let r = r.expect("the report is kept for the outbox");
    assert_eq!(r.status, "success");
    assert_eq!(r.openid.as_deref(), Some(openid.as_str()));
    let r = t.ctx.store.delivery_report(&app, msgid + 1).await.unwrap();
    assert_eq!(r.unwrap().status, "failed:user block");
    assert!(
        t.ctx
            .store
            .delivery_report(&app, 1)
            .await
            .unwrap()
            .is_none()
    );

    // An injected status applies to the next N reports only.
    let r = t
        .api
        .post(t.simulator.url("/_sim/push/settings"))
        .json(&json!({"report_status": "failed: system failed", "report_status_count": 1, "report_delay_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    t.sim.after_template_send(OA_APPID, &openid, 10).unwrap();
    t.sim.after_template_send(OA_APPID, &openid, 11).unwrap();
    t.settled_pushes(4).await;
    for (id, status) in [(10, "failed: system failed"), (11, "success")] {
        let mut report = None;
        for _ in 0..100 {
            report = t.ctx.store.delivery_report(&app, id).await.unwrap();
            if report.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(report.unwrap().status, status);
    }
}

#[tokio::test]
async fn subscription_choices_and_send_results_are_stored_typed() {
    let t = TestApp::spawn().await;
    t.simulator.person("carol").await;
    let r = t
        .api
        .post(t.simulator.url("/_sim/people/p1/subscriptions"))
        .json(&json!({"appid": MP_APPID, "choices": [
            {"template_id": "TPL1", "status": "accept", "popup_scene": 0},
            {"template_id": "TPL2", "status": "reject"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let openid = t.sim.openid_of(MP_APPID, "p1");
    t.sim
        .after_subscribe_send(MP_APPID, &openid, "TPL1", 1_700_827_132_819_554_304, 0)
        .unwrap();
    t.settled_pushes(2).await;
    let popup = t.events("mp", "type=subscribe_msg_popup_event").await;
    let popup = t
        .handled_event("mp", popup[0]["id"].as_i64().unwrap())
        .await;
    assert_eq!(popup["outcome"], "ledger_credited_1_cleared_0");
    let list = &popup["fields"]["SubscribeMsgPopupEvent"]["List"];
    assert_eq!(list[0]["TemplateId"], "TPL1");
    assert_eq!(list[1]["SubscribeStatusString"], "reject");
    let sent = t.events("mp", "type=subscribe_msg_sent_event").await;
    let sent = t.handled_event("mp", sent[0]["id"].as_i64().unwrap()).await;
    assert_eq!(sent["outcome"], "waiting_for_send");
    assert_eq!(
        sent["fields"]["SubscribeMsgSentEvent"]["List"]["MsgID"],
        "1700827132819554304"
    );
}

#[tokio::test]
async fn other_events_are_stored_acknowledged_and_listed() {
    let t = TestApp::spawn().await;
    let start = t.clock.now();
    for (i, xml) in [
        "<xml><ToUserName>gh</ToUserName><FromUserName>oA</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content><![CDATA[你好 <b>]]></Content><MsgId>6054768590064713728</MsgId></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>oA</FromUserName><CreateTime>2</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>menu_1</EventKey></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>oA</FromUserName><CreateTime>3</CreateTime><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>not-a-number</MsgID><Status>success</Status></xml>",
    ]
    .iter()
    .enumerate()
    {
        let r = t
            .api
            .post(t.simulator.url("/_sim/push/event"))
            .json(&json!({"appid": OA_APPID, "xml": xml}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        t.settled_pushes(i + 1).await;
    }
    assert!(t.sim.pushes().iter().all(|p| p.acknowledged));
    let all = t.events("oa", "").await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["type"], "text");
    assert_eq!(all[0]["fields"]["Content"], "你好 <b>");
    assert_eq!(all[0]["outcome"], "stored");
    assert_eq!(all[1]["type"], "CLICK");
    assert_eq!(all[1]["outcome"], "stored");
    // A known event with nonsense in it: kept, never half-applied.
    assert_eq!(all[2]["type"], "TEMPLATESENDJOBFINISH");
    assert!(
        all[2]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("malformed: <MsgID> is not a 64-bit integer")
    );
    assert_eq!(t.events("oa", "type=CLICK").await.len(), 1);
    assert_eq!(t.events("oa", &format!("since={start}")).await.len(), 3);
    assert_eq!(
        t.events("oa", &format!("since={}", start + 60)).await.len(),
        0
    );
    assert_eq!(t.events("mp", "").await.len(), 0);
    // Paging.
    let r: Value = t.api_json("/api/v1/apps/oa/events?limit=2").await;
    assert_eq!(r["events"].as_array().unwrap().len(), 2);
    let next = r["next_after"].as_i64().unwrap();
    let rest = t.events("oa", &format!("after={next}")).await;
    assert_eq!(rest.len(), 1);
    // The API's usual refusals.
    let r = t
        .api
        .get(t.url("/api/v1/apps/oa/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        t.api_get("/api/v1/apps/nope/events").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.api_get("/api/v1/apps/oa/events?limit=0").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn an_event_left_unhandled_by_a_crash_is_handled_by_the_sweeper() {
    let t = TestApp::spawn().await;
    let now = t.clock.now();
    let app = AppId::parse("oa").unwrap();
    // What a crash between the acknowledgement and the handling leaves behind.
    let xml = follow_xml("oCrash", now, "subscribe");
    let recorded = t
        .ctx
        .store
        .record_push(&wxlink::store::NewPush {
            app: app.clone(),
            timestamp: now,
            nonce: "1".into(),
            signature: "s".into(),
            dedup_key: "event:oCrash:test".into(),
            msg_type: "event".into(),
            event: Some("subscribe".into()),
            kind: "subscribe".into(),
            openid: Some("oCrash".into()),
            create_time: Some(now),
            encrypted: true,
            xml: xml.clone(),
            received_at: wxlink::clock::Timestamp::from_secs(now),
            outcome_now: None,
            claim_until: wxlink::clock::Timestamp::from_secs(now + wxlink::push::CLAIM_SECS),
        })
        .await
        .unwrap();
    assert!(matches!(recorded, wxlink::store::Recorded::New(_)));
    // Still claimed by the (dead) instance that received it.
    assert_eq!(t.ctx.push.sweep_once().await.unwrap(), 0);
    t.clock.advance(wxlink::push::CLAIM_SECS + 1);
    assert_eq!(t.ctx.push.sweep_once().await.unwrap(), 1);
    let ev = &t.events("oa", "").await[0];
    assert_eq!(ev["outcome"], "follow_recorded");
    assert_eq!(ev["attempts"], 1);
    assert_eq!(follows(&t, "oa", "oCrash").await.0, Some(true));
    assert_eq!(t.ctx.push.sweep_once().await.unwrap(), 0);
}
