//! The central control of each Official Account's JS-SDK tickets (`jsapi`, `wx_card`), and
//! the `wx.config` signatures made with them.
//!
//! Managed as access tokens are ([`crate::token`]): served from memory, fetched once per
//! window across the fleet (the store's shared refresh lease and a version that fences
//! writes), refreshed ahead of expiry by the `[tokens]` timings, sealed at rest. A ticket
//! is fetched with the app's access token through [`TokenManager::call`], so a 40001/42001
//! at getticket invalidates that token by compare-and-invalidate and the ticket is fetched
//! again with the new one. Nothing is fetched before a ticket is first asked for: an app
//! that never signs a page spends none of getticket's daily quota.
//!
//! WeChat never tells the server that a ticket went bad; the page learns it (`wx.config`
//! fails with "invalid signature"). A caller reports the failed signature
//! ([`TicketManager::sign`] with `failed`), and the ticket is replaced only if that
//! signature was made with the current one, and no sooner than [`REPORT_FLOOR_SECS`]
//! after it was fetched.

use crate::clock::Clock;
use crate::config::{AppConfig, TokenSettings};
use crate::domain::{AppId, AppKind, JsPageUrl, TicketKind, random_alphanumeric};
use crate::renewal::{Cache, Current, Renewable};
use crate::store::{Store, StoreError, StoredTicket};
use crate::token::{CallError, TokenError, TokenManager};
use crate::wechat::ticket::js_sdk_signature;
use crate::wechat::types::TicketResponse;
use crate::wechat::{ErrCode, ErrorClass, WechatClient};
use rand::RngExt;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Attempts per getticket for transient failures (-1, timeouts, connection errors).
const FETCH_ATTEMPTS: u32 = 3;
/// A ticket reported as failed is replaced only once it is this old. A page whose URL
/// differs from the one it asked a signature for fails with "invalid signature" on every
/// load, and would otherwise spend a getticket on every report; a ticket WeChat really
/// revoked is replaced at most this late.
pub const REPORT_FLOOR_SECS: i64 = 300;
/// The nonce of a signature: WeChat's examples use 16 letters and digits.
const NONCE_LEN: usize = 16;

