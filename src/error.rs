//! The error type of each HTTP boundary and its one mapping to a response: JSON for the
//! backend API, a page for browsers.

use crate::store::StoreError;
use crate::wechat::WechatError;
use askama::Template;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors of the backend JSON API, answered as `{"error":{"code","message",...}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        /// Extra machine-readable fields merged into the error object (e.g. `field`).
        details: Value,
    },
    #[error("{message}")]
    NotFound {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        /// Extra machine-readable fields merged into the error object.
        details: Value,
    },
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after_secs: Option<i64>,
    },
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// WeChat answered with an error retrying cannot fix; `errcode` is passed on.
    #[error("{message}")]
    WechatRefused {
        code: &'static str,
        message: String,
        errcode: i64,
    },
    /// WeChat refused for a reason in the caller's hands (a bad or used login code, a
    /// blocked person, a per-person rate limit): a 4xx carrying WeChat's `errcode`.
    #[error("{message}")]
    WechatRejected {
        status: StatusCode,
        code: &'static str,
        message: String,
        errcode: i64,
        retry_after_secs: Option<i64>,
    },
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Upstream(#[from] WechatError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// Adds machine-readable fields to the error object (where the variant carries them).
    pub fn with_details(mut self, extra: Value) -> Self {
        if let Self::Invalid { details, .. }
        | Self::NotFound { details, .. }
        | Self::Conflict { details, .. } = &mut self
        {
            *details = extra;
        }
        self
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized { code, .. } => (StatusCode::UNAUTHORIZED, code),
            Self::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::Gone { code, .. } => (StatusCode::GONE, code),
            Self::TooManyRequests { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            Self::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::WechatRefused { code, .. } => (StatusCode::BAD_GATEWAY, code),
            Self::WechatRejected { status, code, .. } => (*status, code),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, "wechat_error"),
            Self::Store(e) if e.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            Self::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

/// The body of every API error. `ApiError` is always answered through this type, so the
/// OpenAPI document's error schema is the one the service writes.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

/// What went wrong: a stable `code` to branch on and a `message` for people.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorObject {
    /// Stable and machine-readable, e.g. `invalid_body`, `no_identity`, `wechat_refused`.
    #[schema(example = "user_not_found")]
    pub code: String,
    /// For people; it may change between versions.
    #[schema(example = "no identity is bound to user 42")]
    pub message: String,
    /// WeChat's error code, when the refusal came from WeChat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// More fields for some codes: `field` and `rule` (`invalid_data`), `app`
    /// (`no_identity`), `existing_user_id`, `requested_user_id` and `via`
    /// (`identity_conflict`), `existing_id` (`idempotency_conflict`)...
    #[serde(flatten)]
    pub details: serde_json::Map<String, Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            Self::Store(e) => {
                tracing::error!(error = %e, "store failure while serving the API");
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    format!("the database is not answering ({e}); try again shortly")
                } else {
                    "internal error; the cause is in the service log".to_owned()
                }
            }
            Self::Upstream(e) => {
                tracing::warn!(error = %e, "WeChat call failed while serving the API");
                e.to_string()
            }
            other => other.to_string(),
        };
        let mut error = ErrorObject {
            code: code.to_owned(),
            message,
            errcode: None,
            details: serde_json::Map::new(),
        };
        if let Self::Conflict { details, .. }
        | Self::Invalid { details, .. }
        | Self::NotFound { details, .. } = &self
            && let Some(extra) = details.as_object()
        {
            error.details = extra.clone();
        }
        if let Self::Upstream(WechatError::Api { code, .. }) = &self {
            error.errcode = Some(code.code());
        }
        if let Self::WechatRefused { errcode, .. } | Self::WechatRejected { errcode, .. } = &self {
            error.errcode = Some(*errcode);
        }
        let mut response = (status, Json(ErrorBody { error })).into_response();
        if let Self::TooManyRequests {
            retry_after_secs: Some(secs),
            ..
        }
        | Self::WechatRejected {
            retry_after_secs: Some(secs),
            ..
        } = &self
            && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        response
    }
}

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

impl From<crate::token::TokenError> for ApiError {
    fn from(e: crate::token::TokenError) -> Self {
        use crate::store::ForceRefreshDenied;
        use crate::token::TokenError as T;
        let message = e.to_string();
        match e {
            T::UnknownApp(_) => ApiError::not_found("unknown_app", message),
            T::Unavailable { .. } => ApiError::Unavailable {
                code: "token_unavailable",
                message,
            },
            T::Refused { code, .. } => ApiError::WechatRefused {
                code: "wechat_refused",
                message,
                errcode: code.code(),
            },
            T::Quota { code, .. } => ApiError::WechatRefused {
                code: "wechat_quota",
                message,
                errcode: code.code(),
            },
            T::ForceRefreshBudget { denied, .. } => ApiError::TooManyRequests {
                code: "force_refresh_budget",
                message,
                retry_after_secs: match denied {
                    ForceRefreshDenied::TooSoon { retry_after_secs } => Some(retry_after_secs),
                    ForceRefreshDenied::DailyBudgetSpent => None,
                },
            },
            T::Store(e) => ApiError::Store(e),
        }
    }
}

/// Why a WeChat push was refused. WeChat reads only the status and a plain-text body, so
/// the answer is `code: message` as text; nothing secret is ever in it.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("no app named {0:?} is configured")]
    UnknownApp(String),
    #[error("push is not configured for app {0} (no push_token)")]
    NotConfigured(crate::domain::AppId),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("the signature does not match")]
    BadSignature,
    #[error("timestamp {timestamp} is outside the accepted window of {window_secs} s")]
    StaleTimestamp { timestamp: i64, window_secs: i64 },
    #[error("this timestamp, nonce and signature were already used by another push")]
    Replayed,
    #[error("push body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PushError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::UnknownApp(_) => (StatusCode::NOT_FOUND, "unknown_app"),
            Self::NotConfigured(_) => (StatusCode::NOT_FOUND, "push_not_configured"),
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
            Self::StaleTimestamp { .. } => (StatusCode::UNAUTHORIZED, "stale_timestamp"),
            Self::Replayed => (StatusCode::CONFLICT, "replayed"),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::Store(e) if e.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            Self::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "internal_error"),
        }
    }
}

impl From<crate::wechat::crypto::CryptoError> for PushError {
    fn from(e: crate::wechat::crypto::CryptoError) -> Self {
        use crate::wechat::crypto::CryptoError as C;
        let code = match e {
            C::BadKey => "bad_key",
            C::BadBase64 => "bad_base64",
            C::BadLength => "bad_length",
            C::BadPadding => "bad_padding",
            C::BadFraming => "bad_framing",
            C::WrongAppId => "wrong_appid",
            C::NotUtf8 => "not_utf8",
        };
        Self::bad_request(code, e.to_string())
    }
}

impl IntoResponse for PushError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            // Not stored, not acknowledged: WeChat retries, so nothing is lost.
            Self::Store(e) => {
                tracing::error!(error = %e, "store failure while receiving a push");
                "the database is not answering; WeChat will retry".to_owned()
            }
            other => {
                tracing::info!(code, "push refused: {other}");
                other.to_string()
            }
        };
        (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            format!("{code}: {message}"),
        )
            .into_response()
    }
}
