//! Two real wxlink processes on one SQLite file share one token: one upstream fetch per
//! refresh window, both serve the same token. Real time here (other processes cannot share
//! our clock), so the simulator's tokens live 8 seconds.

use crate::support::process;
use reqwest::Client;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const APPID: &str = "wxproc0000000001";
const KEY: &str = "process-test-key";

#[tokio::test]
async fn two_processes_on_one_sqlite_file_fetch_once_per_window() {
    let (sim, simulator) = crate::support::sim::standalone().await;
    let sim_base = simulator.base();
    let client = Client::new();
    simulator
        .add_app(json!({"appid": APPID, "secret": "s", "token_ttl_secs": 8}))
        .await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxlink.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{db}\"\nstorage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n\
             [tokens]\nrefresh_margin_secs = 4\njitter_secs = 1\ncheck_interval_ms = 100\n\
             [[api_keys]]\nname = \"t\"\nkey_sha256 = \"{key}\"\n\
             [[apps]]\nid = \"cl\"\nkind = \"official_account\"\nappid = \"{APPID}\"\nsecret = \"s\"\n\
             token_mode = \"classic\"\napi_base = \"{sim_base}\"\nopen_base = \"{sim_base}\"\n",
            db = dir.path().join("shared.db").display(),
            key = wxlink::domain::hash_token(KEY),
        ),
    )
    .unwrap();
    // Both start at once; the observation begins as they do.
    let starting = [process::spawn(&config).await, process::spawn(&config).await];
    let start = Instant::now();
    let mut services = Vec::new();
    for s in starting {
        services.push(s.ready().await);
    }
    let bases: Vec<String> = services.iter().map(|s| s.base.clone()).collect();

    let get = async |base: &str| -> Option<String> {
        let r = client
            .get(format!("{base}/api/v1/apps/cl/access-token"))
            .bearer_auth(KEY)
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        v["access_token"].as_str().map(str::to_owned)
    };
    let works = async |token: &str| -> bool {
        let v: Value = client
            .get(format!("{sim_base}/cgi-bin/get_api_domain_ip"))
            .query(&[("access_token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.get("ip_list").is_some()
    };

    // Observe for 12 seconds: about three token lifetimes' worth of refresh windows.
    let mut seen = HashSet::new();
    while start.elapsed() < Duration::from_secs(12) {
        for base in &bases {
            if let Some(tok) = get(base).await {
                assert!(works(&tok).await, "a served token always works at WeChat");
                seen.insert(tok);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in &mut services {
        assert!(
            s.child.try_wait().unwrap().is_none(),
            "both processes still run"
        );
    }
    let fetches = sim
        .stats()
        .get(&format!("token_fetches:{APPID}"))
        .copied()
        .unwrap_or(0);
    // Tokens live 8 s and are renewed 3-4 s before expiry: one fetch at start, then one per
    // window. Two uncoordinated processes would fetch about twice as often (8 or more).
    // Token times are whole seconds, so a token is renewed 3 to 5 s after its fetch.
    assert!((3..=6).contains(&fetches), "fetches: {fetches}");
    assert_eq!(
        seen.len() as u64,
        fetches,
        "every fetched token was served: none wasted"
    );
    // Both processes converge on the same token.
    let mut same = false;
    for _ in 0..20 {
        if let (Some(a), Some(b)) = (get(&bases[0]).await, get(&bases[1]).await)
            && a == b
        {
            same = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(same, "both processes serve the same token");
}
