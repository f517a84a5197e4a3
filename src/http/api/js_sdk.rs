//! JS-SDK for pages opened inside WeChat: a signed `wx.config` for a page of the app's
//! JS-safe domains, and the raw tickets for backends that sign themselves (see
//! [`crate::ticket`]).

use super::doc::api_errors;
use super::{ApiJson, ApiPath, AppPath, Caller};
use crate::config::{AppConfig, AppKind};
use crate::context::Ctx;
use crate::domain::{JsPageUrl, TicketKind};
use crate::http::error::{ApiError, ErrorCode};
use crate::ticket::{FailedSignature, Ticket};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(config))
        .routes(routes!(ticket))
        .routes(routes!(invalidate_ticket))
}

/// At most this many entries in `js_api_list` and `open_tag_list`, each this long: far
/// above WeChat's own lists, a bound on what is echoed back.
const MAX_LIST: usize = 100;
const MAX_NAME: usize = 64;

/// What a page wants to configure.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConfigRequest {
    /// The page's full URL (`location.href`); anything from `#` on is removed. Must be
    /// under one of the app's `js_safe_domains`.
    #[schema(example = "https://shop.example.com/orders/42?from=menu#top")]
    url: String,
    /// Passed through to `jsApiList`, e.g. `["updateAppMessageShareData", "scanQRCode"]`.
    #[serde(default)]
    js_api_list: Vec<String>,
    /// Passed through to `openTagList`, e.g. `["wx-open-launch-weapp", "wx-open-subscribe"]`.
    #[serde(default)]
    open_tag_list: Vec<String>,
    /// A config this page's `wx.config` refused with "invalid signature": when it was made
    /// with the current ticket, the ticket is replaced before signing again.
    #[serde(default)]
    failed_config: Option<FailedConfig>,
}

/// The refused config's signed fields, as `wx.config` got them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FailedConfig {
    timestamp: i64,
    nonce_str: String,
    signature: String,
}

/// What `wx.config` takes, as it takes it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ConfigBody {
    #[schema(example = "wx1234567890abcdef")]
    app_id: String,
    /// Unix seconds.
    timestamp: i64,
    nonce_str: String,
    /// SHA-1 of `jsapi_ticket=..&noncestr=..&timestamp=..&url=..`, lowercase hex.
    signature: String,
    js_api_list: Vec<String>,
    open_tag_list: Vec<String>,
}

api_errors!(ConfigErrors:
    InvalidJson, InvalidBody, BodyTooLarge, UnsupportedMediaType, UnknownApp, NotWebApp,
    UrlNotAllowed, WechatError, WechatRefused, WechatQuota, TokenUnavailable, TicketUnavailable,
    ForceRefreshBudget,
);

/// The signed `wx.config` for one page: `wx.config({debug: false, ...answer})`. The
/// signature is made with the app's jsapi ticket, which wxlink fetches once per window for
/// the whole fleet; only pages under the app's `js_safe_domains` are signed.
#[utoipa::path(
    post,
    path = "/api/v1/apps/{app}/js-sdk-config",
    tag = "js-sdk",
    security(("api_key" = ["js_sdk"])),
    params(AppPath),
    request_body = ConfigRequest,
    responses(
        (status = 200, description = "The config for `wx.config`", body = ConfigBody),
        ConfigErrors,
    )
)]
async fn config(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath(app): ApiPath<String>,
    ApiJson(req): ApiJson<ConfigRequest>,
) -> Result<Json<ConfigBody>, ApiError> {
    let app = official_account(caller.app(&ctx, &app)?)?;
    for (field, list) in [
        ("js_api_list", &req.js_api_list),
        ("open_tag_list", &req.open_tag_list),
    ] {
        check_names(field, list)?;
    }
    let page = JsPageUrl::parse(&req.url, &app.js_safe_domains).map_err(|e| {
        let allowed: Vec<&str> = app
            .js_safe_domains
            .entries()
            .iter()
            .map(|d| d.as_str())
            .collect();
        ApiError::new(
            ErrorCode::UrlNotAllowed,
            format!("{} (js_safe_domains: {allowed:?})", e.0),
        )
    })?;
    let failed = req.failed_config.map(|f| FailedSignature {
        timestamp: f.timestamp,
        nonce: f.nonce_str,
        signature: f.signature,
    });
    let signed = ctx.tickets.sign(&app.id, &page, failed.as_ref()).await?;
    Ok(Json(ConfigBody {
        app_id: signed.appid,
        timestamp: signed.timestamp,
        nonce_str: signed.nonce,
        signature: signed.signature,
        js_api_list: req.js_api_list,
        open_tag_list: req.open_tag_list,
    }))
}

