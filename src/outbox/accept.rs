//! The checks a message passes before it is queued, each refusal a [`Refusal`]: the app,
//! the person's identity, muted categories, the template and its data keys, a remaining
//! subscription or form id, the idempotency key. The values themselves were parsed by the
//! caller into a [`MessageDraft`].

use super::Outbox;
use super::draft::{Idempotency, MessageDraft};
use super::refusal::Refusal;
use crate::config::{AppConfig, UnknownApp};
use crate::domain::{AppId, Category, Channel, MessageId, OpenId, Payload, TemplateId, UserId};
use crate::store::{Enqueued, NewMessage};

/// The answer to an accepted request.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: MessageId,
    pub channel: Channel,
    pub status: crate::domain::MessageStatus,
    /// The same request came before with this idempotency key: this is that message.
    pub replayed: bool,
}

/// What [`Outbox::store_message`] writes besides the recipient: a draft's channel,
/// template (none for `custom`), category and payload.
pub(super) struct Queued<'a> {
    pub channel: Channel,
    pub template_id: Option<&'a TemplateId>,
    pub category: Option<&'a Category>,
    pub payload: &'a Payload,
}

impl<'a> From<&'a MessageDraft> for Queued<'a> {
    fn from(d: &'a MessageDraft) -> Self {
        Self {
            channel: d.channel,
            template_id: Some(&d.template_id),
            category: d.category.as_ref(),
            payload: &d.payload,
        }
    }
}

impl Outbox {
    /// Checks a message and stores it. Nothing is written unless every check passed.
    pub async fn accept(
        &self,
        caller: &str,
        user: &UserId,
        idempotency: Option<&Idempotency>,
        draft: &MessageDraft,
    ) -> Result<Accepted, Refusal> {
        self.accept_noted(caller, user, idempotency, draft, None)
            .await
    }

    /// [`Outbox::accept`], with a fact for the message's first history line.
    pub(super) async fn accept_noted(
        &self,
        caller: &str,
        user: &UserId,
        idempotency: Option<&Idempotency>,
        draft: &MessageDraft,
        note: Option<String>,
    ) -> Result<Accepted, Refusal> {
        let s = &self.inner;
        let app = self.app_of(draft)?;
        if let Some(replayed) = self.replay(caller, idempotency).await? {
            return Ok(replayed);
        }
        let openid = self.identity_of(user, &app.id).await?;
        if let Some(c) = &draft.category
            && s.store.is_muted(user, c).await?
        {
            return Err(Refusal::Muted {
                user: user.clone(),
                category: c.clone(),
            });
        }
        self.check_template(app, draft).await?;
        if draft.channel == Channel::Form
            && s.store
                .next_form_id(&app.id, &openid, s.clock.timestamp())
                .await?
                .is_none()
        {
            return Err(Refusal::NoFormId {
                user: user.clone(),
                app: app.id.clone(),
            });
        }
        self.store_message(caller, user, idempotency, app, draft.into(), &openid, note)
            .await
    }

    /// The user's openid in the app, or the refusal that says they have none.
    pub(super) async fn identity_of(&self, user: &UserId, app: &AppId) -> Result<OpenId, Refusal> {
        self.inner
            .store
            .user_identity(user, app)
            .await?
            .map(|i| i.openid)
            .ok_or_else(|| Refusal::NoIdentity {
                user: user.clone(),
                app: app.clone(),
            })
    }

