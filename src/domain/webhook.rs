//! What wxlink tells the company's backends: the types of outgoing events and an event as
//! the core records it, in the same transaction as the change that caused it.

use super::{AppId, OpenId, UnionId, UserId};
use crate::clock::Timestamp;
use serde::Serialize;

string_id!(
    /// An outgoing event's id: the `webhook-id` every delivery of it carries, the same
    /// across retries and replays, so receivers deduplicate by it.
    EventId, "event id", 64,
    |c| c.is_ascii_alphanumeric() || c == '_',
    "use 1 to 64 letters, digits or '_'"
);

impl EventId {
    /// A new random id, `evt_` and 24 letters or digits.
    pub fn generate() -> Self {
        Self(format!("evt_{}", super::random_alphanumeric(24)))
    }
}

/// The types of outgoing events. Their names are what `[[webhooks]] events` lists and
/// what a payload's `type` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "identity.linked")]
    IdentityLinked,
    #[serde(rename = "identity.unlinked")]
    IdentityUnlinked,
    #[serde(rename = "identity.conflict")]
    IdentityConflict,
    #[serde(rename = "user.deleted")]
    UserDeleted,
    #[serde(rename = "message.sent")]
    MessageSent,
    #[serde(rename = "message.delivered")]
    MessageDelivered,
    #[serde(rename = "message.failed")]
    MessageFailed,
    #[serde(rename = "message.rejected")]
    MessageRejected,
    #[serde(rename = "follow.subscribed")]
    FollowSubscribed,
    #[serde(rename = "follow.unsubscribed")]
    FollowUnsubscribed,
    #[serde(rename = "subscription.accepted")]
    SubscriptionAccepted,
    #[serde(rename = "subscription.rejected")]
    SubscriptionRejected,
    #[serde(rename = "authorization.declined")]
    AuthorizationDeclined,
    /// Sent on request to one endpoint (`POST /api/v1/webhooks/{name}/test`).
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        Self::IdentityLinked,
        Self::IdentityUnlinked,
        Self::IdentityConflict,
        Self::UserDeleted,
        Self::MessageSent,
        Self::MessageDelivered,
        Self::MessageFailed,
        Self::MessageRejected,
        Self::FollowSubscribed,
        Self::FollowUnsubscribed,
        Self::SubscriptionAccepted,
        Self::SubscriptionRejected,
        Self::AuthorizationDeclined,
        Self::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdentityLinked => "identity.linked",
            Self::IdentityUnlinked => "identity.unlinked",
            Self::IdentityConflict => "identity.conflict",
            Self::UserDeleted => "user.deleted",
            Self::MessageSent => "message.sent",
            Self::MessageDelivered => "message.delivered",
            Self::MessageFailed => "message.failed",
            Self::MessageRejected => "message.rejected",
            Self::FollowSubscribed => "follow.subscribed",
            Self::FollowUnsubscribed => "follow.unsubscribed",
            Self::SubscriptionAccepted => "subscription.accepted",
            Self::SubscriptionRejected => "subscription.rejected",
            Self::AuthorizationDeclined => "authorization.declined",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Result<Self, super::ParseError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                super::ParseError(format!(
                    "unknown event type {:?}",
                    s.chars().take(40).collect::<String>()
                ))
            })
    }

    /// The family before the dot (`message` for `message.sent`), which `message.*` names.
    pub fn family(self) -> &'static str {
        self.as_str().split('.').next().unwrap_or_default()
    }
}

stored_as_text!(EventType);

/// An outgoing event as the core records it. `user_id` and `unionid` left `None` are
/// filled from the identity `(app, openid)` when the store writes the event.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub kind: EventType,
    pub at: Timestamp,
    pub app: Option<AppId>,
    pub openid: Option<OpenId>,
    pub unionid: Option<UnionId>,
    pub user_id: Option<UserId>,
    /// The type's own fields (message id, reason, template...), a JSON object.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event about a person in an app, with a fresh id.
    pub fn about(
        kind: EventType,
        at: Timestamp,
        app: &AppId,
        openid: &OpenId,
        data: serde_json::Value,
    ) -> Self {
        Self {
            id: EventId::generate(),
            kind,
            at,
            app: Some(app.clone()),
            openid: Some(openid.clone()),
            unionid: None,
            user_id: None,
            data,
        }
    }

    pub fn user(mut self, user: Option<&UserId>) -> Self {
        self.user_id = user.cloned();
        self
    }

    pub fn unionid(mut self, unionid: Option<&UnionId>) -> Self {
        self.unionid = unionid.cloned();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_their_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()).unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert!(EventType::parse("message.lost").is_err());
        assert_eq!(EventType::MessageSent.family(), "message");
    }

    #[test]
    fn event_ids_are_unique_and_parse() {
        let a = EventId::generate();
        assert_ne!(a, EventId::generate());
        assert_eq!(EventId::parse(a.as_str()).unwrap(), a);
        assert!(a.as_str().starts_with("evt_"));
    }
}
