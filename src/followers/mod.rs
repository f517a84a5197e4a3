//! Follower info completes Official Account identities: WeChat's `user/info` gives a
//! follower's unionid, follow state and follow time, which `snsapi_base` never does.
//!
//! Lookups happen on a `subscribe` push (queued in the push's transaction by
//! [`crate::store::StoreTx::queue_follower_refresh`], looked up here in the background so
//! the push is answered at once), on demand
//! ([`Followers::look_up`]), in the background for identities without a unionid within a
//! daily quota ([`Followers::fill_once`]), and for every follower by an import
//! ([`import`]). A unionid learnt this way links by the rules of
//! [`crate::identity::link`]: an unbound identity joins the one user its unionid belongs
//! to; a bound identity is never re-pointed.

pub mod import;

use crate::clock::{Clock, Timestamp, beijing_day, next_beijing_midnight};
use crate::config::{AppConfig, AppKind, FollowerSettings};
use crate::domain::{AppId, OpenId, UnionId};
use crate::identity::link;
use crate::store::{FOLLOWERS_QUEUED, Identity, LookedUp, Store, StoreError};
use crate::token::{CallError, TokenError, TokenManager};
use crate::wechat::user::{BATCHGET_MAX, FollowerInfo};
use crate::wechat::{ErrCode, ErrorClass, WechatClient, WechatError};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A queued lookup is held this long by the instance that claimed it: a failed one is
/// retried after it.
const QUEUE_HOLD_SECS: i64 = 30;
/// A queued lookup is given up after this many failed attempts.
const QUEUE_ATTEMPTS: i64 = 5;

/// Why a lookup could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Wechat(WechatError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CallError> for LookupError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Token(t) => Self::Token(t),
            CallError::Wechat(w) => Self::Wechat(w),
        }
    }
}

/// What a worker does about a failed lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient (busy, unreachable, no token now): try again soon.
    Soon,
    /// WeChat's daily quota is spent: nothing goes through until midnight Beijing time.
    AfterMidnight,
    /// Retrying cannot help (permission, credentials, a store fault is `Soon`).
    Never,
}

impl LookupError {
    pub fn retry(&self) -> Retry {
        let class = |code: ErrCode| match code.class() {
            ErrorClass::DailyQuota => Retry::AfterMidnight,
            ErrorClass::Retryable | ErrorClass::TokenInvalid => Retry::Soon,
            ErrorClass::Permanent => Retry::Never,
        };
        match self {
            Self::Wechat(WechatError::Api { code, .. }) => class(*code),
            Self::Wechat(_) | Self::Store(_) => Retry::Soon,
            Self::Token(TokenError::Quota { code, .. }) => class(*code),
            Self::Token(TokenError::Refused { .. }) | Self::Token(TokenError::UnknownApp(_)) => {
                Retry::Never
            }
            Self::Token(_) => Retry::Soon,
        }
    }
}

/// One looked-up identity.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Stored (and bound, when its unionid led to one user).
    Identity(Box<Identity>),
    /// WeChat does not know the openid for this app (40003).
    InvalidOpenid(OpenId),
}

/// The lookups' owner: on-demand, queued, background and import; cheap to clone.
#[derive(Clone)]
pub struct Followers {
    inner: Arc<Inner>,
}

struct Inner {
    apps: Vec<AppConfig>,
    store: Store,
    tokens: TokenManager,
    wechat: WechatClient,
    clock: Clock,
    settings: FollowerSettings,
    /// Names this instance in import leases.
    owner: String,
}

impl Followers {
    pub fn new(
        apps: &[AppConfig],
        store: Store,
        tokens: TokenManager,
        wechat: WechatClient,
        clock: Clock,
        settings: FollowerSettings,
    ) -> Self {
        let owner = format!(
            "wxlink-{}",
            &crate::domain::OneTimeCode::generate().expose()[..12]
        );
        Self {
            inner: Arc::new(Inner {
                apps: apps
                    .iter()
                    .filter(|a| a.kind == AppKind::OfficialAccount)
                    .cloned()
                    .collect(),
                store,
                tokens,
                wechat,
                clock,
                settings,
                owner,
            }),
        }
    }

    pub fn settings(&self) -> &FollowerSettings {
        &self.inner.settings
    }

    fn app(&self, id: &AppId) -> Option<&AppConfig> {
        self.inner.apps.iter().find(|a| &a.id == id)
    }

