//! Data at rest: after a whole flow nothing that works as a credential can be read out of
//! the database; values an older version stored in clear are sealed at start-up without a
//! new token fetch; a rotated `storage_key` still opens what the old one sealed, and
//! `reseal` retires the old key.

use crate::support::push::{craft, follow_xml, post};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wxlink::clock::Clock;
use wxlink::domain::{AppId, OpenId, hash_token};

/// A second 32-byte key (base64), for rotation.
const NEW_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// Web sign-in with `scope` and a return_to: the callback's redirect (with `wxlink_code`)
/// and the callback URL (for a repeat).
async fn web_sign_in(t: &TestApp, person: &str, scope: &str) -> (String, String) {
    let browser = wechat_browser();
    let url = t.url(&format!(
        "/oauth/oa/authorize?scope={scope}&return_to={}",
        encode("https://shop.example.com/done")
    ));
    let callback = t.through_wechat(&browser, &url, person, "allow").await;
    let r = browser.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let back = location(&r);
    // WeChat's double redirect: the repeat gets the same answer, from the stored one.
    let again = browser.get(&callback).send().await.unwrap();
    assert_eq!(location(&again), back, "the repeated callback");
    (back, callback)
}

/// Every column of every table that holds a value starting with `prefix`... counted.
fn count_sealed(dump: &str, column: &str) -> usize {
    dump.lines()
        .filter(|l| l.starts_with(&format!("{column}: sealed1:")))
        .count()
}

