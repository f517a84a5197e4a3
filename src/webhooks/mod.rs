//! Events out: signed webhooks to the company's backends, keyed by business user id.
//!
//! The core writes each event in the transaction of the change that caused it
//! ([`crate::store`]'s `record_events`, with one delivery per endpoint whose filter takes
//! it). The deliverers here claim endpoints, not single events, under a lease (SKIP LOCKED
//! on PostgreSQL): one instance at a time delivers to an endpoint, its waiting events in
//! the order they were written (so every cause arrives before its effect), a batch per
//! claim. 2xx is success; anything else, or no answer within
//! the timeout, stops the batch and retries the same event (same `webhook-id`) after an
//! exponential backoff with jitter; an endpoint that keeps failing for the retry period is
//! disabled, logged once and shown in metrics until it is enabled again.
//!
//! Like [`crate::push::Inbox`], it is given what it needs (store, clock, endpoints,
//! settings) and knows nothing of HTTP routes or the handlers' context.

pub mod payload;
pub mod sign;

use crate::clock::{Clock, Timestamp};
use crate::config::{WebhookDelivery, WebhookEndpoint};
use crate::domain::{EventId, EventType, NewEvent};
use crate::store::{AttemptRecord, EVENTS_WRITTEN, PendingDelivery, Store, StoreError};
use rand::RngExt;
use sign::Signer;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Old events are pruned at most this often.
const PRUNE_EVERY_SECS: i64 = 3600;
/// The first bytes of a receiver's answer kept with each attempt.
const ANSWER_BYTES: usize = 512;

/// Delivers this instance's share of the events; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Clock,
    settings: WebhookDelivery,
    endpoints: HashMap<String, (WebhookEndpoint, Signer)>,
    /// In configuration order, for listings.
    order: Vec<String>,
    http: reqwest::Client,
    /// Names this instance in endpoint leases.
    owner: String,
    /// One per endpoint being delivered to (`concurrency`).
    slots: Arc<tokio::sync::Semaphore>,
    /// A batch ended: its endpoint may have more waiting.
    batch_done: tokio::sync::Notify,
}

/// How one attempt went, before it is recorded.
struct Answer {
    status: Option<u16>,
    error: Option<String>,
    body: Option<String>,
    took: Duration,
}

