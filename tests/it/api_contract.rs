//! Every answer under `/api/v1` is `{"error":{"code","message"}}` with a catalogue code,
//! whatever goes wrong before a handler runs. A walk over every operation of the OpenAPI
//! document (not a hand-written list) with: invalid UTF-8 in each path parameter, a method
//! the route does not take, a body over `max_body_bytes`, malformed JSON, and no API key.
//! Each answer's code must also be one the document lists for that route and status.

use crate::support::{API_KEY, TestApp};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// A value for each path parameter that the route accepts, so the case under test is
/// the first thing to fail.
fn value_of(param: &str) -> &'static str {
    match param {
        "app" => "oa",
        "user_id" => "u-contract",
        "openid" => "o_contract",
        _ => "x1",
    }
}

/// The path with its parameters filled in, `bad` (by name) replaced with `%FF`.
fn fill(template: &str, bad: Option<&str>) -> String {
    template
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if Some(name) == bad => "%FF".to_owned(),
                Some(name) => value_of(name).to_owned(),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn params(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// Checks one answer: status, JSON content type, the error shape and the code; and that
/// the document lists the code for the route (`op`) at that status, when `documented`.
async fn check(
    what: &str,
    r: reqwest::Response,
    status: StatusCode,
    code: &str,
    op: Option<&Value>,
) {
    let got = r.status();
    let ct = r
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{what}: {text}");
    assert!(
        ct.starts_with("application/json"),
        "{what}: content-type {ct:?}: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    assert!(
        !v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{what}: {v}"
    );
    if let Some(op) = op {
        let listed = op["responses"][status.as_str()]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            listed.contains(&format!("`{code}`")),
            "{what}: the document does not list {code} at {status}"
        );
    }
}

#[tokio::test]
async fn every_route_answers_every_refusal_in_the_error_format() {
    let t = TestApp::spawn().await;
    let doc: Value = t.api_json("/api/v1/openapi.json").await;
    let limit = t.ctx.config.max_body_bytes;
    let oversized = format!("{{\"x\":\"{}\"}}", "a".repeat(limit));
    let mut operations = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            operations += 1;
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let what = |case: &str| format!("{} {template}: {case}", m);
            let takes_body = op.get("requestBody").is_some();

            // No API key.
            let r = t
                .api
                .request(m.clone(), t.url(&fill(template, None)))
                .send()
                .await
                .unwrap();
            check(
                &what("no key"),
                r,
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                Some(op),
            )
            .await;

            // Invalid UTF-8 in each path parameter.
            for p in params(template) {
                let mut req = t
                    .api
                    .request(m.clone(), t.url(&fill(template, Some(p))))
                    .bearer_auth(API_KEY);
                if takes_body {
                    req = req.header(CONTENT_TYPE, "application/json").body("{}");
                }
                check(
                    &what(&format!("%FF in {p}")),
                    req.send().await.unwrap(),
                    StatusCode::BAD_REQUEST,
                    "invalid_path",
                    Some(op),
                )
                .await;
            }

            if takes_body {
                // Over max_body_bytes.
                let r = t
                    .api
                    .request(m.clone(), t.url(&fill(template, None)))
                    .bearer_auth(API_KEY)
                    .header(CONTENT_TYPE, "application/json")
                    .body(oversized.clone())
                    .send()
                    .await
                    .unwrap();
                check(
                    &what("oversized body"),
                    r,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    Some(op),
                )
                .await;
                // Malformed JSON.
                let r = t
                    .api
                    .request(m.clone(), t.url(&fill(template, None)))
                    .bearer_auth(API_KEY)
                    .header(CONTENT_TYPE, "application/json")
                    .body("{\"unfinished")
                    .send()
                    .await
                    .unwrap();
                check(
                    &what("malformed JSON"),
                    r,
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    Some(op),
                )
                .await;
            }
        }
        // A method the route does not take (every route lacks PATCH, at least).
        let missing = METHODS
            .iter()
            .find(|m| item.get(**m).is_none())
            .expect("a method not taken");
        let m = Method::from_bytes(missing.to_uppercase().as_bytes()).unwrap();
        let r = t
            .api
            .request(m.clone(), t.url(&fill(template, None)))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        let allow = r
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        check(
            &format!("{m} {template}: wrong method"),
            r,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        )
        .await;
        let allow = allow.expect("405 names the methods in Allow");
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            assert!(
                allow.contains(&method.to_uppercase()),
                "{template}: Allow {allow:?}"
            );
        }
    }
    assert!(
        operations >= 20,
        "the walk found only {operations} operations"
    );
}
