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

/// Every value of every column of every table, as text, one `table.column: value` line
/// each: what someone who can read the database (or a backup of it) sees. Bytes are shown
/// as they are, so a secret stored in clear in a BLOB is found too.
pub async fn dump_database(url: &str) -> String {
    use sqlx::Connection;
    let mut out = String::new();
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let tables: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&mut c)
                .await
                .unwrap();
        for (table,) in tables {
            let columns: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            for (column,) in columns {
                let values: Vec<(Option<Vec<u8>>,)> = sqlx::query_as(&format!(
                    "SELECT CAST(\"{column}\" AS BLOB) FROM \"{table}\""
                ))
                .fetch_all(&mut c)
                .await
                .unwrap();
                for (v,) in values.into_iter().filter_map(|(v,)| v.map(|v| (v,))) {
                    out.push_str(&format!(
                        "{table}.{column}: {}\n",
                        String::from_utf8_lossy(&v)
                    ));
                }
            }
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        for (table, column, ty) in columns {
            let expr = if ty == "bytea" {
                format!("encode(\"{column}\", 'escape')")
            } else {
                format!("CAST(\"{column}\" AS TEXT)")
            };
            let values: Vec<(Option<String>,)> =
                sqlx::query_as(&format!("SELECT {expr} FROM \"{table}\""))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            for v in values.into_iter().filter_map(|(v,)| v) {
                out.push_str(&format!("{table}.{column}: {v}\n"));
            }
        }
    }
    out
}
