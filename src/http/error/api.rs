//! The backend JSON API's error and its one mapping to a response:
//! `{"error":{"code","message",...}}` with the status the code has in the catalogue.

use super::ErrorCode;
use crate::store::StoreError;
use crate::wechat::WechatError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Errors of the backend JSON API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal: its code says what it is and decides the status.
    #[error("{message}")]
    Coded {
        code: ErrorCode,
        message: String,
        /// Extra machine-readable fields merged into the error object (e.g. `field`).
        details: Map<String, Value>,
        /// WeChat's error code, when WeChat refused.
        errcode: Option<i64>,
        /// Sent as `Retry-After`.
        retry_after_secs: Option<i64>,
    },
    /// WeChat failed to answer, or answered with an error not mapped to a refusal.
    #[error(transparent)]
    Upstream(#[from] WechatError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Coded {
            code,
            message: message.into(),
            details: Map::new(),
            errcode: None,
            retry_after_secs: None,
        }
    }

    /// Adds machine-readable fields (a JSON object) to the error object.
    pub fn with_details(mut self, extra: Value) -> Self {
        if let Self::Coded { details, .. } = &mut self
            && let Value::Object(extra) = extra
        {
            *details = extra;
        }
        self
    }

    /// Passes on WeChat's error code.
    pub fn with_errcode(mut self, code: i64) -> Self {
        if let Self::Coded { errcode, .. } = &mut self {
            *errcode = Some(code);
        }
        self
    }

    /// Tells the caller when to try again (`Retry-After`).
    pub fn retry_after(mut self, secs: Option<i64>) -> Self {
        if let Self::Coded {
            retry_after_secs, ..
        } = &mut self
        {
            *retry_after_secs = secs;
        }
        self
    }

    /// The code this error is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Coded { code, .. } => *code,
            Self::Upstream(_) => ErrorCode::WechatError,
            Self::Store(e) if e.is_unavailable() => ErrorCode::DatabaseUnavailable,
            Self::Store(e) if e.is_full() => ErrorCode::StorageFull,
            Self::Store(_) => ErrorCode::InternalError,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.code().status()
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
    pub details: Map<String, Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let (message, details, errcode, retry_after_secs) = match self {
            Self::Coded {
                message,
                details,
                errcode,
                retry_after_secs,
                ..
            } => (message, details, errcode, retry_after_secs),
            Self::Store(e) => {
                tracing::error!(error = %e, "store failure while serving the API");
                let message = if code == ErrorCode::DatabaseUnavailable {
                    format!("the database is not answering ({e}); try again shortly")
                } else if code == ErrorCode::StorageFull {
                    "the database's disk is full: nothing was stored; try again once there is room"
                        .to_owned()
                } else {
                    "internal error; the cause is in the service log".to_owned()
                };
                (message, Map::new(), None, None)
            }
            Self::Upstream(e) => {
                tracing::warn!(error = %e, "WeChat call failed while serving the API");
                let errcode = match &e {
                    WechatError::Api { code, .. } => Some(code.code()),
                    _ => None,
                };
                (e.to_string(), Map::new(), errcode, None)
            }
        };
        let error = ErrorObject {
            code: code.code().to_owned(),
            message,
            errcode,
            details,
        };
        let mut response = (code.status(), Json(ErrorBody { error })).into_response();
        if let Some(secs) = retry_after_secs
            && let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<crate::token::TokenError> for ApiError {
    fn from(e: crate::token::TokenError) -> Self {
        use crate::store::ForceRefreshDenied;
        use crate::token::TokenError as T;
        let message = e.to_string();
        match e {
            T::UnknownApp(_) => ApiError::new(ErrorCode::UnknownApp, message),
            T::Unavailable { .. } => ApiError::new(ErrorCode::TokenUnavailable, message),
            T::Refused { code, .. } => {
                ApiError::new(ErrorCode::WechatRefused, message).with_errcode(code.code())
            }
            T::Quota { code, .. } => {
                ApiError::new(ErrorCode::WechatQuota, message).with_errcode(code.code())
            }
            T::ForceRefreshBudget { denied, .. } => {
                ApiError::new(ErrorCode::ForceRefreshBudget, message).retry_after(match denied {
                    ForceRefreshDenied::TooSoon { retry_after_secs } => Some(retry_after_secs),
                    ForceRefreshDenied::DailyBudgetSpent => None,
                })
            }
            T::InvalidationLimit {
                retry_after_secs, ..
            } => ApiError::new(ErrorCode::InvalidationLimit, message)
                .retry_after(Some(retry_after_secs)),
            T::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<crate::ticket::TicketError> for ApiError {
    fn from(e: crate::ticket::TicketError) -> Self {
        use crate::ticket::TicketError as T;
        let message = e.to_string();
        match e {
            T::UnknownApp(_) => ApiError::new(ErrorCode::UnknownApp, message),
            T::NotOfficialAccount(_) => ApiError::new(ErrorCode::NotWebApp, message),
            T::Token(e) => e.into(),
            T::Quota { code, .. } => {
                ApiError::new(ErrorCode::WechatQuota, message).with_errcode(code.code())
            }
            T::Refused { code, .. } => {
                ApiError::new(ErrorCode::WechatRefused, message).with_errcode(code.code())
            }
            T::Unavailable { .. } => ApiError::new(ErrorCode::TicketUnavailable, message),
            T::Store(e) => ApiError::Store(e),
        }
    }
}