fn official_account(app: &AppConfig) -> Result<&AppConfig, ApiError> {
    if app.kind != AppKind::OfficialAccount {
        return Err(ApiError::new(
            ErrorCode::NotWebApp,
            format!(
                "app {} is a mini-program: JS-SDK tickets and signatures belong to Official Accounts",
                app.id
            ),
        ));
    }
    Ok(app)
}

/// API and tag names are echoed to the page: bounded, and plain names only.
fn check_names(field: &str, list: &[String]) -> Result<(), ApiError> {
    let bad = |m: String| {
        ApiError::new(ErrorCode::InvalidBody, m).with_details(serde_json::json!({ "field": field }))
    };
    if list.len() > MAX_LIST {
        return Err(bad(format!("{field} has more than {MAX_LIST} entries")));
    }
    for name in list {
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(format!(
                "{field}: {:?} is not an API or tag name (letters, digits, `-`, `_`; at most {MAX_NAME})",
                name.chars().take(40).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// `{app}` and `{kind}` in a route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct TicketPath {
    /// A configured Official Account's short name (`[[apps]] id`).
    app: String,
    /// `jsapi` (signs `wx.config`) or `wx_card` (card pages).
    kind: String,
}

/// A ticket as a backend that signs by itself needs it.
#[derive(Serialize, ToSchema)]
struct TicketBody {
    #[schema(value_type = String)]
    ticket: Arc<str>,
    /// `jsapi` or `wx_card`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    kind: &'static str,
    /// Unix seconds.
    expires_at: i64,
}

impl From<Ticket> for TicketBody {
    fn from(t: Ticket) -> Self {
        Self {
            ticket: t.ticket,
            kind: t.kind.as_str(),
            expires_at: t.expires_at,
        }
    }
}

fn parse_kind(s: &str) -> Result<TicketKind, ApiError> {
    TicketKind::parse(s).map_err(|e| ApiError::new(ErrorCode::InvalidTicketType, e.0))
}

api_errors!(TicketErrors:
    UnknownApp, NotWebApp, InvalidTicketType,
    WechatError, WechatRefused, WechatQuota, TokenUnavailable, TicketUnavailable,
    ForceRefreshBudget,
);

/// The app's current ticket of that type (from memory; fetched once per window for the
/// fleet), for backends that sign pages themselves.
#[utoipa::path(
    get,
    path = "/api/v1/apps/{app}/js-sdk-tickets/{kind}",
    tag = "js-sdk",
    security(("api_key" = ["tokens:read"])),
    params(TicketPath),
    responses(
        (status = 200, description = "The current ticket", body = TicketBody),
        TicketErrors,
    )
)]
async fn ticket(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath((app, kind)): ApiPath<(String, String)>,
) -> Result<Json<TicketBody>, ApiError> {
    let app = official_account(caller.app(&ctx, &app)?)?;
    let kind = parse_kind(&kind)?;
    Ok(Json(ctx.tickets.get(&app.id, kind).await?.into()))
}

/// A ticket that failed for the caller.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InvalidateRequest {
    ticket: String,
}

api_errors!(InvalidateErrors:
    InvalidJson, InvalidBody, BodyTooLarge, UnsupportedMediaType, UnknownApp, NotWebApp,
    InvalidTicketType, WechatError, WechatRefused, WechatQuota, TokenUnavailable,
    TicketUnavailable, ForceRefreshBudget,
);

/// "This ticket failed for me" (a page's `wx.config` said "invalid signature"): replaced
/// only if it is still the current one. Answers the current, possibly new, ticket.
#[utoipa::path(
    post,
    path = "/api/v1/apps/{app}/js-sdk-tickets/{kind}/invalidate",
    tag = "js-sdk",
    security(("api_key" = ["tokens:invalidate"])),
    params(TicketPath),
    request_body = InvalidateRequest,
    responses(
        (status = 200, description = "The current ticket", body = TicketBody),
        InvalidateErrors,
    )
)]
async fn invalidate_ticket(
    State(ctx): State<Ctx>,
    caller: Caller,
    ApiPath((app, kind)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<InvalidateRequest>,
) -> Result<Json<TicketBody>, ApiError> {
    let app = official_account(caller.app(&ctx, &app)?)?;
    let kind = parse_kind(&kind)?;
    if req.ticket.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidBody, "ticket is empty"));
    }
    tracing::info!(app = %app.id, kind = %kind, caller = %caller.name, "JS-SDK ticket reported as failed");
    Ok(Json(
        ctx.tickets
            .invalidate(&app.id, kind, &req.ticket)
            .await?
            .into(),
    ))
}
