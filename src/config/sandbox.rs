//! `sandbox = true`, or a `[sandbox]` section: the sandbox's own settings (extra
//! `return_to` entries, and the explicit consent to a sandbox other machines can reach).

use super::ConfigError;
use crate::domain::ReturnToAllowList;
use serde::Deserialize;
use std::net::SocketAddr;
use url::Url;

/// `sandbox` as written: a flag, or a section.
#[derive(Debug)]
pub(super) enum RawSandbox {
    Flag(bool),
    Section(RawSandboxSection),
}

/// By hand rather than `untagged`, so a mistake in the section is named (an unknown key,
/// a wrong type) instead of "did not match any variant".
impl<'de> Deserialize<'de> for RawSandbox {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = RawSandbox;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a [sandbox] section")
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawSandbox, E> {
                Ok(RawSandbox::Flag(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawSandbox, A::Error> {
                RawSandboxSection::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawSandbox::Section)
            }
        }
        d.deserialize_any(Either)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSandboxSection {
    /// Defaults to true: a `[sandbox]` section asks for the sandbox.
    enabled: Option<bool>,
    allow_public: bool,
    return_to_allow: Vec<String>,
}

/// The environment's say, read by [`super::Config::load`] only (a TOML string has none).
#[derive(Debug, Default)]
pub(super) struct SandboxEnv {
    /// `WXLINK_SANDBOX`
    pub enabled: Option<bool>,
    /// `WXLINK_SANDBOX_ALLOW_PUBLIC`
    pub allow_public: Option<bool>,
    /// `WXLINK_SANDBOX_RETURN_TO_ALLOW`, comma-separated.
    pub return_to_allow: Option<Vec<String>>,
}

impl SandboxEnv {
    pub(super) fn read() -> Result<Self, ConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let flag = |name: &str| -> Result<Option<bool>, ConfigError> {
            var(name)
                .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" => Ok(true),
                    "0" | "false" | "no" => Ok(false),
                    _ => Err(ConfigError::new(
                        name,
                        format!("{v:?} is not true or false"),
                    )),
                })
                .transpose()
        };
        Ok(Self {
            enabled: flag("WXLINK_SANDBOX")?,
            allow_public: flag("WXLINK_SANDBOX_ALLOW_PUBLIC")?,
            return_to_allow: var("WXLINK_SANDBOX_RETURN_TO_ALLOW").map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
        })
    }
}

/// What the sandbox adds to the configuration, when it runs.
#[derive(Clone, Debug, Default)]
pub struct SandboxSettings {
    /// The operator said the sandbox may be reached from other machines (it shows its API
    /// key, which also opens the admin pages, to whoever opens `/`).
    pub allow_public: bool,
    /// `return_to` entries besides the sandbox's own `/sandbox/`, e.g. a developer's
    /// backend at `http://localhost:3000/`.
    pub return_to_allow: ReturnToAllowList,
}

/// Whether the sandbox runs, and its settings.
pub(super) fn parse(
    raw: Option<&RawSandbox>,
    env: &SandboxEnv,
    default_on: bool,
) -> Result<(bool, SandboxSettings), ConfigError> {
    let section = match raw {
        Some(RawSandbox::Section(s)) => Some(s),
        _ => None,
    };
    let enabled = env
        .enabled
        .or(match raw {
            Some(RawSandbox::Flag(on)) => Some(*on),
            Some(RawSandbox::Section(s)) => Some(s.enabled.unwrap_or(true)),
            None => None,
        })
        .unwrap_or(default_on);
    let allow_public = env
        .allow_public
        .unwrap_or(section.is_some_and(|s| s.allow_public));
    let entries = match (&env.return_to_allow, section) {
        (Some(from_env), _) => from_env.clone(),
        (None, Some(s)) => s.return_to_allow.clone(),
        (None, None) => Vec::new(),
    };
    let return_to_allow = ReturnToAllowList::parse(&entries)
        .map_err(|e| ConfigError::new("sandbox.return_to_allow", e.0))?;
    Ok((
        enabled,
        SandboxSettings {
            allow_public,
            return_to_allow,
        },
    ))
}

