//! What each event does, in one place ([`apply`]), applied in batches (one transaction for
//! many events, each effect together with its "handled" mark, so no effect is applied
//! twice), and the sweeper that finishes events a dead or failed writer left unhandled.

use super::Inbox;
use super::event::{Envelope, PushEvent};
use super::xml;
use crate::clock::Timestamp;
use crate::domain::{AppId, EventType, MessageStatus, NewEvent};
use crate::store::{SentMessages, Store, StoreError, StoreTx, StoredEvent};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// After this many failed attempts an event is closed with outcome `gave_up: <error>`.
const MAX_ATTEMPTS: i64 = 10;

/// One stored event waiting for its effect.
#[derive(Debug, Clone)]
pub struct HandleJob {
    pub id: i64,
    pub app: AppId,
    pub event: PushEvent,
    /// `FromUserName` as WeChat sent it.
    pub openid: Option<String>,
}

/// The effect of one event, inside the transaction that marks it handled; returns its
/// outcome. Every kind of event passes through here.
///
/// - A delivery report (template `TEMPLATESENDJOBFINISH`, or a subscribe send's
///   `subscribe_msg_sent_event`) is kept by msgid and applied to the message in state
///   `sent(msgid)`; one that beat the send's own answer waits for the outbox's sweep. An
///   Official Account subscribe notification learns its msgid here ([`adopt`]).
/// - Subscription choices move the subscription ledger: an accepted popup credits one send;
///   a template turned off or banned clears the line.
///
/// `sent` holds the messages in state `sent` among the batch's reported msgids
/// ([`reported_msgids`]), looked up once for the whole batch.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    tx: &mut StoreTx,
    app: &AppId,
    event_id: i64,
    event: &PushEvent,
    openid: Option<&str>,
    now: Timestamp,
    sent: &SentMessages,
) -> Result<String, StoreError> {
    Ok(match event {
        PushEvent::DeliveryReport { msgid, status } => {
            deliver(tx, app, *msgid, status, openid, event_id, now, sent).await?
        }
        PushEvent::Follow {
            openid,
            follows,
            at,
        } => {
            let applied = tx
                .set_follow(app, openid, *follows, Timestamp::from_secs(*at), now)
                .await?;
            if applied && *follows {
                // Follower info (unionid, follow time) is looked up in the background.
                tx.queue_follower_refresh(app, openid, now).await?;
            }
            if applied {
                let kind = if *follows {
                    EventType::FollowSubscribed
                } else {
                    EventType::FollowUnsubscribed
                };
                let data = json!({ "wechat_time": at, "push_event_id": event_id });
                tx.record_events(&[NewEvent::about(kind, now, app, openid, data)])
                    .await?;
            }
            match (applied, follows) {
                (false, _) => "follow_outdated".to_owned(),
                (true, true) => "follow_recorded".to_owned(),
                (true, false) => "unfollow_recorded".to_owned(),
            }
        }
        PushEvent::SubscriptionChoices {
            openid,
            event,
            choices,
        } => {
            let (mut credited, mut cleared) = (0, 0);
            let mut events = Vec::new();
            for c in choices {
                // Every choice is news to the backend, whatever it does to the ledger.
                let kind = if c.status.starts_with("accept") {
                    EventType::SubscriptionAccepted
                } else {
                    EventType::SubscriptionRejected
                };
                let data = json!({ "template_id": c.template_id, "status": c.status, "wechat_event": event });
                events.push(NewEvent::about(kind, now, app, openid, data));
                // A popup "accept" grants one send. In the settings page (change event) an
                // "accept" grants nothing new; "reject" there, or a ban anywhere, ends it.
                let accepted = c.status.starts_with("accept");
                if accepted && event == "subscribe_msg_popup_event" {
                    tx.credit_subscription(app, openid, &c.template_id, now)
                        .await?;
                    credited += 1;
                } else if c.status == "ban"
                    || (c.status == "reject" && event == "subscribe_msg_change_event")
                {
                    tx.clear_subscription(app, openid, &c.template_id, now)
                        .await?;
                    cleared += 1;
                }
            }
            tx.record_events(&events).await?;
            format!("ledger_credited_{credited}_cleared_{cleared}")
        }
        PushEvent::SubscriptionSends { openid, results } => {
            let mut outcomes = Vec::new();
            for r in results {
                let status = if r.error_code == 0 {
                    "success".to_owned()
                } else {
                    format!("failed: {} ({})", r.error_status, r.error_code)
                };
                let adopted = if sent.contains_key(&(app.clone(), r.msgid)) {
                    None
                } else {
                    adopt(tx, app, openid.as_str(), &r.template_id, r.msgid).await?
                };
                outcomes.push(
                    deliver(
                        tx,
                        app,
                        r.msgid,
                        &status,
                        Some(openid.as_str()),
                        event_id,
                        now,
                        adopted.as_ref().unwrap_or(sent),
                    )
                    .await?,
                );
            }
            outcomes.join(",")
        }
        PushEvent::Other => "stored".to_owned(),
    })
}

/// The (app, msgid) of every delivery report in these jobs.
pub fn reported_msgids(jobs: &[HandleJob]) -> Vec<(AppId, i64)> {
    let mut out = Vec::new();
    for j in jobs {
        match &j.event {
            PushEvent::DeliveryReport { msgid, .. } => out.push((j.app.clone(), *msgid)),
            PushEvent::SubscriptionSends { results, .. } => {
                out.extend(results.iter().map(|r| (j.app.clone(), r.msgid)))
            }
            _ => {}
        }
    }
    out
}

