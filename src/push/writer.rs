//! Group commit for the push endpoint: handlers hand their verified push to one writer
//! task ([`GroupCommit`]), which stores whatever has queued up in one transaction and
//! answers each handler, then applies the effects of the new events in a second
//! transaction. Under load a commit serves many pushes; alone, a push waits for nothing.
//! One writer also means the pushes of this instance never contend with each other for
//! SQLite's write lock.

use super::handle::{HandleJob, handle_batch};
use crate::clock::Clock;
use crate::store::{Commit, GroupCommit, NewPush, Recorded, Store, StoreError};
use tokio::sync::oneshot;

/// Jobs taken per round at most.
const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer at most; beyond it handlers wait (backpressure), and
/// handling jobs are left to the sweeper.
const QUEUE: usize = 4096;

enum Job {
    Record(NewPush, oneshot::Sender<Result<Recorded, StoreError>>),
    Handle(HandleJob),
}

/// The handle handlers use; cheap to clone.
#[derive(Clone, Debug)]
pub struct PushWriter {
    writer: GroupCommit<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Record(p, _) => write!(f, "Record({})", p.dedup_key),
            Job::Handle(j) => write!(f, "Handle({})", j.id),
        }
    }
}

impl PushWriter {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub fn start(store: Store, clock: Clock) -> Self {
        Self {
            writer: GroupCommit::start(QUEUE, MAX_BATCH, Writer { store, clock }),
        }
    }

    /// Stores one push (durably, when this returns `Ok`).
    pub async fn record(&self, push: NewPush) -> Result<Recorded, StoreError> {
        self.writer
            .call(|reply| Job::Record(push, reply))
            .await
            .map_err(|_| StoreError::Batch("the push writer has stopped".into()))?
    }

    /// Queues an event's effect. When the queue is full the event stays unhandled and
    /// claimed; the sweeper takes it once the claim runs out.
    pub fn handle(&self, job: HandleJob) {
        if let Err(e) = self.writer.try_push(Job::Handle(job)) {
            tracing::warn!("push writer queue full; the sweeper will handle the event: {e}");
        }
    }
}

/// Stores a round's pushes, answers their handlers, then handles the round's events.
struct Writer {
    store: Store,
    clock: Clock,
}

impl Commit<Job> for Writer {
    async fn commit(&mut self, jobs: Vec<Job>) {
        let store = &self.store;
        let mut records = Vec::new();
        let mut handles = Vec::new();
        for job in jobs {
            match job {
                Job::Record(p, reply) => records.push((p, reply)),
                Job::Handle(h) => handles.push(h),
            }
        }
        if !records.is_empty() {
            let pushes: Vec<&NewPush> = records.iter().map(|(p, _)| p).collect();
            let stored = store.kept(store.record_pushes(&pushes).await);
            match stored {
                Ok(recorded) => {
                    for ((_, reply), r) in records.into_iter().zip(recorded) {
                        let _ = reply.send(Ok(r));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, pushes = records.len(), "storing a batch of pushes failed; each is refused and WeChat retries");
                    let msg = e.to_string();
                    let full = e.is_full();
                    let lost = matches!(e, StoreError::Lost(_));
                    for (_, reply) in records {
                        let e = if full {
                            StoreError::Full(msg.clone())
                        } else if lost {
                            StoreError::Lost(msg.clone())
                        } else {
                            StoreError::Batch(msg.clone())
                        };
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
        if !handles.is_empty() {
            handle_batch(store, &handles, self.clock.timestamp()).await;
        }
    }
}
