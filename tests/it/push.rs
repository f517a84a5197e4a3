//! The WeChat push endpoint over real HTTP: verification, the three modes, key rotation,
//! every refusal, replays, duplicates and WeChat's retries.

use crate::support::push::*;
use crate::support::*;
use reqwest::StatusCode;
use wxlink::domain::AppId;
use wxlink::sim::SimApp;
use wxlink::wechat::crypto::{MessageCrypto, signature};

#[tokio::test]
async fn verification_echoes_echostr_only_for_a_valid_signature() {
    let t = TestApp::spawn_with(Options {
        extra_toml: "[[apps]]\nid = \"nopush\"\nkind = \"official_account\"\nappid = \"wxtestnp00000009\"\nsecret = \"s\"\napi_base = \"{SIM}\"\n".into(),
        ..Default::default()
    })
    .await;
    let sig = signature(&[OA2_PUSH_TOKEN, "1714037059", "486452656"]);
    let get = |app: &str, sig: &str| {
        t.api
            .get(t.url(&format!(
                "/wechat/{app}/push?signature={sig}&timestamp=1714037059&nonce=486452656&echostr=echo-me-42"
            )))
            .send()
    };
    let r = get("oa2", &sig).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "echo-me-42");

    let last = if sig.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &sig[..39]);
    let r = get("oa2", &forged).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = r.text().await.unwrap();
    assert!(body.starts_with("bad_signature"), "{body}");
    assert!(!body.contains("echo-me-42"));

    // Another app's token does not verify this app.
    let r = get("oa", &sig).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = get("nosuch", &sig).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = get("nopush", &sig).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().starts_with("push_not_configured"));
}

#[tokio::test]
async fn duplicates_are_processed_once_and_acknowledged_every_time() {
    let t = TestApp::spawn().await;
    let now = t.clock.now();
    let xml = follow_xml("oDup", now, "subscribe");
    let first = craft(
        OA_PUSH_TOKEN,
        now,
        "100",
        &xml,
        Some((OA_AES_KEY, OA_APPID)),
    );
    assert_eq!(
        post(&t, "oa", &first).await,
        (StatusCode::OK, "success".into())
    );
    // The identical request again (a retry reusing its query), and the same event under a
    // fresh nonce and encryption (a retry signed anew).
    assert_eq!(
        post(&t, "oa", &first).await,
        (StatusCode::OK, "success".into())
    );
    let again = craft(
        OA_PUSH_TOKEN,
        now,
        "101",
        &xml,
        Some((OA_AES_KEY, OA_APPID)),
    );
    assert_eq!(
        post(&t, "oa", &again).await,
        (StatusCode::OK, "success".into())
    );
    let events = t.events("oa", "").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["duplicates"], 2);
    let ev = t
        .handled_event("oa", events[0]["id"].as_i64().unwrap())
        .await;
    assert_eq!(ev["attempts"], 0);
    assert_eq!(ev["outcome"], "follow_recorded");
}

