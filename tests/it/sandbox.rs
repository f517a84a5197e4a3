//! The sandbox: no configuration, the simulator on the same listener, a page at `/` that
//! walks the flow in a desktop browser.

use crate::support::sandbox::*;
use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn a_desktop_browser_walks_the_userinfo_flow() {
    let sb = sandbox().await;
    let b = desktop_browser();
    let page = b
        .get(format!("{}/", sb.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("sandbox") && page.contains(&sb.api_key));

    let r = b
        .post(format!("{}/sandbox/people", sb.base))
        .form(&[("nickname", "沙箱用户")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let return_to = format!("{}/sandbox/result", sb.base);
    let r = b
        .get(format!(
            "{}/oauth/oa/authorize?scope=snsapi_userinfo&return_to={}&wxsim=1",
            sb.base,
            encode(&return_to)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let to_sim = location(&r);
    assert!(
        to_sim.starts_with(&format!("{}/sim/connect/oauth2/authorize?", sb.base)),
        "{to_sim}"
    );

    // The simulated consent page, answered as a click on "allow" would.
    let consent = b.get(&to_sim).send().await.unwrap();
    let (_, got, body) = outcome(consent).await;
    assert_eq!(got, "sim_authorize");
    assert!(body.contains("沙箱用户"));
    let mut form: Vec<(String, String)> = ["appid", "redirect_uri", "scope", "state"]
        .iter()
        .map(|k| (k.to_string(), query_param(&to_sim, k).unwrap()))
        .collect();
    form.push(("person".into(), "p1".into()));
    form.push(("decision".into(), "allow".into()));
    let r = b
        .post(format!("{}/sim/connect/oauth2/answer", sb.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let callback = location(&r);
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let result = location(&r);
    assert!(result.starts_with(&return_to));
    let (status, got, body) = outcome(b.get(&result).send().await.unwrap()).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "linked"));
    assert!(body.contains("沙箱用户"), "the profile is shown");
}

#[tokio::test]
async fn the_jump_out_form_binds_a_business_user() {
    let sb = sandbox().await;
    let b = desktop_browser();
    b.post(format!("{}/sandbox/people", sb.base))
        .form(&[("nickname", "x")])
        .send()
        .await
        .unwrap();
    let r = b
        .post(format!("{}/sandbox/ticket", sb.base))
        .form(&[("user_id", "42"), ("scope", "snsapi_base")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let mut url = location(&r);
    // authorize -> simulator (silent, the person comes from the cookie) -> callback -> result
    for _ in 0..3 {
        let r = b.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "{url}");
        url = location(&r);
    }
    assert!(url.contains("/sandbox/result?wxlink_code="));
    let user: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/users/42", sb.base))
        .bearer_auth(&sb.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["identities"][0]["app"], "oa");
}

#[tokio::test]
async fn the_mini_program_form_walks_the_whole_jump_out_recipe() {
    let sb = sandbox().await;
    let b = desktop_browser();
    let r = b
        .post(format!("{}/sandbox/mp-login", sb.base))
        .form(&[("user_id", "1001")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let mut url = location(&r);
    // authorize -> simulator (silent, the new person from the cookie) -> callback -> result
    for _ in 0..3 {
        let r = b.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "{url}");
        url = location(&r);
    }
    let (status, got, body) = outcome(b.get(&url).send().await.unwrap()).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "linked"));
    // What the backend got, as formatted JSON: the redeemed identity, then the user's.
    let shown = json_blocks(&body);
    assert_eq!(shown[0]["user_id"], "1001", "{body}");
    let shown_apps: Vec<&str> = shown[1]["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["app"].as_str().unwrap())
        .collect();
    assert_eq!(shown_apps, ["mp", "oa"]);
    let user: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/users/1001", sb.base))
        .bearer_auth(&sb.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let apps: Vec<&str> = user["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["app"].as_str().unwrap())
        .collect();
    assert_eq!(apps, ["mp", "oa"]);
    assert_eq!(
        user["identities"][0]["unionid"],
        user["identities"][1]["unionid"]
    );

    // The same user now gets notifications on every channel from the send form (for
    // `custom`, the simulated person writes to the account first).
    for channel in ["template", "subscribe", "custom"] {
        let r = b
            .post(format!("{}/sandbox/send", sb.base))
            .form(&[
                ("user_id", "1001"),
                ("channel", channel),
                ("text", "您的订单已发货"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{channel}");
        let shown = delivered(&b, &sb.base, &location(&r)).await;
        assert_eq!(shown["channel"], channel);
    }
    // And from the backend API, with the sandbox's templates.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/users/1001/messages?wait=5", sb.base))
        .bearer_auth(&sb.api_key)
        .json(&serde_json::json!({"channel": "template", "app": "oa",
            "template_id": "sandbox_order_shipped", "data": {"keyword1": "339208499", "keyword2": "顺丰"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "sent");
    // A user without a mini-program identity is told what to do.
    let r = b
        .post(format!("{}/sandbox/send", sb.base))
        .form(&[("user_id", "77"), ("channel", "subscribe"), ("text", "x")])
        .send()
        .await
        .unwrap();
    let (status, got, body) = outcome(r).await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::NOT_FOUND, "send_refused")
    );
    assert!(body.contains("card 4"), "{body}");
    assert_eq!(json_blocks(&body)[0]["error"]["code"], "no_identity");
    assert_eq!(action_href(&body, "back").as_deref(), Some("/"));
}

#[tokio::test]
async fn a_restarted_sandbox_still_opens_the_session_keys_it_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let first = sandbox_in(dir).await;
    let r = desktop_browser()
        .post(format!("{}/sandbox/mp-login", first.base))
        .form(&[("user_id", "7")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let user: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/users/7", first.base))
        .bearer_auth(&first.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = wxlink::domain::AppId::parse("mp").unwrap();
    let openid =
        wxlink::domain::OpenId::parse(user["identities"][0]["openid"].as_str().unwrap()).unwrap();
    let key_file = path.join("sb.db.storage-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let second = sandbox_at(&path).await;
    let opened = wxlink::identity::mini_program::session_key(&second.ctx, &app, &openid)
        .await
        .unwrap();
    assert!(
        opened.is_some(),
        "the restarted sandbox reuses its storage key"
    );
}

#[tokio::test]
async fn a_restarted_sandbox_hands_out_tokens_its_new_simulator_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let first = sandbox_in(dir).await;
    let token_of = async |sb: &Sandbox| -> String {
        let v: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/apps/oa/access-token", sb.base))
            .bearer_auth(&sb.api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    };
    let old = token_of(&first).await;
    // Same database file, a new process (and so a new simulator).
    let second = sandbox_at(&path).await;
    let new = token_of(&second).await;
    assert_ne!(new, old);
    let check: Value = reqwest::Client::new()
        .get(format!("{}/sim/cgi-bin/get_api_domain_ip", second.base))
        .query(&[("access_token", new.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(check.get("ip_list").is_some(), "{check}");
}
