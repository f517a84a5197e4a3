//! What the access token ([`crate::token`]) and the JS-SDK tickets ([`crate::ticket`])
//! share: a value WeChat issues for a limited life, stored once for the fleet, cached in
//! each instance by its version, and renewed ahead of its expiry by a refresher that also
//! adopts what other instances stored, so every instance serves the same one.

use crate::clock::Clock;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A value is not served in its last seconds: a caller still needs time to use it.
const SAFETY_SECS: i64 = 5;

/// The value an instance serves.
#[derive(Clone)]
pub struct Current {
    pub value: Arc<str>,
    pub expires_at: i64,
    /// The stored row's version: only a newer one replaces this.
    pub version: i64,
    /// When WeChat issued it (as far as we know).
    pub fetched_at: i64,
}

impl Current {
    /// Whether it may still be handed out at `now`.
    pub fn usable_at(&self, now: i64) -> bool {
        self.expires_at - SAFETY_SECS > now
    }
}

/// One instance's cached value; it only ever moves to a newer version.
#[derive(Default)]
pub struct Cache(RwLock<Option<Current>>);

impl Cache {
    pub fn get(&self) -> Option<Current> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the cached value unless it would go back to an older version.
    pub fn set(&self, c: Current) {
        let mut cur = self.0.write().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_none_or(|old| c.version >= old.version) {
            *cur = Some(c);
        }
    }

    /// Takes a value another instance stored, when it is newer than ours and usable.
    pub fn adopt(&self, stored: Option<Current>, now: i64) {
        if let Some(c) = stored
            && self.get().is_none_or(|mine| c.version > mine.version)
            && c.usable_at(now)
        {
            self.set(c);
        }
    }
}

/// One value a refresher keeps fresh.
pub trait Renewable: Send + Sync {
    /// Looks at the stored value and adopts it when it is newer (see [`Cache::adopt`]).
    fn adopt_stored(&self, now: i64) -> impl Future<Output = ()> + Send;
    /// Whether it is time to renew.
    fn due(&self, now: i64) -> bool;
    /// Renews it; `false` when that failed (the failure is logged and counted there).
    fn renew(&self) -> impl Future<Output = bool> + Send;
}

/// Every `tick` until `stop`: adopts what other instances stored, and renews when due.
/// After a failed renewal the next waits 5 s, doubling to at most 60 s while it fails.
pub async fn keep_fresh(
    r: &impl Renewable,
    clock: &Clock,
    tick: Duration,
    stop: CancellationToken,
) {
    let mut next_attempt = 0i64;
    let mut backoff = 5i64;
    loop {
        let now = clock.now();
        r.adopt_stored(now).await;
        if r.due(now) && now >= next_attempt {
            if r.renew().await {
                backoff = 5;
                next_attempt = clock.now() + 1;
            } else {
                next_attempt = clock.now() + backoff;
                backoff = (backoff * 2).min(60);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}
