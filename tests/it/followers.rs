//! Follower info completes Official Account identities (unionid, follow state and time):
//! after a `subscribe` push, on demand, in the background within its daily quota; and the
//! import of an account's existing followers, resumable after a crash, with its progress in
//! the API and on the command line. All against the simulator's `user/info`, `batchget` and
//! `user/get`.

use crate::support::process::{Service, command};
use crate::support::{MP_APPID, OA_APPID, Options, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use wxlink::domain::{AppId, OpenId};

fn oa() -> AppId {
    AppId::parse("oa").unwrap()
}

impl TestApp {
    async fn identity(&self, app: &str, openid: &str) -> Option<wxlink::store::Identity> {
        self.ctx
            .store
            .identity(&AppId::parse(app).unwrap(), &OpenId::parse(openid).unwrap())
            .await
            .unwrap()
    }

    /// A person logged in to the mini-program as `user`: their MP identity is bound, with
    /// the group's unionid. Returns the person's id.
    async fn mp_user(&self, user: &str) -> String {
        let p = self.simulator.person(user).await;
        let person = p["id"].as_str().unwrap().to_owned();
        let code = self.simulator.login_code(&person, MP_APPID).await;
        let r = self
            .mp_session("mp", json!({ "js_code": code, "user_id": user }))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        person
    }

    async fn refresh(&self, app: &str, openid: &str) -> (StatusCode, Value) {
        let r = self
            .api_post(
                &format!("/api/v1/apps/{app}/identities/{openid}/refresh"),
                json!({}),
            )
            .await;
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    /// Polls the app's import until it is no longer running.
    async fn import_finished(&self, app: &str) -> Value {
        for _ in 0..600 {
            let v = self
                .api_json(&format!("/api/v1/apps/{app}/follower-import"))
                .await;
            if v["import"]["state"] != "running" {
                return v["import"].clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the import did not finish within 60 s");
    }
}

#[tokio::test]
async fn a_subscribe_push_fills_the_unionid_and_binds_across_apps() {
    let t = TestApp::spawn().await;
    let person = t.mp_user("u-follow").await;
    let openid = t.sim.openid_of(OA_APPID, &person);
    let unionid = t.sim.unionid_of(OA_APPID, &person).unwrap();

    t.sim.set_follow(OA_APPID, &person, true).unwrap();
    // The push is answered at once; the lookup follows in the background.
    let pushes = t.settled_pushes(1).await;
    assert!(pushes.iter().all(|p| p.finished), "{pushes:#?}");
    let mut identity = None;
    for _ in 0..250 {
        identity = t.identity("oa", &openid).await;
        if identity.as_ref().is_some_and(|i| i.user_id.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let identity = identity.expect("the push stored the identity");
    assert_eq!(
        identity.unionid.as_ref().map(|u| u.as_str()),
        Some(unionid.as_str())
    );
    assert_eq!(
        identity.user_id.as_ref().map(|u| u.as_str()),
        Some("u-follow")
    );
    assert_eq!(identity.follows, Some(true));
    assert!(identity.follow_changed_at.is_some());
    assert!(t.sim.stats()["user_batchget_calls"] >= 1);
    // The backend sees the user's two identities.
    let user = t.api_json("/api/v1/users/u-follow").await;
    let apps: Vec<&str> = user["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["app"].as_str().unwrap())
        .collect();
    assert_eq!(apps, ["mp", "oa"], "{user}");
}

#[tokio::test]
async fn a_refresh_on_demand_reads_follow_state_and_unionid() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("refreshed").await;
    let person = p["id"].as_str().unwrap().to_owned();
    let openid = p["openids"][OA_APPID].as_str().unwrap().to_owned();

    // Not stored yet: WeChat knows the openid, so the refresh stores it.
    let (status, v) = t.refresh("oa", &openid).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["identity"]["unionid"],
        json!(t.sim.unionid_of(OA_APPID, &person))
    );
    assert_eq!(v["identity"]["follows"], true);
    assert_eq!(v["identity"]["user_id"], Value::Null);
    assert!(v["identity"]["follow_changed_at"].as_i64().is_some());

    // The person left (no push reached us): the refresh says so.
    t.simulator
        .post(
            "/_sim/following",
            json!({"appid": OA_APPID, "person": person, "following": false}),
        )
        .await;
    let (status, v) = t.refresh("oa", &openid).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["identity"]["follows"], false);
    assert!(
        v["identity"]["unionid"].is_string(),
        "a unionid once learnt stays"
    );

    // An openid WeChat does not know for the app: 40003.
    let (status, v) = t.refresh("oa", "o_nobody_knows_me").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "wechat_unknown_openid");
    assert_eq!(v["error"]["errcode"], 40003);

    let (status, v) = t.refresh("mp", &openid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "not_official_account");
}

#[tokio::test]
async fn a_filled_unionid_never_re_points_a_bound_identity() {
    let t = TestApp::spawn().await;
    // The person is user B in the mini-program, and was bound as user A in the Official
    // Account before anyone knew their unionid there.
    let person = t.mp_user("u-b").await;
    let openid = t.sim.openid_of(OA_APPID, &person);
    let r = t.bind("u-a", "oa", &openid, json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);

    let (status, v) = t.refresh("oa", &openid).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["identity"]["user_id"], "u-a", "never re-pointed");
    assert_eq!(
        v["identity"]["unionid"],
        json!(t.sim.unionid_of(OA_APPID, &person))
    );
    let b = t.api_json("/api/v1/users/u-b").await;
    assert_eq!(b["identities"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["identities"][0]["app"], "mp");

    // The unionid now belongs to both users; a later login of user B in the mini-program
    // still finds user B, and user A keeps the Official Account identity.
    let again = t.simulator.login_code(&person, MP_APPID).await;
    let r = t.mp_session("mp", json!({ "js_code": again })).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user_id"], "u-b", "{v}");
    let a = t.identity("oa", &openid).await.unwrap();
    assert_eq!(a.user_id.unwrap().as_str(), "u-a");
}

#[tokio::test]
async fn the_background_fill_stays_within_its_daily_quota() {
    let t = TestApp::spawn_with(Options {
        extra_toml: "[followers]\nbackground_daily_quota = 3\nbackground_interval_secs = 86400"
            .into(),
        ..Default::default()
    })
    .await;
    let mut openids = Vec::new();
    for i in 0..5 {
        let (_, openid) = t.person_for(&format!("u{i}"), "oa", OA_APPID).await;
        openids.push(openid);
    }
    let filled = async || {
        let mut n = 0;
        for o in &openids {
            if t.identity("oa", o).await.unwrap().unionid.is_some() {
                n += 1;
            }
        }
        n
    };
    assert_eq!(filled().await, 0);
    assert_eq!(t.followers.fill_once().await.unwrap(), 3);
    assert_eq!(filled().await, 3);
    assert_eq!(
        t.followers.fill_once().await.unwrap(),
        0,
        "today's quota is spent"
    );
    assert_eq!(
        t.ctx
            .store
            .follower_quota_used(&oa(), wxlink::clock::beijing_day(t.clock.now()))
            .await
            .unwrap(),
        3
    );
    let metrics = t.api.get(t.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("wxlink_follower_fill_quota_used{app=\"oa\"} 3"),
        "{metrics}"
    );

    // The next Beijing day brings a new quota: the other two, and nothing is asked twice.
    t.advance(86_400);
    assert_eq!(t.followers.fill_once().await.unwrap(), 2);
    assert_eq!(filled().await, 5);
    assert_eq!(t.followers.fill_once().await.unwrap(), 0);
}

#[tokio::test]
async fn an_import_pages_through_followers_and_binds_known_unionids() {
    let t = TestApp::spawn().await;
    // Someone already known through the mini-program follows too.
    let known = t.mp_user("u-known").await;
    let bulk = t
        .simulator
        .post(
            "/_sim/followers/bulk",
            json!({"appid": OA_APPID, "count": 2500, "with_unionid_ratio": 0.8}),
        )
        .await;
    assert_eq!(bulk["created"], 2500);
    t.simulator
        .post("/_sim/followers/settings", json!({"page_size": 700}))
        .await;

    let r = t.api_get("/api/v1/apps/oa/follower-import").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = t
        .api_post("/api/v1/apps/oa/follower-import", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job = t.import_finished("oa").await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["total"], 2501, "{job}");
    assert_eq!(job["imported"], 2501, "{job}");
    assert_eq!(job["bound"], 1, "{job}");
    assert_eq!(job["pages"], 4, "{job}");
    assert_eq!(t.ctx.store.identity_count(&oa()).await.unwrap(), 2501);
    assert!(t.sim.stats()["user_get_calls"] >= 5);

    let known_oa = t
        .identity("oa", &t.sim.openid_of(OA_APPID, &known))
        .await
        .unwrap();
    assert_eq!(known_oa.user_id.unwrap().as_str(), "u-known");
    let first = bulk["first_person"].as_str().unwrap();
    let last = bulk["last_person"].as_str().unwrap();
    let first = t
        .identity("oa", &t.sim.openid_of(OA_APPID, first))
        .await
        .unwrap();
    assert!(first.unionid.is_some() && first.follows == Some(true));
    assert!(first.follow_changed_at.is_some());
    let last = t
        .identity("oa", &t.sim.openid_of(OA_APPID, last))
        .await
        .unwrap();
    assert!(last.unionid.is_none(), "the last fifth have no unionid");

    // A finished import can be run again; it changes nothing.
    let r = t
        .api_post("/api/v1/apps/oa/follower-import", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job = t.import_finished("oa").await;
    assert_eq!(job["imported"], 2501, "{job}");
    assert_eq!(t.ctx.store.identity_count(&oa()).await.unwrap(), 2501);

    let r = t
        .api_post("/api/v1/apps/mp/follower-import", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

const KEY: &str = "followers-crash-key";

fn crash_config(dir: &std::path::Path, sim_base: &str, appid: &str) -> std::path::PathBuf {
    let config = dir.join("wxlink.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{db}\"\n\
             storage_key = \"{storage}\"\n\
             [followers]\nimport_lease_secs = 2\npoll_interval_ms = 100\n\
             [[api_keys]]\nname = \"t\"\nkey_sha256 = \"{key}\"\n\
             [[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"{appid}\"\nsecret = \"s\"\n\
             api_base = \"{sim_base}\"\nopen_base = \"{sim_base}\"\n",
            db = dir.join("followers.db").display(),
            storage = "b".repeat(64),
            key = wxlink::domain::hash_token(KEY),
        ),
    )
    .unwrap();
    config
}

async fn import_state(c: &reqwest::Client, base: &str) -> Value {
    let r = c
        .get(format!("{base}/api/v1/apps/oa/follower-import"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["import"].clone()
}

#[tokio::test]
async fn an_import_resumes_after_sigkill_and_finishes_without_duplicates() {
    const OA: &str = "wxfollowcrash001";
    const FOLLOWERS: i64 = 3000;
    let (sim, simulator) = crate::support::sim::standalone().await;
    simulator
        .add_app(
            json!({"appid": OA, "secret": "s", "kind": "official_account", "unionid_group": "g"}),
        )
        .await;
    simulator
        .post(
            "/_sim/followers/bulk",
            json!({"appid": OA, "count": FOLLOWERS, "with_unionid_ratio": 0.5}),
        )
        .await;
    simulator
        .post("/_sim/followers/settings", json!({"page_size": 500}))
        .await;
    // WeChat answers slowly, so the kill lands mid-import.
    simulator.faults(json!({"latency_ms": 40})).await;
    let dir = tempfile::tempdir().unwrap();
    let config = crash_config(dir.path(), simulator.base(), OA);
    let c = reqwest::Client::new();

    let mut first = Service::start(&config).await;
    let r = c
        .post(format!("{}/api/v1/apps/oa/follower-import", first.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c
        .post(format!("{}/api/v1/apps/oa/follower-import", first.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT, "one import at a time");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "follower_import_running");

    let mut at_kill = Value::Null;
    for _ in 0..600 {
        at_kill = import_state(&c, &first.base).await;
        if at_kill["imported"].as_i64().unwrap() >= 700 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().await;
    assert_eq!(at_kill["state"], "running", "killed mid-import: {at_kill}");
    let imported_at_kill = at_kill["imported"].as_i64().unwrap();
    assert!(imported_at_kill < FOLLOWERS, "{at_kill}");
    simulator.faults(json!({"latency_ms": 0})).await;

    // A new process on the same database takes it up once the dead one's lease ran out.
    let second = Service::start(&config).await;
    let mut done = Value::Null;
    for _ in 0..600 {
        done = import_state(&c, &second.base).await;
        if done["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        done["imported"], FOLLOWERS,
        "every follower counted once: {done}"
    );
    assert_eq!(done["total"], FOLLOWERS);
    let store = wxlink::store::Store::connect(
        &format!("sqlite://{}", dir.path().join("followers.db").display()),
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(store.identity_count(&oa()).await.unwrap(), FOLLOWERS);
    // The resumed process started from where the first stopped, not from scratch.
    let batches = sim.stats()["user_batchget_calls"];
    assert!(
        batches < (FOLLOWERS as u64 / 100) * 2,
        "{batches} batchget calls for {FOLLOWERS} followers"
    );
}

#[tokio::test]
async fn the_cli_import_prints_progress_until_done() {
    // The service in this process never takes imports up: the command runs it.
    let t = TestApp::spawn_with(Options {
        extra_toml: format!(
            "[followers]\npoll_interval_ms = 3600000\n[admin]\nkey_sha256 = \"{}\"\n",
            wxlink::domain::hash_token("followers-admin-key")
        ),
        ..Default::default()
    })
    .await;
    t.simulator
        .post(
            "/_sim/followers/bulk",
            json!({"appid": OA_APPID, "count": 2500, "with_unionid_ratio": 1.0}),
        )
        .await;
    t.simulator
        .post("/_sim/followers/settings", json!({"page_size": 1000}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxlink.toml");
    std::fs::write(&config, t.config_toml_with(|c| c)).unwrap();
    let out = command(&config)
        .args(["import-followers", "oa"])
        .stdout(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('{')).collect();
    assert_eq!(lines.first(), Some(&"oa: import started"), "{stdout}");
    assert!(
        lines.contains(
            &"oa: 1000 followers imported of 2500 (40%), 0 bound to users, 0 pages, running"
        ),
        "{stdout}"
    );
    assert!(
        lines.contains(&"done: 2500 followers imported, 0 bound to users"),
        "{stdout}"
    );
    let job = t.api_json("/api/v1/apps/oa/follower-import").await;
    assert_eq!(job["import"]["state"], "done");
    assert_eq!(t.ctx.store.identity_count(&oa()).await.unwrap(), 2500);
    // The admin overview shows it.
    let admin = t
        .api
        .get(t.url("/admin"))
        .basic_auth("ops", Some("followers-admin-key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        admin.contains("data-followers=\"oa\" data-import=\"done\" data-imported=\"2500\""),
        "{admin}"
    );
}
