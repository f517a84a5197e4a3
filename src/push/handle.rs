//! What each event does, in one place ([`apply`]), and the sweeper that finishes events a
//! dead or failed task left unhandled.

use super::event::{Envelope, PushEvent};
use super::xml;
use crate::clock::Clock;
use crate::context::Ctx;
use crate::domain::AppId;
use crate::store::{Store, StoreError, StoredEvent};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// After this many failed attempts an event is closed with outcome `gave_up: <error>`.
const MAX_ATTEMPTS: i64 = 10;
/// Handled events are pruned at most this often.
const PRUNE_EVERY_SECS: i64 = 3600;

/// The effect of one event; returns its outcome. Every kind of event passes through here.
///
/// Integration points for the outbox (issue 4), marked below:
/// - a delivery report is kept in `push_delivery_reports` (first report of a msgid wins)
///   and must then be applied to the message in state `sent(msgid)`; when the message is
///   not `sent` yet, the outbox applies it from that table as it records `sent(msgid)`.
/// - subscription choices and send results go to the subscription ledger.
pub async fn apply(
    store: &Store,
    app: &AppId,
    event_id: i64,
    event: &PushEvent,
    openid: Option<&str>,
    now: i64,
) -> Result<String, StoreError> {
    Ok(match event {
        PushEvent::DeliveryReport { msgid, status } => {
            store
                .record_delivery_report(app, *msgid, status, openid, event_id, now)
                .await?;
            // OUTBOX: `store.apply_delivery_report(app, *msgid, status, now)` goes here,
            // answering "delivered" / "failed" / "not sent yet" for the outcome.
            "no_outbox_yet".to_owned()
        }
        PushEvent::Follow {
            openid,
            follows,
            at,
        } => {
            let applied = store.set_follow(app, openid, *follows, *at, now).await?;
            match (applied, follows) {
                (false, _) => "follow_outdated".to_owned(),
                (true, true) => "follow_recorded".to_owned(),
                (true, false) => "unfollow_recorded".to_owned(),
            }
        }
        // LEDGER: credit accepted templates / record rejections (keyed by event_id, so a
        // second handling of the same event cannot count twice).
        PushEvent::SubscriptionChoices { .. } => "no_ledger_yet".to_owned(),
        // LEDGER: mark the subscribe send `msgid` delivered or failed (`error_code`).
        PushEvent::SubscriptionSends { .. } => "no_ledger_yet".to_owned(),
        PushEvent::Other => "stored".to_owned(),
    })
}

/// Applies one event and records its outcome; on failure the event stays unhandled for
/// the sweeper. Never fails: errors are logged.
pub(crate) async fn run(
    store: &Store,
    clock: &Clock,
    app: &AppId,
    id: i64,
    event: &PushEvent,
    openid: Option<&str>,
) {
    let now = clock.now();
    let result = match apply(store, app, id, event, openid, now).await {
        Ok(outcome) => store.finish_event(id, &outcome, now).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(app = %app, event_id = id, error = %e, "push event not handled; the sweeper retries it");
        let _ = store.event_failed(id, &e.to_string()).await;
    }
}

/// Handles every unhandled event whose claim ran out; returns how many were taken.
pub async fn sweep_once(ctx: &Ctx) -> Result<usize, StoreError> {
    let mut taken = 0;
    loop {
        let now = ctx.clock.now();
        let batch = ctx
            .store
            .claim_unhandled_events(now, super::CLAIM_SECS, 100)
            .await?;
        if batch.is_empty() {
            return Ok(taken);
        }
        taken += batch.len();
        for ev in batch {
            sweep_event(ctx, &ev, now).await?;
        }
    }
}

async fn sweep_event(ctx: &Ctx, ev: &StoredEvent, now: i64) -> Result<(), StoreError> {
    let app = ev.app_id()?;
    if ev.attempts > MAX_ATTEMPTS {
        let why = ev.last_error.as_deref().unwrap_or("unknown error");
        tracing::error!(app = %app, event_id = ev.id, "push event given up after {MAX_ATTEMPTS} attempts: {why}");
        return ctx
            .store
            .finish_event(ev.id, &format!("gave_up: {why}"), now)
            .await;
    }
    let typed = xml::parse(&ev.xml)
        .map_err(|e| e.0)
        .and_then(|root| Envelope::read(&root).and_then(|env| PushEvent::classify(&root, &env)));
    match typed {
        Ok(event) => {
            run(
                &ctx.store,
                &ctx.clock,
                &app,
                ev.id,
                &event,
                ev.openid.as_deref(),
            )
            .await;
            Ok(())
        }
        Err(reason) => {
            ctx.store
                .finish_event(ev.id, &format!("malformed: {reason}"), now)
                .await
        }
    }
}

/// Sweeps at start-up and every `push.sweep_interval_secs`, and prunes old records.
pub fn spawn_sweeper(ctx: Ctx, stop: CancellationToken) {
    tokio::spawn(async move {
        let interval = Duration::from_secs(ctx.config.push.sweep_interval_secs);
        let mut last_prune = i64::MIN;
        loop {
            if let Err(e) = sweep_once(&ctx).await {
                tracing::warn!(error = %e, "push sweep failed; trying again next interval");
            }
            let now = ctx.clock.now();
            let s = &ctx.config.push;
            let events_before = if now.saturating_sub(last_prune) >= PRUNE_EVERY_SECS {
                last_prune = now;
                Some(now - s.retention_days * 86_400)
            } else {
                None
            };
            if let Err(e) = ctx
                .store
                .prune_push_records(now - s.timestamp_window_secs, events_before)
                .await
            {
                tracing::warn!(error = %e, "pruning push records failed");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    });
}