impl Webhooks {
    pub fn new(
        endpoints: &[WebhookEndpoint],
        settings: WebhookDelivery,
        store: Store,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        for e in endpoints {
            let signer = Signer::new(&e.secrets)
                .map_err(|err| anyhow::anyhow!("webhook {:?}: bad secret: {err}", e.name))?;
            map.insert(e.name.clone(), (e.clone(), signer));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.timeout_ms.min(5_000)))
            .timeout(Duration::from_millis(settings.timeout_ms))
            .user_agent(concat!("wxlink-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                order: endpoints.iter().map(|e| e.name.clone()).collect(),
                endpoints: map,
                http,
                owner: format!("wxlink-{}", crate::domain::random_alphanumeric(16)),
                slots: Arc::new(tokio::sync::Semaphore::new(settings.concurrency)),
                batch_done: tokio::sync::Notify::new(),
                settings,
            }),
        })
    }

    /// Writes the configured endpoints and their filters to the store, which matches each
    /// new event against them in the event's own transaction.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let rows: Vec<(String, String)> = self
            .endpoints()
            .map(|e| (e.name.clone(), format!(",{},", e.events.join(","))))
            .collect();
        self.inner.store.sync_webhook_endpoints(&rows).await
    }

    /// The configured endpoints, in configuration order.
    pub fn endpoints(&self) -> impl Iterator<Item = &WebhookEndpoint> {
        self.inner
            .order
            .iter()
            .filter_map(|n| self.inner.endpoints.get(n).map(|(e, _)| e))
    }

    pub fn endpoint(&self, name: &str) -> Option<&WebhookEndpoint> {
        self.inner.endpoints.get(name).map(|(e, _)| e)
    }

    /// Queues a `webhook.test` event for one endpoint only; returns its id, or `None`
    /// when no such endpoint is configured.
    pub async fn send_test(&self, name: &str) -> Result<Option<EventId>, StoreError> {
        if self.endpoint(name).is_none() {
            return Ok(None);
        }
        let event = NewEvent {
            id: EventId::generate(),
            kind: EventType::WebhookTest,
            at: self.inner.clock.timestamp(),
            app: None,
            openid: None,
            unionid: None,
            user_id: None,
            data: serde_json::json!({ "endpoint": name }),
        };
        let queued = self.inner.store.record_test_event(name, &event).await?;
        Ok(queued.then_some(event.id))
    }

    /// After `stop`: gives back the endpoints this instance holds, so another instance
    /// carries on at once (an attempt cut short by the exit is sent again, same id).
    pub async fn release(&self) {
        if let Err(e) = self
            .inner
            .store
            .release_webhook_endpoints(&self.inner.owner)
            .await
        {
            tracing::warn!(error = %e, "webhooks: cannot give endpoints back; they return when their lease runs out");
        }
    }

    /// Runs the deliverer until `stop`: woken by this process's new events, polling for
    /// the others' every `poll_interval_ms`.
    pub fn spawn(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        // Stopping interrupts the round in flight: the lease is given back by `release`.
        let this = self.clone();
        tokio::spawn(
            async move {
                let poll = Duration::from_millis(this.inner.settings.poll_interval_ms);
                let mut last_prune = i64::MIN;
                loop {
                    // Events are kept even with no endpoint (a new one can replay them).
                    let now = this.inner.clock.now();
                    if now.saturating_sub(last_prune) >= PRUNE_EVERY_SECS {
                        last_prune = now;
                        this.prune(now).await;
                    }
                    if this.inner.endpoints.is_empty() {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(60)) => continue,
                        }
                    }
                    // Registered before looking, so events written meanwhile still wake us.
                    let woken = EVENTS_WRITTEN.notified();
                    let mut woken = std::pin::pin!(woken);
                    woken.as_mut().enable();
                    let round = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = this.run_once() => r,
                    };
                    let busy = match round {
                        Ok(n) => n > 0,
                        Err(e) => {
                            tracing::warn!(error = %e, "webhooks: cannot claim endpoints");
                            false
                        }
                    };
                    if stop.is_cancelled() {
                        return;
                    }
                    if busy {
                        continue;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = woken => {}
                        _ = this.inner.batch_done.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                    }
                }
            }
            .instrument(tracing::info_span!("webhooks")),
        )
    }

    /// Deletes delivered events past `retention_days`.
    async fn prune(&self, now_secs: i64) {
        let before = Timestamp::from_secs(now_secs - self.inner.settings.retention_days * 86_400);
        match self.inner.store.prune_webhook_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "webhooks: old events pruned"),
            Err(e) => tracing::warn!(error = %e, "webhooks: pruning old events failed"),
        }
    }

    /// Claims as many due endpoints as there are free slots and starts one batch for each,
    /// each on its own (a slow endpoint holds up no other). Returns how many it started.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let s = &self.inner;
        let free = s.slots.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let now = s.clock.timestamp();
        let lease_until = now.plus_secs(s.settings.lease_secs);
        let claimed = s
            .store
            .claim_webhook_endpoints(&s.owner, now, lease_until, free as i64)
            .await?;
        let started = claimed.len();
        for (name, failures, since) in claimed {
            let Ok(permit) = s.slots.clone().try_acquire_owned() else {
                s.store.release_webhook_endpoint(&s.owner, &name).await?;
                continue;
            };
            let this = self.clone();
            tokio::spawn(
                async move {
                    if let Err(e) = this.deliver_batch(&name, failures, since).await {
                        tracing::warn!(endpoint = %name, error = %e, "webhooks: delivery interrupted; retried on the next round");
                        let _ = this.inner.store.release_webhook_endpoint(&this.inner.owner, &name).await;
                    }
                    drop(permit);
                    // The endpoint may have more waiting: look again now.
                    this.inner.batch_done.notify_one();
                }
                .in_current_span(),
            );
        }
        Ok(started)
    }

    /// Delivers an endpoint's waiting events in order until one fails or the batch ends.
    async fn deliver_batch(
        &self,
        name: &str,
        mut failures: i64,
        failing_since: Option<Timestamp>,
    ) -> Result<usize, StoreError> {
        let s = &self.inner;
        let Some((endpoint, signer)) = s.endpoints.get(name) else {
            // Another instance's configuration has it; this one cannot sign for it.
            s.store.release_webhook_endpoint(&s.owner, name).await?;
            return Ok(0);
        };
        let batch = s
            .store
            .pending_deliveries(name, s.settings.claim_batch)
            .await?;
        // One after another, in order; recorded together at the end of the batch (a crash
        // before that sends them again, under the same ids).
        let mut done = Vec::with_capacity(batch.len());
        let started = Instant::now();
        // Half the lease at most, so a slow receiver never outlasts it.
        let budget = Duration::from_secs(s.settings.lease_secs as u64 / 2);
        for d in &batch {
            let answer = self.attempt(endpoint, signer, d).await;
            let now = s.clock.timestamp();
            let delivered = answer.status.is_some_and(|c| (200..300).contains(&c));
            let mut record = AttemptRecord {
                at: now,
                duration_ms: answer.took.as_millis() as i64,
                status_code: answer.status,
                error: answer.error,
                answer: answer.body,
                delivered,
                retry_at: now,
                disable: None,
                replays: d.replays,
            };
            if !delivered {
                failures += 1;
                record.retry_at = now.plus_millis(backoff_ms(&s.settings, failures));
                let since = failing_since.unwrap_or(now);
                if now.millis() - since.millis() >= s.settings.retry_for_secs * 1000 {
                    let why = format!(
                        "failing since {} ({} attempts in a row); last: {}",
                        payload::rfc3339(since),
                        failures,
                        describe(&record)
                    );
                    tracing::error!(endpoint = %name, reason = %why, "webhooks: endpoint disabled after failing for the whole retry period; enable it with POST /api/v1/webhooks/{name}/enable");
                    record.disable = Some(why);
                }
            }
            let lag = delivered
                .then(|| (now.millis() - d.event.occurred_ms.millis()).max(0) as f64 / 1000.0);
            crate::metrics::webhook_attempt(name, delivered, lag);
            done.push((d.event.id.clone(), d.attempts + 1, record));
            if !delivered || started.elapsed() >= budget {
                break;
            }
        }
        let attempts = done.len();
        if !s
            .store
            .record_webhook_attempts(&s.owner, name, &done)
            .await?
        {
            tracing::warn!(endpoint = %name, "webhooks: the endpoint was taken over mid-batch; its attempts are not recorded");
        }
        if done.is_empty() {
            s.store.release_webhook_endpoint(&s.owner, name).await?;
        }
        Ok(attempts)
    }

    /// One signed POST of one event.
    async fn attempt(&self, e: &WebhookEndpoint, signer: &Signer, d: &PendingDelivery) -> Answer {
        let body = payload::body(&d.event);
        // The receiver checks the timestamp against its own clock: sign with the real time.
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.as_secs() as i64);
        let signed = signer.sign(d.event.id.as_str(), wall, &body);
        let started = Instant::now();
        let sent = self
            .inner
            .http
            .post(e.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &signed.id)
            .header("webhook-timestamp", signed.timestamp.to_string())
            .header("webhook-signature", &signed.signature)
            .body(body)
            .send()
            .await;
        let answer = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(b) => Answer {
                        status: Some(status),
                        error: None,
                        body: Some(snippet(&b)),
                        took: started.elapsed(),
                    },
                    // The status came but not the whole answer (timed out, cut): not a success.
                    Err(err) => Answer {
                        status: None,
                        error: Some(format!("answer {status} cut short: {}", reason(&err))),
                        body: None,
                        took: started.elapsed(),
                    },
                }
            }
            Err(err) => Answer {
                status: None,
                error: Some(reason(&err)),
                body: None,
                took: started.elapsed(),
            },
        };
        tracing::debug!(endpoint = %e.name, event_id = %d.event.id, status = ?answer.status, "webhook attempt");
        answer
    }
}

