//! The SQLite file behind the open handles. Deleted or replaced while the service runs,
//! SQLite goes on writing into the unlinked file: every write succeeds and is lost at the
//! next start. So the file is watched (by device and inode), and once it is gone nothing
//! more is acknowledged: the writers are closed and readiness says why.

use super::{Db, Store, StoreError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the idle file is looked at; the write paths that acknowledge (accepted
/// messages, stored pushes) look after every commit as well.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub(crate) struct DbFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    lost: AtomicBool,
}

impl DbFile {
    /// The file behind `path` as it is now; `None` for an in-memory database.
    pub(crate) fn open(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            lost: AtomicBool::new(false),
        })
    }

    /// Why writes can no longer be kept, if they cannot. Once lost, always lost: a file
    /// put back at the path is not the one the open handles write into.
    fn problem(&self) -> Option<String> {
        let now = match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("deleted"),
            Err(_) => Some("no longer readable"),
            Ok(m) if (m.dev(), m.ino()) != (self.dev, self.ino) => Some("replaced by another file"),
            Ok(_) => None,
        };
        if let Some(what) = now {
            self.lost.store(true, Ordering::Relaxed);
            return Some(format!(
                "the database file {} was {what} while the service ran: writes since are lost; restore the file or point database_url at a new one, and restart",
                self.path.display()
            ));
        }
        self.lost.load(Ordering::Relaxed).then(|| {
            format!(
                "the database file {} was deleted or replaced while the service ran; restart",
                self.path.display()
            )
        })
    }
}

impl Store {
    /// Why the database cannot keep writes (its file deleted or replaced), if so: what
    /// `/readyz` reports.
    pub fn file_problem(&self) -> Option<String> {
        self.file.as_ref().and_then(|f| f.problem())
    }

    /// A write that returned Ok, checked: if the file went away, the write is not kept and
    /// the caller must not acknowledge it.
    pub fn kept<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.note_write(&r);
        match (r, self.file_problem()) {
            (Ok(_), Some(why)) => Err(StoreError::Lost(why)),
            (r, _) => r,
        }
    }

    /// Looks at the file every [`WATCH_INTERVAL`] until `stop`; when it is gone, logs it
    /// once and closes the writers, so every write is refused (503) from then on.
    pub fn spawn_file_watch(&self, stop: CancellationToken) {
        let (Some(_), Db::Sqlite(write)) = (&self.file, &self.write) else {
            return;
        };
        let (store, write) = (self.clone(), write.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                }
                if let Some(why) = store.file_problem() {
                    tracing::error!(problem = %why, "the database file is gone: every write is refused from now on");
                    write.close().await;
                    return;
                }
            }
        });
    }
}
