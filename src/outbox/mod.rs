//! The outbox: a parsed message ([`draft`]) is checked and stored first ([`accept`], with
//! each refusal a [`Refusal`]; [`auto`] picks the channel), then claimed in batches by
//! this instance's workers under a lease, sent one attempt at a time ([`attempt`]), and
//! finished in batches. A message whose instance died is taken over when its lease runs
//! out; template messages carry a `client_msg_id`, so WeChat drops a repeated send.
//!
//! At shutdown the claimer stops first, the sends in flight finish and are recorded within
//! the grace period ([`Outbox::drain`]), and what this instance still holds goes back to
//! the queue at once instead of waiting for its lease to run out.

pub mod accept;
mod attempt;
pub mod auto;
pub mod custom;
pub mod draft;
mod pacing;
pub mod refusal;
pub mod templates;

pub use accept::Accepted;
pub use custom::CustomDraft;
pub use draft::{AutoDraft, Idempotency, MessageDraft};
pub use refusal::Refusal;

use crate::clock::Clock;
use crate::config::{AppConfig, OutboxSettings};
use crate::domain::{AppId, Channel, MessageId};
use crate::store::{
    Commit, Enqueued, GroupCommit, Message, NewMessage, Outcome, Store, StoreError, Unanswered,
};
use crate::token::TokenManager;
use crate::wechat::WechatClient;
pub use pacing::HEARTBEAT as PACING_HEARTBEAT;
use pacing::Pacer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use templates::Templates;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Most finished attempts written in one transaction.
const FINISH_BATCH: usize = 256;
/// Most accepted messages written in one transaction.
const ENQUEUE_BATCH: usize = 256;
/// Accepted messages waiting for the writer at most; beyond it requests wait for room.
const ENQUEUE_QUEUE: usize = 4096;

/// An accepted message on its way into the store, and who waits for the answer.
type EnqueueJob = (NewMessage, oneshot::Sender<Result<Enqueued, StoreError>>);

/// The sending engine of one instance; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    tokens: TokenManager,
    wechat: WechatClient,
    clock: Clock,
    settings: OutboxSettings,
    apps: HashMap<AppId, AppConfig>,
    /// Names this instance in message leases.
    owner: String,
    templates: Templates,
    /// Per-app pacing of sends to WeChat: this instance's share of the fleet's rate.
    pacers: HashMap<AppId, Pacer>,
    /// New work: wakes the claimer before its poll interval.
    wake: Notify,
    /// `?wait=` requests, woken when their message settles here.
    waiters: Mutex<HashMap<MessageId, Vec<oneshot::Sender<()>>>>,
    /// To the task that writes accepted messages in shared transactions.
    enqueue: GroupCommit<EnqueueJob>,
    /// Cancelled once the claimer stopped: `?wait=` requests answer at once then, so that
    /// shutdown does not wait for them.
    stopped: CancellationToken,
}

/// The running workers of [`Outbox::spawn`], for [`Outbox::drain`].
pub struct Workers {
    claimer: JoinHandle<()>,
    finisher: JoinHandle<()>,
}

/// A finished attempt on its way to the finisher.
type Done = (MessageId, Outcome, Channel);

impl Outbox {
    pub fn new(
        apps: &[AppConfig],
        store: Store,
        tokens: TokenManager,
        wechat: WechatClient,
        clock: Clock,
        settings: OutboxSettings,
    ) -> Self {
        let pacers = apps
            .iter()
            .map(|a| (a.id.clone(), Pacer::new(settings.rate_per_sec)))
            .collect();
        let enqueue = GroupCommit::start(
            ENQUEUE_QUEUE,
            ENQUEUE_BATCH,
            Enqueuer {
                store: store.clone(),
                clock: clock.clone(),
            },
        );
        let templates = Templates::new(
            tokens.clone(),
            wechat.clone(),
            Duration::from_secs(settings.template_cache_secs),
        );
        Self {
            inner: Arc::new(Inner {
                store,
                tokens,
                wechat,
                clock,
                apps: apps.iter().map(|a| (a.id.clone(), a.clone())).collect(),
                owner: format!("wxlink-{}", crate::domain::random_alphanumeric(16)),
                templates,
                pacers,
                wake: Notify::new(),
                waiters: Mutex::new(HashMap::new()),
                enqueue,
                stopped: CancellationToken::new(),
                settings,
            }),
        }
    }

    pub fn templates(&self) -> &Templates {
        &self.inner.templates
    }

