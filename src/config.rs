//! Configuration: a TOML file (`--config` / `WXLINK_CONFIG`) with environment overrides,
//! parsed once at start-up into typed values. Every refusal names the setting.

mod ops;
mod sending;
pub use ops::{
    AdminSettings, DEFAULT_SHUTDOWN_GRACE_SECS, Limit, MetricsSettings, RateLimitSettings,
};
pub use sending::{DatabaseSettings, OutboxSettings};

use crate::domain::{AppId, ReturnToAllowList, WxAppId};
pub use crate::push::settings::{PushMode, PushSettings};
use crate::seal::StorageKey;
use crate::wechat::AppCredentials;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use url::Url;

#[derive(Debug, thiserror::Error)]
#[error("configuration error in `{setting}`: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    /// Names the innermost key figment complained about.
    fn from_figment(e: figment::Error) -> Self {
        let setting = e
            .path
            .last()
            .cloned()
            .unwrap_or_else(|| "configuration file".into());
        Self::new(setting, e.kind.to_string())
    }

    pub(crate) fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    OfficialAccount,
    MiniProgram,
}

impl AppKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OfficialAccount => "official_account",
            Self::MiniProgram => "mini_program",
        }
    }
}

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
}

/// A backend API key, kept only as its SHA-256.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub name: String,
    pub sha256: [u8; 32],
}

/// Lifetimes of the short-lived things of the authorization flow, in seconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthTimings {
    pub state_ttl_secs: i64,
    pub ticket_ttl_secs: i64,
    pub login_code_ttl_secs: i64,
}

impl Default for OAuthTimings {
    fn default() -> Self {
        Self {
            state_ttl_secs: 600,
            ticket_ttl_secs: 600,
            login_code_ttl_secs: 300,
        }
    }
}

/// How the token manager refreshes global access tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// Refresh this long before expiry. A stable token is only renewed in its last 5
    /// minutes, so keep this at 300 or less for `token_mode = "stable"`.
    pub refresh_margin_secs: i64,
    /// Each instance waits a random part of this inside the window, so they do not collide.
    pub jitter_secs: i64,
    /// How long one instance may hold the refresh lease before another may take over.
    pub lease_secs: i64,
    /// How often each instance looks at the stored token.
    pub check_interval_ms: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            refresh_margin_secs: 300,
            jitter_secs: 60,
            lease_secs: 60,
            check_interval_ms: 1000,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where browsers reach us; derived from the bound address when unset.
    pub public_url: Option<Url>,
    pub database_url: String,
    pub database: DatabaseSettings,
    pub return_to_allow: ReturnToAllowList,
    pub api_keys: Vec<ApiKey>,
    pub apps: Vec<AppConfig>,
    pub oauth: OAuthTimings,
    pub tokens: TokenSettings,
    pub push: PushSettings,
    pub outbox: OutboxSettings,
    pub max_body_bytes: usize,
    /// No configuration given: built-in simulator, sandbox apps, a development API key.
    pub sandbox: bool,
    /// Seals stored secrets (mini-program session keys). Required when a mini-program is
    /// configured; the sandbox keeps a generated one beside its database.
    pub storage_key: Option<StorageKey>,
    pub metrics: MetricsSettings,
    pub admin: AdminSettings,
    pub rate_limits: RateLimitSettings,
    /// On SIGTERM: how long in-flight requests and sends may take before the process exits.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    public_url: Option<String>,
    database_url: Option<String>,
    database: DatabaseSettings,
    return_to_allow: Vec<String>,
    api_keys: Vec<RawApiKey>,
    apps: Vec<RawApp>,
    oauth: OAuthTimings,
    tokens: TokenSettings,
    push: PushSettings,
    outbox: OutboxSettings,
    max_body_bytes: Option<usize>,
    sandbox: Option<bool>,
    storage_key: Option<String>,
    metrics: ops::RawMetrics,
    admin: ops::RawAdmin,
    rate_limits: ops::RawRateLimits,
    shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    name: String,
    key_sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
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
}

