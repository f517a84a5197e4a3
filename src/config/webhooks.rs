//! `[[webhooks]]`: the company's endpoints that receive signed events, and
//! `[webhook_delivery]`: how they are delivered (retries, timeouts, claiming).

use super::{ConfigError, resolve_secret};
use crate::domain::EventType;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// One endpoint: where its events go, which ones, and the secrets that sign them.
#[derive(Clone, Debug)]
pub struct WebhookEndpoint {
    /// Names the endpoint in routes, metrics and logs (`[a-z0-9_-]`, 1 to 64).
    pub name: String,
    pub url: Url,
    /// The filter: exact types, `family.*` (`message.*`) or `*`, as written.
    pub events: Vec<String>,
    /// Standard Webhooks secrets (`whsec_` and base64). Every one signs each delivery, so
    /// during a rotation both the old and the new secret verify.
    pub secrets: Vec<SecretString>,
}

impl WebhookEndpoint {
    /// Whether the filter takes this type.
    pub fn wants(&self, kind: EventType) -> bool {
        self.events.iter().any(|f| {
            f == "*"
                || f == kind.as_str()
                || f.strip_suffix(".*").is_some_and(|fam| fam == kind.family())
        })
    }
}

/// One `[[webhooks]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    name: String,
    url: String,
    #[serde(default = "every_event")]
    events: Vec<String>,
    /// `secret` for one, `secrets` for several (rotation).
    secret: Option<String>,
    #[serde(default)]
    secrets: Vec<String>,
}

fn every_event() -> Vec<String> {
    vec!["*".to_owned()]
}

/// One `[[webhooks]]` entry checked; `i` is its index in the file.
pub(super) fn parse(i: usize, w: &RawWebhook) -> Result<WebhookEndpoint, ConfigError> {
    let at = |field: &str| format!("webhooks[{i}].{field}");
    let name_ok = !w.name.is_empty()
        && w.name.len() <= 64
        && w.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if !name_ok {
        return Err(ConfigError::new(
            at("name"),
            "use 1 to 64 lowercase letters, digits, '-' or '_'",
        ));
    }
    let url = Url::parse(&w.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| ConfigError::new(at("url"), "must be an http(s) URL"))?;
    if w.events.is_empty() {
        return Err(ConfigError::new(
            at("events"),
            "is empty: name event types, `family.*` or `*`",
        ));
    }
    for f in &w.events {
        let known = f == "*"
            || EventType::parse(f).is_ok()
            || f.strip_suffix(".*")
                .is_some_and(|fam| EventType::ALL.iter().any(|t| t.family() == fam));
        if !known {
            return Err(ConfigError::new(
                at("events"),
                format!(
                    "{f:?} is not an event type; known: {}",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ),
            ));
        }
    }
    let written: Vec<&String> = w.secret.iter().chain(&w.secrets).collect();
    if written.is_empty() {
        return Err(ConfigError::new(
            at("secrets"),
            "no signing secret: set `secret` (or `secrets` while rotating) to whsec_ and base64",
        ));
    }
    let mut secrets = Vec::new();
    for (j, s) in written.into_iter().enumerate() {
        let setting = at(&format!("secrets[{j}]"));
        let secret = resolve_secret(&setting, Some(s), "")?
            .ok_or_else(|| ConfigError::new(&setting, "is empty"))?;
        let text = secret.expose_secret();
        let valid = text.starts_with("whsec_") && standardwebhooks::Webhook::new(text).is_ok();
        if !valid {
            return Err(ConfigError::new(
                &setting,
                "must be whsec_ followed by base64 (e.g. `wxlink webhook-secret`, or whsec_ and `openssl rand -base64 32`)",
            ));
        }
        secrets.push(secret);
    }
    Ok(WebhookEndpoint {
        name: w.name.clone(),
        url,
        events: w.events.clone(),
        secrets,
    })
}

/// Every endpoint checked, names unique.
pub(super) fn parse_all(raw: &[RawWebhook]) -> Result<Vec<WebhookEndpoint>, ConfigError> {
    let mut out: Vec<WebhookEndpoint> = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let e = parse(i, w)?;
        if out.iter().any(|x| x.name == e.name) {
            return Err(ConfigError::new(
                format!("webhooks[{i}].name"),
                format!("endpoint {:?} is configured twice", e.name),
            ));
        }
        out.push(e);
    }
    Ok(out)
}

