//! `[rate_limits]`: inbound limits per client address, and which proxies' forwarded
//! addresses are believed.

use super::ConfigError;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

/// One group's limit: a sustained rate and the burst a client may use at once.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Requests per second per client; 0 turns the group's limit off.
    pub per_second: u32,
    pub burst: u32,
}

/// `[rate_limits]` as written.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRateLimits {
    trusted_proxies: Vec<String>,
    browser: Limit,
    push: Limit,
}

impl Default for RawRateLimits {
    fn default() -> Self {
        let d = RateLimitSettings::default();
        Self {
            trusted_proxies: Vec::new(),
            browser: d.browser,
            push: d.push,
        }
    }
}

/// Inbound rate limits per client address.
#[derive(Clone, Debug)]
pub struct RateLimitSettings {
    /// Peers whose `X-Forwarded-For` is believed (load balancers, reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
    /// The browser routes: `/oauth/...`, `/`, `/sandbox/...` and the admin pages.
    pub browser: Limit,
    /// WeChat's server push, everything under `/wechat/`.
    pub push: Limit,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            // A person signing in makes two or three requests; carrier NAT puts many
            // people behind one address, so the burst is generous.
            browser: Limit {
                per_second: 10,
                burst: 40,
            },
            // Every template message sent comes back as a delivery report from a few
            // WeChat addresses: keep this above the send rate, or reports are refused.
            push: Limit {
                per_second: 2000,
                burst: 4000,
            },
        }
    }
}

impl RawRateLimits {
    pub(super) fn parse(&self) -> Result<RateLimitSettings, ConfigError> {
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, s)| {
                parse_net(s).ok_or_else(|| {
                    ConfigError::new(
                        format!("rate_limits.trusted_proxies[{i}]"),
                        format!("{s:?} is not an address or CIDR range like 10.0.0.0/8"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (name, limit) in [("browser", self.browser), ("push", self.push)] {
            if limit.per_second > 1_000_000 {
                return Err(ConfigError::new(
                    format!("rate_limits.{name}.per_second"),
                    format!("{} is out of range 0..=1000000", limit.per_second),
                ));
            }
            if limit.per_second > 0 && !(1..=1_000_000).contains(&limit.burst) {
                return Err(ConfigError::new(
                    format!("rate_limits.{name}.burst"),
                    format!("{} is out of range 1..=1000000", limit.burst),
                ));
            }
        }
        Ok(RateLimitSettings {
            trusted_proxies,
            browser: self.browser,
            push: self.push,
        })
    }
}

/// `10.0.0.0/8`, or a single address (as its /32 or /128).
fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_parse_as_ranges_or_addresses() {
        assert_eq!(
            parse_net("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8",
            "host bits are dropped"
        );
        assert_eq!(parse_net("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(
            parse_net("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(parse_net("10.0.0.0/33").is_none());
        assert!(parse_net("proxy.local").is_none());
    }

    #[test]
    fn limits_are_checked() {
        let raw = RawRateLimits {
            trusted_proxies: vec!["nope".into()],
            ..Default::default()
        };
        assert_eq!(
            raw.parse().unwrap_err().setting,
            "rate_limits.trusted_proxies[0]"
        );
        let raw = RawRateLimits {
            browser: Limit {
                per_second: 5,
                burst: 0,
            },
            ..Default::default()
        };
        assert_eq!(
            raw.parse().unwrap_err().setting,
            "rate_limits.browser.burst"
        );
        let raw = RawRateLimits {
            push: Limit {
                per_second: 0,
                burst: 0,
            },
            ..Default::default()
        };
        assert!(raw.parse().is_ok(), "0 turns a group off");
    }
}
