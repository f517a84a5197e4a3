//! The push endpoint's error and its one mapping to a response. WeChat reads only the
//! status and a plain-text body, so the answer is `code: message` as text; nothing secret
//! is ever in it.

use super::PushCode;
use crate::config::UnknownApp;
use crate::push::{ReceiveError, Refusal};
use crate::store::StoreError;
use crate::wechat::crypto::CryptoError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a WeChat push was refused.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{message}")]
    Coded { code: PushCode, message: String },
    /// Not stored, not acknowledged: WeChat retries, so nothing is lost.
    #[error(transparent)]
    Store(StoreError),
}

impl PushError {
    pub fn new(code: PushCode, message: impl Into<String>) -> Self {
        Self::Coded {
            code,
            message: message.into(),
        }
    }

    /// The code this error is answered with.
    pub fn code(&self) -> PushCode {
        match self {
            Self::Coded { code, .. } => *code,
            Self::Store(e) if e.is_unavailable() => PushCode::DatabaseUnavailable,
            Self::Store(e) if e.is_full() => PushCode::StorageFull,
            Self::Store(_) => PushCode::InternalError,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }
}

impl From<UnknownApp> for PushError {
    fn from(e: UnknownApp) -> Self {
        Self::new(PushCode::UnknownApp, e.to_string())
    }
}

/// The one mapping of the push checks' refusals to the endpoint's codes.
impl From<Refusal> for PushError {
    fn from(r: Refusal) -> Self {
        use PushCode as C;
        let code = match &r {
            Refusal::NotConfigured(_) => C::NotConfigured,
            Refusal::MissingParameter(_) => C::MissingParameter,
            Refusal::BadTimestamp => C::BadTimestamp,
            Refusal::BadNonce => C::BadNonce,
            Refusal::BadEncryptType => C::BadEncryptType,
            Refusal::NotUtf8 => C::NotUtf8,
            Refusal::MalformedXml(_) => C::MalformedXml,
            Refusal::MissingEncrypt => C::MissingEncrypt,
            Refusal::BadSignature => C::BadSignature,
            Refusal::EncryptionRequired => C::EncryptionRequired,
            Refusal::StaleTimestamp { .. } => C::StaleTimestamp,
            Refusal::NoEncodingAesKey => C::NoEncodingAesKey,
            Refusal::Crypto(e) => match e {
                CryptoError::BadKey => C::BadKey,
                CryptoError::BadBase64 => C::BadBase64,
                CryptoError::BadLength => C::BadLength,
                CryptoError::BadPadding => C::BadPadding,
                CryptoError::BadFraming => C::BadFraming,
                CryptoError::WrongAppId => C::WrongAppid,
                CryptoError::NotUtf8 => C::NotUtf8,
            },
            Refusal::MalformedPush(_) => C::MalformedPush,
            Refusal::Replayed => C::Replayed,
        };
        Self::new(code, r.to_string())
    }
}

impl From<ReceiveError> for PushError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::Refused(r) => r.into(),
            ReceiveError::Store(e) => Self::Store(e),
        }
    }
}

impl IntoResponse for PushError {
    fn into_response(self) -> Response {
        let code = self.code();
        let message = match &self {
            Self::Store(e) => {
                tracing::error!(error = %e, "store failure while receiving a push");
                "the database is not answering; WeChat will retry".to_owned()
            }
            other => {
                tracing::info!(code = code.code(), "push refused: {other}");
                other.to_string()
            }
        };
        (
            code.status(),
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            format!("{}: {message}", code.code()),
        )
            .into_response()
    }
}
