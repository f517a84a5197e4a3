//! The baseline of the access-token benchmark: the most trivial axum route, served the same
//! way as wxlink (tokio multi-thread runtime, axum::serve), answering a small JSON body.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into());
    let app = Router::new().route(
        "/",
        get(|| async { Json(json!({"access_token": "x", "expires_at": 0})) }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("trivial server on http://{addr}");
    axum::serve(listener, app).await
}
