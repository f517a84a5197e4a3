//! Real wxlink processes, for the tests that kill, stop or multiply them.

use std::path::Path;
use std::time::Duration;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `wxlink serve` process on loopback.
pub struct Service {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Service {
    /// Starts the binary with `config` on a free port and waits until it answers.
    pub async fn start(config: &Path) -> Self {
        Self::start_on(config, free_port()).await
    }

    pub async fn start_on(config: &Path, port: u16) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxlink"))
            .args(["--config", config.to_str().unwrap()])
            .env("WXLINK_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("WXLINK_DATABASE_URL")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("wxlink exited at start-up ({status}); its stderr is above");
            }
            if let Ok(r) = client.get(format!("{base}/livez")).send().await
                && r.status().is_success()
            {
                return Self { child, base };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("wxlink did not start on port {port}");
    }

    /// SIGKILL: no shutdown, no goodbye.
    pub async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}
