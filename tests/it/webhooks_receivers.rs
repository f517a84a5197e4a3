//! Who receives the webhooks: the published Python and Node.js libraries verify a real
//! delivery (the README's receivers), the admin page shows endpoints and attempts, and the
//! sandbox delivers to itself and shows which signatures verify.

use crate::support::webhooks::{
    DELIVERY_TOML, NEW_SECRET, Receiver, Reply, SECRET, attempts_of, waiting_secs, webhook_toml,
    with_receiver,
};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// The README's receivers: the scheme's published Python and Node.js libraries verify a
/// real delivery (and refuse it under another secret). Runs where `standardwebhooks` is
/// installed (`pip install standardwebhooks`; `npm install standardwebhooks` with its
/// folder in `NODE_PATH`; `.ci/run` installs both, pinned, and requires them); says it was
/// skipped otherwise.
#[tokio::test]
async fn the_published_python_and_node_libraries_verify_a_delivery() {
    let (t, rx) = with_receiver(&["*"], &[SECRET]).await;
    t.api_post("/api/v1/webhooks/crm/test", json!({})).await;
    let got = rx.at_least(1).await.remove(0);
    let headers: serde_json::Map<String, Value> = got
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let headers = Value::Object(headers).to_string();
    let python = "import json, os\n\
        from standardwebhooks.webhooks import Webhook\n\
        e = Webhook(os.environ['SECRET']).verify(os.environ['BODY'], json.loads(os.environ['HEADERS']))\n\
        print(e['type'], e['data']['endpoint'])";
    let node = "const { Webhook } = require('standardwebhooks');\n\
        const e = new Webhook(process.env.SECRET).verify(process.env.BODY, JSON.parse(process.env.HEADERS));\n\
        console.log(e.type, e.data.endpoint);";
    for (program, arg, script, probe) in [
        ("python3", "-c", python, "import standardwebhooks"),
        ("node", "-e", node, "require('standardwebhooks')"),
    ] {
        let available = std::process::Command::new(program)
            .args([arg, probe])
            .output()
            .is_ok_and(|o| o.status.success());
        if !available {
            assert!(
                std::env::var("WXLINK_TEST_REQUIRE_PEERS").as_deref() != Ok("1"),
                "{program} has no standardwebhooks library, and WXLINK_TEST_REQUIRE_PEERS=1 (set by .ci/run) requires it"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {program} has no standardwebhooks library; the README's receiver was not checked with it"
            );
            continue;
        }
        let run = |secret: &str| {
            std::process::Command::new(program)
                .args([arg, script])
                .env("SECRET", secret)
                .env("BODY", &got.raw)
                .env("HEADERS", &headers)
                .output()
                .unwrap()
        };
        let ok = run(SECRET);
        assert!(
            ok.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&ok.stdout).trim(),
            "webhook.test crm"
        );
        assert!(
            !run(NEW_SECRET).status.success(),
            "{program} refuses another secret"
        );
    }
}

#[tokio::test]
async fn the_admin_page_shows_endpoints_and_each_attempts_answer() {
    const ADMIN_KEY: &str = "admin-key-for-webhooks-0123";
    let rx = Receiver::start(&[SECRET]).await;
    rx.reply(&[Reply::Status(500)]);
    let t = TestApp::spawn_with(Options {
        extra_toml: format!(
            "{}\n[admin]\nkey_sha256 = \"{}\"\n{DELIVERY_TOML}",
            webhook_toml("crm", &rx.url, &["*"], &[SECRET, NEW_SECRET]),
            wxlink::domain::hash_token(ADMIN_KEY)
        ),
        ..Options::default()
    })
    .await;
    let r = t.api_post("/api/v1/webhooks/crm/test", json!({})).await;
    let id = r.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    attempts_of(&t, &id, 1).await;
    let page = || async {
        let r = t
            .api
            .get(t.url("/admin/webhooks"))
            .basic_auth("ops", Some(ADMIN_KEY))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    };
    let body = page().await;
    assert!(body.contains(r#"data-endpoint="crm""#), "{body}");
    assert!(body.contains(r#"data-state="retrying""#), "{body}");
    assert!(body.contains(&format!(r#"data-event="{id}" data-status="pending""#)));
    assert!(body.contains("HTTP 500"));
    assert!(!body.contains("MfKQ9r8G"), "no secret on the page");
    let wait = waiting_secs(
        &t,
        attempts_of(&t, &id, 1).await[0]["at_ms"].as_i64().unwrap(),
    )
    .await;
    t.clock.advance(wait);
    attempts_of(&t, &id, 2).await;
    let body = page().await;
    assert!(body.contains(r#"data-state="ok""#), "{body}");
    assert!(body.contains(&format!(r#"data-event="{id}" data-status="delivered""#)));
}

#[tokio::test]
async fn the_sandbox_delivers_to_itself_and_shows_what_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let config = wxlink::config::Config::from_toml_str(&format!(
        "sandbox = true\nlisten = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{}\"\n",
        dir.path().join("sb.db").display()
    ))
    .unwrap();
    let app = wxlink::app::App::build(config, wxlink::clock::Clock::system())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let key = app.sandbox().unwrap().api_key.clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let c = reqwest::Client::new();
    let person: Value = c
        .post(format!("{base}/sim/_sim/people"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The sandbox's Official Account.
    let openid = person["openids"]["wxsandbox0a000001"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .put(format!("{base}/api/v1/users/42/identities/oa/{openid}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // Someone posts a forgery: shown, and refused.
    let r = c
        .post(format!("{base}/sandbox/webhooks"))
        .header("webhook-id", "evt_forged")
        .header("webhook-timestamp", "1")
        .header("webhook-signature", "v1,AAAA")
        .body(r#"{"type":"identity.linked"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let mut page = String::new();
    for _ in 0..500 {
        page = c
            .get(format!("{base}/sandbox/webhooks"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.contains(r#"data-type="identity.linked" data-verified="yes""#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        page.contains(r#"data-type="identity.linked" data-verified="yes""#),
        "{page}"
    );
    assert!(
        page.contains(r#"data-event="evt_forged" data-type="identity.linked" data-verified="no""#)
    );
    assert!(page.contains("user <code>42</code>"));
}
