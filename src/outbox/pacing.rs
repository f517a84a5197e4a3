//! Pacing sends to WeChat per app across the fleet. `outbox.rate_per_sec` is the app's rate
//! for all instances together: each instance keeps a heartbeat row in the store, counts the
//! instances alive, and paces itself at its share (the rate divided by that count), so N
//! instances never send N times the rate. An instance that dies stops counting once its
//! heartbeat is stale; the others' shares grow back within a few heartbeats.

use super::Outbox;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often an instance says it is alive and recounts the fleet.
pub const HEARTBEAT: Duration = Duration::from_millis(1000);
/// A heartbeat older than this no longer counts (an instance that died or hangs).
const STALE_AFTER_MS: i64 = 3500;

/// One app's pace on this instance.
pub(super) struct Pacer {
    rate: u32,
    instances: AtomicU32,
    limiter: RwLock<Arc<DefaultDirectRateLimiter>>,
}

impl Pacer {
    pub(super) fn new(rate: u32) -> Self {
        Self {
            rate,
            instances: AtomicU32::new(1),
            limiter: RwLock::new(Arc::new(limiter(rate))),
        }
    }

    /// Waits for this instance's next slot.
    pub(super) async fn until_ready(&self) {
        let limiter = self.limiter.read().expect("pacer lock").clone();
        limiter.until_ready().await;
    }

    /// Paces at this instance's share once `n` instances send for the app; returns the new
    /// share when it changed.
    fn set_instances(&self, n: u32) -> Option<u32> {
        let n = n.max(1);
        if self.instances.swap(n, Ordering::Relaxed) == n {
            return None;
        }
        let share = share(self.rate, n);
        *self.limiter.write().expect("pacer lock") = Arc::new(limiter(share));
        Some(share)
    }
}

/// The rate each of `n` instances may send at: never more than the rate in all, never
/// less than one a second.
fn share(rate: u32, n: u32) -> u32 {
    (rate / n.max(1)).max(1)
}

/// A tenth of a second's worth at once, so a burst is spread over the second.
fn limiter(per_sec: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_sec / 10).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

impl Outbox {
    /// Heartbeats until `stop`, resizing this instance's share of every app's rate to the
    /// instances alive; then leaves the fleet, so the others take its share at once.
    pub(super) fn spawn_pacing(&self, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let s = &this.inner;
            loop {
                let now = s.clock.timestamp();
                match s
                    .store
                    .outbox_heartbeat(&s.owner, now, now.plus_millis(-STALE_AFTER_MS))
                    .await
                {
                    Ok(n) => {
                        for (app, pacer) in &s.pacers {
                            if let Some(share) = pacer.set_instances(n) {
                                tracing::info!(%app, instances = n, per_sec = share, "outbox: pacing at this instance's share of the app's rate");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox: cannot count the instances sending; keeping the last share")
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(HEARTBEAT) => {}
                }
            }
            if let Err(e) = s.store.outbox_leave(&s.owner).await {
                tracing::warn!(error = %e, "outbox: cannot leave the fleet; the others see it gone within seconds");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_never_add_up_to_more_than_the_rate() {
        for rate in [1, 7, 20, 1000] {
            for n in 1..=5 {
                let s = share(rate, n);
                assert!(s >= 1);
                assert!(
                    s * n <= rate.max(n),
                    "rate {rate}, {n} instances, share {s}"
                );
            }
        }
        let p = Pacer::new(20);
        assert_eq!(p.set_instances(3), Some(6));
        assert_eq!(p.set_instances(3), None, "unchanged");
        assert_eq!(p.set_instances(0), Some(20));
    }
}
