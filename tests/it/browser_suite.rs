//! The person's side in a real browser: headless Chromium (support/chromium.rs) on a
//! 390x844 phone with WeChat's User-Agent, through the running service and its simulated
//! WeChat, back to a business site on loopback; and the sandbox walked from `/` to a
//! delivered message and a JS-SDK config on a desktop. Each test asserts what a person sees: Chinese text, no
//! internal id, buttons that lead somewhere.

use crate::support::business::Business;
use crate::support::chromium::{Device, Tab, in_chromium, is_chinese};
use crate::support::*;
use serde_json::json;
use std::sync::Arc;

/// The service with the business site on its `return_to` list.
async fn world() -> (Arc<TestApp>, Arc<Business>) {
    let business = Business::start().await;
    let t = TestApp::spawn_with(Options {
        return_to_allow: vec![format!("{}/", business.base)],
        ..Default::default()
    })
    .await;
    (Arc::new(t), Arc::new(business))
}

/// What no person page may show: ids of ours and WeChat's, operator talk.
fn assert_for_a_person(text: &str, ids: &[&str]) {
    assert!(is_chinese(text), "not written in Chinese: {text}");
    for id in ids
        .iter()
        .chain(&[OA_APPID, MP_APPID, "openid", "user_id", "unbind"])
    {
        assert!(!text.contains(id), "the page shows {id:?}: {text}");
    }
}

/// Every button leads somewhere: a link of ours, the business, or closing the page.
async fn assert_buttons_lead_somewhere(tab: &Tab, base: &str) {
    let buttons = tab.buttons().await;
    assert!(!buttons.is_empty(), "a page without a next step");
    for (label, to) in buttons {
        assert!(!label.trim().is_empty(), "a button without a label");
        assert!(
            to == "close" || to.starts_with(base) || to.starts_with('/') || to.starts_with("http"),
            "{label:?} leads to {to:?}"
        );
    }
}

#[tokio::test]
async fn phone_snsapi_base_returns_a_code_to_the_business() {
    let (t, biz) = world().await;
    let p = t.simulator.person("小明").await;
    let person = p["id"].as_str().unwrap().to_owned();
    in_chromium(
        "phone_snsapi_base",
        Device::WeChatPhone,
        move |tab| async move {
            tab.goto(&t.url(&format!(
                "/oauth/oa/authorize?scope=snsapi_base&return_to={}&client_state=cart-9",
                encode(&biz.return_to())
            )))
            .await;
            // WeChat asks who is using it (the simulator's page), once.
            tab.wait_for_outcome("sim_authorize").await;
            tab.answer_wechat(&person, "allow").await;
            let back = tab.wait_for_url(&biz.return_to()).await;
            assert_eq!(
                query_param(&back, "client_state").as_deref(),
                Some("cart-9")
            );
            let code = query_param(&back, "wxlink_code").expect("a wxlink_code");
            let r = t
                .api_post("/api/v1/login-codes/redeem", json!({ "code": code }))
                .await;
            let who: serde_json::Value = r.json().await.unwrap();
            assert_eq!(who["scope"], "snsapi_base", "{who}");
            assert!(tab.text().await.contains("商户页面"));
        },
    )
    .await;
}

#[tokio::test]
async fn phone_snsapi_userinfo_ends_on_a_success_page_in_chinese() {
    let (t, _biz) = world().await;
    let p = t.simulator.person("小红").await;
    let person = p["id"].as_str().unwrap().to_owned();
    let openid = t.sim.openid_of(OA_APPID, &person);
    in_chromium(
        "phone_snsapi_userinfo",
        Device::WeChatPhone,
        move |tab| async move {
            tab.goto(&t.url("/oauth/oa/authorize?scope=snsapi_userinfo"))
                .await;
            tab.wait_for_outcome("sim_authorize").await;
            assert!(tab.text().await.contains("昵称"), "the consent page");
            tab.answer_wechat(&person, "allow").await;
            tab.wait_for_outcome("linked").await;
            let text = tab.text().await;
            assert!(text.contains("授权成功"), "{text}");
            assert_for_a_person(&text, &[&openid, &person]);
            assert_buttons_lead_somewhere(&tab, &t.base).await;
            // A 390 px wide screen: nothing wider than the screen.
            let width = tab
                .client
                .execute("return document.documentElement.scrollWidth", vec![])
                .await
                .unwrap();
            assert!(width.as_u64().unwrap() <= 390, "scrolls sideways: {width}");
        },
    )
    .await;
}