/// A proxy in front of the service that forwards every push but "loses" the first answer,
/// as a slow network would: WeChat (the simulator) then retries.
async fn lossy_proxy(service: String) -> String {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (service, seen) = (service.clone(), seen.clone());
        async move {
            let uri = req.uri().clone();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap();
            let r = reqwest::Client::new()
                .post(format!("{service}{uri}"))
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                (axum::http::StatusCode::BAD_GATEWAY, "lost".to_owned())
            } else {
                (axum::http::StatusCode::from_u16(status).unwrap(), text)
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn a_push_whose_answer_was_lost_is_retried_and_processed_once() {
    let t = TestApp::spawn().await;
    let proxy = lossy_proxy(t.base.clone()).await;
    let config = &t.ctx.config;
    let oa = config.apps.iter().find(|a| a.id.as_str() == "oa").unwrap();
    t.sim.add_app(SimApp::for_config(oa, &proxy));
    t.simulator.person("dave").await;
    t.sim.set_follow(OA_APPID, "p1", true).unwrap();
    let pushes = t.settled_pushes(1).await;
    let p = &pushes[0];
    assert!(p.acknowledged, "{p:#?}");
    assert_eq!(p.attempts.len(), 2);
    assert_eq!(p.attempts[0].status, Some(502));
    assert_eq!(p.attempts[1].answer, "success");
    let events = t.events("oa", "").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["duplicates"], 1);
}

#[tokio::test]
async fn a_replayed_nonce_with_another_event_is_refused() {
    let t = TestApp::spawn().await;
    let now = t.clock.now();
    let first = craft(
        OA2_PUSH_TOKEN,
        now,
        "555",
        &follow_xml("oR", now, "subscribe"),
        None,
    );
    assert_eq!(post(&t, "oa2", &first).await.0, StatusCode::OK);
    // Plain mode signs only token, timestamp and nonce: a captured query with a new body.
    let forged = Crafted {
        query: first.query.clone(),
        body: follow_xml("oR", now, "unsubscribe"),
    };
    let (status, body) = post(&t, "oa2", &forged).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.starts_with("replayed"), "{body}");
    assert_eq!(t.events("oa2", "").await.len(), 1);
}

#[tokio::test]
async fn stale_timestamps_are_refused_within_a_configurable_window() {
    let t = TestApp::spawn_with(Options {
        extra_toml: "[push]\ntimestamp_window_secs = 60\n".into(),
        ..Default::default()
    })
    .await;
    // Offsets keep clear of the 60 s edge: the service reads its clock a moment after the
    // test does, and a second can tick over in between (CI once saw now + 61 accepted).
    for (offset, expected) in [
        (-75, StatusCode::UNAUTHORIZED),
        (75, StatusCode::UNAUTHORIZED),
        (-45, StatusCode::OK),
    ] {
        let ts = t.clock.now() + offset;
        let c = craft(
            OA2_PUSH_TOKEN,
            ts,
            "9",
            &follow_xml("oS", ts, "subscribe"),
            None,
        );
        let (status, body) = post(&t, "oa2", &c).await;
        assert_eq!(status, expected, "{body}");
        if status != StatusCode::OK {
            assert!(body.starts_with("stale_timestamp"), "{body}");
        }
    }
    // The simulator's pushes go stale when the service's clock is ahead: refused, retried
    // 3 times like WeChat, never acknowledged.
    t.clock.advance(120);
    t.simulator.person("erin").await;
    t.sim.set_follow(OA_APPID, "p1", true).unwrap();
    let pushes = t.settled_pushes(1).await;
    assert!(!pushes[0].acknowledged);
    assert_eq!(pushes[0].attempts.len(), 4);
    assert!(pushes[0].attempts.iter().all(|a| a.status == Some(401)));
    assert_eq!(t.simulator.counter("pushes_unacknowledged").await, 1);
}

