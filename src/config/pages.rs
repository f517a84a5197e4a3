//! `[pages]`: how the pages a person sees name the business (branding without a rebuild).

use super::ConfigError;
use serde::Deserialize;
use url::Url;

/// `[pages]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawPages {
    display_name: Option<String>,
    support: Option<String>,
    logo_url: Option<String>,
    home_url: Option<String>,
}

/// What the person pages (authorization outcomes, "open in WeChat") show of the business.
#[derive(Clone, Debug, Default)]
pub struct PagesSettings {
    /// The business's name as people know it: the heading, and "返回{name}".
    pub display_name: Option<String>,
    /// One line under every page, e.g. "客服电话 400-000-0000".
    pub support: Option<String>,
    /// An https image shown above the heading.
    pub logo_url: Option<Url>,
    /// Where "back to the business" goes when the authorization had no `return_to`.
    pub home_url: Option<Url>,
}

impl RawPages {
    pub(super) fn parse(&self) -> Result<PagesSettings, ConfigError> {
        let text = |setting: &str, v: &Option<String>, max: usize| {
            let v = v.as_deref().map(str::trim).filter(|s| !s.is_empty());
            match v {
                Some(s) if s.chars().count() > max => Err(ConfigError::new(
                    setting,
                    format!("is at most {max} characters"),
                )),
                other => Ok(other.map(str::to_owned)),
            }
        };
        let url = |setting: &str, v: &Option<String>, https_only: bool| {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let u = Url::parse(s)
                        .map_err(|e| ConfigError::new(setting, format!("{s:?}: {e}")))?;
                    let ok = if https_only {
                        u.scheme() == "https"
                    } else {
                        matches!(u.scheme(), "http" | "https")
                    };
                    if !ok || u.host_str().is_none() {
                        return Err(ConfigError::new(
                            setting,
                            if https_only {
                                "must be an absolute https URL (the pages allow https images only)"
                            } else {
                                "must be an absolute http(s) URL"
                            },
                        ));
                    }
                    Ok(u)
                })
                .transpose()
        };
        Ok(PagesSettings {
            display_name: text("pages.display_name", &self.display_name, 40)?,
            support: text("pages.support", &self.support, 200)?,
            logo_url: url("pages.logo_url", &self.logo_url, true)?,
            home_url: url("pages.home_url", &self.home_url, false)?,
        })
    }
}
