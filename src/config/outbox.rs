//! `[outbox]`: how messages are sent (concurrency, claiming, retries, pacing), and the
//! ranges its settings must keep.

use super::ConfigError;
use serde::Deserialize;

/// How the outbox sends messages.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxSettings {
    /// Messages this instance sends at the same time, at most; unset, [`Self::window`]
    /// picks it. With WeChat's real latency an instance is bound by this, not by CPU (64 in
    /// flight at 100 ms is 640 sends a second); the claimer only takes what the backlog
    /// holds, so a quiet outbox keeps few in flight.
    pub concurrency: Option<usize>,
    /// Most messages claimed in one store round trip.
    pub claim_batch: i64,
    /// How long a claimed message belongs to its instance; after that (the instance died)
    /// another instance takes it over.
    pub lease_secs: i64,
    /// Attempts for retryable failures (-1, timeouts, 45011) before a message is `failed`.
    pub max_attempts: i64,
    /// First retry delay; doubled each attempt, with jitter, up to `backoff_max_ms`.
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    /// Sends per second to WeChat per app, per instance.
    pub rate_per_sec: u32,
    /// How often an idle instance looks for due messages (new messages wake it at once).
    pub poll_interval_ms: u64,
    /// How long a fetched template list is trusted.
    pub template_cache_secs: u64,
    /// The longest `?wait=` a send request may ask for.
    pub max_wait_secs: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            concurrency: None,
            claim_batch: 100,
            lease_secs: 60,
            max_attempts: 8,
            backoff_base_ms: 1000,
            backoff_max_ms: 300_000,
            rate_per_sec: 1000,
            poll_interval_ms: 500,
            template_cache_secs: 300,
            max_wait_secs: 30,
        }
    }
}

/// The in-flight window when `concurrency` is unset: wide enough for WeChat's latency,
/// narrow enough that a full window of claimed sends clears the pacer within half a lease.
pub const DEFAULT_WINDOW: usize = 512;

impl OutboxSettings {
    /// Messages this instance sends at the same time: `concurrency`, or [`DEFAULT_WINDOW`]
    /// narrowed to what `rate_per_sec` serves in a quarter of the lease.
    pub fn window(&self) -> usize {
        self.concurrency.unwrap_or_else(|| {
            let served = self.rate_per_sec as i64 * self.lease_secs / 4;
            DEFAULT_WINDOW.min(served.max(1) as usize)
        })
    }
}

/// `[outbox]` within its ranges, and a pacer that can serve a full round of sends within
/// half a lease.
pub(super) fn check(settings: &OutboxSettings) -> Result<(), ConfigError> {
    let ob = settings;
    super::check_ranges(&[
        ("outbox.concurrency", ob.window() as i64, 1, 4096),
        ("outbox.claim_batch", ob.claim_batch, 1, 1000),
        ("outbox.lease_secs", ob.lease_secs, 5, 3600),
        ("outbox.max_attempts", ob.max_attempts, 1, 100),
        ("outbox.backoff_base_ms", ob.backoff_base_ms, 1, 3_600_000),
        (
            "outbox.backoff_max_ms",
            ob.backoff_max_ms,
            ob.backoff_base_ms,
            86_400_000,
        ),
        ("outbox.rate_per_sec", ob.rate_per_sec as i64, 1, 1_000_000),
        (
            "outbox.poll_interval_ms",
            ob.poll_interval_ms as i64,
            10,
            60_000,
        ),
        (
            "outbox.template_cache_secs",
            ob.template_cache_secs as i64,
            1,
            86_400,
        ),
        ("outbox.max_wait_secs", ob.max_wait_secs as i64, 0, 300),
    ])?;

    // Claimed messages wait for the pacer while they hold their lease: a full round of
    // `concurrency` sends must fit well inside it, or another instance takes them over.
    if ob.window() as f64 / ob.rate_per_sec as f64 > ob.lease_secs as f64 / 2.0 {
        return Err(ConfigError::new(
            "outbox.concurrency",
            format!(
                "{} sends at {} per second take longer than half of outbox.lease_secs ({} s): lower concurrency or raise rate_per_sec or lease_secs",
                ob.window(),
                ob.rate_per_sec,
                ob.lease_secs
            ),
        ));
    }
    Ok(())
}