#[tokio::test]
async fn malformed_forged_and_oversized_pushes_get_a_clear_4xx() {
    let t = TestApp::spawn_with(Options {
        extra_toml: "[push]\nmax_body_bytes = 4096\n".into(),
        ..Default::default()
    })
    .await;
    let now = t.clock.now();
    let ts = now.to_string();
    let good = follow_xml("oM", now, "subscribe");
    // 32 zero bytes: whole blocks that decrypt to garbage.
    let zeros = format!("{}=", "A".repeat(43));
    let wrong_appid = MessageCrypto::new(OA_AES_KEY)
        .unwrap()
        .encrypt(&good, "wxsomeoneelse0001");
    let other_key = MessageCrypto::new(MP_AES_KEY)
        .unwrap()
        .encrypt(&good, OA_APPID);
    let mut cases: Vec<(&str, Crafted, StatusCode, &str)> = vec![
        (
            "oa",
            sealed(OA_PUSH_TOKEN, &ts, "17", &zeros),
            StatusCode::BAD_REQUEST,
            GARBAGE,
        ),
        (
            "oa",
            sealed(OA_PUSH_TOKEN, &ts, "18", "AAAAAAAAAAAAAAAAAAAAAA=="),
            StatusCode::BAD_REQUEST,
            "bad_length|bad_padding",
        ),
        (
            "oa2",
            craft(OA2_PUSH_TOKEN, now, "1", "<xml><a>", None),
            StatusCode::BAD_REQUEST,
            "malformed_xml",
        ),
        (
            "oa2",
            craft(
                OA2_PUSH_TOKEN,
                now,
                "2",
                "<!DOCTYPE x [<!ENTITY a \"b\">]><xml/>",
                None,
            ),
            StatusCode::BAD_REQUEST,
            "malformed_xml",
        ),
        (
            "oa2",
            craft(OA2_PUSH_TOKEN, now, "3", "<xml><A>1</A></xml>", None),
            StatusCode::BAD_REQUEST,
            "malformed_push",
        ),
        (
            "oa",
            sealed(OA_PUSH_TOKEN, &ts, "4", "%%%not-base64%%%"),
            StatusCode::BAD_REQUEST,
            "bad_base64",
        ),
        (
            "oa",
            sealed(OA_PUSH_TOKEN, &ts, "5", &"A".repeat(45)),
            StatusCode::BAD_REQUEST,
            "bad_base64",
        ),
        (
            "oa",
            sealed(OA_PUSH_TOKEN, &ts, "6", &wrong_appid),
            StatusCode::BAD_REQUEST,
            "wrong_appid",
        ),
        (
            "oa",
            sealed(OA_PUSH_TOKEN, &ts, "7", &other_key),
            StatusCode::BAD_REQUEST,
            GARBAGE,
        ),
        (
            "oa",
            craft(OA_PUSH_TOKEN, now, "8", &good, None),
            StatusCode::BAD_REQUEST,
            "encryption_required",
        ),
        (
            "oa",
            craft("wrongToken", now, "9", &good, Some((OA_AES_KEY, OA_APPID))),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "nosuch",
            craft(OA_PUSH_TOKEN, now, "10", &good, None),
            StatusCode::NOT_FOUND,
            "unknown_app",
        ),
        (
            "oa2",
            Crafted {
                query: format!("timestamp={ts}&nonce=11"),
                body: good.clone(),
            },
            StatusCode::BAD_REQUEST,
            "missing_parameter",
        ),
        (
            "oa2",
            craft(
                OA2_PUSH_TOKEN,
                now,
                "12",
                &format!("<xml>{}</xml>", "<a>x</a>".repeat(600)),
                None,
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "oa2",
            Crafted {
                query: craft(OA2_PUSH_TOKEN, now, "13", "", None).query,
                body: String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x3c]).into_owned(),
            },
            StatusCode::BAD_REQUEST,
            "malformed_xml",
        ),
    ];
    // Tampered ciphertext: the msg_signature no longer matches.
    let mut tampered = craft(
        OA_PUSH_TOKEN,
        now,
        "14",
        &good,
        Some((OA_AES_KEY, OA_APPID)),
    );
    tampered.body = tampered.body.replacen("CDATA[", "CDATA[A", 2);
    cases.push(("oa", tampered, StatusCode::UNAUTHORIZED, "bad_signature"));
    for (app, c, status, code) in cases {
        let (got, body) = post(&t, app, &c).await;
        assert_eq!(got, status, "{code}: {body}");
        assert!(
            code.split('|').any(|c| body.starts_with(c)),
            "expected {code}: {body}"
        );
    }
    // Invalid UTF-8 bytes, raw.
    let c = craft(OA2_PUSH_TOKEN, now, "15", "", None);
    let r = t
        .api
        .post(t.url(&format!("/wechat/oa2/push?{}", c.query)))
        .body(vec![0xffu8, 0xfe, 0xfd])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().starts_with("not_utf8"));
    // Nothing was stored, and the endpoint still works.
    assert!(t.events("oa", "").await.is_empty());
    assert!(t.events("oa2", "").await.is_empty());
    let c = craft(
        OA_PUSH_TOKEN,
        now,
        "16",
        &good,
        Some((OA_AES_KEY, OA_APPID)),
    );
    assert_eq!(post(&t, "oa", &c).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_previous_key_is_accepted_during_rotation() {
    const OLD: &str = "OldKey0123456789abcdefghijklmnopqrstuvwxyzA";
    const NEW: &str = "NewKey0123456789abcdefghijklmnopqrstuvwxyzA";
    const ROT: &str = "wxtestrot0000005";
    let t = TestApp::spawn_with(Options {
        extra_toml: format!(
            "[[apps]]\nid = \"rot\"\nkind = \"official_account\"\nappid = \"{ROT}\"\nsecret = \"s\"\napi_base = \"{{SIM}}\"\npush_token = \"rotToken\"\nencoding_aes_key = \"{NEW}\"\nencoding_aes_key_previous = \"{OLD}\"\n"
        ),
        ..Default::default()
    })
    .await;
    let now = t.clock.now();
    for (i, key) in [OLD, NEW].iter().enumerate() {
        let c = craft(
            "rotToken",
            now,
            &format!("{i}"),
            &follow_xml("oK", now + i as i64, "subscribe"),
            Some((key, ROT)),
        );
        assert_eq!(post(&t, "rot", &c).await.0, StatusCode::OK);
    }
    let c = craft(
        "rotToken",
        now,
        "3",
        &follow_xml("oK", now, "unsubscribe"),
        Some((OA_AES_KEY, ROT)),
    );
    let (status, body) = post(&t, "rot", &c).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(GARBAGE.split('|').any(|c| body.starts_with(c)), "{body}");
    assert_eq!(t.events("rot", "").await.len(), 2);
}

#[tokio::test]
async fn one_batch_holding_a_retry_and_a_replay_records_each_correctly() {
    let t = TestApp::spawn().await;
    let now = t.clock.now();
    let app = AppId::parse("oa2").unwrap();
    let push = |nonce: &str, key: &str| wxlink::store::NewPush {
        app: app.clone(),
        timestamp: now,
        nonce: nonce.into(),
        signature: format!("sig{nonce}"),
        dedup_key: key.into(),
        msg_type: "event".into(),
        event: Some("CLICK".into()),
        kind: "CLICK".into(),
        openid: Some("oB".into()),
        create_time: Some(now),
        encrypted: false,
        xml: "<xml/>".into(),
        received_at: wxlink::clock::Timestamp::from_secs(now),
        outcome_now: Some("stored".into()),
        claim_until: wxlink::clock::Timestamp::from_secs(0),
    };
    use wxlink::store::Recorded::*;
    let batch = [
        push("1", "k1"),
        push("1", "k1"), // the same request twice: a retry
        push("2", "k1"), // the same event under a fresh nonce: a retry signed anew
        push("1", "k2"), // a used nonce with another event: a replay
        push("3", "k3"),
    ];
    let refs: Vec<_> = batch.iter().collect();
    let r = t.ctx.store.record_pushes(&refs).await.unwrap();
    assert!(matches!(r[0], New(_)));
    assert_eq!(&r[1..4], &[Duplicate, Duplicate, Replayed]);
    assert!(matches!(r[4], New(_)));
    let events = t.events("oa2", "").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["duplicates"], 2);
    // Across batches too.
    let r = t
        .ctx
        .store
        .record_pushes(&[&push("3", "k3"), &push("3", "k9"), &push("4", "k4")])
        .await
        .unwrap();
    assert_eq!(r[0], Duplicate);
    assert_eq!(r[1], Replayed);
    assert!(matches!(r[2], New(_)));
}
