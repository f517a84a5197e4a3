//! Mini-program identities: login through jscode2session, linking across apps, login
//! errors, and the jump-out recipe (mini-program login -> link ticket -> web-view ->
//! silent snsapi_base -> the Official Account openid bound to the same user), with and
//! without unionid.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wxlink::domain::{AppId, OpenId};

/// `mp2`: a mini-program outside any unionid group (no Open Platform binding).
const MP2_TOML: &str = r#"
[[apps]]
id = "mp2"
kind = "mini_program"
appid = "wxtestmp20000005"
secret = "mp2-secret"
api_base = "{SIM}"
open_base = "{SIM}"
"#;

async fn spawn_with_mp2() -> TestApp {
    TestApp::spawn_with(Options {
        extra_toml: MP2_TOML.into(),
        ..Options::default()
    })
    .await
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, v)
}

/// `wx.login` for `person` in `appid`, then the backend's session call.
async fn login(
    t: &TestApp,
    app: &str,
    appid: &str,
    person: &str,
    user: Option<&str>,
) -> (StatusCode, Value) {
    let code = t.simulator.login_code(person, appid).await;
    let mut body = json!({ "js_code": code });
    if let Some(u) = user {
        body["user_id"] = json!(u);
    }
    json_of(t.mp_session(app, body).await).await
}

fn id(p: &Value) -> &str {
    p["id"].as_str().unwrap()
}

/// The user's identities as `app -> identity`.
async fn identities(t: &TestApp, user: &str) -> (StatusCode, Value) {
    let (status, v) = json_of(t.api_get(&format!("/api/v1/users/{user}")).await).await;
    if status != StatusCode::OK {
        return (status, v);
    }
    let mut by_app = serde_json::Map::new();
    for i in v["identities"].as_array().unwrap() {
        by_app.insert(i["app"].as_str().unwrap().to_owned(), i.clone());
    }
    (status, Value::Object(by_app))
}

/// Opens a link in the WeChat browser as `person` (silent for snsapi_base) and follows the
/// callback; returns the callback's answer.
async fn open_in_wechat(t: &TestApp, url: &str, person: &str) -> reqwest::Response {
    let b = wechat_browser();
    let callback = t.through_wechat(&b, url, person, "allow").await;
    b.get(callback).send().await.unwrap()
}

#[tokio::test]
async fn a_first_login_without_user_id_says_the_person_is_new() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("小程序用户").await;
    let (status, v) = login(&t, "mp", MP_APPID, id(&p), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({
            "user_id": null,
            "app": "mp",
            "openid": p["openids"][MP_APPID],
            "unionid": p["unionids"][MP_APPID],
        })
    );
    assert_eq!(t.simulator.counter("logins").await, 1);
}

