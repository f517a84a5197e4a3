//! The sandbox: no configuration, the simulator on the same listener, a page at `/` that
//! walks the flow in a desktop browser.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;
use wxlink::app::App;
use wxlink::clock::Clock;
use wxlink::config::Config;

struct Sandbox {
    base: String,
    api_key: String,
    ctx: wxlink::context::Ctx,
    /// The simulator's control routes, under `/sim`.
    sim: SimClient,
    _dir: Option<tempfile::TempDir>,
}

async fn sandbox() -> Sandbox {
    sandbox_in(tempfile::tempdir().unwrap()).await
}

async fn sandbox_in(dir: tempfile::TempDir) -> Sandbox {
    let mut sb = sandbox_at(dir.path()).await;
    sb._dir = Some(dir);
    sb
}

async fn sandbox_at(path: &std::path::Path) -> Sandbox {
    sandbox_with(path, "sandbox = true").await
}

/// A sandbox with `sandbox_toml` (`sandbox = true` or a `[sandbox]` section, last).
async fn sandbox_with(path: &std::path::Path, sandbox_toml: &str) -> Sandbox {
    let config = Config::from_toml_str(&format!(
        "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{}\"\n{sandbox_toml}\n",
        path.join("sb.db").display()
    ))
    .unwrap();
    let app = App::build(config, Clock::system()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let api_key = app.sandbox().unwrap().api_key.clone();
    let ctx = app.context().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Sandbox {
        sim: SimClient::new(format!("{base}/sim")),
        base,
        api_key,
        ctx,
        _dir: None,
    }
}

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

    // The same user now gets notifications on both channels from the send form.
    for channel in ["template", "subscribe"] {
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

/// Every formatted JSON block of a sandbox page, parsed.
fn json_blocks(body: &str) -> Vec<Value> {
    body.split("<pre class=\"json\">")
        .skip(1)
        .map(|b| {
            let text = unescape(b.split("</pre>").next().unwrap());
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        })
        .collect()
}

/// The default value of the input `id` on a page.
fn input_value(body: &str, id: &str) -> String {
    let at = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no input {id}"));
    let rest = &body[at..];
    let value = rest.split("value=\"").nth(1).unwrap();
    unescape(value.split('"').next().unwrap())
}

/// Follows redirects from `url` to the page they end on; its final URL and answer.
async fn follow(b: &reqwest::Client, base: &str, url: &str) -> (String, reqwest::Response) {
    let mut url = url.to_owned();
    for _ in 0..8 {
        if url.starts_with('/') {
            url = format!("{base}{url}");
        }
        let r = b.get(&url).send().await.unwrap();
        if !r.status().is_redirection() {
            return (url, r);
        }
        url = location(&r);
    }
    panic!("too many redirects from {url}");
}

/// Opens a message's page (after a send's 303) until it says delivered: every reload
/// shows the message as formatted JSON; returns the last.
async fn delivered(b: &reqwest::Client, base: &str, page: &str) -> Value {
    assert!(page.starts_with("/sandbox/messages/"), "{page}");
    for _ in 0..100 {
        let (status, got, body) =
            outcome(b.get(format!("{base}{page}")).send().await.unwrap()).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::OK, "message"),
            "{body}"
        );
        assert_eq!(action_href(&body, "back").as_deref(), Some("/"));
        let shown = json_blocks(&body).remove(0);
        let following = body.contains("http-equiv=\"refresh\"");
        if shown["status"] == "delivered" {
            assert!(!following, "a delivered message's page stops reloading");
            return shown;
        }
        assert!(
            following,
            "the page reloads itself while {}",
            shown["status"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the message at {page} was not delivered within 5 s");
}

/// Walks card 4 (mini-program login, then the link) for `user`; the result page's body.
async fn mp_login(b: &reqwest::Client, sb: &Sandbox, user: &str) -> String {
    let r = b
        .post(format!("{}/sandbox/mp-login", sb.base))
        .form(&[("user_id", user)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, r) = follow(b, &sb.base, &location(&r)).await;
    let (status, got, body) = outcome(r).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "linked"), "{body}");
    body
}

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
    // 5. Both channels to the default user, each delivered.
    let page = index().await;
    let to = input_value(&page, "send_user_id");
    assert_eq!(to, user);
    for channel in ["template", "subscribe"] {
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
