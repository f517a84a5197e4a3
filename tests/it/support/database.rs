//! The tests' databases: a fresh SQLite file or PostgreSQL database per test, and a proxy
//! in front of PostgreSQL that a test can cut to play an outage.

use std::path::Path;

/// The PostgreSQL server tests may use, from `WXLINK_TEST_POSTGRES_URL` (set by `.ci/run`).
/// Without it, PostgreSQL tests say they were skipped.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("WXLINK_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        // Straight to stderr: the test harness would swallow eprintln!.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: WXLINK_TEST_POSTGRES_URL is not set, so this PostgreSQL test did not run (.ci/run sets it)"
        );
    }
    url
}

/// Creates an empty database on the server and returns its URL.
pub async fn fresh_postgres_database(server: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .expect("PostgreSQL reachable");
    let name = format!(
        "wxlink_test_{}",
        wxlink::domain::OneTimeCode::generate()
            .expose()
            .to_lowercase()
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// The database of one in-process test service: a fresh database on `postgres` when given,
/// or on `WXLINK_TEST_POSTGRES_URL` when `WXLINK_TEST_ALL_ON_POSTGRES=1` runs every test on
/// PostgreSQL; otherwise a SQLite file in `dir`.
pub async fn test_database(postgres: Option<String>, dir: &Path) -> String {
    let everything_on_postgres = std::env::var("WXLINK_TEST_ALL_ON_POSTGRES").as_deref() == Ok("1");
    let server = postgres.or_else(|| {
        everything_on_postgres
            .then(|| std::env::var("WXLINK_TEST_POSTGRES_URL").ok())
            .flatten()
    });
    match &server {
        Some(server) => fresh_postgres_database(server).await,
        None => format!("sqlite://{}", dir.join("wxlink.db").display()),
    }
}

/// A TCP forwarder in front of PostgreSQL that a test can cut and restore: a database
/// outage without touching the server every other test uses.
pub struct DbProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl DbProxy {
    pub async fn start(target: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (u, g) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                let mut cut = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            generation,
        }
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by this proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(self.port)).unwrap();
        u.to_string()
    }
}
