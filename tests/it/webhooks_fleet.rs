//! Webhooks across processes and instances: a SIGKILLed instance loses no event (a new
//! process on the same database delivers the rest), and three instances on PostgreSQL
//! deliver each event exactly once to a receiver that counts.

use crate::support::process::Service;
use crate::support::webhooks::{DELIVERY_TOML, Received, Receiver, SECRET, webhook_toml};
use crate::support::*;
use reqwest::{Client, StatusCode};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const OA: &str = "wxhookoa00000001";
const KEY: &str = "webhook-crash-key";
const USERS: usize = 40;

fn distinct(got: &[Received]) -> BTreeSet<String> {
    got.iter().map(|r| r.id.clone()).collect()
}

#[tokio::test]
async fn a_killed_instance_loses_no_event_and_the_next_one_delivers_the_rest() {
    let (_sim, simulator) = crate::support::sim::standalone().await;
    let sim_base = simulator.base();
    simulator
        .add_app(json!({"appid": OA, "secret": "s", "kind": "official_account"}))
        .await;
    // A slow receiver, so the kill lands with most events still waiting.
    let rx = Receiver::start_slow(&[SECRET], Duration::from_millis(40)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxlink.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{db}\"\nstorage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n\
             [[api_keys]]\nname = \"t\"\nkey_sha256 = \"{key}\"\n\
             [[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"{OA}\"\nsecret = \"s\"\n\
             api_base = \"{sim_base}\"\nopen_base = \"{sim_base}\"\n\
             {hooks}\n{DELIVERY_TOML}",
            db = dir.path().join("hooks.db").display(),
            key = wxlink::domain::hash_token(KEY),
            hooks = webhook_toml("crm", &rx.url, &["identity.*"], &[SECRET]),
        ),
    )
    .unwrap();
    let mut first = Service::start(&config).await;
    let c = Client::new();
    for u in 0..USERS {
        let p = simulator.new_person(json!({})).await;
        let openid = p["openids"][OA].as_str().unwrap();
        let r = c
            .put(format!(
                "{}/api/v1/users/u{u}/identities/oa/{openid}",
                first.base
            ))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    rx.at_least(3).await;
    first.kill().await;
    let before = distinct(&rx.received()).len();
    assert!(
        before < USERS,
        "the kill came too late to prove anything ({before} delivered)"
    );

    // The next process takes the endpoint over once the dead one's lease runs out.
    let _second = Service::start(&config).await;
    let got = rx
        .until("every event", |got| {
            (distinct(got).len() >= USERS).then(|| got.to_vec())
        })
        .await;
    assert_eq!(distinct(&got).len(), USERS, "no event lost, none invented");
    let users: BTreeSet<&str> = got
        .iter()
        .filter_map(|r| r.body["data"]["user_id"].as_str())
        .collect();
    assert_eq!(users.len(), USERS, "each event names its user");
    assert!(got.iter().all(|r| r.verified_by == [0]));
}

#[tokio::test]
async fn three_instances_on_postgres_deliver_each_event_once() {
    let Some(server) = postgres_url() else { return };
    let rx = Receiver::start(&[SECRET]).await;
    let t = TestApp::spawn_with(Options {
        postgres: Some(server),
        extra_toml: format!(
            "{}\n{DELIVERY_TOML}",
            webhook_toml("crm", &rx.url, &["identity.linked"], &[SECRET])
        ),
        ..Options::default()
    })
    .await;
    let mut bases = vec![t.base.clone()];
    for _ in 0..2 {
        bases.push(t.another_instance(t.clock.clone()).await.0);
    }
    let c = Client::new();
    let n = 60;
    for u in 0..n {
        let p = t.simulator.new_person(json!({})).await;
        let openid = p["openids"][OA_APPID].as_str().unwrap();
        let base = &bases[u % 3];
        let r = c
            .put(format!("{base}/api/v1/users/u{u}/identities/oa/{openid}"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    rx.until("every event", |got| {
        (distinct(got).len() >= n).then_some(())
    })
    .await;
    // Give a duplicate time to show up: each instance polls every 20 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.received();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *counts.entry(r.id.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), n);
    assert!(
        counts.values().all(|&c| c == 1),
        "each event delivered once: {counts:?}"
    );
}
