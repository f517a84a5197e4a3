//! The overview's follower lines: each Official Account's latest follower import (state,
//! progress, why it last stopped) and what the background fill spent of today's quota.

use super::{beijing, relative};
use crate::clock::beijing_day;
use crate::config::AppKind;
use crate::context::Ctx;
use crate::store::StoreError;

/// One Official Account's line.
pub(super) struct FollowerLine {
    pub id: String,
    /// `running`, `done`, `failed`, or `none` (never imported).
    pub state: String,
    pub imported: i64,
    /// WeChat's follower count, once known.
    pub total: Option<i64>,
    pub percent: Option<i64>,
    pub bound: i64,
    pub pages: i64,
    pub last_error: Option<String>,
    pub updated: String,
    pub quota_used: i64,
    pub quota: i64,
}

pub(super) async fn lines(ctx: &Ctx) -> Result<Vec<FollowerLine>, StoreError> {
    let now = ctx.clock.now();
    let day = beijing_day(now);
    let imports = ctx.store.follower_imports().await?;
    let mut out = Vec::new();
    for app in ctx
        .config
        .apps
        .iter()
        .filter(|a| a.kind == AppKind::OfficialAccount)
    {
        let job = imports.iter().find(|j| j.app == app.id);
        out.push(FollowerLine {
            id: app.id.to_string(),
            state: job.map_or("none".to_owned(), |j| j.state.clone()),
            imported: job.map_or(0, |j| j.imported),
            total: job.and_then(|j| j.total),
            percent: job.and_then(|j| {
                j.total
                    .filter(|t| *t > 0)
                    .map(|t| (j.imported * 100 / t).clamp(0, 100))
            }),
            bound: job.map_or(0, |j| j.bound),
            pages: job.map_or(0, |j| j.pages),
            last_error: job.and_then(|j| j.last_error.clone()),
            updated: job
                .map(|j| {
                    format!(
                        "{} ({})",
                        beijing(j.updated_at),
                        relative(now, j.updated_at)
                    )
                })
                .unwrap_or_default(),
            quota_used: ctx.store.follower_quota_used(&app.id, day).await?,
            quota: ctx.config.followers.background_daily_quota,
        });
    }
    Ok(out)
}
