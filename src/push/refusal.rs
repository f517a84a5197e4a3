//! Why a push is not taken: each check of [`super::inbound`] and the replay key has its
//! variant, and the message is the reason WeChat's logs and operators read. The push route
//! in `http::push` gives each its code and status.

use crate::domain::AppId;
use crate::store::StoreError;
use crate::wechat::crypto::CryptoError;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("push is not configured for app {0} (no push_token)")]
    NotConfigured(AppId),
    #[error("the query has no `{0}`")]
    MissingParameter(&'static str),
    #[error("timestamp is not a number")]
    BadTimestamp,
    #[error("nonce is too long")]
    BadNonce,
    #[error("encrypt_type must be aes")]
    BadEncryptType,
    #[error("the body is not UTF-8")]
    NotUtf8,
    /// The body, or the decrypted message (then the reason says so), is not WeChat's XML.
    #[error("{0}")]
    MalformedXml(String),
    #[error("the body has no <Encrypt>")]
    MissingEncrypt,
    #[error("the signature does not match")]
    BadSignature,
    #[error("this app is configured for safe mode: pushes must be encrypted")]
    EncryptionRequired,
    #[error("timestamp {timestamp} is outside the accepted window of {window_secs} s")]
    StaleTimestamp { timestamp: i64, window_secs: i64 },
    #[error("an encrypted push arrived but this app has no encoding_aes_key")]
    NoEncodingAesKey,
    /// The ciphertext does not open (with either key), or is for another appid.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The message lacks a field every push has.
    #[error("{0}")]
    MalformedPush(String),
    #[error("this timestamp, nonce and signature were already used by another push")]
    Replayed,
}

/// Why a push was not stored: refused, or the store failed (then WeChat retries).
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}
