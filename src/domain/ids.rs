//! Identifier newtypes: our app names, WeChat appids, openids, unionids, business user ids.

use super::ParseError;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

fn truncate_for_message(s: &str) -> String {
    s.chars().take(40).collect()
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

string_id!(
    /// Our short name for a configured app, used in routes (`oa`, `mp`).
    AppId, "app name", 32,
    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'),
    "use 1 to 32 lowercase letters, digits, '-' or '_'"
);

string_id!(
    /// A person's id in one WeChat app. WeChat's are 28 characters of base64url.
    OpenId, "openid", 64, is_id_char,
    "use 1 to 64 letters, digits, '-' or '_'"
);

string_id!(
    /// The id that joins one person's openids across apps of one Open Platform account.
    UnionId, "unionid", 64, is_id_char,
    "use 1 to 64 letters, digits, '-' or '_'"
);

string_id!(
    /// The company's own user id; opaque to us.
    UserId, "user id", 128,
    |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@'),
    "use 1 to 128 letters, digits or any of _ - . : @"
);

/// What a configured app is: an Official Account (web pages, template messages) or a
/// mini-program (logins, subscribe messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    OfficialAccount,
    MiniProgram,
}

impl AppKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OfficialAccount => "official_account",
            Self::MiniProgram => "mini_program",
        }
    }
}

/// A WeChat appid (`wx` followed by letters and digits).
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct WxAppId(String);

impl WxAppId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = s.len() >= 4
            && s.len() <= 32
            && s.starts_with("wx")
            && s.chars().all(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(ParseError(format!(
                "invalid WeChat appid {:?}: expected \"wx\" followed by letters and digits (at most 32 in all)",
                truncate_for_message(s)
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WxAppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WxAppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WxAppId({:?})", self.0)
    }
}

impl<'de> Deserialize<'de> for WxAppId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl OpenId {
    /// A shortened form for logs: enough to correlate, not enough to identify.
    pub fn redacted(&self) -> String {
        let head: String = self.0.chars().take(6).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn app_ids() {
        assert!(AppId::parse("oa").is_ok());
        assert!(AppId::parse("shop-mp_2").is_ok());
        assert!(AppId::parse("").is_err());
        assert!(AppId::parse("OA").is_err());
        assert!(AppId::parse("a/b").is_err());
        assert!(AppId::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn wx_app_ids() {
        assert!(WxAppId::parse("wx2c2769f8efd9abc2").is_ok());
        assert!(WxAppId::parse("wx").is_err());
        assert!(WxAppId::parse("ab2c2769f8efd9abc2").is_err());
        assert!(WxAppId::parse("wx2c27 69f8").is_err());
    }

    #[test]
    fn user_ids_refuse_path_and_control_characters() {
        assert!(UserId::parse("42").is_ok());
        assert!(UserId::parse("user:42@shop").is_ok());
        assert!(UserId::parse("../42").is_err());
        assert!(UserId::parse("4\n2").is_err());
        assert!(UserId::parse("4 2").is_err());
    }

    proptest! {
        #[test]
        fn openid_parse_accepts_exactly_its_alphabet(s in "\\PC{0,80}") {
            let expected = !s.is_empty() && s.len() <= 64
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            prop_assert_eq!(OpenId::parse(&s).is_ok(), expected);
            if let Ok(id) = OpenId::parse(&s) {
                prop_assert_eq!(id.as_str(), s.as_str());
            }
        }

        #[test]
        fn user_id_round_trips_through_json(s in "[A-Za-z0-9_.:@-]{1,128}") {
            let id = UserId::parse(&s).unwrap();
            let json = serde_json::to_string(&id).unwrap();
            let back: UserId = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, id);
        }
    }
}
