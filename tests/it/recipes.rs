//! The recipes (`recipes/`) run as published: the Python and Node.js ones against a fresh
//! sandbox (a real `wxlink` process) with the libraries `.ci/run` installs, the webhook
//! ones on a real delivery; the Java ones compiled with `javac` and run where a JDK is
//! installed (`SKIPPED` otherwise, even in CI: no JDK is installed for them).

use crate::support::peers::{Peer, Sandbox, root};
use crate::support::webhooks::{NEW_SECRET, SECRET, with_receiver};
use serde_json::{Value, json};

const KEY: &str = "recipes-key-0123456789";
const PYTHON: Peer = Peer::python(
    "import wechatpy, requests, standardwebhooks",
    "wechatpy 1.8.18, requests and standardwebhooks 1.0.0",
);
const NODE: Peer = Peer::node(
    "require('co-wechat-api'); require('standardwebhooks')",
    "co-wechat-api 3.11.0 and standardwebhooks 1.1.1 (in NODE_PATH)",
);

fn sandbox_env(s: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        ("WXLINK_URL", s.base.clone()),
        ("WXLINK_KEY", s.key.clone()),
    ]
}

/// A real webhook delivery (`webhook.test`): the recipe's verify sees its body, headers and
/// secret, and another secret.
async fn delivery_env() -> Vec<(&'static str, String)> {
    let (t, rx) = with_receiver(&["*"], &[SECRET]).await;
    t.api_post("/api/v1/webhooks/crm/test", json!({})).await;
    let got = rx.at_least(1).await.remove(0);
    let headers: serde_json::Map<String, Value> = got
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    vec![
        ("WEBHOOK_BODY", got.raw.clone()),
        ("WEBHOOK_HEADERS", Value::Object(headers).to_string()),
        ("WEBHOOK_SECRET", SECRET.into()),
        ("OTHER_SECRET", NEW_SECRET.into()),
    ]
}

/// The messages the sandbox's simulator received.
async fn sent_templates(s: &Sandbox) -> usize {
    let v: Value = reqwest::get(format!("{}/sim/_sim/messages?channel=template", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["messages"].as_array().unwrap().len()
}

#[tokio::test]
async fn the_python_recipes_run_against_a_sandbox() {
    if !PYTHON.available("the Python recipes").await {
        return;
    }
    // wechatpy on wxlink's token: a send, the token reported failed elsewhere, WeChat's
    // 40001 on the old one, a send through the replacement.
    let s = Sandbox::start(KEY).await;
    let out = PYTHON
        .run("recipes/python/wechatpy_token.py", &sandbox_env(&s))
        .await;
    assert_eq!(out.trim(), "0 0 True");
    assert_eq!(sent_templates(&s).await, 2);
    // Ticket, redeem, send under one Idempotency-Key three times, status, a second redeem.
    let out = PYTHON
        .run("recipes/python/wxlink_api.py", &sandbox_env(&s))
        .await;
    assert_eq!(out.trim(), "py-7 oa True sent login_code_used");
    assert_eq!(sent_templates(&s).await, 3, "one message for the one key");
    let out = PYTHON
        .run("recipes/python/verify_webhook.py", &delivery_env().await)
        .await;
    assert_eq!(out.trim(), "webhook.test True True");
}

#[tokio::test]
async fn the_node_recipes_run_against_a_sandbox() {
    if !NODE.available("the Node.js recipes").await {
        return;
    }
    let s = Sandbox::start(KEY).await;
    let out = NODE
        .run("recipes/node/co_wechat_api_token.js", &sandbox_env(&s))
        .await;
    assert_eq!(out.trim(), "0 0 true");
    assert_eq!(sent_templates(&s).await, 2);
    let out = NODE
        .run("recipes/node/wxlink_api.js", &sandbox_env(&s))
        .await;
    assert_eq!(out.trim(), "js-7 oa true sent login_code_used");
    assert_eq!(sent_templates(&s).await, 3, "one message for the one key");
    let out = NODE
        .run("recipes/node/verify_webhook.js", &delivery_env().await)
        .await;
    assert_eq!(out.trim(), "webhook.test true true");
}

#[tokio::test]
async fn the_java_recipes_compile_and_run_where_a_jdk_is_installed() {
    let javac = tokio::process::Command::new("javac")
        .arg("-version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !javac {
        // No JDK is installed by .ci/run: this skip is not a failure there.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: no javac; recipes/java was not compiled"
        );
        return;
    }
    let classes = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("javac")
        .args(["-Xlint:all", "-Werror", "-d"])
        .arg(classes.path())
        .args([
            "recipes/java/WxlinkTokens.java",
            "recipes/java/WxlinkApi.java",
        ])
        .current_dir(root())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "javac: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Sandbox::start(KEY).await;
    for (class, expected) in [
        ("WxlinkTokens", "true true"),
        ("WxlinkApi", "java-7 true true 410"),
    ] {
        let out = tokio::process::Command::new("java")
            .arg("-cp")
            .arg(classes.path())
            .arg(class)
            .envs(sandbox_env(&s))
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{class}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    }
}
