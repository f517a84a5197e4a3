//! Group commit: callers hand their write to one task, which takes whatever has queued up
//! and writes it in one transaction, then answers each caller. Under load one commit serves
//! many callers; alone, a write waits for nothing. One writer also means the writes of one
//! kind from this instance never contend with each other for SQLite's write lock.
//!
//! Used by the outbox (accepted messages) and the push endpoint (verified pushes); each
//! says in its [`Commit`] how a batch is written and what a failed batch means.

use std::future::Future;
use tokio::sync::{mpsc, oneshot};

/// How one kind of job is written, a batch at a time.
pub trait Commit<J>: Send + 'static {
    /// Writes `jobs` (at least one) and answers each through its reply, if it has one.
    fn commit(&mut self, jobs: Vec<J>) -> impl Future<Output = ()> + Send;
}

/// Why a job got no answer.
#[derive(Debug)]
pub enum Unanswered<J> {
    /// The writer task has stopped (shutting down); the job is handed back.
    Stopped(J),
    /// The writer dropped the job without answering.
    Dropped,
}

/// The handle callers use; cheap to clone. The writer ends when the last one is dropped.
#[derive(Debug)]
pub struct GroupCommit<J> {
    tx: mpsc::Sender<J>,
}

impl<J> Clone for GroupCommit<J> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<J: Send + 'static> GroupCommit<J> {
    /// Starts the writer task. At most `queue` jobs wait for it (beyond that callers wait
    /// for room: backpressure); each round takes at most `max_batch`.
    pub fn start<C: Commit<J>>(queue: usize, max_batch: usize, mut writer: C) -> Self {
        let (tx, mut rx) = mpsc::channel(queue);
        tokio::spawn(async move {
            let mut jobs: Vec<J> = Vec::with_capacity(max_batch);
            while rx.recv_many(&mut jobs, max_batch).await > 0 {
                writer.commit(std::mem::take(&mut jobs)).await;
            }
        });
        Self { tx }
    }

    /// Queues the job `make` builds around its reply and waits for the answer.
    pub async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> J,
    ) -> Result<T, Unanswered<J>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|mpsc::error::SendError(job)| Unanswered::Stopped(job))?;
        answer.await.map_err(|_| Unanswered::Dropped)
    }

    /// Queues a job nobody waits for; refused at once when the queue is full.
    pub fn try_push(&self, job: J) -> Result<(), mpsc::error::TrySendError<J>> {
        self.tx.try_send(job)
    }
}