#[tokio::test]
async fn phone_decline_comes_back_or_is_retried() {
    let (t, biz) = world().await;
    let p = t.simulator.person("小刚").await;
    let person = p["id"].as_str().unwrap().to_owned();
    let openid = t.sim.openid_of(OA_APPID, &person);
    in_chromium(
        "phone_decline_then_retry",
        Device::WeChatPhone,
        move |tab| async move {
            // With a return_to: the business hears "declined".
            tab.goto(&t.url(&format!(
                "/oauth/oa/authorize?scope=snsapi_userinfo&return_to={}",
                encode(&biz.return_to())
            )))
            .await;
            tab.wait_for_outcome("sim_authorize").await;
            tab.answer_wechat(&person, "deny").await;
            let back = tab.wait_for_url(&biz.return_to()).await;
            assert_eq!(
                query_param(&back, "wxlink_error").as_deref(),
                Some("declined")
            );
            assert_eq!(query_param(&back, "wxlink_code"), None);

            // Without one: a page that offers to try again, and trying again works.
            tab.goto(&t.url("/oauth/oa/authorize?scope=snsapi_userinfo"))
                .await;
            tab.wait_for_outcome("sim_authorize").await;
            tab.answer_wechat(&person, "deny").await;
            tab.wait_for_outcome("declined").await;
            let text = tab.text().await;
            assert_for_a_person(&text, &[&openid, &person]);
            assert!(!text.contains("授权成功"), "{text}");
            assert_buttons_lead_somewhere(&tab, &t.base).await;
            tab.click_through("[data-action=retry]").await;
            tab.wait_for_outcome("sim_authorize").await;
            assert!(tab.text().await.contains("昵称"), "the same scope again");
            tab.answer_wechat(&person, "allow").await;
            tab.wait_for_outcome("linked").await;
            assert!(tab.text().await.contains("授权成功"));
        },
    )
    .await;
}

#[tokio::test]
async fn phone_ticket_binds_once_then_comes_back_used() {
    let (t, biz) = world().await;
    let p = t.simulator.person("小李").await;
    let person = p["id"].as_str().unwrap().to_owned();
    let url = t
        .link_ticket("u-5501", json!({"app": "oa", "return_to": biz.return_to()}))
        .await;
    in_chromium("phone_ticket", Device::WeChatPhone, move |tab| async move {
        tab.goto(&url).await;
        tab.wait_for_outcome("sim_authorize").await;
        tab.answer_wechat(&person, "allow").await;
        let back = tab.wait_for_url(&biz.return_to()).await;
        assert!(query_param(&back, "wxlink_code").is_some(), "{back}");
        assert_eq!(t.api_get("/api/v1/users/u-5501").await.status(), 200);
        // The same link again (a second tap): the business hears ticket_used.
        tab.goto(&url).await;
        let back = tab.wait_for_url(&biz.return_to()).await;
        assert_eq!(
            query_param(&back, "wxlink_error").as_deref(),
            Some("ticket_used")
        );
    })
    .await;
}

#[tokio::test]
async fn phone_conflict_changes_nothing_and_says_so_without_ids() {
    let (t, biz) = world().await;
    let p = t.simulator.person("小王").await;
    let person = p["id"].as_str().unwrap().to_owned();
    let openid = t.sim.openid_of(OA_APPID, &person);
    let first = t.link_ticket("u-7781", json!({"app": "oa"})).await;
    let second = t
        .link_ticket("u-7782", json!({"app": "oa", "return_to": biz.return_to()}))
        .await;
    let third = t.link_ticket("u-7783", json!({"app": "oa"})).await;
    in_chromium(
        "phone_conflict",
        Device::WeChatPhone,
        move |tab| async move {
            tab.goto(&first).await;
            tab.wait_for_outcome("sim_authorize").await;
            tab.answer_wechat(&person, "allow").await;
            tab.wait_for_outcome("linked").await;
            // Bound to u-7781: a link for u-7782 comes back as a conflict...
            tab.goto(&second).await;
            let back = tab.wait_for_url(&biz.return_to()).await;
            assert_eq!(
                query_param(&back, "wxlink_error").as_deref(),
                Some("identity_conflict")
            );
            // ...and without a return_to the person reads why, with no id in it.
            tab.goto(&third).await;
            tab.wait_for_outcome("conflict").await;
            let text = tab.text().await;
            assert_for_a_person(&text, &["u-7781", "u-7782", "u-7783", &openid, &person]);
            assert!(!text.contains("授权成功"), "{text}");
            assert_buttons_lead_somewhere(&tab, &t.base).await;
            for user in ["u-7782", "u-7783"] {
                let r = t.api_get(&format!("/api/v1/users/{user}")).await;
                assert_eq!(r.status(), 404, "{user} stays unbound");
            }
        },
    )
    .await;
}