pub const DEFAULT_SQLITE_URL: &str = "sqlite://wxlink.db";

impl Config {
    /// Reads the file (if any) and the environment. `path = None` and no apps means sandbox.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment =
            figment
                .merge(Env::raw().only(&["database_url"]))
                .merge(Env::prefixed("WXLINK_").only(&[
                    "listen",
                    "public_url",
                    "database_url",
                    "max_body_bytes",
                    "sandbox",
                    "shutdown_grace_secs",
                ]));
        let raw: RawConfig = figment.extract().map_err(ConfigError::from_figment)?;
        Self::from_raw(raw, path.is_some())
    }

    /// Parses configuration given as TOML text, as if read from a file (no environment).
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = Figment::new()
            .merge(Toml::string(toml))
            .extract()
            .map_err(ConfigError::from_figment)?;
        Self::from_raw(raw, true)
    }

    fn from_raw(raw: RawConfig, from_file: bool) -> Result<Self, ConfigError> {
        let sandbox = raw.sandbox.unwrap_or(!from_file && raw.apps.is_empty());
        let default_listen = if sandbox {
            "127.0.0.1:8080"
        } else {
            "0.0.0.0:8080"
        };
        let listen_str = raw.listen.as_deref().unwrap_or(default_listen);
        let listen: SocketAddr = listen_str.parse().map_err(|_| {
            ConfigError::new(
                "listen",
                format!("{listen_str:?} is not an address like 0.0.0.0:8080"),
            )
        })?;

        let public_url = raw
            .public_url
            .as_deref()
            .map(|s| {
                let url = Url::parse(s)
                    .map_err(|e| ConfigError::new("public_url", format!("{s:?}: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
                    return Err(ConfigError::new(
                        "public_url",
                        "must be an http(s) URL without a query",
                    ));
                }
                Ok(url)
            })
            .transpose()?;

        let database_url = raw
            .database_url
            .unwrap_or_else(|| DEFAULT_SQLITE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "database_url",
                "must start with sqlite: or postgres://",
            ));
        }

        let return_to_allow = ReturnToAllowList::parse(&raw.return_to_allow)
            .map_err(|e| ConfigError::new("return_to_allow", e.0))?;

        let api_keys = raw
            .api_keys
            .iter()
            .enumerate()
            .map(|(i, k)| parse_api_key(i, k))
            .collect::<Result<Vec<_>, _>>()?;

        let mut apps: Vec<AppConfig> = Vec::new();
        for (i, a) in raw.apps.iter().enumerate() {
            let app = parse_app(i, a)?;
            if apps.iter().any(|x| x.id == app.id) {
                return Err(ConfigError::new(
                    format!("apps[{i}].id"),
                    format!("app {:?} is configured twice", app.id.as_str()),
                ));
            }
            apps.push(app);
        }

        let t = &raw.oauth;
        check_ranges(&[
            ("oauth.state_ttl_secs", t.state_ttl_secs, 1, 3600),
            ("oauth.ticket_ttl_secs", t.ticket_ttl_secs, 1, 600),
            ("oauth.login_code_ttl_secs", t.login_code_ttl_secs, 1, 3600),
        ])?;

        let tk = &raw.tokens;
        check_ranges(&[
            (
                "tokens.refresh_margin_secs",
                tk.refresh_margin_secs,
                1,
                3600,
            ),
            (
                "tokens.jitter_secs",
                tk.jitter_secs,
                0,
                tk.refresh_margin_secs / 2,
            ),
            ("tokens.lease_secs", tk.lease_secs, 5, 600),
            (
                "tokens.check_interval_ms",
                tk.check_interval_ms as i64,
                50,
                60_000,
            ),
        ])?;

        crate::push::settings::check_section(&raw.push)?;
        sending::check_database(&raw.database)?;
        sending::check_outbox(&raw.outbox)?;

        let storage_key = resolve_secret(
            "storage_key",
            raw.storage_key.as_ref(),
            "WXLINK_STORAGE_KEY",
        )?
        .map(|k| {
            use secrecy::ExposeSecret;
            StorageKey::parse(k.expose_secret()).map_err(|e| ConfigError::new("storage_key", e.0))
        })
        .transpose()?;
        if !sandbox
            && storage_key.is_none()
            && let Some(i) = apps.iter().position(|a| a.kind == AppKind::MiniProgram)
        {
            return Err(ConfigError::new(
                "storage_key",
                format!(
                    "is required because apps[{i}] is a mini_program: it encrypts mini-program session keys at rest. \
                     Set 32 random bytes as base64 or hex (e.g. `openssl rand -base64 32`), in the file or in WXLINK_STORAGE_KEY"
                ),
            ));
        }

        if !sandbox {
            if apps.is_empty() {
                return Err(ConfigError::new(
                    "apps",
                    "no app configured; add an [[apps]] section (or run without configuration for the sandbox)",
                ));
            }
            if api_keys.is_empty() {
                return Err(ConfigError::new(
                    "api_keys",
                    "no API key configured; the backend API would refuse every call",
                ));
            }
        }

        let metrics = raw.metrics.parse()?;
        let admin = raw.admin.parse()?;
        let rate_limits = raw.rate_limits.parse()?;
        let shutdown_grace_secs = ops::check_grace(
            raw.shutdown_grace_secs
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
        )?;

        Ok(Self {
            listen,
            public_url,
            database_url,
            database: raw.database,
            return_to_allow,
            api_keys,
            apps,
            oauth: raw.oauth,
            tokens: raw.tokens,
            push: raw.push,
            outbox: raw.outbox,
            max_body_bytes: raw.max_body_bytes.unwrap_or(64 * 1024),
            sandbox,
            storage_key,
            metrics,
            admin,
            rate_limits,
            shutdown_grace_secs,
        })
    }

    pub fn app(&self, id: &AppId) -> Option<&AppConfig> {
        self.apps.iter().find(|a| &a.id == id)
    }

    /// The configured app a caller named (in a path, a query or a body).
    pub fn app_named(&self, name: &str) -> Result<&AppConfig, UnknownApp> {
        app_named(&self.apps, name)
    }
}

