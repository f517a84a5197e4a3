//! Storage faults: a full database answers 503 `storage_full` and heals by itself once
//! there is room again (SQLite's `max_page_count` plays the full disk).

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
        return; // max_page_count is SQLite's
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
