//! The browser's answer: a page rendered by `templates/page.html`, carrying its outcome in
//! `data-outcome`.

use crate::store::StoreError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// A link shown on a page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageLink {
    pub href: String,
    pub label: String,
}

/// A browser-facing answer: a result or an error, rendered by `templates/page.html`.
/// Serializable so that a repeated OAuth callback can be answered with the same page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    pub status: u16,
    /// Machine-readable outcome, also written into the page (`data-outcome`).
    pub outcome: String,
    pub title: String,
    pub message: String,
    pub details: Vec<String>,
    pub link: Option<PageLink>,
}

impl Page {
    pub fn new(status: StatusCode, outcome: &str, title: &str, message: impl Into<String>) -> Self {
        Self {
            status: status.as_u16(),
            outcome: outcome.to_owned(),
            title: title.to_owned(),
            message: message.into(),
            details: Vec::new(),
            link: None,
        }
    }

    pub fn detail(mut self, line: impl Into<String>) -> Self {
        self.details.push(line.into());
        self
    }

    pub fn link(mut self, href: impl Into<String>, label: impl Into<String>) -> Self {
        self.link = Some(PageLink {
            href: href.into(),
            label: label.into(),
        });
        self
    }
}

#[derive(Template)]
#[template(path = "page.html")]
struct PageTemplate<'a> {
    page: &'a Page,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match (PageTemplate { page: &self }).render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "page template failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

impl From<StoreError> for Page {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure while serving a page");
        Page::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_error",
            "服务暂时不可用 / Service unavailable",
            "Something went wrong on our side. Please try again in a moment.",
        )
    }
}
