//! Validated values. Each type can only be built through `parse`, so a handler or the
//! store that holds one knows it is well-formed.

mod ids;
mod oauth;
mod secret;

pub use ids::{AppId, OpenId, UnionId, UserId, WxAppId};
pub use oauth::{OAuthScope, OAuthState, ReturnTo, ReturnToAllowList, host_and_port};
pub use secret::{OneTimeCode, hash_token, random_alphanumeric};

/// Why a value was refused; the message is meant for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);
