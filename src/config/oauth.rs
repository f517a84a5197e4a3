//! `[oauth]`: lifetimes of the short-lived things of the authorization flow, and whether
//! web tokens are kept.

use super::ConfigError;
use serde::Deserialize;

/// Lifetimes of the short-lived things of the authorization flow, in seconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthTimings {
    pub state_ttl_secs: i64,
    pub ticket_ttl_secs: i64,
    pub login_code_ttl_secs: i64,
    /// Keep the web tokens of snsapi_userinfo authorizations (until their refresh token
    /// expires) so profiles can be refreshed; `false` keeps none. snsapi_base tokens are
    /// never kept: nothing can use them.
    pub keep_web_tokens: bool,
}

impl Default for OAuthTimings {
    fn default() -> Self {
        Self {
            state_ttl_secs: 600,
            ticket_ttl_secs: 600,
            login_code_ttl_secs: 300,
            keep_web_tokens: true,
        }
    }
}

/// `[oauth]` within its ranges.
pub(super) fn check(t: &OAuthTimings) -> Result<(), ConfigError> {
    super::check_ranges(&[
        ("oauth.state_ttl_secs", t.state_ttl_secs, 1, 3600),
        ("oauth.ticket_ttl_secs", t.ticket_ttl_secs, 1, 600),
        ("oauth.login_code_ttl_secs", t.login_code_ttl_secs, 1, 3600),
    ])
}
