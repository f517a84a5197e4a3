//! Push forwarding: each app's optional downstream (`forward_url`, `forward_timeout_ms`,
//! `forward_events` in `[[apps]]`), the handler the account had before wxlink. Its answer
//! must reach WeChat within WeChat's 5 s, so the timeout is refused at 5 s and above.

use super::ConfigError;
use std::time::Duration;
use url::Url;

/// The default deadline of a forward: a second under WeChat's 5 s for our own work and the
/// network between WeChat and us.
pub const DEFAULT_TIMEOUT_MS: u64 = 4000;
/// WeChat waits this long for the answer to a push, then retries.
pub const WECHAT_WAIT_MS: u64 = 5000;

/// Where an app's verified pushes go on to, and which of them.
#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// The downstream; WeChat's query string is appended to it as it came.
    pub url: Url,
    /// From the push's arrival to the downstream's answer; past it WeChat gets `success`.
    pub timeout: Duration,
    /// The push kinds forwarded (the event for events, e.g. `CLICK`, else the message
    /// type, e.g. `text`); `None`: every push.
    pub events: Option<Vec<String>>,
}

impl ForwardConfig {
    /// Whether a push of this kind goes to the downstream.
    pub fn wants(&self, kind: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|list| list.iter().any(|k| k == kind))
    }
}

/// The forwarding settings of app `i` as written, checked; `None` without `forward_url`.
pub(super) fn parse(
    i: usize,
    url: Option<&str>,
    timeout_ms: Option<u64>,
    events: Option<&[String]>,
    has_push_token: bool,
) -> Result<Option<ForwardConfig>, ConfigError> {
    let setting = |field: &str| format!("apps[{i}].{field}");
    let Some(url) = url else {
        if timeout_ms.is_some() {
            return Err(ConfigError::new(
                setting("forward_timeout_ms"),
                "is set without forward_url",
            ));
        }
        if events.is_some() {
            return Err(ConfigError::new(
                setting("forward_events"),
                "is set without forward_url",
            ));
        }
        return Ok(None);
    };
    let parsed =
        Url::parse(url).map_err(|e| ConfigError::new(setting("forward_url"), e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.fragment().is_some() {
        return Err(ConfigError::new(
            setting("forward_url"),
            "must be an http(s) URL without a #fragment",
        ));
    }
    if !has_push_token {
        return Err(ConfigError::new(
            setting("forward_url"),
            "needs push_token: only verified pushes are forwarded",
        ));
    }
    let ms = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if ms >= WECHAT_WAIT_MS {
        return Err(ConfigError::new(
            setting("forward_timeout_ms"),
            format!(
                "{ms} ms is not below WeChat's {WECHAT_WAIT_MS} ms: WeChat would give up first and retry; \
                 leave room for wxlink's own work (default {DEFAULT_TIMEOUT_MS})"
            ),
        ));
    }
    if ms < 50 {
        return Err(ConfigError::new(
            setting("forward_timeout_ms"),
            format!("{ms} ms leaves the downstream no time to answer (at least 50)"),
        ));
    }
    let events = match events {
        None => None,
        Some([]) => {
            return Err(ConfigError::new(
                setting("forward_events"),
                "is empty: leave it out to forward every push, or name the kinds",
            ));
        }
        Some(list) if list.iter().any(|k| k == "*") => None,
        Some(list) => {
            for k in list {
                if k.is_empty()
                    || k.len() > 64
                    || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(ConfigError::new(
                        setting("forward_events"),
                        format!(
                            "{k:?} is not a push kind (an event such as CLICK or subscribe, a message type such as text, or \"*\")"
                        ),
                    ));
                }
            }
            Some(list.to_vec())
        }
    };
    Ok(Some(ForwardConfig {
        url: parsed,
        timeout: Duration::from_millis(ms),
        events,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    const KEY: &str = "ce2b5b8f15e2d2b6a0e2d63c4a0c52f1a8e9a0f8fd7b3c1f5f0d7b46d1c6a7e0";

    fn app_with(lines: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(&format!(
            "storage_key = \"2222222222222222222222222222222222222222222222222222222222222222\"\n[[api_keys]]\nname = \"a\"\nkey_sha256 = \"{KEY}\"\n[[apps]]\nid = \"oa\"\nkind = \"official_account\"\nappid = \"wx2c2769f8efd9abc2\"\nsecret = \"s\"\n{lines}\n"
        ))
    }

    #[test]
    fn forwarding_defaults_to_four_seconds_and_every_push() {
        let c = app_with("push_token = \"tok123\"\nforward_url = \"http://127.0.0.1:9/wechat\"")
            .unwrap();
        let f = c.apps[0].forward.as_ref().unwrap();
        assert_eq!(f.timeout.as_millis(), 4000);
        assert!(f.wants("text") && f.wants("CLICK") && f.wants("TEMPLATESENDJOBFINISH"));
        let c = app_with(
            "push_token = \"tok123\"\nforward_url = \"http://h/w?x=1\"\nforward_timeout_ms = 4999\nforward_events = [\"text\", \"CLICK\"]",
        )
        .unwrap();
        let f = c.apps[0].forward.as_ref().unwrap();
        assert_eq!(f.timeout.as_millis(), 4999);
        assert!(f.wants("text") && f.wants("CLICK"));
        assert!(!f.wants("subscribe") && !f.wants("click"));
        assert!(
            app_with("push_token = \"tok123\"").unwrap().apps[0]
                .forward
                .is_none()
        );
    }

    #[test]
    fn forward_settings_that_cannot_work_are_refused_by_name() {
        for (lines, setting, says) in [
            (
                "push_token = \"tok123\"\nforward_url = \"http://h/\"\nforward_timeout_ms = 5000",
                "apps[0].forward_timeout_ms",
                "not below WeChat's 5000 ms",
            ),
            (
                "push_token = \"tok123\"\nforward_url = \"http://h/\"\nforward_timeout_ms = 8000",
                "apps[0].forward_timeout_ms",
                "not below",
            ),
            (
                "push_token = \"tok123\"\nforward_url = \"http://h/\"\nforward_timeout_ms = 0",
                "apps[0].forward_timeout_ms",
                "no time",
            ),
            (
                "push_token = \"tok123\"\nforward_timeout_ms = 3000",
                "apps[0].forward_timeout_ms",
                "without forward_url",
            ),
            (
                "push_token = \"tok123\"\nforward_events = [\"text\"]",
                "apps[0].forward_events",
                "without forward_url",
            ),
            (
                "push_token = \"tok123\"\nforward_url = \"ftp://h/\"",
                "apps[0].forward_url",
                "http(s)",
            ),
            (
                "push_token = \"tok123\"\nforward_url = \"not a url\"",
                "apps[0].forward_url",
                "",
            ),
            (
                "forward_url = \"http://h/\"",
                "apps[0].forward_url",
                "push_token",
            ),
            (
                "push_token = \"tok123\"\nforward_url = \"http://h/\"\nforward_events = []",
                "apps[0].forward_events",
                "empty",
            ),
            (
                "push_token = \"tok123\"\nforward_url = \"http://h/\"\nforward_events = [\"te xt\"]",
                "apps[0].forward_events",
                "not a push kind",
            ),
        ] {
            let e = app_with(lines).unwrap_err();
            assert_eq!(e.setting, setting, "{lines}: {e}");
            assert!(e.to_string().contains(says), "{lines}: {e}");
        }
    }
}
