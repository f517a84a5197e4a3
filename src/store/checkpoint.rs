//! WAL checkpoints off the writer's path. SQLite's own checkpoint runs inside the commit
//! that crosses `wal_autocheckpoint` pages: that commit copies the WAL into the database
//! file and syncs both, and every write queued behind the one writer waits for it (the
//! accept benchmark's p99 at 1,000 requests/s was those commits). Here a reader
//! connection checkpoints a little and often, so the writer's threshold, kept as a safety
//! net should this task stall, is never reached.

use super::{Db, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the WAL is copied back into the database file. At the send benchmark's rate
/// a checkpoint then copies a few hundred pages, well under the writer's threshold.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// The writer's own threshold, in pages: only reached when [`Store::spawn_checkpointer`]
/// falls behind (SQLite's default is 1,000).
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: &str = "10000";

impl Store {
    /// Checkpoints the WAL every [`CHECKPOINT_INTERVAL`] until `stop`. PASSIVE: it never
    /// waits for the writer or readers, copies what no reader still needs, and costs
    /// nothing when there is nothing new.
    pub fn spawn_checkpointer(&self, stop: CancellationToken) {
        let (Some(_), Db::Sqlite(readers)) = (&self.file, &self.db) else {
            return;
        };
        let (store, readers) = (self.clone(), readers.clone());
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
                }
                if store.file_problem().is_some() {
                    return;
                }
                match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&readers)
                    .await
                {
                    Ok(_) => failing = false,
                    // Said once per run of failures; the writer's threshold still bounds the WAL.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "WAL checkpoint failed; the writer checkpoints by itself at its threshold");
                    }
                    Err(_) => {}
                }
            }
        });
    }
}
