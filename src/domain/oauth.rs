//! Values of the web authorization flow: scope, CSRF state, and the open-redirect guard.

use super::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

stored_as_text!(OAuthScope);

/// The two scopes an Official Account web page may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum OAuthScope {
    /// Silent: openid (and unionid where the account has the privilege) only.
    #[serde(rename = "snsapi_base")]
    Base,
    /// Consent page, then the profile.
    #[serde(rename = "snsapi_userinfo")]
    UserInfo,
}

impl OAuthScope {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "snsapi_base" => Ok(Self::Base),
            "snsapi_userinfo" => Ok(Self::UserInfo),
            other => Err(ParseError(format!(
                "unknown scope {:?}: use snsapi_base or snsapi_userinfo",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base => "snsapi_base",
            Self::UserInfo => "snsapi_userinfo",
        }
    }

    /// WeChat answers `scope` as a comma-separated list; userinfo implies base.
    pub fn from_granted(granted: &str) -> Self {
        if granted.split(',').any(|s| s.trim() == "snsapi_userinfo") {
            Self::UserInfo
        } else {
            Self::Base
        }
    }
}

impl fmt::Display for OAuthScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CSRF token carried through WeChat's authorize page: `[A-Za-z0-9]`, at most 128 bytes.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OAuthState(String);

impl OAuthState {
    const LEN: usize = 32;

    pub fn generate() -> Self {
        Self(super::random_alphanumeric(Self::LEN))
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > 128 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ParseError("malformed state".into()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OAuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OAuthState(…)")
    }
}

/// `host` or `host:port` of a URL: what WeChat compares with the web-authorization domain.
pub fn host_and_port(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// The configured `return_to_allow` prefixes.
#[derive(Clone, Debug, Default)]
pub struct ReturnToAllowList(Vec<Url>);

impl ReturnToAllowList {
    /// Each entry must be an absolute http(s) URL; the path is a prefix.
    pub fn parse(entries: &[String]) -> Result<Self, ParseError> {
        let mut out = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let url = Url::parse(e)
                .map_err(|err| ParseError(format!("entry {i} ({e:?}) is not a URL: {err}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(ParseError(format!(
                    "entry {i} ({e:?}) must be an absolute http or https URL"
                )));
            }
            out.push(url);
        }
        Ok(Self(out))
    }

    pub fn push(&mut self, url: Url) {
        self.0.push(url);
    }

    pub fn entries(&self) -> &[Url] {
        &self.0
    }

    fn allows(&self, candidate: &Url) -> bool {
        self.0.iter().any(|allowed| {
            allowed.scheme() == candidate.scheme()
                && allowed.host_str() == candidate.host_str()
                && allowed.port_or_known_default() == candidate.port_or_known_default()
                && path_has_prefix(candidate.path(), allowed.path())
        })
    }
}

/// `/shop/` allows `/shop/x`; `/shop` allows `/shop` and `/shop/x` but not `/shopping`.
pub(super) fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix)
    } else {
        path == prefix || path.starts_with(&format!("{prefix}/"))
    }
}

/// A URL we may send the browser back to after authorization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReturnTo(String);

impl ReturnTo {
    pub fn parse(s: &str, allow: &ReturnToAllowList) -> Result<Self, ParseError> {
        let url =
            Url::parse(s).map_err(|_| ParseError("return_to is not an absolute URL".into()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ParseError("return_to must not carry credentials".into()));
        }
        if !allow.allows(&url) {
            return Err(ParseError(
                "return_to is not on the configured return_to_allow list".into(),
            ));
        }
        Ok(Self(url.into()))
    }

    /// The URL with a query parameter appended (kept before any fragment).
    pub fn with_param(&self, name: &str, value: &str) -> String {
        self.with_params(&[(name, value)])
    }

    /// The URL with query parameters appended, in order (kept before any fragment).
    pub fn with_params(&self, params: &[(&str, &str)]) -> String {
        let mut url = Url::parse(&self.0).expect("validated at parse");
        {
            let mut q = url.query_pairs_mut();
            for (name, value) in params {
                q.append_pair(name, value);
            }
        }
        url.into()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> ReturnToAllowList {
        ReturnToAllowList::parse(&[
            "https://shop.example.com/".into(),
            "https://app.example.com/account".into(),
        ])
        .unwrap()
    }

    #[test]
    fn return_to_allow_list() {
        let a = allow();
        assert!(ReturnTo::parse("https://shop.example.com/orders?id=1", &a).is_ok());
        assert!(ReturnTo::parse("https://app.example.com/account", &a).is_ok());
        assert!(ReturnTo::parse("https://app.example.com/account/x", &a).is_ok());
        assert!(ReturnTo::parse("https://app.example.com/accounts", &a).is_err());
        assert!(ReturnTo::parse("http://shop.example.com/", &a).is_err());
        assert!(ReturnTo::parse("https://shop.example.com.evil.io/", &a).is_err());
        assert!(ReturnTo::parse("https://evil.io@shop.example.com/", &a).is_err());
        assert!(ReturnTo::parse("https://shop.example.com:444/", &a).is_err());
        assert!(ReturnTo::parse("//shop.example.com/", &a).is_err());
        assert!(ReturnTo::parse("javascript:alert(1)", &a).is_err());
    }

    #[test]
    fn with_param_keeps_query_and_fragment() {
        let r = ReturnTo::parse("https://shop.example.com/a?x=1#top", &allow()).unwrap();
        assert_eq!(
            r.with_param("wxlink_code", "abc"),
            "https://shop.example.com/a?x=1&wxlink_code=abc#top"
        );
    }

    #[test]
    fn generated_states_are_valid_and_distinct() {
        let a = OAuthState::generate();
        let b = OAuthState::generate();
        assert_ne!(a, b);
        assert!(OAuthState::parse(a.as_str()).is_ok());
        assert!(OAuthState::parse("abc-def").is_err());
        assert!(OAuthState::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn granted_scope_lists() {
        assert_eq!(OAuthScope::from_granted("snsapi_base"), OAuthScope::Base);
        assert_eq!(
            OAuthScope::from_granted("snsapi_base,snsapi_userinfo"),
            OAuthScope::UserInfo
        );
    }
}
