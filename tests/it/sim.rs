//! The simulator keeps WeChat's rules, so tests against it mean something.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;

async fn sim_page(t: &TestApp, query: &str) -> (StatusCode, String) {
    let r = wechat_browser()
        .get(format!(
            "{}/connect/oauth2/authorize?{query}",
            t.simulator.base()
        ))
        .header("x-wxsim-person", "p1")
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn the_authorize_page_refuses_malformed_links() {
    let t = TestApp::spawn().await;
    t.simulator.person("a").await;
    let redirect = encode(&t.url("/oauth/oa/callback"));
    let good = format!(
        "appid={OA_APPID}&redirect_uri={redirect}&response_type=code&scope=snsapi_base&state=s"
    );
    let (status, _) = sim_page(&t, &good).await;
    assert_eq!(status, StatusCode::FOUND);

    let cases = [
        (
            format!(
                "redirect_uri={redirect}&appid={OA_APPID}&response_type=code&scope=snsapi_base&state=s"
            ),
            "sim_error_10001",
        ),
        (
            format!(
                "appid={OA_APPID}&redirect_uri={}&response_type=code&scope=snsapi_base&state=s",
                t.url("/cb")
            ),
            "sim_error_10001",
        ),
        (
            format!(
                "appid={OA_APPID}&redirect_uri={redirect}&response_type=code&scope=snsapi_login&state=s"
            ),
            "sim_error_10005",
        ),
        (
            format!(
                "appid={OA_APPID}&redirect_uri={}&response_type=code&scope=snsapi_base&state=s",
                encode("https://evil.example.com/cb")
            ),
            "sim_error_10003",
        ),
        (
            format!(
                "appid={OA_APPID}&redirect_uri={}&response_type=code&scope=snsapi_base&state=s",
                encode("http://127.0.0.1:1/cb")
            ),
            "sim_error_10003",
        ),
        (
            format!(
                "appid=wxunknown&redirect_uri={redirect}&response_type=code&scope=snsapi_base&state=s"
            ),
            "sim_error_10016",
        ),
    ];
    for (q, expected) in cases {
        let (status, body) = sim_page(&t, &q).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        assert!(body.contains(expected), "{q}: expected {expected}");
    }
}

#[tokio::test]
async fn codes_are_single_use_and_secrets_are_checked() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let callback = t
        .through_wechat(
            &b,
            &t.url("/oauth/oa/authorize"),
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let code = query_param(&callback, "code").unwrap();
    let exchange = |secret: &str| {
        t.api
            .get(format!("{}/sns/oauth2/access_token", t.simulator.base()))
            .query(&[
                ("appid", OA_APPID),
                ("secret", secret),
                ("code", &code),
                ("grant_type", "authorization_code"),
            ])
            .send()
    };
    let errcode = |v: Value| v["errcode"].as_i64().unwrap_or(0);
    assert_eq!(
        errcode(exchange("wrong").await.unwrap().json().await.unwrap()),
        40125
    );
    let ok: Value = exchange("oa-secret").await.unwrap().json().await.unwrap();
    assert_eq!(ok["openid"], p["openids"][OA_APPID]);
    assert_eq!(
        errcode(exchange("oa-secret").await.unwrap().json().await.unwrap()),
        40163
    );

    // A snsapi_base token may not read the profile.
    let info: Value = t
        .api
        .get(format!("{}/sns/userinfo", t.simulator.base()))
        .query(&[
            ("access_token", ok["access_token"].as_str().unwrap()),
            ("openid", ok["openid"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(errcode(info), 48001);
}

/// `wxlink sim --config` registers the service's apps, so two processes agree out of the box.
#[tokio::test]
async fn the_standalone_simulator_registers_configured_apps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxlink.toml");
    std::fs::write(
        &path,
        "public_url = \"http://127.0.0.1:8080\"\nstorage_key = \"3333333333333333333333333333333333333333333333333333333333333333\"\n[[api_keys]]\nname = \"a\"\nkey_sha256 = \"ce2b5b8f15e2d2b6a0e2d63c4a0c52f1a8e9a0f8fd7b3c1f5f0d7b46d1c6a7e0\"\n[[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"wx1234567890abcdef\"\nsecret = \"s\"\n",
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxlink"))
        .args([
            "--config",
            path.to_str().unwrap(),
            "sim",
            "--listen",
            "127.0.0.1:0",
        ])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its first line names the address it listens on.
    let base = crate::support::process::announced(child.stdout.take().unwrap(), |line| {
        line.strip_prefix("WeChat simulator on ").map(str::to_owned)
    })
    .await
    .expect("the simulator says where it listens");
    let apps = SimClient::new(base).apps().await;
    let _ = child.kill().await;
    assert_eq!(apps["apps"][0]["appid"], "wx1234567890abcdef");
    assert_eq!(apps["apps"][0]["auth_domain"], "127.0.0.1:8080");
}
