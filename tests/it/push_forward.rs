//! Push forwarding: an account's existing handler (the downstream double, which checks
//! WeChat's signatures itself) behind wxlink gets every push as WeChat sent it, in plain and
//! safe mode, and its passive replies reach WeChat (the simulator); a late, failing or down
//! downstream still gets WeChat a `success` in time, recorded on the admin page and in the
//! metrics; WeChat's retries are forwarded once, on one instance or two; wxlink's own
//! handling never waits for the downstream; `wxlink check` tries the downstream.

use crate::support::downstream::{Behaviour, Downstream, field};
use crate::support::push::{craft, follows};
use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};
use wxlink::domain::AppId;
use wxlink::sim::push::PushRecord;

const ADMIN_KEY: &str = "admin-key-for-forwarding-0123";

async fn forwarding(lines: Vec<(&'static str, String)>) -> TestApp {
    TestApp::spawn_with(Options {
        app_lines: lines,
        extra_toml: format!(
            "\n[admin]\nkey_sha256 = \"{}\"\n",
            wxlink::domain::hash_token(ADMIN_KEY)
        ),
        ..Default::default()
    })
    .await
}

/// An admin page, fetched with the admin key; it must answer 200.
async fn admin_page(t: &TestApp, path: &str) -> String {
    let r = t
        .api
        .get(t.url(path))
        .basic_auth("ops", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

fn forward_to(url: &str) -> String {
    format!("forward_url = \"{url}\"")
}

/// A simulated person; returns their id.
async fn person(t: &TestApp) -> String {
    t.simulator.person("Ann").await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the simulator is done with push `id` (answered, or retries spent).
async fn settled(t: &TestApp, id: u64) -> PushRecord {
    for _ in 0..500 {
        if let Some(p) = t
            .sim
            .pushes()
            .into_iter()
            .find(|p| p.id == id && p.finished)
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("push {id} did not settle: {:#?}", t.sim.pushes());
}

async fn text(t: &TestApp, appid: &str, person: &str, content: &str) -> u64 {
    t.simulator
        .post(
            &format!("/_sim/people/{person}/text"),
            json!({"app": appid, "content": content}),
        )
        .await["push"]
        .as_u64()
        .unwrap()
}

async fn click(t: &TestApp, appid: &str, person: &str, key: &str) -> u64 {
    t.simulator
        .post(
            &format!("/_sim/people/{person}/click"),
            json!({"app": appid, "key": key}),
        )
        .await["push"]
        .as_u64()
        .unwrap()
}

/// `wxlink_push_forward_total` for an app and outcome (the recorder is shared by the
/// process's tests: compare before and after).
async fn forwards_counted(t: &TestApp, app: &str, outcome: &str) -> f64 {
    let text = t
        .api
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("wxlink_push_forward_total{"))
        .filter(|l| {
            l.contains(&format!("app=\"{app}\"")) && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test]
async fn a_plain_mode_handler_gets_the_push_as_sent_and_its_reply_reaches_wechat() {
    let down = Downstream::start(OA2_PUSH_TOKEN, None, Behaviour::Reply).await;
    let t = forwarding(vec![("oa2", forward_to(&down.url))]).await;
    let ann = person(&t).await;
    let openid = t.sim.openid_of(OA2_APPID, &ann);

    let p = settled(&t, text(&t, OA2_APPID, &ann, "你好 hello").await).await;
    assert!(p.acknowledged, "{p:#?}");
    assert_eq!(p.attempts.len(), 1, "{p:#?}");
    let reply = p
        .reply
        .as_deref()
        .expect("the handler's reply reached WeChat");
    assert_eq!(field(reply, "Content").as_deref(), Some("echo: 你好 hello"));
    assert_eq!(field(reply, "ToUserName").as_deref(), Some(openid.as_str()));

    // The handler got WeChat's request unchanged: its own signature check passed on the
    // query as WeChat signed it, and the body is the bytes WeChat sent.
    let seen = down.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].message.as_deref(), Ok(p.xml.as_str()));
    assert_eq!(seen[0].body, p.xml);
    assert_eq!(field(&p.xml, "MsgType").as_deref(), Some("text"));
    assert!(field(&p.xml, "MsgId").is_some_and(|id| id.parse::<i64>().is_ok()));
    for part in ["signature=", "timestamp=", "nonce="] {
        assert!(seen[0].query.contains(part), "{}", seen[0].query);
    }
    assert!(seen[0].query.contains(&format!("openid={openid}")));

    // And wxlink stored it as it stores every push.
    let events = t.events("oa2", "").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["type"], "text");
    assert_eq!(events[0]["openid"], openid.as_str());
}

#[tokio::test]
async fn a_safe_mode_handler_decrypts_the_push_and_its_encrypted_reply_reaches_wechat() {
    let down = Downstream::start(
        OA_PUSH_TOKEN,
        Some((OA_AES_KEY, OA_APPID)),
        Behaviour::Reply,
    )
    .await;
    let t = forwarding(vec![("oa", forward_to(&down.url))]).await;
    let ann = person(&t).await;
    let openid = t.sim.openid_of(OA_APPID, &ann);

    let p = settled(&t, click(&t, OA_APPID, &ann, "MENU_ORDERS").await).await;
    assert_eq!(p.mode, "safe");
    assert!(p.acknowledged, "{p:#?}");
    assert_eq!(p.attempts.len(), 1);
    // What WeChat got is the encrypted envelope; opened, it is the handler's reply.
    assert!(p.attempts[0].answer.starts_with("<xml><Encrypt>"), "{p:#?}");
    let reply = p.reply.as_deref().expect("the encrypted reply opened");
    assert_eq!(
        field(reply, "Content").as_deref(),
        Some("echo: MENU_ORDERS")
    );
    assert_eq!(field(reply, "ToUserName").as_deref(), Some(openid.as_str()));

    let seen = down.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    // Its msg_signature verified and the message decrypted with the EncodingAESKey.
    let message = seen[0]
        .message
        .clone()
        .expect("the handler verified the push");
    assert_eq!(message, p.xml);
    assert_eq!(field(&message, "Event").as_deref(), Some("CLICK"));
    assert_eq!(field(&message, "EventKey").as_deref(), Some("MENU_ORDERS"));
    for part in ["encrypt_type=aes", "msg_signature=", "signature=", "nonce="] {
        assert!(seen[0].query.contains(part), "{}", seen[0].query);
    }
    assert!(seen[0].body.contains("<Encrypt>"));
    assert_eq!(t.events("oa", "type=CLICK").await.len(), 1);
}

#[tokio::test]
async fn a_downstream_past_the_deadline_still_gets_wechat_success_in_time() {
    let down = Downstream::start(
        OA2_PUSH_TOKEN,
        None,
        Behaviour::ReplyAfter(Duration::from_secs(7)),
    )
    .await;
    // The default deadline: 4 s.
    let t = forwarding(vec![("oa2", forward_to(&down.url))]).await;
    let ann = person(&t).await;
    let openid = t.sim.openid_of(OA2_APPID, &ann);

    let started = Instant::now();
    let id = t
        .simulator
        .post(
            &format!("/_sim/people/{ann}/follow"),
            json!({"appid": OA2_APPID}),
        )
        .await["push"]
        .as_u64()
        .unwrap();
    // wxlink's own handling does not wait for the downstream: the follow is recorded while
    // the push is still waiting for its answer.
    loop {
        if follows(&t, "oa2", &openid).await.0 == Some(true) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the follow waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        t.sim
            .pushes()
            .iter()
            .any(|p| p.id == id && p.attempts.is_empty()),
        "the follow was recorded before WeChat had its answer"
    );

    let p = settled(&t, id).await;
    assert!(p.acknowledged, "{p:#?}");
    assert_eq!(p.attempts.len(), 1, "no retry: {p:#?}");
    assert_eq!(p.attempts[0].answer, "success");
    assert!(p.attempts[0].took_ms < 5000, "{p:#?}");
    assert!(p.attempts[0].took_ms >= 3900, "{p:#?}");
    assert_eq!(down.seen().len(), 1);
    // The failure is recorded after WeChat has its answer, through the forwards' writer:
    // wait for it to land.
    let mut failures = Vec::new();
    for _ in 0..100 {
        failures = t
            .ctx
            .store
            .forward_failures(Some(&AppId::parse("oa2").unwrap()), 10)
            .await
            .unwrap();
        if !failures.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0].outcome, "timeout");
    assert_eq!(failures[0].kind, "subscribe");
    assert!(failures[0].error.contains("4000 ms"), "{failures:#?}");
}

#[tokio::test]
async fn a_wechat_retry_is_forwarded_once_and_answered_with_the_first_reply() {
    let down = Downstream::start(
        OA2_PUSH_TOKEN,
        None,
        Behaviour::ReplyAfter(Duration::from_millis(1200)),
    )
    .await;
    let t = forwarding(vec![("oa2", forward_to(&down.url))]).await;
    // This WeChat gives up on an answer after 700 ms: its retry arrives while the first
    // forward is still waiting for the downstream.
    t.simulator
        .post(
            "/_sim/push/settings",
            json!({"timeout_ms": 700, "retries": 3, "retry_delay_ms": 50}),
        )
        .await;
    let ann = person(&t).await;
    let p = settled(&t, text(&t, OA2_APPID, &ann, "order 42").await).await;
    assert!(p.acknowledged, "{p:#?}");
    assert_eq!(p.attempts.len(), 2, "{p:#?}");
    assert!(
        p.attempts[0].error.is_some(),
        "the first attempt timed out: {p:#?}"
    );
    let reply = p
        .reply
        .clone()
        .expect("the retry got the first forward's reply");
    assert_eq!(field(&reply, "Content").as_deref(), Some("echo: order 42"));
    assert_eq!(down.seen().len(), 1, "forwarded once: {:#?}", down.seen());

    // A later repeat of the same request gets the stored answer, without a forward.
    let seen = &down.seen()[0];
    let r = t
        .api
        .post(t.url(&format!("/wechat/oa2/push?{}", seen.query)))
        .header("content-type", "text/xml")
        .body(seen.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), reply);
    assert_eq!(down.seen().len(), 1);
    let events = t.events("oa2", "").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["duplicates"], 2, "{events:#?}");
}

