//! What a person sees and where failures go: every outcome a business can act on comes
//! back to its `return_to` with `wxlink_error` (and its `client_state`); the pages that
//! stay are Chinese unless asked otherwise, branded, free of internal ids, protected by
//! their headers, and always offer a next step.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;

const RETURN_TO: &str = "https://shop.example.com/back";

fn error_of(r: &reqwest::Response) -> (Option<String>, Option<String>, Option<String>) {
    assert_eq!(r.status(), StatusCode::FOUND);
    let to = location(r);
    assert!(to.starts_with(RETURN_TO), "{to}");
    (
        query_param(&to, "wxlink_error"),
        query_param(&to, "client_state"),
        query_param(&to, "wxlink_code"),
    )
}

#[tokio::test]
async fn client_state_comes_back_untouched_on_success_and_failure() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let person = p["id"].as_str().unwrap();
    let state = "order 7/8 & more=é";
    let path = format!(
        "/oauth/oa/authorize?scope=snsapi_userinfo&return_to={}&client_state={}",
        encode(RETURN_TO),
        encode(state)
    );
    let r = t.sign_in(&wechat_browser(), &path, person, "allow").await;
    let (error, cs, code) = error_of(&r);
    assert_eq!((error, cs.as_deref()), (None, Some(state)));
    assert!(code.is_some());
    let r = t.sign_in(&wechat_browser(), &path, person, "deny").await;
    assert_eq!(
        error_of(&r),
        (Some("declined".into()), Some(state.into()), None)
    );
}

#[tokio::test]
async fn every_failure_a_business_can_act_on_comes_back_with_its_code() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let person = p["id"].as_str().unwrap();
    let with_rt = json!({"app": "oa", "return_to": RETURN_TO});

    // A used ticket, before WeChat is asked.
    let url = t.link_ticket("1", with_rt.clone()).await;
    let r = t
        .sign_in_url(&wechat_browser(), &url, person, "allow")
        .await;
    assert_eq!(error_of(&r).0, None);
    let r = wechat_browser().get(&url).send().await.unwrap();
    assert_eq!(error_of(&r).0.as_deref(), Some("ticket_used"));

    // An expired ticket.
    let url = t.link_ticket("2", with_rt.clone()).await;
    t.clock.advance(601);
    let r = wechat_browser().get(&url).send().await.unwrap();
    assert_eq!(error_of(&r).0.as_deref(), Some("ticket_expired"));

    // A conflict: the person is bound to user 1 already.
    let url = t.link_ticket("3", with_rt.clone()).await;
    let r = t
        .sign_in_url(&wechat_browser(), &url, person, "allow")
        .await;
    assert_eq!(error_of(&r).0.as_deref(), Some("identity_conflict"));
    assert_eq!(
        t.api_get("/api/v1/users/3").await.status(),
        StatusCode::NOT_FOUND
    );

    // A bad scope with a good return_to.
    let path = format!(
        "/oauth/oa/authorize?scope=snsapi_login&return_to={}",
        encode(RETURN_TO)
    );
    let r = wechat_browser().get(t.url(&path)).send().await.unwrap();
    assert_eq!(error_of(&r).0.as_deref(), Some("invalid_scope"));

    // WeChat failing the exchange.
    let path = format!("/oauth/oa/authorize?return_to={}", encode(RETURN_TO));
    let b = wechat_browser();
    let callback = t.through_wechat(&b, &t.url(&path), person, "allow").await;
    t.simulator
        .post("/_sim/faults", json!({"mode": "down"}))
        .await;
    let r = b.get(&callback).send().await.unwrap();
    t.simulator
        .post("/_sim/faults", json!({"mode": "none"}))
        .await;
    assert_eq!(error_of(&r).0.as_deref(), Some("wechat_error"));

    // Every code that comes back is in the catalogue (and so in README's table).
    for code in [
        "ticket_used",
        "ticket_expired",
        "identity_conflict",
        "invalid_scope",
        "wechat_error",
        "declined",
        "state_expired",
        "code_invalid",
    ] {
        assert!(
            wxlink::http::error::ReturnError::ALL
                .iter()
                .any(|c| c.code() == code),
            "{code}"
        );
    }
}