#[tokio::test]
async fn phone_snapshot_person_is_asked_to_open_the_full_page() {
    let (t, biz) = world().await;
    let p = t
        .simulator
        .new_person(json!({"nickname": "快照", "snapshot": true}))
        .await;
    let person = p["id"].as_str().unwrap().to_owned();
    in_chromium(
        "phone_snapshot",
        Device::WeChatPhone,
        move |tab| async move {
            tab.goto(&t.url(&format!(
                "/oauth/oa/authorize?scope=snsapi_base&return_to={}",
                encode(&biz.return_to())
            )))
            .await;
            tab.wait_for_outcome("sim_authorize").await;
            tab.answer_wechat(&person, "allow").await;
            // Only the person can act: a page, not the business.
            tab.wait_for_outcome("snapshot").await;
            let text = tab.text().await;
            assert!(text.contains("使用完整服务"), "{text}");
            assert_for_a_person(&text, &[&person]);
            assert_buttons_lead_somewhere(&tab, &t.base).await;
            let retry = tab.find("[data-action=retry]").await;
            assert!(retry.attr("href").await.unwrap().is_some());
        },
    )
    .await;
}

#[tokio::test]
async fn sandbox_walk_from_the_index_to_a_delivered_message() {
    let sb = crate::support::sandbox::sandbox().await;
    let (base, sim) = (sb.base.clone(), SimClient::new(format!("{}/sim", sb.base)));
    in_chromium("sandbox_walk", Device::Desktop, move |tab| async move {
        let _sandbox = sb;
        tab.goto(&format!("{base}/")).await;
        tab.wait_for_outcome("sandbox").await;
        // 1. A simulated person.
        tab.fill("#nickname", "沙箱新人").await;
        tab.click_through("form[action='/sandbox/people'] button")
            .await;
        tab.wait_for_outcome("sandbox").await;
        assert!(tab.text().await.contains("沙箱新人"));
        // 2. Web authorization: back on the sandbox's return_to, the identity as JSON.
        tab.click_through("button[name=scope][value=snsapi_userinfo]")
            .await;
        tab.wait_for_outcome("sim_authorize").await;
        tab.click_through("button[name=decision][value=allow]")
            .await;
        tab.wait_for_outcome("linked").await;
        let json = tab.find("pre.json").await.text().await.unwrap();
        let shown: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(shown["profile"]["nickname"], "沙箱新人");
        tab.click_through("[data-action=back]").await;
        // 3. The jump-out link for the default user, then back.
        tab.wait_for_outcome("sandbox").await;
        let user = tab
            .find("#user_id")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap();
        tab.click_through("form[action='/sandbox/ticket'] button")
            .await;
        tab.wait_for_outcome("linked").await;
        tab.click_through("[data-action=back]").await;
        // 4. The mini-program login for the same default user: no conflict.
        tab.wait_for_outcome("sandbox").await;
        let mp_user = tab
            .find("#mp_user_id")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mp_user, user);
        tab.click_through("form[action='/sandbox/mp-login'] button")
            .await;
        tab.wait_for_outcome("linked").await;
        tab.click_through("[data-action=send]").await;
        // 5. A subscribe message, followed by its page until delivered.
        tab.wait_for_outcome("sandbox").await;
        tab.find("#channel")
            .await
            .select_by_value("subscribe")
            .await
            .unwrap();
        tab.click_through("form[action='/sandbox/send'] button")
            .await;
        tab.wait_for_outcome("message").await;
        let page = tab.url().await;
        assert!(page.contains("/sandbox/messages/"), "{page}");
        tab.find("[data-status=delivered]").await;
        assert_eq!(
            tab.url().await,
            page,
            "the page reloaded itself, nothing resent"
        );
        assert_eq!(sim.messages("").await.len(), 1);
        tab.click_through("[data-action=back]").await;
        tab.wait_for_outcome("sandbox").await;
        // 6. A JS-SDK config for the sandbox's own page, which the simulator accepts.
        tab.click_through("form[action='/sandbox/js-sdk-config'] button")
            .await;
        tab.wait_for_outcome("js_sdk_config").await;
        assert!(tab.text().await.contains("config:ok"));
        tab.click_through("[data-action=back]").await;
        tab.wait_for_outcome("sandbox").await;
    })
    .await;
}
