//! Inbound rate limits per client address, on the routes anyone on the internet can reach
//! without a key: the browser pages (`/`, `/oauth/...`, `/sandbox/...`, and `/admin...`,
//! whose password a stranger could otherwise guess at full speed) and WeChat's push
//! endpoint (everything under `/wechat/`). The backend API (authenticated), the health
//! routes and `/metrics` are never limited.
//!
//! The client is the peer address, unless the peer is a trusted proxy: then it is the
//! right-most address in `X-Forwarded-For` that is not itself a trusted proxy (the left
//! part of that header is whatever the client chose to send). IPv6 clients are limited per
//! /64, the block one subscriber usually holds.
//!
//! governor's keyed limiter is used directly rather than through tower_governor: its key
//! extractors believe the left-most forwarded address, and the two groups need their own
//! answers (a page for browsers, plain text for WeChat).

use crate::config::{Limit, RateLimitSettings};
use crate::http::error::Page;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which limit a path falls under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Browser,
    Push,
}

impl Group {
    pub fn of(path: &str) -> Option<Self> {
        if path == "/"
            || path.starts_with("/oauth/")
            || path.starts_with("/sandbox/")
            || path.starts_with("/admin")
        {
            Some(Self::Browser)
        } else if path.starts_with("/wechat/") {
            Some(Self::Push)
        } else {
            None
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Browser => "browser",
            Self::Push => "push",
        }
    }
}

/// The limiters of both groups and the proxies whose forwarding header is believed.
pub struct RateLimits {
    browser: Option<DefaultKeyedRateLimiter<IpAddr>>,
    push: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted: Vec<IpNet>,
}

fn limiter(limit: Limit) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    let rate = NonZeroU32::new(limit.per_second)?;
    let burst = NonZeroU32::new(limit.burst).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Arc<Self> {
        Arc::new(Self {
            browser: limiter(settings.browser),
            push: limiter(settings.push),
            trusted: settings.trusted_proxies.clone(),
        })
    }

    fn limiter(&self, group: Group) -> Option<&DefaultKeyedRateLimiter<IpAddr>> {
        match group {
            Group::Browser => self.browser.as_ref(),
            Group::Push => self.push.as_ref(),
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client a request comes from, given the peer address and its headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        // Each proxy appends the address it got the request from; several header lines
        // are one list in order. Walk it from the right, past our own proxies.
        let mut client = peer;
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(value) = value.to_str() else {
                return client;
            };
            for part in value.rsplit(',') {
                let Some(ip) = parse_forwarded(part) else {
                    return client;
                };
                if !self.is_trusted(ip) {
                    return ip;
                }
                client = ip;
            }
        }
        client
    }

    /// Whether a request from `client` to `group` may go on now; otherwise how long to wait.
    fn check(&self, group: Group, client: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = self.limiter(group) else {
            return Ok(());
        };
        limiter
            .check_key(&key_of(client))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets clients whose allowance has refilled, every minute until `stop`.
    pub fn spawn_sweeper(self: &Arc<Self>, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                for l in [&this.browser, &this.push].into_iter().flatten() {
                    l.retain_recent();
                    l.shrink_to_fit();
                }
            }
        });
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port or in brackets.
fn parse_forwarded(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse().ok())
        })
        .map(|ip: IpAddr| ip.to_canonical())
}

/// The limiter's key: the address, or its /64 for IPv6.
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// The middleware: requests to a limited group over their client's allowance get 429.
pub async fn limit(State(limits): State<Arc<RateLimits>>, req: Request, next: Next) -> Response {
    let Some(group) = Group::of(req.uri().path()) else {
        return next.run(req).await;
    };
    // Without the peer address (a router served without connect info) there is no client.
    let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(req).await;
    };
    let client = limits.client_ip(peer, req.headers());
    match limits.check(group, client) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            crate::metrics::rate_limited(group.as_str());
            tracing::info!(group = group.as_str(), "rate limited");
            too_many(group, wait)
        }
    }
}

fn too_many(group: Group, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut response = match group {
        Group::Browser => Page::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "请求过于频繁 / Too many requests",
            format!("Too many requests from your network. Please try again in {secs} s."),
        )
        .into_response(),
        Group::Push => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "too many requests\n",
        )
            .into_response(),
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(trusted: &[&str]) -> RateLimits {
        RateLimits {
            browser: None,
            push: None,
            trusted: trusted.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let l = limits(&["10.0.0.0/8"]);
        assert_eq!(
            l.client_ip(ip("203.0.113.9"), &xff(&["198.51.100.1"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let l = limits(&["10.0.0.0/8", "192.168.1.1/32"]);
        let h = xff(&["6.6.6.6, 198.51.100.7, 10.1.2.3"]);
        assert_eq!(l.client_ip(ip("10.0.0.1"), &h), ip("198.51.100.7"));
        // Two header lines are one list.
        let h = xff(&["6.6.6.6, 198.51.100.7", "192.168.1.1"]);
        assert_eq!(l.client_ip(ip("10.0.0.1"), &h), ip("198.51.100.7"));
        // Ports and brackets.
        let h = xff(&["[2001:db8::1]:4711"]);
        assert_eq!(l.client_ip(ip("10.0.0.1"), &h), ip("2001:db8::1"));
        // No header: the proxy itself.
        assert_eq!(
            l.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        // Garbage stops the walk at the last trusted hop.
        let h = xff(&["198.51.100.7, bogus"]);
        assert_eq!(l.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // A mapped IPv4 peer is its IPv4 address.
        assert_eq!(
            l.client_ip(ip("::ffff:10.0.0.1"), &xff(&["198.51.100.8"])),
            ip("198.51.100.8")
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(
            key_of(ip("2001:db8:1:2:aaaa::1")),
            key_of(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(key_of(ip("2001:db8:1:2::1")), key_of(ip("2001:db8:1:3::1")));
        assert_eq!(key_of(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn groups_by_path() {
        assert_eq!(Group::of("/oauth/oa/callback"), Some(Group::Browser));
        assert_eq!(Group::of("/"), Some(Group::Browser));
        assert_eq!(Group::of("/sandbox/result"), Some(Group::Browser));
        assert_eq!(Group::of("/admin/users"), Some(Group::Browser));
        assert_eq!(Group::of("/wechat/oa/push"), Some(Group::Push));
        for free in [
            "/api/v1/users/1",
            "/healthz",
            "/livez",
            "/readyz",
            "/metrics",
            "/sim/x",
        ] {
            assert_eq!(Group::of(free), None, "{free}");
        }
    }
}
