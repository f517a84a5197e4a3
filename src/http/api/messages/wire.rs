//! The send request as it arrives (`SendRequest`, or `AutoRequest` for `channel: "auto"`)
//! and its parsing into the outbox's drafts: each value through its parser, in the order
//! the refusals are documented, every refusal naming the field.

pub use super::custom_wire::{CustomPart, CustomRequest};
use crate::domain::{
    CardUrl, Category, Channel, IdempotencyKey, Lang, MessageData, MiniProgramState,
    MiniProgramTarget, PagePath, Payload, RawDataValue, TemplateId, UserId, WxAppId, hash_token,
};
use crate::http::error::{ApiError, ErrorCode};
use crate::outbox::{AutoDraft, Idempotency, MessageDraft, Outbox};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `POST /api/v1/users/{user_id}/messages`, as sent.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "template", "app": "oa", "template_id": "sandbox_order_shipped",
    "data": {"keyword1": "339208499", "keyword2": {"value": "顺丰", "color": "#173177"}}}))]
pub struct SendRequest {
    /// `template` (Official Account), `subscribe` (mini-program), `form` (legacy
    /// mini-program template with a form_id / prepay_id) or `oa_subscribe` (Official
    /// Account subscribe notification); `auto` takes an `AutoRequest`, `custom` a
    /// `CustomRequest`.
    #[schema(example = "template")]
    pub channel: String,
    /// May be left out when exactly one configured app fits the channel.
    #[serde(default)]
    pub app: Option<String>,
    pub template_id: String,
    /// The template's `{{name.DATA}}` keys, each a string or `{"value","color"}`.
    pub data: BTreeMap<String, RawDataValue>,
    /// Template and oa_subscribe: the web page the card opens (bizsend's `page`).
    #[serde(default)]
    pub url: Option<String>,
    /// Template and oa_subscribe: a mini-program page the card opens instead.
    #[serde(default)]
    pub miniprogram: Option<RawMiniProgram>,
    /// Subscribe and form: the mini-program page, e.g. `pages/order?id=1`.
    #[serde(default)]
    pub page: Option<String>,
    /// Subscribe only: `developer`, `trial` or `formal`.
    #[serde(default)]
    pub miniprogram_state: Option<String>,
    /// Subscribe only: `zh_CN`, `en_US`, `zh_HK` or `zh_TW`.
    #[serde(default)]
    pub lang: Option<String>,
    /// Form only, e.g. `keyword1.DATA`.
    #[serde(default)]
    pub emphasis_keyword: Option<String>,
    /// Refused with 409 `muted` when the user muted it.
    #[serde(default)]
    pub category: Option<String>,
    /// Shorten over-long text fields (with `…`) instead of refusing them.
    #[serde(default)]
    pub truncate: bool,
}

/// The mini-program a template message's card opens.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMiniProgram {
    pub appid: String,
    #[serde(default)]
    pub pagepath: String,
}

/// `POST /api/v1/users/{user_id}/messages` with `"channel": "auto"`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoRequest {
    /// `auto`.
    #[schema(example = "auto")]
    // Read from the JSON before deserialising, to pick this type.
    #[allow(dead_code)]
    pub channel: String,
    /// The Official Account template message, used when the person follows.
    #[serde(default)]
    pub template: Option<ChannelPart>,
    /// The Official Account subscribe notification, used when the person does not follow
    /// and an acceptance is left in the Official Account.
    #[serde(default)]
    pub oa_subscribe: Option<ChannelPart>,
    /// The mini-program subscribe message, used when a subscription is left.
    #[serde(default)]
    pub subscribe: Option<ChannelPart>,
    /// Opt-in last resort: a customer-service message, used when neither part above
    /// reaches the person and their interaction window is open.
    #[serde(default)]
    pub custom: Option<CustomPart>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub truncate: bool,
}

/// One channel's message inside an `auto` request: a send request without the fields the
/// whole request shares.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPart {
    #[serde(default)]
    pub app: Option<String>,
    pub template_id: String,
    pub data: BTreeMap<String, RawDataValue>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub miniprogram: Option<RawMiniProgram>,
    #[serde(default)]
    pub page: Option<String>,
    #[serde(default)]
    pub miniprogram_state: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
}