/// No configured app has the name a caller gave; each boundary answers it its own way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no app named {name:?} is configured")]
pub struct UnknownApp {
    /// The name as given, cut to 40 characters: it is echoed back.
    pub name: String,
}

/// The one way to find an app by the name a caller gave: a name that is not even a valid
/// app id names no app.
pub fn app_named<'a>(
    apps: impl IntoIterator<Item = &'a AppConfig>,
    name: &str,
) -> Result<&'a AppConfig, UnknownApp> {
    AppId::parse(name)
        .ok()
        .and_then(|id| apps.into_iter().find(|a| a.id == id))
        .ok_or_else(|| UnknownApp {
            name: name.chars().take(40).collect(),
        })
}

/// Each `(setting, value, min, max)` within its range, or an error naming the setting.
pub(crate) fn check_ranges(items: &[(&str, i64, i64, i64)]) -> Result<(), ConfigError> {
    for &(name, v, min, max) in items {
        if v < min || v > max {
            return Err(ConfigError::new(
                name,
                format!("{v} is out of range {min}..={max}"),
            ));
        }
    }
    Ok(())
}

fn parse_api_key(i: usize, k: &RawApiKey) -> Result<ApiKey, ConfigError> {
    let setting = format!("api_keys[{i}].key_sha256");
    let bytes = hex::decode(k.key_sha256.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ConfigError::new(&setting, "must be 64 hex digits (sha256 of the key)"))?;
    if k.name.trim().is_empty() {
        return Err(ConfigError::new(format!("api_keys[{i}].name"), "is empty"));
    }
    Ok(ApiKey {
        name: k.name.clone(),
        sha256: bytes,
    })
}

