//! Importing an Official Account's existing followers: page through `user/get`, look each
//! page up with `batchget`, store every follower's identity and bind it when its unionid
//! is already bound.
//!
//! One import per app at a time across the fleet: the running instance holds a lease on
//! the import's row and renews it with every batch. Progress is committed per batch (the
//! page's `next_openid` and how much of the page is stored), so an import whose instance
//! died is resumed by any instance once the lease runs out, from the batch it had reached;
//! storing a batch again changes nothing.

use super::{Followers, LookupError, Retry};
use crate::config::Config;
use crate::domain::{AppId, OpenId};
use crate::store::{FollowerImport, ImportStep, Store, StoreError};
use crate::wechat::user::BATCHGET_MAX;

impl Followers {
    /// Starts an import of `app`'s followers (`Err` with the running one when one runs);
    /// a worker of some instance takes it up.
    pub async fn start_import(
        &self,
        app: &AppId,
    ) -> Result<Result<FollowerImport, FollowerImport>, StoreError> {
        let started = self
            .inner
            .store
            .start_follower_import(app, self.inner.clock.timestamp())
            .await?;
        crate::store::FOLLOWERS_QUEUED.notify_waiters();
        Ok(started)
    }

    /// Claims a running import whose lease ran out (`only` that app's), and runs it until
    /// it is done, failed, paused (WeChat's quota, an outage) or its lease was lost.
    /// `progress` sees it after every batch. `None`: nothing to claim.
    pub async fn run_claimed_import(
        &self,
        only: Option<&AppId>,
        progress: &mut (dyn FnMut(&FollowerImport) + Send),
    ) -> Result<Option<FollowerImport>, StoreError> {
        let s = &self.inner;
        let Some(mut job) = s
            .store
            .claim_follower_import(
                &s.owner,
                only,
                s.clock.timestamp(),
                s.settings.import_lease_secs,
            )
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(app = %job.app, imported = job.imported, "follower import taken up");
        let outcome = self.run(&mut job, progress).await;
        let now = s.clock.timestamp();
        match outcome {
            Ok(Step::Done) => {
                s.store
                    .finish_follower_import(&job.app, &s.owner, None, now)
                    .await?;
                tracing::info!(app = %job.app, imported = job.imported, bound = job.bound, "follower import done");
            }
            Ok(Step::LeaseLost) => {
                tracing::warn!(app = %job.app, "follower import lease lost; another instance continues");
            }
            Err(Stop::Store(e)) => return Err(e),
            Err(Stop::Lookup(e)) => {
                let why = e.to_string();
                match e.retry() {
                    Retry::Never => {
                        tracing::error!(app = %job.app, error = %why, "follower import failed");
                        s.store
                            .finish_follower_import(&job.app, &s.owner, Some(&why), now)
                            .await?;
                    }
                    retry => {
                        tracing::warn!(app = %job.app, error = %why, "follower import paused; resumed later");
                        s.store
                            .pause_follower_import(
                                &job.app,
                                &s.owner,
                                &why,
                                self.retry_at(retry),
                                now,
                            )
                            .await?;
                    }
                }
            }
        }
        let latest = s.store.follower_import(&job.app).await?;
        if let Some(latest) = &latest {
            crate::metrics::follower_import(&latest.app, latest.imported, latest.total);
            progress(latest);
        }
        Ok(latest)
    }