/// Milliseconds before the next attempt after `failures` in a row: doubling from the base
/// up to the cap, then up to a quarter more at random, so endpoints that failed together
/// are not all retried in the same instant, and each delay still exceeds the one before.
pub fn backoff_ms(s: &WebhookDelivery, failures: i64) -> i64 {
    let exp = (failures - 1).clamp(0, 40) as u32;
    let base = s
        .backoff_base_ms
        .saturating_mul(1_i64.checked_shl(exp).unwrap_or(i64::MAX))
        .min(s.backoff_max_ms);
    let jitter = rand::rng().random_range(0..=base / 4);
    base + jitter
}

fn snippet(b: &[u8]) -> String {
    let cut = &b[..b.len().min(ANSWER_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Why a request failed, without the URL (it may carry a token in its query).
fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else if e.is_body() || e.is_decode() {
        "answer unreadable".to_owned()
    } else {
        "request failed".to_owned()
    }
}

fn describe(r: &AttemptRecord) -> String {
    match (r.status_code, &r.error) {
        (Some(c), _) => format!("HTTP {c}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no answer".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let s = WebhookDelivery::default();
        let mut last = 0;
        for n in 1..=10 {
            let d = backoff_ms(&s, n);
            let nominal = (s.backoff_base_ms << (n - 1)).min(s.backoff_max_ms);
            assert!(d >= nominal && d <= nominal + nominal / 4, "{n}: {d}");
            if nominal < s.backoff_max_ms {
                assert!(d > last, "{n}: {d} after {last}");
            }
            last = d;
        }
        assert!(backoff_ms(&s, 1000) <= s.backoff_max_ms * 5 / 4);
    }
}
