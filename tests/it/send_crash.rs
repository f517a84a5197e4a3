//! The outbox survives a crash: a real wxlink process accepts a batch of messages on all
//! three channels and is killed with SIGKILL while it is sending; a new process on the same
//! database finishes the work. Every accepted message reaches WeChat (the simulator), and
//! no template message reaches it twice (client_msg_id).

use crate::support::process::Service;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const OA: &str = "wxcrashoa0000001";
const MP: &str = "wxcrashmp0000002";
const KEY: &str = "crash-test-key";
const TEMPLATE_MESSAGES: usize = 120;
const SUBSCRIBE_MESSAGES: usize = 30;
const FORM_MESSAGES: usize = 30;

async fn post(c: &Client, url: String, body: Value) -> Value {
    let r = c
        .post(url)
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_killed_instance_loses_nothing_and_repeats_no_template_message() {
    let (sim, simulator) = crate::support::sim::standalone().await;
    let sim_base = simulator.base();
    let c = Client::new();
    for (appid, kind) in [(OA, "official_account"), (MP, "mini_program")] {
        simulator
            .add_app(json!({"appid": appid, "secret": "s", "kind": kind}))
            .await;
    }
    let tpl = async |appid: &str, kind: &str, content: &str| {
        simulator.titled_template(appid, kind, "t", content).await
    };
    let oa_tpl = tpl(OA, "template", "{{keyword1.DATA}}").await;
    let sub_tpl = tpl(MP, "subscribe", "{{thing1.DATA}}").await;
    let form_tpl = tpl(MP, "form", "{{keyword1.DATA}}").await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxlink.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{db}\"\n\
             storage_key = \"{storage}\"\n\
             [outbox]\nlease_secs = 5\npoll_interval_ms = 20\nbackoff_base_ms = 50\nrate_per_sec = 30\n\
             [[api_keys]]\nname = \"t\"\nkey_sha256 = \"{key}\"\n\
             [[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"{OA}\"\nsecret = \"s\"\n\
             api_base = \"{sim_base}\"\nopen_base = \"{sim_base}\"\n\
             [[apps]]\nid = \"mp\"\nkind = \"mini_program\"\nappid = \"{MP}\"\nsecret = \"s\"\n\
             api_base = \"{sim_base}\"\nopen_base = \"{sim_base}\"\n",
            db = dir.path().join("crash.db").display(),
            storage = "a".repeat(64),
            key = wxlink::domain::hash_token(KEY),
        ),
    )
    .unwrap();
    let mut first = Service::start(&config).await;
    let base = first.base.clone();

    // Ten people, each known to both apps, with acceptances and prepay ids to spare.
    let mut people = Vec::new();
    for u in 0..10 {
        let p = simulator.new_person(json!({})).await;
        let person = p["id"].as_str().unwrap().to_owned();
        for (app, appid) in [("oa", OA), ("mp", MP)] {
            let openid = p["openids"][appid].as_str().unwrap();
            let r = c
                .put(format!(
                    "{base}/api/v1/users/u{u}/identities/{app}/{openid}"
                ))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
        simulator
            .post(
                "/_sim/subscriptions",
                json!({"appid": MP, "person": person, "template_id": sub_tpl, "count": 20}),
            )
            .await;
        post(
            &c,
            format!("{base}/api/v1/users/u{u}/subscriptions"),
            json!({"template_id": sub_tpl, "count": 3}),
        )
        .await;
        for _ in 0..4 {
            let f = simulator
                .post(
                    "/_sim/form-ids",
                    json!({"appid": MP, "person": person, "kind": "prepay"}),
                )
                .await;
            post(
                &c,
                format!("{base}/api/v1/users/u{u}/form-ids"),
                json!({"prepay_id": f["form_id"]}),
            )
            .await;
        }
        people.push(person);
    }

    // WeChat answers slowly, so the kill lands while sends are in flight; the pacing (30 a
    // second) keeps most of the 180 unsent while they are accepted one by one: at 100 a
    // second a loaded CI machine accepted them slower than they went out, and the kill came
    // after the last send.
    simulator.faults(json!({"latency_ms": 150})).await;
    let mut accepted: HashMap<String, (&str, String)> = HashMap::new();
    let sends = (0..TEMPLATE_MESSAGES)
        .map(|i| ("template", i))
        .chain((0..SUBSCRIBE_MESSAGES).map(|i| ("subscribe", i)))
        .chain((0..FORM_MESSAGES).map(|i| ("form", i)));
    for (channel, i) in sends {
        let marker = format!("{channel}{i}");
        let body = match channel {
            "template" => {
                json!({"channel": "template", "app": "oa", "template_id": oa_tpl, "data": {"keyword1": marker}})
            }
            "subscribe" => {
                json!({"channel": "subscribe", "template_id": sub_tpl, "data": {"thing1": marker}})
            }
            _ => json!({"channel": "form", "template_id": form_tpl, "data": {"keyword1": marker}}),
        };
        let r = c
            .post(format!("{base}/api/v1/users/u{}/messages", i % 10))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        accepted.insert(id, (channel, marker));
    }

    // Kill it mid-way: some messages received by WeChat, most not yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.received_messages().len() < 20 {
        assert!(Instant::now() < deadline, "nothing was sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().await;
    let at_kill = sim.received_messages().len();
    assert!(
        at_kill < accepted.len(),
        "killed too late to prove anything"
    );

    simulator.faults(json!({})).await;
    let second = Service::start(&config).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending: Vec<String> = accepted.keys().cloned().collect();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} messages never settled",
            pending.len()
        );
        let mut still = Vec::new();
        for id in pending {
            let m: Value = c
                .get(format!("{}/api/v1/messages/{id}", second.base))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if !matches!(m["status"].as_str(), Some("sent" | "failed" | "rejected")) {
                still.push(id);
            } else if accepted[&id].0 == "template" {
                assert_eq!(m["status"], "sent", "{m}");
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let received = sim.received_messages();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &received {
        let marker = m.data.values().next().unwrap().value.clone();
        *seen.entry(marker).or_default() += 1;
    }
    for (id, (channel, marker)) in &accepted {
        let n = seen.get(marker).copied().unwrap_or(0);
        assert!(n >= 1, "message {id} ({marker}) never reached WeChat");
        if *channel == "template" {
            assert_eq!(n, 1, "template message {marker} reached WeChat {n} times");
        }
    }
    let stats = sim.stats();
    eprintln!(
        "received {} at the kill, {} in all; {} template repeats dropped by client_msg_id",
        at_kill,
        received.len(),
        stats
            .get("template_duplicates_dropped")
            .copied()
            .unwrap_or(0)
    );
    let template_ids: Vec<_> = received
        .iter()
        .filter(|m| m.channel == "template")
        .map(|m| m.client_msg_id.clone().unwrap())
        .collect();
    assert_eq!(template_ids.len(), TEMPLATE_MESSAGES);
    for id in template_ids {
        assert!(
            accepted.contains_key(&id),
            "client_msg_id is the message id"
        );
    }
    let _ = people;
}
