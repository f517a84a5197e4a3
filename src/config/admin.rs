//! `[admin]`: the credential of the admin pages.

use super::{ConfigError, resolve_secret};
use serde::Deserialize;

/// `[admin]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAdmin {
    key_sha256: Option<String>,
}

/// Who may open the admin pages (`/admin`).
#[derive(Clone, Debug, Default)]
pub struct AdminSettings {
    /// SHA-256 of the admin key, given as the HTTP basic-auth password (any user name) or
    /// as `Authorization: Bearer <key>`. Unset: the admin pages do not exist (404).
    pub key_sha256: Option<[u8; 32]>,
}

impl RawAdmin {
    pub(super) fn parse(&self) -> Result<AdminSettings, ConfigError> {
        use secrecy::ExposeSecret;
        let setting = "admin.key_sha256";
        let Some(hex_digest) =
            resolve_secret(setting, self.key_sha256.as_ref(), "WXLINK_ADMIN_KEY_SHA256")?
        else {
            return Ok(AdminSettings::default());
        };
        let bytes = hex::decode(hex_digest.expose_secret().trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                ConfigError::new(
                    setting,
                    "must be 64 hex digits: the SHA-256 of the admin key (wxlink hash-key)",
                )
            })?;
        Ok(AdminSettings {
            key_sha256: Some(bytes),
        })
    }
}
