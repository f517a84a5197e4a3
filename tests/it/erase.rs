//! `DELETE /api/v1/users/{user_id}`: erasing a person (a deletion request under
//! personal-information law). Everything of theirs goes (identities in every app, web
//! tokens, sealed session keys, link tickets, login codes, consent, follower lookups,
//! pushes and the windows they opened); their messages keep state and history without
//! payload or openid; a second erase finds nothing; the `user.deleted` event is delivered
//! once; another person's data stays.

use crate::support::browser::{location, query_param, wechat_browser};
use crate::support::webhooks::{SECRET, with_receiver};
use crate::support::{MP_APPID, OA_APPID, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Rows of `table` whose `column` is `value`, straight from the database.
async fn rows(t: &TestApp, table: &str, column: &str, value: &str) -> i64 {
    use sqlx::Connection;
    let url = &t.ctx.config.database_url;
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
    let (n,): (i64,) = if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(&sql)
            .bind(value)
            .fetch_one(&mut c)
            .await
            .unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(&sql)
            .bind(value)
            .fetch_one(&mut c)
            .await
            .unwrap()
    };
    n
}

/// A person known in both apps as `user`: a mini-program login (session key), a web
/// sign-in through a link ticket (web token) whose login code is left unredeemed, a
/// second pending ticket, a subscription, a muted category and a sent message.
async fn a_known_person(t: &TestApp, user: &str, templates: &(String, String)) -> Known {
    let p = t.simulator.person(user).await;
    let person = p["id"].as_str().unwrap();
    let code = t.simulator.login_code(person, MP_APPID).await;
    let r = t
        .mp_session("mp", json!({"js_code": code, "user_id": user}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let url = t
        .link_ticket(
            user,
            json!({"app": "oa", "scope": "snsapi_userinfo", "return_to": "https://shop.example.com/linked"}),
        )
        .await;
    let b = wechat_browser();
    let r = t.sign_in_url(&b, &url, person, "allow").await;
    let login_code = query_param(&location(&r), "wxlink_code").expect("a login code");
    let pending = t.link_ticket(user, json!({"app": "oa"})).await;
    let (tpl, sub) = templates;
    let r = t
        .api_post(
            &format!("/api/v1/users/{user}/subscriptions"),
            json!({"app": "mp", "template_id": sub}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = t
        .api_put(
            &format!("/api/v1/users/{user}/preferences"),
            json!({"muted": ["marketing"]}),
        )
        .await;
    assert!(r.status().is_success());
    let id = t
        .send_ok(user, json!({"channel": "template", "app": "oa", "template_id": tpl, "data": {"keyword1": "339208499"}}))
        .await;
    t.sent(&id).await;
    Known {
        person: p,
        login_code,
        pending_ticket: pending,
        message: id,
    }
}

struct Known {
    person: Value,
    login_code: String,
    pending_ticket: String,
    message: String,
}

#[tokio::test]
async fn deleting_a_user_erases_the_person_once_and_says_what() {
    let (t, receiver) = with_receiver(&["user.deleted"], &[SECRET]).await;
    let templates = (
        t.simulator
            .template(OA_APPID, "template", "订单：{{keyword1.DATA}}")
            .await,
        t.simulator
            .template(MP_APPID, "subscribe", "商品：{{thing1.DATA}}")
            .await,
    );
    let Known {
        person: p,
        login_code,
        pending_ticket,
        message,
    } = a_known_person(&t, "u-gone", &templates).await;
    let keeper = a_known_person(&t, "u-stays", &templates).await.person;
    let oa_openid = p["openids"][OA_APPID].as_str().unwrap();
    let mp_openid = p["openids"][MP_APPID].as_str().unwrap();
    assert_eq!(rows(&t, "mp_sessions", "openid", mp_openid).await, 1);
    assert_eq!(rows(&t, "web_tokens", "openid", oa_openid).await, 1);
    // They follow the Official Account: the push opens a customer-service window and
    // queues a follower-info lookup, which the background fill then does.
    t.sim
        .set_follow(OA_APPID, p["id"].as_str().unwrap(), true)
        .unwrap();
    let mut looked_up = false;
    for _ in 0..250 {
        looked_up = rows(&t, "follower_lookups", "openid", oa_openid).await == 1;
        if looked_up {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(looked_up, "the follow push led to a follower-info lookup");
    assert_eq!(rows(&t, "custom_windows", "openid", oa_openid).await, 1);

    let r = t.api_delete("/api/v1/users/u-gone").await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user_id"], "u-gone");
    let erased = &v["erased"];
    assert_eq!(erased["identities"], 2, "{v}");
    assert_eq!(erased["web_tokens"], 1, "{v}");
    assert_eq!(erased["session_keys"], 1, "{v}");
    assert_eq!(erased["link_tickets"], 2, "{v}");
    assert_eq!(erased["login_codes"], 1, "{v}");
    assert_eq!(erased["subscriptions"], 1, "{v}");
    assert_eq!(erased["muted_categories"], 1, "{v}");
    assert_eq!(erased["messages_erased"], 1, "{v}");
    assert_eq!(erased["messages_cancelled"], 0, "{v}");
    assert_eq!(erased["custom_windows"], 1, "{v}");
    assert_eq!(erased["follower_lookups"], 1, "{v}");
    assert!(v["event_id"].as_str().unwrap().starts_with("evt_"));

    // Nothing of theirs is left to find.
    let r = t.api_get("/api/v1/users/u-gone").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    for (app, openid) in [("oa", oa_openid), ("mp", mp_openid)] {
        let v = t
            .api_json(&format!("/api/v1/apps/{app}/identities/{openid}"))
            .await;
        assert_eq!(v["error"]["code"], "identity_unknown", "{v}");
    }
    for (table, column, value) in [
        ("identities", "user_id", "u-gone"),
        ("identities", "openid", oa_openid),
        ("identities", "openid", mp_openid),
        ("web_tokens", "openid", oa_openid),
        ("mp_sessions", "openid", mp_openid),
        ("login_codes", "openid", oa_openid),
        ("link_tickets", "user_id", "u-gone"),
        ("subscriptions", "openid", mp_openid),
        ("muted_categories", "user_id", "u-gone"),
        ("messages", "openid", oa_openid),
        ("form_ids", "openid", mp_openid),
        ("push_events", "openid", oa_openid),
        ("push_delivery_reports", "openid", oa_openid),
        ("push_forwards", "openid", oa_openid),
        ("custom_windows", "openid", oa_openid),
        ("follower_lookups", "openid", oa_openid),
        ("follower_refresh_queue", "openid", oa_openid),
    ] {
        assert_eq!(rows(&t, table, column, value).await, 0, "{table}.{column}");
    }
    let r = t
        .api_post("/api/v1/login-codes/redeem", json!({ "code": login_code }))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = wechat_browser().get(&pending_ticket).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "the pending ticket is gone"
    );

    // The message keeps its state and history, without what it said or to whom.
    let m = t.message(&message).await;
    assert!(m["status"] == "sent" || m["status"] == "delivered", "{m}");
    assert_eq!(m["openid"], "erased", "{m}");
    assert_eq!(rows(&t, "messages", "payload", "{}").await, 1);
    assert!(m["history"].as_array().unwrap().len() >= 2, "{m}");
    let listed: Value = t.api_json("/api/v1/users/u-gone/messages").await;
    assert_eq!(listed["messages"].as_array().unwrap().len(), 1);

    // Again: nothing left, no second event.
    let r = t.api_delete("/api/v1/users/u-gone").await;
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    assert!(
        again["erased"]
            .as_object()
            .unwrap()
            .values()
            .all(|n| n == 0),
        "{again}"
    );
    assert!(again["event_id"].is_null());

    let event = receiver.event("user.deleted").await;
    assert_eq!(event.body["id"], v["event_id"]);
    assert_eq!(event.body["data"]["user_id"], "u-gone");
    assert_eq!(event.body["data"]["erased"], v["erased"]);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        receiver
            .received()
            .iter()
            .filter(|r| r.body["type"] == "user.deleted")
            .count(),
        1
    );

    // The other person is untouched.
    let kept: Value = t.api_json("/api/v1/users/u-stays").await;
    assert_eq!(kept["identities"].as_array().unwrap().len(), 2, "{kept}");
    assert_eq!(
        rows(
            &t,
            "mp_sessions",
            "openid",
            keeper["openids"][MP_APPID].as_str().unwrap()
        )
        .await,
        1
    );
    assert_eq!(rows(&t, "link_tickets", "user_id", "u-stays").await, 2);
}

/// A queued message of an erased person is not sent: it fails, `user deleted`.
#[tokio::test]
async fn a_queued_message_of_an_erased_user_is_not_sent() {
    let t = TestApp::spawn().await;
    t.person_for("u-q", "oa", OA_APPID).await;
    let tpl = t
        .simulator
        .template(OA_APPID, "template", "订单：{{keyword1.DATA}}")
        .await;
    // WeChat's daily quota is spent: the channel is held and the message waits queued.
    t.simulator.faults(json!({"quota_after": 0})).await;
    let id = t
        .send_ok("u-q", json!({"channel": "template", "app": "oa", "template_id": tpl, "data": {"keyword1": "1"}}))
        .await;
    let mut m = t.message(&id).await;
    for _ in 0..200 {
        if m["held_until_ms"].is_i64() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        m = t.message(&id).await;
    }
    assert_eq!(m["status"], "queued", "{m}");
    assert!(m["held_until_ms"].is_i64(), "{m}");
    let v: Value = t
        .api_delete("/api/v1/users/u-q")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["erased"]["messages_cancelled"], 1, "{v}");
    let m = t.message(&id).await;
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["reason"], "user deleted", "{m}");
    assert_eq!(m["openid"], "erased", "{m}");
    // The next Beijing day the hold ends; nothing is sent for the erased person.
    t.simulator.faults(json!({})).await;
    let now = t.clock.now();
    t.advance(wxlink::clock::next_beijing_midnight(now) - now + 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(t.message(&id).await["status"], "failed");
    assert_eq!(t.simulator.messages("?channel=template").await.len(), 0);
}