#[tokio::test]
async fn a_snapshot_person_keeps_a_page_even_with_a_return_to() {
    let t = TestApp::spawn().await;
    let snap = t
        .simulator
        .new_person(json!({"nickname": "snap", "snapshot": true}))
        .await;
    let path = format!("/oauth/oa/authorize?return_to={}", encode(RETURN_TO));
    let r = t
        .sign_in(
            &wechat_browser(),
            &path,
            snap["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let (status, got, body) = outcome(r).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "snapshot"));
    assert!(visible_text(&body).contains("使用完整服务"));
    assert!(action_href(&body, "retry").is_some());
}

#[tokio::test]
async fn pages_are_chinese_unless_english_is_asked_for() {
    let t = TestApp::spawn().await;
    let b = wechat_browser();
    let path = "/oauth/oa/callback?code=x&state=forged123";
    let zh = b
        .get(t.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let zh = visible_text(&zh);
    assert!(zh.contains("页面已失效") && zh.contains("关闭页面"), "{zh}");
    assert!(!zh.contains("expired"), "no English by default: {zh}");

    let en = b
        .get(t.url(path))
        .header("accept-language", "en-US,en;q=0.9,zh;q=0.3")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let en = visible_text(&en);
    assert!(
        en.contains("This page has expired") && en.contains("Close this page"),
        "{en}"
    );
    assert!(!en.contains("页面已失效"));

    let en = b
        .get(t.url(&format!("{path}&lang=en")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(visible_text(&en).contains("This page has expired"));

    // lang=en on the authorize link carries through WeChat to the result page.
    let p = t.simulator.person("a").await;
    let r = t
        .sign_in(
            &b,
            "/oauth/oa/authorize?lang=en",
            p["id"].as_str().unwrap(),
            "allow",
        )
        .await;
    let body = r.text().await.unwrap();
    assert!(
        visible_text(&body).contains("Your WeChat account is now linked"),
        "{body}"
    );
}

#[tokio::test]
async fn no_page_shows_an_internal_id() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let person = p["id"].as_str().unwrap();
    let url = t.link_ticket("user-4242", json!({"app": "oa"})).await;
    let r = t
        .sign_in_url(&wechat_browser(), &url, person, "allow")
        .await;
    let (_, got, body) = outcome(r).await;
    assert_eq!(got, "linked");
    let text = visible_text(&body);
    let openid = p["openids"][OA_APPID].as_str().unwrap();
    for id in ["user-4242", openid, OA_APPID, "oa"] {
        assert!(!text.contains(id), "{id} on the page: {text}");
    }
    assert!(!text.to_lowercase().contains("unbind"));
}

#[tokio::test]
async fn every_page_has_its_protective_headers_and_a_next_step() {
    let t = TestApp::spawn().await;
    let b = wechat_browser();
    for (browser, path) in [
        (&b, "/oauth/oa/callback?code=x&state=forged123"),
        (&b, "/oauth/oa/authorize?scope=nope"),
        (&b, "/oauth/oa/authorize?ticket=nosuch"),
        (&b, "/oauth/nope/authorize"),
        (&desktop_browser(), "/oauth/oa/authorize"),
    ] {
        let r = browser.get(t.url(path)).send().await.unwrap();
        let h = r.headers().clone();
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let body = r.text().await.unwrap();
        assert!(body.contains("data-action=\"close\""), "{path}: {body}");
    }
    // The script the close button needs is served, as the CSP allows it.
    let r = b.get(t.url("/oauth/page.js")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("closeWindow"));
}

#[tokio::test]
async fn operators_brand_the_pages_in_the_pages_section() {
    let t = TestApp::spawn_with(Options {
        extra_toml: r#"
[pages]
display_name = "好物商城"
support = "客服电话 400-000-0000"
logo_url = "https://shop.example.com/logo.png"
home_url = "https://shop.example.com/home"
"#
        .into(),
        ..Default::default()
    })
    .await;
    let body = wechat_browser()
        .get(t.url("/oauth/oa/callback?code=x&state=forged123"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let text = visible_text(&body);
    assert!(
        text.contains("好物商城") && text.contains("客服电话 400-000-0000"),
        "{text}"
    );
    assert!(text.contains("返回好物商城"), "{text}");
    assert_eq!(
        action_href(&body, "back").as_deref(),
        Some("https://shop.example.com/home")
    );
    assert!(body.contains("src=\"https://shop.example.com/logo.png\""));

    for (bad, setting) in [
        ("logo_url = \"http://x.example/l.png\"", "pages.logo_url"),
        ("home_url = \"javascript:alert(1)\"", "pages.home_url"),
    ] {
        let e = wxlink::config::Config::from_toml_str(&format!("sandbox = true\n[pages]\n{bad}\n"))
            .unwrap_err();
        assert_eq!(e.setting, setting);
    }
}