fn parse_app(i: usize, a: &RawApp) -> Result<AppConfig, ConfigError> {
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
    let push_mode = crate::push::settings::check_app(
        i,
        a.push_mode,
        push_token.as_ref(),
        encoding_aes_key.as_ref(),
        encoding_aes_key_previous.as_ref(),
    )?;
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
    })
}

/// `env:NAME` reads the variable NAME; `WXLINK_APP_<ID>_<FIELD>` overrides the file.
fn resolve_secret(
    setting: &str,
    value: Option<&String>,
    override_var: &str,
) -> Result<Option<SecretString>, ConfigError> {
    if let Ok(v) = std::env::var(override_var)
        && !v.is_empty()
    {
        return Ok(Some(SecretString::from(v)));
    }
    let Some(value) = value else { return Ok(None) };
    if let Some(var) = value.strip_prefix("env:") {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(SecretString::from(v))),
            _ => Err(ConfigError::new(
                setting,
                format!("refers to environment variable {var}, which is not set"),
            )),
        };
    }
    if value.is_empty() {
        return Ok(None);
    }
    Ok(Some(SecretString::from(value.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(toml)
    }

    const KEY: &str = "ce2b5b8f15e2d2b6a0e2d63c4a0c52f1a8e9a0f8fd7b3c1f5f0d7b46d1c6a7e0";

    #[test]
    fn a_minimal_file_parses() {
        let c = parse(&format!(
            r#"
            public_url = "https://auth.example.com"
            [[api_keys]]
            name = "orders"
            key_sha256 = "{KEY}"
            [[apps]]
            id = "oa"
            kind = "official_account"
            appid = "wx2c2769f8efd9abc2"
            secret = "s3cret"
            "#
        ))
        .unwrap();
        assert!(!c.sandbox);
        assert_eq!(c.apps[0].wechat.api_base, "https://api.weixin.qq.com");
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn errors_name_the_setting() {
        let e = parse(&format!(
            r#"
            [[api_keys]]
            name = "orders"
            key_sha256 = "{KEY}"
            [[apps]]
            id = "oa"
            kind = "official_account"
            appid = "notanappid"
            secret = "s"
            "#
        ))
        .unwrap_err();
        assert_eq!(e.setting, "apps[0].appid");

        let e = parse(
            r#"
            [[apps]]
            id = "oa"
            kind = "official_account"
            appid = "wx2c2769f8efd9abc2"
            secret = "env:WXLINK_TEST_SURELY_UNSET_VAR"
            "#,
        )
        .unwrap_err();
        assert_eq!(e.setting, "apps[0].secret");
        assert!(e.problem.contains("WXLINK_TEST_SURELY_UNSET_VAR"));

        let e = parse(r#"listen = "nope""#).unwrap_err();
        assert_eq!(e.setting, "listen");
    }

    fn with_mini_program(extra: &str) -> Result<Config, ConfigError> {
        parse(&format!(
            r#"
            {extra}
            [[api_keys]]
            name = "orders"
            key_sha256 = "{KEY}"
            [[apps]]
            id = "mp"
            kind = "mini_program"
            appid = "wx2c2769f8efd9abc2"
            secret = "s3cret"
            "#
        ))
    }

    #[test]
    fn a_mini_program_needs_a_valid_storage_key() {
        let e = with_mini_program("").unwrap_err();
        assert_eq!(e.setting, "storage_key");
        assert!(e.problem.contains("apps[0]"), "{}", e.problem);

        let e = with_mini_program(r#"storage_key = "c2hvcnQ=""#).unwrap_err();
        assert_eq!(e.setting, "storage_key");
        assert!(e.problem.contains("32 bytes"), "{}", e.problem);

        let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let c = with_mini_program(&format!("storage_key = \"{key}\"")).unwrap();
        assert!(c.storage_key.is_some());
        assert!(
            !format!("{c:?}").contains(key),
            "the key never shows in Debug"
        );
    }
}
