//! `[[api_keys]]`: the backends' API keys, kept only as their SHA-256.

use super::ConfigError;
use serde::Deserialize;

/// A backend API key, kept only as its SHA-256.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub name: String,
    pub sha256: [u8; 32],
}

/// One `[[api_keys]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApiKey {
    name: String,
    key_sha256: String,
}

/// One `[[api_keys]]` entry checked; `i` is its index in the file.
pub(super) fn parse(i: usize, k: &RawApiKey) -> Result<ApiKey, ConfigError> {
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