/// How events are delivered.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookDelivery {
    /// How long an endpoint may keep failing before it is disabled (default three days).
    pub retry_for_secs: i64,
    /// First retry delay; doubled after each failure, with jitter, up to `backoff_max_ms`.
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    /// An attempt without a full answer within this long has failed.
    pub timeout_ms: u64,
    /// How often an idle instance looks for events written by other instances (its own
    /// wake it at once).
    pub poll_interval_ms: u64,
    /// Most events claimed for one endpoint at a time.
    pub claim_batch: i64,
    /// How long an endpoint belongs to the instance delivering to it; after that (the
    /// instance died) another one takes over.
    pub lease_secs: i64,
    /// Endpoints this instance delivers to at the same time.
    pub concurrency: usize,
    /// Delivered events (and events no endpoint waits for) older than this are deleted,
    /// with their attempts; replays reach back this far.
    pub retention_days: i64,
}

impl Default for WebhookDelivery {
    fn default() -> Self {
        Self {
            retry_for_secs: 3 * 86_400,
            backoff_base_ms: 5_000,
            backoff_max_ms: 6 * 3_600_000,
            timeout_ms: 10_000,
            poll_interval_ms: 1_000,
            claim_batch: 100,
            lease_secs: 60,
            concurrency: 16,
            retention_days: 30,
        }
    }
}

pub(super) fn check_delivery(d: &WebhookDelivery) -> Result<(), ConfigError> {
    super::check_ranges(&[
        (
            "webhook_delivery.retry_for_secs",
            d.retry_for_secs,
            1,
            30 * 86_400,
        ),
        (
            "webhook_delivery.backoff_base_ms",
            d.backoff_base_ms,
            1,
            3_600_000,
        ),
        (
            "webhook_delivery.backoff_max_ms",
            d.backoff_max_ms,
            d.backoff_base_ms,
            86_400_000,
        ),
        (
            "webhook_delivery.timeout_ms",
            d.timeout_ms as i64,
            100,
            120_000,
        ),
        (
            "webhook_delivery.poll_interval_ms",
            d.poll_interval_ms as i64,
            10,
            60_000,
        ),
        ("webhook_delivery.claim_batch", d.claim_batch, 1, 1000),
        ("webhook_delivery.lease_secs", d.lease_secs, 5, 3600),
        (
            "webhook_delivery.concurrency",
            d.concurrency as i64,
            1,
            1024,
        ),
    ])?;
    // A batch is delivered one event after another under the lease: the lease must outlast
    // at least one attempt that times out.
    if d.lease_secs * 1000 <= 2 * d.timeout_ms as i64 {
        return Err(ConfigError::new(
            "webhook_delivery.lease_secs",
            "must be more than twice webhook_delivery.timeout_ms",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const KEY: &str = "ce2b5b8f15e2d2b6a0e2d63c4a0c52f1a8e9a0f8fd7b3c1f5f0d7b46d1c6a7e0";

    fn parse(hooks: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_toml_str(&format!(
            r#"
            storage_key = "2222222222222222222222222222222222222222222222222222222222222222"
            [[api_keys]]
            name = "orders"
            key_sha256 = "{KEY}"
            [[apps]]
            id = "oa"
            kind = "official_account"
            appid = "wx2c2769f8efd9abc2"
            secret = "s3cret"
            {hooks}
            "#
        ))
    }

    #[test]
    fn endpoints_parse_with_filters_and_rotating_secrets() {
        let c = parse(
            r#"
            [[webhooks]]
            name = "crm"
            url = "https://crm.example.com/wx"
            events = ["message.*", "identity.linked"]
            secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]
            [webhook_delivery]
            retry_for_secs = 3600
            "#,
        )
        .unwrap();
        let e = &c.webhooks[0];
        assert_eq!(e.secrets.len(), 2);
        use crate::domain::EventType::*;
        assert!(e.wants(MessageSent) && e.wants(MessageRejected) && e.wants(IdentityLinked));
        assert!(!e.wants(IdentityUnlinked) && !e.wants(FollowSubscribed));
        assert_eq!(c.webhook_delivery.retry_for_secs, 3600);
        assert!(!format!("{c:?}").contains("MfKQ9r8G"), "secrets never show");
    }

    #[test]
    fn bad_endpoints_name_the_setting() {
        let cases = [
            (
                r#"name = "crm"
                url = "ftp://x""#,
                "webhooks[0].url",
            ),
            (
                r#"name = "Crm"
                url = "https://x""#,
                "webhooks[0].name",
            ),
            (
                r#"name = "crm"
                url = "https://x.example""#,
                "webhooks[0].secrets",
            ),
            (
                r#"name = "crm"
                url = "https://x.example"
                secret = "not-a-secret""#,
                "webhooks[0].secrets[0]",
            ),
            (
                r#"name = "crm"
                url = "https://x.example"
                secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                events = ["message.lost"]"#,
                "webhooks[0].events",
            ),
        ];
        for (body, setting) in cases {
            let e = parse(&format!("[[webhooks]]\n{body}")).unwrap_err();
            assert_eq!(e.setting, setting, "{body}");
        }
    }
}