#[tokio::test]
async fn a_login_with_user_id_binds_and_later_logins_find_the_user_by_openid() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    // New person: the backend creates its user, then passes its id on the next login.
    let (_, v) = login(&t, "mp", MP_APPID, id(&p), None).await;
    assert!(v["user_id"].is_null());
    let (status, v) = login(&t, "mp", MP_APPID, id(&p), Some("u-1")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user_id"], "u-1");
    // The same user id again is fine (idempotent).
    let (status, v) = login(&t, "mp", MP_APPID, id(&p), Some("u-1")).await;
    assert_eq!((status, &v["user_id"]), (StatusCode::OK, &json!("u-1")));
    // Without user_id the openid finds the user.
    let (_, v) = login(&t, "mp", MP_APPID, id(&p), None).await;
    assert_eq!(v["user_id"], "u-1");

    let (status, ids) = identities(&t, "u-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids["mp"]["openid"], p["openids"][MP_APPID]);
    assert_eq!(ids["mp"]["unionid"], p["unionids"][MP_APPID]);
}

#[tokio::test]
async fn a_login_without_user_id_finds_the_user_through_the_unionid() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    // The Official Account identity is already bound to u-2 (with its unionid).
    let oa_openid = p["openids"][OA_APPID].as_str().unwrap();
    let r = t
        .bind(
            "u-2",
            "oa",
            oa_openid,
            json!({ "unionid": p["unionids"][OA_APPID] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let (status, v) = login(&t, "mp", MP_APPID, id(&p), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user_id"], "u-2", "joined through the unionid");
    let (_, ids) = identities(&t, "u-2").await;
    assert_eq!(ids["oa"]["openid"], oa_openid);
    assert_eq!(ids["mp"]["openid"], p["openids"][MP_APPID]);
}

#[tokio::test]
async fn the_session_key_is_sealed_at_rest_and_never_returned() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let (status, first) = login(&t, "mp", MP_APPID, id(&p), Some("u-3")).await;
    assert_eq!(status, StatusCode::OK);
    let sk = t.sim.session_key_of(MP_APPID, id(&p)).unwrap();

    let app = AppId::parse("mp").unwrap();
    let openid = OpenId::parse(first["openid"].as_str().unwrap()).unwrap();
    let stored = t
        .ctx
        .store
        .sealed_session_key(&app, &openid)
        .await
        .unwrap()
        .expect("a stored session key");
    let raw = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&sk)
            .unwrap()
    };
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(&stored, sk.as_bytes()), "not the base64 text");
    assert!(!contains(&stored, &raw), "not the raw bytes");
    // It opens with the storage key, to exactly what WeChat sent.
    let opened = wxlink::identity::mini_program::session_key(&t.ctx, &app, &openid)
        .await
        .unwrap()
        .unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(opened.expose_secret(), sk);

    // A later login replaces it; no answer ever carries it.
    let (_, again) = login(&t, "mp", MP_APPID, id(&p), None).await;
    let sk2 = t.sim.session_key_of(MP_APPID, id(&p)).unwrap();
    assert_ne!(sk2, sk);
    let opened = wxlink::identity::mini_program::session_key(&t.ctx, &app, &openid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(opened.expose_secret(), sk2);
    let (_, conflict) = login(&t, "mp", MP_APPID, id(&p), Some("someone-else")).await;
    let sk3 = t.sim.session_key_of(MP_APPID, id(&p)).unwrap();
    let user = t.api_get("/api/v1/users/u-3").await.text().await.unwrap();
    for body in [
        first.to_string(),
        again.to_string(),
        conflict.to_string(),
        user,
    ] {
        assert!(!body.contains("session_key"), "{body}");
        for key in [&sk, &sk2, &sk3] {
            assert!(!body.contains(key.as_str()), "{body}");
        }
    }
}

#[tokio::test]
async fn binding_conflicts_name_both_users_and_bind_nothing() {
    let t = TestApp::spawn().await;

    // Via openid: the mini-program identity already belongs to u-a.
    let p = t.simulator.person("p").await;
    login(&t, "mp", MP_APPID, id(&p), Some("u-a")).await;
    let (status, v) = login(&t, "mp", MP_APPID, id(&p), Some("u-b")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let e = &v["error"];
    assert_eq!(e["code"], "identity_conflict");
    assert_eq!(e["existing_user_id"], "u-a");
    assert_eq!(e["requested_user_id"], "u-b");
    assert_eq!(e["via"], "openid");
    assert_eq!(e["openid"], p["openids"][MP_APPID]);
    assert_eq!(identities(&t, "u-b").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        identities(&t, "u-a").await.1["mp"]["openid"],
        p["openids"][MP_APPID]
    );

    // Via unionid: the same person's Official Account identity belongs to u-c.
    let q = t.simulator.person("q").await;
    t.bind(
        "u-c",
        "oa",
        q["openids"][OA_APPID].as_str().unwrap(),
        json!({ "unionid": q["unionids"][OA_APPID] }),
    )
    .await;
    let (status, v) = login(&t, "mp", MP_APPID, id(&q), Some("u-d")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let e = &v["error"];
    assert_eq!(e["existing_user_id"], "u-c");
    assert_eq!(e["requested_user_id"], "u-d");
    assert_eq!(e["via"], "unionid");
    assert_eq!(identities(&t, "u-d").await.0, StatusCode::NOT_FOUND);
    // The identity was stored: a login without user_id joins it to u-c.
    let (_, v) = login(&t, "mp", MP_APPID, id(&q), None).await;
    assert_eq!(v["user_id"], "u-c");
}

#[tokio::test]
async fn a_unionid_already_split_between_two_users_is_a_conflict_naming_both() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("p").await;
    let person = id(&p);
    // oa2 is not yet on the Open Platform: its identity is linked to u-a without unionid.
    let url = t
        .link_ticket("u-a", json!({ "app": "oa2", "scope": "snsapi_base" }))
        .await;
    assert_eq!(
        outcome(open_in_wechat(&t, &url, person).await).await.1,
        "linked"
    );
    // The Official Account oa (unionid U) is linked to u-b.
    let url = t
        .link_ticket("u-b", json!({ "app": "oa", "scope": "snsapi_base" }))
        .await;
    assert_eq!(
        outcome(open_in_wechat(&t, &url, person).await).await.1,
        "linked"
    );
    // oa2 joins the Open Platform; the person's next visit brings U to u-a's identity.
    let domain = t.base.trim_start_matches("http://").to_owned();
    t.simulator
        .add_app(
            json!({"appid": OA2_APPID, "secret": "oa2-secret", "kind": "official_account",
                      "auth_domain": domain, "unionid_group": "g1"}),
        )
        .await;
    let b = wechat_browser();
    t.sign_in(
        &b,
        "/oauth/oa2/authorize?scope=snsapi_base",
        person,
        "allow",
    )
    .await;
    let (_, ids) = identities(&t, "u-a").await;
    assert_eq!(ids["oa2"]["unionid"], p["unionids"][OA_APPID]);

    // Now U belongs to u-a and u-b: the mini-program login picks neither.
    let (status, v) = login(&t, "mp", MP_APPID, person, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "identity_conflict");
    assert_eq!(v["error"]["via"], "unionid");
    assert_eq!(v["error"]["user_ids"], json!(["u-a", "u-b"]));
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("u-a") && msg.contains("u-b"), "{msg}");

    // Unbinding one identity resolves it and leaves the other identities alone.
    let r = t
        .api_delete(&format!(
            "/api/v1/users/u-a/identities/oa2/{}",
            p["openids"][OA2_APPID].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, v) = login(&t, "mp", MP_APPID, person, None).await;
    assert_eq!((status, &v["user_id"]), (StatusCode::OK, &json!("u-b")));
    let (_, ids) = identities(&t, "u-b").await;
    assert!(ids.get("oa").is_some() && ids.get("mp").is_some(), "{ids}");
    assert_eq!(identities(&t, "u-a").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn login_errors_are_told_apart() {
    let t = spawn_with_mp2().await;
    let p = t.simulator.person("p").await;
    let person = id(&p);
    let session = async |app: &str, body: Value| json_of(t.mp_session(app, body).await).await;
    let check = |(status, v): (StatusCode, Value), want: StatusCode, code: &str, errcode| {
        assert_eq!(status, want, "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert_eq!(v["error"]["errcode"], json!(errcode), "{v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    };

    // 40029: a code WeChat never issued, or one issued to another mini-program.
    check(
        session("mp", json!({"js_code": "0a1b2c3d4e5f"})).await,
        StatusCode::BAD_REQUEST,
        "js_code_invalid",
        40029,
    );
    let foreign = t.simulator.login_code(person, MP2_APPID).await;
    check(
        session("mp", json!({ "js_code": foreign })).await,
        StatusCode::BAD_REQUEST,
        "js_code_invalid",
        40029,
    );
    // ... or one older than 5 minutes.
    let old = t.simulator.login_code(person, MP_APPID).await;
    t.sim_clock.advance(301);
    check(
        session("mp", json!({ "js_code": old })).await,
        StatusCode::BAD_REQUEST,
        "js_code_invalid",
        40029,
    );
    assert_eq!(t.simulator.counter("login_rejected_expired").await, 1);

    // 40163: each code works once.
    let code = t.simulator.login_code(person, MP_APPID).await;
    assert_eq!(
        session("mp", json!({ "js_code": code })).await.0,
        StatusCode::OK
    );
    check(
        session("mp", json!({ "js_code": code })).await,
        StatusCode::GONE,
        "js_code_used",
        40163,
    );

    // Refused before WeChat is asked.
    let asked = t.simulator.counter("jscode2session").await;
    let local = |(status, v): (StatusCode, Value), want: StatusCode, code: &str| {
        assert_eq!(status, want, "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
    };
    local(
        session("mp", json!({"js_code": ""})).await,
        StatusCode::BAD_REQUEST,
        "js_code_invalid",
    );
    local(
        session("mp", json!({"js_code": "a b"})).await,
        StatusCode::BAD_REQUEST,
        "js_code_invalid",
    );
    local(
        session("mp", json!({"user_id": "u-1"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );
    local(
        session("mp", json!({"js_code": "x", "session_key": "y"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );
    local(
        session("mp", json!({"js_code": "x", "user_id": "../1"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_user_id",
    );
    local(
        session("oa", json!({"js_code": "x"})).await,
        StatusCode::BAD_REQUEST,
        "not_mini_program",
    );
    local(
        session("nope", json!({"js_code": "x"})).await,
        StatusCode::NOT_FOUND,
        "unknown_app",
    );
    let r = t
        .api
        .post(t.url("/api/v1/apps/mp/sessions"))
        .json(&json!({"js_code": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(t.simulator.counter("jscode2session").await, asked);

    // WeChat busy or down: 502, and the code is not lost for a retry.
    let code = t.simulator.login_code(person, MP_APPID).await;
    t.simulator
        .faults(json!({"mode": "busy", "count": 1}))
        .await;
    check(
        session("mp", json!({ "js_code": code })).await,
        StatusCode::BAD_GATEWAY,
        "wechat_error",
        -1,
    );
    t.simulator
        .faults(json!({"mode": "down", "count": 1}))
        .await;
    let (status, v) = session("mp", json!({ "js_code": code })).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "wechat_error");
    assert_eq!(
        session("mp", json!({ "js_code": code })).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_wrong_mini_program_secret_is_a_refusal_naming_the_cause() {
    let t = TestApp::spawn_with(Options {
        extra_toml: MP2_TOML.replace("mp2-secret", "not-the-secret"),
        ..Options::default()
    })
    .await;
    let p = t.simulator.person("p").await;
    let (status, v) = login(&t, "mp2", MP2_APPID, id(&p), None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "wechat_refused");
    assert_eq!(v["error"]["errcode"], 40125);
}

#[tokio::test]
async fn the_per_person_login_limit_answers_429_with_retry_after() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("busy").await;
    let other = t.simulator.person("calm").await;
    // 100 logins within the minute, straight at the simulator.
    for _ in 0..100 {
        let code = t.simulator.login_code(id(&p), MP_APPID).await;
        let v: Value = t
            .api
            .get(format!("{}/sns/jscode2session", t.simulator.base()))
            .query(&[
                ("appid", MP_APPID),
                ("secret", "mp-secret"),
                ("js_code", &code),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(v.get("openid").is_some(), "{v}");
    }
    let code = t.simulator.login_code(id(&p), MP_APPID).await;
    let r = t.mp_session("mp", json!({ "js_code": code })).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "60");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "login_rate_limited");
    assert_eq!(v["error"]["errcode"], 45011);
    // Someone else is not affected.
    assert_eq!(
        login(&t, "mp", MP_APPID, id(&other), None).await.0,
        StatusCode::OK
    );
    // A minute later the same person logs in, and the refused code was not spent.
    t.sim_clock.advance(61);
    let (status, v) = json_of(t.mp_session("mp", json!({ "js_code": code })).await).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn a_blocked_person_cannot_log_in_until_unblocked() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("risky").await;
    let block = async |what: &str| {
        let r = t
            .api
            .post(t.simulator.url(&format!("/_sim/people/{}/{what}", id(&p))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    };
    block("block").await;
    let person = t.simulator.get(&format!("/_sim/people/{}", id(&p))).await;
    assert_eq!(person["blocked"], true);
    let (status, v) = login(&t, "mp", MP_APPID, id(&p), Some("u-9")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "user_blocked");
    assert_eq!(v["error"]["errcode"], 40226);
    assert_eq!(identities(&t, "u-9").await.0, StatusCode::NOT_FOUND);

    block("unblock").await;
    let (status, v) = login(&t, "mp", MP_APPID, id(&p), Some("u-9")).await;
    assert_eq!((status, &v["user_id"]), (StatusCode::OK, &json!("u-9")));
}

#[tokio::test]
async fn the_simulator_keeps_wechats_login_rules() {
    let t = spawn_with_mp2().await;
    let p = t.simulator.person("p").await;
    let call = async |appid: &str, secret: &str, code: &str| -> Value {
        t.api
            .get(format!("{}/sns/jscode2session", t.simulator.base()))
            .query(&[
                ("appid", appid),
                ("secret", secret),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    // The minted code answers with the same openid/unionid the person has everywhere.
    let r = t
        .api
        .post(t.simulator.url("/_sim/login-codes"))
        .json(&json!({"person": id(&p), "appid": MP_APPID}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let minted: Value = r.json().await.unwrap();
    assert_eq!(minted["expires_in"], 300);
    assert_eq!(minted["openid"], p["openids"][MP_APPID]);
    let code = minted["code"].as_str().unwrap();
    assert_eq!(call(MP_APPID, "wrong", code).await["errcode"], 40125);
    assert_eq!(call("wxnobody", "mp-secret", code).await["errcode"], 40013);
    let ok = call(MP_APPID, "mp-secret", code).await;
    assert_eq!(ok["openid"], p["openids"][MP_APPID]);
    assert_eq!(ok["unionid"], p["unionids"][MP_APPID]);
    assert_eq!(
        ok["unionid"], p["unionids"][OA_APPID],
        "one person, one unionid"
    );
    assert_eq!(
        ok["session_key"].as_str().unwrap(),
        t.sim.session_key_of(MP_APPID, id(&p)).unwrap()
    );
    assert_eq!(call(MP_APPID, "mp-secret", code).await["errcode"], 40163);

    // No unionid outside a group.
    let code = t.simulator.login_code(id(&p), MP2_APPID).await;
    let ok = call(MP2_APPID, "mp2-secret", &code).await;
    assert_eq!(ok["openid"], p["openids"][MP2_APPID]);
    assert!(ok.get("unionid").is_none(), "{ok}");

    // Codes exist only for known people and mini-programs.
    for (body, want) in [
        (json!({"person": "p999", "appid": MP_APPID}), 404),
        (json!({"person": id(&p), "appid": "wxnobody"}), 404),
        (json!({"person": id(&p), "appid": OA_APPID}), 400),
    ] {
        let r = t
            .api
            .post(t.simulator.url("/_sim/login-codes"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{body}");
    }
    let stats = t.simulator.stats().await;
    assert_eq!(stats["logins"], 2);
    assert_eq!(stats["login_rejected_used"], 1);
}

/// The recipe of the README, with an Open Platform binding: mp and oa share unionids.
#[tokio::test]
async fn the_jump_out_recipe_with_unionid() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("小明").await;
    let person = id(&p);

    // 1. The mini-program logs in; its backend knows the person as u-1001.
    let (status, v) = login(&t, "mp", MP_APPID, person, Some("u-1001")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user_id"], "u-1001");

    // 2. The backend mints a link ticket for u-1001 on the Official Account.
    let url = t
        .link_ticket(
            "u-1001",
            json!({"app": "oa", "scope": "snsapi_base",
                   "return_to": "https://shop.example.com/linked"}),
        )
        .await;

    // 3-4. The web-view opens it; silent snsapi_base authorization; back to return_to.
    let r = open_in_wechat(&t, &url, person).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(location(&r).starts_with("https://shop.example.com/linked?wxlink_code="));
    let redeemed = t.redeem_from(&r).await;
    assert_eq!(redeemed["app"], "oa");
    assert_eq!(redeemed["user_id"], "u-1001");
    assert_eq!(redeemed["openid"], p["openids"][OA_APPID]);

    // 5. The Official Account openid is bound to the same user as the mini-program's.
    let (status, ids) = identities(&t, "u-1001").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids.as_object().unwrap().len(), 2, "{ids}");
    assert_eq!(ids["mp"]["openid"], p["openids"][MP_APPID]);
    assert_eq!(ids["oa"]["openid"], p["openids"][OA_APPID]);
    assert_eq!(ids["oa"]["unionid"], ids["mp"]["unionid"]);
    assert!(!ids["oa"]["unionid"].is_null());

    // 6. The backend sends by business user id on either channel.
    sends_reach_both_openids(&t, "u-1001", ("oa", OA_APPID), ("mp", MP_APPID), &p).await;
}

/// Step 6 of the recipe: a template message reaches the person's Official Account openid, a
/// subscribe message (after the person accepted it in the mini-program) the mini-program's.
async fn sends_reach_both_openids(
    t: &TestApp,
    user: &str,
    (oa, oa_appid): (&str, &str),
    (mp, mp_appid): (&str, &str),
    p: &Value,
) {
    let tpl = t
        .simulator
        .template(oa_appid, "template", "订单：{{keyword1.DATA}}")
        .await;
    let message = t
        .send_ok(
            user,
            json!({"channel": "template", "app": oa, "template_id": tpl, "data": {"keyword1": "339208499"}}),
        )
        .await;
    t.sent(&message).await;
    let sub = t
        .simulator
        .template(mp_appid, "subscribe", "商品：{{thing1.DATA}}")
        .await;
    t.simulator
        .post(
            "/_sim/subscriptions",
            json!({"appid": mp_appid, "person": id(p), "template_id": sub}),
        )
        .await;
    let r = t
        .api_post(
            &format!("/api/v1/users/{user}/subscriptions"),
            json!({"app": mp, "template_id": sub}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let message = t
        .send_ok(
            user,
            json!({"channel": "subscribe", "app": mp, "template_id": sub, "data": {"thing1": "机械键盘"}}),
        )
        .await;
    t.sent(&message).await;
    let to = |channel: &'static str| async move {
        t.simulator.messages(&format!("?channel={channel}")).await[0]["touser"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        to("template").await,
        p["openids"][oa_appid].as_str().unwrap()
    );
    assert_eq!(
        to("subscribe").await,
        p["openids"][mp_appid].as_str().unwrap()
    );
}

/// With an Open Platform binding even a link without ticket reaches the same user.
#[tokio::test]
async fn with_unionid_a_plain_authorization_joins_the_mini_program_user() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    login(&t, "mp", MP_APPID, id(&p), Some("u-7")).await;
    let b = wechat_browser();
    let r = t
        .sign_in(&b, "/oauth/oa/authorize?scope=snsapi_base", id(&p), "allow")
        .await;
    assert_eq!(outcome(r).await.1, "linked");
    let (_, ids) = identities(&t, "u-7").await;
    assert_eq!(ids["oa"]["openid"], p["openids"][OA_APPID]);
}

/// The recipe without an Open Platform binding: no unionid, the ticket alone carries the link.
#[tokio::test]
async fn the_jump_out_recipe_without_unionid_the_ticket_carries_the_link() {
    let t = spawn_with_mp2().await;
    let p = t.simulator.person("小红").await;
    let person = id(&p);

    let (status, v) = login(&t, "mp2", MP2_APPID, person, Some("u-2002")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user_id"], "u-2002");
    assert!(v["unionid"].is_null());

    // Without the ticket nothing joins the two identities.
    let b = wechat_browser();
    let r = t
        .sign_in(
            &b,
            &format!(
                "/oauth/oa2/authorize?scope=snsapi_base&return_to={}",
                encode("https://shop.example.com/plain")
            ),
            person,
            "allow",
        )
        .await;
    assert!(t.redeem_from(&r).await["user_id"].is_null());

    // With it, the Official Account openid is bound to the mini-program's user.
    let url = t
        .link_ticket(
            "u-2002",
            json!({"app": "oa2", "scope": "snsapi_base",
                   "return_to": "https://shop.example.com/linked"}),
        )
        .await;
    let r = open_in_wechat(&t, &url, person).await;
    let redeemed = t.redeem_from(&r).await;
    assert_eq!(redeemed["user_id"], "u-2002");

    let (_, ids) = identities(&t, "u-2002").await;
    assert_eq!(ids.as_object().unwrap().len(), 2, "{ids}");
    assert_eq!(ids["mp2"]["openid"], p["openids"][MP2_APPID]);
    assert_eq!(ids["oa2"]["openid"], p["openids"][OA2_APPID]);
    assert!(ids["mp2"]["unionid"].is_null() && ids["oa2"]["unionid"].is_null());

    sends_reach_both_openids(&t, "u-2002", ("oa2", OA2_APPID), ("mp2", MP2_APPID), &p).await;
}
