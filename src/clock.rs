//! Wall-clock time with an adjustable offset, and [`Timestamp`], the one type for an
//! instant the core hands the store.
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

    /// Now as a [`Timestamp`]: what the store is handed.
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from_millis(self.now_ms())
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

/// An instant, as Unix time in milliseconds. The store keeps instants in two units
/// (`*_ms` columns in milliseconds, `*_at` columns in seconds, as WeChat counts): it
/// writes and reads each column in its own unit, so nobody else has to know which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Unix milliseconds.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Unix seconds, rounded down.
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub const fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

/// `#[serde(serialize_with)]` helpers: an instant shown as the Unix seconds or
/// milliseconds its field's name promises (`created_at`, `created_ms`).
pub mod serde_unix {
    use super::Timestamp;
    use serde::Serializer;

    pub fn secs<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.secs())
    }

    pub fn opt_secs<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.secs()),
            None => s.serialize_none(),
        }
    }

    pub fn millis<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.millis())
    }

    pub fn opt_millis<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.millis()),
            None => s.serialize_none(),
        }
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
    fn timestamps_convert_between_units() {
        let t = Timestamp::from_millis(1_795_622_399_999);
        assert_eq!(t.secs(), 1_795_622_399);
        assert_eq!(Timestamp::from_secs(t.secs()).millis(), 1_795_622_399_000);
        assert_eq!(t.plus_secs(1).millis(), 1_795_622_400_999);
        assert_eq!(Timestamp::from_millis(-1).secs(), -1);
        let clock = Clock::system();
        let (now, stamp) = (clock.now(), clock.timestamp());
        assert!(stamp.secs() - now <= 1);
    }

    #[test]
    fn beijing_midnight() {
        // 2026-11-25 15:59:59 UTC is 23:59:59 in Beijing; midnight is one second later.
        let t = 1_795_622_399;
        assert_eq!(next_beijing_midnight(t), t + 1);
        assert_eq!(next_beijing_midnight(t + 1), t + 1 + 86_400);
        assert_eq!(beijing_day(t) + 1, beijing_day(t + 1));
    }
}
