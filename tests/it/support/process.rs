//! Real wxlink processes, for the tests that kill, stop or multiply them. Each listens on a
//! port the system picks (`127.0.0.1:0`) and names it in its start-up line, so no port is
//! chosen here and raced for.

use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The logs a test's wxlink process writes: warnings, and the start-up line naming the
/// port (`wxlink listening`, at info), as JSON lines on standard output.
const LOG_FILTER: &str = "warn,wxlink=info";

/// A `wxlink serve` process on loopback.
pub struct Service {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Service {
    /// Starts the binary with `config` on a port of the system's choosing and waits until
    /// it answers.
    pub async fn start(config: &Path) -> Self {
        spawn(config).await.ready().await
    }

    /// SIGKILL: no shutdown, no goodbye.
    pub async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// A wxlink process started but not yet known to answer: [`Starting::ready`] waits.
pub struct Starting {
    child: Child,
}

/// Starts `wxlink serve` with `config`, listening on `127.0.0.1:0`.
pub async fn spawn(config: &Path) -> Starting {
    let child = command(config).spawn().unwrap();
    Starting { child }
}

/// `wxlink serve` with `config` as the tests run it (listening on `127.0.0.1:0`, JSON logs
/// on standard output, no database or sandbox settings from the test's environment), for a
/// test to add its own environment to.
pub fn command(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wxlink"));
    c.args(["--config", config.to_str().unwrap()])
        .env("WXLINK_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", LOG_FILTER)
        .env("WXLINK_LOG_FORMAT", "json")
        .env_remove("DATABASE_URL")
        .env_remove("WXLINK_DATABASE_URL")
        .env_remove("WXLINK_SANDBOX")
        .env_remove("WXLINK_SANDBOX_ALLOW_PUBLIC")
        .env_remove("WXLINK_SANDBOX_RETURN_TO_ALLOW")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    c
}

impl Starting {
    /// A process started from [`command`].
    pub fn from_child(child: Child) -> Self {
        Self { child }
    }
}

impl Starting {
    /// Reads the port from the process's start-up line, then waits until `/livez` answers.
    pub async fn ready(mut self) -> Service {
        let stdout = self.child.stdout.take().unwrap();
        let port = match tokio::time::timeout(Duration::from_secs(15), announced(stdout, port_of))
            .await
        {
            Ok(Some(port)) => port,
            Ok(None) => match self.child.wait().await {
                Ok(status) => panic!("wxlink exited at start-up ({status}); its stderr is above"),
                Err(e) => panic!("wxlink closed its output at start-up: {e}"),
            },
            Err(_) => panic!("wxlink did not say where it listens within 15 s"),
        };
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("wxlink exited at start-up ({status}); its stderr is above");
            }
            if let Ok(r) = client.get(format!("{base}/livez")).send().await
                && r.status().is_success()
            {
                return Service {
                    child: self.child,
                    base,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("wxlink did not answer on port {port}");
    }
}

/// The port in wxlink's start-up log line.
pub fn port_of(line: &str) -> Option<u16> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v["target"] != "wxlink" || v["fields"]["message"] != "wxlink listening" {
        return None;
    }
    v["fields"]["port"].as_u64()?.try_into().ok()
}

/// Reads `output` line by line until `pick` finds what it looks for, then keeps reading
/// (and dropping) the rest in the background, so the process never blocks on a full pipe
/// nor fails writing to a closed one. `None` when the output ended first.
pub async fn announced<T>(
    output: impl AsyncRead + Unpin + Send + 'static,
    pick: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(found) = pick(&line) {
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Some(found);
        }
    }
    None
}
