//! Push settings: the `[push]` section, and each app's push mode and keys (the
//! `push_token`, `encoding_aes_key`... fields of `[[apps]]`), checked at start-up like the
//! rest of the configuration (every refusal names the setting).

use super::ConfigError;
use secrecy::SecretString;
use serde::Deserialize;

/// How WeChat sends pushes to this app (the console's "message encryption mode").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    /// Plain XML, `signature` only; an encrypted push is still accepted when a key is set.
    Plain,
    /// Plain fields and `<Encrypt>` in one body; either form is accepted.
    Compatible,
    /// Only encrypted pushes (`encrypt_type=aes` + `msg_signature`) are accepted.
    Safe,
}

impl PushMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Compatible => "compatible",
            Self::Safe => "safe",
        }
    }
}

/// The WeChat push endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// A push whose timestamp is further than this from our clock is refused; its nonce is
    /// remembered this long.
    pub timestamp_window_secs: i64,
    /// Larger push bodies are refused with 413 (WeChat's are a few kilobytes).
    pub max_body_bytes: usize,
    /// How often stored-but-unhandled events are looked for (and old records pruned).
    pub sweep_interval_secs: u64,
    /// Handled events (and applied delivery reports) older than this are deleted.
    pub retention_days: i64,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            timestamp_window_secs: 300,
            max_body_bytes: 64 * 1024,
            sweep_interval_secs: 10,
            retention_days: 30,
        }
    }
}

/// The `[push]` section's values are in range.
pub(super) fn check_section(p: &PushSettings) -> Result<(), ConfigError> {
    super::check_ranges(&[
        (
            "push.timestamp_window_secs",
            p.timestamp_window_secs,
            1,
            86_400,
        ),
        (
            "push.max_body_bytes",
            p.max_body_bytes as i64,
            1024,
            16 * 1024 * 1024,
        ),
        (
            "push.sweep_interval_secs",
            p.sweep_interval_secs as i64,
            1,
            3600,
        ),
        ("push.retention_days", p.retention_days, 1, 3650),
    ])?;

    Ok(())
}

/// The push settings of one app fit together: a token WeChat's console would accept, keys
/// that decode to 32 bytes, and a key wherever the mode needs one. Returns the mode.
pub(super) fn check_app(
    i: usize,
    mode: Option<PushMode>,
    token: Option<&SecretString>,
    key: Option<&SecretString>,
    previous: Option<&SecretString>,
) -> Result<PushMode, ConfigError> {
    use secrecy::ExposeSecret;
    if let Some(t) = token {
        let t = t.expose_secret();
        if !(3..=32).contains(&t.len()) || !t.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ConfigError::new(
                format!("apps[{i}].push_token"),
                "must be 3 to 32 letters or digits, as in WeChat's console",
            ));
        }
    }
    for (field, k) in [
        ("encoding_aes_key", key),
        ("encoding_aes_key_previous", previous),
    ] {
        if let Some(k) = k
            && crate::wechat::crypto::MessageCrypto::new(k.expose_secret()).is_err()
        {
            return Err(ConfigError::new(
                format!("apps[{i}].{field}"),
                "must be the 43 base64 characters of WeChat's EncodingAESKey",
            ));
        }
    }
    if previous.is_some() && key.is_none() {
        return Err(ConfigError::new(
            format!("apps[{i}].encoding_aes_key_previous"),
            "is set without encoding_aes_key (the current key)",
        ));
    }
    if key.is_some() && token.is_none() {
        return Err(ConfigError::new(
            format!("apps[{i}].push_token"),
            "is required when encoding_aes_key is set (every push is signed with it)",
        ));
    }
    let mode = mode.unwrap_or(if key.is_some() {
        PushMode::Safe
    } else {
        PushMode::Plain
    });
    if mode != PushMode::Plain && key.is_none() {
        return Err(ConfigError::new(
            format!("apps[{i}].encoding_aes_key"),
            format!("is required for push_mode = \"{}\"", mode.as_str()),
        ));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, PushMode};

    const KEY: &str = "ce2b5b8f15e2d2b6a0e2d63c4a0c52f1a8e9a0f8fd7b3c1f5f0d7b46d1c6a7e0";

    fn app_with(push: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(&format!(
            "storage_key = \"2222222222222222222222222222222222222222222222222222222222222222\"\n[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\n[[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"wx2c2769f8efd9abc2\"\nsecret = \"s\"\n{push}\n"
        ))
    }

    const AES: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn push_mode_defaults_from_the_key() {
        let c = app_with("push_token = \"tok123\"").unwrap();
        assert_eq!(c.apps[0].push_mode, PushMode::Plain);
        let c = app_with(&format!(
            "push_token = \"tok123\"\nencoding_aes_key = \"{AES}\""
        ))
        .unwrap();
        assert_eq!(c.apps[0].push_mode, PushMode::Safe);
        let c = app_with(&format!(
            "push_token = \"tok123\"\nencoding_aes_key = \"{AES}\"\nencoding_aes_key_previous = \"{AES}\"\npush_mode = \"compatible\""
        ))
        .unwrap();
        assert_eq!(c.apps[0].push_mode, PushMode::Compatible);
        assert_eq!(c.push.timestamp_window_secs, 300);
    }

    #[test]
    fn push_settings_that_cannot_work_are_refused_by_name() {
        for (push, setting) in [
            (
                "push_token = \"tok123\"\npush_mode = \"safe\"",
                "apps[0].encoding_aes_key",
            ),
            (
                "push_token = \"tok123\"\nencoding_aes_key = \"short\"",
                "apps[0].encoding_aes_key",
            ),
            (
                &format!("encoding_aes_key = \"{AES}\""),
                "apps[0].push_token",
            ),
            (
                &format!("push_token = \"tok123\"\nencoding_aes_key_previous = \"{AES}\""),
                "apps[0].encoding_aes_key_previous",
            ),
            ("push_token = \"bad token!\"", "apps[0].push_token"),
            ("push_mode = \"secret\"", "apps[0].push_mode"),
            (
                "[push]\ntimestamp_window_secs = 0",
                "push.timestamp_window_secs",
            ),
            ("[push]\nmax_body_bytes = 10", "push.max_body_bytes"),
        ] {
            let e = app_with(push).unwrap_err();
            assert_eq!(e.setting, setting, "{push}: {e}");
        }
    }
}
