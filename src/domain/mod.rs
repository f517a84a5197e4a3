//! Validated values. Each type can only be built through `parse`, so a handler or the
//! store that holds one knows it is well-formed.

/// A string newtype that can only be built by `parse`, which checks length and alphabet.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allowed:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, $crate::domain::ParseError> {
                let allowed: fn(char) -> bool = $allowed;
                if s.is_empty() || s.len() > $max || !s.chars().all(allowed) {
                    return Err($crate::domain::ParseError(format!(
                        concat!("invalid ", $what, " {:?}: ", $rule),
                        s.chars().take(40).collect::<String>()
                    )));
                }
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod fields;
mod ids;
mod message;
mod oauth;
mod secret;

pub use fields::{FieldError, FieldKind, FieldValue};
pub use ids::{AppId, AppKind, OpenId, UnionId, UserId, WxAppId};
pub use message::{
    CardUrl, Category, Channel, Color, DataError, DataItem, IdempotencyKey, Lang, MessageData,
    MessageStatus, MiniProgramState, MiniProgramTarget, PagePath, Payload, RawDataValue,
    TemplateId, template_placeholders,
};
pub use oauth::{OAuthScope, OAuthState, ReturnTo, ReturnToAllowList, host_and_port};
pub use secret::{OneTimeCode, hash_token, random_alphanumeric};

/// Why a value was refused; the message is meant for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);
