//! `[[apps]]`: each configured WeChat app, its credentials, base URLs and push keys.

use super::forward::ForwardConfig;
use super::push::PushMode;
use super::{ConfigError, resolve_secret};
use crate::domain::{AppId, AppKind, JsSafeDomains, WxAppId};
use crate::wechat::AppCredentials;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// How the global access token is fetched (used by the token manager).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenMode {
    #[default]
    Stable,
    Classic,
}

impl TokenMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Classic => "classic",
        }
    }
}

/// One configured WeChat app.
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub id: AppId,
    pub kind: AppKind,
    pub wechat: AppCredentials,
    /// The console's "Token": signs every push. Without it the push endpoint answers 404.
    pub push_token: Option<SecretString>,
    pub encoding_aes_key: Option<SecretString>,
    /// The key before the last rotation, tried when the current one does not decrypt.
    pub encoding_aes_key_previous: Option<SecretString>,
    /// Default: `safe` when `encoding_aes_key` is set, else `plain`.
    pub push_mode: PushMode,
    pub token_mode: TokenMode,
    /// The account's existing handler, which verified pushes go on to
    /// ([`crate::push::forward`]).
    pub forward: Option<ForwardConfig>,
    /// The console's JS接口安全域名: the pages `js-sdk-config` signs for (Official Accounts).
    pub js_safe_domains: JsSafeDomains,
}

/// One `[[apps]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    id: String,
    kind: AppKind,
    appid: String,
    secret: String,
    push_token: Option<String>,
    encoding_aes_key: Option<String>,
    encoding_aes_key_previous: Option<String>,
    push_mode: Option<PushMode>,
    #[serde(default)]
    token_mode: TokenMode,
    api_base: Option<String>,
    open_base: Option<String>,
    forward_url: Option<String>,
    forward_timeout_ms: Option<u64>,
    forward_events: Option<Vec<String>>,
    #[serde(default)]
    js_safe_domains: Vec<String>,
}

/// One `[[apps]]` entry, its secrets resolved and every field checked; `i` is its index
/// in the file, for the setting names of refusals.
pub(super) fn parse(i: usize, a: &RawApp) -> Result<AppConfig, ConfigError> {
    let id = AppId::parse(&a.id).map_err(|e| ConfigError::new(format!("apps[{i}].id"), e.0))?;
    let appid =
        WxAppId::parse(&a.appid).map_err(|e| ConfigError::new(format!("apps[{i}].appid"), e.0))?;
    let env_name = |field: &str| {
        format!(
            "WXLINK_APP_{}_{}",
            id.as_str().to_ascii_uppercase().replace('-', "_"),
            field
        )
    };
    let secret = resolve_secret(
        &format!("apps[{i}].secret"),
        Some(&a.secret),
        &env_name("SECRET"),
    )?
    .ok_or_else(|| ConfigError::new(format!("apps[{i}].secret"), "is empty"))?;
    let push_token = resolve_secret(
        &format!("apps[{i}].push_token"),
        a.push_token.as_ref(),
        &env_name("PUSH_TOKEN"),
    )?;
    let encoding_aes_key = resolve_secret(
        &format!("apps[{i}].encoding_aes_key"),
        a.encoding_aes_key.as_ref(),
        &env_name("ENCODING_AES_KEY"),
    )?;
    let encoding_aes_key_previous = resolve_secret(
        &format!("apps[{i}].encoding_aes_key_previous"),
        a.encoding_aes_key_previous.as_ref(),
        &env_name("ENCODING_AES_KEY_PREVIOUS"),
    )?;
    let push_mode = super::push::check_app(
        i,
        a.push_mode,
        push_token.as_ref(),
        encoding_aes_key.as_ref(),
        encoding_aes_key_previous.as_ref(),
    )?;
    let forward = super::forward::parse(
        i,
        a.forward_url.as_deref(),
        a.forward_timeout_ms,
        a.forward_events.as_deref(),
        push_token.is_some(),
    )?;
    let js_safe_domains = JsSafeDomains::parse(&a.js_safe_domains)
        .map_err(|e| ConfigError::new(format!("apps[{i}].js_safe_domains"), e.0))?;
    if !js_safe_domains.is_empty() && a.kind != AppKind::OfficialAccount {
        return Err(ConfigError::new(
            format!("apps[{i}].js_safe_domains"),
            "only an Official Account has JS-safe domains (a mini-program's pages need no JS-SDK signature)",
        ));
    }
    let base = |field: &str, v: &Option<String>, default: &str| -> Result<String, ConfigError> {
        let s = v.as_deref().unwrap_or(default);
        let url = Url::parse(s)
            .map_err(|e| ConfigError::new(format!("apps[{i}].{field}"), e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::new(
                format!("apps[{i}].{field}"),
                "must be an http(s) URL",
            ));
        }
        Ok(s.trim_end_matches('/').to_owned())
    };
    Ok(AppConfig {
        wechat: AppCredentials {
            appid,
            secret,
            api_base: base("api_base", &a.api_base, "https://api.weixin.qq.com")?,
            open_base: base("open_base", &a.open_base, "https://open.weixin.qq.com")?,
        },
        id,
        kind: a.kind,
        push_token,
        encoding_aes_key,
        encoding_aes_key_previous,
        push_mode,
        token_mode: a.token_mode,
        forward,
        js_safe_domains,
    })
}
