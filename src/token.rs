//! The central control of each app's global access token.
//!
//! One [`TokenManager`] per process keeps every app's token in memory and refreshes it in the
//! background before it expires. Across processes sharing a store, a lease lets exactly one
//! instance call WeChat per refresh, and compare-and-set on a version number keeps an older
//! token from ever overwriting a newer one. Callers that see a token fail report it
//! ([`TokenManager::invalidate`]); it is replaced only if it is still the current one.

use crate::clock::Clock;
use crate::config::{AppConfig, TokenMode, TokenSettings};
use crate::domain::AppId;
use crate::renewal::{Cache, Current, Renewable};
use crate::store::{ForceRefreshDenied, Store, StoreError, StoredToken};
use crate::wechat::types::AccessTokenResponse;
use crate::wechat::{ErrCode, ErrorClass, WechatClient, WechatError};
use rand::RngExt;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Attempts per upstream fetch for transient failures (-1, timeouts, connection errors).
const FETCH_ATTEMPTS: u32 = 3;
/// The same upstream error is logged at error level at most once per this window.
const LOG_WINDOW_SECS: i64 = 300;

/// A token handed to a caller.
#[derive(Clone)]
pub struct AccessToken {
    pub token: Arc<str>,
    pub expires_at: i64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no app named {0} is configured")]
    UnknownApp(String),
    /// No valid token, and none could be had right now.
    #[error("no valid access token for app {app}: {reason}")]
    Unavailable { app: AppId, reason: String },
    /// WeChat refused for a reason retrying cannot fix (credentials, IP whitelist...).
    #[error("WeChat refused the access token for app {app}: {code}")]
    Refused { app: AppId, code: ErrCode },
    /// WeChat's quota (45009 daily, 45011 per minute); not hammered.
    #[error("WeChat quota reached for app {app}: {code}")]
    Quota { app: AppId, code: ErrCode },
    #[error(
        "force_refresh for app {app} refused by our budget (WeChat allows 20 a day, 30 s apart): {denied:?}"
    )]
    ForceRefreshBudget {
        app: AppId,
        denied: ForceRefreshDenied,
    },
    /// The reporting API key's reports already caused its daily share of forced refreshes.
    #[error(
        "the API key {key:?} already caused {limit} forced refreshes of app {app}'s token today (tokens.invalidations_per_key_per_day); the count starts again at midnight in Beijing"
    )]
    InvalidationLimit {
        app: AppId,
        key: String,
        limit: i64,
        retry_after_secs: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a refresh is wanted; decides whether a token someone else stored will do.
#[derive(Debug, Clone)]
enum Reason {
    /// No usable token in memory.
    Missing,
    /// The token is in its refresh window.
    Proactive,
    /// A caller reported this token as refused by WeChat; with the API key that reported
    /// it, when one did (the forced refreshes it causes are counted against the key).
    Invalidated(Arc<str>, Option<Arc<str>>),
}

/// What an instance knows about one app's token, for metrics and operators' pages.
#[derive(Debug, Clone)]
pub struct TokenStatus {
    pub app: AppId,
    pub mode: TokenMode,
    /// When the served token was fetched; `None` while there is none.
    pub fetched_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// The last refresh failure, while the last attempt failed.
    pub last_failure: Option<String>,
}

#[derive(Default)]
struct Health {
    /// errcode (or 0 for transport) -> when it was last logged at error level
    logged: HashMap<i64, i64>,
    /// The last failure, for the 503 message.
    last_failure: Option<String>,
}

struct AppToken {
    app: AppConfig,
    current: Cache,
    /// Single flight within this process.
    refresh: tokio::sync::Mutex<()>,
    health: Mutex<Health>,
    /// This instance's extra delay inside the refresh window, so instances do not all try at once.
    jitter: i64,
}

/// Owns every configured app's access token; cheap to clone.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    apps: HashMap<AppId, Arc<AppToken>>,
    store: Store,
    wechat: WechatClient,
    clock: Clock,
    settings: TokenSettings,
    /// Names this instance in the refresh lease.
    owner: String,
}

impl TokenManager {
    pub fn new(
        apps: &[AppConfig],
        store: Store,
        wechat: WechatClient,
        clock: Clock,
        settings: TokenSettings,
    ) -> Self {
        let mut rng = rand::rng();
        let apps = apps
            .iter()
            .map(|a| {
                let jitter = if settings.jitter_secs > 0 {
                    rng.random_range(0..=settings.jitter_secs)
                } else {
                    0
                };
                let t = AppToken {
                    app: a.clone(),
                    current: Cache::default(),
                    refresh: tokio::sync::Mutex::new(()),
                    health: Mutex::new(Health::default()),
                    jitter,
                };
                (a.id.clone(), Arc::new(t))
            })
            .collect();
        let owner = format!("wxlink-{}", crate::domain::OneTimeCode::generate().expose());
        Self {
            inner: Arc::new(Inner {
                apps,
                store,
                wechat,
                clock,
                settings,
                owner,
            }),
        }
    }

