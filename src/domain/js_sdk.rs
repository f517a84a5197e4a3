//! Values of the JS-SDK configuration: the app's JS-safe domains (WeChat's console setting
//! JS接口安全域名), the page URL a signature is made for, and the kind of ticket.

use super::ParseError;
use super::oauth::path_has_prefix;
use std::fmt;
use url::Url;

/// WeChat's console takes at most three JS-safe domains per Official Account.
pub const MAX_JS_SAFE_DOMAINS: usize = 3;

/// The two tickets `cgi-bin/ticket/getticket` hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TicketKind {
    /// `jsapi_ticket`: signs `wx.config`.
    Jsapi,
    /// `wx_card` ticket: signs card pages (`wx.addCard`, `wx.chooseCard`).
    WxCard,
}

impl TicketKind {
    pub const ALL: [TicketKind; 2] = [Self::Jsapi, Self::WxCard];

    /// The `type` WeChat takes, and our name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jsapi => "jsapi",
            Self::WxCard => "wx_card",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                ParseError(format!(
                    "unknown ticket type {:?}: use jsapi or wx_card",
                    s.chars().take(40).collect::<String>()
                ))
            })
    }
}

impl fmt::Display for TicketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

stored_as_text!(TicketKind);

/// One JS-safe domain as the console takes it: `host` or `host/path` (no scheme). A port
/// is accepted too (`127.0.0.1:8080`), which WeChat's console refuses, so that the sandbox
/// and tests can serve pages from loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsSafeDomain {
    host: String,
    port: Option<u16>,
    /// `/` when the entry has no path.
    path: String,
    written: String,
}

impl JsSafeDomain {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.contains("://") {
            return Err(ParseError(format!(
                "{s:?}: write the domain as WeChat's console takes it, without http:// or https://"
            )));
        }
        let url = Url::parse(&format!("https://{s}"))
            .map_err(|e| ParseError(format!("{s:?} is not a domain: {e}")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ParseError(format!("{s:?} has no domain")))?;
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || s.contains('@')
        {
            return Err(ParseError(format!(
                "{s:?}: a JS-safe domain is a domain with an optional path, nothing else"
            )));
        }
        Ok(Self {
            host: host.to_owned(),
            port: url.port(),
            path: url.path().to_owned(),
            written: s.to_owned(),
        })
    }

    /// As configured.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The same host (no subdomains: WeChat's console names each domain), the same port
    /// (none given: the scheme's default) and the path under the entry's.
    fn allows(&self, page: &Url) -> bool {
        page.host_str() == Some(self.host.as_str())
            && page.port() == self.port
            && path_has_prefix(page.path(), &self.path)
    }
}

/// An app's JS-safe domains (`[[apps]] js_safe_domains`), at most three.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsSafeDomains(Vec<JsSafeDomain>);

impl JsSafeDomains {
    pub fn parse(entries: &[String]) -> Result<Self, ParseError> {
        if entries.len() > MAX_JS_SAFE_DOMAINS {
            return Err(ParseError(format!(
                "has {} entries: WeChat takes at most {MAX_JS_SAFE_DOMAINS} JS-safe domains",
                entries.len()
            )));
        }
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                JsSafeDomain::parse(e).map_err(|err| ParseError(format!("entry {i}: {}", err.0)))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn entries(&self) -> &[JsSafeDomain] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A page URL a JS-SDK signature may be made for: absolute http(s), without credentials,
/// under one of the app's JS-safe domains, the fragment removed as WeChat requires, in the
/// form a browser's `location.href` has (so `https://Example.com?a=1` is signed as
/// `https://example.com/?a=1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsPageUrl(String);

impl JsPageUrl {
    pub fn parse(s: &str, allowed: &JsSafeDomains) -> Result<Self, ParseError> {
        let mut url = Url::parse(s).map_err(|_| ParseError("url is not an absolute URL".into()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ParseError("url must be an http or https URL".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ParseError("url must not carry credentials".into()));
        }
        if !allowed.0.iter().any(|d| d.allows(&url)) {
            return Err(ParseError(
                "url is not under any of the app's js_safe_domains".into(),
            ));
        }
        url.set_fragment(None);
        Ok(Self(url.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(entries: &[&str]) -> JsSafeDomains {
        JsSafeDomains::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn pages_under_the_domains_are_allowed_with_the_fragment_removed() {
        let d = domains(&["example.com", "shop.example.com/js", "127.0.0.1:8080"]);
        let ok = |s: &str| JsPageUrl::parse(s, &d).map(|u| u.0);
        assert_eq!(
            ok("https://example.com/a?x=1#/route?y=2").unwrap(),
            "https://example.com/a?x=1"
        );
        assert_eq!(
            ok("http://Example.COM?x=1").unwrap(),
            "http://example.com/?x=1"
        );
        assert!(ok("https://shop.example.com/js").is_ok());
        assert!(ok("https://shop.example.com/js/page").is_ok());
        assert!(ok("http://127.0.0.1:8080/sandbox/").is_ok());
    }

    #[test]
    fn pages_elsewhere_are_refused() {
        let d = domains(&["example.com", "shop.example.com/js"]);
        for bad in [
            "https://evil-example.com/",
            "https://example.com.evil.com/",
            "https://sub.example.com/",
            "https://example.com@evil.com/",
            "https://evil.com@example.com/",
            "https://example.com:8443/",
            "https://shop.example.com/jsx",
            "https://shop.example.com/",
            "javascript:alert(1)//example.com",
            "ftp://example.com/",
            "data:text/html,example.com",
            "//example.com/",
            "example.com/page",
        ] {
            assert!(JsPageUrl::parse(bad, &d).is_err(), "{bad}");
        }
    }

    #[test]
    fn domain_entries_are_checked() {
        assert!(JsSafeDomains::parse(&["https://example.com".into()]).is_err());
        assert!(JsSafeDomains::parse(&["a@example.com".into()]).is_err());
        assert!(JsSafeDomains::parse(&["a.com".into(), "b.com".into(), "c.com".into()]).is_ok());
        assert!(
            JsSafeDomains::parse(&[
                "a.com".into(),
                "b.com".into(),
                "c.com".into(),
                "d.com".into()
            ])
            .is_err()
        );
    }

    #[test]
    fn ticket_kinds_round_trip() {
        for k in TicketKind::ALL {
            assert_eq!(TicketKind::parse(k.as_str()).unwrap(), k);
        }
        assert!(TicketKind::parse("card").is_err());
    }
}