/// A send body, told apart by its `channel`. Made once per request and moved once: the
/// size of its larger variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Request {
    One(SendRequest),
    Auto(Box<AutoRequest>),
    Custom(CustomRequest),
}

impl Request {
    pub fn from_json(body: Value) -> Result<Self, ApiError> {
        let invalid = |e: serde_json::Error| ApiError::new(ErrorCode::InvalidBody, e.to_string());
        let channel = body.get("channel").and_then(Value::as_str);
        if channel == Some("auto") {
            serde_json::from_value(body)
                .map(|r| Self::Auto(Box::new(r)))
                .map_err(invalid)
        } else if channel == Some("custom") {
            serde_json::from_value(body)
                .map(Self::Custom)
                .map_err(invalid)
        } else {
            serde_json::from_value(body).map(Self::One).map_err(invalid)
        }
    }
}

/// The key a retry is recognised by, with the digest of the request as sent: the same
/// request, whatever its key order or spacing, hashes the same.
pub fn idempotency(
    key: Option<IdempotencyKey>,
    user: &UserId,
    body: &Value,
) -> Option<Idempotency> {
    key.map(|key| Idempotency {
        key,
        request_hash: hash_token(&format!("{user}\n{body}")),
    })
}

/// One channel's fields, whichever request they came in.
struct Fields<'a> {
    app: Option<&'a str>,
    template_id: &'a str,
    data: &'a BTreeMap<String, RawDataValue>,
    url: Option<&'a str>,
    miniprogram: Option<&'a RawMiniProgram>,
    page: Option<&'a str>,
    miniprogram_state: Option<&'a str>,
    lang: Option<&'a str>,
    emphasis_keyword: Option<&'a str>,
    category: Option<&'a str>,
    truncate: bool,
}

impl SendRequest {
    /// The message for the outbox: channel, app, template id, channel fields, data rules.
    pub fn draft(&self, outbox: &Outbox) -> Result<MessageDraft, ApiError> {
        let channel = Channel::parse(&self.channel)
            .map_err(|e| ApiError::new(ErrorCode::InvalidChannel, e.0))?;
        Fields {
            app: self.app.as_deref(),
            template_id: &self.template_id,
            data: &self.data,
            url: self.url.as_deref(),
            miniprogram: self.miniprogram.as_ref(),
            page: self.page.as_deref(),
            miniprogram_state: self.miniprogram_state.as_deref(),
            lang: self.lang.as_deref(),
            emphasis_keyword: self.emphasis_keyword.as_deref(),
            category: self.category.as_deref(),
            truncate: self.truncate,
        }
        .draft(outbox, channel)
    }
}

impl AutoRequest {
    /// Both parts for the outbox, each checked as a message of its channel.
    pub fn draft(&self, outbox: &Outbox) -> Result<AutoDraft, ApiError> {
        let part = |channel, p: &Option<ChannelPart>| {
            p.as_ref()
                .map(|p| self.fields(p).draft(outbox, channel))
                .transpose()
        };
        let template = part(Channel::Template, &self.template)?;
        let oa_subscribe = part(Channel::OaSubscribe, &self.oa_subscribe)?;
        let subscribe = part(Channel::Subscribe, &self.subscribe)?;
        let custom = self
            .custom
            .as_ref()
            .map(|c| c.draft(outbox, self.category.as_deref()))
            .transpose()?;
        AutoDraft::with_custom(template, oa_subscribe, subscribe, custom).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidBody,
                "an auto message needs at least one of the parts \"template\", \"oa_subscribe\" and \"subscribe\" (and may add a \"custom\" part)",
            )
        })
    }

    fn fields<'a>(&'a self, p: &'a ChannelPart) -> Fields<'a> {
        Fields {
            app: p.app.as_deref(),
            template_id: &p.template_id,
            data: &p.data,
            url: p.url.as_deref(),
            miniprogram: p.miniprogram.as_ref(),
            page: p.page.as_deref(),
            miniprogram_state: p.miniprogram_state.as_deref(),
            lang: p.lang.as_deref(),
            emphasis_keyword: None,
            category: self.category.as_deref(),
            truncate: self.truncate,
        }
    }
}