    async fn run(
        &self,
        job: &mut FollowerImport,
        progress: &mut (dyn FnMut(&FollowerImport) + Send),
    ) -> Result<Step, Stop> {
        let s = &self.inner;
        let Some(app) = self.app(&job.app).cloned() else {
            return Err(Stop::Lookup(LookupError::Token(
                crate::token::TokenError::UnknownApp(job.app.to_string()),
            )));
        };
        let lease = s.settings.import_lease_secs;
        loop {
            let cursor = job.next_openid.as_str();
            let creds = &app.wechat;
            let page = s
                .tokens
                .call(&app.id, |token| async move {
                    s.wechat.followers_page(creds, &token, cursor).await
                })
                .await
                .map_err(|e| Stop::Lookup(e.into()))?;
            let openids: Vec<OpenId> = page
                .openids()
                .iter()
                .filter_map(|o| OpenId::parse(o).ok())
                .collect();
            if openids.is_empty() {
                return Ok(Step::Done);
            }
            job.total = Some(page.total);
            let start = (job.page_done.max(0) as usize).min(openids.len());
            for chunk in openids[start..].chunks(BATCHGET_MAX) {
                let (infos, invalid) = self.fetch(&app, chunk).await.map_err(Stop::Lookup)?;
                crate::metrics::follower_lookups(&app.id, "import", chunk.len());
                let now = s.clock.timestamp();
                for o in &invalid {
                    s.store.mark_openid_invalid(&app.id, o, now).await?;
                }
                let (_, bound) = self.store_and_link(&app.id, &infos, now).await?;
                let step = ImportStep {
                    page_done: job.page_done + chunk.len() as i64,
                    imported: chunk.len() as i64,
                    bound,
                };
                if !s
                    .store
                    .advance_follower_import(&app.id, &s.owner, step, page.total, now, lease)
                    .await?
                {
                    return Ok(Step::LeaseLost);
                }
                job.page_done = step.page_done;
                job.imported += step.imported;
                job.bound += step.bound;
                job.updated_at = now.secs();
                crate::metrics::follower_import(&job.app, job.imported, job.total);
                progress(job);
            }
            if page.next_openid.is_empty() {
                return Ok(Step::Done);
            }
            if !s
                .store
                .next_follower_page(
                    &app.id,
                    &s.owner,
                    &page.next_openid,
                    s.clock.timestamp(),
                    lease,
                )
                .await?
            {
                return Ok(Step::LeaseLost);
            }
            job.next_openid = page.next_openid.clone();
            job.page_done = 0;
            job.pages += 1;
        }
    }
}

enum Step {
    Done,
    LeaseLost,
}

enum Stop {
    Lookup(LookupError),
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The progress line of an import, as `wxlink import-followers` prints it.
pub fn progress_line(job: &FollowerImport) -> String {
    let of = match job.total {
        Some(t) if t > 0 => format!(
            " of {t} ({}%)",
            (job.imported * 100 / t.max(1)).clamp(0, 100)
        ),
        Some(t) => format!(" of {t}"),
        None => String::new(),
    };
    let mut line = format!(
        "{}: {} followers imported{of}, {} bound to users, {} pages, {}",
        job.app, job.imported, job.bound, job.pages, job.state
    );
    if let Some(e) = &job.last_error {
        line.push_str(&format!(" ({e})"));
    }
    line
}

/// `wxlink import-followers APP`: starts (or joins) the app's import and runs it in this
/// process, printing a progress line every `every` followers; when a running service holds
/// the import, follows its progress instead. Returns the final state.
pub async fn run_cli(
    config: &Config,
    app: &str,
    every: i64,
    print: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<FollowerImport> {
    let app = config.app_named(app)?.clone();
    if app.kind != crate::config::AppKind::OfficialAccount {
        anyhow::bail!(
            "app {} is a mini-program: followers belong to Official Accounts",
            app.id
        );
    }
    let store = Store::connect(&config.database_url, &config.database)
        .await?
        .with_keys(config.storage_key.clone());
    let wechat = crate::wechat::WechatClient::new()?;
    let clock = crate::clock::Clock::system();
    let tokens = crate::token::TokenManager::new(
        &config.apps,
        store.clone(),
        wechat.clone(),
        clock.clone(),
        config.tokens.clone(),
    );
    let followers = Followers::new(
        &config.apps,
        store.clone(),
        tokens,
        wechat,
        clock,
        config.followers.clone(),
    );
    match followers.start_import(&app.id).await? {
        Ok(_) => print(&format!("{}: import started", app.id)),
        Err(running) => print(&format!(
            "{}: an import is running already; continuing it ({})",
            app.id,
            progress_line(&running)
        )),
    }
    let mut last_printed = -1;
    loop {
        let mut show = |job: &FollowerImport| {
            if job.state != "running" || job.imported / every.max(1) != last_printed / every.max(1)
            {
                print(&progress_line(job));
                last_printed = job.imported;
            }
        };
        let ran = followers
            .run_claimed_import(Some(&app.id), &mut show)
            .await?;
        let ran_here = ran.is_some();
        let job = match ran {
            Some(job) => job,
            None => {
                // Another process holds it (or it is paused): show where it is.
                let job = store
                    .follower_import(&app.id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the import of {} vanished", app.id))?;
                if job.state == "running" {
                    show(&job);
                }
                job
            }
        };
        if job.state != "running" {
            return Ok(job);
        }
        if let Some(e) = &job.last_error
            && ran_here
        {
            print(&format!(
                "{}: paused ({e}); the service resumes it, or run this command again later",
                app.id
            ));
            return Ok(job);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