    /// The message already stored under this caller's idempotency key, if any; refused
    /// when it was stored for a different request.
    pub(super) async fn replay(
        &self,
        caller: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Option<Accepted>, Refusal> {
        let Some(i) = idempotency else {
            return Ok(None);
        };
        match self.inner.store.message_by_key(caller, &i.key).await? {
            Some(existing) => replayed(existing, &i.request_hash).map(Some),
            None => Ok(None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store_message(
        &self,
        caller: &str,
        user: &UserId,
        idempotency: Option<&Idempotency>,
        app: &AppConfig,
        draft: Queued<'_>,
        openid: &OpenId,
        note: Option<String>,
    ) -> Result<Accepted, Refusal> {
        let s = &self.inner;
        let now_ms = s.clock.now_ms();
        let id = MessageId::generate(now_ms);
        let truncated = draft.payload.data.truncated_fields();
        let shortened = (!truncated.is_empty())
            .then(|| format!("shortened to fit the field rules: {}", truncated.join(", ")));
        let note = match (note, shortened) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        let outcome = self
            .enqueue(NewMessage {
                id: id.clone(),
                caller: caller.to_owned(),
                idempotency_key: idempotency.map(|i| i.key.clone()),
                // Only ever compared under a key: a message without one keeps none.
                request_hash: idempotency
                    .map(|i| i.request_hash.clone())
                    .unwrap_or_default(),
                user_id: user.clone(),
                app: app.id.clone(),
                channel: draft.channel,
                openid: openid.clone(),
                template_id: draft.template_id.cloned(),
                category: draft.category.cloned(),
                payload: draft.payload.clone(),
                note,
            })
            .await?;
        match outcome {
            Enqueued::New => {
                crate::metrics::message(draft.channel, "queued");
                self.wake();
                Ok(Accepted {
                    id,
                    channel: draft.channel,
                    status: crate::domain::MessageStatus::Queued,
                    replayed: false,
                })
            }
            Enqueued::KeyTaken => self
                .replay(caller, idempotency)
                .await?
                .ok_or(Refusal::IdempotencyRace),
            Enqueued::NoSubscription => Err(match draft.template_id {
                Some(t) => Refusal::NoSubscription {
                    user: user.clone(),
                    template: t.clone(),
                    app: app.id.clone(),
                },
                // Only subscribe messages hold a subscription, and each names its template.
                None => Refusal::Store(crate::store::StoreError::Corrupt {
                    table: "subscriptions",
                    detail: "a message without a template was refused for want of a subscription"
                        .into(),
                }),
            }),
        }
    }

    /// The named app (which must send on this channel), or the only app that can.
    pub fn app_for(&self, channel: Channel, name: Option<&str>) -> Result<&AppConfig, Refusal> {
        let apps = &self.inner.apps;
        let kind = channel.app_kind();
        if let Some(name) = name {
            return sends_on(crate::config::app_named(apps.values(), name)?, channel);
        }
        let mut fits: Vec<&AppConfig> = apps.values().filter(|a| a.kind == kind).collect();
        fits.sort_by(|a, b| a.id.cmp(&b.id));
        match fits.as_slice() {
            [one] => Ok(one),
            [] => Err(Refusal::NoAppForChannel { channel }),
            several => Err(Refusal::AppRequired {
                channel,
                apps: several.iter().map(|a| a.id.clone()).collect(),
            }),
        }
    }

    /// The draft's app, which must send on the draft's channel.
    pub(super) fn app_of(&self, draft: &MessageDraft) -> Result<&AppConfig, Refusal> {
        self.app_of_channel(&draft.app, draft.channel)
    }

    /// The app, which must send on the channel.
    pub(super) fn app_of_channel(
        &self,
        app: &AppId,
        channel: Channel,
    ) -> Result<&AppConfig, Refusal> {
        let app = self.inner.apps.get(app).ok_or_else(|| UnknownApp {
            name: app.to_string(),
        })?;
        sends_on(app, channel)
    }

    /// The template exists in the app for this channel and the data has exactly its keys
    /// (`first` and `remark` may be left out: WeChat dropped them in 2023).
    async fn check_template(&self, app: &AppConfig, draft: &MessageDraft) -> Result<(), Refusal> {
        let found = self
            .templates()
            .find(app, draft.channel, &draft.template_id)
            .await
            .map_err(|e| Refusal::TemplatesUnavailable {
                template: draft.template_id.clone(),
                app: app.id.clone(),
                reason: e.to_string(),
            })?;
        let Some(t) = found else {
            return Err(Refusal::UnknownTemplate {
                app: app.id.clone(),
                channel: draft.channel,
                template: draft.template_id.clone(),
            });
        };
        let data = &draft.payload.data;
        let unknown: Vec<String> = data
            .keys()
            .filter(|k| !t.placeholders.iter().any(|n| n == k))
            .map(str::to_owned)
            .collect();
        let missing: Vec<String> = t
            .placeholders
            .iter()
            .filter(|n| !matches!(n.as_str(), "first" | "remark"))
            .filter(|n| !data.keys().any(|k| k == n.as_str()))
            .cloned()
            .collect();
        if unknown.is_empty() && missing.is_empty() {
            return Ok(());
        }
        Err(Refusal::DataKeysMismatch {
            template: draft.template_id.clone(),
            title: t.title,
            expected: t.placeholders,
            unknown,
            missing,
        })
    }
}

/// The app, if it sends on this channel.
fn sends_on(app: &AppConfig, channel: Channel) -> Result<&AppConfig, Refusal> {
    if app.kind != channel.app_kind() {
        return Err(Refusal::AppChannelMismatch {
            app: app.id.clone(),
            kind: app.kind,
            channel,
        });
    }
    Ok(app)
}

/// The stored message, when it was stored for the same request.
fn replayed(existing: crate::store::Message, request_hash: &str) -> Result<Accepted, Refusal> {
    if existing.request_hash != request_hash {
        return Err(Refusal::IdempotencyConflict {
            existing_id: existing.id,
        });
    }
    Ok(Accepted {
        id: existing.id,
        channel: existing.channel,
        status: existing.status,
        replayed: true,
    })
}