impl Fields<'_> {
    fn draft(&self, outbox: &Outbox, channel: Channel) -> Result<MessageDraft, ApiError> {
        let app = outbox.app_for(channel, self.app)?;
        let template_id = TemplateId::parse(self.template_id)
            .map_err(|e| ApiError::new(ErrorCode::InvalidTemplateId, e.0))?;
        let category = self
            .category
            .map(Category::parse)
            .transpose()
            .map_err(|e| ApiError::new(ErrorCode::InvalidCategory, e.0))?;
        let not_for = |field: &str, present: bool| -> Result<(), ApiError> {
            if present {
                return Err(ApiError::new(
                    ErrorCode::FieldNotForChannel,
                    format!("{field} does not apply to {channel} messages"),
                )
                .with_details(json!({ "field": field })));
            }
            Ok(())
        };
        if channel == Channel::OaSubscribe && self.page.is_some() {
            // bizsend calls its web page `page`: say where ours goes.
            return Err(ApiError::new(
                ErrorCode::FieldNotForChannel,
                "page does not apply to oa_subscribe messages: give the web page the card opens as url (sent as bizsend's page), or a mini-program page as miniprogram",
            )
            .with_details(json!({ "field": "page" })));
        }
        let cards = channel.opens_cards();
        not_for("url", !cards && self.url.is_some())?;
        not_for("miniprogram", !cards && self.miniprogram.is_some())?;
        not_for("page", cards && self.page.is_some())?;
        let subscribe = channel == Channel::Subscribe;
        not_for(
            "miniprogram_state",
            !subscribe && self.miniprogram_state.is_some(),
        )?;
        not_for("lang", !subscribe && self.lang.is_some())?;
        not_for(
            "emphasis_keyword",
            channel != Channel::Form && self.emphasis_keyword.is_some(),
        )?;

        let url = optional(self.url, CardUrl::parse, "url")?;
        let miniprogram = self
            .miniprogram
            .map(|m| -> Result<_, ApiError> {
                Ok(MiniProgramTarget {
                    appid: WxAppId::parse(&m.appid).map_err(bad("miniprogram.appid"))?,
                    pagepath: PagePath::parse(&m.pagepath).map_err(bad("miniprogram.pagepath"))?,
                })
            })
            .transpose()?;
        let page = optional(self.page, PagePath::parse, "page")?;
        let miniprogram_state = optional(
            self.miniprogram_state,
            MiniProgramState::parse,
            "miniprogram_state",
        )?;
        let lang = optional(self.lang, Lang::parse, "lang")?;
        let data = MessageData::parse(self.data, self.truncate).map_err(|e| {
            let mut details = json!({ "field": e.field() });
            if let crate::domain::DataError::Field(f) = &e {
                details["rule"] = json!(f.rule);
            }
            ApiError::new(ErrorCode::InvalidData, e.to_string()).with_details(details)
        })?;
        if let Some(k) = self.emphasis_keyword
            && !k
                .strip_suffix(".DATA")
                .is_some_and(|name| data.keys().any(|d| d == name))
        {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                "emphasis_keyword must name a data key as `key.DATA`",
            ));
        }
        Ok(MessageDraft {
            channel,
            app: app.id.clone(),
            template_id,
            category,
            payload: Payload {
                data,
                url,
                miniprogram,
                page,
                miniprogram_state,
                lang,
                emphasis_keyword: self.emphasis_keyword.map(str::to_owned),
                custom: None,
            },
        })
    }
}

/// A malformed value: `invalid_body` naming the field.
fn bad(field: &'static str) -> impl Fn(crate::domain::ParseError) -> ApiError {
    move |e| {
        ApiError::new(ErrorCode::InvalidBody, format!("{field}: {e}"))
            .with_details(json!({ "field": field }))
    }
}

/// An optional field through its parser; a refusal names the field.
fn optional<T>(
    value: Option<&str>,
    parse: fn(&str) -> Result<T, crate::domain::ParseError>,
    field: &'static str,
) -> Result<Option<T>, ApiError> {
    value.map(parse).transpose().map_err(bad(field))
}
