//! The backend API's own rules: authentication, bad input, login codes, bind and unbind.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn error_code(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.expect("errors are JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn missing_and_wrong_api_keys_are_told_apart() {
    let t = TestApp::spawn().await;
    let r = t.api.get(t.url("/api/v1/users/42")).send().await.unwrap();
    assert_eq!(
        error_code(r).await,
        (StatusCode::UNAUTHORIZED, "missing_api_key".into())
    );
    let r = t
        .api
        .get(t.url("/api/v1/users/42"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        (StatusCode::UNAUTHORIZED, "invalid_api_key".into())
    );
    let r = t
        .api
        .get(t.url("/api/v1/users/42"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        (StatusCode::UNAUTHORIZED, "invalid_api_key".into())
    );
    // Unauthenticated callers learn nothing else, not even whether the app exists.
    let r = t
        .api
        .post(t.url("/api/v1/users/42/link-tickets"))
        .json(&json!({"app": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_bodies_get_precise_4xx_answers() {
    let t = TestApp::spawn().await;
    let url = t.url("/api/v1/users/42/link-tickets");
    let send = |body: &'static str, ct: &'static str| {
        t.api
            .post(&url)
            .bearer_auth(API_KEY)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert_eq!(
        error_code(send("{not json", "application/json").await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "invalid_json".into())
    );
    assert_eq!(
        error_code(send(r#"{"app": 5}"#, "application/json").await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "invalid_body".into())
    );
    assert_eq!(
        error_code(
            send(r#"{"app": "oa", "extra": 1}"#, "application/json")
                .await
                .unwrap()
        )
        .await,
        (StatusCode::BAD_REQUEST, "invalid_body".into())
    );
    assert_eq!(
        error_code(send(r#"{"app": "oa"}"#, "text/plain").await.unwrap()).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type".into()
        )
    );
    let r = t
        .api_post(
            "/api/v1/users/42/link-tickets",
            json!({"app": "oa", "scope": "snsapi_login"}),
        )
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::BAD_REQUEST, "invalid_scope".into())
    );
    let r = t
        .api_post("/api/v1/users/42/link-tickets", json!({"app": "nope"}))
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::NOT_FOUND, "unknown_app".into())
    );
    let r = t
        .api_post("/api/v1/users/42/link-tickets", json!({"app": "mp"}))
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::BAD_REQUEST, "not_web_app".into())
    );
    let r = t
        .api_post("/api/v1/users/a%20b/link-tickets", json!({"app": "oa"}))
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::BAD_REQUEST, "invalid_user_id".into())
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_and_the_service_keeps_serving() {
    let t = TestApp::spawn().await;
    let huge = format!(
        r#"{{"app": "oa", "return_to": "https://shop.example.com/{}"}}"#,
        "x".repeat(200 * 1024)
    );
    let r = t
        .api
        .post(t.url("/api/v1/users/42/link-tickets"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into())
    );
    let r = t
        .api_post("/api/v1/users/42/link-tickets", json!({"app": "oa"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn login_codes_are_single_use() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let path = format!(
        "/oauth/oa/authorize?return_to={}",
        encode("https://shop.example.com/")
    );
    let r = t
        .sign_in(&b, &path, p["id"].as_str().unwrap(), "allow")
        .await;
    let code = query_param(&location(&r), "wxlink_code").unwrap();
    let redeem = || t.api_post("/api/v1/login-codes/redeem", json!({"code": code}));
    assert_eq!(redeem().await.status(), StatusCode::OK);
    assert_eq!(
        error_code(redeem().await).await,
        (StatusCode::GONE, "login_code_used".into())
    );
    let r = t
        .api_post("/api/v1/login-codes/redeem", json!({"code": "nope"}))
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::NOT_FOUND, "login_code_unknown".into())
    );
}

#[tokio::test]
async fn login_codes_expire() {
    let t = TestApp::spawn().await;
    let p = t.simulator.person("a").await;
    let b = wechat_browser();
    let path = format!(
        "/oauth/oa/authorize?return_to={}",
        encode("https://shop.example.com/")
    );
    let r = t
        .sign_in(&b, &path, p["id"].as_str().unwrap(), "allow")
        .await;
    let code = query_param(&location(&r), "wxlink_code").unwrap();
    t.clock.advance(301);
    let r = t
        .api_post("/api/v1/login-codes/redeem", json!({"code": code}))
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::GONE, "login_code_expired".into())
    );
}

#[tokio::test]
async fn bind_lookup_and_unbind_one_identity_leaving_the_others() {
    let t = TestApp::spawn().await;
    let r = t
        .api_put(
            "/api/v1/users/u-1/identities/mp/oMP123",
            json!({"unionid": "uABC"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["identity"]["user_id"], "u-1");
    // Binding again to the same user is fine (idempotent).
    let r = t
        .api_put("/api/v1/users/u-1/identities/mp/oMP123", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // An empty body is allowed.
    let r = t
        .api
        .put(t.url("/api/v1/users/u-1/identities/oa/oOA456"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let user: Value = t.api_json("/api/v1/users/u-1").await;
    assert_eq!(user["identities"].as_array().unwrap().len(), 2);

    assert_eq!(
        t.api_delete("/api/v1/users/u-1/identities/mp/oMP123")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let user: Value = t.api_json("/api/v1/users/u-1").await;
    let ids = user["identities"].as_array().unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0]["openid"], "oOA456");
    let r = t.api_delete("/api/v1/users/u-1/identities/mp/oMP123").await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::NOT_FOUND, "identity_not_bound".into())
    );

    // Once unbound, another user may have it.
    let r = t
        .api_put("/api/v1/users/u-2/identities/mp/oMP123", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let r = t
        .api_put("/api/v1/users/u-1/identities/mp/bad%20openid", json!({}))
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::BAD_REQUEST, "invalid_openid".into())
    );
    let r = t
        .api_put(
            "/api/v1/users/u-3/identities/mp/oMP123",
            json!({"unionid": "uOTHER"}),
        )
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::BAD_REQUEST, "unionid_mismatch".into())
    );
    let r = t.api_get("/api/v1/users/nobody").await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::NOT_FOUND, "user_not_found".into())
    );
}

#[tokio::test]
async fn unknown_routes_answer_json_under_the_api_and_pages_elsewhere() {
    let t = TestApp::spawn().await;
    let r = t.api_get("/api/v1/nothing-here").await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::NOT_FOUND, "no_such_route".into())
    );
    let r = t.api.get(t.url("/nothing-here")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("data-outcome=\"not_found\"")
    );
    let health: Value = t
        .api
        .get(t.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let live: Value = t
        .api
        .get(t.url("/livez"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["status"], "ok");
}

#[tokio::test]
async fn a_refused_bind_leaves_no_unionid_behind() {
    let t = TestApp::spawn().await;
    let r = t
        .bind("alice", "mp", "oMPalice", json!({"unionid": "uPERSON"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Bob's backend claims a new openid of the same person (same unionid): refused.
    let r = t
        .bind("bob", "oa", "oOAnew", json!({"unionid": "uPERSON"}))
        .await;
    let status = r.status();
    let e: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(e["error"]["via"], "unionid");
    // Nothing of that claim was stored: the openid does not now lead to alice's person.
    let app = wxlink::domain::AppId::parse("oa").unwrap();
    let openid = wxlink::domain::OpenId::parse("oOAnew").unwrap();
    let stored = t.ctx.store.identity(&app, &openid).await.unwrap();
    assert!(
        stored.as_ref().is_none_or(|i| i.unionid.is_none()),
        "{stored:?}"
    );
}
