//! The simulator's web authorization: `/connect/oauth2/authorize` and `/sns/...`.

use super::{
    CODE_TTL_SECS, IssuedCode, REFRESH_TOKEN_TTL_SECS, Sim, WEB_TOKEN_TTL_SECS, WebGrant,
    person_cookie, set_person_cookie, wx_error,
};
use crate::domain::{host_and_port, random_alphanumeric};
use crate::wechat::types::{ErrorBody, UserInfo, WebTokenResponse};
use askama::Template;
use axum::extract::{Form, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::HashMap;
use url::Url;

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/connect/oauth2/authorize", get(authorize))
        .route("/connect/oauth2/answer", post(answer))
        .route("/sns/oauth2/access_token", get(access_token))
        .route("/sns/oauth2/refresh_token", get(refresh_token))
        .route("/sns/userinfo", get(userinfo))
        .route("/sns/auth", get(auth))
}

/// The header (or cookie) that says which simulated person is using "WeChat".
pub const PERSON_HEADER: &str = "x-wxsim-person";
/// `allow` or `deny`: answers the snsapi_userinfo consent page without a click.
pub const CONSENT_HEADER: &str = "x-wxsim-consent";

#[derive(Template)]
#[template(path = "sim/error.html")]
struct ErrorPage {
    errcode: i64,
    message: String,
}

fn error_page(errcode: i64, message: impl Into<String>) -> Response {
    let page = ErrorPage {
        errcode,
        message: message.into(),
    };
    let html = page.render().unwrap_or_else(|_| format!("error {errcode}"));
    (StatusCode::BAD_REQUEST, Html(html)).into_response()
}

#[derive(Template)]
#[template(path = "sim/authorize.html")]
struct AuthorizePage {
    appid: String,
    redirect_uri: String,
    scope: String,
    state: String,
    people: Vec<super::Person>,
    selected: String,
    ask_consent: bool,
}

/// A checked authorize request.
struct AuthRequest {
    appid: String,
    redirect_uri: String,
    scope: String,
    state: String,
}

/// WeChat documents `state` as at most 128 bytes.
const MAX_STATE_BYTES: usize = 128;

/// WeChat validates the link by pattern: the order of the first parameters is fixed and
/// redirect_uri must be percent-encoded; the redirect host must be the configured domain.
fn check_authorize(sim: &Sim, raw: &str) -> Result<AuthRequest, Response> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    const ORDER: [&str; 4] = ["appid", "redirect_uri", "response_type", "scope"];
    if keys.len() < 4
        || keys[..4] != ORDER
        || keys
            .get(4)
            .is_some_and(|k| *k != "state" && keys.contains(&"state"))
    {
        return Err(error_page(
            10001,
            "链接参数顺序错误 / authorize parameters must come in the order appid, redirect_uri, response_type, scope, state",
        ));
    }
    let raw_redirect = raw
        .split('&')
        .find_map(|seg| seg.strip_prefix("redirect_uri="))
        .unwrap_or_default();
    if raw_redirect.contains(':') || raw_redirect.contains('/') {
        return Err(error_page(
            10001,
            "redirect_uri 未经 urlencode / redirect_uri must be percent-encoded",
        ));
    }
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let req = AuthRequest {
        appid: get("appid"),
        redirect_uri: get("redirect_uri"),
        scope: get("scope"),
        state: get("state"),
    };
    if req.state.len() > MAX_STATE_BYTES {
        return Err(error_page(
            10001,
            "state 参数过长 / state is longer than 128 bytes",
        ));
    }
    if get("response_type") != "code" {
        return Err(error_page(10001, "response_type must be code"));
    }
    let app = sim.lock().apps.get(&req.appid).cloned();
    let Some(app) = app else {
        return Err(error_page(10016, "appid 参数错误 / unknown appid"));
    };
    if !matches!(req.scope.as_str(), "snsapi_base" | "snsapi_userinfo") {
        return Err(error_page(
            10005,
            "此公众号并没有这些scope的权限 / scope not permitted",
        ));
    }
    let redirect_host = Url::parse(&req.redirect_uri)
        .ok()
        .and_then(|u| host_and_port(&u));
    if redirect_host.is_none() || redirect_host != app.auth_domain {
        return Err(error_page(
            10003,
            "redirect_uri 域名与后台配置不一致 / redirect_uri domain does not match the web-authorization domain",
        ));
    }
    Ok(req)
}

