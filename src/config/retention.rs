//! `[retention]`: how long the records of finished work are kept before the pruner deletes
//! them, and how gently it deletes (small batches with a pause, so the sending path's
//! writes are never held up behind a large delete). `0` keeps a kind of record forever.

use super::ConfigError;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// How often the pruner runs (each instance; a delete that finds nothing is cheap).
    pub interval_secs: u64,
    /// Rows deleted per statement.
    pub batch_size: i64,
    /// Pause between two batches, for the writes of sends and pushes to go first.
    pub batch_pause_ms: u64,
    /// Code exchanges (the stored answer of a callback), counted from the callback. A
    /// repeated callback comes within seconds; an older one is answered "code reused".
    pub oauth_exchanges_hours: i64,
    /// Login codes, counted from their expiry (used or not).
    pub login_codes_hours: i64,
    /// Link tickets, counted from their expiry (used or not).
    pub link_tickets_days: i64,
    /// A person's web tokens, counted from the expiry of the refresh token (after it no
    /// token can be renewed).
    pub web_tokens_days: i64,
    /// Finished messages (sent, delivered, failed, rejected), counted from their last
    /// change; an `Idempotency-Key` is remembered as long as its message.
    pub messages_days: i64,
    /// Handled pushes and delivery reports, counted from their arrival: `[push]
    /// retention_days`, copied here so one pruner deletes every kind in batches.
    #[serde(skip)]
    pub pushes_days: i64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            interval_secs: 600,
            batch_size: 500,
            batch_pause_ms: 50,
            oauth_exchanges_hours: 24,
            login_codes_hours: 24,
            link_tickets_days: 7,
            web_tokens_days: 0,
            messages_days: 90,
            pushes_days: 30,
        }
    }
}

/// `[retention]` within its ranges.
pub(super) fn check(r: &RetentionSettings) -> Result<(), ConfigError> {
    super::check_ranges(&[
        ("retention.interval_secs", r.interval_secs as i64, 1, 86_400),
        ("retention.batch_size", r.batch_size, 1, 100_000),
        (
            "retention.batch_pause_ms",
            r.batch_pause_ms as i64,
            0,
            60_000,
        ),
        (
            "retention.oauth_exchanges_hours",
            r.oauth_exchanges_hours,
            0,
            87_600,
        ),
        (
            "retention.login_codes_hours",
            r.login_codes_hours,
            0,
            87_600,
        ),
        ("retention.link_tickets_days", r.link_tickets_days, 0, 3650),
        ("retention.web_tokens_days", r.web_tokens_days, 0, 3650),
        ("retention.messages_days", r.messages_days, 0, 3650),
    ])
}