/// Whether other machines may reach a sandbox listening on `listen` and announced as
/// `public_url`: any address but loopback, or a public URL naming another host (a proxy).
pub fn is_public(listen: SocketAddr, public_url: Option<&Url>) -> bool {
    let host_is_local = |u: &Url| match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    !listen.ip().is_loopback() || public_url.is_some_and(|u| !host_is_local(u))
}

/// A public sandbox only when the operator said so.
pub(super) fn check_public(
    listen: SocketAddr,
    public_url: Option<&Url>,
    settings: &SandboxSettings,
) -> Result<(), ConfigError> {
    if settings.allow_public || !is_public(listen, public_url) {
        return Ok(());
    }
    let whom = match public_url {
        Some(u) if !listen.ip().is_loopback() => format!("listens on {listen} ({u})"),
        Some(u) => format!("is announced as {u}"),
        None => format!("listens on {listen}"),
    };
    Err(ConfigError::new(
        "sandbox.allow_public",
        format!(
            "the sandbox {whom}, which other machines can reach, and its page shows the development API key \
             (which also opens the admin pages) to anyone who opens it. Listen on 127.0.0.1, or say that you \
             mean it: `[sandbox] allow_public = true` or WXLINK_SANDBOX_ALLOW_PUBLIC=true"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn a_flag_or_a_section() {
        let c = Config::from_toml_str("sandbox = true").unwrap();
        assert!(c.sandbox && !c.sandbox_settings.allow_public);
        let c =
            Config::from_toml_str("[sandbox]\nreturn_to_allow = [\"http://localhost:3000/cb\"]")
                .unwrap();
        assert!(c.sandbox);
        assert_eq!(
            c.sandbox_settings.return_to_allow.entries()[0].as_str(),
            "http://localhost:3000/cb"
        );
        let c = Config::from_toml_str("[sandbox]\nenabled = false").unwrap_err();
        assert_eq!(c.setting, "apps", "no sandbox, no apps");
        let e = Config::from_toml_str("[sandbox]\nreturn_to_allow = [\"nope\"]").unwrap_err();
        assert_eq!(e.setting, "sandbox.return_to_allow");
        let e = Config::from_toml_str("[sandbox]\nalow_public = true").unwrap_err();
        assert!(e.problem.contains("alow_public"), "{e}");
    }

    #[test]
    fn a_public_sandbox_needs_consent() {
        let e = Config::from_toml_str("listen = \"0.0.0.0:8080\"\nsandbox = true").unwrap_err();
        assert_eq!(e.setting, "sandbox.allow_public");
        assert!(e.problem.contains("API key"), "{e}");
        let e = Config::from_toml_str("public_url = \"https://sb.example.com\"\nsandbox = true")
            .unwrap_err();
        assert_eq!(e.setting, "sandbox.allow_public");
        let c = Config::from_toml_str("listen = \"0.0.0.0:8080\"\n[sandbox]\nallow_public = true")
            .unwrap();
        assert!(c.sandbox_settings.allow_public);
    }

    #[test]
    fn loopback_is_private_everything_else_public() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(!is_public("127.0.0.1:8080".parse().unwrap(), None));
        assert!(!is_public("[::1]:8080".parse().unwrap(), None));
        assert!(!is_public(
            "127.0.0.1:8080".parse().unwrap(),
            Some(&url("http://localhost:8080/"))
        ));
        assert!(is_public("0.0.0.0:8080".parse().unwrap(), None));
        assert!(is_public("192.168.1.5:8080".parse().unwrap(), None));
        assert!(is_public(
            "127.0.0.1:8080".parse().unwrap(),
            Some(&url("https://sandbox.example.com/"))
        ));
    }
}