    fn app(&self, id: &AppId) -> Result<&Arc<AppToken>, TokenError> {
        self.inner
            .apps
            .get(id)
            .ok_or_else(|| TokenError::UnknownApp(id.to_string()))
    }

    /// A valid token: from memory when there is one (the hot path), else refreshed once for
    /// all concurrent callers.
    pub async fn get(&self, app: &AppId) -> Result<AccessToken, TokenError> {
        let at = self.app(app)?;
        let now = self.inner.clock.now();
        if let Some(c) = at.current.get()
            && c.usable_at(now)
        {
            return Ok(c.into());
        }
        self.refresh(at, Reason::Missing).await
    }

    /// "This token failed for me": replaced only if it is still the current one; otherwise
    /// the current one is returned without calling WeChat.
    pub async fn invalidate(&self, app: &AppId, failed: &str) -> Result<AccessToken, TokenError> {
        self.invalidate_by(app, failed, None).await
    }

    /// [`Self::invalidate`] reported by an API key: a `force_refresh` the report causes is
    /// counted against the key's `tokens.invalidations_per_key_per_day` (reports answered
    /// from memory, or joined to a refresh already under way, cost nothing).
    pub async fn invalidate_by(
        &self,
        app: &AppId,
        failed: &str,
        key: Option<&str>,
    ) -> Result<AccessToken, TokenError> {
        let at = self.app(app)?;
        let now = self.inner.clock.now();
        if let Some(c) = at.current.get()
            && &*c.value != failed
            && c.usable_at(now)
        {
            return Ok(c.into());
        }
        let reason = Reason::Invalidated(Arc::from(failed), key.map(Arc::from));
        self.refresh(at, reason).await
    }

    /// Calls a WeChat API with the app's token; on a token-invalid answer (40001, 40014,
    /// 42001, 41001) reports the token, and retries once with the replacement.
    pub async fn call<T, F, Fut>(&self, app: &AppId, f: F) -> Result<T, CallError>
    where
        F: Fn(Arc<str>) -> Fut,
        Fut: Future<Output = Result<T, WechatError>>,
    {
        let tok = self.get(app).await?;
        match f(tok.token.clone()).await {
            Err(e) if e.code().map(ErrCode::class) == Some(ErrorClass::TokenInvalid) => {
                tracing::warn!(app = %app, error = %e, "access token refused; invalidating and retrying once");
                let fresh = self.invalidate(app, &tok.token).await?;
                f(fresh.token).await.map_err(CallError::Wechat)
            }
            other => other.map_err(CallError::Wechat),
        }
    }

