//! Configuration: a TOML file (`--config` / `WXLINK_CONFIG`) with environment overrides,
//! parsed once at start-up into typed values. Every refusal names the setting.
//!
//! This file holds the top-level keys (`listen`, `public_url`, `database_url`,
//! `storage_key`, ...), loading and the checks that span sections; each TOML section has
//! its own file, named for it.

mod admin;
mod api_keys;
mod apps;
mod database;
mod followers;
mod forward;
mod locate;
mod metrics;
mod oauth;
mod outbox;
mod pages;
mod push;
mod rate_limits;
mod retention;
mod sandbox;
mod storage;
mod tokens;
mod webhooks;

pub use admin::AdminSettings;
pub use api_keys::{ApiKey, Scope};
pub use apps::{AppConfig, TokenMode};
pub use database::DatabaseSettings;
pub use followers::FollowerSettings;
pub use forward::ForwardConfig;
pub use metrics::MetricsSettings;
pub use oauth::OAuthTimings;
pub use outbox::OutboxSettings;
pub use pages::PagesSettings;
pub use push::{PushMode, PushSettings};
pub use rate_limits::{Limit, RateLimitSettings};
pub use retention::RetentionSettings;
pub use sandbox::{SandboxSettings, is_public as sandbox_is_public};
pub use tokens::TokenSettings;
pub use webhooks::{WebhookDelivery, WebhookEndpoint};

/// Kept here for the paths that name it through configuration.
pub use crate::domain::AppKind;
use crate::domain::{AppId, ReturnToAllowList};
use crate::seal::Keyring;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use url::Url;

#[derive(Debug, thiserror::Error)]
#[error("configuration error in `{setting}`{}: {problem}", self.at.as_deref().map(|at| format!(" ({at})")).unwrap_or_default())]
pub struct ConfigError {
    /// The setting's full path, e.g. `outbox.concurrency` or `apps[0].appid`.
    pub setting: String,
    pub problem: String,
    /// Where the file holds it, e.g. `wxlink.toml line 12`, when it came from the file.
    pub at: Option<String>,
}

impl ConfigError {
    /// Names the key figment complained about by its full path (`outbox.concurrency`).
    fn from_figment(e: figment::Error) -> Self {
        let mut path = String::new();
        for part in &e.path {
            match part.parse::<usize>() {
                Ok(i) => path.push_str(&format!("[{i}]")),
                Err(_) if path.is_empty() => path.push_str(part),
                Err(_) => {
                    path.push('.');
                    path.push_str(part);
                }
            }
        }
        if path.is_empty() {
            path = "configuration file".into();
        }
        let from_env = e
            .metadata
            .as_ref()
            .is_some_and(|m| m.name.to_lowercase().contains("environment"));
        let mut err = Self::new(path, e.kind.to_string());
        // Only what the file said gets the file's line.
        err.at = from_env.then(|| "from the environment".to_owned());
        err
    }

    pub(crate) fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
            at: None,
        }
    }

    /// Adds the line of `file` that holds the setting, when it does.
    fn located_in(mut self, file: &Path) -> Self {
        if self.at.is_some() || overridden_by_env(&self.setting) {
            return self;
        }
        if let Ok(text) = std::fs::read_to_string(file)
            && let Some(line) = locate::line_of(&text, &self.setting)
        {
            self.at = Some(format!("{} line {line}", file.display()));
        }
        self
    }
}

/// Whether a top-level setting's value may have come from its environment override, not
/// from the file (its line would then mislead).
fn overridden_by_env(setting: &str) -> bool {
    let key = setting.split(['.', '[']).next().unwrap_or_default();
    let var = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    ENV_OVERRIDES.contains(&key) && var(&format!("WXLINK_{}", key.to_uppercase()))
        || key == "database_url" && var("DATABASE_URL")
}

