//! `[followers]`: completing Official Account identities from WeChat's follower info
//! (`cgi-bin/user/info`), and importing an account's existing followers.

use super::ConfigError;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FollowerSettings {
    /// Identities the background fill may look up per app and Beijing day (counted across
    /// the fleet); `0` turns the background fill off. Pushes, on-demand refreshes and
    /// imports are not counted against it.
    pub background_daily_quota: i64,
    /// How often each instance looks for identities without a unionid.
    pub background_interval_secs: u64,
    /// How often each instance looks for queued lookups (a `subscribe` push wakes the
    /// instance that received it at once) and for imports to run or resume.
    pub poll_interval_ms: u64,
    /// An import's lease: when its instance dies, another resumes it after this long.
    pub import_lease_secs: i64,
}

impl Default for FollowerSettings {
    fn default() -> Self {
        Self {
            background_daily_quota: 10_000,
            background_interval_secs: 600,
            poll_interval_ms: 2_000,
            import_lease_secs: 60,
        }
    }
}

/// `[followers]` within its ranges.
pub(super) fn check(f: &FollowerSettings) -> Result<(), ConfigError> {
    super::check_ranges(&[
        (
            "followers.background_daily_quota",
            f.background_daily_quota,
            0,
            100_000_000,
        ),
        (
            "followers.background_interval_secs",
            f.background_interval_secs as i64,
            1,
            86_400,
        ),
        (
            "followers.poll_interval_ms",
            f.poll_interval_ms as i64,
            10,
            3_600_000,
        ),
        ("followers.import_lease_secs", f.import_lease_secs, 1, 3_600),
    ])
}
