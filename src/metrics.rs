//! Prometheus metrics: one recorder per process, and the named helpers every other module
//! calls. A leaf: it knows domain types only; the sampler that keeps the gauges (outbox
//! depth, token ages) fresh is start-up's (`app::spawn_sampler`), through [`outbox_depth`]
//! and [`token_age`].
//!
//! Counting happens through the helpers below, never through `metrics::counter!` scattered
//! in the code, so that every series and its labels are listed here. Label values are
//! `&'static str` wherever the set is fixed in code; app ids and WeChat error codes are the
//! only owned ones (both bounded by configuration and WeChat's code list).
//!
//! The recorder is process-wide: tests that start several services in one process share
//! it, and [`install`] may be called any number of times.

use crate::domain::{AppId, Channel};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// WeChat answers in tens of milliseconds to a few seconds; our client gives up at 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// From an event to its delivery: milliseconds when all is well, days when a receiver
/// was down.
const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0, 3600.0, 86_400.0,
];

/// Installs the process-wide recorder once and returns the handle that renders it.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("wxlink_wechat_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full("wxlink_push_forward_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full("wxlink_webhook_lag_seconds".into()),
                LAG_BUCKETS,
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder was installed first; /metrics stays empty");
        }
        describe();
        ::metrics::gauge!("wxlink_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// The metrics in Prometheus' text format.
pub fn render() -> String {
    install().render()
}

fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "wxlink_build_info",
        "Always 1; the version label says which build runs."
    );
    describe_counter!(
        "wxlink_token_fetches_total",
        "Upstream access-token fetches by app, mode (stable|classic), force (true|false) and result (ok|busy|unreachable|quota|refused|budget)."
    );
    describe_counter!(
        "wxlink_token_refreshes_total",
        "Access-token refreshes by app, mode and outcome: fetched (from WeChat), adopted (another instance's token from the store), kept (WeChat failed, the valid token kept), failed."
    );
    describe_gauge!(
        "wxlink_token_age_seconds",
        Unit::Seconds,
        "Age of the access token this instance serves, per app."
    );
    describe_gauge!(
        "wxlink_token_expires_in_seconds",
        Unit::Seconds,
        "Seconds until the served access token expires, per app (0 when there is none)."
    );
    describe_counter!(
        "wxlink_wechat_requests_total",
        "Calls to WeChat by endpoint and errcode (0 for success, transport, protocol)."
    );
    describe_histogram!(
        "wxlink_wechat_request_duration_seconds",
        Unit::Seconds,
        "Latency of calls to WeChat by endpoint."
    );
    describe_counter!(
        "wxlink_messages_total",
        "Message state changes by channel and state: queued (accepted), sent, retried, held, rejected, failed, released (given back at shutdown), delivered."
    );
    describe_gauge!(
        "wxlink_outbox_depth",
        "Messages queued or being sent (all instances sharing the database)."
    );
    describe_gauge!(
        "wxlink_outbox_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest message queued or being sent; 0 when the outbox is empty."
    );
    describe_counter!(
        "wxlink_pushes_total",
        "WeChat server pushes by event and outcome (accepted, duplicate, refused), with the refusal reason."
    );
    describe_counter!(
        "wxlink_push_forward_total",
        "Pushes forwarded to an app's downstream, by app and outcome: reply (a reply message relayed), success (no reply), repeat (a WeChat retry answered from the first forward), timeout, unreachable, bad_status, bad_answer (WeChat got success)."
    );
    describe_histogram!(
        "wxlink_push_forward_duration_seconds",
        Unit::Seconds,
        "From sending a push to the downstream to its answer (or the deadline), by app."
    );
    describe_counter!(
        "wxlink_oauth_callbacks_total",
        "Web authorization callbacks by app and outcome (the page's data-outcome)."
    );
    describe_counter!(
        "wxlink_rate_limited_total",
        "Requests answered 429 by the inbound rate limit, by group (browser, push)."
    );
    describe_counter!(
        "wxlink_webhook_attempts_total",
        "Webhook delivery attempts by endpoint and result (delivered, failed)."
    );
    describe_histogram!(
        "wxlink_webhook_lag_seconds",
        Unit::Seconds,
        "From an event's time to its successful delivery, by endpoint."
    );
    describe_gauge!(
        "wxlink_webhook_pending",
        "Events waiting for delivery, by endpoint (all instances sharing the database)."
    );
    describe_gauge!(
        "wxlink_webhook_oldest_pending_age_seconds",
        Unit::Seconds,
        "Age of the oldest event waiting for an endpoint; 0 when none waits."
    );
    describe_counter!(
        "wxlink_follower_lookups_total",
        "Openids looked up in WeChat's follower info (user/info, batchget) by app and trigger (subscribe, refresh, background, import)."
    );
    describe_gauge!(
        "wxlink_follower_fill_quota_used",
        "Lookups the background fill spent today (Beijing day), per app, across the fleet."
    );
    describe_gauge!(
        "wxlink_follower_fill_quota_limit",
        "The background fill's daily quota per app (`followers.background_daily_quota`)."
    );
    describe_gauge!(
        "wxlink_follower_import_imported",
        "Followers the app's latest import stored so far."
    );
    describe_gauge!(
        "wxlink_follower_import_total",
        "WeChat's follower count of the app's latest import (0 until its first page)."
    );
    describe_gauge!(
        "wxlink_webhook_endpoint_disabled",
        "1 for an endpoint disabled after failing for the whole retry period, else 0."
    );
}