#[tokio::test]
async fn after_a_whole_flow_no_token_code_session_key_or_secret_is_stored_in_clear() {
    let t = TestApp::spawn().await;
    t.tokens_fetched().await;
    let mut secrets: Vec<(String, String)> = [
        ("oa secret", "oa-secret"),
        ("mp secret", "mp-secret"),
        ("oa2 secret", "oa2-secret"),
        ("cl secret", "cl-secret"),
        ("API key", API_KEY),
        ("storage key", STORAGE_KEY),
        ("oa push token", OA_PUSH_TOKEN),
        ("oa AES key", OA_AES_KEY),
        ("mp AES key", MP_AES_KEY),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();

    // Global access tokens handed out.
    for a in ["oa", "mp", "oa2", "cl"] {
        let v: Value = t.api_json(&format!("/api/v1/apps/{a}/access-token")).await;
        secrets.push((
            "access token".into(),
            v["access_token"].as_str().unwrap().into(),
        ));
    }

    // Web sign-in in both scopes. The base one's login code is left unredeemed: a live
    // code sits in the store (hashed in login_codes, inside the stored callback answer).
    let person = t.simulator.person("AtRest").await;
    let pid = person["id"].as_str().unwrap().to_owned();
    let (live, callback) = web_sign_in(&t, &pid, "snsapi_base").await;
    secrets.push((
        "live login code".into(),
        query_param(&live, "wxlink_code").unwrap(),
    ));
    secrets.push((
        "authorization code".into(),
        query_param(&callback, "code").unwrap(),
    ));
    let (redeemed, callback) = web_sign_in(&t, &pid, "snsapi_userinfo").await;
    secrets.push((
        "redeemed login code".into(),
        query_param(&redeemed, "wxlink_code").unwrap(),
    ));
    secrets.push((
        "authorization code".into(),
        query_param(&callback, "code").unwrap(),
    ));
    let r = t
        .api_post(
            "/api/v1/login-codes/redeem",
            json!({"code": query_param(&redeemed, "wxlink_code").unwrap()}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let identity: Value = r.json().await.unwrap();
    let openid = identity["openid"].as_str().unwrap().to_owned();

    // A link ticket, left unused.
    let url = t
        .link_ticket("u-rest", json!({"app": "oa2", "scope": "snsapi_base"}))
        .await;
    secrets.push(("link ticket".into(), query_param(&url, "ticket").unwrap()));

    // Mini-program login: the session key is kept, sealed.
    let js_code = t.simulator.login_code(&pid, MP_APPID).await;
    let r = t
        .mp_session("mp", json!({"js_code": js_code, "user_id": "u-rest"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    secrets.push((
        "session key".into(),
        t.sim.session_key_of(MP_APPID, &pid).unwrap(),
    ));

    // A send, and a push.
    let template = t
        .simulator
        .template(OA_APPID, "template", "订单号：{{keyword1.DATA}}")
        .await;
    assert_eq!(
        t.bind("u-rest", "oa", &openid, json!({})).await.status(),
        StatusCode::OK
    );
    let id = t
        .send_ok(
            "u-rest",
            json!({"channel": "template", "app": "oa", "template_id": template,
                   "data": {"keyword1": "order 1"}}),
        )
        .await;
    t.sent(&id).await;
    let now = t.clock.now();
    let push = craft(
        OA_PUSH_TOKEN,
        now,
        "nonce-rest",
        &follow_xml(&openid, now, "subscribe"),
        Some((OA_AES_KEY, OA_APPID)),
    );
    assert_eq!(post(&t, "oa", &push).await.1, "success");

    // Every token WeChat (the simulator) issued: global, web access and web refresh.
    let issued = t.sim.issued_tokens();
    assert!(issued.len() >= 8, "{issued:?}");
    secrets.extend(
        issued
            .into_iter()
            .map(|tok| ("issued token".to_owned(), tok)),
    );

    let dump = dump_database(&t.ctx.config.database_url).await;
    assert!(dump.lines().count() > 50, "the dump read the tables");
    for (what, secret) in &secrets {
        assert!(
            secret.len() >= 8,
            "{what} {secret:?} is too short to search for"
        );
        if let Some(line) = dump.lines().find(|l| l.contains(secret.as_str())) {
            panic!("{what} is stored in clear: {line}");
        }
    }
    // What is kept is there, sealed (and the hashes of the codes).
    assert!(
        count_sealed(&dump, "access_tokens.access_token") >= 4,
        "{dump}"
    );
    assert_eq!(count_sealed(&dump, "web_tokens.access_token"), 1);
    assert_eq!(count_sealed(&dump, "web_tokens.refresh_token"), 1);
    assert_eq!(count_sealed(&dump, "oauth_exchanges.outcome"), 2);
    assert!(dump.contains(&hash_token(&query_param(&live, "wxlink_code").unwrap())));

    // And the live code still works, once.
    let r = t
        .api_post(
            "/api/v1/login-codes/redeem",
            json!({"code": query_param(&live, "wxlink_code").unwrap()}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Runs `sql` with `binds` on the test's database, as an older version (or an attacker
/// with write access) would.
async fn execute(url: &str, sql: &str, binds: &[&str]) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.execute(&mut c).await.unwrap();
    }
}

async fn one_value(url: &str, sql: &str) -> String {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

fn token_calls(t: &TestApp) -> u64 {
    let s = t.sim.stats();
    s.get("stable_token").copied().unwrap_or(0) + s.get("token").copied().unwrap_or(0)
}

#[tokio::test]
async fn values_an_older_version_stored_in_clear_are_sealed_at_start_up_and_still_used() {
    let t = TestApp::spawn().await;
    t.tokens_fetched().await;
    let db = t.ctx.config.database_url.clone();
    let person = t.simulator.person("Upgrade").await;
    let (back, callback) = web_sign_in(&t, person["id"].as_str().unwrap(), "snsapi_userinfo").await;

    // The rows as the previous version wrote them: in clear.
    let v: Value = t.api_json("/api/v1/apps/oa/access-token").await;
    let token = v["access_token"].as_str().unwrap().to_owned();
    execute(
        &db,
        "UPDATE access_tokens SET access_token = $1 WHERE app = 'oa'",
        &[&token],
    )
    .await;
    execute(
        &db,
        "UPDATE web_tokens SET access_token = 'plainWebAccess01', refresh_token = 'plainWebRefresh01'",
        &[],
    )
    .await;
    let code_hash = hash_token(&query_param(&callback, "code").unwrap());
    let stored = t.ctx.store.exchange(&code_hash).await.unwrap().unwrap();
    let outcome = stored.outcome.unwrap();
    assert!(outcome.contains("wxlink_code"), "{outcome}");
    execute(
        &db,
        "UPDATE oauth_exchanges SET outcome = $1 WHERE code_hash = $2",
        &[&outcome, &code_hash],
    )
    .await;
    let fetches = token_calls(&t);

    // A restart on the new version.
    let (_, ctx) = t.another_instance(Clock::system()).await;
    for sql in [
        "SELECT access_token FROM access_tokens WHERE app = 'oa'",
        "SELECT access_token FROM web_tokens",
        "SELECT refresh_token FROM web_tokens",
        &format!("SELECT outcome FROM oauth_exchanges WHERE code_hash = '{code_hash}'"),
    ] {
        let v = one_value(&db, sql).await;
        assert!(v.starts_with("sealed1:"), "{sql}: {v}");
    }
    // The same token, served without asking WeChat for a new one.
    let served = ctx.tokens.get(&AppId::parse("oa").unwrap()).await.unwrap();
    assert_eq!(&*served.token, token);
    assert_eq!(
        token_calls(&t),
        fetches,
        "no token was fetched for the upgrade"
    );
    // The stored answer opens: the repeated callback still gets the same redirect.
    let again = ctx.store.exchange(&code_hash).await.unwrap().unwrap();
    assert_eq!(again.outcome.as_deref(), Some(outcome.as_str()));
    assert!(outcome.contains(&query_param(&back, "wxlink_code").unwrap()));
}

#[tokio::test]
async fn a_rotated_storage_key_opens_what_the_old_one_sealed_and_reseal_retires_the_old_key() {
    let t = TestApp::spawn().await;
    t.tokens_fetched().await;
    let db = t.ctx.config.database_url.clone();
    let person = t.simulator.person("Rotation").await;
    let pid = person["id"].as_str().unwrap().to_owned();
    web_sign_in(&t, &pid, "snsapi_userinfo").await;
    let js_code = t.simulator.login_code(&pid, MP_APPID).await;
    let r = t.mp_session("mp", json!({"js_code": js_code})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let openid = OpenId::parse(&t.sim.openid_of(MP_APPID, &pid)).unwrap();
    let mp = AppId::parse("mp").unwrap();
    let oa = AppId::parse("oa").unwrap();
    let token = t.ctx.tokens.get(&oa).await.unwrap().token;
    let session_key = t.sim.session_key_of(MP_APPID, &pid).unwrap();
    let fetches = token_calls(&t);

    let rotated = |toml: String| {
        toml.replace(
            &format!("storage_key = \"{STORAGE_KEY}\""),
            &format!("storage_key = \"{NEW_KEY}\"\nstorage_key_previous = \"{STORAGE_KEY}\""),
        )
    };
    let new_only = |toml: String| {
        toml.replace(
            &format!("storage_key = \"{STORAGE_KEY}\""),
            &format!("storage_key = \"{NEW_KEY}\""),
        )
    };

    // The new key with the old one as previous: everything still opens, no new fetch.
    let (_, ctx) = t.another_instance_with(Clock::system(), rotated).await;
    assert_eq!(ctx.tokens.get(&oa).await.unwrap().token, token);
    assert_eq!(token_calls(&t), fetches);
    use secrecy::ExposeSecret;
    let opened = wxlink::identity::mini_program::session_key(&ctx, &mp, &openid)
        .await
        .unwrap()
        .expect("the session key opens with the previous key");
    assert_eq!(opened.expose_secret(), session_key);

    // Before reseal the new key alone does not open the old values.
    let before = wxlink::store::Store::connect(&db, &Default::default())
        .await
        .unwrap()
        .with_keys(t.config_with(new_only).storage_key);
    assert!(
        before
            .stored_token(&oa, "stable", 0)
            .await
            .unwrap()
            .access_token
            .is_none()
    );

    // reseal: every value under the new key, with progress.
    let mut lines = Vec::new();
    let counts = wxlink::store::reseal(&t.config_with(rotated), &mut |l| lines.push(l.to_owned()))
        .await
        .unwrap();
    let resealed = |column: &str| {
        counts
            .iter()
            .find(|c| c.column == column)
            .unwrap_or_else(|| panic!("{column} in {counts:?}"))
            .resealed
    };
    assert!(resealed("access_tokens.access_token") >= 4, "{counts:?}");
    assert_eq!(resealed("web_tokens.access_token"), 1);
    assert_eq!(resealed("web_tokens.refresh_token"), 1);
    assert_eq!(resealed("mp_sessions.session_key"), 1);
    assert_eq!(resealed("oauth_exchanges.outcome"), 1);
    assert!(counts.iter().all(|c| c.unopenable == 0), "{counts:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("web_tokens.refresh_token: 1 values, 1 re-sealed")),
        "{lines:?}"
    );
    // A second run finds nothing left to do.
    let again = wxlink::store::reseal(&t.config_with(rotated), &mut |_| {})
        .await
        .unwrap();
    assert!(again.iter().all(|c| c.resealed == 0), "{again:?}");

    // The old key is no longer needed: the new one alone opens everything.
    let (_, ctx) = t.another_instance_with(Clock::system(), new_only).await;
    assert_eq!(ctx.tokens.get(&oa).await.unwrap().token, token);
    let opened = wxlink::identity::mini_program::session_key(&ctx, &mp, &openid)
        .await
        .unwrap()
        .expect("the session key opens with the new key alone");
    assert_eq!(opened.expose_secret(), session_key);
    assert_eq!(token_calls(&t), fetches, "rotation cost no token fetch");
}

#[tokio::test]
async fn the_reseal_command_prints_its_progress_and_retires_the_old_key() {
    let t = TestApp::spawn().await;
    t.tokens_fetched().await;
    let person = t.simulator.person("Command").await;
    // snsapi_userinfo: base-scope web tokens are not kept (nothing could use them).
    web_sign_in(&t, person["id"].as_str().unwrap(), "snsapi_userinfo").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxlink.toml");
    std::fs::write(
        &path,
        t.config_toml_with(|toml| {
            toml.replace(
                &format!("storage_key = \"{STORAGE_KEY}\""),
                &format!("storage_key = \"{NEW_KEY}\"\nstorage_key_previous = \"{STORAGE_KEY}\""),
            )
        }),
    )
    .unwrap();
    let run = move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wxlink"))
            .args(["reseal", "--config"])
            .arg(&path)
            .env_remove("WXLINK_STORAGE_KEY")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let out = tokio::task::spawn_blocking(run.clone()).await.unwrap();
    assert!(
        out.contains("web_tokens.access_token: 1 values, 1 re-sealed, 0 open with neither key"),
        "{out}"
    );
    assert!(
        out.contains("access_tokens.access_token: 4 values, 4 re-sealed"),
        "{out}"
    );
    assert!(
        out.contains("done: every stored secret is sealed under storage_key"),
        "{out}"
    );
    let again = tokio::task::spawn_blocking(run).await.unwrap();
    assert!(
        again.contains("web_tokens.access_token: 1 values, 0 re-sealed"),
        "{again}"
    );
    // The new key alone opens what the command re-sealed.
    let store = wxlink::store::Store::connect(&t.ctx.config.database_url, &Default::default())
        .await
        .unwrap()
        .with_keys(
            t.config_with(|toml| {
                toml.replace(
                    &format!("storage_key = \"{STORAGE_KEY}\""),
                    &format!("storage_key = \"{NEW_KEY}\""),
                )
            })
            .storage_key,
        );
    let oa = AppId::parse("oa").unwrap();
    let stored = store.stored_token(&oa, "stable", 0).await.unwrap();
    assert_eq!(
        stored.access_token.as_deref(),
        Some(&*t.ctx.tokens.get(&oa).await.unwrap().token)
    );
}
