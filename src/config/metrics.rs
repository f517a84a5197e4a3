//! `[metrics]`: who may read `/metrics`, and how often the sampled gauges are refreshed.

use super::{ConfigError, resolve_secret};
use secrecy::SecretString;
use serde::Deserialize;

/// `[metrics]` as written.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawMetrics {
    token: Option<String>,
    refresh_secs: u64,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            token: None,
            refresh_secs: 5,
        }
    }
}

/// Who may read `/metrics`, and how often the sampled gauges are refreshed.
#[derive(Clone, Debug)]
pub struct MetricsSettings {
    /// When set, `/metrics` wants `Authorization: Bearer <token>`; unset, it is open (it
    /// shows counts and app ids, no secrets; keep it off the public listener or set this).
    pub token: Option<SecretString>,
    /// How often the outbox depth and token ages are sampled, in seconds.
    pub refresh_secs: u64,
}

impl RawMetrics {
    pub(super) fn parse(&self) -> Result<MetricsSettings, ConfigError> {
        if !(1..=300).contains(&self.refresh_secs) {
            return Err(ConfigError::new(
                "metrics.refresh_secs",
                format!("{} is out of range 1..=300", self.refresh_secs),
            ));
        }
        let token = resolve_secret("metrics.token", self.token.as_ref(), "WXLINK_METRICS_TOKEN")?;
        Ok(MetricsSettings {
            token,
            refresh_secs: self.refresh_secs,
        })
    }
}
