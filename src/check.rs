//! `wxlink check`: whether the configuration is valid, whether the database opens, and
//! whether each app's credentials work against the configured WeChat (or simulator),
//! without changing anything: no file created, no migration, no token replaced.
//!
//! Every app is checked with a plain `stable_token` call (no `force_refresh`): it returns
//! the token WeChat already has for the app, or starts one, and never invalidates anything.
//! `classic` apps are checked the same way and `cgi-bin/token` is never called: each call
//! there issues a new token and cuts the running service's token to 5 minutes. WeChat
//! keeps stable and classic tokens apart ("完全隔离，互不影响"), so the check proves the
//! appid, secret and IP whitelist without touching the token the service uses.
//!
//! An app with a `forward_url` has its downstream sent WeChat's own verification request
//! (`GET ?signature&timestamp&nonce&echostr`, signed with the app's `push_token`): an
//! answer of the `echostr` proves the handler is reachable and checks signatures with the
//! same token; another answer is reachable with a warning; no answer fails the check.

use crate::config::{AppConfig, Config};
use crate::store::{Schema, check_database};
use crate::wechat::{ErrCode, WechatClient, WechatError};
use std::io::Write;
use std::path::Path;

/// Runs every check, writing one line per finding to `out`; `true` when all passed.
pub async fn run(config_path: Option<&Path>, out: &mut impl Write) -> bool {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "configuration: FAILED: {e}");
            return false;
        }
    };
    let mut ok = true;
    if config.sandbox {
        let _ = writeln!(
            out,
            "configuration: ok (none given: `serve` would start the sandbox with its built-in simulator)"
        );
    } else {
        let _ = writeln!(
            out,
            "configuration: ok ({} app{}, {} API key{})",
            config.apps.len(),
            plural(config.apps.len()),
            config.api_keys.len(),
            plural(config.api_keys.len()),
        );
    }

    let _ = writeln!(out, "{}", storage_line(&config));
    for (i, key) in config.api_keys.iter().enumerate() {
        if key.scopes.is_none() {
            let _ = writeln!(
                out,
                "api_keys[{i}] ({:?}): warning: no `scopes`, so the key may do everything on every app; name what it needs ({})",
                key.name,
                crate::config::Scope::ALL.map(|s| s.as_str()).join(", ")
            );
        }
    }

    let db = crate::app::redact_url(&config.database_url);
    match check_database(&config.database_url).await {
        Ok(Schema::UpToDate) => {
            let _ = writeln!(out, "database: ok ({db}, schema up to date)");
        }
        Ok(Schema::Pending(n)) => {
            let _ = writeln!(
                out,
                "database: ok ({db}; {n} migration{} pending, applied by `serve` at start)",
                plural(n)
            );
        }
        Ok(Schema::NotCreated) => {
            let _ = writeln!(
                out,
                "database: ok ({db} does not exist yet; `serve` creates it)"
            );
        }
        Err(problem) => {
            ok = false;
            let _ = writeln!(out, "database: FAILED ({db}): {problem}");
        }
    }

    let wechat = match WechatClient::new() {
        Ok(w) => w,
        Err(e) => {
            let _ = writeln!(out, "wechat: FAILED: cannot build the HTTP client: {e}");
            return false;
        }
    };
    for app in &config.apps {
        let (passed, line) = check_app(&wechat, app).await;
        ok &= passed;
        let _ = writeln!(out, "{line}");
        if let Some(fwd) = &app.forward {
            let (passed, line) = check_forward(app, fwd).await;
            ok &= passed;
            let _ = writeln!(out, "{line}");
        }
    }
    ok
}