fn app_label(app: &AppId) -> String {
    app.as_str().to_owned()
}

/// One upstream token fetch attempt and how it ended.
pub fn token_fetch(app: &AppId, mode: &'static str, force: bool, result: &'static str) {
    ::metrics::counter!(
        "wxlink_token_fetches_total",
        "app" => app_label(app),
        "mode" => mode,
        "force" => if force { "true" } else { "false" },
        "result" => result,
    )
    .increment(1);
}

/// How a refresh of the token manager ended: `fetched`, `adopted`, `kept` or `failed`.
pub fn token_refresh(app: &AppId, mode: &'static str, outcome: &'static str) {
    ::metrics::counter!(
        "wxlink_token_refreshes_total",
        "app" => app_label(app),
        "mode" => mode,
        "outcome" => outcome,
    )
    .increment(1);
}

/// How one call to WeChat ended, as `wxlink_wechat_requests_total` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallResult {
    Ok,
    /// WeChat answered with this errcode.
    Errcode(i64),
    /// No answer (timeout, connection refused or cut).
    Transport,
    /// An answer that was not WeChat's JSON.
    Protocol,
}

/// One call to WeChat: its endpoint, how it ended, how long it took.
pub fn wechat_call(endpoint: &'static str, result: CallResult, took: Duration) {
    let errcode: ::metrics::SharedString = match result {
        CallResult::Ok => "0".into(),
        CallResult::Errcode(code) => code.to_string().into(),
        CallResult::Transport => "transport".into(),
        CallResult::Protocol => "protocol".into(),
    };
    ::metrics::counter!("wxlink_wechat_requests_total", "endpoint" => endpoint, "errcode" => errcode)
        .increment(1);
    ::metrics::histogram!("wxlink_wechat_request_duration_seconds", "endpoint" => endpoint)
        .record(took.as_secs_f64());
}

/// A message entered `state` (see `wxlink_messages_total`). The delivery report of the push
/// endpoint counts `delivered` (or `failed`) here too.
pub fn message(channel: Channel, state: &'static str) {
    ::metrics::counter!("wxlink_messages_total", "channel" => channel.as_str(), "state" => state)
        .increment(1);
}

/// How the push endpoint answered one WeChat push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Verified and recorded.
    Accepted,
    /// Verified, but already seen (WeChat retries a push it got no answer to in 5 s).
    Duplicate,
    /// Refused; the reason is the push endpoint's error code (`bad_signature`,
    /// `stale_timestamp`, `bad_padding`, `unknown_app`, ...: the catalogue's, so bounded).
    Refused(&'static str),
}

/// Counts one push. `event` is WeChat's `Event` (or `MsgType` for plain messages) as sent;
/// use `"unknown"` when the push could not be read. Anything longer than 40 characters or
/// outside `[A-Za-z0-9_]` is counted as `other`, so a forged push cannot mint series.
pub fn push(event: &str, outcome: PushOutcome) {
    let event: ::metrics::SharedString = if !event.is_empty()
        && event.len() <= 40
        && event
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        event.to_owned().into()
    } else {
        "other".into()
    };
    let (outcome, reason) = match outcome {
        PushOutcome::Accepted => ("accepted", ""),
        PushOutcome::Duplicate => ("duplicate", ""),
        PushOutcome::Refused(reason) => ("refused", reason),
    };
    ::metrics::counter!(
        "wxlink_pushes_total",
        "event" => event,
        "outcome" => outcome,
        "reason" => reason,
    )
    .increment(1);
}