#[tokio::test]
async fn a_retry_reaching_another_instance_waits_for_the_first_forward() {
    let down = Downstream::start(
        OA2_PUSH_TOKEN,
        None,
        Behaviour::ReplyAfter(Duration::from_millis(800)),
    )
    .await;
    let t = forwarding(vec![("oa2", forward_to(&down.url))]).await;
    let (other, _) = t.another_instance(t.clock.clone()).await;
    let now = t.clock.now();
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[oRetry]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>77001</MsgId></xml>"
    );
    let push = craft(OA2_PUSH_TOKEN, now, "5501", &xml, None);
    let send = |base: String| {
        let (client, query, body) = (t.api.clone(), push.query.clone(), push.body.clone());
        async move {
            let r = client
                .post(format!("{base}/wechat/oa2/push?{query}"))
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let first = tokio::spawn(send(t.base.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = send(other).await;
    let first = first.await.unwrap();
    assert_eq!(first.0, 200);
    assert_eq!(field(&first.1, "Content").as_deref(), Some("echo: hi"));
    assert_eq!(
        second, first,
        "the other instance answered with the first reply"
    );
    assert_eq!(down.seen().len(), 1, "{:#?}", down.seen());
}

#[tokio::test]
async fn pushes_forwarded_together_each_get_their_own_reply_and_record() {
    let down = Downstream::start(OA2_PUSH_TOKEN, None, Behaviour::Reply).await;
    let t = forwarding(vec![("oa2", forward_to(&down.url))]).await;
    let now = t.clock.now();
    // Sixty at once: their claims and finishes are written a batch at a time, and each
    // answer must still reach its own push.
    let pushes: Vec<_> = (0..60)
        .map(|i| {
            let xml = format!(
                "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[oMany{i}]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[m{i}]]></Content><MsgId>{}</MsgId></xml>",
                88_000 + i
            );
            craft(OA2_PUSH_TOKEN, now, &format!("77{i}"), &xml, None)
        })
        .collect();
    let post = |i: usize| {
        let (client, url) = (
            t.api.clone(),
            t.url(&format!("/wechat/oa2/push?{}", pushes[i].query)),
        );
        let body = pushes[i].body.clone();
        async move {
            let r = client.post(url).body(body).send().await.unwrap();
            (i, r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let mut set = tokio::task::JoinSet::new();
    for i in 0..pushes.len() {
        set.spawn(post(i));
    }
    while let Some(r) = set.join_next().await {
        let (i, status, body) = r.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            field(&body, "Content").as_deref(),
            Some(format!("echo: m{i}").as_str()),
            "push {i} got another push's reply"
        );
    }
    assert_eq!(down.seen().len(), 60, "each forwarded once");
    // Each record holds its own answer: a repeat of a push is given it, not forwarded.
    for i in [0, 29, 59] {
        let (_, status, body) = post(i).await;
        assert_eq!(status, 200);
        assert_eq!(
            field(&body, "Content").as_deref(),
            Some(format!("echo: m{i}").as_str())
        );
    }
    assert_eq!(down.seen().len(), 60);
}

#[tokio::test]
async fn wxlinks_own_handling_happens_with_the_downstream_down_and_failures_show() {
    let broken = Downstream::start(
        OA_PUSH_TOKEN,
        Some((OA_AES_KEY, OA_APPID)),
        Behaviour::Fail(500),
    )
    .await;
    let t = forwarding(vec![
        ("oa2", forward_to(&Downstream::down().await)),
        ("oa", forward_to(&broken.url)),
    ])
    .await;
    let unreachable_before = forwards_counted(&t, "oa2", "unreachable").await;
    let bad_status_before = forwards_counted(&t, "oa", "bad_status").await;
    let ann = person(&t).await;

    // A follow on the app whose downstream is down, a text on the one whose handler fails.
    let followed = t
        .simulator
        .post(
            &format!("/_sim/people/{ann}/follow"),
            json!({"appid": OA2_APPID}),
        )
        .await["push"]
        .as_u64()
        .unwrap();
    let texted = text(&t, OA_APPID, &ann, "help").await;
    for id in [followed, texted] {
        let p = settled(&t, id).await;
        assert!(p.acknowledged, "{p:#?}");
        assert_eq!(p.attempts.len(), 1, "no retry storm: {p:#?}");
        assert_eq!(p.attempts[0].answer, "success");
        assert!(p.reply.is_none());
    }
    // The follow is handled after the acknowledgement, as every event is.
    let openid = t.sim.openid_of(OA2_APPID, &ann);
    let mut recorded = None;
    for _ in 0..250 {
        recorded = follows(&t, "oa2", &openid).await.0;
        if recorded.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recorded, Some(true));
    assert_eq!(broken.seen().len(), 1);

    assert!(forwards_counted(&t, "oa2", "unreachable").await >= unreachable_before + 1.0);
    assert!(forwards_counted(&t, "oa", "bad_status").await >= bad_status_before + 1.0);
    // The failures are recorded after WeChat has its answers: the page shows them once
    // both have landed.
    let mut html = String::new();
    for _ in 0..100 {
        html = admin_page(&t, "/admin/pushes").await;
        if html.matches("data-forward-failure=").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(html.contains("Forwarding failures"), "{html}");
    assert!(
        html.contains("data-forward-failure=\"unreachable\""),
        "{html}"
    );
    assert!(
        html.contains("data-forward-failure=\"bad_status\""),
        "{html}"
    );
    assert!(html.contains("HTTP 500"), "{html}");
    // The app filter narrows the failures too.
    let html = admin_page(&t, "/admin/pushes?app=oa").await;
    assert!(html.contains("data-forward-failure=\"bad_status\""));
    assert!(!html.contains("data-forward-failure=\"unreachable\""));
}

#[tokio::test]
async fn only_the_configured_kinds_are_forwarded() {
    let down = Downstream::start(OA2_PUSH_TOKEN, None, Behaviour::Reply).await;
    let t = forwarding(vec![(
        "oa2",
        format!(
            "{}\nforward_events = [\"text\"]\nforward_timeout_ms = 2000",
            forward_to(&down.url)
        ),
    )])
    .await;
    let ann = person(&t).await;
    let clicked = settled(&t, click(&t, OA2_APPID, &ann, "K1").await).await;
    assert_eq!(clicked.attempts[0].answer, "success");
    assert!(clicked.reply.is_none());
    assert!(down.seen().is_empty(), "{:#?}", down.seen());
    let texted = settled(&t, text(&t, OA2_APPID, &ann, "yes").await).await;
    assert!(texted.reply.is_some(), "{texted:#?}");
    assert_eq!(down.seen().len(), 1);
    // The handler's `success` (no reply) is WeChat's answer too.
    down.set(Behaviour::Success);
    let quiet = settled(&t, text(&t, OA2_APPID, &ann, "thanks").await).await;
    assert!(quiet.acknowledged && quiet.reply.is_none(), "{quiet:#?}");
    assert_eq!(quiet.attempts[0].answer, "success");
    assert_eq!(down.seen().len(), 2);
    // All are stored.
    assert_eq!(t.events("oa2", "").await.len(), 3);
}

#[tokio::test]
async fn wxlink_check_tries_the_downstream_with_wechats_verification() {
    let (_sim, base) = crate::check::simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let down = Downstream::start("tok123", None, Behaviour::Reply).await;
    let toml = |url: &str| {
        format!(
            "{}{}push_token = \"tok123\"\nforward_url = \"{url}?app=old\"\n",
            crate::check::head(dir.path()),
            crate::check::app(
                "oa",
                crate::check::STABLE,
                "stable-secret-1",
                "stable",
                &base
            ),
        )
    };
    let good = toml(&down.url);
    let (ok, out) = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || crate::check::check(&dir, &good)
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("app oa forward_url (http://127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.contains("ok (answered WeChat's signed verification"),
        "{out}"
    );
    assert!(
        !out.contains("app=old"),
        "the URL's query is not printed: {out}"
    );
    let seen = down.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert!(
        seen[0].message.is_ok(),
        "signed with the push_token: {seen:#?}"
    );

    let bad = toml(&Downstream::down().await);
    let (ok, out) = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || crate::check::check(&dir, &bad)
    })
    .await
    .unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("forward_url"), "{out}");
    assert!(out.contains("FAILED: cannot reach it"), "{out}");
}

/// One text value from the test's database (`None` for SQL NULL or no row).
async fn db_text(url: &str, sql: &str) -> Option<String> {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql)
            .fetch_optional(&mut c)
            .await
            .unwrap()
            .flatten()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql)
            .fetch_optional(&mut c)
            .await
            .unwrap()
            .flatten()
    }
}

#[tokio::test]
async fn the_stored_reply_is_sealed_cleared_after_an_hour_and_goes_with_the_pushes() {
    let down = Downstream::start(OA2_PUSH_TOKEN, None, Behaviour::Reply).await;
    let t = forwarding(vec![("oa2", forward_to(&down.url))]).await;
    let ann = person(&t).await;
    let p = settled(&t, text(&t, OA2_APPID, &ann, "secret order").await).await;
    assert!(p.reply.is_some());
    let db = t.ctx.config.database_url.clone();
    let answer_sql = "SELECT answer FROM push_forwards";
    // The answer is stored beside WeChat's reply, not before it: wait for it to land.
    let mut stored = None;
    for _ in 0..100 {
        stored = db_text(&db, answer_sql).await;
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stored = stored.expect("the answer is stored within 5 s");
    assert!(stored.starts_with("sealed1:"), "{stored}");
    assert!(!stored.contains("secret order") && !stored.contains("echo"));

    let settings = wxlink::config::RetentionSettings {
        batch_pause_ms: 0,
        ..t.ctx.config.retention.clone()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let prune =
        || wxlink::retention::prune_once(&t.ctx.store, &settings, t.clock.timestamp(), &stop);
    prune().await.unwrap();
    assert!(
        db_text(&db, answer_sql).await.is_some(),
        "kept for WeChat's retries"
    );
    t.advance(2 * 3600);
    prune().await.unwrap();
    assert_eq!(
        db_text(&db, answer_sql).await,
        None,
        "cleared after an hour"
    );
    assert_eq!(
        db_text(&db, "SELECT outcome FROM push_forwards")
            .await
            .as_deref(),
        Some("reply")
    );
    t.advance(31 * 86_400);
    prune().await.unwrap();
    assert_eq!(
        db_text(&db, "SELECT outcome FROM push_forwards").await,
        None
    );
}
