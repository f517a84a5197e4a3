//! Values of a notification: message ids, template ids, channels, categories, idempotency keys, and the
//! message data whose values have passed WeChat's field rules (see [`super::fields`]).

use super::ParseError;
use super::fields::{FieldError, FieldValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

string_id!(
    /// A WeChat template id (Official Account template, subscribe or legacy template).
    TemplateId, "template_id", 128,
    |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'),
    "use 1 to 128 letters, digits, '-' or '_'"
);

string_id!(
    /// A notification category a user can mute (`marketing`, `orders`, ...).
    Category, "category", 32,
    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'),
    "use 1 to 32 lowercase letters, digits, '-' or '_'"
);

string_id!(
    /// The caller's `Idempotency-Key`; also WeChat's `client_msg_id` for template messages.
    IdempotencyKey, "Idempotency-Key", 64,
    |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'),
    "use 1 to 64 letters, digits or any of _ - . :"
);

/// A message's id: `m`, the time it was accepted as 12 hex digits of Unix milliseconds,
/// and 10 random letters and digits. Ids sort by acceptance time, so a time range is a
/// range of the primary key and pages run newest first by id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String)]
pub struct MessageId(String);

impl MessageId {
    /// A fresh id for a message accepted at `at_ms`.
    pub fn generate(at_ms: i64) -> Self {
        Self(format!(
            "{}{}",
            Self::first_at(at_ms).0,
            super::random_alphanumeric(10)
        ))
    }

    /// The smallest id of any message accepted at or after `at_ms`.
    pub fn first_at(at_ms: i64) -> Self {
        Self(format!("m{:012x}", at_ms.max(0)))
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = s.len() >= 2
            && s.len() <= 64
            && s.starts_with('m')
            && s.chars().all(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(ParseError(format!(
                "invalid message id {:?}: expected \"m\" followed by letters and digits (at most 64 in all)",
                s.chars().take(40).collect::<String>()
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({:?})", self.0)
    }
}

stored_as_text!(MessageId);
stored_as_text!(Channel);
stored_as_text!(MessageStatus);

/// How a message reaches the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Official Account template message.
    Template,
    /// Mini-program subscribe message.
    Subscribe,
    /// Legacy mini-program template message with a form_id / prepay_id.
    Form,
    /// Official Account customer-service message, within the person's interaction window.
    Custom,
    /// Official Account subscribe notification (订阅通知, `message/subscribe/bizsend`).
    OaSubscribe,
}

impl Channel {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "template" => Ok(Self::Template),
            "subscribe" => Ok(Self::Subscribe),
            "form" => Ok(Self::Form),
            "custom" => Ok(Self::Custom),
            "oa_subscribe" => Ok(Self::OaSubscribe),
            other => Err(ParseError(format!(
                "unknown channel {:?}: use template, subscribe, form, custom, oa_subscribe or auto",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Template => "template",
            Self::Subscribe => "subscribe",
            Self::Form => "form",
            Self::Custom => "custom",
            Self::OaSubscribe => "oa_subscribe",
        }
    }

    /// Which kind of app sends on this channel.
    pub fn app_kind(self) -> super::AppKind {
        match self {
            Self::Template | Self::Custom | Self::OaSubscribe => super::AppKind::OfficialAccount,
            Self::Subscribe | Self::Form => super::AppKind::MiniProgram,
        }
    }

    /// Whether a send spends a subscribe acceptance from the ledger (and 43101 clears it).
    pub fn uses_ledger(self) -> bool {
        matches!(self, Self::Subscribe | Self::OaSubscribe)
    }

    /// Whether the card opens a web page (`url`) or a mini-program page (`miniprogram`):
    /// the Official Account's channels.
    pub fn opens_cards(self) -> bool {
        matches!(self, Self::Template | Self::OaSubscribe)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a message is: `queued -> sending -> sent -> delivered | failed`, or `rejected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Failed,
    Rejected,
}

impl MessageStatus {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Ok(match s {
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "rejected" => Self::Rejected,
            other => return Err(ParseError(format!("unknown message status {other:?}"))),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
        }
    }

    /// WeChat's answer is in: the message will not be sent again.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Self::Sent | Self::Delivered | Self::Failed | Self::Rejected
        )
    }
}

/// `#RRGGBB`, the colour of a template message value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Color(String);

impl Color {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok =
            s.len() == 7 && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Err(ParseError(format!(
                "invalid color {:?}: use #RRGGBB",
                s.chars().take(20).collect::<String>()
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One checked value of the message data, with its optional colour (template messages).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DataItem {
    pub value: FieldValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
}

/// Message data whose keys are well-formed and whose values passed the field rules.
/// Reading one back (from the store) checks it again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MessageData(BTreeMap<String, DataItem>);

impl<'de> Deserialize<'de> for MessageData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, RawDataValue>::deserialize(d)?;
        Self::parse(&raw, false).map_err(serde::de::Error::custom)
    }
}

/// A value as the caller may send it: a plain string or `{"value","color"}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum RawDataValue {
    Plain(String),
    Full {
        value: String,
        #[serde(default)]
        color: Option<String>,
    },
}

/// Why the data was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("data is empty")]
    Empty,
    #[error("data key {0:?} is malformed: use letters, digits and '_' (at most 32)")]
    BadKey(String),
    #[error("data.{field}.color: {problem}")]
    BadColor { field: String, problem: String },
    #[error(transparent)]
    Field(#[from] FieldError),
}

impl DataError {
    /// The data key the problem is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Empty => None,
            Self::BadKey(k) => Some(k),
            Self::BadColor { field, .. } => Some(field),
            Self::Field(e) => Some(&e.field),
        }
    }
}

impl MessageData {
    /// Checks every key and value; `truncate` shortens over-long text fields instead of
    /// refusing them.
    pub fn parse(raw: &BTreeMap<String, RawDataValue>, truncate: bool) -> Result<Self, DataError> {
        if raw.is_empty() {
            return Err(DataError::Empty);
        }
        let mut out = BTreeMap::new();
        for (key, v) in raw {
            if key.is_empty()
                || key.len() > 32
                || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(DataError::BadKey(key.chars().take(40).collect()));
            }
            let (value, color) = match v {
                RawDataValue::Plain(s) => (s.as_str(), None),
                RawDataValue::Full { value, color } => (value.as_str(), color.as_deref()),
            };
            let color = color
                .map(Color::parse)
                .transpose()
                .map_err(|e| DataError::BadColor {
                    field: key.clone(),
                    problem: e.0,
                })?;
            let value = FieldValue::check(key, value, truncate)?;
            out.insert(key.clone(), DataItem { value, color });
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &DataItem)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether any value was shortened by `truncate`.
    pub fn truncated_fields(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, v)| v.value.was_truncated())
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// `miniprogram_state` of a subscribe message: which version of the mini-program opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MiniProgramState {
    Developer,
    Trial,
    Formal,
}

impl MiniProgramState {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "developer" => Ok(Self::Developer),
            "trial" => Ok(Self::Trial),
            "formal" => Ok(Self::Formal),
            _ => Err(ParseError("use developer, trial or formal".into())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Developer => "developer",
            Self::Trial => "trial",
            Self::Formal => "formal",
        }
    }
}

/// `lang` of a subscribe message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    #[serde(rename = "zh_CN")]
    ZhCn,
    #[serde(rename = "en_US")]
    EnUs,
    #[serde(rename = "zh_HK")]
    ZhHk,
    #[serde(rename = "zh_TW")]
    ZhTw,
}

impl Lang {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "zh_CN" => Ok(Self::ZhCn),
            "en_US" => Ok(Self::EnUs),
            "zh_HK" => Ok(Self::ZhHk),
            "zh_TW" => Ok(Self::ZhTw),
            _ => Err(ParseError("use zh_CN, en_US, zh_HK or zh_TW".into())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ZhCn => "zh_CN",
            Self::EnUs => "en_US",
            Self::ZhHk => "zh_HK",
            Self::ZhTw => "zh_TW",
        }
    }
}

/// A mini-program page path (`pages/order?id=1`): relative, printable, at most 1024 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PagePath(String);

impl PagePath {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = !s.is_empty()
            && s.len() <= 1024
            && !s.contains("://")
            && !s.chars().any(|c| c.is_control() || c.is_whitespace());
        if !ok {
            return Err(ParseError(format!(
                "invalid page {:?}: use a mini-program page path like pages/order?id=1",
                s.chars().take(40).collect::<String>()
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for PagePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The link a template message card opens: an absolute http(s) URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CardUrl(String);

impl CardUrl {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = s.len() <= 1024
            && url::Url::parse(s)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !ok {
            return Err(ParseError(
                "url must be an absolute http(s) URL of at most 1024 bytes".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CardUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Where a template message card opens a mini-program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiniProgramTarget {
    pub appid: super::WxAppId,
    pub pagepath: PagePath,
}

/// Everything about an accepted message except its recipient and template: what the
/// outbox stores and later turns into the channel's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Empty (and left out) for a customer-service message, which has no template.
    #[serde(default, skip_serializing_if = "MessageData::is_empty")]
    pub data: MessageData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<CardUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<MiniProgramTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PagePath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram_state: Option<MiniProgramState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<Lang>,
    /// Legacy template messages: the keyword shown large (`keyword1.DATA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emphasis_keyword: Option<String>,
    /// Customer-service messages: what the message says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<super::CustomMessage>,
}

impl Payload {
    /// The data alone; the channel's fields are added to it.
    pub fn new(data: MessageData) -> Self {
        Self {
            data,
            url: None,
            miniprogram: None,
            page: None,
            miniprogram_state: None,
            lang: None,
            emphasis_keyword: None,
            custom: None,
        }
    }

    /// A customer-service message: its content alone.
    pub fn custom(message: super::CustomMessage) -> Self {
        Self {
            custom: Some(message),
            ..Self::new(MessageData::default())
        }
    }
}

/// The placeholder names of a template's content: `{{thing1.DATA}}` -> `thing1`.
pub fn template_placeholders(content: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("}}") else { break };
        if let Some(name) = rest[..end].trim().strip_suffix(".DATA")
            && !name.is_empty()
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_owned());
        }
        rest = &rest[end + 2..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_sort_by_acceptance_time_and_parse_back() {
        assert_eq!(MessageId::first_at(0x1234).as_str(), "m000000001234");
        let a = MessageId::generate(1_795_622_399_000);
        let b = MessageId::generate(1_795_622_399_001);
        assert!(MessageId::first_at(1_795_622_399_000) <= a && a < b);
        assert_eq!(MessageId::parse(a.as_str()).unwrap(), a);
        for bad in ["", "m", "n0123", "m01/23", &format!("m{}", "0".repeat(64))] {
            assert!(MessageId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn placeholders_are_read_from_the_content() {
        let c = "{{first.DATA}}\n订单号：{{keyword1.DATA}}\n时间：{{ time2.DATA }}\n{{remark.DATA}}{{keyword1.DATA}}";
        assert_eq!(
            template_placeholders(c),
            ["first", "keyword1", "time2", "remark"]
        );
        assert!(template_placeholders("no placeholders {{ oops").is_empty());
    }

    #[test]
    fn data_accepts_plain_strings_and_value_objects() {
        let raw: BTreeMap<String, RawDataValue> = serde_json::from_str(
            r##"{"keyword1": "339208499", "keyword2": {"value": "ok", "color": "#173177"}}"##,
        )
        .unwrap();
        let d = MessageData::parse(&raw, false).unwrap();
        let items: Vec<_> = d.iter().collect();
        assert_eq!(items[0].1.value.as_str(), "339208499");
        assert_eq!(items[1].1.color.as_ref().unwrap().as_str(), "#173177");
    }

    #[test]
    fn data_refusals_name_the_field() {
        let parse = |json: &str| {
            let raw: BTreeMap<String, RawDataValue> = serde_json::from_str(json).unwrap();
            MessageData::parse(&raw, false)
        };
        assert_eq!(parse("{}").unwrap_err(), DataError::Empty);
        assert_eq!(
            parse(r#"{"bad key": "x"}"#).unwrap_err().field(),
            Some("bad key")
        );
        assert_eq!(
            parse(r#"{"k": {"value": "x", "color": "red"}}"#)
                .unwrap_err()
                .field(),
            Some("k")
        );
        assert_eq!(
            parse(r#"{"thing1": "123456789012345678901"}"#)
                .unwrap_err()
                .field(),
            Some("thing1")
        );
    }

    #[test]
    fn channels() {
        assert_eq!(Channel::parse("subscribe").unwrap(), Channel::Subscribe);
        let oa = Channel::parse("oa_subscribe").unwrap();
        assert_eq!((oa, oa.as_str()), (Channel::OaSubscribe, "oa_subscribe"));
        assert!(oa.uses_ledger() && oa.opens_cards() && Channel::Subscribe.uses_ledger());
        assert!(!Channel::Template.uses_ledger() && !Channel::Subscribe.opens_cards());
        assert!(Channel::parse("sms").is_err());
    }
}
