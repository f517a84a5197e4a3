//! The OpenAPI document of the backend API and the Swagger UI that shows it.
//!
//! The document's paths come from the `#[utoipa::path]` annotations on the handlers, which
//! are registered with utoipa-axum's `routes!` (see [`super::routes`]); this module only
//! adds what belongs to the whole API: its description, the bearer security scheme, the
//! error schema and the answers every route may give.
//!
//! `GET /api/v1/openapi.json` and the Swagger UI at `/api/docs` need no API key: the
//! document describes routes and shapes, never data, and a backend developer should be
//! able to read it before they hold a key. Calls made from Swagger UI's "Try it out" do
//! need one (the Authorize button).

use crate::context::Ctx;
use crate::error::ErrorBody;
use axum::Router;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Where Swagger UI is served (its files are compiled in: it works offline).
pub const SWAGGER_UI_PATH: &str = "/api/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wxlink backend API",
        description = "Links WeChat identities to your user ids, hands out each app's global access token, and sends WeChat notifications by business user id.\n\nEvery route wants `Authorization: Bearer <api key>` (`[[api_keys]]` in the configuration; the sandbox prints a development key). Bodies are JSON. Errors are `{\"error\":{\"code\",\"message\",...}}` with a stable `code`; the README lists them all."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    tags(
        (name = "users", description = "Users and their WeChat identities: look up, bind, unbind, link tickets"),
        (name = "login", description = "Turning a callback's wxlink_code or a mini-program's wx.login code into an identity"),
        (name = "access-token", description = "Each app's global access token, owned by wxlink"),
        (name = "messages", description = "Sending by business user id through the durable outbox"),
        (name = "consent", description = "What a person allowed: subscribe-message acceptances, legacy form ids, muted categories"),
        (name = "events", description = "What WeChat pushed to the push endpoint, and what became of it"),
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

/// Answers any route may give besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum CommonErrors {
    /// `missing_api_key` (no `Authorization: Bearer`) or `invalid_api_key`
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `database_unavailable`: the database cannot be reached (the message names the
    /// cause); try again shortly
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// `internal_error`: the cause is in the service's log only
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// Answers of routes that take a JSON body, about the body itself.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyErrors {
    /// `body_too_large`: over `max_body_bytes`
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// `unsupported_media_type`: send `Content-Type: application/json`
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
}

/// `GET /api/v1/openapi.json` and the Swagger UI under `/api/docs/`.
pub fn router(openapi: Document) -> Router<Ctx> {
    SwaggerUi::new(SWAGGER_UI_PATH)
        .url(OPENAPI_PATH, openapi)
        // Swagger UI would otherwise send the document to an online validator.
        .config(Config::new([OPENAPI_PATH]).validator_url("none"))
        .into()
}
