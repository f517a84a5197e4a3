//! Retention: code exchanges, login codes, link tickets, expired web tokens, finished
//! messages, handled pushes, delivery reports and closed customer-service windows are
//! deleted once past their retention, in batches, on both stores; what is still at work (a
//! queued message) is never touched.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wxlink::config::RetentionSettings;
use wxlink::store::Prunable;

const TABLES: [&str; 8] = [
    "oauth_exchanges",
    "login_codes",
    "link_tickets",
    "web_tokens",
    "messages",
    "push_events",
    "push_delivery_reports",
    "custom_windows",
];

async fn count(url: &str, table: &str) -> i64 {
    use sqlx::Connection;
    let sql = format!("SELECT COUNT(*) FROM {table}");
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap()
    }
}

async fn counts(url: &str) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for t in TABLES {
        out.push((t, count(url, t).await));
    }
    out
}

/// A message still waiting to be sent, last changed long ago (its retry far ahead).
async fn insert_waiting_message(url: &str) {
    use sqlx::Connection;
    let sql = "INSERT INTO messages (id, caller, request_hash, user_id, app, channel, openid,
                   template_id, payload, status, next_attempt_ms, history, created_ms, updated_ms)
               VALUES ('m-waiting', 'tests', 'h', 'u-waiting', 'oa', 'template', 'o-waiting',
                   't', '{}', 'queued', 9000000000000000, '', 0, 0)";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

