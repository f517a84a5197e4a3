//! Other people's code run against wxlink: scripts in Python and Node.js (and Java) under
//! `tests/peers/` and `recipes/`, with the third-party libraries `.ci/run` installs pinned
//! into `target/ci-peers/` (on `PATH` and `NODE_PATH` there). Where a library is missing a
//! test says `SKIPPED`, unless `WXLINK_TEST_REQUIRE_PEERS=1` (set by `.ci/run`) makes it fail.

use super::sim::SimClient;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// An interpreter and the libraries a script needs from it.
#[derive(Clone, Copy)]
pub struct Peer {
    pub program: &'static str,
    /// Loads the libraries and exits 0 when they are all there.
    pub probe: &'static str,
    /// What the libraries are, for the SKIPPED line.
    pub needs: &'static str,
}

impl Peer {
    pub const fn python(probe: &'static str, needs: &'static str) -> Self {
        Self {
            program: "python3",
            probe,
            needs,
        }
    }

    pub const fn node(probe: &'static str, needs: &'static str) -> Self {
        Self {
            program: "node",
            probe,
            needs,
        }
    }

    /// Whether the interpreter and its libraries are here; `false` after printing
    /// `SKIPPED`, a failed test when they are required.
    pub async fn available(&self, what: &str) -> bool {
        let flag = if self.program == "node" { "-e" } else { "-c" };
        let ok = Command::new(self.program)
            .args([flag, self.probe])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !ok {
            skipped(&format!("{} without {}", self.program, self.needs), what);
        }
        ok
    }

    /// Runs `script` (a path from the repository root) with `env`; its standard output.
    /// Fails the test, with the script's standard error, when it exits non-zero.
    pub async fn run(&self, script: &str, env: &[(&str, String)]) -> String {
        let mut cmd = Command::new(self.program);
        cmd.arg(root().join(script))
            .current_dir(root())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{script} ran over 60 s"))
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// [`Self::run`], the output read as one JSON object (the last line).
    pub async fn run_json(&self, script: &str, env: &[(&str, String)]) -> Value {
        let out = self.run(script, env).await;
        let last = out.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{script} printed {out:?}: {e}"))
    }
}

/// A peer check that cannot run here: says so, or fails when `.ci/run` requires peers.
pub fn skipped(why: &str, what: &str) {
    assert!(
        std::env::var("WXLINK_TEST_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{why}, and WXLINK_TEST_REQUIRE_PEERS=1 (set by .ci/run) requires it: {what}"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}; {what} was not checked");
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// A real `wxlink sim` process on a port of the system's choosing, killed when dropped.
pub async fn wxlink_sim() -> (Child, SimClient) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wxlink"))
        .args(["sim", "--listen", "127.0.0.1:0"])
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let base = super::process::announced(child.stdout.take().unwrap(), |line| {
        line.strip_prefix("WeChat simulator on ").map(str::to_owned)
    })
    .await
    .expect("the simulator says where it listens");
    (child, SimClient::new(base))
}

/// A real sandbox (`wxlink` with no configuration) in a folder of its own, on a port of the
/// system's choosing, answering to `key`; killed when dropped.
pub struct Sandbox {
    pub base: String,
    pub key: String,
    /// Where it runs (its `wxlink.db`); scripts run here too.
    pub dir: tempfile::TempDir,
    _child: Child,
}

impl Sandbox {
    pub async fn start(key: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wxlink"))
            .current_dir(dir.path())
            .env("WXLINK_SANDBOX_API_KEY", key)
            .env("WXLINK_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .env_remove("WXLINK_CONFIG")
            .env_remove("DATABASE_URL")
            .env_remove("WXLINK_DATABASE_URL")
            .kill_on_drop(true)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // "wxlink sandbox: SQLite at ..., WeChat simulator at http://127.0.0.1:PORT/sim"
        let base = super::process::announced(child.stdout.take().unwrap(), |line| {
            let (_, sim) = line.split_once("WeChat simulator at ")?;
            sim.strip_suffix("/sim").map(str::to_owned)
        })
        .await
        .expect("the sandbox names its simulator's URL");
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http
                .get(format!("{base}/livez"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Self {
            base,
            key: key.to_owned(),
            dir,
            _child: child,
        }
    }
}

/// `PATH` with the wxlink binary under test first.
pub fn path_with_wxlink() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_wxlink")).parent().unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}
