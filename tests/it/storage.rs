//! Storage faults: a full database answers 503 `storage_full` and heals by itself once
//! there is room again (SQLite's `max_page_count` plays the full disk); a database file
//! deleted while running stops every acknowledgement; the WAL is checkpointed by a task of
//! its own, not inside the writer's commits.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SHIPPED: &str = "{{first.DATA}}\n订单号：{{keyword1.DATA}}\n{{remark.DATA}}";

/// Before the fix one "database or disk is full" left the writer connection inside a
/// transaction: every later write answered 500 `internal_error` until a restart.
#[tokio::test]
async fn a_full_database_answers_503_and_the_writer_heals_when_space_is_back() {
    let t = TestApp::spawn().await;
    if t.ctx.store.backend_name() != "sqlite" {
        println!("SKIPPED on PostgreSQL: max_page_count, the full disk's stand-in, is SQLite's");
        return;
    }
    t.person_for("42", "oa", OA_APPID).await;
    let tpl = t.simulator.template(OA_APPID, "template", SHIPPED).await;
    let body = json!({
        "channel": "template", "app": "oa", "template_id": tpl,
        "data": {"keyword1": "x".repeat(20)},
    });
    let first = t.send_ok("42", body.clone()).await;
    t.sent(&first).await;

    // The file may not grow any more: sends fill the free pages, then one is refused.
    t.ctx.store.cap_sqlite_pages(Some(1)).await.unwrap();
    let mut refused = None;
    for _ in 0..2000 {
        let r = t.send("42", body.clone()).await;
        if r.status() != StatusCode::ACCEPTED {
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            refused = Some((status, v["error"]["code"].as_str().unwrap_or("").to_owned()));
            break;
        }
    }
    assert_eq!(
        refused,
        Some((StatusCode::SERVICE_UNAVAILABLE, "storage_full".to_owned()))
    );
    let ready = t.api.get(t.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = ready.json().await.unwrap();
    assert_eq!(v["reason"], "storage_full", "{v}");
    // Liveness is not readiness.
    let live = t.api.get(t.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);

    // Space is back: the next send is accepted and sent, and readiness says so.
    t.ctx.store.cap_sqlite_pages(None).await.unwrap();
    let id = t.send_ok("42", body.clone()).await;
    t.sent(&id).await;
    let ready = t.api.get(t.url("/readyz")).send().await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "{}",
        ready.text().await.unwrap()
    );
}

/// Before: SQLite kept writing into the unlinked file, every send was acknowledged (202)
/// and every one was gone at the next start.
#[tokio::test]
async fn a_database_file_deleted_while_running_stops_every_acknowledgement() {
    let t = TestApp::spawn().await;
    if t.ctx.store.backend_name() != "sqlite" {
        println!("SKIPPED on PostgreSQL: there is no database file to delete");
        return;
    }
    t.person_for("42", "oa", OA_APPID).await;
    let tpl = t.simulator.template(OA_APPID, "template", SHIPPED).await;
    let body = json!({
        "channel": "template", "app": "oa", "template_id": tpl,
        "data": {"keyword1": "339208499"},
    });
    let first = t.send_ok("42", body.clone()).await;
    t.sent(&first).await;

    let url = t.ctx.config.database_url.clone();
    let path = url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    // At once, before the watcher's next look: the send's own commit is checked.
    let r = t.send("42", body.clone()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "database_unavailable", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("was deleted"), "{message}");

    let ready = t.api.get(t.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = ready.json().await.unwrap();
    assert_eq!(v["reason"], "database_file_missing", "{v}");

    // Once the watcher has looked, every write is refused, not only sends and pushes.
    tokio::time::sleep(wxlink::store::WATCH_INTERVAL * 3).await;
    let r = t
        .api_put(
            &format!(
                "/api/v1/users/43/identities/oa/{}",
                "oSomeoneElse000000000000000"
            ),
            json!({}),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        r.text().await.unwrap()
    );
    // Nothing was created in the file's place.
    assert!(!std::path::Path::new(path).exists());
    let r = t.send("42", body).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// Two processes started together on a new SQLite file both saw migration 160 missing and
/// both ran it: the loser failed with "duplicate column name: replays" and did not start
/// (a CI failure of `js_sdk::two_processes_on_one_sqlite_file_fetch_one_ticket_per_window`).
#[tokio::test]
async fn instances_starting_together_on_a_new_sqlite_file_all_open_it() {
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new.db").display());
        // Each connection works on a thread of its own, so these really run at once.
        let settings = wxlink::config::DatabaseSettings::default();
        let opening = (0..6).map(|_| wxlink::store::Store::connect(&url, &settings));
        for opened in futures_util::future::join_all(opening).await {
            if let Err(e) = opened {
                panic!("round {round}: {e}");
            }
        }
    }
}

/// SQLite checkpointed inside the commit that crossed 1,000 WAL pages, stalling every write
/// queued behind it (the accept benchmark's p99). Now a task checkpoints often and the
/// writer's own threshold is far off: what was written reaches the database file itself
/// within moments, which a copy of the file alone, without its WAL, shows.
#[tokio::test]
async fn writes_reach_the_database_file_within_moments_without_the_writer_checkpointing() {
    let t = TestApp::spawn().await;
    if t.ctx.store.backend_name() != "sqlite" {
        println!("SKIPPED on PostgreSQL: the WAL checkpoint is SQLite's");
        return;
    }
    t.person_for("42", "oa", OA_APPID).await;
    let tpl = t.simulator.template(OA_APPID, "template", SHIPPED).await;
    let body = json!({
        "channel": "template", "app": "oa", "template_id": tpl,
        "data": {"keyword1": "339208499"},
    });
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(t.send_ok("42", body.clone()).await);
    }
    for id in &ids {
        t.sent(id).await;
    }
    tokio::time::sleep(wxlink::store::CHECKPOINT_INTERVAL * 10).await;

    let path = t
        .ctx
        .config
        .database_url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}?mode=ro&immutable=1",
        copy.display()
    ))
    .await
    .unwrap();
    let (sent,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM messages WHERE status IN ('sent', 'delivered')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        sent,
        ids.len() as i64,
        "messages sent that the database file holds, without its WAL"
    );
}
