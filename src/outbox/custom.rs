//! Channel `custom`: customer-service messages by user id. WeChat delivers one only within
//! the window a person's own interaction opened (see [`crate::wechat::custom`]); wxlink
//! knows that window from the pushes it stored, and refuses before queueing when it is
//! closed instead of letting WeChat answer 45015. What gets past that check is queued,
//! retried and recorded like any other message.

use super::Outbox;
use super::accept::{Accepted, Queued};
use super::draft::Idempotency;
use super::refusal::Refusal;
use crate::clock::Timestamp;
use crate::domain::{AppId, Category, Channel, CustomMessage, Payload, UserId};
use crate::store::{Claimed, Identity};
use crate::wechat::custom::{
    CustomArticle, CustomImage, CustomMiniProgramPage, CustomNews, CustomSendRequest, CustomText,
};

/// A customer-service message whose every value passed its parser.
#[derive(Debug, Clone)]
pub struct CustomDraft {
    /// An Official Account.
    pub app: AppId,
    pub category: Option<Category>,
    pub message: CustomMessage,
}

impl Outbox {
    /// Checks a customer-service message (the app, the person's identity, muted
    /// categories, the open window) and stores it.
    pub async fn accept_custom(
        &self,
        caller: &str,
        user: &UserId,
        idempotency: Option<&Idempotency>,
        draft: &CustomDraft,
    ) -> Result<Accepted, Refusal> {
        if let Some(replayed) = self.replay(caller, idempotency).await? {
            return Ok(replayed);
        }
        let identity = self.custom_identity(user, &draft.app).await?;
        self.accept_custom_for(caller, user, &identity, idempotency, draft, None)
            .await
    }

    /// [`Outbox::accept_custom`] for a person whose identity is known, with a fact for
    /// the first history line (`auto`).
    pub(super) async fn accept_custom_for(
        &self,
        caller: &str,
        user: &UserId,
        identity: &Identity,
        idempotency: Option<&Idempotency>,
        draft: &CustomDraft,
        note: Option<String>,
    ) -> Result<Accepted, Refusal> {
        let app = self.app_of_channel(&draft.app, Channel::Custom)?;
        if let Some(c) = &draft.category
            && self.inner.store.is_muted(user, c).await?
        {
            return Err(Refusal::Muted {
                user: user.clone(),
                category: c.clone(),
            });
        }
        let open = self.custom_window_open(user, identity).await?;
        let note = [note, Some(open)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
        let payload = Payload::custom(draft.message.clone());
        let queued = Queued {
            channel: Channel::Custom,
            template_id: None,
            category: draft.category.as_ref(),
            payload: &payload,
        };
        let openid = &identity.openid;
        self.store_message(caller, user, idempotency, app, queued, openid, Some(note))
            .await
    }

    /// The user's identity in the app, or the refusal that says they have none.
    pub(super) async fn custom_identity(
        &self,
        user: &UserId,
        app: &AppId,
    ) -> Result<Identity, Refusal> {
        self.inner
            .store
            .user_identity(user, app)
            .await?
            .ok_or_else(|| Refusal::NoIdentity {
                user: user.clone(),
                app: app.clone(),
            })
    }

    /// Whether the person's window is open now: the history line that says why, or the
    /// refusal that says since when it is closed (or that it never opened).
    /// An unfollow closes the window ("subscription is canceled", says WeChat's 45015).
    pub(super) async fn custom_window_open(
        &self,
        user: &UserId,
        identity: &Identity,
    ) -> Result<String, Refusal> {
        let now = self.inner.clock.timestamp();
        let window = self
            .inner
            .store
            .custom_window(&identity.app, &identity.openid)
            .await?;
        let unfollowed_at = match (identity.follows, identity.follow_changed_at) {
            (Some(false), Some(at)) => Some(at),
            _ => None,
        };
        match window {
            Some(w)
                if w.open_until.millis() > now.millis()
                    && unfollowed_at.is_none_or(|u| u.millis() < w.last_at.millis()) =>
            {
                Ok(format!(
                    "customer-service window open until {} (last interaction: {} at {})",
                    rfc3339(w.open_until),
                    w.last_kind,
                    rfc3339(w.last_at)
                ))
            }
            last => Err(Refusal::CustomWindowClosed {
                user: user.clone(),
                app: identity.app.clone(),
                last,
                unfollowed_at,
            }),
        }
    }
}

/// The body WeChat takes for a claimed `custom` message; `None` when its payload has no
/// customer-service content (hand-edited).
pub(super) fn custom_request(m: &Claimed) -> Option<CustomSendRequest> {
    let message = m.payload.custom.as_ref()?;
    let mut req = CustomSendRequest {
        touser: m.openid.to_string(),
        msgtype: String::new(),
        text: None,
        image: None,
        miniprogrampage: None,
        news: None,
    };
    match message {
        CustomMessage::Text { content } => {
            req.msgtype = "text".into();
            req.text = Some(CustomText {
                content: content.as_str().to_owned(),
            });
        }
        CustomMessage::Image { media_id } => {
            req.msgtype = "image".into();
            req.image = Some(CustomImage {
                media_id: media_id.to_string(),
            });
        }
        CustomMessage::MiniProgramPage {
            title,
            appid,
            pagepath,
            thumb_media_id,
        } => {
            req.msgtype = "miniprogrampage".into();
            req.miniprogrampage = Some(CustomMiniProgramPage {
                title: title.as_str().to_owned(),
                appid: appid.to_string(),
                pagepath: pagepath.as_str().to_owned(),
                thumb_media_id: thumb_media_id.to_string(),
            });
        }
        // An Official Account's link card is WeChat's `news` with one article.
        CustomMessage::Link {
            title,
            description,
            url,
            thumb_url,
        } => {
            req.msgtype = "news".into();
            req.news = Some(CustomNews {
                articles: vec![CustomArticle {
                    title: title.as_str().to_owned(),
                    description: description
                        .as_ref()
                        .map(|d| d.as_str().to_owned())
                        .unwrap_or_default(),
                    url: url.as_str().to_owned(),
                    picurl: thumb_url.as_ref().map(|u| u.as_str().to_owned()),
                }],
            });
        }
    }
    Some(req)
}

/// `2026-12-02T08:00:00Z`.
pub(super) fn rfc3339(t: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.secs())
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.secs().to_string())
}
