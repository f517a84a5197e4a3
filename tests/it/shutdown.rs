//! Graceful shutdown of a real process: SIGTERM during traffic, the process exits 0 within
//! its grace period, requests in flight are answered, and nothing it accepted is lost: a
//! restarted instance sends what was left. Real time (the simulator's latency is what keeps
//! sends in flight).

use crate::support::SimClient;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const APPID: &str = "wxshutdown000001";
const KEY: &str = "shutdown-test-key";

struct World {
    simulator: SimClient,
    client: Client,
    dir: tempfile::TempDir,
    template: String,
    openid: String,
}

impl World {
    async fn new() -> Self {
        let (_sim, simulator) = crate::support::sim::standalone().await;
        simulator
            .add_app(json!({"appid": APPID, "secret": "s", "kind": "official_account"}))
            .await;
        let template = simulator
            .titled_template(APPID, "template", "t", "{{keyword1.DATA}}")
            .await;
        let person = simulator.person("p").await;
        let openid = person["openids"][APPID].as_str().unwrap().to_owned();
        World {
            simulator,
            client: Client::new(),
            dir: tempfile::tempdir().unwrap(),
            template,
            openid,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("wxlink.db")
    }

    fn config(&self, grace_secs: u64) -> PathBuf {
        let path = self.dir.path().join(format!("wxlink-{grace_secs}.toml"));
        std::fs::write(
            &path,
            format!(
                "database_url = \"sqlite://{db}\"\nstorage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n\
                 shutdown_grace_secs = {grace_secs}\n\
                 [outbox]\npoll_interval_ms = 50\n\
                 [[api_keys]]\nname = \"t\"\nkey_sha256 = \"{key}\"\n\
                 [[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"{APPID}\"\nsecret = \"s\"\n\
                 api_base = \"{sim}\"\nopen_base = \"{sim}\"\n",
                db = self.db().display(),
                key = wxlink::domain::hash_token(KEY),
                sim = self.simulator.base(),
            ),
        )
        .unwrap();
        path
    }

    async fn latency(&self, ms: u64) {
        self.simulator
            .faults(json!({"mode": "none", "latency_ms": ms}))
            .await;
    }

    /// Starts the binary and waits until it answers.
    async fn start(&self, config: &Path) -> (tokio::process::Child, String) {
        let service = crate::support::process::Service::start(config).await;
        (service.child, service.base)
    }

    async fn bind(&self, base: &str, user: &str) {
        let r = self
            .client
            .put(format!(
                "{base}/api/v1/users/{user}/identities/oa/{}",
                self.openid
            ))
            .bearer_auth(KEY)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    fn message(&self, n: usize) -> Value {
        json!({"channel": "template", "app": "oa", "template_id": self.template,
               "data": {"keyword1": format!("order {n}")}})
    }

    async fn send(&self, base: &str, n: usize) -> String {
        let r = self
            .client
            .post(format!("{base}/api/v1/users/u1/messages"))
            .bearer_auth(KEY)
            .json(&self.message(n))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Message statuses straight from the database file.
    async fn statuses(&self) -> Vec<(String, String, i64)> {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", self.db().display()))
                .await
                .unwrap();
        sqlx::query_as("SELECT id, status, attempts FROM messages ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    }
}

/// Sends SIGTERM and waits for the exit; returns the exit status and how long it took.
async fn terminate(child: &mut tokio::process::Child) -> (std::process::ExitStatus, Duration) {
    let pid = child.id().unwrap().to_string();
    let started = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the process exits")
        .unwrap();
    (status, started.elapsed())
}

/// After a restart every accepted message is sent.
async fn all_sent_after_restart(w: &World, ids: &[String]) {
    w.latency(0).await;
    let (_child, base) = w.start(&w.config(5)).await;
    for id in ids {
        let mut last = Value::Null;
        for _ in 0..200 {
            last = w
                .client
                .get(format!("{base}/api/v1/messages/{id}"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if last["status"] == "sent" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last["status"], "sent", "{last:#}");
    }
}

#[tokio::test]
async fn sigterm_lets_sends_and_requests_in_flight_finish() {
    let w = World::new().await;
    let (mut child, base) = w.start(&w.config(10)).await;
    w.bind(&base, "u1").await;
    // The first send fetches the template list; later ones use the cached one.
    let mut ids = vec![w.send(&base, 0).await];
    w.latency(1000).await;
    for n in 1..=10 {
        ids.push(w.send(&base, n).await);
    }
    // A request still running when the signal comes: a send that waits for its outcome.
    let waiting = {
        let client = w.client.clone();
        let url = format!("{base}/api/v1/users/u1/messages?wait=20");
        let body = w.message(99);
        tokio::spawn(async move { client.post(url).bearer_auth(KEY).json(&body).send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, took) = terminate(&mut child).await;
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "exited after {took:?}");
    let answered = waiting
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert!(answered.status().is_success(), "{}", answered.status());
    let waited: Value = answered.json().await.unwrap();
    ids.push(waited["id"].as_str().unwrap().to_owned());

    // The sends in flight (1 s each) finished inside the grace period and were recorded.
    let rows = w.statuses().await;
    assert!(rows.iter().all(|(_, s, _)| s != "sending"), "{rows:?}");
    let sent = rows.iter().filter(|(_, s, _)| s == "sent").count();
    assert!(sent >= 11, "{rows:?}");
    all_sent_after_restart(&w, &ids).await;
}

#[tokio::test]
async fn sends_outlasting_the_grace_period_go_back_to_the_queue() {
    let w = World::new().await;
    let (mut child, base) = w.start(&w.config(1)).await;
    w.bind(&base, "u1").await;
    let first = w.send(&base, 0).await;
    for _ in 0..100 {
        if w.statuses().await.iter().all(|(_, s, _)| s == "sent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.latency(6000).await;
    let mut ids = Vec::new();
    for n in 1..=4 {
        ids.push(w.send(&base, n).await);
    }
    // Wait until they are claimed (and stuck at WeChat).
    for _ in 0..100 {
        if w.statuses().await.iter().all(|(_, s, _)| s != "queued") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, took) = terminate(&mut child).await;
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_millis(2500),
        "1 s grace, exited after {took:?}"
    );
    // Given back at once: queued, the interrupted attempt not counted.
    let rows = w.statuses().await;
    assert_eq!(rows.len(), 5);
    for (id, status, attempts) in &rows {
        if *id == first {
            assert_eq!(status, "sent");
        } else {
            assert_eq!((status.as_str(), *attempts), ("queued", 0), "{rows:?}");
        }
    }
    all_sent_after_restart(&w, &ids).await;
}
