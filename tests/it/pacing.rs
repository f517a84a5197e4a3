//! Pacing across the fleet: `outbox.rate_per_sec` is an app's rate for all instances
//! together. Three processes on one PostgreSQL database send a burst of messages; the
//! simulator's clock says how many reached WeChat in any one second. Before, each instance
//! paced itself alone and three sent three times the rate.

use crate::support::postgres_url;
use crate::support::process::Service;
use reqwest::{Client, StatusCode};
use serde_json::json;
use std::time::Duration;

const APPID: &str = "wxpacing00000001";
const KEY: &str = "pacing-test-key";
const RATE: usize = 20;

/// The most messages the simulator received within any `window_ms`.
fn busiest(received_ms: &mut [i64], window_ms: i64) -> usize {
    received_ms.sort_unstable();
    let mut most = 0;
    let mut start = 0;
    for end in 0..received_ms.len() {
        while received_ms[end] - received_ms[start] >= window_ms {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

async fn send_burst(c: &Client, bases: &[String], template: &str, users: usize, n: usize) {
    let sends = (0..n).map(|i| {
        let url = format!(
            "{}/api/v1/users/u{}/messages",
            bases[i % bases.len()],
            i % users
        );
        let body = json!({"channel": "template", "app": "oa", "template_id": template,
                          "data": {"keyword1": format!("order {i}")}});
        let c = c.clone();
        async move {
            let r = c
                .post(url)
                .bearer_auth(KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::ACCEPTED,
                "{}",
                r.text().await.unwrap()
            );
        }
    });
    futures_util::future::join_all(sends).await;
}

async fn received_ms(sim: &crate::support::sim::SimClient, at_least: usize) -> Vec<i64> {
    for _ in 0..600 {
        let got = sim.messages("?channel=template").await;
        if got.len() >= at_least {
            return got
                .iter()
                .map(|m| m["received_ms"].as_i64().unwrap())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("WeChat never received {at_least} messages");
}

#[tokio::test]
async fn three_instances_together_keep_to_the_apps_rate() {
    let Some(server) = postgres_url() else { return };
    let (_sim, simulator) = crate::support::sim::standalone().await;
    let sim_base = simulator.base();
    simulator
        .add_app(json!({"appid": APPID, "secret": "s", "kind": "official_account"}))
        .await;
    let template = simulator
        .titled_template(APPID, "template", "t", "{{keyword1.DATA}}")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let db = crate::support::fresh_postgres_database(&server).await;
    let config = dir.path().join("wxlink.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{db}\"\nstorage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n\
             [outbox]\nrate_per_sec = {RATE}\nconcurrency = 4\nlease_secs = 10\npoll_interval_ms = 50\n\
             [[api_keys]]\nname = \"t\"\nkey_sha256 = \"{key}\"\n\
             [[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"{APPID}\"\nsecret = \"s\"\n\
             token_mode = \"classic\"\napi_base = \"{sim_base}\"\nopen_base = \"{sim_base}\"\n",
            key = wxlink::domain::hash_token(KEY),
        ),
    )
    .unwrap();
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(Service::start(&config).await);
    }
    let bases: Vec<String> = fleet.iter().map(|s| s.base.clone()).collect();
    let c = Client::new();
    let users = 6;
    for u in 0..users {
        let p = simulator.new_person(json!({})).await;
        let openid = p["openids"][APPID].as_str().unwrap();
        let r = c
            .put(format!(
                "{}/api/v1/users/u{u}/identities/oa/{openid}",
                bases[0]
            ))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Every instance has heard of the other two.
    tokio::time::sleep(wxlink::outbox::PACING_HEARTBEAT * 2).await;

    let n = 4 * RATE;
    send_burst(&c, &bases, &template, users, n).await;
    let mut at = received_ms(&simulator, n).await;
    let most = busiest(&mut at, 1000);
    let span = at[n - 1] - at[0];
    // Each instance's share is a third of the rate, with its tenth of a second at once.
    assert!(
        most <= RATE + 3,
        "{most} messages reached WeChat within one second, the app's rate is {RATE} (all {n} took {span} ms)"
    );
    assert!(
        most >= RATE / 2,
        "the fleet sent well under its rate: {most} in its busiest second"
    );

    // Two instances die: once their heartbeats are stale the last one takes the whole rate.
    fleet[1].kill().await;
    fleet[2].kill().await;
    tokio::time::sleep(Duration::from_millis(3500) + wxlink::outbox::PACING_HEARTBEAT * 2).await;
    send_burst(&c, &bases[..1], &template, users, 2 * RATE).await;
    let all = received_ms(&simulator, n + 2 * RATE).await;
    let mut later: Vec<i64> = all.into_iter().filter(|t| *t > at[n - 1]).collect();
    let most = busiest(&mut later, 1000);
    assert!(
        most > RATE / 3 + 3,
        "alone, the instance still sends at a third of the rate: {most} in its busiest second"
    );
    assert!(most <= RATE + 3, "{most} in one second alone");
}
