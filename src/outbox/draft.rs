//! What the outbox is asked to send, already parsed: a message for one channel, or the two
//! parts of an `auto` message, and the idempotency key a retry is recognised by.

use crate::domain::{AppId, Category, Channel, IdempotencyKey, Payload, TemplateId};

/// One channel's message whose every value passed its parser: what [`super::Outbox::accept`]
/// checks against the app, the person and the template, then stores.
#[derive(Debug, Clone)]
pub struct MessageDraft {
    pub channel: Channel,
    /// An app that sends on `channel` (see [`super::Outbox::app_for`]).
    pub app: AppId,
    pub template_id: TemplateId,
    /// Refused when the user muted it.
    pub category: Option<Category>,
    pub payload: Payload,
}

/// `channel: "auto"`: a template message and a subscribe message; the send goes where the
/// person can get it (see [`super::Outbox::accept_auto`]).
#[derive(Debug, Clone)]
pub struct AutoDraft {
    template: Option<MessageDraft>,
    subscribe: Option<MessageDraft>,
}

impl AutoDraft {
    /// `None` when neither part is given. Each part goes on its own channel, whatever its
    /// draft said.
    pub fn new(template: Option<MessageDraft>, subscribe: Option<MessageDraft>) -> Option<Self> {
        if template.is_none() && subscribe.is_none() {
            return None;
        }
        let on = |channel| move |d: MessageDraft| MessageDraft { channel, ..d };
        Some(Self {
            template: template.map(on(Channel::Template)),
            subscribe: subscribe.map(on(Channel::Subscribe)),
        })
    }

    /// The Official Account template message, used when the person follows.
    /// The apps its parts go through.
    pub fn apps(&self) -> impl Iterator<Item = &AppId> {
        self.template.iter().chain(&self.subscribe).map(|d| &d.app)
    }

    pub fn template(&self) -> Option<&MessageDraft> {
        self.template.as_ref()
    }

    /// The mini-program subscribe message, used when a subscription is left.
    pub fn subscribe(&self) -> Option<&MessageDraft> {
        self.subscribe.as_ref()
    }
}

/// A caller's idempotency key with a digest of the request it came with: the same key with
/// the same request answers the message stored the first time, with another request it is
/// refused.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: IdempotencyKey,
    /// Computed by whoever received the request, from the request as sent.
    pub request_hash: String,
}
