//! The admin pages over HTTP: off without `[admin]`, refused without or with a wrong
//! credential, each page with real data (bound users, delivered and rejected messages,
//! fetched tokens, pushes, follow status), the filters and paging, hostile input escaped,
//! no secret shown.

use crate::support::*;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const ADMIN_KEY: &str = "admin-key-for-the-tests-0123";
const SHIPPED: &str = "订单号：{{keyword1.DATA}}\n快递：{{keyword2.DATA}}";
const HOSTILE: &str = "<script>alert(1)</script>";

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options {
        extra_toml: format!(
            "\n[admin]\nkey_sha256 = \"{}\"\n",
            wxlink::domain::hash_token(ADMIN_KEY)
        ),
        ..Default::default()
    })
    .await
}

/// A page fetched with the admin key as basic-auth password.
async fn page(t: &TestApp, path: &str) -> (StatusCode, String) {
    let r = t
        .api
        .get(t.url(path))
        .basic_auth("ops", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn page_ok(t: &TestApp, path: &str) -> String {
    let (status, body) = page(t, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

fn rows(body: &str, attr: &str) -> usize {
    body.matches(&format!("{attr}=\"")).count()
}

/// `s` as askama writes it into HTML.
fn escaped(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// An `href` taken from a page, unescaped.
fn unescape(s: &str) -> String {
    s.replace("&#38;", "&").replace("&amp;", "&")
}

#[tokio::test]
async fn the_admin_pages_do_not_exist_without_a_key() {
    let t = TestApp::spawn().await;
    for path in [
        "/admin",
        "/admin/users?q=42",
        "/admin/outbox",
        "/admin/messages/m1",
    ] {
        let r = t
            .api
            .get(t.url(path))
            .basic_auth("ops", Some(ADMIN_KEY))
            .send()
            .await
            .unwrap();
        let (status, outcome, _) = outcome(r).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(outcome, "not_found", "{path}");
    }
}

#[tokio::test]
async fn refused_without_or_with_a_wrong_credential() {
    let t = spawn().await;
    let challenge = |h: &HeaderMap| {
        h.get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Basic realm="))
    };
    for path in [
        "/admin",
        "/admin/users",
        "/admin/outbox",
        "/admin/messages/m1",
    ] {
        let r = t.api.get(t.url(path)).send().await.unwrap();
        assert!(challenge(r.headers()), "{path}");
        let (status, outcome_, _) = outcome(r).await;
        assert_eq!(
            (status, outcome_.as_str()),
            (StatusCode::UNAUTHORIZED, "admin_login_required"),
            "{path}"
        );
    }
    let wrong = [
        t.api.get(t.url("/admin")).basic_auth("ops", Some("nope")),
        t.api.get(t.url("/admin")).basic_auth("ops", None::<&str>),
        t.api.get(t.url("/admin")).bearer_auth("nope"),
        // The API key is not the admin key.
        t.api.get(t.url("/admin")).bearer_auth(API_KEY),
        t.api
            .get(t.url("/admin"))
            .header("authorization", "Basic %%%"),
    ];
    for req in wrong {
        let r = req.send().await.unwrap();
        assert!(challenge(r.headers()));
        let (status, outcome_, body) = outcome(r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(outcome_, "admin_key_invalid");
    }

    // Any user name with the key, or the key as a bearer token.
    let r = t
        .api
        .get(t.url("/admin"))
        .basic_auth("anyone", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let r = t
        .api
        .get(t.url("/admin/outbox"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// User 42 with an Official Account and a mini-program identity, two messages delivered
/// (one carrying hostile data), and user 43 who unfollowed, so WeChat rejected theirs.
struct World {
    t: TestApp,
    oa_openid: String,
    stranger_openid: String,
    mp_openid: String,
    unionid: String,
    sent: String,
    hostile: String,
    rejected: String,
}

async fn world() -> World {
    let t = spawn().await;
    let (_, oa_openid) = t.person_for("42", "oa", OA_APPID).await;
    let p = t.simulator.person("小明").await;
    let mp_openid = p["openids"][MP_APPID].as_str().unwrap().to_owned();
    let unionid = p["unionids"][MP_APPID].as_str().unwrap().to_owned();
    let r = t
        .bind("42", "mp", &mp_openid, json!({ "unionid": unionid }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (stranger, stranger_openid) = t.person_for("43", "oa", OA_APPID).await;
    // WeChat pushes the unfollow.
    t.sim.set_follow(OA_APPID, &stranger, false).unwrap();
    for _ in 0..250 {
        if crate::support::push::follows(&t, "oa", &stranger_openid)
            .await
            .0
            == Some(false)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let tpl = t.simulator.template(OA_APPID, "template", SHIPPED).await;
    let body = |k2: &str| {
        json!({"channel": "template", "app": "oa", "template_id": tpl,
               "data": {"keyword1": "339208499", "keyword2": k2}})
    };
    // WeChat's delivery reports (pushed by the simulator) settle them as delivered.
    let sent = t.send_ok("42", body("顺丰")).await;
    t.message_until(&sent, &["delivered"]).await;
    let hostile = t.send_ok("42", body(HOSTILE)).await;
    t.message_until(&hostile, &["delivered"]).await;
    let rejected = t.send_ok("43", body("中通")).await;
    t.message_until(&rejected, &["rejected"]).await;
    World {
        t,
        oa_openid,
        stranger_openid,
        mp_openid,
        unionid,
        sent,
        hostile,
        rejected,
    }
}

#[tokio::test]
async fn every_page_shows_real_data_and_no_secret() {
    let w = world().await;
    let t = &w.t;

    let overview = page_ok(t, "/admin").await;
    assert!(overview.contains("data-outcome=\"admin_overview\""));
    for app in ["oa", "mp", "oa2", "cl"] {
        assert!(overview.contains(&format!("data-app=\"{app}\"")), "{app}");
    }
    // oa's token was fetched today; two of its messages were sent and one rejected.
    let oa = overview.split("data-app=\"oa\"").nth(1).unwrap();
    assert!(oa.contains("s-ok\">ok<"), "{oa}");
    assert!(oa.contains("stable"));
    assert!(overview.contains("href=\"/admin/outbox?app=oa&amp;state=sent\">2</a>"));
    assert!(overview.contains("href=\"/admin/outbox?app=oa&amp;state=rejected\">1</a>"));
    assert!(overview.contains("href=\"/admin/outbox?app=mp&amp;state=sent\">0</a>"));
    let fetches = t
        .simulator
        .counter(&format!("stable_token_calls:{OA_APPID}"))
        .await;
    assert!(fetches >= 1);

    // Found by user id, by openid (of any app), by unionid: the whole user each time.
    for q in [
        "42",
        w.oa_openid.as_str(),
        w.mp_openid.as_str(),
        w.unionid.as_str(),
    ] {
        let users = page_ok(t, &format!("/admin/users?q={}", encode(q))).await;
        assert!(users.contains("data-user=\"42\""), "{q}");
        assert!(users.contains(&format!("data-openid=\"{}\"", w.oa_openid)));
        assert!(users.contains(&format!("data-openid=\"{}\"", w.mp_openid)));
        assert!(users.contains(&w.unionid));
        assert!(users.contains(&format!("data-message=\"{}\"", w.sent)));
        assert!(users.contains(&format!("data-message=\"{}\"", w.hostile)));
        assert!(!users.contains(&format!("data-message=\"{}\"", w.rejected)));
    }
    let users = page_ok(t, "/admin/users?q=43").await;
    assert!(users.contains(&format!("data-message=\"{}\"", w.rejected)));
    assert!(users.contains("43004"));
    assert!(users.contains("data-follows=\"unfollowed\""), "{users}");

    // The pushes: two delivery reports, an unsubscribe.
    let pushes = page_ok(t, "/admin/pushes").await;
    assert!(pushes.contains("data-outcome=\"admin_pushes\""));
    assert_eq!(
        pushes
            .matches("data-type=\"TEMPLATESENDJOBFINISH\"")
            .count(),
        2,
        "{pushes}"
    );
    let reports = page_ok(t, "/admin/pushes?app=oa&type=TEMPLATESENDJOBFINISH").await;
    assert_eq!(rows(&reports, "data-push"), 2);
    assert!(reports.contains("s-ok\">handled</span>"));
    assert!(reports.contains(&escaped("<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>")));
    let unfollow = page_ok(t, "/admin/pushes?type=unsubscribe").await;
    assert_eq!(rows(&unfollow, "data-push"), 1);
    assert!(unfollow.contains(&w.stranger_openid));
    let none = page_ok(t, "/admin/pushes?app=mp").await;
    assert_eq!(rows(&none, "data-push"), 0);
    let (status, _) = page(t, "/admin/pushes?before=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let overview = page_ok(t, "/admin").await;
    assert!(overview.contains("href=\"/admin/pushes?app=oa\">"));
    let users = page_ok(t, "/admin/users?q=nobody").await;
    assert!(users.contains("data-found=\"0\""));
    let users = page_ok(t, "/admin/users").await;
    assert_eq!(rows(&users, "data-user"), 0);

    let detail = page_ok(t, &format!("/admin/messages/{}", w.sent)).await;
    assert!(detail.contains("data-outcome=\"admin_message\""));
    for state in ["queued", "sending", "sent", "delivered"] {
        assert!(detail.contains(&format!("s-{state}\">{state}</span></td>")));
    }
    assert!(detail.contains("339208499"));
    assert!(detail.contains(&w.oa_openid));
    let m = t.message(&w.sent).await;
    assert!(detail.contains(m["msgid"].as_str().unwrap()));
    let detail = page_ok(t, &format!("/admin/messages/{}", w.rejected)).await;
    assert!(detail.contains("43004"));
    let (status, _) = page(t, "/admin/messages/m0000nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // No page shows the access token or a key.
    let token: Value = t.api_json("/api/v1/apps/oa/access-token").await;
    let token = token["access_token"].as_str().unwrap();
    for path in [
        "/admin".to_owned(),
        "/admin/users?q=42".to_owned(),
        "/admin/outbox".to_owned(),
        format!("/admin/messages/{}", w.sent),
    ] {
        let body = page_ok(t, &path).await;
        assert!(!body.contains(token), "{path} shows the access token");
        assert!(
            !body.contains(ADMIN_KEY) && !body.contains(API_KEY),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_outbox_filters_by_state_app_and_channel() {
    let w = world().await;
    let t = &w.t;
    let all = page_ok(t, "/admin/outbox").await;
    assert_eq!(rows(&all, "data-message"), 3);
    // Newest first.
    let pos = |id: &str| all.find(&format!("data-message=\"{id}\"")).unwrap();
    assert!(pos(&w.rejected) < pos(&w.hostile) && pos(&w.hostile) < pos(&w.sent));

    let rejected = page_ok(t, "/admin/outbox?state=rejected").await;
    assert_eq!(rows(&rejected, "data-message"), 1);
    assert!(rejected.contains(&format!("data-message=\"{}\"", w.rejected)));
    assert!(rejected.contains("<option selected>rejected</option>"));
    let delivered = page_ok(t, "/admin/outbox?state=delivered&app=oa&channel=template").await;
    assert_eq!(rows(&delivered, "data-message"), 2);
    assert_eq!(delivered.matches("data-status=\"delivered\"").count(), 2);
    let sent = page_ok(t, "/admin/outbox?state=sent").await;
    assert_eq!(rows(&sent, "data-message"), 0);
    let none = page_ok(t, "/admin/outbox?app=mp").await;
    assert_eq!(rows(&none, "data-message"), 0);
    let none = page_ok(t, "/admin/outbox?channel=subscribe&state=").await;
    assert_eq!(rows(&none, "data-message"), 0);

    for bad in [
        "/admin/outbox?state=bogus",
        "/admin/outbox?app=nope",
        "/admin/outbox?app=%3Cscript%3E",
        "/admin/outbox?channel=sms",
        "/admin/outbox?before=%3Cscript%3E",
    ] {
        let (status, body) = page(t, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(!body.contains("<script>"), "{bad}");
    }
}

#[tokio::test]
async fn the_outbox_pages_newest_first() {
    let t = spawn().await;
    t.person_for("42", "oa", OA_APPID).await;
    let tpl = t.simulator.template(OA_APPID, "template", SHIPPED).await;
    let mut ids = Vec::new();
    for i in 0..55 {
        let body = json!({"channel": "template", "app": "oa", "template_id": tpl,
                          "data": {"keyword1": format!("{i}"), "keyword2": "顺丰"}});
        ids.push(t.send_ok("42", body).await);
    }
    let first = page_ok(&t, "/admin/outbox?app=oa").await;
    assert_eq!(rows(&first, "data-message"), 50);
    assert!(first.contains(&format!("data-message=\"{}\"", ids[54])));
    assert!(!first.contains(&format!("data-message=\"{}\"", ids[4])));
    let next = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(unescape)
        .expect("a link to older messages");
    assert!(next.contains("app=oa"), "{next}");
    let second = page_ok(&t, &next).await;
    assert_eq!(rows(&second, "data-message"), 5);
    for id in &ids[..5] {
        assert!(second.contains(&format!("data-message=\"{id}\"")));
    }
    assert!(!second.contains("rel=\"next\""));
}

#[tokio::test]
async fn hostile_input_is_escaped() {
    let w = world().await;
    let t = &w.t;
    let detail = page_ok(t, &format!("/admin/messages/{}", w.hostile)).await;
    assert!(!detail.contains(HOSTILE), "raw script on the page");
    assert!(detail.contains(&escaped(HOSTILE)));

    let q = "<script>alert(2)</script>\"><b>";
    let users = page_ok(t, &format!("/admin/users?q={}", encode(q))).await;
    assert!(!users.contains("<script>alert(2)"));
    assert!(!users.contains("\"><b>"));
    assert!(users.contains(&escaped(q)));

    let (status, body) = page(t, &format!("/admin/messages/{}", encode(HOSTILE))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.contains(HOSTILE));
}