/// One push forwarded to the app's downstream and how it ended; `took` for the forwards
/// actually sent (not for repeats).
pub fn push_forward(app: &AppId, outcome: &'static str, took: Option<Duration>) {
    ::metrics::counter!("wxlink_push_forward_total", "app" => app_label(app), "outcome" => outcome)
        .increment(1);
    if let Some(took) = took {
        ::metrics::histogram!("wxlink_push_forward_duration_seconds", "app" => app_label(app))
            .record(took.as_secs_f64());
    }
}

/// One web authorization callback: the app (`unknown` for a name not configured) and the
/// outcome its page declares.
pub fn oauth_callback(app: Option<&AppId>, outcome: &str) {
    let app: ::metrics::SharedString = match app {
        Some(a) => app_label(a).into(),
        None => "unknown".into(),
    };
    ::metrics::counter!("wxlink_oauth_callbacks_total", "app" => app, "outcome" => outcome.to_owned())
        .increment(1);
}

/// A request refused by the inbound rate limit.
pub fn rate_limited(group: &'static str) {
    ::metrics::counter!("wxlink_rate_limited_total", "group" => group).increment(1);
}

/// The outbox's depth and the age of its oldest message, in seconds (0 when empty).
pub fn outbox_depth(depth: i64, oldest_age_secs: f64) {
    ::metrics::gauge!("wxlink_outbox_depth").set(depth as f64);
    ::metrics::gauge!("wxlink_outbox_oldest_age_seconds").set(oldest_age_secs);
}

/// The access token an instance serves for `app`: seconds until it expires (0 when there
/// is none) and, when one was fetched, its age.
pub fn token_age(app: &AppId, expires_in_secs: i64, age_secs: Option<i64>) {
    let app = app_label(app);
    ::metrics::gauge!("wxlink_token_expires_in_seconds", "app" => app.clone())
        .set(expires_in_secs as f64);
    if let Some(age) = age_secs {
        ::metrics::gauge!("wxlink_token_age_seconds", "app" => app).set(age as f64);
    }
}

/// The exporter's periodic upkeep (histogram buckets), run by the sampler.
pub fn upkeep() {
    install().run_upkeep();
}

/// One webhook delivery attempt; a success also records the event's lag.
pub fn webhook_attempt(endpoint: &str, delivered: bool, lag_secs: Option<f64>) {
    let result = if delivered { "delivered" } else { "failed" };
    ::metrics::counter!("wxlink_webhook_attempts_total", "endpoint" => endpoint.to_owned(), "result" => result)
        .increment(1);
    if let Some(lag) = lag_secs {
        ::metrics::histogram!("wxlink_webhook_lag_seconds", "endpoint" => endpoint.to_owned())
            .record(lag);
    }
}

/// An endpoint's queue and state, as the sampler reads them from the store.
pub fn webhook_endpoint(endpoint: &str, pending: i64, oldest_age_secs: f64, disabled: bool) {
    let e = endpoint.to_owned();
    ::metrics::gauge!("wxlink_webhook_pending", "endpoint" => e.clone()).set(pending as f64);
    ::metrics::gauge!("wxlink_webhook_oldest_pending_age_seconds", "endpoint" => e.clone())
        .set(oldest_age_secs);
    ::metrics::gauge!("wxlink_webhook_endpoint_disabled", "endpoint" => e).set(if disabled {
        1.0
    } else {
        0.0
    });
}

/// Openids looked up in WeChat's follower info.
pub fn follower_lookups(app: &AppId, trigger: &'static str, n: usize) {
    ::metrics::counter!("wxlink_follower_lookups_total", "app" => app_label(app), "trigger" => trigger)
        .increment(n as u64);
}

/// The background fill's quota of an app today: spent and limit.
pub fn follower_fill_quota(app: &AppId, used: i64, limit: i64) {
    ::metrics::gauge!("wxlink_follower_fill_quota_used", "app" => app_label(app)).set(used as f64);
    ::metrics::gauge!("wxlink_follower_fill_quota_limit", "app" => app_label(app))
        .set(limit as f64);
}

/// Where an app's follower import is.
pub fn follower_import(app: &AppId, imported: i64, total: Option<i64>) {
    ::metrics::gauge!("wxlink_follower_import_imported", "app" => app_label(app))
        .set(imported as f64);
    ::metrics::gauge!("wxlink_follower_import_total", "app" => app_label(app))
        .set(total.unwrap_or(0) as f64);
}
