//! `storage_key` and `storage_key_previous`: the keys that seal stored secrets (session
//! keys, web tokens, global access tokens, stored callback answers) at rest.

use super::{ConfigError, resolve_secret};
use crate::seal::{Keyring, StorageKey};
use secrecy::ExposeSecret;

const HOW: &str = "Set 32 random bytes as base64 or hex (e.g. `openssl rand -base64 32`), in the file or in WXLINK_STORAGE_KEY";

/// The keyring from the two settings (each may come from `env:NAME` or its override
/// variable). Outside the sandbox a key is required: every app's global access token is
/// stored, sealed.
pub(super) fn parse(
    current: Option<&String>,
    previous: Option<&String>,
    sandbox: bool,
) -> Result<Option<Keyring>, ConfigError> {
    let key = |setting: &str, value, var| -> Result<Option<StorageKey>, ConfigError> {
        resolve_secret(setting, value, var)?
            .map(|k| {
                StorageKey::parse(k.expose_secret()).map_err(|e| ConfigError::new(setting, e.0))
            })
            .transpose()
    };
    let current = key("storage_key", current, "WXLINK_STORAGE_KEY")?;
    let previous = key(
        "storage_key_previous",
        previous,
        "WXLINK_STORAGE_KEY_PREVIOUS",
    )?;
    match current {
        Some(k) => Ok(Some(Keyring::new(k, previous))),
        None if previous.is_some() => Err(ConfigError::new(
            "storage_key_previous",
            "is set without storage_key: rotation needs the new key in storage_key",
        )),
        None if sandbox => Ok(None),
        None => Err(ConfigError::new(
            "storage_key",
            format!(
                "is required: it seals what wxlink stores and must read back (each app's access token, \
                 web tokens, mini-program session keys). {HOW}"
            ),
        )),
    }
}