    /// Looks `openids` up (batchget, 100 a call) and stores what WeChat said, linking by
    /// unionid. `trigger` labels the metric (`subscribe`, `refresh`, `background`,
    /// `import`). An openid WeChat does not know (40003) is found by asking for the batch
    /// one by one, so one bad openid does not sink the others.
    pub async fn look_up(
        &self,
        app: &AppConfig,
        openids: &[OpenId],
        trigger: &'static str,
    ) -> Result<Vec<Outcome>, LookupError> {
        let mut out = Vec::with_capacity(openids.len());
        for chunk in openids.chunks(BATCHGET_MAX) {
            let (infos, invalid) = self.fetch(app, chunk).await?;
            crate::metrics::follower_lookups(&app.id, trigger, chunk.len());
            let now = self.inner.clock.timestamp();
            for o in &invalid {
                self.inner
                    .store
                    .mark_openid_invalid(&app.id, o, now)
                    .await?;
            }
            let (identities, _) = self.store_and_link(&app.id, &infos, now).await?;
            out.extend(
                identities
                    .into_iter()
                    .map(|i| Outcome::Identity(Box::new(i))),
            );
            out.extend(invalid.into_iter().map(Outcome::InvalidOpenid));
        }
        Ok(out)
    }

    /// WeChat's info for up to 100 openids, and the openids it does not know.
    async fn fetch(
        &self,
        app: &AppConfig,
        chunk: &[OpenId],
    ) -> Result<(Vec<LookedUp>, Vec<OpenId>), LookupError> {
        let s = &self.inner;
        let batch = s
            .tokens
            .call(&app.id, |token| async move {
                s.wechat.user_info_batch(&app.wechat, &token, chunk).await
            })
            .await;
        let infos = match batch {
            Ok(infos) => infos,
            Err(CallError::Wechat(e)) if e.code() == Some(ErrCode::InvalidOpenId) => {
                return self.fetch_one_by_one(app, chunk).await;
            }
            Err(e) => return Err(e.into()),
        };
        Ok((parse_infos(&app.id, infos), Vec::new()))
    }