/// Three of each record: userinfo sign-ins with a return_to (exchange, login code, web
/// token), link tickets, finished sends.
async fn three_of_each(t: &TestApp) {
    let template = t
        .simulator
        .template(OA_APPID, "template", "订单号：{{keyword1.DATA}}")
        .await;
    for i in 0..3 {
        let person = t.simulator.person(&format!("Retained {i}")).await;
        let browser = wechat_browser();
        let r = t
            .sign_in(
                &browser,
                &format!(
                    "/oauth/oa/authorize?scope=snsapi_userinfo&return_to={}",
                    encode("https://shop.example.com/done")
                ),
                person["id"].as_str().unwrap(),
                "allow",
            )
            .await;
        assert_eq!(r.status(), StatusCode::FOUND);
        let user = format!("u-ret-{i}");
        t.link_ticket(&user, json!({"app": "oa2", "scope": "snsapi_base"}))
            .await;
        let openid = person["openids"][OA_APPID].as_str().unwrap();
        assert_eq!(
            t.bind(&user, "oa", openid, json!({})).await.status(),
            StatusCode::OK
        );
        let id = t
            .send_ok(
                &user,
                json!({"channel": "template", "app": "oa", "template_id": template,
                       "data": {"keyword1": format!("order {i}")}}),
            )
            .await;
        // Its delivery report, pushed by the simulator, handled.
        t.message_until(&id, &["delivered"]).await;
        // A follow: its push opens a customer-service window.
        t.sim
            .set_follow(OA_APPID, person["id"].as_str().unwrap(), true)
            .unwrap();
    }
    for _ in 0..250 {
        if count(&t.ctx.config.database_url, "custom_windows").await == 3 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the follows opened no customer-service windows");
}

async fn prune(t: &TestApp, settings: &RetentionSettings) -> Vec<(&'static str, u64)> {
    wxlink::retention::prune_once(
        &t.ctx.store,
        settings,
        t.clock.timestamp(),
        &CancellationToken::new(),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|(k, n)| (k.table(), n))
    .collect()
}

async fn records_go_once_past_their_retention(opts: Options) {
    let t = TestApp::spawn_with(opts).await;
    let db = t.ctx.config.database_url.clone();
    three_of_each(&t).await;
    insert_waiting_message(&db).await;
    assert_eq!(
        counts(&db).await,
        [
            ("oauth_exchanges", 3),
            ("login_codes", 3),
            ("link_tickets", 3),
            ("web_tokens", 3),
            ("messages", 4),
            ("push_events", 6),
            ("push_delivery_reports", 3),
            ("custom_windows", 3)
        ]
    );
    let settings = RetentionSettings {
        batch_size: 2,
        batch_pause_ms: 0,
        ..t.ctx.config.retention.clone()
    };

    // Fresh records stay.
    assert!(prune(&t, &settings).await.iter().all(|(_, n)| *n == 0));

    // A batch deletes at most batch_size rows.
    t.advance(25 * 3600);
    let before = t.clock.timestamp().secs() - 24 * 3600;
    let n = t
        .ctx
        .store
        .prune_batch(Prunable::OauthExchanges, before, 2)
        .await
        .unwrap();
    assert_eq!(n, 2);

    // A day on: the exchanges and the login codes are gone (in batches of 2).
    let pruned = prune(&t, &settings).await;
    assert!(pruned.contains(&("oauth_exchanges", 1)), "{pruned:?}");
    assert!(pruned.contains(&("login_codes", 3)), "{pruned:?}");
    assert_eq!(count(&db, "link_tickets").await, 3);

    // A week past their expiry, the tickets; a month on, the expired web tokens.
    t.advance(8 * 86_400);
    assert!(prune(&t, &settings).await.contains(&("link_tickets", 3)));
    assert_eq!(count(&db, "web_tokens").await, 3);
    assert_eq!(count(&db, "custom_windows").await, 3);
    assert_eq!(count(&db, "push_events").await, 6);
    t.advance(23 * 86_400);
    let pruned = prune(&t, &settings).await;
    assert!(pruned.contains(&("web_tokens", 3)), "{pruned:?}");
    // Thirty days ([push] retention_days) after they came, the pushes (reports and
    // follows) and the reports.
    assert!(pruned.contains(&("push_events", 6)), "{pruned:?}");
    assert!(pruned.contains(&("push_delivery_reports", 3)), "{pruned:?}");
    // And the customer-service windows those follows opened (closed a minute after).
    assert!(pruned.contains(&("custom_windows", 3)), "{pruned:?}");
    assert_eq!(count(&db, "messages").await, 4);

    // Ninety days on, the finished messages; the waiting one stays.
    t.advance(60 * 86_400);
    assert!(prune(&t, &settings).await.contains(&("messages", 3)));
    assert_eq!(
        counts(&db).await,
        [
            ("oauth_exchanges", 0),
            ("login_codes", 0),
            ("link_tickets", 0),
            ("web_tokens", 0),
            ("messages", 1),
            ("push_events", 0),
            ("push_delivery_reports", 0),
            ("custom_windows", 0)
        ]
    );
    assert_eq!(
        count(&db, "messages WHERE id = 'm-waiting' AND status = 'queued'").await,
        1
    );
}

#[tokio::test]
async fn records_go_once_past_their_retention_on_sqlite() {
    records_go_once_past_their_retention(Options::default()).await;
}

#[tokio::test]
async fn records_go_once_past_their_retention_on_postgres() {
    let Some(server) = postgres_url() else { return };
    records_go_once_past_their_retention(Options {
        postgres: Some(server),
        ..Default::default()
    })
    .await;
}

#[tokio::test]
async fn the_pruner_runs_on_its_schedule_and_zero_keeps_forever() {
    let t = TestApp::spawn_with(Options {
        extra_toml: "[retention]\ninterval_secs = 1\nlogin_codes_hours = 0\n".into(),
        ..Default::default()
    })
    .await;
    let db = t.ctx.config.database_url.clone();
    let person = t.simulator.person("Scheduled").await;
    let r = t
        .sign_in(
            &wechat_browser(),
            &format!(
                "/oauth/oa/authorize?scope=snsapi_base&return_to={}",
                encode("https://shop.example.com/done")
            ),
            person["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    t.advance(2 * 86_400);
    for _ in 0..100 {
        if count(&db, "oauth_exchanges").await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count(&db, "oauth_exchanges").await, 0, "pruned on schedule");
    assert_eq!(
        count(&db, "login_codes").await,
        1,
        "login_codes_hours = 0 keeps them"
    );
}