    /// Writes an accepted message, sharing a transaction with whatever else is being
    /// accepted at the same moment (group commit).
    pub(crate) async fn enqueue(&self, m: NewMessage) -> Result<Enqueued, StoreError> {
        match self.inner.enqueue.call(|reply| (m, reply)).await {
            Ok(written) => written,
            Err(Unanswered::Stopped((m, _))) => {
                // The writer task is gone (shutting down): write alone.
                let now = self.inner.clock.timestamp();
                Ok(self.inner.store.enqueue(&[m], now).await?[0])
            }
            Err(Unanswered::Dropped) => Err(StoreError::Corrupt {
                table: "messages",
                detail: "the enqueue task ended before answering".into(),
            }),
        }
    }

    /// Tells the workers a message is waiting.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Waits up to `timeout` for a message to settle (sent, rejected, failed...); returns
    /// it as it is then.
    pub async fn wait_settled(
        &self,
        id: &MessageId,
        timeout: Duration,
    ) -> Result<Option<Message>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before reading, so a settlement in between still wakes us.
            let (tx, rx) = oneshot::channel();
            self.waiters().entry(id.clone()).or_default().push(tx);
            let m = self.inner.store.message(id).await?;
            let now = tokio::time::Instant::now();
            if m.as_ref().is_none_or(|m| m.status.is_settled()) || now >= deadline {
                return Ok(m);
            }
            if self.inner.stopped.is_cancelled() {
                return Ok(m);
            }
            // Another instance may settle it: look again now and then.
            let nap = (deadline - now).min(Duration::from_millis(250));
            tokio::select! {
                _ = tokio::time::timeout(nap, rx) => {}
                _ = self.inner.stopped.cancelled() => {}
            }
        }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, Vec<oneshot::Sender<()>>>> {
        self.inner.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify_settled(&self, ids: &[MessageId]) {
        let mut w = self.waiters();
        if w.is_empty() {
            return;
        }
        for id in ids {
            for tx in w.remove(id).unwrap_or_default() {
                let _ = tx.send(());
            }
        }
    }

    /// Runs the workers: one claimer (until `stop`), up to `concurrency` attempts at once,
    /// and one writer that records finished attempts in batches (until the last attempt
    /// claimed before `stop` is recorded).
    pub fn spawn(&self, stop: CancellationToken) -> Workers {
        self.spawn_pacing(stop.clone());
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let finisher = tokio::spawn(
            self.clone()
                .finisher(done_rx)
                .instrument(tracing::info_span!("outbox_finisher")),
        );
        let this = self.clone();
        let claimer = tokio::spawn(
            async move {
                this.clone().claimer(done_tx, stop).await;
                this.inner.stopped.cancel();
            }
            .instrument(tracing::info_span!("outbox_claimer")),
        );
        Workers { claimer, finisher }
    }

    /// After the workers' `stop`: waits until `deadline` for the sends in flight to finish
    /// and be recorded, then puts whatever this instance still holds back in the queue.
    /// Returns how many messages were given back.
    pub async fn drain(&self, workers: Workers, deadline: tokio::time::Instant) -> u64 {
        let Workers { claimer, finisher } = workers;
        let finisher_abort = finisher.abort_handle();
        let finished = async {
            let _ = claimer.await;
            let _ = finisher.await;
        };
        if tokio::time::timeout_at(deadline, finished).await.is_err() {
            finisher_abort.abort();
            tracing::warn!("outbox: sends still in flight at the end of the grace period");
        }
        match self.release_claims().await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "outbox: cannot give claimed messages back; they return when their lease runs out");
                0
            }
        }
    }

    /// Settles `sent` messages whose delivery report came in before their send was
    /// recorded. Run after each batch of sends and by the push sweeper.
    pub async fn apply_waiting_reports(&self) {
        let s = &self.inner;
        match s.store.apply_waiting_reports(s.clock.timestamp()).await {
            Ok(settled) => {
                for (_, channel, state) in &settled {
                    crate::metrics::message(*channel, state.as_str());
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot apply waiting delivery reports"),
        }
    }

    /// Puts this instance's claimed messages back in the queue (their attempt not counted),
    /// for another instance or the next start to send.
    pub async fn release_claims(&self) -> Result<u64, StoreError> {
        let s = &self.inner;
        let released = s
            .store
            .release_claims(&s.owner, s.clock.timestamp())
            .await?;
        for channel in &released {
            crate::metrics::message(*channel, "released");
        }
        if !released.is_empty() {
            tracing::info!(
                released = released.len(),
                "outbox: claimed messages given back to the queue"
            );
        }
        Ok(released.len() as u64)
    }

    async fn claimer(self, done: mpsc::UnboundedSender<Done>, stop: CancellationToken) {
        let s = &self.inner;
        let slots = Arc::new(Semaphore::new(s.settings.window()));
        let poll = Duration::from_millis(s.settings.poll_interval_ms);
        let lease_ms = s.settings.lease_secs * 1000;
        loop {
            if stop.is_cancelled() {
                return;
            }
            // Claim no more than can start now: a claimed message waits for nobody.
            let free = slots.available_permits() as i64;
            let want = free.min(s.settings.claim_batch);
            let claimed = if want > 0 {
                match s
                    .store
                    .claim_messages(&s.owner, s.clock.timestamp(), lease_ms, want)
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox: cannot claim messages");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let got = claimed.len() as i64;
            for m in claimed {
                let permit = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let this = self.clone();
                let done = done.clone();
                let span = tracing::info_span!("outbox_send", message_id = %m.id, app = %m.app, channel = %m.channel, attempt = m.attempt);
                tokio::spawn(
                    async move {
                        let outcome = this.attempt(&m).await;
                        tracing::debug!(state = state_of(&outcome), "attempt finished");
                        let _ = done.send((m.id, outcome, m.channel));
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            if want > 0 && got == want {
                continue;
            }
            if want == 0 {
                // Every slot busy: wait for one to free up.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    p = slots.clone().acquire_owned() => drop(p),
                }
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = s.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Writes finished attempts in batches; a batch the database refused is kept and
    /// written again, never dropped. Ends when the claimer and every attempt it started
    /// are done (the channel closes), or when [`Outbox::drain`] gives up on it.
    async fn finisher(self, mut done: mpsc::UnboundedReceiver<Done>) {
        let s = &self.inner;
        let mut batch = Vec::with_capacity(FINISH_BATCH);
        let mut channels = Vec::with_capacity(FINISH_BATCH);
        loop {
            if batch.is_empty() {
                match done.recv().await {
                    Some((id, outcome, channel)) => {
                        batch.push((id, outcome));
                        channels.push(channel);
                    }
                    None => return,
                }
            }
            while batch.len() < FINISH_BATCH {
                match done.try_recv() {
                    Ok((id, outcome, channel)) => {
                        batch.push((id, outcome));
                        channels.push(channel);
                    }
                    Err(_) => break,
                }
            }
            let recorded = s
                .store
                .finish_attempts(&s.owner, &batch, s.clock.timestamp())
                .await;
            s.store.note_write(&recorded);
            match recorded {
                Ok(updated) => {
                    count_recorded(&batch, &channels, &updated);
                    self.notify_settled(&updated);
                    if batch.iter().any(|(_, o)| matches!(o, Outcome::Sent { .. })) {
                        self.apply_waiting_reports().await;
                    }
                    batch.clear();
                    channels.clear();
                }
                Err(e) => {
                    tracing::warn!(error = %e, pending = batch.len(), "outbox: cannot record finished sends; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// The `wxlink_messages_total` state an attempt's outcome moves its message to.
fn state_of(o: &Outcome) -> &'static str {
    match o {
        Outcome::Sent { .. } => "sent",
        Outcome::Retry { .. } => "retried",
        Outcome::Held { .. } => "held",
        Outcome::Rejected { .. } => "rejected",
        Outcome::Failed { .. } => "failed",
    }
}

/// Counts the outcomes the store recorded: `updated` is the recorded ids, in batch order
/// (an attempt whose lease was lost is left out).
fn count_recorded(batch: &[(MessageId, Outcome)], channels: &[Channel], updated: &[MessageId]) {
    let mut next = updated.iter().peekable();
    for ((id, outcome), channel) in batch.iter().zip(channels) {
        if next.peek().is_some_and(|u| *u == id) {
            next.next();
            crate::metrics::message(*channel, state_of(outcome));
        }
    }
}

/// Writes accepted messages in batches: whatever arrived while the previous commit ran goes
/// into the next one. When a batch fails, each message is tried alone, so each request gets
/// its own answer.
struct Enqueuer {
    store: Store,
    clock: Clock,
}

impl Commit<EnqueueJob> for Enqueuer {
    async fn commit(&mut self, batch: Vec<EnqueueJob>) {
        let store = &self.store;
        let (messages, replies): (Vec<NewMessage>, Vec<_>) = batch.into_iter().unzip();
        let now = self.clock.timestamp();
        let written = store.kept(store.enqueue(&messages, now).await);
        match written {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(StoreError::Lost(why)) => {
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Lost(why.clone())));
                }
            }
            Err(e) if messages.len() == 1 => {
                let _ = replies.into_iter().next().map(|r| r.send(Err(e)));
            }
            Err(_) => {
                for (m, reply) in messages.into_iter().zip(replies) {
                    let r = store.kept(store.enqueue(std::slice::from_ref(&m), now).await);
                    let _ = reply.send(r.map(|v| v[0]));
                }
            }
        }
    }
}