/// A ticket handed to a caller. Debug leaves the ticket out: it is never logged.
#[derive(Clone)]
pub struct Ticket {
    pub ticket: Arc<str>,
    pub kind: TicketKind,
    pub expires_at: i64,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The signed part of a `wx.config`.
#[derive(Debug, Clone)]
pub struct Signed {
    pub appid: String,
    pub timestamp: i64,
    pub nonce: String,
    pub signature: String,
}

/// A signature a page reported as refused by `wx.config` ("invalid signature").
#[derive(Debug, Clone)]
pub struct FailedSignature {
    pub timestamp: i64,
    pub nonce: String,
    pub signature: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("no app named {0} is configured")]
    UnknownApp(String),
    #[error("app {0} is not an Official Account: JS-SDK tickets belong to Official Accounts")]
    NotOfficialAccount(AppId),
    /// The access token getticket needs could not be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("WeChat quota reached for app {app}'s {kind} ticket: {code}")]
    Quota {
        app: AppId,
        kind: TicketKind,
        code: ErrCode,
    },
    #[error("WeChat refused app {app}'s {kind} ticket: {code}")]
    Refused {
        app: AppId,
        kind: TicketKind,
        code: ErrCode,
    },
    #[error("no valid {kind} ticket for app {app}: {reason}")]
    Unavailable {
        app: AppId,
        kind: TicketKind,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a refresh is wanted; decides whether a ticket someone else stored will do.
#[derive(Debug, Clone)]
enum Reason {
    Missing,
    Proactive,
    /// A page's `wx.config` refused a signature made with this ticket.
    Invalidated(Arc<str>),
}

struct Slot {
    app: AppConfig,
    kind: TicketKind,
    current: Cache,
    /// Single flight within this process.
    refresh: tokio::sync::Mutex<()>,
    /// This instance's extra delay inside the refresh window.
    jitter: i64,
}

/// Owns every Official Account's tickets; cheap to clone.
#[derive(Clone)]
pub struct TicketManager {
    inner: Arc<Inner>,
}

struct Inner {
    slots: HashMap<(AppId, TicketKind), Arc<Slot>>,
    /// Every configured app, to tell a mini-program from an unknown name.
    apps: HashSet<AppId>,
    store: Store,
    wechat: WechatClient,
    tokens: TokenManager,
    clock: Clock,
    settings: TokenSettings,
    /// Names this instance in the refresh lease.
    owner: String,
}

impl TicketManager {
    pub fn new(
        apps: &[AppConfig],
        store: Store,
        wechat: WechatClient,
        tokens: TokenManager,
        clock: Clock,
        settings: TokenSettings,
    ) -> Self {
        let mut rng = rand::rng();
        let mut slots = HashMap::new();
        for a in apps.iter().filter(|a| a.kind == AppKind::OfficialAccount) {
            for kind in TicketKind::ALL {
                let jitter = if settings.jitter_secs > 0 {
                    rng.random_range(0..=settings.jitter_secs)
                } else {
                    0
                };
                let slot = Slot {
                    app: a.clone(),
                    kind,
                    current: Cache::default(),
                    refresh: tokio::sync::Mutex::new(()),
                    jitter,
                };
                slots.insert((a.id.clone(), kind), Arc::new(slot));
            }
        }
        let owner = format!("wxlink-{}", crate::domain::OneTimeCode::generate().expose());
        Self {
            inner: Arc::new(Inner {
                slots,
                apps: apps.iter().map(|a| a.id.clone()).collect(),
                store,
                wechat,
                tokens,
                clock,
                settings,
                owner,
            }),
        }
    }

    fn slot(&self, app: &AppId, kind: TicketKind) -> Result<&Arc<Slot>, TicketError> {
        match self.inner.slots.get(&(app.clone(), kind)) {
            Some(s) => Ok(s),
            None if self.inner.apps.contains(app) => {
                Err(TicketError::NotOfficialAccount(app.clone()))
            }
            None => Err(TicketError::UnknownApp(app.to_string())),
        }
    }

    /// A valid ticket: from memory when there is one, else fetched once for all callers.
    pub async fn get(&self, app: &AppId, kind: TicketKind) -> Result<Ticket, TicketError> {
        let slot = self.slot(app, kind)?;
        if let Some(c) = slot.current.get()
            && c.usable_at(self.inner.clock.now())
        {
            return Ok(slot.ticket(c));
        }
        self.refresh(slot, Reason::Missing).await
    }

    /// "This ticket failed": replaced only if it is still the current one and at least
    /// [`REPORT_FLOOR_SECS`] old.
    pub async fn invalidate(
        &self,
        app: &AppId,
        kind: TicketKind,
        failed: &str,
    ) -> Result<Ticket, TicketError> {
        let slot = self.slot(app, kind)?;
        if let Some(c) = slot.current.get()
            && *c.value != *failed
            && c.usable_at(self.inner.clock.now())
        {
            return Ok(slot.ticket(c));
        }
        self.refresh(slot, Reason::Invalidated(Arc::from(failed)))
            .await
    }

    /// Signs `page` for `wx.config` with the app's jsapi ticket. With `failed`, a signature
    /// the page's `wx.config` refused: when it was made with the current ticket for this
    /// page, that ticket is replaced first (compare-and-invalidate); otherwise it came from
    /// an older ticket, or another page, and the current ticket signs.
    pub async fn sign(
        &self,
        app: &AppId,
        page: &JsPageUrl,
        failed: Option<&FailedSignature>,
    ) -> Result<Signed, TicketError> {
        let mut ticket = self.get(app, TicketKind::Jsapi).await?;
        if let Some(f) = failed {
            let made_with_current =
                js_sdk_signature(&ticket.ticket, &f.nonce, f.timestamp, page.as_str());
            if crate::wechat::crypto::signature_matches(&made_with_current, &f.signature) {
                tracing::warn!(app = %app, "a page's wx.config refused our signature: the jsapi ticket is replaced unless it is younger than the report floor (then check that the page's location.href is the url it asked for)");
                ticket = self
                    .invalidate(app, TicketKind::Jsapi, &ticket.ticket)
                    .await?;
            }
        }
        let slot = self.slot(app, TicketKind::Jsapi)?;
        let timestamp = self.inner.clock.now();
        let nonce = random_alphanumeric(NONCE_LEN);
        Ok(Signed {
            appid: slot.app.wechat.appid.to_string(),
            signature: js_sdk_signature(&ticket.ticket, &nonce, timestamp, page.as_str()),
            timestamp,
            nonce,
        })
    }

    async fn refresh(&self, slot: &Slot, reason: Reason) -> Result<Ticket, TicketError> {
        let _single_flight = slot.refresh.lock().await;
        let s = &self.inner;
        let (id, kind) = (&slot.app.id, slot.kind);
        // Waiting on another instance's lease is bounded by the lease itself.
        let give_up =
            tokio::time::Instant::now() + Duration::from_secs(s.settings.lease_secs as u64 + 5);
        loop {
            let now = s.clock.now();
            if let Some(c) = slot.current.get()
                && self.will_do(slot, &reason, &c, now)
            {
                return Ok(slot.ticket(c));
            }
            let row = s.store.stored_ticket(id, kind, now).await?;
            if let Some(c) = current_of(&row)
                && self.will_do(slot, &reason, &c, now)
            {
                slot.current.set(c.clone());
                return Ok(slot.ticket(c));
            }
            if !s
                .store
                .try_ticket_lease(id, kind, &s.owner, row.version, now, s.settings.lease_secs)
                .await?
            {
                if tokio::time::Instant::now() >= give_up {
                    return Err(TicketError::Unavailable {
                        app: id.clone(),
                        kind,
                        reason: "another instance holds the refresh lease and has not finished"
                            .into(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let fetched = match self.fetch(slot).await {
                Ok(t) => t,
                Err(e) => {
                    s.store.release_ticket_lease(id, kind, &s.owner).await?;
                    // Upstream trouble while the ticket still works: keep serving it.
                    if !matches!(reason, Reason::Invalidated(_))
                        && let Some(c) = slot.current.get().or_else(|| current_of(&row))
                        && c.usable_at(s.clock.now())
                    {
                        return Ok(slot.ticket(c));
                    }
                    return Err(e);
                }
            };
            let now = s.clock.now();
            let expires_at = now + fetched.expires_in;
            let day = crate::clock::beijing_day(now);
            match s
                .store
                .save_ticket(id, kind, row.version, &fetched.ticket, expires_at, now, day)
                .await?
            {
                Some(version) => {
                    let c = Current {
                        value: Arc::from(fetched.ticket),
                        expires_at,
                        version,
                        fetched_at: now,
                    };
                    slot.current.set(c.clone());
                    tracing::info!(app = %id, kind = %kind, version, expires_at, "JS-SDK ticket refreshed");
                    return Ok(slot.ticket(c));
                }
                // Someone wrote a newer ticket while we fetched (our lease ran out): theirs wins.
                None => continue,
            }
        }
    }

    fn will_do(&self, slot: &Slot, reason: &Reason, c: &Current, now: i64) -> bool {
        let valid = c.usable_at(now);
        match reason {
            Reason::Missing => valid,
            Reason::Proactive => valid && now < self.refresh_at(slot, c),
            // A report of a ticket younger than the floor is answered with that ticket.
            Reason::Invalidated(bad) => {
                valid && (c.value != *bad || now - c.fetched_at < REPORT_FLOOR_SECS)
            }
        }
    }

    fn refresh_at(&self, slot: &Slot, c: &Current) -> i64 {
        c.expires_at - self.inner.settings.refresh_margin_secs + slot.jitter
    }

    /// One getticket with the app's access token (replaced once if WeChat refuses it),
    /// with bounded retries for transient failures only.
    async fn fetch(&self, slot: &Slot) -> Result<TicketResponse, TicketError> {
        let s = &self.inner;
        let (id, kind) = (&slot.app.id, slot.kind);
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 1..=FETCH_ATTEMPTS {
            let result = s
                .tokens
                .call(id, |token| {
                    let (wechat, creds) = (s.wechat.clone(), slot.app.wechat.clone());
                    async move { wechat.get_ticket(&creds, &token, kind).await }
                })
                .await;
            let e = match result {
                Ok(t) => return Ok(t),
                Err(CallError::Token(e)) => return Err(e.into()),
                Err(CallError::Wechat(e)) => e,
            };
            match e.code() {
                Some(code @ (ErrCode::DailyQuota | ErrCode::MinuteQuota)) => {
                    tracing::error!(app = %id, kind = %kind, error = %e, "getticket quota reached");
                    return Err(TicketError::Quota {
                        app: id.clone(),
                        kind,
                        code,
                    });
                }
                Some(code) if code.class() != ErrorClass::Retryable => {
                    tracing::error!(app = %id, kind = %kind, error = %e, "getticket refused");
                    return Err(TicketError::Refused {
                        app: id.clone(),
                        kind,
                        code,
                    });
                }
                _ => {}
            }
            tracing::warn!(app = %id, kind = %kind, attempt, error = %e, "getticket failed");
            last = e.to_string();
            if attempt < FETCH_ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(TicketError::Unavailable {
            app: id.clone(),
            kind,
            reason: last,
        })
    }

    /// Keeps every ticket in use fresh until `stop`: adopts tickets other instances
    /// stored and refreshes them in the refresh window. A ticket nobody asked for yet is
    /// left alone.
    pub fn spawn_refreshers(&self, stop: CancellationToken) {
        for slot in self.inner.slots.values() {
            let this = self.clone();
            let slot = slot.clone();
            let stop = stop.clone();
            let span =
                tracing::info_span!("ticket_refresher", app = %slot.app.id, kind = %slot.kind);
            tokio::spawn(tracing::Instrument::instrument(
                async move { this.refresher(slot, stop).await },
                span,
            ));
        }
    }

    async fn refresher(&self, slot: Arc<Slot>, stop: CancellationToken) {
        let tick = Duration::from_millis(self.inner.settings.check_interval_ms);
        let renewing = Renewing {
            manager: self,
            slot: &slot,
        };
        crate::renewal::keep_fresh(&renewing, &self.inner.clock, tick, stop).await;
    }
}

/// One ticket, as its refresher keeps it.
struct Renewing<'a> {
    manager: &'a TicketManager,
    slot: &'a Slot,
}

impl Renewable for Renewing<'_> {
    async fn adopt_stored(&self, now: i64) {
        let slot = self.slot;
        match self
            .manager
            .inner
            .store
            .stored_ticket(&slot.app.id, slot.kind, now)
            .await
        {
            Ok(row) => slot.current.adopt(current_of(&row), now),
            Err(e) => tracing::warn!(error = %e, "cannot read the stored JS-SDK ticket"),
        }
    }

    /// A ticket nobody asked for yet is left alone.
    fn due(&self, now: i64) -> bool {
        self.slot
            .current
            .get()
            .is_some_and(|c| now >= self.manager.refresh_at(self.slot, &c))
    }

    async fn renew(&self) -> bool {
        match self.manager.refresh(self.slot, Reason::Proactive).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "JS-SDK ticket refresh failed");
                false
            }
        }
    }
}

impl Slot {
    fn ticket(&self, c: Current) -> Ticket {
        Ticket {
            ticket: c.value,
            kind: self.kind,
            expires_at: c.expires_at,
        }
    }
}

fn current_of(row: &StoredTicket) -> Option<Current> {
    Some(Current {
        value: Arc::from(row.ticket.as_deref()?),
        expires_at: row.expires_at,
        version: row.version,
        fetched_at: row.fetched_at.unwrap_or(0),
    })
}
