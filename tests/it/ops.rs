//! Operations: `/metrics` after real traffic, its optional bearer token, and the inbound
//! rate limits (burst, untrusted and trusted X-Forwarded-For, routes left alone).

use crate::support::push::{craft, follow_xml, post};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;

/// `/metrics` parsed: series (name plus sorted labels) to value.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn of(app: &TestApp) -> Self {
        let r = app.api.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"),
        );
        let text = r.text().await.unwrap();
        let mut series = HashMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (key, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match key.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (key, ""),
            };
            let mut labels: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
            labels.sort();
            series.insert(
                format!("{name}{{{}}}", labels.join(",")),
                value.parse().unwrap(),
            );
        }
        Scrape(series)
    }

    /// The value of a series given its labels in any order; 0 when absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        l.sort();
        self.0
            .get(&format!("{name}{{{}}}", l.join(",")))
            .copied()
            .unwrap_or(0.0)
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        l.sort();
        self.0.contains_key(&format!("{name}{{{}}}", l.join(",")))
    }
}

#[tokio::test]
async fn metrics_after_traffic_show_tokens_calls_messages_and_callbacks() {
    // The gauges and counters are the process's: no other test's may reach them.
    if !alone::in_own_process(
        module_path!(),
        "metrics_after_traffic_show_tokens_calls_messages_and_callbacks",
    )
    .await
    {
        return;
    }
    let app = TestApp::spawn_with(Options {
        extra_toml: "[metrics]\nrefresh_secs = 1\n".into(),
        ..Default::default()
    })
    .await;

    // A token handed out, a sign-in, a callback with a forged state, a failed exchange,
    // and a template message sent.
    let r = app.api_get("/api/v1/apps/oa/access-token").await;
    assert_eq!(r.status(), StatusCode::OK);
    let person = app.simulator.person("Metrics").await;
    let person_id = person["id"].as_str().unwrap();
    let browser = wechat_browser();
    let (_, outcome_linked, _) = outcome(
        app.sign_in(
            &browser,
            "/oauth/oa/authorize?scope=snsapi_base",
            person_id,
            "allow",
        )
        .await,
    )
    .await;
    assert_eq!(outcome_linked, "linked");
    let r = browser
        .get(app.url("/oauth/oa/callback?code=abc&state=forged0state0value0000000000"))
        .send()
        .await
        .unwrap();
    let (_, forged, _) = outcome(r).await;
    let callback = app
        .through_wechat(
            &browser,
            &app.url("/oauth/oa/authorize?scope=snsapi_base"),
            person_id,
            "allow",
        )
        .await;
    app.simulator
        .post(
            "/_sim/faults",
            json!({"mode": "errcode", "errcode": 40164, "count": 1}),
        )
        .await;
    let (_, refused, _) = outcome(browser.get(callback).send().await.unwrap()).await;
    assert_eq!(refused, "wechat_error");

    let template = app
        .simulator
        .template(OA_APPID, "template", "订单号：{{keyword1.DATA}}")
        .await;
    app.person_for("m1", "oa", OA_APPID).await;
    let id = app
        .send_ok(
            "m1",
            json!({"channel": "template", "app": "oa", "template_id": template,
                   "data": {"keyword1": "339208499"}}),
        )
        .await;
    app.sent(&id).await;

    // The sampler runs every second.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let m = Scrape::of(&app).await;

    assert_eq!(
        m.get(
            "wxlink_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(
        m.get(
            "wxlink_token_fetches_total",
            &[
                ("app", "oa"),
                ("mode", "stable"),
                ("force", "false"),
                ("result", "ok")
            ]
        ) >= 1.0
    );
    assert!(
        m.get(
            "wxlink_token_fetches_total",
            &[
                ("app", "cl"),
                ("mode", "classic"),
                ("force", "false"),
                ("result", "ok")
            ]
        ) >= 1.0
    );
    assert!(
        m.get(
            "wxlink_token_refreshes_total",
            &[("app", "oa"), ("mode", "stable"), ("outcome", "fetched")]
        ) >= 1.0
    );
    let age = m.get("wxlink_token_age_seconds", &[("app", "oa")]);
    assert!(
        m.has("wxlink_token_age_seconds", &[("app", "oa")]) && (0.0..60.0).contains(&age),
        "token age {age}"
    );
    let left = m.get("wxlink_token_expires_in_seconds", &[("app", "oa")]);
    assert!((7000.0..=7200.0).contains(&left), "expires in {left}");

    let ok_token_calls = m.get(
        "wxlink_wechat_requests_total",
        &[("endpoint", "cgi-bin/stable_token"), ("errcode", "0")],
    );
    assert!(ok_token_calls >= 1.0);
    assert!(
        m.get(
            "wxlink_wechat_requests_total",
            &[("endpoint", "sns/oauth2/access_token"), ("errcode", "0")]
        ) >= 1.0
    );
    assert!(
        m.get(
            "wxlink_wechat_requests_total",
            &[
                ("endpoint", "sns/oauth2/access_token"),
                ("errcode", "40164")
            ]
        ) >= 1.0
    );
    assert!(
        m.get(
            "wxlink_wechat_requests_total",
            &[
                ("endpoint", "cgi-bin/message/template/send"),
                ("errcode", "0")
            ]
        ) >= 1.0,
        "template sends are counted under their endpoint"
    );
    // The latency histogram: every call falls in the +Inf bucket and in _count.
    let count = m.get(
        "wxlink_wechat_request_duration_seconds_count",
        &[("endpoint", "cgi-bin/stable_token")],
    );
    assert!(count >= ok_token_calls);
    assert_eq!(
        m.get(
            "wxlink_wechat_request_duration_seconds_bucket",
            &[("endpoint", "cgi-bin/stable_token"), ("le", "+Inf")]
        ),
        count
    );
    assert!(m.has(
        "wxlink_wechat_request_duration_seconds_bucket",
        &[("endpoint", "cgi-bin/stable_token"), ("le", "0.1")]
    ));

    assert!(
        m.get(
            "wxlink_messages_total",
            &[("channel", "template"), ("state", "queued")]
        ) >= 1.0
    );
    assert!(
        m.get(
            "wxlink_messages_total",
            &[("channel", "template"), ("state", "sent")]
        ) >= 1.0
    );
    assert!(m.has("wxlink_outbox_depth", &[]));
    assert!(m.get("wxlink_outbox_oldest_age_seconds", &[]) >= 0.0);

    assert!(
        m.get(
            "wxlink_oauth_callbacks_total",
            &[("app", "oa"), ("outcome", "linked")]
        ) >= 1.0
    );
    assert!(
        m.get(
            "wxlink_oauth_callbacks_total",
            &[("app", "oa"), ("outcome", forged.as_str())]
        ) >= 1.0,
        "{forged}"
    );
    assert!(
        m.get(
            "wxlink_oauth_callbacks_total",
            &[("app", "oa"), ("outcome", "wechat_error")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn the_push_helper_counts_by_event_and_outcome_without_minting_series() {
    // The gauges and counters are the process's: no other test's may reach them.
    if !alone::in_own_process(
        module_path!(),
        "the_push_helper_counts_by_event_and_outcome_without_minting_series",
    )
    .await
    {
        return;
    }
    use wxlink::metrics::{PushOutcome, push};
    let app = TestApp::spawn().await;
    push("TEMPLATESENDJOBFINISH", PushOutcome::Accepted);
    push("TEMPLATESENDJOBFINISH", PushOutcome::Duplicate);
    push("unknown", PushOutcome::Refused("bad_signature"));
    push(
        "<script>alert(1)</script>",
        PushOutcome::Refused("malformed"),
    );
    let m = Scrape::of(&app).await;
    let series = |event, outcome, reason| {
        m.get(
            "wxlink_pushes_total",
            &[("event", event), ("outcome", outcome), ("reason", reason)],
        )
    };
    assert!(series("TEMPLATESENDJOBFINISH", "accepted", "") >= 1.0);
    assert!(series("TEMPLATESENDJOBFINISH", "duplicate", "") >= 1.0);
    assert!(series("unknown", "refused", "bad_signature") >= 1.0);
    assert!(series("other", "refused", "malformed") >= 1.0);
}

/// The series was documented as the push endpoint's, but nothing on the push path counted
/// it: a scrape after real pushes showed none.
#[tokio::test]
async fn the_push_endpoint_counts_accepted_duplicate_and_refused_pushes() {
    if !alone::in_own_process(
        module_path!(),
        "the_push_endpoint_counts_accepted_duplicate_and_refused_pushes",
    )
    .await
    {
        return;
    }
    let t = TestApp::spawn().await;
    let now = t.clock.now();
    let xml = follow_xml("oCounted", now, "subscribe");
    let key = Some((OA_AES_KEY, OA_APPID));
    for (nonce, token, status) in [
        ("200", OA_PUSH_TOKEN, StatusCode::OK),
        ("201", OA_PUSH_TOKEN, StatusCode::OK),
        ("202", "notTheToken", StatusCode::UNAUTHORIZED),
    ] {
        let (got, body) = post(&t, "oa", &craft(token, now, nonce, &xml, key)).await;
        assert_eq!(got, status, "{body}");
    }
    let m = Scrape::of(&t).await;
    let series = |event, outcome, reason| {
        m.get(
            "wxlink_pushes_total",
            &[("event", event), ("outcome", outcome), ("reason", reason)],
        )
    };
    assert_eq!(series("subscribe", "accepted", ""), 1.0);
    assert_eq!(series("subscribe", "duplicate", ""), 1.0);
    assert_eq!(series("unknown", "refused", "bad_signature"), 1.0);
}

#[tokio::test]
async fn metrics_can_require_a_bearer_token() {
    let app = TestApp::spawn_with(Options {
        extra_toml: "[metrics]\ntoken = \"scrape-me-0123\"\n".into(),
        ..Default::default()
    })
    .await;
    let r = app.api.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = app
        .api
        .get(app.url("/metrics"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The API key is not the metrics token.
    let r = app
        .api
        .get(app.url("/metrics"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .api
        .get(app.url("/metrics"))
        .bearer_auth("scrape-me-0123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("wxlink_build_info"));
}

const TIGHT: &str = "[rate_limits]\nbrowser = { per_second = 1, burst = 3 }\npush = { per_second = 1, burst = 2 }\n";

/// Statuses of `n` quick GETs of `path`, each with the given X-Forwarded-For (if any).
async fn burst(
    app: &TestApp,
    path: &str,
    n: usize,
    xff: impl Fn(usize) -> Option<String>,
) -> Vec<reqwest::Response> {
    let client = desktop_browser();
    let mut out = Vec::new();
    for i in 0..n {
        let mut req = client.get(app.url(path));
        if let Some(v) = xff(i) {
            req = req.header("x-forwarded-for", v);
        }
        out.push(req.send().await.unwrap());
    }
    out
}

fn statuses(rs: &[reqwest::Response]) -> Vec<u16> {
    rs.iter().map(|r| r.status().as_u16()).collect()
}

#[tokio::test]
async fn a_burst_over_the_limit_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(Options {
        extra_toml: TIGHT.into(),
        ..Default::default()
    })
    .await;
    let rs = burst(&app, "/oauth/oa/authorize?scope=snsapi_base", 6, |_| None).await;
    let s = statuses(&rs);
    assert_eq!(&s[..3], &[200, 200, 200], "{s:?}");
    assert!(s[3..].contains(&429), "{s:?}");
    let limited = rs.into_iter().find(|r| r.status() == 429).unwrap();
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    let (_, out, _) = outcome(limited).await;
    assert_eq!(out, "rate_limited", "browsers get a page");

    // The push route (its handler lands separately; the limit is by path prefix).
    let rs = burst(&app, "/wechat/oa/push", 5, |_| None).await;
    assert!(statuses(&rs).contains(&429), "{:?}", statuses(&rs));
    let limited = rs.into_iter().find(|r| r.status() == 429).unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    assert!(
        limited.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );

    // The backend API, health and metrics are never limited.
    for _ in 0..10 {
        let r = app.api_get("/api/v1/users/nobody").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    for path in ["/livez", "/healthz", "/metrics"] {
        let s = statuses(&burst(&app, path, 8, |_| None).await);
        assert!(s.iter().all(|&c| c == 200), "{path}: {s:?}");
    }
    let m = Scrape::of(&app).await;
    assert!(m.get("wxlink_rate_limited_total", &[("group", "browser")]) >= 1.0);
    assert!(m.get("wxlink_rate_limited_total", &[("group", "push")]) >= 1.0);
}

#[tokio::test]
async fn an_untrusted_peers_forwarded_for_is_ignored() {
    let app = TestApp::spawn_with(Options {
        extra_toml: TIGHT.into(),
        ..Default::default()
    })
    .await;
    // Every request claims another client; the peer (127.0.0.1) is not a trusted proxy.
    let s = statuses(
        &burst(&app, "/oauth/oa/authorize", 6, |i| {
            Some(format!("198.51.100.{i}"))
        })
        .await,
    );
    assert!(s.contains(&429), "{s:?}");
}

#[tokio::test]
async fn a_trusted_proxys_forwarded_for_names_the_client() {
    let app = TestApp::spawn_with(Options {
        extra_toml: TIGHT.replace(
            "[rate_limits]\n",
            "[rate_limits]\ntrusted_proxies = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n",
        ),
        ..Default::default()
    })
    .await;
    // Six different clients behind the proxy: each has its own allowance.
    let s = statuses(
        &burst(&app, "/oauth/oa/authorize", 6, |i| {
            Some(format!("198.51.100.{i}"))
        })
        .await,
    );
    assert!(s.iter().all(|&c| c == 200), "{s:?}");
    // One client, whatever it puts on the left: the right-most untrusted address counts,
    // and our own proxies (10.x) after it are skipped.
    let s = statuses(
        &burst(&app, "/oauth/oa/authorize", 6, |i| {
            Some(format!("203.0.113.{i}, 198.51.100.200, 10.0.0.7"))
        })
        .await,
    );
    assert_eq!(&s[..3], &[200, 200, 200], "{s:?}");
    assert!(s[3..].contains(&429), "{s:?}");
}

#[tokio::test]
async fn release_claims_gives_this_instances_sends_back_to_the_queue() {
    let app = TestApp::spawn().await;
    let template = app
        .simulator
        .template(OA_APPID, "template", "订单号：{{keyword1.DATA}}")
        .await;
    app.person_for("r1", "oa", OA_APPID).await;
    let body = |n: u32| {
        json!({"channel": "template", "app": "oa", "template_id": template,
               "data": {"keyword1": format!("order {n}")}})
    };
    // The first send fetches the template list and the token; then WeChat gets slow.
    let first = app.send_ok("r1", body(0)).await;
    app.sent(&first).await;
    app.simulator
        .post("/_sim/faults", json!({"mode": "none", "latency_ms": 2000}))
        .await;
    let id = app.send_ok("r1", body(1)).await;
    app.message_until(&id, &["sending"]).await;

    assert_eq!(app.ctx.outbox.release_claims().await.unwrap(), 1);
    let m = app.message(&id).await;
    let history = m["history"].as_array().unwrap();
    assert!(
        history.iter().any(
            |h| h["status"] == "queued" && h["detail"] == "given back to the queue at shutdown"
        ),
        "{m:#}"
    );
    app.simulator
        .post("/_sim/faults", json!({"mode": "none"}))
        .await;
    let m = app.sent(&id).await;
    assert!(m["attempts"].as_i64().unwrap() <= 2, "{m:#}");
}
