//! What the outbox is asked to send, already parsed: a message for one channel, or the
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

/// `channel: "auto"`: a template message, an Official Account subscribe notification and a
/// mini-program subscribe message, any of them; the send goes where the person can get it
/// (see [`super::Outbox::accept_auto`]).
#[derive(Debug, Clone)]
pub struct AutoDraft {
    template: Option<MessageDraft>,
    oa_subscribe: Option<MessageDraft>,
    subscribe: Option<MessageDraft>,
    /// Opt-in last resort, while the person's interaction window is open.
    custom: Option<super::CustomDraft>,
}

impl AutoDraft {
    /// `None` when no part is given. Each part goes on its own channel, whatever its
    /// draft said.
    pub fn new(
        template: Option<MessageDraft>,
        oa_subscribe: Option<MessageDraft>,
        subscribe: Option<MessageDraft>,
    ) -> Option<Self> {
        Self::with_custom(template, oa_subscribe, subscribe, None)
    }

    /// [`AutoDraft::new`], with a customer-service message tried after the others.
    pub fn with_custom(
        template: Option<MessageDraft>,
        oa_subscribe: Option<MessageDraft>,
        subscribe: Option<MessageDraft>,
        custom: Option<super::CustomDraft>,
    ) -> Option<Self> {
        if template.is_none() && oa_subscribe.is_none() && subscribe.is_none() {
            return None;
        }
        let on = |channel| move |d: MessageDraft| MessageDraft { channel, ..d };
        Some(Self {
            template: template.map(on(Channel::Template)),
            oa_subscribe: oa_subscribe.map(on(Channel::OaSubscribe)),
            subscribe: subscribe.map(on(Channel::Subscribe)),
            custom,
        })
    }

    /// The apps its parts go through.
    pub fn apps(&self) -> impl Iterator<Item = &AppId> {
        self.template
            .iter()
            .chain(&self.oa_subscribe)
            .chain(&self.subscribe)
            .map(|d| &d.app)
            .chain(self.custom.iter().map(|c| &c.app))
    }

    /// The customer-service message, used when no other part reaches the person.
    pub fn custom(&self) -> Option<&super::CustomDraft> {
        self.custom.as_ref()
    }

    /// The Official Account template message, used when the person follows.
    pub fn template(&self) -> Option<&MessageDraft> {
        self.template.as_ref()
    }

    /// The Official Account subscribe notification, used when an acceptance is left.
    pub fn oa_subscribe(&self) -> Option<&MessageDraft> {
        self.oa_subscribe.as_ref()
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
