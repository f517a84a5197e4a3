//! The sandbox's JS-SDK card: a page URL in, the backend's `POST
//! /api/v1/apps/oa/js-sdk-config` answer out, and what WeChat's JS side (the simulator)
//! says of it, as a page calling `wx.config` with it would hear.

use super::pages::{Shared, answer, sandbox_only};
use super::results::ResultPage;
use crate::context::Ctx;
use crate::http::error::Page;
use axum::Extension;
use axum::extract::{Form, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub(super) struct JsSdkForm {
    url: String,
    /// Comma-separated API names.
    #[serde(default)]
    js_api_list: String,
}

pub(super) async fn config(
    State(ctx): State<Ctx>,
    Extension(sandbox): Extension<Shared>,
    Form(f): Form<JsSdkForm>,
) -> Response {
    answer(config_page(&ctx, &sandbox, f).await)
}

async fn config_page(ctx: &Ctx, sandbox: &Shared, f: JsSdkForm) -> Result<Response, Page> {
    let sb = sandbox_only(sandbox)?;
    let apis: Vec<&str> = f
        .js_api_list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let body =
        json!({ "url": f.url.trim(), "js_api_list": apis, "open_tag_list": ["wx-open-subscribe"] });
    let a = sb
        .backend
        .call(
            ctx,
            Method::POST,
            "/api/v1/apps/oa/js-sdk-config",
            Some(&body),
        )
        .await;
    let request = serde_json::to_string_pretty(&body).unwrap_or_default();
    if !a.ok() {
        let code = a.error_code().unwrap_or("error").to_owned();
        return Ok(ResultPage::new(
            "JS-SDK 配置被拒绝 / JS-SDK config refused",
            "js_sdk_refused",
            format!("The backend API refused the page URL ({code})."),
        )
        .section(
            "POST /api/v1/apps/oa/js-sdk-config",
            "The request.",
            request,
        )
        .section("The answer", "", a.pretty())
        .answer(a.status));
    }
    let c = &a.json;
    let verdict = sb.sim.verify_js_config(
        c["appId"].as_str().unwrap_or_default(),
        f.url.trim(),
        c["timestamp"].as_i64().unwrap_or_default(),
        c["nonceStr"].as_str().unwrap_or_default(),
        c["signature"].as_str().unwrap_or_default(),
    );
    let outcome = if verdict == "config:ok" {
        "js_sdk_config"
    } else {
        "js_sdk_rejected"
    };
    Ok(ResultPage::new(
        "JS-SDK 配置 / JS-SDK config",
        outcome,
        format!("A page at this URL calls wx.config with the answer; WeChat's JS side (the simulator) says: {verdict}"),
    )
    .section("POST /api/v1/apps/oa/js-sdk-config", "The request a backend sends (the page's location.href; wxlink removes the fragment).", request)
    .section("wx.config({debug: false, ...})", "The answer, as wx.config takes it.", a.pretty())
    .section("WeChat's JS side", "What the simulator answers a page calling wx.config with it.", serde_json::to_string_pretty(&json!({ "errMsg": verdict })).unwrap_or_default())
    .answer(StatusCode::OK))
}
