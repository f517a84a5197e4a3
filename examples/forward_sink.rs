//! The push-forwarding benchmark's downstream (bench/push-forward.sh): stands in for an
//! account's existing handler, answering every push `success` after a fixed delay (0: at
//! once). It does not verify signatures: the benchmark measures wxlink, not the handler.
//! `GET /stats` reports how many pushes arrived.
//!
//! Usage: forward_sink [listen] [delay_ms]   (default 127.0.0.1:19292, 0)

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct Sink {
    delay: Duration,
    pushes: AtomicU64,
}

async fn push(State(s): State<Arc<Sink>>) -> &'static str {
    s.pushes.fetch_add(1, Ordering::Relaxed);
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    "success"
}

async fn stats(State(s): State<Arc<Sink>>) -> String {
    format!("pushes={}\n", s.pushes.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:19292".into());
    let delay_ms: u64 = args.next().map_or(0, |d| d.parse().expect("delay_ms"));
    let sink = Arc::new(Sink {
        delay: Duration::from_millis(delay_ms),
        pushes: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/wechat", post(push))
        .route("/stats", axum::routing::get(stats))
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .expect("listen");
    axum::serve(listener, app).await.expect("serve");
}
