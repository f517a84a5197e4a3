//! `channel: "auto"`: the caller gives a template message, an Official Account subscribe
//! notification and a mini-program subscribe message (any of them), and the send goes where
//! the person can get it, in that order. An Official Account identity that follows (or
//! whose follow status is unknown: the only way to learn it is a push or a 43004) gets the
//! template message; otherwise an acceptance left in the Official Account gets the
//! subscribe notification (it needs no follow); otherwise one left in the mini-program gets
//! the subscribe message; otherwise, when the caller added a `custom` part (the opt-in), a
//! person whose customer-service window is open gets that.

use super::Outbox;
use super::accept::Accepted;
use super::custom::CustomDraft;
use super::draft::{AutoDraft, Idempotency, MessageDraft};
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
        for part in [draft.oa_subscribe(), draft.subscribe()]
            .into_iter()
            .flatten()
        {
            match self.acceptance_left(user, part).await? {
                Ok(()) => {
                    let note = format!(
                        "channel chosen automatically: {}, a subscription is left",
                        part.channel
                    );
                    return self
                        .accept_noted(caller, user, idempotency, part, Some(note))
                        .await;
                }
                Err(why) => why_not.push(why),
            }
        }
        if let Some(part) = draft.custom() {
            match self.auto_custom(caller, user, idempotency, part).await {
                Err(Refusal::NoIdentity { app, .. }) => {
                    why_not.push(format!("user {user} has no identity in app {app}"))
                }
                Err(Refusal::CustomWindowClosed { .. }) => why_not.push(format!(
                    "the person's customer-service window with Official Account {} is closed",
                    part.app
                )),
                accepted => return accepted,
            }
        }
        Err(Refusal::NoChannel {
            user: user.clone(),
            reasons: why_not,
        })
    }

    /// Whether the ledger has an acceptance of the part's template left for the user in
    /// the part's app; if not, why not.
    async fn acceptance_left(
        &self,
        user: &UserId,
        part: &MessageDraft,
    ) -> Result<Result<(), String>, Refusal> {
        let s = &self.inner;
        let app = self.app_of(part)?;
        let template = &part.template_id;
        let Some(i) = s.store.user_identity(user, &app.id).await? else {
            return Ok(Err(format!(
                "user {user} has no identity in app {}",
                app.id
            )));
        };
        let left = s
            .store
            .subscriptions(&app.id, &i.openid)
            .await?
            .into_iter()
            .any(|l| l.template_id == template.as_str() && (l.long_term || l.remaining > 0));
        if left {
            return Ok(Ok(()));
        }
        Ok(Err(format!(
            "no subscription to template {template} is left in app {}",
            app.id
        )))
    }
}

impl Outbox {
    /// The opt-in last resort: the customer-service message, if the window is open.
    async fn auto_custom(
        &self,
        caller: &str,
        user: &UserId,
        idempotency: Option<&Idempotency>,
        part: &CustomDraft,
    ) -> Result<Accepted, Refusal> {
        let identity = self.custom_identity(user, &part.app).await?;
        let note =
            "channel chosen automatically: custom, the person's customer-service window is open"
                .to_owned();
        self.accept_custom_for(caller, user, &identity, idempotency, part, Some(note))
            .await
    }
}
