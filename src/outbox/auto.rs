//! `channel: "auto"`: the caller gives a template message and a subscribe message, and the
//! send goes where the person can get it. An Official Account identity that follows (or
//! whose follow status is unknown: the only way to learn it is a push or a 43004) gets the
//! template message; otherwise a remaining subscription gets the subscribe message.

use super::Outbox;
use super::accept::{Accepted, RawMiniProgram, SendRequest};
use crate::domain::{Channel, IdempotencyKey, RawDataValue, TemplateId, UserId};
use crate::error::ApiError;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// `POST /api/v1/users/{user_id}/messages` with `"channel": "auto"`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoRequest {
    /// `auto`.
    #[schema(example = "auto")]
    pub channel: String,
    /// The Official Account template message, used when the person follows.
    #[serde(default)]
    pub template: Option<ChannelPart>,
    /// The mini-program subscribe message, used when a subscription is left.
    #[serde(default)]
    pub subscribe: Option<ChannelPart>,
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

impl AutoRequest {
    fn request(&self, channel: Channel, part: &ChannelPart) -> SendRequest {
        SendRequest {
            channel: channel.as_str().to_owned(),
            app: part.app.clone(),
            template_id: part.template_id.clone(),
            data: part.data.clone(),
            url: part.url.clone(),
            miniprogram: part.miniprogram.clone(),
            page: part.page.clone(),
            miniprogram_state: part.miniprogram_state.clone(),
            lang: part.lang.clone(),
            emphasis_keyword: None,
            category: self.category.clone(),
            truncate: self.truncate,
        }
    }
}

impl Outbox {
    /// Picks the channel the person can be reached on, then accepts the message there.
    pub async fn accept_auto(
        &self,
        caller: &str,
        user: &UserId,
        key: Option<&IdempotencyKey>,
        req: &AutoRequest,
        request_hash: &str,
    ) -> Result<Accepted, ApiError> {
        if req.template.is_none() && req.subscribe.is_none() {
            return Err(ApiError::invalid(
                "invalid_body",
                "an auto message needs a \"template\" part, a \"subscribe\" part, or both",
            ));
        }
        let s = &self.inner;
        // A repeat is the message already chosen, whatever the person's state is now.
        if let Some(key) = key
            && let Some(existing) = s.store.message_by_key(caller, key).await?
        {
            return super::accept::replay(existing, request_hash);
        }
        let mut why_not = Vec::new();
        if let Some(part) = &req.template {
            let app = self.app_for(Channel::Template, part.app.as_deref())?;
            match s.store.user_identity(user, &app.id).await? {
                Some(i) if i.follows != Some(false) => {
                    let note = format!(
                        "channel chosen automatically: template, {}",
                        if i.follows == Some(true) {
                            "the person follows the Official Account"
                        } else {
                            "the Official Account identity's follow status is unknown (taken as following)"
                        }
                    );
                    let r = req.request(Channel::Template, part);
                    return self
                        .accept_noted(caller, user, key, &r, request_hash, Some(note))
                        .await;
                }
                Some(_) => why_not.push(format!(
                    "the person does not follow Official Account {}",
                    app.id
                )),
                None => why_not.push(format!("user {user} has no identity in app {}", app.id)),
            }
        }
        if let Some(part) = &req.subscribe {
            let app = self.app_for(Channel::Subscribe, part.app.as_deref())?;
            let template = TemplateId::parse(&part.template_id)
                .map_err(|e| ApiError::invalid("invalid_template_id", e.0))?;
            match s.store.user_identity(user, &app.id).await? {
                Some(i) => {
                    let left = s
                        .store
                        .subscriptions(&app.id, &i.openid)
                        .await?
                        .into_iter()
                        .any(|l| {
                            l.template_id == template.as_str() && (l.long_term || l.remaining > 0)
                        });
                    if left {
                        let note =
                            "channel chosen automatically: subscribe, a subscription is left"
                                .to_owned();
                        let r = req.request(Channel::Subscribe, part);
                        return self
                            .accept_noted(caller, user, key, &r, request_hash, Some(note))
                            .await;
                    }
                    why_not.push(format!(
                        "no subscription to template {template} is left in app {}",
                        app.id
                    ));
                }
                None => why_not.push(format!("user {user} has no identity in app {}", app.id)),
            }
        }
        Err(ApiError::conflict(
            "no_channel",
            format!("no channel reaches user {user}: {}", why_not.join("; ")),
        )
        .with_details(json!({ "reasons": why_not })))
    }
}
