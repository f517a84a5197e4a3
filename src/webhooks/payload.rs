//! The body every delivery carries, the Standard Webhooks way: `{"type", "timestamp",
//! "data"}` plus the event's `id` (also its `webhook-id`). `data` always names the person:
//! `user_id` (null when nobody is bound), `app`, `openid`, `unionid`, then the type's own
//! fields. Built from the stored event alone, so every retry and replay carries the same
//! body.

use crate::clock::Timestamp;
use crate::store::StoredWebhookEvent;
use serde_json::{Value, json};

/// The JSON text of an event's payload.
pub fn body(e: &StoredWebhookEvent) -> String {
    let mut data = json!({
        "user_id": e.user_id,
        "app": e.app,
        "openid": e.openid,
        "unionid": e.unionid,
    });
    if let (Some(obj), Value::Object(more)) = (data.as_object_mut(), &e.data) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    json!({
        "id": e.id,
        "type": e.kind,
        "timestamp": rfc3339(e.occurred_ms),
        "data": data,
    })
    .to_string()
}

/// `2026-12-02T08:00:00.123Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.millis()) * 1_000_000;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppId, EventId, EventType, OpenId, UserId};

    #[test]
    fn the_body_names_the_person_and_the_type() {
        let e = StoredWebhookEvent {
            id: EventId::parse("evt_abc").unwrap(),
            kind: EventType::MessageSent,
            occurred_ms: Timestamp::from_millis(1_795_622_399_123),
            app: Some(AppId::parse("oa").unwrap()),
            openid: Some(OpenId::parse("o1").unwrap()),
            unionid: None,
            user_id: Some(UserId::parse("42").unwrap()),
            data: json!({ "message_id": "m1" }),
        };
        let v: Value = serde_json::from_str(&body(&e)).unwrap();
        assert_eq!(v["type"], "message.sent");
        assert_eq!(v["id"], "evt_abc");
        assert_eq!(v["timestamp"], "2026-11-25T15:59:59.123Z");
        assert_eq!(v["data"]["user_id"], "42");
        assert_eq!(v["data"]["message_id"], "m1");
        assert!(v["data"]["unionid"].is_null());
    }
}
