//! `"channel": "custom"` as sent (`CustomRequest`, and `CustomPart` inside an `auto`
//! request), and its parsing into a [`CustomDraft`]: `msgtype` names the one content object
//! present, each value through its parser, every refusal naming the field.

use crate::domain::Channel;
use crate::domain::{
    CardDescription, CardTitle, CardUrl, Category, CustomContent, CustomMessage, MediaId, PagePath,
    ParseError, WxAppId,
};
use crate::http::error::{ApiError, ErrorCode};
use crate::outbox::{CustomDraft, Outbox};
use serde::Deserialize;
use serde_json::json;

/// `POST /api/v1/users/{user_id}/messages` with `"channel": "custom"`: a customer-service
/// message, delivered only within the person's interaction window (409
/// `custom_window_closed` otherwise).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "custom", "app": "oa", "msgtype": "text",
    "text": {"content": "您的订单已发货"}}))]
pub struct CustomRequest {
    /// `custom`.
    #[schema(example = "custom")]
    // Read from the JSON before deserialising, to pick this type.
    #[allow(dead_code)]
    pub channel: String,
    /// An Official Account; may be left out when only one is configured.
    #[serde(default)]
    pub app: Option<String>,
    /// `text`, `image`, `miniprogrampage` or `link`.
    #[schema(example = "text")]
    pub msgtype: String,
    #[serde(default)]
    pub text: Option<RawText>,
    #[serde(default)]
    pub image: Option<RawImage>,
    #[serde(default)]
    pub miniprogrampage: Option<RawMiniProgramPage>,
    #[serde(default)]
    pub link: Option<RawLink>,
    /// Refused with 409 `muted` when the user muted it.
    #[serde(default)]
    pub category: Option<String>,
}

/// A customer-service message: `msgtype` and the object of that name.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomPart {
    /// An Official Account; may be left out when only one is configured.
    #[serde(default)]
    pub app: Option<String>,
    /// `text`, `image`, `miniprogrampage` or `link`.
    #[schema(example = "text")]
    pub msgtype: String,
    #[serde(default)]
    pub text: Option<RawText>,
    #[serde(default)]
    pub image: Option<RawImage>,
    #[serde(default)]
    pub miniprogrampage: Option<RawMiniProgramPage>,
    #[serde(default)]
    pub link: Option<RawLink>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawText {
    /// At most 2048 bytes of UTF-8.
    pub content: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    /// From WeChat's media upload.
    pub media_id: String,
}

/// A mini-program card; the mini-program must be linked to the Official Account.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMiniProgramPage {
    pub title: String,
    pub appid: String,
    pub pagepath: String,
    pub thumb_media_id: String,
}

/// A link card (sent as WeChat's one-article `news`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// An absolute http(s) URL.
    pub url: String,
    /// The card's picture, an absolute http(s) URL.
    #[serde(default)]
    pub thumb_url: Option<String>,
}

impl CustomRequest {
    pub fn draft(&self, outbox: &Outbox) -> Result<CustomDraft, ApiError> {
        CustomPart {
            app: self.app.clone(),
            msgtype: self.msgtype.clone(),
            text: self.text.clone(),
            image: self.image.clone(),
            miniprogrampage: self.miniprogrampage.clone(),
            link: self.link.clone(),
        }
        .draft(outbox, self.category.as_deref())
    }
}

impl CustomPart {
    /// The message for the outbox: the app, the category, the content by `msgtype`.
    pub fn draft(&self, outbox: &Outbox, category: Option<&str>) -> Result<CustomDraft, ApiError> {
        let app = outbox.app_for(Channel::Custom, self.app.as_deref())?;
        let category = category
            .map(Category::parse)
            .transpose()
            .map_err(|e| ApiError::new(ErrorCode::InvalidCategory, e.0))?;
        let present = [
            ("text", self.text.is_some()),
            ("image", self.image.is_some()),
            ("miniprogrampage", self.miniprogrampage.is_some()),
            ("link", self.link.is_some()),
        ];
        if let Some((other, _)) = present
            .iter()
            .find(|(name, there)| *there && *name != self.msgtype)
        {
            return Err(invalid(
                other,
                format!("{other} does not go with msgtype {:?}", self.msgtype),
            ));
        }
        let missing = |name: &str| {
            invalid(
                "msgtype",
                format!("msgtype {name} needs a \"{name}\" object"),
            )
        };
        let message = match self.msgtype.as_str() {
            "text" => {
                let t = self.text.as_ref().ok_or_else(|| missing("text"))?;
                CustomMessage::Text {
                    content: CustomContent::parse(&t.content).map_err(bad("text.content"))?,
                }
            }
            "image" => {
                let i = self.image.as_ref().ok_or_else(|| missing("image"))?;
                CustomMessage::Image {
                    media_id: MediaId::parse(&i.media_id).map_err(bad("image.media_id"))?,
                }
            }
            "miniprogrampage" => {
                let p = self
                    .miniprogrampage
                    .as_ref()
                    .ok_or_else(|| missing("miniprogrampage"))?;
                CustomMessage::MiniProgramPage {
                    title: CardTitle::parse(&p.title).map_err(bad("miniprogrampage.title"))?,
                    appid: WxAppId::parse(&p.appid).map_err(bad("miniprogrampage.appid"))?,
                    pagepath: PagePath::parse(&p.pagepath)
                        .map_err(bad("miniprogrampage.pagepath"))?,
                    thumb_media_id: MediaId::parse(&p.thumb_media_id)
                        .map_err(bad("miniprogrampage.thumb_media_id"))?,
                }
            }
            "link" => {
                let l = self.link.as_ref().ok_or_else(|| missing("link"))?;
                CustomMessage::Link {
                    title: CardTitle::parse(&l.title).map_err(bad("link.title"))?,
                    description: l
                        .description
                        .as_deref()
                        .map(CardDescription::parse)
                        .transpose()
                        .map_err(bad("link.description"))?,
                    url: CardUrl::parse(&l.url).map_err(bad("link.url"))?,
                    thumb_url: l
                        .thumb_url
                        .as_deref()
                        .map(CardUrl::parse)
                        .transpose()
                        .map_err(bad("link.thumb_url"))?,
                }
            }
            other => {
                return Err(invalid(
                    "msgtype",
                    format!(
                        "unknown msgtype {:?}: use text, image, miniprogrampage or link",
                        other.chars().take(40).collect::<String>()
                    ),
                ));
            }
        };
        Ok(CustomDraft {
            app: app.id.clone(),
            category,
            message,
        })
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, message).with_details(json!({ "field": field }))
}

/// A malformed value: `invalid_body` naming the field.
fn bad(field: &'static str) -> impl Fn(ParseError) -> ApiError {
    move |e| invalid(field, format!("{field}: {e}"))
}
