//! The one mapping of the outbox's refusals to API errors: each its code, the refusal's
//! sentence as the message, and the fields a caller branches on as details.

use crate::http::error::{ApiError, ErrorCode};
use crate::outbox::Refusal;
use serde_json::json;

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        use ErrorCode as C;
        let message = r.to_string();
        let (code, details) = match r {
            Refusal::UnknownApp(_) => (C::UnknownApp, None),
            Refusal::AppChannelMismatch { .. } => (C::AppChannelMismatch, None),
            Refusal::NoAppForChannel { .. } => (C::NoAppForChannel, None),
            Refusal::AppRequired { .. } => (C::AppRequired, None),
            Refusal::NoIdentity { app, .. } => (C::NoIdentity, Some(json!({ "app": app }))),
            Refusal::Muted { category, .. } => (C::Muted, Some(json!({ "category": category }))),
            Refusal::TemplatesUnavailable { .. } => (C::TemplatesUnavailable, None),
            Refusal::UnknownTemplate { .. } => (C::UnknownTemplate, None),
            Refusal::DataKeysMismatch {
                expected,
                unknown,
                missing,
                ..
            } => (
                C::DataKeysMismatch,
                Some(json!({ "unknown": unknown, "missing": missing, "expected": expected })),
            ),
            Refusal::NoFormId { .. } => (C::NoFormId, None),
            Refusal::NoSubscription { .. } => (C::NoSubscription, None),
            Refusal::IdempotencyConflict { existing_id } => (
                C::IdempotencyConflict,
                Some(json!({ "existing_id": existing_id })),
            ),
            Refusal::IdempotencyRace => (C::IdempotencyRace, None),
            Refusal::CustomWindowClosed {
                app,
                last,
                unfollowed_at,
                ..
            } => (
                C::CustomWindowClosed,
                Some(json!({
                    "app": app,
                    "last_interaction": last.as_ref().map(|w| w.last_kind.clone()),
                    "last_interaction_at": last.as_ref().map(|w| w.last_at.secs()),
                    "window_closed_at": last.as_ref().map(|w| w.open_until.secs()),
                    "unfollowed_at": unfollowed_at.map(|t| t.secs()),
                })),
            ),
            Refusal::NoChannel { reasons, .. } => {
                (C::NoChannel, Some(json!({ "reasons": reasons })))
            }
            Refusal::Store(e) => return ApiError::Store(e),
        };
        let error = ApiError::new(code, message);
        match details {
            Some(d) => error.with_details(d),
            None => error,
        }
    }
}
