//! The sandbox's cards as a newcomer walks them: in order with their defaults, a send
//! followed to `delivered` whose page reloads without sending again, a failure back on the
//! sandbox's `return_to`, an acceptance recorded through the API that the simulated person
//! makes too, extra `return_to` entries, the JS-SDK card's config accepted by the simulator.

use crate::support::sandbox::*;
use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn reloading_a_message_page_never_sends_again() {
    let sb = sandbox().await;
    let b = desktop_browser();
    mp_login(&b, &sb, "5").await;
    let r = b
        .post(format!("{}/sandbox/send", sb.base))
        .form(&[("user_id", "5"), ("channel", "template"), ("text", "一次")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = location(&r);
    let shown = delivered(&b, &sb.base, &page).await;
    // A few more reloads of the page, as a person pressing F5 would.
    for _ in 0..4 {
        let r = b.get(format!("{}{page}", sb.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let history: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history.last(), Some(&"delivered"), "{shown}");
    assert_eq!(sb.sim.messages("").await.len(), 1, "WeChat got one message");
}

#[tokio::test]
async fn the_cards_work_in_order_with_their_defaults() {
    let sb = sandbox().await;
    let b = desktop_browser();
    let index = || async {
        b.get(format!("{}/", sb.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    // 1. A simulated person.
    let r = b
        .post(format!("{}/sandbox/people", sb.base))
        .form(&[("nickname", "按顺序")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/");
    // 2. Web authorization with the default return_to.
    let page = index().await;
    let return_to = input_value(&page, "return_to");
    let (_, r) = follow(
        &b,
        &sb.base,
        &format!(
            "/oauth/oa/authorize?wxsim=1&return_to={}&scope=snsapi_base",
            encode(&return_to)
        ),
    )
    .await;
    let (status, got, body) = outcome(r).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "linked"), "{body}");
    assert_eq!(action_href(&body, "back").as_deref(), Some("/"));
    // 3. The jump-out link for the default user.
    let user = input_value(&index().await, "user_id");
    let r = b
        .post(format!("{}/sandbox/ticket", sb.base))
        .form(&[("user_id", user.as_str()), ("scope", "snsapi_base")])
        .send()
        .await
        .unwrap();
    let (_, r) = follow(&b, &sb.base, &location(&r)).await;
    let (status, got, body) = outcome(r).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "linked"), "{body}");
    assert_eq!(json_blocks(&body)[0]["user_id"], user.as_str());
    // 4. The mini-program login for the default user: the same person, the same user.
    let page = index().await;
    assert_eq!(input_value(&page, "mp_user_id"), user, "the person's user");
    let body = mp_login(&b, &sb, &user).await;
    assert_eq!(
        json_blocks(&body)[1]["identities"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // 5. Every channel of the card to the default user, each delivered.
    let page = index().await;
    let to = input_value(&page, "send_user_id");
    assert_eq!(to, user);
    for channel in ["template", "subscribe", "oa_subscribe"] {
        let r = b
            .post(format!("{}/sandbox/send", sb.base))
            .form(&[
                ("user_id", to.as_str()),
                ("channel", channel),
                ("text", "按顺序"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        delivered(&b, &sb.base, &location(&r)).await;
    }
    // A new person gets a user id nobody has yet.
    b.post(format!("{}/sandbox/people", sb.base))
        .form(&[("nickname", "第二位")])
        .send()
        .await
        .unwrap();
    let next = input_value(&index().await, "user_id");
    assert_ne!(next, user);
    let r = b
        .post(format!("{}/sandbox/ticket", sb.base))
        .form(&[("user_id", next.as_str()), ("scope", "snsapi_base")])
        .send()
        .await
        .unwrap();
    let (_, r) = follow(&b, &sb.base, &location(&r)).await;
    assert_eq!(outcome(r).await.1, "linked");
}

#[tokio::test]
async fn a_failure_comes_back_to_the_sandbox_result_with_its_code() {
    let sb = sandbox().await;
    let b = desktop_browser();
    let return_to = format!("{}/sandbox/result", sb.base);
    b.post(format!("{}/sandbox/people", sb.base))
        .form(&[("nickname", "x")])
        .send()
        .await
        .unwrap();
    // A ticket used twice: the second time the person comes back with ticket_used.
    let r = b
        .post(format!("{}/sandbox/ticket", sb.base))
        .form(&[("user_id", "8"), ("scope", "snsapi_base")])
        .send()
        .await
        .unwrap();
    let ticket = location(&r);
    let (_, r) = follow(&b, &sb.base, &ticket).await;
    assert_eq!(outcome(r).await.1, "linked");
    let (url, r) = follow(&b, &sb.base, &ticket).await;
    assert!(url.starts_with(&return_to), "{url}");
    let (status, got, body) = outcome(r).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "returned_error"));
    assert_eq!(json_blocks(&body)[0]["wxlink_error"], "ticket_used");
    assert_eq!(action_href(&body, "back").as_deref(), Some("/"));
}

#[tokio::test]
async fn an_acceptance_recorded_through_the_api_is_the_simulated_persons_too() {
    let sb = sandbox().await;
    let b = desktop_browser();
    mp_login(&b, &sb, "9").await;
    let api = reqwest::Client::new();
    let send = || async {
        let r = api
            .post(format!("{}/api/v1/users/9/messages?wait=5", sb.base))
            .bearer_auth(&sb.api_key)
            .json(&serde_json::json!({"channel": "subscribe", "app": "mp",
                "template_id": "sandbox_order_status",
                "data": {"thing1": "已发货", "time2": "2026-11-25 15:01"}}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    // Without an acceptance the API refuses before WeChat is asked.
    let (status, body) = send().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // As the API's answer advises: record it, then send.
    let r = api
        .post(format!("{}/api/v1/users/9/subscriptions", sb.base))
        .bearer_auth(&sb.api_key)
        .json(&serde_json::json!({"template_id": "sandbox_order_status"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (status, body) = send().await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &Value::from("sent")),
        "{body}"
    );
    assert_eq!(sb.sim.messages("?channel=subscribe").await.len(), 1);
}

#[tokio::test]
async fn extra_return_to_entries_are_allowed_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "http://127.0.0.1:9/dev/callback";
    let sb = sandbox_with(
        dir.path(),
        &format!("[sandbox]\nreturn_to_allow = [\"{extra}\"]"),
    )
    .await;
    let b = desktop_browser();
    let page = b
        .get(format!("{}/", sb.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("data-allow=\"{extra}\"")), "{page}");
    assert!(page.contains(&format!("data-allow=\"{}/sandbox/\"", sb.base)));
    assert!(
        page.contains("WXLINK_SANDBOX_RETURN_TO_ALLOW"),
        "the page says how"
    );
    b.post(format!("{}/sandbox/people", sb.base))
        .form(&[("nickname", "dev")])
        .send()
        .await
        .unwrap();
    // Through WeChat back to the developer's backend, with a code.
    let authorize = |return_to: &str| {
        format!(
            "{}/oauth/oa/authorize?wxsim=1&scope=snsapi_base&return_to={}",
            sb.base,
            encode(return_to)
        )
    };
    let mut url = authorize(&format!("{extra}/done"));
    for _ in 0..3 {
        let r = b.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "{url}");
        url = location(&r);
    }
    assert!(url.starts_with(&format!("{extra}/done?")), "{url}");
    assert!(query_param(&url, "wxlink_code").is_some());
    // Elsewhere on that host is still refused.
    let r = b
        .get(authorize("http://127.0.0.1:9/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(r).await.1, "return_to_not_allowed");
}

#[tokio::test]
async fn the_js_sdk_card_signs_the_sandbox_s_own_pages_and_refuses_others() {
    let sb = sandbox().await;
    let b = desktop_browser();
    let index = b
        .get(format!("{}/", sb.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page = input_value(&index, "js_url");
    assert!(page.starts_with(&sb.base), "{page}");
    let sign = async |url: &str| {
        let r = b
            .post(format!("{}/sandbox/js-sdk-config", sb.base))
            .form(&[("url", url), ("js_api_list", "scanQRCode, chooseImage")])
            .send()
            .await
            .unwrap();
        outcome(r).await
    };
    let (status, got, body) = sign(&page).await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::OK, "js_sdk_config"),
        "{body}"
    );
    let blocks = json_blocks(&body);
    assert_eq!(
        blocks[1]["jsApiList"],
        serde_json::json!(["scanQRCode", "chooseImage"])
    );
    assert_eq!(
        blocks[1]["openTagList"],
        serde_json::json!(["wx-open-subscribe"])
    );
    assert_eq!(blocks[2]["errMsg"], "config:ok", "the simulator accepts it");

    let (status, got, body) = sign("https://evil.example.com/").await;
    assert_eq!(
        (status, got.as_str()),
        (StatusCode::BAD_REQUEST, "js_sdk_refused")
    );
    assert_eq!(json_blocks(&body)[1]["error"]["code"], "url_not_allowed");
    assert_eq!(action_href(&body, "back").as_deref(), Some("/"));
}
