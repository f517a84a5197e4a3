//! Group commit for the records of forwards ([`ForwardWrite`]): each forwarded push claims
//! its forward before it goes and records how it ended after, and one writer task writes
//! whatever claims and finishes have queued up in one transaction, then answers each. The
//! push writer does the same for the pushes themselves ([`super::writer`]).

use crate::store::{Commit, ForwardWrite, GroupCommit, Store, StoreError};
use tokio::sync::oneshot;

/// Writes taken per round at most.
const MAX_BATCH: usize = 256;
/// Writes waiting for the writer at most; beyond it forwards wait (backpressure).
const QUEUE: usize = 4096;

type Job = (ForwardWrite, oneshot::Sender<Result<bool, StoreError>>);

/// The handle forwards use; cheap to clone.
#[derive(Clone)]
pub struct ForwardWriter {
    writer: GroupCommit<Job>,
}

impl ForwardWriter {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub fn start(store: Store) -> Self {
        Self {
            writer: GroupCommit::start(QUEUE, MAX_BATCH, Writer { store }),
        }
    }

    /// Writes one claim or finish (committed when this returns `Ok`); whether it took, as
    /// [`Store::write_forwards`] says.
    pub async fn write(&self, write: ForwardWrite) -> Result<bool, StoreError> {
        self.writer
            .call(|reply| (write, reply))
            .await
            .map_err(|_| StoreError::Batch("the forward writer has stopped".into()))?
    }
}

struct Writer {
    store: Store,
}

impl Commit<Job> for Writer {
    async fn commit(&mut self, jobs: Vec<Job>) {
        let (writes, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        match self.store.write_forwards(&writes).await {
            Ok(took) => {
                for (reply, took) in replies.into_iter().zip(took) {
                    let _ = reply.send(Ok(took));
                }
            }
            Err(e) => {
                // Each caller logs what the failure means for its push; say the cause once.
                tracing::error!(error = %e, writes = writes.len(), "writing a batch of forward records failed");
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Batch(msg.clone())));
                }
            }
        }
    }
}
