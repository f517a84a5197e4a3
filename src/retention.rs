//! The pruner: every `[retention] interval_secs`, each kind of finished record older than
//! its retention is deleted in batches of `batch_size`, with `batch_pause_ms` between two
//! batches so the writes of sends and pushes are never queued behind a large delete (on
//! SQLite they share the one writer connection). Every instance runs it; two instances
//! deleting the same old rows only find fewer.

use crate::clock::{Clock, Timestamp};
use crate::config::RetentionSettings;
use crate::store::{Prunable, Store, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the answer to a forwarded push is kept for WeChat's retries.
pub const FORWARD_ANSWER_SECS: i64 = 3600;

/// Where each kind's age is counted from, in its unit, for a retention of `keep`
/// (`None`: kept forever).
fn cutoff(kind: Prunable, s: &RetentionSettings, now: Timestamp) -> Option<i64> {
    let (keep_secs, ms) = match kind {
        Prunable::OauthExchanges => (s.oauth_exchanges_hours * 3600, false),
        Prunable::LoginCodes => (s.login_codes_hours * 3600, false),
        Prunable::LinkTickets => (s.link_tickets_days * 86_400, false),
        // 0 days: a row goes once its refresh token has expired.
        Prunable::WebTokens => return Some(now.secs() - s.web_tokens_days * 86_400),
        Prunable::Messages => (s.messages_days * 86_400, true),
        Prunable::PushEvents
        | Prunable::PushDeliveryReports
        | Prunable::PushForwards
        | Prunable::CustomWindows => (s.pushes_days * 86_400, false),
        // Whatever the retention: only WeChat's retries of the push need the answer.
        Prunable::PushForwardAnswers => return Some(now.secs() - FORWARD_ANSWER_SECS),
    };
    if keep_secs == 0 {
        return None;
    }
    Some(if ms {
        now.millis() - keep_secs * 1000
    } else {
        now.secs() - keep_secs
    })
}

/// One pass over every kind; returns how many records of each went.
pub async fn prune_once(
    store: &Store,
    settings: &RetentionSettings,
    now: Timestamp,
    stop: &CancellationToken,
) -> Result<Vec<(Prunable, u64)>, StoreError> {
    let mut pruned = Vec::new();
    for kind in Prunable::ALL {
        let Some(before) = cutoff(kind, settings, now) else {
            continue;
        };
        let mut total = 0;
        loop {
            let n = store.prune_batch(kind, before, settings.batch_size).await?;
            total += n;
            if (n as i64) < settings.batch_size || stop.is_cancelled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(settings.batch_pause_ms)).await;
        }
        if total > 0 {
            tracing::info!(
                table = kind.table(),
                rows = total,
                "pruned records past their retention"
            );
        }
        pruned.push((kind, total));
    }
    Ok(pruned)
}

/// Runs [`prune_once`] now and every `interval_secs` until `stop`.
pub fn spawn(store: Store, clock: Clock, settings: RetentionSettings, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = prune_once(&store, &settings, clock.timestamp(), &stop).await {
                tracing::warn!(error = %e, "pruning failed; trying again next interval");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(settings.interval_secs)) => {}
            }
        }
    });
}
