//! Customer-service messages (`cgi-bin/message/custom/send`), client half: the wire body
//! shared with the simulator, and WeChat's rule of which pushes open the window in which an
//! Official Account may write to a person, and for how long.
//!
//! The rule, as WeChat's 2023-06 announcement states it (quoted by third-party docs; the
//! older wiki page lists the same actions with one 48-hour window for all): a message the
//! person sends opens 48 hours (5 sends); a menu click of the `click`, `scancode_push` or
//! `scancode_waitmsg` kind, a follow and a QR-code scan open 1 minute (3 sends). A `view`
//! (link) menu does not count. Sends past the count answer 45047, past the time 45015.

use super::types::SendResponse;
use super::{AppCredentials, WechatClient, WechatError, join};
use serde::{Deserialize, Serialize};

/// How long an interaction lets the account write, and how many messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowGrant {
    /// What the person did, for messages that name it: `message`, `menu`, `follow`, `scan`.
    pub kind: &'static str,
    pub secs: i64,
    pub sends: u32,
}

/// A message the person sent (any `MsgType` but `event`).
pub const MESSAGE_GRANT: WindowGrant = WindowGrant {
    kind: "message",
    secs: 48 * 3600,
    sends: 5,
};

/// What a push with this `MsgType` (and `Event`) grants, if anything.
pub fn window_grant(msg_type: &str, event: Option<&str>) -> Option<WindowGrant> {
    if msg_type != "event" {
        return Some(MESSAGE_GRANT);
    }
    let kind = match event? {
        "CLICK" | "scancode_push" | "scancode_waitmsg" => "menu",
        "subscribe" => "follow",
        "SCAN" => "scan",
        _ => return None,
    };
    Some(WindowGrant {
        kind,
        secs: 60,
        sends: 3,
    })
}

/// `POST /cgi-bin/message/custom/send`: `msgtype` names the one content field present.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomSendRequest {
    pub touser: String,
    pub msgtype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<CustomText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<CustomImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogrampage: Option<CustomMiniProgramPage>,
    /// An Official Account's link card: `news` with one article (the `link` type with
    /// `thumb_url` is the mini-program customer-service API's, not the account's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub news: Option<CustomNews>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomText {
    pub content: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomImage {
    pub media_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomMiniProgramPage {
    pub title: String,
    pub appid: String,
    pub pagepath: String,
    pub thumb_media_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomNews {
    pub articles: Vec<CustomArticle>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomArticle {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picurl: Option<String>,
}

impl WechatClient {
    /// `POST /cgi-bin/message/custom/send`: a customer-service message. WeChat answers no
    /// msgid and pushes no delivery report: `errcode` 0 is as far as it tells.
    pub async fn send_custom(
        &self,
        app: &AppCredentials,
        access_token: &str,
        req: &CustomSendRequest,
    ) -> Result<SendResponse, WechatError> {
        let url = join(&app.api_base, "/cgi-bin/message/custom/send");
        let req = self
            .http
            .post(url)
            .query(&[("access_token", access_token)])
            .json(req);
        self.call("cgi-bin/message/custom/send", req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_pushes_open_the_window() {
        assert_eq!(window_grant("text", None), Some(MESSAGE_GRANT));
        assert_eq!(window_grant("image", None).unwrap().secs, 48 * 3600);
        for e in [
            "CLICK",
            "scancode_push",
            "scancode_waitmsg",
            "subscribe",
            "SCAN",
        ] {
            let g = window_grant("event", Some(e)).unwrap();
            assert_eq!((g.secs, g.sends), (60, 3), "{e}");
        }
        for e in ["VIEW", "unsubscribe", "TEMPLATESENDJOBFINISH", "LOCATION"] {
            assert_eq!(window_grant("event", Some(e)), None, "{e}");
        }
        assert_eq!(window_grant("event", None), None);
    }

    #[test]
    fn the_body_has_only_its_content_field() {
        let req = CustomSendRequest {
            touser: "o1".into(),
            msgtype: "text".into(),
            text: Some(CustomText {
                content: "hi".into(),
            }),
            image: None,
            miniprogrampage: None,
            news: None,
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({"touser": "o1", "msgtype": "text", "text": {"content": "hi"}})
        );
    }
}
