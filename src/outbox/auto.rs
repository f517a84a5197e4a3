//! `channel: "auto"`: the caller gives a template message and a subscribe message, and the
//! send goes where the person can get it. An Official Account identity that follows (or
//! whose follow status is unknown: the only way to learn it is a push or a 43004) gets the
//! template message; otherwise a remaining subscription gets the subscribe message.

use super::Outbox;
use super::accept::Accepted;
use super::draft::{AutoDraft, Idempotency};
use super::refusal::Refusal;
use crate::domain::UserId;

impl Outbox {
    /// Picks the channel the person can be reached on, then accepts that part there.
    pub async fn accept_auto(
        &self,
        caller: &str,
        user: &UserId,
        idempotency: Option<&Idempotency>,
        draft: &AutoDraft,
    ) -> Result<Accepted, Refusal> {
        let s = &self.inner;
        // A repeat is the message already chosen, whatever the person's state is now.
        if let Some(replayed) = self.replay(caller, idempotency).await? {
            return Ok(replayed);
        }
        let mut why_not = Vec::new();
        if let Some(part) = draft.template() {
            let app = self.app_of(part)?;
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
                    return self
                        .accept_noted(caller, user, idempotency, part, Some(note))
                        .await;
                }
                Some(_) => why_not.push(format!(
                    "the person does not follow Official Account {}",
                    app.id
                )),
                None => why_not.push(format!("user {user} has no identity in app {}", app.id)),
            }
        }
        if let Some(part) = draft.subscribe() {
            let app = self.app_of(part)?;
            let template = &part.template_id;
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
                        return self
                            .accept_noted(caller, user, idempotency, part, Some(note))
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
        Err(Refusal::NoChannel {
            user: user.clone(),
            reasons: why_not,
        })
    }
}
