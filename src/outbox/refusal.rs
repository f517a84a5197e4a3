//! Why the outbox will not take a message: a fact about the app, the person, the template
//! or the idempotency key, each its own variant. The message is the sentence the caller
//! reads; `http::api::messages` gives each its code and status.

use crate::config::{AppKind, UnknownApp};
use crate::domain::{AppId, Category, Channel, MessageId, TemplateId, UserId};
use crate::store::{CustomWindow, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    UnknownApp(#[from] UnknownApp),
    /// The named app does not send on this channel.
    #[error(
        "app {app} is a {}; {channel} messages are sent by a {} app",
        .kind.as_str(),
        .channel.app_kind().as_str()
    )]
    AppChannelMismatch {
        app: AppId,
        kind: AppKind,
        channel: Channel,
    },
    /// No app was named and none sends on this channel.
    #[error("no {} app is configured to send {channel} messages", .channel.app_kind().as_str())]
    NoAppForChannel { channel: Channel },
    /// No app was named and several send on this channel.
    #[error(
        "several apps can send {channel} messages ({}): name one in \"app\"",
        join(.apps)
    )]
    AppRequired { channel: Channel, apps: Vec<AppId> },
    #[error(
        "user {user} has no identity in app {app} (bind one, or link it through OAuth or a mini-program login)"
    )]
    NoIdentity { user: UserId, app: AppId },
    #[error("user {user} muted the category {category}")]
    Muted { user: UserId, category: Category },
    /// The template list cannot be fetched, and none was before.
    #[error("cannot check template {template} against app {app}'s template list: {reason}")]
    TemplatesUnavailable {
        template: TemplateId,
        app: AppId,
        reason: String,
    },
    #[error("app {app} has no {channel} template {template}")]
    UnknownTemplate {
        app: AppId,
        channel: Channel,
        template: TemplateId,
    },
    /// The data keys are not the template's (`first` and `remark` may be left out).
    #[error(
        "the data keys do not match template {template} ({title:?}): expected {}{}{}",
        .expected.join(", "),
        listed("; not in the template: ", .unknown),
        listed("; missing: ", .missing)
    )]
    DataKeysMismatch {
        template: TemplateId,
        title: String,
        expected: Vec<String>,
        unknown: Vec<String>,
        missing: Vec<String>,
    },
    #[error("user {user} has no usable form_id or prepay_id in app {app} (each lasts 7 days)")]
    NoFormId { user: UserId, app: AppId },
    #[error(
        "user {user} has no remaining subscription to template {template} in app {app} (record the person's acceptance with POST /api/v1/users/{user}/subscriptions)"
    )]
    NoSubscription {
        user: UserId,
        template: TemplateId,
        app: AppId,
    },
    /// The idempotency key was used for a different request.
    #[error("this Idempotency-Key was used for a different request (message {existing_id})")]
    IdempotencyConflict { existing_id: MessageId },
    /// The message stored under the key was there a moment ago and is gone.
    #[error("the message stored under this Idempotency-Key vanished; try again")]
    IdempotencyRace,
    /// `custom`: the person's customer-service window is closed, or never opened.
    #[error("{}", window_closed(.user, .app, .last.as_ref(), .unfollowed_at))]
    CustomWindowClosed {
        user: UserId,
        app: AppId,
        /// The window wxlink last saw open, if any.
        last: Option<CustomWindow>,
        /// The person left the Official Account after it opened.
        unfollowed_at: Option<crate::clock::Timestamp>,
    },
    /// `auto`: neither channel reaches the person.
    #[error("no channel reaches user {user}: {}", .reasons.join("; "))]
    NoChannel { user: UserId, reasons: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn window_closed(
    user: &UserId,
    app: &AppId,
    last: Option<&CustomWindow>,
    unfollowed_at: &Option<crate::clock::Timestamp>,
) -> String {
    let head = format!(
        "user {user} cannot get a customer-service message from Official Account {app} now: WeChat delivers one only within the window the person's own message, menu click, follow or scan opens"
    );
    match (last, *unfollowed_at) {
        (None, _) => format!("{head}, and wxlink has seen no such interaction of theirs"),
        (Some(w), Some(at)) if at.millis() >= w.last_at.millis() => format!(
            "{head}; their last one ({}) was at {}, and they unfollowed the account at {}",
            w.last_kind,
            super::custom::rfc3339(w.last_at),
            super::custom::rfc3339(at)
        ),
        (Some(w), _) => format!(
            "{head}; their last one ({}) was at {} and its window closed at {}",
            w.last_kind,
            super::custom::rfc3339(w.last_at),
            super::custom::rfc3339(w.open_until)
        ),
    }
}

fn join(apps: &[AppId]) -> String {
    apps.iter()
        .map(AppId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `prefix` and the names, or nothing when there are none.
fn listed(prefix: &str, names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!("{prefix}{}", names.join(", "))
    }
}
