//! Which scope each API route needs, read from the routes' own `security` in the OpenAPI
//! document: what the document tells a backend is what the service enforces.

use crate::config::Scope;
use axum::http::Method;
use std::collections::HashMap;
use std::sync::LazyLock;

/// Route, then method, to the one scope it names, e.g. `"/api/v1/users/{user_id}"`, `"GET"`:
/// looked up by `&str` on every API request, without building a key.
static SCOPES: LazyLock<HashMap<String, HashMap<String, Scope>>> = LazyLock::new(|| {
    let doc = serde_json::to_value(super::openapi()).expect("the OpenAPI document serializes");
    let mut map = HashMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if let Some(scope) = named_scope(op) {
                map.entry(path.clone())
                    .or_insert_with(HashMap::new)
                    .insert(method.to_ascii_uppercase(), scope);
            }
        }
    }
    map
});

/// The scope an operation names in its `security`, when it names exactly one.
fn named_scope(op: &serde_json::Value) -> Option<Scope> {
    let requirements = op["security"].as_array()?;
    let [requirement] = requirements.as_slice() else {
        return None;
    };
    let names = requirement["api_key"].as_array()?;
    let [name] = names.as_slice() else {
        return None;
    };
    Scope::parse(name.as_str()?)
}

/// The scope a route needs; `None` for a route that names none (a bug, refused).
pub(super) fn of(method: &Method, route: &str) -> Option<Scope> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    SCOPES.get(route)?.get(method).copied()
}

#[cfg(test)]
mod tests {
    /// Every operation in the document names exactly one known scope.
    #[test]
    fn every_route_names_one_scope() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let mut n = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(
                    super::named_scope(op).is_some(),
                    "{method} {path} names no single scope: {}",
                    op["security"]
                );
                n += 1;
            }
        }
        assert_eq!(super::SCOPES.values().map(|m| m.len()).sum::<usize>(), n);
    }
}
