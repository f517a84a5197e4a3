//! WeChat server push: what arrives at `/wechat/{app}/push`.
//!
//! A push is verified and opened ([`inbound`]: signature, freshness, safe-mode decryption;
//! each refusal a [`Refusal`], which `http::push` answers), read ([`xml`], [`event`]),
//! stored with its replay key and dedup key before it is acknowledged ([`receive`], through
//! the group-committing [`writer`]), and handled after ([`handle`]): by the writer at once,
//! or by the sweeper when that failed or its process died. Then, when the app has a
//! downstream, it is forwarded as it came and the downstream's answer is WeChat's
//! ([`forward`]).

pub mod event;
pub mod forward;
pub mod forward_writer;
pub mod handle;
pub mod inbound;
pub mod refusal;
pub mod writer;
pub mod xml;

pub use handle::{HandleJob, apply, handle_batch};
pub use refusal::{ReceiveError, Refusal};
pub use writer::PushWriter;

use crate::clock::{Clock, Timestamp};
use crate::config::{AppConfig, PushSettings};
use crate::outbox::Outbox;
use crate::store::{NewPush, Recorded, Store};
use event::{Envelope, PushEvent};
use forward::{Answer, AsSent, Forwarder};
use inbound::PushQuery;

/// How long the receiving instance keeps a new event to itself; after that (it died, or
/// handling failed) any instance's sweeper may take it.
pub const CLAIM_SECS: i64 = 60;

/// What became of an accepted push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    New(i64),
    Duplicate,
}

/// An accepted push: stored (or a repeat of a stored one), and what it is.
#[derive(Debug, Clone)]
pub struct Received {
    pub receipt: Receipt,
    pub envelope: Envelope,
}

/// Everything WeChat pushes to this instance: received through [`Inbox::receive`], handled
/// by the writer at once or by the sweeper ([`Inbox::spawn_sweeper`]) later. It holds what
/// that needs, so push handling never reaches up into the HTTP layer's context.
#[derive(Clone)]
pub struct Inbox {
    writer: PushWriter,
    store: Store,
    /// Delivery reports that beat their send's answer are applied by the outbox.
    outbox: Outbox,
    clock: Clock,
    settings: PushSettings,
    /// The apps' downstreams: where a push goes on to once it is stored.
    forwarder: Forwarder,
}

impl Inbox {
    pub fn new(
        store: Store,
        outbox: Outbox,
        clock: Clock,
        settings: PushSettings,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            writer: PushWriter::start(store.clone(), clock.clone()),
            forwarder: Forwarder::new(store.clone(), clock.clone())?,
            store,
            outbox,
            clock,
            settings,
        })
    }

    /// Verifies, opens and stores one push; the event is durable when this returns, and
    /// its handling has been started.
    pub async fn receive(
        &self,
        app: &AppConfig,
        q: &PushQuery,
        body: &[u8],
    ) -> Result<Received, ReceiveError> {
        receive(self, app, q, body).await
    }

    /// What WeChat is answered for a push this inbox received: `success`, or, when the
    /// app forwards pushes of its kind, the downstream's answer (`success` when that cannot
    /// be had in time). Call it after [`Inbox::receive`]: only stored pushes go on.
    pub async fn answer(&self, app: &AppConfig, received: &Received, sent: AsSent<'_>) -> Answer {
        let env = &received.envelope;
        match &app.forward {
            Some(cfg) if cfg.wants(&env.kind) => {
                let id = forward::Identity {
                    app: &app.id,
                    dedup_key: &env.dedup_key,
                    kind: &env.kind,
                    openid: env.openid.as_deref(),
                };
                self.forwarder.answer(cfg, id, sent).await
            }
            _ => Answer::success(),
        }
    }
}

async fn receive(
    inbox: &Inbox,
    app: &AppConfig,
    q: &PushQuery,
    body: &[u8],
) -> Result<Received, ReceiveError> {
    let now = inbox.clock.now();
    let p = inbound::open(app, q, body, now, inbox.settings.timestamp_window_secs)?;
    let env = p.envelope;
    let typed = PushEvent::classify(&p.root, &env);
    let outcome_now = match &typed {
        Ok(PushEvent::Other) => Some("stored".to_owned()),
        Err(reason) => Some(format!("malformed: {reason}")),
        Ok(_) => None,
    };
    let recorded = inbox
        .writer
        .record(NewPush {
            app: app.id.clone(),
            timestamp: p.timestamp,
            nonce: p.nonce,
            signature: p.signature,
            dedup_key: env.dedup_key.clone(),
            msg_type: env.msg_type.clone(),
            event: env.event.clone(),
            kind: env.kind.clone(),
            openid: env.openid.clone(),
            create_time: env.create_time,
            encrypted: p.encrypted,
            xml: p.xml,
            received_at: Timestamp::from_secs(now),
            outcome_now,
            claim_until: Timestamp::from_secs(now + CLAIM_SECS),
        })
        .await?;
    let receipt = match recorded {
        Recorded::Replayed => return Err(Refusal::Replayed.into()),
        Recorded::Duplicate => Receipt::Duplicate,
        Recorded::New(id) => {
            if let Ok(event) = typed
                && event != PushEvent::Other
            {
                inbox.writer.handle(handle::HandleJob {
                    id,
                    app: app.id.clone(),
                    event,
                    openid: env.openid.clone(),
                });
            }
            Receipt::New(id)
        }
    };
    Ok(Received {
        receipt,
        envelope: env,
    })
}
