//! `[[api_keys]]`: the backends' API keys, kept only as their SHA-256, each with what it
//! may do (`scopes`) and for which apps (`apps`).

use super::ConfigError;
use crate::domain::AppId;
use serde::Deserialize;

/// One kind of operation an API key may be allowed. Every API route needs exactly one
/// (the OpenAPI document names it in the route's `security`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read an app's global access token.
    TokensRead,
    /// Report a token as failed, which may spend WeChat's `force_refresh` budget.
    TokensInvalidate,
    /// Sign `wx.config` for pages under an app's JS-safe domains (no ticket is handed out).
    JsSdk,
    /// Send messages, read them, and record what a person allowed (subscriptions, form ids,
    /// muted categories).
    Send,
    /// Look up, bind and unbind identities, mint link tickets, redeem login codes and run
    /// mini-program logins.
    Identities,
    /// Erase a user (`DELETE /api/v1/users/{user_id}`).
    UsersDelete,
    /// Read what WeChat pushed.
    Events,
    /// The webhook endpoints: deliveries, replays, test events.
    Webhooks,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Self::TokensRead,
        Self::TokensInvalidate,
        Self::JsSdk,
        Self::Send,
        Self::Identities,
        Self::UsersDelete,
        Self::Events,
        Self::Webhooks,
    ];

    /// The name written in `scopes = [...]` and answered in `missing_scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokensRead => "tokens:read",
            Self::TokensInvalidate => "tokens:invalidate",
            Self::JsSdk => "js_sdk",
            Self::Send => "send",
            Self::Identities => "identities",
            Self::UsersDelete => "users:delete",
            Self::Events => "events",
            Self::Webhooks => "webhooks",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend API key, kept only as its SHA-256, with what it may do.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub name: String,
    pub sha256: [u8; 32],
    /// `None`: every scope (a key written before scopes existed; `wxlink check` warns).
    pub scopes: Option<Vec<Scope>>,
    /// `None`: every app.
    pub apps: Option<Vec<AppId>>,
}

impl ApiKey {
    /// A key that may do everything (the sandbox's development key).
    pub fn full_access(name: impl Into<String>, sha256: [u8; 32]) -> Self {
        Self {
            name: name.into(),
            sha256,
            scopes: None,
            apps: None,
        }
    }

    pub fn allows_scope(&self, scope: Scope) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.contains(&scope))
    }

    pub fn allows_app(&self, app: &AppId) -> bool {
        self.apps.as_ref().is_none_or(|a| a.contains(app))
    }

    /// Whether the key may act on every app (routes that span apps need this).
    pub fn allows_every_app(&self) -> bool {
        self.apps.is_none()
    }
}

/// One `[[api_keys]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApiKey {
    name: String,
    key_sha256: String,
    scopes: Option<Vec<String>>,
    apps: Option<Vec<String>>,
}

/// One `[[api_keys]]` entry checked against the configured apps; `i` is its index in the
/// file.
pub(super) fn parse(
    i: usize,
    k: &RawApiKey,
    configured: &[super::AppConfig],
) -> Result<ApiKey, ConfigError> {
    let setting = format!("api_keys[{i}].key_sha256");
    let bytes = hex::decode(k.key_sha256.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ConfigError::new(&setting, "must be 64 hex digits (sha256 of the key)"))?;
    if k.name.trim().is_empty() {
        return Err(ConfigError::new(format!("api_keys[{i}].name"), "is empty"));
    }
    let scopes = k
        .scopes
        .as_ref()
        .map(|list| {
            let setting = format!("api_keys[{i}].scopes");
            if list.is_empty() {
                return Err(ConfigError::new(
                    &setting,
                    "is empty: the key could do nothing; name its scopes or remove the key",
                ));
            }
            list.iter()
                .map(|s| {
                    Scope::parse(s).ok_or_else(|| {
                        ConfigError::new(
                            &setting,
                            format!(
                                "unknown scope {s:?}; the scopes are {}",
                                Scope::ALL.map(Scope::as_str).join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let apps = k
        .apps
        .as_ref()
        .map(|list| {
            let setting = format!("api_keys[{i}].apps");
            if list.is_empty() {
                return Err(ConfigError::new(
                    &setting,
                    "is empty: the key could reach no app; name its apps or leave `apps` out for all",
                ));
            }
            list.iter()
                .map(|name| {
                    super::app_named(configured, name)
                        .map(|a| a.id.clone())
                        .map_err(|e| ConfigError::new(&setting, e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(ApiKey {
        name: k.name.clone(),
        sha256: bytes,
        scopes,
        apps,
    })
}
