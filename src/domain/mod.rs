//! Validated values. Each type can only be built through `parse`, so a handler or the
//! store that holds one knows it is well-formed. The ones the store keeps are bound and
//! read by sqlx as text on both backends ([`stored_as_text!`]); a stored value that no
//! longer parses is a decode error naming its column.

/// Binds and reads a type as a text column on every sqlx backend: written as its
/// `as_str()`, read back through its `parse`.
macro_rules! stored_as_text {
    ($name:ty) => {
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode(self.as_str().to_owned(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <String as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(Self::parse(&text)?)
            }
        }
    };
}

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

        stored_as_text!($name);

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use stored_as_text;

mod custom;
pub mod fields;
mod ids;
mod js_sdk;
mod message;
mod oauth;
mod secret;
mod webhook;

pub use custom::{CardDescription, CardTitle, CustomContent, CustomMessage, MediaId};
pub use fields::{FieldError, FieldKind, FieldValue};
pub use ids::{AppId, AppKind, OpenId, UnionId, UserId, WxAppId};
pub use js_sdk::{JsPageUrl, JsSafeDomain, JsSafeDomains, MAX_JS_SAFE_DOMAINS, TicketKind};
pub use message::{
    CardUrl, Category, Channel, Color, DataError, DataItem, IdempotencyKey, Lang, MessageData,
    MessageId, MessageStatus, MiniProgramState, MiniProgramTarget, PagePath, Payload, RawDataValue,
    TemplateId, template_placeholders,
};
pub use oauth::{OAuthScope, OAuthState, ReturnTo, ReturnToAllowList, host_and_port};
pub use secret::{OneTimeCode, hash_token, random_alphanumeric};
pub use webhook::{EventId, EventType, NewEvent};

/// Why a value was refused; the message is meant for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);
