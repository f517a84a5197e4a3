//! Wall-clock seconds with an adjustable offset.
//!
//! Every expiry rule (OAuth state, tickets, codes, tokens) reads time through a [`Clock`],
//! so tests and the simulator can move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    /// The real time.
    pub fn system() -> Self {
        Self::default()
    }

    /// Unix time in seconds, shifted by whatever [`Clock::advance`] added.
    pub fn now(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        real + self.offset_secs.load(Ordering::Relaxed)
    }

    /// Unix time in milliseconds, shifted like [`Clock::now`]; the outbox schedules retries
    /// in milliseconds.
    pub fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        real + self.offset_secs.load(Ordering::Relaxed) * 1000
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

/// The day number in Beijing time (UTC+8), when WeChat's daily quotas reset.
pub fn beijing_day(unix_secs: i64) -> i64 {
    (unix_secs + 8 * 3600).div_euclid(86_400)
}

/// The next midnight in Beijing time after `unix_secs`, as Unix seconds.
pub fn next_beijing_midnight(unix_secs: i64) -> i64 {
    (beijing_day(unix_secs) + 1) * 86_400 - 8 * 3600
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_midnight() {
        // 2026-11-25 15:59:59 UTC is 23:59:59 in Beijing; midnight is one second later.
        let t = 1_795_622_399;
        assert_eq!(next_beijing_midnight(t), t + 1);
        assert_eq!(next_beijing_midnight(t + 1), t + 1 + 86_400);
        assert_eq!(beijing_day(t) + 1, beijing_day(t + 1));
    }
}