fn person_from(headers: &HeaderMap, sim: &Sim) -> Option<String> {
    let from_header = headers
        .get(PERSON_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    from_header
        .or_else(|| person_cookie(headers))
        .filter(|id| sim.person(id).is_some())
}

/// Sends the browser back: with a code when allowed, without one when declined.
fn redirect_back(sim: &Sim, req: &AuthRequest, person: &str, allow: bool) -> Response {
    let mut params = Vec::new();
    if allow {
        let code = random_alphanumeric(32);
        sim.lock().codes.insert(
            code.clone(),
            IssuedCode {
                appid: req.appid.clone(),
                person: person.to_owned(),
                scope: req.scope.clone(),
                issued_at: sim.clock.now(),
                used: false,
            },
        );
        sim.count("codes_issued");
        params.push(format!("code={code}"));
    } else {
        sim.count("consents_declined");
    }
    params.push(format!("state={}", urlencoding::encode(&req.state)));
    let sep = if req.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!("{}{sep}{}", req.redirect_uri, params.join("&"));
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::SET_COOKIE, set_person_cookie(person)),
        ],
    )
        .into_response()
}

async fn authorize(
    State(sim): State<Sim>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    sim.count("authorize_requests");
    let req = match check_authorize(&sim, raw.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(page) => {
            sim.count("authorize_refused");
            return page;
        }
    };
    let person = person_from(&headers, &sim);
    let consent = headers.get(CONSENT_HEADER).and_then(|v| v.to_str().ok());
    match (&person, req.scope.as_str(), consent) {
        (Some(p), "snsapi_base", _) => return redirect_back(&sim, &req, p, true),
        (Some(p), _, Some("allow")) => return redirect_back(&sim, &req, p, true),
        (Some(p), _, Some("deny")) => return redirect_back(&sim, &req, p, false),
        _ => {}
    }
    let page = AuthorizePage {
        ask_consent: req.scope == "snsapi_userinfo",
        appid: req.appid,
        redirect_uri: req.redirect_uri,
        scope: req.scope,
        state: req.state,
        people: sim.people(),
        selected: person.unwrap_or_default(),
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[derive(Deserialize)]
struct AnswerForm {
    appid: String,
    redirect_uri: String,
    scope: String,
    #[serde(default)]
    state: String,
    /// A person id, or `new`.
    person: String,
    decision: String,
}

async fn answer(State(sim): State<Sim>, Form(f): Form<AnswerForm>) -> Response {
    // Rebuild the link exactly as WeChat would have received it and check it again.
    let raw = format!(
        "appid={}&redirect_uri={}&response_type=code&scope={}&state={}",
        urlencoding::encode(&f.appid),
        urlencoding::encode(&f.redirect_uri),
        urlencoding::encode(&f.scope),
        urlencoding::encode(&f.state)
    );
    let req = match check_authorize(&sim, &raw) {
        Ok(r) => r,
        Err(page) => return page,
    };
    let person = if f.person == "new" || sim.person(&f.person).is_none() {
        sim.add_person(None, false).id
    } else {
        f.person
    };
    redirect_back(&sim, &req, &person, f.decision == "allow")
}

fn token_response(sim: &Sim, grant: &WebGrant, refresh_token: String) -> WebTokenResponse {
    let access_token = random_alphanumeric(64);
    sim.lock().access_tokens.insert(
        access_token.clone(),
        WebGrant {
            expires_at: sim.clock.now() + WEB_TOKEN_TTL_SECS,
            ..grant.clone()
        },
    );
    let snapshot = sim.person(&grant.person).is_some_and(|p| p.snapshot);
    WebTokenResponse {
        access_token,
        expires_in: WEB_TOKEN_TTL_SECS,
        refresh_token,
        openid: sim.openid_of(&grant.appid, &grant.person),
        scope: grant.scope.clone(),
        is_snapshotuser: i64::from(snapshot),
        unionid: sim.unionid_of(&grant.appid, &grant.person),
    }
}

async fn access_token(
    State(sim): State<Sim>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    sim.count("code_exchanges");
    let appid = q.get("appid").map(String::as_str).unwrap_or("");
    if let Err(e) = sim.check_credentials(
        appid,
        Some(q.get("secret").map(String::as_str).unwrap_or("")),
    ) {
        return e;
    }
    if q.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return wx_error(40002, "invalid grant_type");
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
        return wx_error(41008, "missing code");
    };
    let now = sim.clock.now();
    let issued = {
        let mut st = sim.lock();
        match st.codes.get_mut(code) {
            Some(c) if c.appid == q["appid"] => {
                let before = c.clone();
                c.used = true;
                Some(before)
            }
            _ => None,
        }
    };
    let Some(issued) = issued else {
        sim.count("code_rejected_invalid");
        return wx_error(40029, "invalid code");
    };
    if issued.used {
        sim.count("code_rejected_used");
        return wx_error(40163, "code been used");
    }
    if now >= issued.issued_at + CODE_TTL_SECS {
        sim.count("code_rejected_expired");
        return wx_error(42003, "code expired");
    }
    let grant = WebGrant {
        appid: issued.appid,
        person: issued.person,
        scope: issued.scope,
        expires_at: now + REFRESH_TOKEN_TTL_SECS,
    };
    let refresh = random_alphanumeric(64);
    sim.lock()
        .refresh_tokens
        .insert(refresh.clone(), grant.clone());
    sim.count("codes_exchanged");
    Json(token_response(&sim, &grant, refresh)).into_response()
}

async fn refresh_token(
    State(sim): State<Sim>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    sim.count("refreshes");
    if let Err(e) = sim.check_credentials(q.get("appid").map(String::as_str).unwrap_or(""), None) {
        return e;
    }
    let rt = q.get("refresh_token").cloned().unwrap_or_default();
    if rt.is_empty() {
        return wx_error(41003, "refresh_token missing");
    }
    let grant = sim.lock().refresh_tokens.get(&rt).cloned();
    match grant {
        Some(g) if g.appid == q["appid"] => {
            if sim.clock.now() >= g.expires_at {
                return wx_error(42002, "refresh_token expired");
            }
            Json(token_response(&sim, &g, rt)).into_response()
        }
        _ => wx_error(40030, "invalid refresh_token"),
    }
}

/// Checks a web access token for `openid`.
fn web_grant(sim: &Sim, q: &HashMap<String, String>) -> Result<WebGrant, Response> {
    let at = q.get("access_token").map(String::as_str).unwrap_or("");
    if at.is_empty() {
        return Err(wx_error(41001, "access_token missing"));
    }
    let grant = sim.lock().access_tokens.get(at).cloned();
    let Some(g) = grant else {
        return Err(wx_error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        ));
    };
    if sim.clock.now() >= g.expires_at {
        return Err(wx_error(42001, "access_token expired"));
    }
    if q.get("openid").is_none_or(|o| o.is_empty()) {
        return Err(wx_error(41009, "missing openid"));
    }
    if q.get("openid").map(String::as_str) != Some(sim.openid_of(&g.appid, &g.person).as_str()) {
        return Err(wx_error(40003, "invalid openid"));
    }
    Ok(g)
}

async fn userinfo(State(sim): State<Sim>, Query(q): Query<HashMap<String, String>>) -> Response {
    sim.count("userinfo");
    let g = match web_grant(&sim, &q) {
        Ok(g) => g,
        Err(e) => return e,
    };
    if !g.scope.split(',').any(|s| s == "snsapi_userinfo") {
        return wx_error(48001, "api unauthorized");
    }
    let Some(p) = sim.person(&g.person) else {
        return wx_error(40003, "invalid openid");
    };
    Json(UserInfo {
        openid: sim.openid_of(&g.appid, &g.person),
        nickname: p.nickname,
        sex: 0,
        province: String::new(),
        city: String::new(),
        country: String::new(),
        headimgurl: p.headimgurl,
        privilege: vec![],
        unionid: sim.unionid_of(&g.appid, &g.person),
    })
    .into_response()
}

async fn auth(State(sim): State<Sim>, Query(q): Query<HashMap<String, String>>) -> Response {
    match web_grant(&sim, &q) {
        Ok(_) => Json(ErrorBody::new(0, "ok")).into_response(),
        Err(_) => wx_error(40003, "invalid openid"),
    }
}
