//! The OpenAPI document at `/api/v1/openapi.json` against the routes the service really
//! answers: every `/api/v1` route the router serves is documented, every documented
//! operation is served, the document is valid OpenAPI 3.1, and Swagger UI works offline.
//!
//! The routes are not listed here by hand: the candidates are every `"/api/v1/..."` string
//! in `src/` (route registrations, `#[utoipa::path]` annotations, anything else), and the
//! running router decides which method of which path exists (a route answers anything but
//! 405 or our `no_such_route` 404).

use crate::support::{API_KEY, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/// Every string literal in `src/` that starts with `/api/v1/`.
fn api_paths_in_source() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("\"/api/v1/") {
                    let rest = &text[i + 1..];
                    let end = rest.find('"').unwrap();
                    out.insert(rest[..end].to_owned());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut out,
    );
    out
}

/// `/api/v1/users/{user_id}` -> `/api/v1/users/x1` (a query string dropped).
fn concrete(path: &str) -> String {
    let path = path.split('?').next().unwrap();
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "x1".to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a concrete path matches a document path template.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

/// Whether the running router has a route for `method path` (called with the API key, an
/// empty JSON body, and ids that name nothing, so no call changes anything).
async fn routed(app: &TestApp, method: &str, path: &str) -> bool {
    let mut req = app
        .api
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(path),
        )
        .bearer_auth(API_KEY);
    if matches!(method, "POST" | "PUT" | "PATCH") {
        req = req.json(&json!({}));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    !(status == StatusCode::METHOD_NOT_ALLOWED
        || (status == StatusCode::NOT_FOUND && body["error"]["code"] == "no_such_route"))
}

async fn document(app: &TestApp) -> (String, Value) {
    // No API key: the document is public.
    let r = app
        .api
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    (text, v)
}

/// The document's `(METHOD, path)` pairs.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method.to_lowercase()).is_some() {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_api_route_is_documented_and_every_documented_route_is_served() {
    let app = TestApp::spawn().await;
    let (_, doc) = document(&app).await;
    let ops = documented(&doc);

    let candidates = api_paths_in_source();
    assert!(
        candidates.len() >= 10,
        "the source scan found too little: {candidates:?}"
    );
    let mut served = BTreeSet::new();
    for path in &candidates {
        // The document itself is not an operation of the API.
        if path == "/api/v1/openapi.json" {
            continue;
        }
        let probe = concrete(path);
        for method in METHODS {
            if routed(&app, method, &probe).await {
                served.insert((method, probe.clone()));
                assert!(
                    ops.iter().any(|(m, t)| m == method && matches(t, &probe)),
                    "{method} {path} is served but not in the OpenAPI document"
                );
            }
        }
    }
    for (method, path) in &ops {
        assert!(
            routed(&app, method, &concrete(path)).await,
            "{method} {path} is documented but the router does not serve it"
        );
    }
    // Every documented operation was also found from the source (the scan is not blind).
    for (method, path) in &ops {
        assert!(
            served.iter().any(|(m, p)| m == method && matches(path, p)),
            "{method} {path} was not found by the source scan"
        );
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_with_security_errors_and_parameters() {
    let app = TestApp::spawn().await;
    let (text, doc) = document(&app).await;
    let spec = oas3::from_json(&text).expect("the document parses as OpenAPI 3.1");
    let version = spec.validate_version().expect("an OpenAPI 3.1 version");
    assert_eq!(version.major, 3);

    // Every reference points at something in the document.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }

    // The bearer scheme, required everywhere; the error body as a schema.
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{ "api_key": [] }]));
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorObject"
    );

    let mut count = 0;
    for (path, method, op) in spec.operations() {
        count += 1;
        let responses = op.responses(&spec);
        assert!(
            responses.contains_key("401"),
            "{method} {path} does not document 401"
        );
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path} has no success answer"
        );
        // Each `{name}` of the path is a documented path parameter, each parameter once.
        let params = op.parameters(&spec).unwrap();
        let unique: BTreeSet<_> = params
            .iter()
            .map(|p| (p.name.clone(), format!("{:?}", p.location)))
            .collect();
        assert_eq!(
            unique.len(),
            params.len(),
            "{method} {path}: a parameter twice"
        );
        for seg in path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            assert!(
                params
                    .iter()
                    .any(|p| p.name == name && p.location == oas3::spec::ParameterIn::Path),
                "{method} {path}: no path parameter {name}"
            );
        }
        if matches!(method.as_str(), "POST" | "PUT") {
            assert!(
                op.request_body(&spec).unwrap().is_some(),
                "{method} {path} has no request body"
            );
        }
    }
    assert!(count >= 15, "only {count} operations");

    // The push endpoint's events API (issue 5).
    let events = &doc["paths"]["/api/v1/apps/{app}/events"]["get"];
    assert_eq!(events["tags"], json!(["events"]));
    assert!(
        events["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "type" && p["in"] == "query")
    );

    // A few shapes that backends rely on.
    let send = &doc["paths"]["/api/v1/users/{user_id}/messages"]["post"];
    assert_eq!(
        send["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SendBody"
    );
    let one_of = doc["components"]["schemas"]["SendBody"]["oneOf"].to_string();
    assert!(
        one_of.contains("#/components/schemas/SendRequest"),
        "{one_of}"
    );
    assert!(
        one_of.contains("#/components/schemas/AutoRequest"),
        "{one_of}"
    );
    assert!(
        doc["components"]["schemas"]["AcceptedBody"]["properties"]
            .get("channel")
            .is_some()
    );
    assert!(send["responses"]["202"].is_object());
    assert!(
        send["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
    );
    let message = &doc["components"]["schemas"]["Message"]["properties"];
    assert!(message["msgid"]["type"].to_string().contains("string"));
    assert!(message.get("payload").is_none(), "internal fields stay out");
}

#[tokio::test]
async fn the_error_schema_is_what_the_api_answers() {
    let app = TestApp::spawn().await;
    let r = app.api_get("/api/v1/users/nobody-here").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: wxlink::http::error::ErrorBody = r.json().await.expect("an ErrorBody");
    assert_eq!(body.error.code, "user_not_found");

    let r = app
        .api_post("/api/v1/users/42/messages", json!({"channel": "template"}))
        .await;
    let body: wxlink::http::error::ErrorBody = r.json().await.expect("an ErrorBody");
    assert_eq!(body.error.code, "invalid_body");
}

#[tokio::test]
async fn swagger_ui_is_served_offline() {
    let app = TestApp::spawn().await;
    let r = app.api.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script and stylesheet comes from us.
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let url = &html[i + attr.len()..];
            let url = &url[..url.find('"').unwrap()];
            assert!(!url.contains("://"), "external resource {url}");
            let r = app
                .api
                .get(app.url(&format!("/api/docs/{}", url.trim_start_matches("./"))))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{url}");
        }
    }
    let r = app
        .api
        .get(app.url("/api/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    let js = r.text().await.unwrap();
    assert!(js.contains("/api/v1/openapi.json"), "{js}");
    assert!(js.contains("\"validatorUrl\": \"none\""), "{js}");
}
