//! What a customer-service message (channel `custom`) says: a text, an image by media id, a
//! mini-program card or a link card, each value through its parser. Stored in the
//! message's payload and read back through the same parsers.

use super::ParseError;
use super::message::{CardUrl, PagePath};
use serde::{Deserialize, Serialize};

string_id!(
    /// A media id from WeChat's media upload (`media/upload`): an image or a card's thumbnail.
    MediaId, "media_id", 128,
    |c| c.is_ascii_graphic(),
    "use 1 to 128 printable ASCII characters without spaces"
);

/// A text of at most `max` bytes (WeChat counts bytes of UTF-8), not empty or blank.
fn bounded(what: &str, s: &str, max: usize) -> Result<String, ParseError> {
    if s.trim().is_empty() {
        return Err(ParseError(format!("{what} is empty")));
    }
    if s.len() > max {
        return Err(ParseError(format!(
            "{what} is {} bytes of UTF-8; WeChat takes at most {max}",
            s.len()
        )));
    }
    Ok(s.to_owned())
}

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_BYTES: usize = $max;

            pub fn parse(s: &str) -> Result<Self, ParseError> {
                bounded($what, s, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

bounded_text!(
    /// The content of a text message: WeChat refuses more than 2048 bytes (45002).
    CustomContent, "content", 2048
);
bounded_text!(
    /// A card's title.
    CardTitle, "title", 128
);
bounded_text!(
    /// A link card's description.
    CardDescription, "description", 512
);

/// One customer-service message, by WeChat's `msgtype`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msgtype", rename_all = "snake_case")]
pub enum CustomMessage {
    Text {
        content: CustomContent,
    },
    Image {
        media_id: MediaId,
    },
    /// A mini-program card; the mini-program must be linked to the Official Account.
    #[serde(rename = "miniprogrampage")]
    MiniProgramPage {
        title: CardTitle,
        appid: super::WxAppId,
        pagepath: PagePath,
        thumb_media_id: MediaId,
    },
    /// A link card: title, optional description and picture, the page it opens.
    Link {
        title: CardTitle,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<CardDescription>,
        url: CardUrl,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thumb_url: Option<CardUrl>,
    },
}

impl CustomMessage {
    /// wxlink's name of the kind: `text`, `image`, `miniprogrampage` or `link`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::MiniProgramPage { .. } => "miniprogrampage",
            Self::Link { .. } => "link",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_counted_in_bytes_and_must_say_something() {
        assert!(CustomContent::parse(&"a".repeat(2048)).is_ok());
        assert!(CustomContent::parse(&"a".repeat(2049)).is_err());
        // 683 three-byte characters are 2049 bytes.
        assert!(CustomContent::parse(&"好".repeat(682)).is_ok());
        assert!(CustomContent::parse(&"好".repeat(683)).is_err());
        assert!(CustomContent::parse("  \n").is_err());
        assert!(MediaId::parse("").is_err());
        assert!(MediaId::parse("has space").is_err());
        assert!(MediaId::parse("Ab_9-x").is_ok());
    }

    #[test]
    fn a_stored_message_reads_back_through_the_parsers() {
        let m: CustomMessage = serde_json::from_value(serde_json::json!({
            "msgtype": "miniprogrampage", "title": "订单", "appid": "wxtestmp00000002",
            "pagepath": "pages/order?id=1", "thumb_media_id": "m1"
        }))
        .unwrap();
        assert_eq!(m.kind(), "miniprogrampage");
        let back: CustomMessage =
            serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        let bad = serde_json::json!({"msgtype": "image", "media_id": ""});
        assert!(serde_json::from_value::<CustomMessage>(bad).is_err());
    }
}