/// The downstream of an app: sent WeChat's signed verification request, as the console
/// sends it when the URL is saved.
async fn check_forward(app: &AppConfig, fwd: &crate::config::ForwardConfig) -> (bool, String) {
    use secrecy::ExposeSecret;
    let mut shown = fwd.url.clone();
    shown.set_query(None);
    let head = format!("app {} forward_url ({shown})", app.id);
    let Some(token) = &app.push_token else {
        return (false, format!("{head}: FAILED: no push_token to sign with"));
    };
    let ts = crate::clock::Clock::system().now().to_string();
    let nonce = crate::domain::random_alphanumeric(10);
    let echostr = crate::domain::random_alphanumeric(16);
    let sig = crate::wechat::crypto::signature(&[token.expose_secret(), &ts, &nonce]);
    let query = format!("signature={sig}&timestamp={ts}&nonce={nonce}&echostr={echostr}");
    let url = crate::push::forward::target(&fwd.url, &query);
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(fwd.timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return (
                false,
                format!("{head}: FAILED: cannot build the HTTP client: {e}"),
            );
        }
    };
    let ms = fwd.timeout.as_millis();
    match client.get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            if status == 200 && body.trim() == echostr {
                (
                    true,
                    format!(
                        "{head}: ok (answered WeChat's signed verification with its echostr in under {ms} ms: it checks signatures with this push_token)"
                    ),
                )
            } else {
                (
                    true,
                    format!(
                        "{head}: reachable, warning: it answered HTTP {status} to WeChat's signed verification instead of the echostr; does it check the same push_token?"
                    ),
                )
            }
        }
        Err(e) if e.is_timeout() => (
            false,
            format!(
                "{head}: FAILED: no answer within forward_timeout_ms ({ms} ms); pushes would be answered success without it"
            ),
        ),
        Err(e) => {
            let e = e.without_url();
            let mut cause = e.to_string();
            let mut next = std::error::Error::source(&e);
            while let Some(s) = next {
                cause.push_str(": ");
                cause.push_str(&s.to_string());
                next = s.source();
            }
            (
                false,
                format!("{head}: FAILED: cannot reach it: {cause} (check forward_url)"),
            )
        }
    }
}

/// What seals the stored secrets (a missing key already failed the configuration).
fn storage_line(config: &Config) -> String {
    match &config.storage_key {
        None => "storage key: none given: the sandbox keeps a generated one beside its database".into(),
        Some(k) if k.has_previous() => "storage key: ok (storage_key seals; storage_key_previous still opens what it sealed: \
             run `wxlink reseal`, then remove storage_key_previous)"
            .into(),
        Some(_) => "storage key: ok (seals access tokens, web tokens, session keys and callback answers at rest)".into(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// One app: a plain `stable_token` call, and what its answer means.
async fn check_app(wechat: &WechatClient, app: &AppConfig) -> (bool, String) {
    let head = format!(
        "app {} ({}, {}, {} token, {})",
        app.id,
        app.wechat.appid,
        app.kind.as_str(),
        app.token_mode.as_str(),
        app.wechat.api_base
    );
    let how = match app.token_mode {
        crate::config::TokenMode::Stable => "stable_token answered",
        crate::config::TokenMode::Classic => {
            "stable_token answered; cgi-bin/token not called, since each call there replaces the running token"
        }
    };
    match wechat.fetch_stable_token(&app.wechat, false).await {
        Ok(t) => (
            true,
            format!("{head}: ok ({how}; a token valid for {} s)", t.expires_in),
        ),
        Err(e) => (false, format!("{head}: FAILED: {}", explain(&e))),
    }
}

/// What an error means for the operator, without the secret or the URL's query.
fn explain(e: &WechatError) -> String {
    let (code, errmsg) = match e {
        WechatError::Api { code, errmsg, .. } => (*code, errmsg.as_str()),
        WechatError::Transport { source, .. } => {
            let mut cause = source.to_string();
            let mut next = std::error::Error::source(source);
            while let Some(e) = next {
                cause.push_str(": ");
                cause.push_str(&e.to_string());
                next = e.source();
            }
            return format!("cannot reach WeChat: {cause} (check `api_base` and the network)");
        }
        WechatError::Protocol { detail, .. } => {
            return format!("the answer is not WeChat's: {detail} (check `api_base`)");
        }
    };
    let advice = match code {
        ErrCode::InvalidAppId => "the appid is unknown to WeChat: check `appid`",
        ErrCode::InvalidAppSecret => {
            "the secret is wrong: check `secret` (or reset it in the WeChat console)"
        }
        ErrCode::IpNotWhitelisted => {
            "this server's IP is not on the app's IP whitelist: add it in the WeChat console"
        }
        ErrCode::AppSecretFrozen => "the AppSecret is frozen: unfreeze it in the WeChat console",
        ErrCode::DailyQuota | ErrCode::MinuteQuota => {
            "the token quota is spent for now: the credentials were not checked; try later"
        }
        ErrCode::SystemBusy => "WeChat is busy: try again",
        ErrCode::IpAwaitingConfirmation | ErrCode::IpAwaitingConfirmation2 => {
            "WeChat wants an administrator to confirm this server's IP: confirm it in the WeChat console"
        }
        other => other.description(),
    };
    format!("WeChat errcode {} ({errmsg}): {advice}", code.code())
}