    async fn refresh(&self, at: &AppToken, reason: Reason) -> Result<AccessToken, TokenError> {
        let _single_flight = at.refresh.lock().await;
        let s = &self.inner;
        let id = &at.app.id;
        let mode = at.app.token_mode.as_str();
        // Waiting on another instance's lease is bounded by the lease itself.
        let give_up =
            tokio::time::Instant::now() + Duration::from_secs(s.settings.lease_secs as u64 + 5);
        loop {
            let now = s.clock.now();
            if let Some(c) = at.current.get()
                && self.will_do(at, &reason, &c, now)
            {
                return Ok(c.into());
            }
            let row = match s.store.stored_token(id, mode, now).await {
                Ok(row) => row,
                Err(e) => {
                    crate::metrics::token_refresh(id, mode, "failed");
                    return Err(e.into());
                }
            };
            if let Some(c) = current_of(&row)
                && self.will_do(at, &reason, &c, now)
            {
                crate::metrics::token_refresh(id, mode, "adopted");
                at.current.set(c.clone());
                return Ok(c.into());
            }
            if !s
                .store
                .try_token_lease(id, &s.owner, row.version, now, s.settings.lease_secs)
                .await?
            {
                if tokio::time::Instant::now() >= give_up {
                    crate::metrics::token_refresh(id, mode, "failed");
                    return self.unavailable(
                        at,
                        "another instance holds the refresh lease and has not finished",
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let fetched = match self.fetch_for(at, &reason).await {
                Ok(t) => t,
                Err(e) => {
                    s.store.release_token_lease(id, &s.owner).await?;
                    // Upstream trouble while the token still works: keep serving it.
                    if !matches!(reason, Reason::Invalidated(..))
                        && let Some(c) = at.current.get().or_else(|| current_of(&row))
                        && c.usable_at(s.clock.now())
                    {
                        crate::metrics::token_refresh(id, mode, "kept");
                        return Ok(c.into());
                    }
                    crate::metrics::token_refresh(id, mode, "failed");
                    return Err(e);
                }
            };
            let now = s.clock.now();
            let expires_at = now + fetched.expires_in;
            let day = crate::clock::beijing_day(now);
            match s
                .store
                .save_token(id, row.version, &fetched.access_token, expires_at, now, day)
                .await?
            {
                Some(version) => {
                    let c = Current {
                        value: Arc::from(fetched.access_token),
                        expires_at,
                        version,
                        fetched_at: now,
                    };
                    crate::metrics::token_refresh(id, mode, "fetched");
                    at.current.set(c.clone());
                    at.health
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .last_failure = None;
                    tracing::info!(app = %id, mode, version, expires_at, "access token refreshed");
                    return Ok(c.into());
                }
                // Someone wrote a newer token while we fetched (our lease ran out): theirs wins.
                None => continue,
            }
        }
    }

    /// Whether `c` satisfies the refresh that was asked for.
    fn will_do(&self, at: &AppToken, reason: &Reason, c: &Current, now: i64) -> bool {
        let valid = c.usable_at(now);
        match reason {
            Reason::Missing => valid,
            Reason::Proactive => valid && now < self.refresh_at(at, c),
            Reason::Invalidated(bad, _) => valid && c.value != *bad,
        }
    }

    fn refresh_at(&self, at: &AppToken, c: &Current) -> i64 {
        c.expires_at - self.inner.settings.refresh_margin_secs + at.jitter
    }

    /// The fetch a refresh needs. A reported stable token is replaced by a plain fetch
    /// when someone else already force-refreshed it (WeChat then answers the new one); only
    /// when WeChat still hands out the failed token is a rationed `force_refresh` spent.
    async fn fetch_for(
        &self,
        at: &AppToken,
        reason: &Reason,
    ) -> Result<AccessTokenResponse, TokenError> {
        match reason {
            Reason::Invalidated(bad, key) if at.app.token_mode == TokenMode::Stable => {
                let plain = self.fetch(at, false).await?;
                if *plain.access_token != **bad {
                    return Ok(plain);
                }
                self.forced(at, key.as_deref()).await
            }
            _ => self.fetch(at, false).await,
        }
    }

    /// A `force_refresh`, counted first against the reporting key's own daily limit (given
    /// back when our budget then refuses it before WeChat is asked).
    async fn forced(
        &self,
        at: &AppToken,
        key: Option<&str>,
    ) -> Result<AccessTokenResponse, TokenError> {
        let Some(key) = key else {
            return self.fetch(at, true).await;
        };
        let s = &self.inner;
        let id = &at.app.id;
        let now = s.clock.now();
        let day = crate::clock::beijing_day(now);
        let limit = s.settings.invalidations_per_key_per_day;
        if !s.store.reserve_invalidation(key, id, day, limit).await? {
            tracing::warn!(app = %id, api_key = key, limit, "per-key invalidation limit reached");
            return Err(TokenError::InvalidationLimit {
                app: id.clone(),
                key: key.to_owned(),
                limit,
                retry_after_secs: (crate::clock::next_beijing_midnight(now) - now).max(1),
            });
        }
        let result = self.fetch(at, true).await;
        if let Err(TokenError::ForceRefreshBudget { .. }) = &result {
            s.store.release_invalidation(key, id, day).await?;
        }
        result
    }

    /// One upstream fetch, with bounded retries for transient failures only.
    async fn fetch(&self, at: &AppToken, force: bool) -> Result<AccessTokenResponse, TokenError> {
        let s = &self.inner;
        let id = &at.app.id;
        if force {
            let now = s.clock.now();
            if let Err(denied) = s
                .store
                .reserve_force_refresh(id, now, crate::clock::beijing_day(now))
                .await?
            {
                let e = TokenError::ForceRefreshBudget {
                    app: id.clone(),
                    denied,
                };
                self.note_failure(at, -2, &e.to_string());
                crate::metrics::token_fetch(id, at.app.token_mode.as_str(), true, "budget");
                return Err(e);
            }
        }
        let mode = at.app.token_mode.as_str();
        let counted = |result: &'static str| crate::metrics::token_fetch(id, mode, force, result);
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 1..=FETCH_ATTEMPTS {
            let result = match at.app.token_mode {
                TokenMode::Stable => s.wechat.fetch_stable_token(&at.app.wechat, force).await,
                TokenMode::Classic => s.wechat.fetch_classic_token(&at.app.wechat).await,
            };
            let e = match result {
                Ok(t) => {
                    counted("ok");
                    return Ok(t);
                }
                Err(e) => e,
            };
            match e.code() {
                Some(code @ (ErrCode::DailyQuota | ErrCode::MinuteQuota)) => {
                    counted("quota");
                    self.note_failure(at, code.code(), &e.to_string());
                    return Err(TokenError::Quota {
                        app: id.clone(),
                        code,
                    });
                }
                Some(code) if code.class() != ErrorClass::Retryable => {
                    counted("refused");
                    self.note_failure(at, code.code(), &e.to_string());
                    return Err(TokenError::Refused {
                        app: id.clone(),
                        code,
                    });
                }
                Some(_) => counted("busy"),
                None => counted("unreachable"),
            }
            last = e.to_string();
            if attempt < FETCH_ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        self.note_failure(at, 0, &last);
        Err(TokenError::Unavailable {
            app: id.clone(),
            reason: last,
        })
    }

    fn unavailable(&self, at: &AppToken, reason: &str) -> Result<AccessToken, TokenError> {
        Err(TokenError::Unavailable {
            app: at.app.id.clone(),
            reason: reason.to_owned(),
        })
    }

    /// Records a failure; logs it at error level once per window per code.
    fn note_failure(&self, at: &AppToken, code: i64, message: &str) {
        let now = self.inner.clock.now();
        let mut h = at.health.lock().unwrap_or_else(|e| e.into_inner());
        h.last_failure = Some(message.to_owned());
        let last = h.logged.get(&code).copied();
        if last.is_none_or(|t| now - t >= LOG_WINDOW_SECS) {
            h.logged.insert(code, now);
            tracing::error!(app = %at.app.id, error = message, "access token refresh failed");
        } else {
            tracing::debug!(app = %at.app.id, error = message, "access token refresh failed again");
        }
    }

    /// The last refresh failure of an app, if the last attempt failed.
    pub fn last_failure(&self, app: &AppId) -> Option<String> {
        let at = self.inner.apps.get(app)?;
        at.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_failure
            .clone()
    }

    /// What this instance knows about every app's token, sorted by app id.
    pub fn status(&self) -> Vec<TokenStatus> {
        let mut out: Vec<TokenStatus> = self
            .inner
            .apps
            .values()
            .map(|at| {
                let c = at.current.get();
                TokenStatus {
                    app: at.app.id.clone(),
                    mode: at.app.token_mode,
                    fetched_at: c.as_ref().map(|c| c.fetched_at),
                    expires_at: c.as_ref().map(|c| c.expires_at),
                    last_failure: at
                        .health
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .last_failure
                        .clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.app.as_str().cmp(b.app.as_str()));
        out
    }

    /// Keeps every app's token fresh until `stop`: adopts tokens other instances stored,
    /// refreshes in the refresh window, backs off while WeChat is unreachable.
    pub fn spawn_refreshers(&self, stop: CancellationToken) {
        for at in self.inner.apps.values() {
            let this = self.clone();
            let at = at.clone();
            let stop = stop.clone();
            let span = tracing::info_span!("token_refresher", app = %at.app.id);
            tokio::spawn(tracing::Instrument::instrument(
                async move { this.refresher(at, stop).await },
                span,
            ));
        }
    }

    async fn refresher(&self, at: Arc<AppToken>, stop: CancellationToken) {
        let tick = Duration::from_millis(self.inner.settings.check_interval_ms);
        let renewing = Renewing {
            manager: self,
            at: &at,
        };
        crate::renewal::keep_fresh(&renewing, &self.inner.clock, tick, stop).await;
    }
}

/// One app's token, as its refresher keeps it.
struct Renewing<'a> {
    manager: &'a TokenManager,
    at: &'a AppToken,
}

impl Renewable for Renewing<'_> {
    async fn adopt_stored(&self, now: i64) {
        let (s, at) = (&self.manager.inner, self.at);
        match s
            .store
            .stored_token(&at.app.id, at.app.token_mode.as_str(), now)
            .await
        {
            Ok(row) => at.current.adopt(current_of(&row), now),
            Err(e) => {
                tracing::warn!(app = %at.app.id, error = %e, "cannot read the stored access token")
            }
        }
    }

    fn due(&self, now: i64) -> bool {
        self.at
            .current
            .get()
            .is_none_or(|c| now >= self.manager.refresh_at(self.at, &c))
    }

    async fn renew(&self) -> bool {
        self.manager
            .refresh(self.at, Reason::Proactive)
            .await
            .is_ok()
    }
}

/// The error of [`TokenManager::call`].
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Wechat(WechatError),
}

impl From<Current> for AccessToken {
    fn from(c: Current) -> Self {
        AccessToken {
            token: c.value,
            expires_at: c.expires_at,
        }
    }
}

fn current_of(row: &StoredToken) -> Option<Current> {
    Some(Current {
        value: Arc::from(row.access_token.as_deref()?),
        expires_at: row.expires_at,
        version: row.version,
        // Rows written before fetched_at was read: a full-length token's start.
        fetched_at: row.fetched_at.unwrap_or(row.expires_at - 7200),
    })
}
