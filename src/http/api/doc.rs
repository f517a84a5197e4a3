//! The OpenAPI document of the backend API and the Swagger UI that shows it.
//!
//! The document's paths come from the `#[utoipa::path]` annotations on the handlers, which
//! are registered with utoipa-axum's `routes!` (see [`super::routes`]); this module only
//! adds what belongs to the whole API: its description, the bearer security scheme, the
//! error schema, and the routes' error answers, described from the catalogue of codes.
//!
//! `GET /api/v1/openapi.json` and the Swagger UI at `/api/docs` need no API key: the
//! document describes routes and shapes, never data, and a backend developer should be
//! able to read it before they hold a key. Calls made from Swagger UI's "Try it out" do
//! need one (the Authorize button).

use super::webhooks::{Payloads, WebhookData, WebhookPayload};
use crate::context::Ctx;
use crate::http::error::{ErrorBody, ErrorCode};
use axum::Router;
use std::collections::BTreeMap;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Where Swagger UI is served (its files are compiled in: it works offline).
pub const SWAGGER_UI_PATH: &str = "/api/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wxlink backend API",
        description = "Links WeChat identities to your user ids, hands out each app's global access token, and sends WeChat notifications by business user id.\n\nEvery route wants `Authorization: Bearer <api key>` (`[[api_keys]]` in the configuration; the sandbox prints a development key). Bodies are JSON. Errors are `{\"error\":{\"code\",\"message\",...}}` with a stable `code`; each route's answers below list the codes it may give, and the README's table lists them all."
    ),
    components(schemas(ErrorBody, WebhookPayload, WebhookData)),
    modifiers(&BearerAuth, &Payloads),
    security(("api_key" = [])),
    tags(
        (name = "users", description = "Users and their WeChat identities: look up, bind, unbind, link tickets"),
        (name = "login", description = "Turning a callback's wxlink_code or a mini-program's wx.login code into an identity"),
        (name = "access-token", description = "Each app's global access token, owned by wxlink"),
        (name = "js-sdk", description = "JS-SDK for pages inside WeChat: signed `wx.config` for the app's JS-safe domains, and the jsapi / wx_card tickets behind it"),
        (name = "messages", description = "Sending by business user id through the durable outbox"),
        (name = "consent", description = "What a person allowed: subscribe-message acceptances, legacy form ids, muted categories"),
        (name = "events", description = "What WeChat pushed to the push endpoint, and what became of it"),
        (name = "webhooks", description = "Signed events out to your endpoints: their deliveries and attempts, replays, test events; the payloads are under `webhooks`"),
    )
)]
pub struct ApiDoc;

/// The `api_key` scheme: `Authorization: Bearer <key>`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from `[[api_keys]]` (stored there as its SHA-256: `wxlink hash-key`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds `invalid_path` to the 400 answer of every route with a path parameter; run on
/// the whole document, once the routes' paths are in it.
pub(crate) struct PathErrors;

impl Modify for PathErrors {
    fn modify(&self, openapi: &mut Document) {
        let code = ErrorCode::InvalidPath;
        let line = format!("- `{}`: {}", code.code(), code.meaning());
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.contains('{') {
                continue;
            }
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let status = code.status().as_u16().to_string();
                match op.responses.responses.get_mut(&status) {
                    Some(RefOr::T(r)) => {
                        r.description = format!("{}\n{line}", r.description);
                    }
                    _ => {
                        let mut extra = error_responses(&[code]);
                        if let Some(r) = extra.remove(&status) {
                            op.responses.responses.insert(status, r);
                        }
                    }
                }
            }
        }
    }
}

/// Codes any route may answer besides its own.
const COMMON: [ErrorCode; 7] = [
    ErrorCode::MissingApiKey,
    ErrorCode::InvalidApiKey,
    ErrorCode::MissingScope,
    ErrorCode::AppNotAllowed,
    ErrorCode::InternalError,
    ErrorCode::DatabaseUnavailable,
    ErrorCode::StorageFull,
];

/// A route's error answers, one per status, each describing its codes from the catalogue:
/// the route's own `codes` and the [`COMMON`] ones.
pub(crate) fn error_responses(codes: &[ErrorCode]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for &code in codes.iter().chain(&COMMON) {
        let listed = by_status.entry(code.status().as_u16()).or_default();
        if !listed.contains(&code) {
            listed.push(code);
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let description = codes
                .iter()
                .map(|c| format!("- `{}`: {}", c.code(), c.meaning()))
                .collect::<Vec<_>>()
                .join("\n");
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// Declares a route's error answers from the catalogue, for its `responses(...)`:
/// `api_errors!(SendErrors: InvalidBody, NoIdentity);`.
macro_rules! api_errors {
    ($name:ident: $($code:ident),+ $(,)?) => {
        /// The route's error answers (see [`crate::http::api::doc::error_responses`]).
        struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::http::api::doc::error_responses(&[
                    $($crate::http::error::ErrorCode::$code),+
                ])
            }
        }
    };
}
pub(crate) use api_errors;

/// `GET /api/v1/openapi.json` and the Swagger UI under `/api/docs/`.
pub fn router(openapi: Document) -> Router<Ctx> {
    SwaggerUi::new(SWAGGER_UI_PATH)
        .url(OPENAPI_PATH, openapi)
        // Swagger UI would otherwise send the document to an online validator.
        .config(Config::new([OPENAPI_PATH]).validator_url("none"))
        .into()
}

#[cfg(test)]
mod tests {
    use crate::http::error::ErrorCode;
    use std::collections::BTreeSet;

    /// Every error answer in the document lists catalogue codes of its own status, in the
    /// catalogue's words, and every code but `no_such_route` is answered by some route.
    #[test]
    fn error_answers_come_from_the_catalogue() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let mut seen = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    if status.as_str() < "400" {
                        continue;
                    }
                    let description = response["description"].as_str().unwrap();
                    assert!(!description.is_empty(), "{method} {path} {status}");
                    for line in description.lines() {
                        let code = ErrorCode::ALL
                            .iter()
                            .find(|c| line == format!("- `{}`: {}", c.code(), c.meaning()))
                            .unwrap_or_else(|| {
                                panic!("{method} {path} {status}: {line:?} is not in the catalogue")
                            });
                        assert_eq!(code.status().as_str(), status, "{method} {path}");
                        seen.insert(code.code());
                    }
                }
            }
        }
        for c in ErrorCode::ALL {
            assert!(
                seen.contains(c.code())
                    || [ErrorCode::NoSuchRoute, ErrorCode::MethodNotAllowed].contains(c),
                "no route documents {}",
                c.code()
            );
        }
    }
}