/// The top-level keys `WXLINK_<KEY>` overrides.
const ENV_OVERRIDES: &[&str] = &[
    "listen",
    "public_url",
    "database_url",
    "max_body_bytes",
    "shutdown_grace_secs",
];

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
    /// `[sandbox]`: what the sandbox adds when it runs.
    pub sandbox_settings: SandboxSettings,
    /// Seals stored secrets (session keys, web and global access tokens, callback
    /// answers), with the key before the last rotation. Required outside the sandbox; the
    /// sandbox keeps a generated one beside its database.
    pub storage_key: Option<Keyring>,
    pub metrics: MetricsSettings,
    pub admin: AdminSettings,
    pub rate_limits: RateLimitSettings,
    /// `[pages]`: the business as the person pages name it.
    pub pages: PagesSettings,
    /// On SIGTERM: how long in-flight requests and sends may take before the process exits.
    pub shutdown_grace_secs: u64,
    /// The company's endpoints that receive signed events (`[[webhooks]]`).
    pub webhooks: Vec<WebhookEndpoint>,
    pub webhook_delivery: WebhookDelivery,
    /// `[retention]`: how long finished records are kept.
    pub retention: RetentionSettings,
    /// `[followers]`: follower info lookups and imports.
    pub followers: FollowerSettings,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    public_url: Option<String>,
    database_url: Option<String>,
    database: DatabaseSettings,
    return_to_allow: Vec<String>,
    api_keys: Vec<api_keys::RawApiKey>,
    apps: Vec<apps::RawApp>,
    oauth: OAuthTimings,
    tokens: TokenSettings,
    push: PushSettings,
    outbox: OutboxSettings,
    max_body_bytes: Option<usize>,
    sandbox: Option<sandbox::RawSandbox>,
    storage_key: Option<String>,
    storage_key_previous: Option<String>,
    metrics: metrics::RawMetrics,
    admin: admin::RawAdmin,
    rate_limits: rate_limits::RawRateLimits,
    pages: pages::RawPages,
    shutdown_grace_secs: Option<u64>,
    webhooks: Vec<webhooks::RawWebhook>,
    webhook_delivery: WebhookDelivery,
    retention: RetentionSettings,
    followers: FollowerSettings,
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
        figment = figment
            .merge(Env::raw().only(&["database_url"]))
            .merge(Env::prefixed("WXLINK_").only(ENV_OVERRIDES));
        let sandbox_env = sandbox::SandboxEnv::read()?;
        let loaded = figment
            .extract::<RawConfig>()
            .map_err(ConfigError::from_figment)
            .and_then(|raw| Self::from_raw(raw, path.is_some(), &sandbox_env));
        loaded.map_err(|e| match path {
            Some(file) => e.located_in(file),
            None => e,
        })
    }

    /// Parses configuration given as TOML text, as if read from a file (no environment).
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = Figment::new()
            .merge(Toml::string(toml))
            .extract()
            .map_err(ConfigError::from_figment)?;
        Self::from_raw(raw, true, &sandbox::SandboxEnv::default())
    }

    fn from_raw(
        raw: RawConfig,
        from_file: bool,
        sandbox_env: &sandbox::SandboxEnv,
    ) -> Result<Self, ConfigError> {
        let (sandbox, sandbox_settings) = sandbox::parse(
            raw.sandbox.as_ref(),
            sandbox_env,
            !from_file && raw.apps.is_empty(),
        )?;
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
        if sandbox {
            sandbox::check_public(listen, public_url.as_ref(), &sandbox_settings)?;
        }

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

        let mut apps: Vec<AppConfig> = Vec::new();
        for (i, a) in raw.apps.iter().enumerate() {
            let app = apps::parse(i, a)?;
            if apps.iter().any(|x| x.id == app.id) {
                return Err(ConfigError::new(
                    format!("apps[{i}].id"),
                    format!("app {:?} is configured twice", app.id.as_str()),
                ));
            }
            apps.push(app);
        }
        let api_keys = raw
            .api_keys
            .iter()
            .enumerate()
            .map(|(i, k)| api_keys::parse(i, k, &apps))
            .collect::<Result<Vec<_>, _>>()?;

        oauth::check(&raw.oauth)?;
        tokens::check(&raw.tokens)?;
        push::check_section(&raw.push)?;
        database::check(&raw.database)?;
        outbox::check(&raw.outbox)?;
        webhooks::check_delivery(&raw.webhook_delivery)?;
        retention::check(&raw.retention)?;
        followers::check(&raw.followers)?;
        let webhooks = webhooks::parse_all(&raw.webhooks)?;

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

        let storage_key = storage::parse(
            raw.storage_key.as_ref(),
            raw.storage_key_previous.as_ref(),
            sandbox,
        )?;
        let retention = RetentionSettings {
            pushes_days: raw.push.retention_days,
            ..raw.retention
        };
        let metrics = raw.metrics.parse()?;
        let admin = raw.admin.parse()?;
        let rate_limits = raw.rate_limits.parse()?;
        let pages = raw.pages.parse()?;
        let shutdown_grace_secs = check_grace(
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
            sandbox_settings,
            storage_key,
            metrics,
            admin,
            rate_limits,
            pages,
            shutdown_grace_secs,
            webhooks,
            webhook_delivery: raw.webhook_delivery,
            retention,
            followers: raw.followers,
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
fn check_ranges(items: &[(&str, i64, i64, i64)]) -> Result<(), ConfigError> {
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

/// The default grace period on SIGTERM, in seconds.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 20;

fn check_grace(secs: u64) -> Result<u64, ConfigError> {
    if !(1..=3600).contains(&secs) {
        return Err(ConfigError::new(
            "shutdown_grace_secs",
            format!("{secs} is out of range 1..=3600"),
        ));
    }
    Ok(secs)
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
            storage_key = "2222222222222222222222222222222222222222222222222222222222222222"
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
    fn a_real_configuration_needs_a_valid_storage_key() {
        let e = with_mini_program("").unwrap_err();
        assert_eq!(e.setting, "storage_key");
        assert!(e.problem.contains("is required"), "{}", e.problem);

        let e = with_mini_program(&format!("storage_key_previous = \"{}\"", "11".repeat(32)))
            .unwrap_err();
        assert_eq!(e.setting, "storage_key_previous");
        let e = with_mini_program(&format!(
            "storage_key = \"{}\"\nstorage_key_previous = \"short\"",
            "11".repeat(32)
        ))
        .unwrap_err();
        assert_eq!(e.setting, "storage_key_previous");

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