/// An Official Account subscribe notification gets its msgid from this event (bizsend
/// answers none). Returns the message as the `sent` lookup would have found it, when it is
/// `sent` already; one still `sending` keeps the msgid and its report waits for the sweep.
async fn adopt(
    tx: &mut StoreTx,
    app: &AppId,
    openid: &str,
    template_id: &str,
    msgid: i64,
) -> Result<Option<SentMessages>, StoreError> {
    Ok(
        match tx.adopt_msgid(app, openid, template_id, msgid).await? {
            Some((id, channel, MessageStatus::Sent, last)) => Some(SentMessages::from([(
                (app.clone(), msgid),
                (id, channel, last),
            )])),
            _ => None,
        },
    )
}

/// Keeps a delivery report and applies it to its message if that is `sent` already.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    tx: &mut StoreTx,
    app: &AppId,
    msgid: i64,
    status: &str,
    openid: Option<&str>,
    event_id: i64,
    now: Timestamp,
    sent: &SentMessages,
) -> Result<String, StoreError> {
    let first = tx
        .record_delivery_report(app, msgid, status, openid, event_id, now)
        .await?;
    let Some((id, channel, last)) = sent.get(&(app.clone(), msgid)).filter(|_| first) else {
        return Ok("waiting_for_send".to_owned());
    };
    let state = tx
        .settle_message(id, app, msgid, status, *last, now)
        .await?;
    crate::metrics::message(*channel, state.as_str());
    Ok(state.as_str().to_owned())
}

/// Handles events in one transaction; when that fails, each on its own, so one bad event
/// does not hold up the others. Never fails: an event that could not be handled keeps its
/// error and is retried by the sweeper.
pub async fn handle_batch(store: &Store, jobs: &[HandleJob], now: Timestamp) {
    if jobs.len() > 1 && try_handle(store, jobs, now).await.is_ok() {
        return;
    }
    for job in jobs {
        if let Err(e) = try_handle(store, std::slice::from_ref(job), now).await {
            tracing::warn!(app = %job.app, event_id = job.id, error = %e, "push event not handled; the sweeper retries it");
            let _ = store.event_failed(job.id, &e.to_string()).await;
        }
    }
}

async fn try_handle(store: &Store, jobs: &[HandleJob], now: Timestamp) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let ours = tx.start_handling(&ids, now).await?;
    let sent = tx.sent_messages(&reported_msgids(jobs)).await?;
    let mut outcomes: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for j in jobs.iter().filter(|j| ours.contains(&j.id)) {
        let outcome = apply(
            &mut tx,
            &j.app,
            j.id,
            &j.event,
            j.openid.as_deref(),
            now,
            &sent,
        )
        .await?;
        outcomes.entry(outcome).or_default().push(j.id);
    }
    for (outcome, ids) in outcomes {
        tx.set_event_outcome(&ids, &outcome).await?;
    }
    tx.commit().await
}

impl Inbox {
    /// Handles every unhandled event whose claim ran out; returns how many were taken.
    pub async fn sweep_once(&self) -> Result<usize, StoreError> {
        let inbox = self;
        let mut taken = 0;
        loop {
            let now = inbox.clock.timestamp();
            let batch = inbox
                .store
                .claim_unhandled_events(now, super::CLAIM_SECS, 100)
                .await?;
            if batch.is_empty() {
                return Ok(taken);
            }
            taken += batch.len();
            let mut jobs = Vec::new();
            for ev in &batch {
                if let Some(job) = sweep_job(&inbox.store, ev, now).await? {
                    jobs.push(job);
                }
            }
            handle_batch(&inbox.store, &jobs, now).await;
        }
    }

    /// Sweeps at start-up and every `push.sweep_interval_secs`, and forgets old replay keys.
    pub fn spawn_sweeper(&self, stop: CancellationToken) {
        let inbox = self.clone();
        tokio::spawn(async move {
            let interval = Duration::from_secs(inbox.settings.sweep_interval_secs);
            loop {
                if let Err(e) = inbox.sweep_once().await {
                    tracing::warn!(error = %e, "push sweep failed; trying again next interval");
                }
                inbox.outbox.apply_waiting_reports().await;
                let now = inbox.clock.now();
                if let Err(e) = inbox
                    .store
                    .prune_push_nonces(Timestamp::from_secs(
                        now - inbox.settings.timestamp_window_secs,
                    ))
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
}

/// The job for a swept event, or `None` when it is closed here (malformed, given up).
async fn sweep_job(
    store: &Store,
    ev: &StoredEvent,
    now: Timestamp,
) -> Result<Option<HandleJob>, StoreError> {
    let app = ev.app.clone();
    if ev.attempts > MAX_ATTEMPTS {
        let why = ev.last_error.as_deref().unwrap_or("unknown error");
        tracing::error!(app = %app, event_id = ev.id, "push event given up after {MAX_ATTEMPTS} attempts: {why}");
        store
            .finish_event(ev.id, &format!("gave_up: {why}"), now)
            .await?;
        return Ok(None);
    }
    let typed = xml::parse(&ev.xml)
        .map_err(|e| e.0)
        .and_then(|root| Envelope::read(&root).and_then(|env| PushEvent::classify(&root, &env)));
    match typed {
        Ok(event) => Ok(Some(HandleJob {
            id: ev.id,
            app,
            event,
            openid: ev.openid.clone(),
        })),
        Err(reason) => {
            store
                .finish_event(ev.id, &format!("malformed: {reason}"), now)
                .await?;
            Ok(None)
        }
    }
}
