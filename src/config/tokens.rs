//! `[tokens]`: how the token manager refreshes global access tokens.

use super::ConfigError;
use serde::Deserialize;

/// How the token manager refreshes global access tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// Refresh this long before expiry. A stable token is only renewed in its last 5
    /// minutes, so keep this at 300 or less for `token_mode = "stable"`.
    pub refresh_margin_secs: i64,
    /// Each instance waits a random part of this inside the window, so they do not collide.
    pub jitter_secs: i64,
    /// How long one instance may hold the refresh lease before another may take over.
    pub lease_secs: i64,
    /// How often each instance looks at the stored token.
    pub check_interval_ms: u64,
    /// How many `force_refresh` calls (of WeChat's 20 a day per app) the reports of one API
    /// key may cause per app and Beijing day.
    pub invalidations_per_key_per_day: i64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            refresh_margin_secs: 300,
            jitter_secs: 60,
            lease_secs: 60,
            check_interval_ms: 1000,
            invalidations_per_key_per_day: 5,
        }
    }
}

/// `[tokens]` within its ranges (the jitter at most half the margin).
pub(super) fn check(tk: &TokenSettings) -> Result<(), ConfigError> {
    super::check_ranges(&[
        (
            "tokens.refresh_margin_secs",
            tk.refresh_margin_secs,
            1,
            3600,
        ),
        (
            "tokens.jitter_secs",
            tk.jitter_secs,
            0,
            tk.refresh_margin_secs / 2,
        ),
        ("tokens.lease_secs", tk.lease_secs, 5, 600),
        (
            "tokens.invalidations_per_key_per_day",
            tk.invalidations_per_key_per_day,
            1,
            2000,
        ),
        (
            "tokens.check_interval_ms",
            tk.check_interval_ms as i64,
            50,
            60_000,
        ),
    ])
}
