//! JS-SDK: `wx.config` signed with the app's central jsapi ticket for pages under its
//! JS-safe domains, checked by the simulator as WeChat's JS side would; the ticket fetched
//! once per window across instances (in-process on SQLite and PostgreSQL, and real
//! processes on one SQLite file), recovered when WeChat kills it or refuses its token, and
//! getticket's daily limit never reached by config calls.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const PAGE: &str = "https://example.com/orders/42?from=menu";

fn issued() -> String {
    format!("tickets_issued:{OA_APPID}:jsapi")
}

/// `POST /api/v1/apps/{app}/js-sdk-config` at `base`: status and body.
async fn config_at(t: &TestApp, base: &str, app: &str, body: Value) -> (StatusCode, Value) {
    let r = t
        .api
        .post(format!("{base}/api/v1/apps/{app}/js-sdk-config"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// A config for `url` from the test service, which must sign it.
async fn config(t: &TestApp, url: &str) -> Value {
    let (status, body) = config_at(t, &t.base, "oa", json!({ "url": url })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// What WeChat's JS side says of `wx.config(c)` on the page at `page`.
async fn verdict(sim: &SimClient, page: &str, c: &Value) -> String {
    let v = sim
        .post(
            "/_sim/js-sdk/verify",
            json!({
                "appId": c["appId"], "url": page, "timestamp": c["timestamp"],
                "nonceStr": c["nonceStr"], "signature": c["signature"],
            }),
        )
        .await;
    v["errMsg"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_config_for_an_allowed_page_passes_wechats_check() {
    let t = TestApp::spawn().await;
    let page = format!("{PAGE}#/detail?tab=2");
    let (status, c) = config_at(
        &t,
        &t.base,
        "oa",
        json!({
            "url": page,
            "js_api_list": ["updateAppMessageShareData", "scanQRCode"],
            "open_tag_list": ["wx-open-launch-weapp"],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["appId"], OA_APPID);
    assert_eq!(
        c["jsApiList"],
        json!(["updateAppMessageShareData", "scanQRCode"])
    );
    assert_eq!(c["openTagList"], json!(["wx-open-launch-weapp"]));
    assert_eq!(c["nonceStr"].as_str().unwrap().len(), 16);
    let now = t.clock.now();
    assert!((c["timestamp"].as_i64().unwrap() - now).abs() <= 2);
    let signature = c["signature"].as_str().unwrap();
    assert_eq!(signature.len(), 40);
    assert!(
        signature
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // The page calls wx.config with its own location.href, fragment and all.
    assert_eq!(verdict(&t.simulator, &page, &c).await, "config:ok");
    assert_eq!(verdict(&t.simulator, PAGE, &c).await, "config:ok");
    // The signature is for this page only.
    assert_eq!(
        verdict(&t.simulator, "https://example.com/orders/43", &c).await,
        "config:invalid signature"
    );
    // A page under a path entry of the domains.
    let shop = "https://shop.example.com/pages/cart";
    let c2 = config(&t, shop).await;
    assert_eq!(verdict(&t.simulator, shop, &c2).await, "config:ok");
    assert_eq!(
        t.simulator.counter(&issued()).await,
        1,
        "one ticket for both"
    );
}

#[tokio::test]
async fn the_fragment_is_removed_before_signing() {
    let t = TestApp::spawn().await;
    let with = config(&t, &format!("{PAGE}#section-2")).await;
    let raw: Value = t.api_json("/api/v1/apps/oa/js-sdk-tickets/jsapi").await;
    let ticket = raw["ticket"].as_str().unwrap();
    assert_eq!(raw["type"], "jsapi");
    let expected = wxlink::wechat::ticket::js_sdk_signature(
        ticket,
        with["nonceStr"].as_str().unwrap(),
        with["timestamp"].as_i64().unwrap(),
        PAGE,
    );
    assert_eq!(with["signature"], expected.as_str());
    // The page in the form a browser's location.href has it.
    let bare = config(&t, "https://EXAMPLE.com?x=1#top").await;
    let expected = wxlink::wechat::ticket::js_sdk_signature(
        ticket,
        bare["nonceStr"].as_str().unwrap(),
        bare["timestamp"].as_i64().unwrap(),
        "https://example.com/?x=1",
    );
    assert_eq!(bare["signature"], expected.as_str());
}

#[tokio::test]
async fn pages_outside_the_js_safe_domains_are_refused_before_any_ticket_is_fetched() {
    let t = TestApp::spawn().await;
    for url in [
        "https://evil.com/orders",
        "https://evil-example.com/",
        "https://example.com.evil.com/",
        "https://www.example.com/",
        "https://example.com@evil.com/",
        "https://evil.com@example.com/",
        "https://example.com:8443/",
        "https://shop.example.com/",
        "https://shop.example.com/pagesx",
        "javascript:alert(1)//example.com",
        "data:text/html,https://example.com/",
        "file:///example.com/",
        "ftp://example.com/",
        "//example.com/",
        "example.com/page",
        "",
    ] {
        let (status, body) = config_at(&t, &t.base, "oa", json!({ "url": url })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["error"]["code"], "url_not_allowed", "{url}: {body}");
    }
    // The same refusal whatever the page: other apps have no domains configured.
    let (status, body) = config_at(&t, &t.base, "oa2", json!({ "url": PAGE })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "url_not_allowed");
    // A mini-program has no JS-SDK tickets; an unknown app is unknown.
    let (status, body) = config_at(&t, &t.base, "mp", json!({ "url": PAGE })).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("not_web_app"))
    );
    let (status, body) = config_at(&t, &t.base, "nope", json!({ "url": PAGE })).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("unknown_app"))
    );
    // Bad bodies.
    for (body, code) in [
        (json!({}), "invalid_body"),
        (json!({ "url": PAGE, "extra": 1 }), "invalid_body"),
        (
            json!({ "url": PAGE, "js_api_list": ["<script>"] }),
            "invalid_body",
        ),
    ] {
        let (status, answer) = config_at(&t, &t.base, "oa", body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{answer}"
        );
    }
    assert_eq!(
        t.simulator.counter(&issued()).await,
        0,
        "no ticket was fetched"
    );
}

#[tokio::test]
async fn many_config_calls_never_reach_getticket_s_daily_limit() {
    let t = TestApp::spawn_with(Options {
        sim_ticket_daily_limit: Some(2),
        ..Default::default()
    })
    .await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (api, base) = (t.api.clone(), t.base.clone());
        set.spawn(async move {
            let r = api
                .post(format!("{base}/api/v1/apps/oa/js-sdk-config"))
                .bearer_auth(API_KEY)
                .json(&json!({ "url": format!("{PAGE}&n={i}") }))
                .send()
                .await
                .unwrap();
            (i, r.status(), r.json::<Value>().await.unwrap())
        });
    }
    let mut configs = Vec::new();
    while let Some(r) = set.join_next().await {
        let (i, status, body) = r.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        configs.push((i, body));
    }
    assert_eq!(
        t.simulator.counter(&issued()).await,
        1,
        "one getticket for 200 configs"
    );
    for (i, c) in configs.iter().take(20) {
        assert_eq!(
            verdict(&t.simulator, &format!("{PAGE}&n={i}"), c).await,
            "config:ok"
        );
    }
    // The limit is real: spent, WeChat answers 45009, passed on as wechat_quota.
    let access_token = t.api_json("/api/v1/apps/oa/access-token").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let direct = |tok: String| {
        let url = t.simulator.url("/cgi-bin/ticket/getticket");
        let api = t.api.clone();
        async move {
            api.get(url)
                .query(&[("access_token", tok.as_str()), ("type", "jsapi")])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert!(direct(access_token.clone()).await["ticket"].is_string());
    assert_eq!(direct(access_token).await["errcode"], 45009);
    // Our ticket still lives: replacing it (past the report floor) cannot be done today.
    t.advance(wxlink::ticket::REPORT_FLOOR_SECS + 1);
    let raw = t.api_json("/api/v1/apps/oa/js-sdk-tickets/jsapi").await;
    let r = t
        .api_post(
            "/api/v1/apps/oa/js-sdk-tickets/jsapi/invalidate",
            json!({ "ticket": raw["ticket"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wechat_quota");
    assert_eq!(body["error"]["errcode"], 45009);
}

#[tokio::test]
async fn a_ticket_wechat_killed_is_replaced_once_when_a_page_reports_its_signature() {
    let t = TestApp::spawn().await;
    let first = config(&t, PAGE).await;
    assert_eq!(verdict(&t.simulator, PAGE, &first).await, "config:ok");
    let killed = t
        .simulator
        .post("/_sim/tickets/invalidate", json!({ "appid": OA_APPID }))
        .await;
    assert_eq!(killed["invalidated"], 1);
    // Still served from memory: WeChat never tells the server.
    let stale = config(&t, PAGE).await;
    assert_eq!(
        verdict(&t.simulator, PAGE, &stale).await,
        "config:invalid signature"
    );
    assert_eq!(t.simulator.counter(&issued()).await, 1);

    let failed = json!({
        "timestamp": stale["timestamp"], "nonceStr": stale["nonceStr"], "signature": stale["signature"],
    });
    // A ticket younger than the report floor is kept: a page whose URL is not the one it
    // asked for fails on every load, and must not spend a getticket each time.
    let early = config_at(
        &t,
        &t.base,
        "oa",
        json!({ "url": PAGE, "failed_config": failed }),
    )
    .await;
    assert_eq!(early.0, StatusCode::OK);
    assert_eq!(
        verdict(&t.simulator, PAGE, &early.1).await,
        "config:invalid signature"
    );
    assert_eq!(t.simulator.counter(&issued()).await, 1);

    // Past the floor the page reports again; ten pages at once cause one getticket.
    t.advance(wxlink::ticket::REPORT_FLOOR_SECS + 1);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (api, base, failed) = (t.api.clone(), t.base.clone(), failed.clone());
        set.spawn(async move {
            let r = api
                .post(format!("{base}/api/v1/apps/oa/js-sdk-config"))
                .bearer_auth(API_KEY)
                .json(&json!({ "url": PAGE, "failed_config": failed }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()
        });
    }
    while let Some(c) = set.join_next().await {
        assert_eq!(verdict(&t.simulator, PAGE, &c.unwrap()).await, "config:ok");
    }
    assert_eq!(t.simulator.counter(&issued()).await, 2, "one replacement");

    // A stale report (made with the old ticket) replaces nothing.
    let again = config_at(
        &t,
        &t.base,
        "oa",
        json!({ "url": PAGE, "failed_config": failed }),
    )
    .await;
    assert_eq!(again.0, StatusCode::OK);
    assert_eq!(verdict(&t.simulator, PAGE, &again.1).await, "config:ok");
    // Nor does a signature that was never ours.
    let forged = json!({ "timestamp": 1, "nonceStr": "x", "signature": "0".repeat(40) });
    let r = config_at(
        &t,
        &t.base,
        "oa",
        json!({ "url": PAGE, "failed_config": forged }),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK);
    assert_eq!(t.simulator.counter(&issued()).await, 2);
}

#[tokio::test]
async fn a_raw_ticket_reported_as_failed_is_replaced_only_if_current() {
    let t = TestApp::spawn().await;
    let first = t.api_json("/api/v1/apps/oa/js-sdk-tickets/jsapi").await;
    assert!(first["ticket"].is_string(), "{first}");
    assert!(first["expires_at"].as_i64().unwrap() > t.clock.now() + 7000);
    let card = t.api_json("/api/v1/apps/oa/js-sdk-tickets/wx_card").await;
    assert_eq!(card["type"], "wx_card");
    assert_ne!(card["ticket"], first["ticket"]);
    let report = async |ticket: &Value| -> Value {
        let r = t
            .api_post(
                "/api/v1/apps/oa/js-sdk-tickets/jsapi/invalidate",
                json!({ "ticket": ticket }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    };
    let kept = report(&first["ticket"]).await;
    assert_eq!(
        kept["ticket"], first["ticket"],
        "younger than the report floor: kept"
    );
    t.advance(wxlink::ticket::REPORT_FLOOR_SECS + 1);
    let second = report(&first["ticket"]).await;
    assert_ne!(second["ticket"], first["ticket"]);
    let third = report(&first["ticket"]).await;
    assert_eq!(
        third["ticket"], second["ticket"],
        "a stale report changes nothing"
    );
    assert_eq!(t.simulator.counter(&issued()).await, 2);
    let r = t.api_get("/api/v1/apps/oa/js-sdk-tickets/card").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_ticket_type"
    );
}

#[tokio::test]
async fn a_token_refused_at_getticket_is_replaced_and_the_ticket_fetched_with_the_new_one() {
    let t = TestApp::spawn().await;
    let old = t.api_json("/api/v1/apps/oa/access-token").await["access_token"].clone();
    // Someone outside wxlink forces a refresh: our cached token dies at WeChat.
    let r: Value = t
        .api
        .post(t.simulator.url("/cgi-bin/stable_token"))
        .json(&json!({"grant_type": "client_credential", "appid": OA_APPID, "secret": "oa-secret", "force_refresh": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outsider = r["access_token"].clone();
    assert!(outsider.is_string());
    let c = config(&t, PAGE).await;
    assert_eq!(verdict(&t.simulator, PAGE, &c).await, "config:ok");
    assert_eq!(
        t.simulator.counter("token_rejected_invalid").await,
        1,
        "getticket refused the old token once (40001), then took the new one"
    );
    assert_eq!(t.simulator.counter(&issued()).await, 1);
    let now = t.api_json("/api/v1/apps/oa/access-token").await["access_token"].clone();
    assert_ne!(now, old);
    assert_eq!(
        now, outsider,
        "WeChat's current stable token, without a force_refresh of ours"
    );
    assert_eq!(
        t.simulator
            .counter(&format!("stable_token_forced:{OA_APPID}"))
            .await,
        1,
        "only the outsider's"
    );
}

#[tokio::test]
async fn the_ticket_is_renewed_before_expiry_and_sealed_at_rest() {
    let t = TestApp::spawn().await;
    let first = t.api_json("/api/v1/apps/oa/js-sdk-tickets/jsapi").await;
    let ticket = first["ticket"].as_str().unwrap().to_owned();
    let dump = dump_database(&t.ctx.config.database_url).await;
    assert!(!dump.contains(&ticket), "the ticket is sealed at rest");
    // Into the refresh window (300 s before expiry, plus up to 60 s of jitter).
    t.advance(7200 - 300 + 61);
    // The simulator counts the ticket when it issues it, a moment before the refresher
    // has it stored: wait for the count, then for the service to serve the new one (on a
    // loaded CI machine the old ticket was still served right after the count).
    let mut renewed = false;
    for _ in 0..100 {
        if t.simulator.counter(&issued()).await == 2 {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(renewed, "renewed in the background");
    let mut second = t.api_json("/api/v1/apps/oa/js-sdk-tickets/jsapi").await;
    for _ in 0..100 {
        if second["ticket"] != first["ticket"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        second = t.api_json("/api/v1/apps/oa/js-sdk-tickets/jsapi").await;
    }
    assert_ne!(second["ticket"], first["ticket"]);
    let c = config(&t, PAGE).await;
    assert_eq!(verdict(&t.simulator, PAGE, &c).await, "config:ok");
    // A wx_card ticket nobody asked for is never fetched.
    assert_eq!(
        t.simulator
            .counter(&format!("tickets_issued:{OA_APPID}:wx_card"))
            .await,
        0
    );
}

/// Two instances on one database (PostgreSQL when `postgres` is given), a burst of config
/// calls on both: one getticket, and both sign with the same ticket.
async fn two_instances_share_one_ticket(postgres: Option<String>) {
    let t = TestApp::spawn_with(Options {
        postgres,
        ..Default::default()
    })
    .await;
    t.tokens_fetched().await;
    let (other, _) = t.another_instance(t.clock.clone()).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..60 {
        let base = if i % 2 == 0 {
            t.base.clone()
        } else {
            other.clone()
        };
        let api = t.api.clone();
        set.spawn(async move {
            let r = api
                .get(format!("{base}/api/v1/apps/oa/js-sdk-tickets/jsapi"))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()["ticket"].clone()
        });
    }
    let mut seen = HashSet::new();
    while let Some(ticket) = set.join_next().await {
        seen.insert(ticket.unwrap().to_string());
    }
    assert_eq!(seen.len(), 1, "one ticket for both instances");
    assert_eq!(
        t.simulator.counter(&issued()).await,
        1,
        "one getticket for the fleet"
    );
    let (_, c) = config_at(&t, &other, "oa", json!({ "url": PAGE })).await;
    assert_eq!(verdict(&t.simulator, PAGE, &c).await, "config:ok");

    // One refresh window: one instance renews, both then serve the renewed ticket.
    t.advance(7200 - 300 + 61);
    for _ in 0..100 {
        let a = t.api_json("/api/v1/apps/oa/js-sdk-tickets/jsapi").await["ticket"].clone();
        let (_, b) = {
            let r = t
                .api
                .get(format!("{other}/api/v1/apps/oa/js-sdk-tickets/jsapi"))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap();
            (
                r.status(),
                r.json::<Value>().await.unwrap()["ticket"].clone(),
            )
        };
        if a == b && !seen.contains(&a.to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        t.simulator.counter(&issued()).await,
        2,
        "one renewal for the window"
    );
}

#[tokio::test]
async fn two_instances_on_sqlite_fetch_one_ticket() {
    two_instances_share_one_ticket(None).await;
}

#[tokio::test]
async fn two_instances_on_postgres_fetch_one_ticket() {
    let Some(server) = postgres_url() else { return };
    two_instances_share_one_ticket(Some(server)).await;
}

/// Two real processes on one database, the simulator's tickets living 8 s: one getticket
/// per window for both, every served ticket signs configs WeChat accepts.
async fn two_processes_share_one_ticket(database_url: String, dir: &std::path::Path) {
    const APPID: &str = "wxjsproc00000001";
    const KEY: &str = "js-process-test-key";
    let (sim, simulator) = crate::support::sim::standalone().await;
    let sim_base = simulator.base();
    simulator
        .add_app(json!({"appid": APPID, "secret": "s", "js_safe_domains": ["example.com"], "ticket_ttl_secs": 8}))
        .await;
    let config = dir.join("wxlink.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{database_url}\"\nstorage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n\
             [tokens]\nrefresh_margin_secs = 4\njitter_secs = 1\ncheck_interval_ms = 100\n\
             [[api_keys]]\nname = \"t\"\nkey_sha256 = \"{key}\"\n\
             [[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"{APPID}\"\nsecret = \"s\"\n\
             js_safe_domains = [\"example.com\"]\napi_base = \"{sim_base}\"\nopen_base = \"{sim_base}\"\n",
            key = wxlink::domain::hash_token(KEY),
        ),
    )
    .unwrap();
    let starting = [process::spawn(&config).await, process::spawn(&config).await];
    let mut services = Vec::new();
    for s in starting {
        services.push(s.ready().await);
    }
    let bases: Vec<String> = services.iter().map(|s| s.base.clone()).collect();
    let client = reqwest::Client::new();
    let get = async |base: &str| -> Option<String> {
        let r = client
            .get(format!("{base}/api/v1/apps/oa/js-sdk-tickets/jsapi"))
            .bearer_auth(KEY)
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        v["ticket"].as_str().map(str::to_owned)
    };
    let sign = async |base: &str| -> Value {
        client
            .post(format!("{base}/api/v1/apps/oa/js-sdk-config"))
            .bearer_auth(KEY)
            .json(&json!({ "url": PAGE }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let issued = format!("tickets_issued:{APPID}:jsapi");
    // Both asked at once, first thing.
    let (a, b) = tokio::join!(get(&bases[0]), get(&bases[1]));
    assert_eq!(a, b, "both processes serve the one ticket");
    assert!(a.is_some());
    assert_eq!(sim.stats().get(&issued).copied(), Some(1));

    let start = Instant::now();
    let mut seen = HashSet::new();
    while start.elapsed() < Duration::from_secs(12) {
        for base in &bases {
            if let Some(t) = get(base).await {
                seen.insert(t);
            }
            let c = sign(base).await;
            assert_eq!(verdict(&simulator, PAGE, &c).await, "config:ok", "{c}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in &mut services {
        assert!(
            s.child.try_wait().unwrap().is_none(),
            "both processes still run"
        );
    }
    let fetches = sim.stats().get(&issued).copied().unwrap_or(0);
    // Tickets live 8 s and are renewed 3 to 5 s before expiry: one at start, then one per
    // window (about 3 in 12 s). Two uncoordinated processes would fetch twice as often.
    assert!((2..=5).contains(&fetches), "getticket calls: {fetches}");
    assert_eq!(
        seen.len() as u64,
        fetches,
        "every fetched ticket was served: none wasted"
    );
}

#[tokio::test]
async fn two_processes_on_one_sqlite_file_fetch_one_ticket_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("shared.db").display());
    two_processes_share_one_ticket(db, dir.path()).await;
}

#[tokio::test]
async fn two_processes_on_postgres_fetch_one_ticket_per_window() {
    let Some(server) = postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_postgres_database(&server).await;
    two_processes_share_one_ticket(db, dir.path()).await;
}