    async fn fetch_one_by_one(
        &self,
        app: &AppConfig,
        chunk: &[OpenId],
    ) -> Result<(Vec<LookedUp>, Vec<OpenId>), LookupError> {
        let s = &self.inner;
        let (mut infos, mut invalid) = (Vec::new(), Vec::new());
        for openid in chunk {
            let one = s
                .tokens
                .call(&app.id, |token| async move {
                    s.wechat.user_info(&app.wechat, &token, openid).await
                })
                .await;
            match one {
                Ok(info) => infos.push(info),
                Err(CallError::Wechat(e)) if e.code() == Some(ErrCode::InvalidOpenId) => {
                    invalid.push(openid.clone())
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((parse_infos(&app.id, infos), invalid))
    }

    /// Stores the infos and binds each unbound identity whose unionid belongs to exactly
    /// one user; returns the identities as they are now, and how many are bound.
    async fn store_and_link(
        &self,
        app: &AppId,
        infos: &[LookedUp],
        now: Timestamp,
    ) -> Result<(Vec<Identity>, i64), StoreError> {
        let store = &self.inner.store;
        let mut identities = store.save_follower_infos(app, infos, now).await?;
        let unionids: Vec<UnionId> = identities
            .iter()
            .filter(|i| i.user_id.is_none())
            .filter_map(|i| i.unionid.clone())
            .collect();
        let bound: HashSet<UnionId> = store.bound_unionids(&unionids).await?.into_iter().collect();
        for identity in identities.iter_mut() {
            let Some(u) = identity.unionid.as_ref() else {
                continue;
            };
            if identity.user_id.is_some() || !bound.contains(u) {
                continue;
            }
            let found = link::find_user(store, identity, now).await?;
            if let link::Lookup::User(user) = found {
                identity.user_id = Some(user);
            }
        }
        let n = identities.iter().filter(|i| i.user_id.is_some()).count() as i64;
        Ok((identities, n))
    }

    /// Looks up what `subscribe` pushes queued, in batches per app; returns how many were
    /// taken. A failed batch stays queued (retried after `QUEUE_HOLD_SECS`), and is given
    /// up after `QUEUE_ATTEMPTS` attempts.
    pub async fn drain_queue_once(&self) -> Result<usize, StoreError> {
        let s = &self.inner;
        let mut taken = 0;
        loop {
            let now = s.clock.timestamp();
            let claimed = s
                .store
                .claim_follower_refreshes(now, QUEUE_HOLD_SECS, BATCHGET_MAX as i64)
                .await?;
            if claimed.is_empty() {
                return Ok(taken);
            }
            taken += claimed.len();
            let mut by_app: BTreeMap<AppId, Vec<(OpenId, i64)>> = BTreeMap::new();
            for (app, openid, attempts) in claimed {
                by_app.entry(app).or_default().push((openid, attempts));
            }
            for (app_id, rows) in by_app {
                let openids: Vec<OpenId> = rows.iter().map(|(o, _)| o.clone()).collect();
                let Some(app) = self.app(&app_id) else {
                    // No longer configured as an Official Account: nothing to ask.
                    s.store.finish_follower_refreshes(&app_id, &openids).await?;
                    continue;
                };
                match self.look_up(app, &openids, "subscribe").await {
                    Ok(_) => s.store.finish_follower_refreshes(&app_id, &openids).await?,
                    Err(e) => {
                        let attempts = rows.iter().map(|(_, a)| *a).max().unwrap_or(1);
                        if e.retry() == Retry::Never || attempts >= QUEUE_ATTEMPTS {
                            tracing::warn!(app = %app_id, error = %e, attempts, "follower lookups after subscribe given up");
                            s.store.finish_follower_refreshes(&app_id, &openids).await?;
                        } else {
                            tracing::warn!(app = %app_id, error = %e, attempts, "follower lookups after subscribe failed; retried later");
                            return Ok(taken);
                        }
                    }
                }
            }
        }
    }

    /// One pass of the background fill: for each Official Account, identities without a
    /// unionid never looked up, as far as the day's quota allows. Returns how many were
    /// looked up.
    pub async fn fill_once(&self) -> Result<usize, LookupError> {
        let s = &self.inner;
        let limit = s.settings.background_daily_quota;
        let mut done = 0;
        for app in &s.apps {
            let day = beijing_day(s.clock.now());
            if limit > 0 {
                loop {
                    let todo = s
                        .store
                        .identities_to_fill(&app.id, BATCHGET_MAX as i64)
                        .await?;
                    if todo.is_empty() {
                        break;
                    }
                    let granted = s
                        .store
                        .take_follower_quota(&app.id, day, todo.len() as i64, limit)
                        .await?;
                    if granted == 0 {
                        break;
                    }
                    let batch = &todo[..granted as usize];
                    self.look_up(app, batch, "background").await?;
                    done += batch.len();
                }
            }
            let used = s.store.follower_quota_used(&app.id, day).await?;
            crate::metrics::follower_fill_quota(&app.id, used, limit);
        }
        Ok(done)
    }

    /// Runs the workers until `stop`: the queue (woken by pushes, else every
    /// `poll_interval_ms`), imports (claimed and resumed on the same beat) and the
    /// background fill (every `background_interval_secs`).
    pub fn spawn(&self, stop: CancellationToken) {
        if self.inner.apps.is_empty() {
            return;
        }
        let me = self.clone();
        let poll = Duration::from_millis(me.inner.settings.poll_interval_ms);
        let stop_queue = stop.clone();
        tokio::spawn(async move {
            let mut imports = tokio::task::JoinSet::new();
            loop {
                // Pushes that arrive together are looked up together.
                if let Err(e) = me.drain_queue_once().await {
                    tracing::warn!(error = %e, "follower lookup queue failed; trying again");
                }
                while imports.try_join_next().is_some() {}
                if imports.is_empty() {
                    let worker = me.clone();
                    imports.spawn(async move {
                        if let Err(e) = worker.run_claimed_import(None, &mut |_: &crate::store::FollowerImport| {}).await {
                            tracing::warn!(error = %e, "follower import step failed; resumed later");
                        }
                    });
                }
                tokio::select! {
                    _ = stop_queue.cancelled() => {
                        imports.abort_all();
                        return;
                    }
                    _ = FOLLOWERS_QUEUED.notified() => tokio::time::sleep(Duration::from_millis(20)).await,
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        });
        let me = self.clone();
        let every = Duration::from_secs(me.inner.settings.background_interval_secs);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                match me.fill_once().await {
                    Ok(n) if n > 0 => tracing::info!(looked_up = n, "background follower fill"),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "background follower fill stopped; next pass later")
                    }
                }
            }
        });
    }

    /// When a paused lookup may be tried again.
    fn retry_at(&self, retry: Retry) -> Timestamp {
        let now = self.inner.clock.now();
        Timestamp::from_secs(match retry {
            Retry::AfterMidnight => next_beijing_midnight(now),
            Retry::Soon | Retry::Never => now + self.inner.settings.import_lease_secs.min(30),
        })
    }
}

/// WeChat's answers as stored values; an openid or unionid that is not one is skipped
/// (and logged): WeChat's own never are.
fn parse_infos(app: &AppId, infos: Vec<FollowerInfo>) -> Vec<LookedUp> {
    infos
        .into_iter()
        .filter_map(|info| {
            let Ok(openid) = OpenId::parse(&info.openid) else {
                tracing::warn!(app = %app, "WeChat named a malformed openid in follower info; skipped");
                return None;
            };
            let follows = info.follows();
            let unionid = info
                .unionid
                .as_deref()
                .filter(|u| !u.is_empty())
                .and_then(|u| UnionId::parse(u).ok());
            Some(LookedUp {
                openid,
                follows,
                since: info
                    .subscribe_time
                    .filter(|_| follows)
                    .map(Timestamp::from_secs),
                unionid,
            })
        })
        .collect()
}
