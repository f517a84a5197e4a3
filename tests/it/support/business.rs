//! The business's own backend, as far as a person's browser meets it: a `return_to` page on
//! loopback that shows what it was handed (`wxlink_code`, `wxlink_error`, `client_state`).

use axum::extract::RawQuery;
use axum::response::Html;

/// A running business site; its pages live under `{base}/back`.
pub struct Business {
    pub base: String,
    _stop: tokio_util::sync::DropGuard,
}

impl Business {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let stop = tokio_util::sync::CancellationToken::new();
        let app = axum::Router::new().route("/back", axum::routing::get(back));
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
        });
        Self {
            base,
            _stop: stop.drop_guard(),
        }
    }

    /// The `return_to` to hand wxlink.
    pub fn return_to(&self) -> String {
        format!("{}/back", self.base)
    }
}

async fn back(RawQuery(q): RawQuery) -> Html<String> {
    let items: String = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| format!("<li id=\"{k}\">{k}={v}</li>"))
        .collect();
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>商户</title><main data-outcome=\"business\"><h1>商户页面</h1><ul>{items}</ul></main>"
    ))
}
