//! Three wxlink processes sharing one PostgreSQL database and one simulator, with the test
//! playing the load balancer: authorizations that start on one instance and end on
//! another, sends spread over all three while one of them is SIGKILLed, WeChat's delivery
//! reports pushed to the fleet, one event delivered to two instances, and the token: one
//! upstream fetch per refresh window for the whole fleet, every accepted message sent to
//! WeChat exactly once (as the simulator saw it) and delivered, no event lost or doubled.
//! Real time: tokens live 8 seconds.

use crate::support::process::Service;
use crate::support::{fresh_postgres_database, location, postgres_url, wechat_browser};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const APPID: &str = "wxfleet000000001";
const KEY: &str = "fleet-test-key";
const PUSH_TOKEN: &str = "fleetpushtoken";
const USERS: usize = 6;
const MESSAGES_PER_ROUND: usize = 60;

/// The same URL on another instance: what a load balancer does with a request.
fn on(url: &str, base: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let b = url::Url::parse(base).unwrap();
    u.set_port(b.port()).unwrap();
    u.to_string()
}

#[tokio::test]
async fn three_instances_share_one_postgres_database() {
    let Some(server) = postgres_url() else { return };
    let started = Instant::now();
    let (sim, simulator) = crate::support::sim::standalone().await;
    let sim_base = simulator.base();
    let c = Client::new();
    // The instances' public address is the first one's (the balancer's, in production),
    // known once it listens: until then WeChat knows the app without its authorization
    // domain and push URL, and the first instance takes its address from its listener.
    let mut app = json!({"appid": APPID, "secret": "s", "kind": "official_account",
                         "token_ttl_secs": 8, "push_token": PUSH_TOKEN, "push_mode": "plain"});
    simulator.add_app(app.clone()).await;
    let template = simulator
        .titled_template(APPID, "template", "t", "{{keyword1.DATA}}")
        .await;

    let dir = tempfile::tempdir().unwrap();
    let db = fresh_postgres_database(&server).await;
    let config = |name: &str, public: Option<&str>| {
        let path = dir.path().join(name);
        let public_url = public.map_or(String::new(), |p| format!("public_url = \"{p}\"\n"));
        std::fs::write(
            &path,
            format!(
                "database_url = \"{db}\"\nstorage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n{public_url}\
                 [tokens]\nrefresh_margin_secs = 4\njitter_secs = 1\ncheck_interval_ms = 100\nlease_secs = 5\n\
                 [outbox]\nlease_secs = 5\npoll_interval_ms = 50\nbackoff_base_ms = 50\n\
                 [[api_keys]]\nname = \"t\"\nkey_sha256 = \"{key}\"\n\
                 [[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"{APPID}\"\nsecret = \"s\"\n\
                 push_token = \"{PUSH_TOKEN}\"\npush_mode = \"plain\"\n\
                 token_mode = \"classic\"\napi_base = \"{sim_base}\"\nopen_base = \"{sim_base}\"\n",
                key = wxlink::domain::hash_token(KEY),
            ),
        )
        .unwrap();
        path
    };
    let first = Service::start(&config("first.toml", None)).await;
    let public = first.base.clone();
    app["auth_domain"] = json!(public.trim_start_matches("http://"));
    app["push_url"] = json!(format!("{public}/wechat/oa/push"));
    simulator.add_app(app).await;
    let others = config("others.toml", Some(&public));
    let mut fleet = vec![first];
    for _ in 1..3 {
        fleet.push(Service::start(&others).await);
    }
    let bases: Vec<String> = fleet.iter().map(|s| s.base.clone()).collect();

    // Links: the ticket is minted on one instance, opened on the next, and WeChat's
    // callback lands on the third (sessions and tickets live in the shared database).
    for u in 0..USERS {
        let person = simulator.new_person(json!({})).await;
        let r = c
            .post(format!("{}/api/v1/users/u{u}/link-tickets", bases[u % 3]))
            .bearer_auth(KEY)
            .json(&json!({"app": "oa"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let ticket = r.json::<Value>().await.unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let b = wechat_browser();
        let r = b
            .get(on(&ticket, &bases[(u + 1) % 3]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        let r = b
            .get(location(&r))
            .header("x-wxsim-person", person["id"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        let callback = on(&location(&r), &bases[(u + 2) % 3]);
        let r = b.get(callback).send().await.unwrap();
        let body = r.text().await.unwrap();
        assert!(body.contains("data-outcome=\"linked\""), "{body}");
        let user: Value = c
            .get(format!("{}/api/v1/users/u{u}", bases[u % 3]))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(user["identities"][0]["openid"], person["openids"][APPID]);
    }

    // Sends over all three; WeChat answers slowly, so sends are in flight when one dies.
    simulator.faults(json!({"latency_ms": 100})).await;
    let mut accepted: HashMap<String, String> = HashMap::new();
    let mut send = async |base: &str, n: usize| {
        let marker = format!("m{n}");
        let r = c
            .post(format!("{base}/api/v1/users/u{}/messages", n % USERS))
            .bearer_auth(KEY)
            .json(
                &json!({"channel": "template", "app": "oa", "template_id": template,
                          "data": {"keyword1": marker}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        accepted.insert(id, marker);
    };
    for n in 0..MESSAGES_PER_ROUND {
        send(&bases[n % 3], n).await;
    }
    fleet[2].kill().await;
    for n in MESSAGES_PER_ROUND..2 * MESSAGES_PER_ROUND {
        send(&bases[n % 2], n).await;
    }
    simulator.faults(json!({})).await;

    // Every message ends delivered: its report, pushed by WeChat to the fleet's address,
    // found the message whichever instance sent it.
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in accepted.keys() {
        loop {
            let m: Value = c
                .get(format!("{}/api/v1/messages/{id}", bases[0]))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if m["status"] == "delivered" {
                break;
            }
            assert!(Instant::now() < deadline, "never delivered: {m}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in sim.received_messages() {
        *seen.entry(m.data["keyword1"].value.clone()).or_default() += 1;
    }
    for marker in accepted.values() {
        assert_eq!(seen.get(marker), Some(&1), "{marker} reached WeChat once");
    }
    assert_eq!(seen.len(), accepted.len());

    // WeChat retries a push that got no answer in time; the retry may land on another
    // instance. The same event sent to two instances is stored and applied once.
    let now = wxlink::clock::Clock::system().now();
    let follow = format!(
        "<xml><ToUserName><![CDATA[gh_fleet]]></ToUserName><FromUserName><![CDATA[oFleetFollower]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>"
    );
    for (base, nonce) in [(&bases[0], "111"), (&bases[1], "222")] {
        let ts = now.to_string();
        let sig = wxlink::wechat::crypto::signature(&[PUSH_TOKEN, &ts, nonce]);
        let r = c
            .post(format!(
                "{base}/wechat/oa/push?signature={sig}&timestamp={ts}&nonce={nonce}"
            ))
            .header("content-type", "text/xml")
            .body(follow.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), "success");
    }
    let events: Value = c
        .get(format!("{}/api/v1/apps/oa/events?type=subscribe", bases[1]))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
    let reports: Value = c
        .get(format!(
            "{}/api/v1/apps/oa/events?type=TEMPLATESENDJOBFINISH&limit=1000",
            bases[0]
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reports["events"].as_array().unwrap().len(),
        accepted.len(),
        "one report per message, none lost, none doubled"
    );

    // The token: tokens live 8 s and are renewed 3-5 s after each fetch, so the fleet needs
    // about one fetch per 4 s of the test; three instances fetching on their own would need
    // three times that.
    let elapsed = started.elapsed().as_secs();
    let fetches = sim
        .stats()
        .get(&format!("token_fetches:{APPID}"))
        .copied()
        .unwrap_or(0);
    assert!(
        fetches <= elapsed / 3 + 2,
        "{fetches} token fetches in {elapsed} s"
    );
    let token = async |base: &str| -> String {
        c.get(format!("{base}/api/v1/apps/oa/access-token"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut same = false;
    for _ in 0..30 {
        if token(&bases[0]).await == token(&bases[1]).await {
            same = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(same, "the instances serve the same token");
}
