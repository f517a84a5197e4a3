//! `/admin`: every configured app with its token state, what it spent of WeChat's daily
//! quotas, today's messages, pushes and any quota hold; the outbox's depth; and each
//! Official Account's follower import and background fill.

use super::{Admin, beijing, beijing_ms, relative, render};
use crate::clock::beijing_day;
use crate::context::Ctx;
use crate::store::FORCE_REFRESH_PER_DAY;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

/// Classic `cgi-bin/token` fetches WeChat allows an app per day.
const CLASSIC_FETCHES_PER_DAY: i64 = 2000;

/// One app's line.
struct AppLine {
    id: String,
    kind: &'static str,
    appid: String,
    mode: &'static str,
    /// `ok`, `expiring`, `expired` or `none`.
    token_state: &'static str,
    token_version: i64,
    fetched: String,
    expires: String,
    /// This instance's last refresh failure, if the last attempt failed.
    last_failure: Option<String>,
    fetches_today: i64,
    fetch_budget: String,
    force_today: i64,
    /// Messages created today (Beijing day), by outcome.
    sent: i64,
    pending: i64,
    rejected: i64,
    failed: i64,
    holds: Vec<String>,
    /// Pushes WeChat sent today.
    pushes: i64,
}

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct OverviewPage {
    nav: &'static str,
    now: String,
    backend: &'static str,
    apps: Vec<AppLine>,
    force_budget: i64,
    depth: i64,
    oldest: Option<String>,
    today: String,
    followers: Vec<super::followers::FollowerLine>,
}

pub(super) async fn page(_admin: Admin, State(ctx): State<Ctx>) -> Response {
    match build(&ctx).await {
        Ok(p) => render(&p),
        Err(e) => crate::http::error::Page::from(e).into_response(),
    }
}

async fn build(ctx: &Ctx) -> Result<OverviewPage, crate::store::StoreError> {
    let now = ctx.clock.now();
    let today = beijing_day(now);
    let midnight = today * 86_400 - 8 * 3600;
    let tokens = ctx.store.admin_tokens().await?;
    let counts = ctx.store.admin_messages_since(midnight * 1000).await?;
    let holds = ctx.store.admin_holds(now * 1000).await?;
    let pushes = ctx.store.admin_pushes_since(midnight).await?;
    let status = ctx.tokens.status();
    let (depth, oldest) = ctx.store.outbox_depth().await?;

    let apps = ctx
        .config
        .apps
        .iter()
        .map(|app| {
            let id = app.id.as_str();
            let row = tokens.iter().find(|t| t.app == id);
            let mine = status.iter().find(|s| s.app == app.id);
            let count = |states: &[&str]| -> i64 {
                counts
                    .iter()
                    .filter(|c| c.app == id && states.contains(&c.status.as_str()))
                    .map(|c| c.count)
                    .sum()
            };
            let (token_state, fetched, expires) = match row {
                Some(t) if t.has_token == 1 => (
                    if t.expires_at <= now {
                        "expired"
                    } else if t.expires_at - now <= ctx.config.tokens.refresh_margin_secs {
                        "expiring"
                    } else {
                        "ok"
                    },
                    t.fetched_at
                        .map(|f| format!("{} ({})", beijing(f), relative(now, f)))
                        .unwrap_or_default(),
                    format!(
                        "{} ({})",
                        beijing(t.expires_at),
                        relative(now, t.expires_at)
                    ),
                ),
                _ => ("none", String::new(), String::new()),
            };
            let classic = app.token_mode == crate::config::TokenMode::Classic;
            AppLine {
                id: id.to_owned(),
                kind: app.kind.as_str(),
                appid: app.wechat.appid.to_string(),
                mode: app.token_mode.as_str(),
                token_state,
                token_version: row.map(|t| t.version).unwrap_or(0),
                fetched,
                expires,
                last_failure: mine.and_then(|s| s.last_failure.clone()),
                fetches_today: row
                    .filter(|t| t.fetch_day == today)
                    .map(|t| t.fetch_count)
                    .unwrap_or(0),
                fetch_budget: if classic {
                    format!("of {CLASSIC_FETCHES_PER_DAY}")
                } else {
                    String::new()
                },
                force_today: row
                    .filter(|t| t.force_day == today)
                    .map(|t| t.force_count)
                    .unwrap_or(0),
                sent: count(&["sent", "delivered"]),
                pending: count(&["queued", "sending"]),
                rejected: count(&["rejected"]),
                failed: count(&["failed"]),
                pushes: pushes
                    .iter()
                    .find(|(a, _)| a == id)
                    .map(|(_, n)| *n)
                    .unwrap_or(0),
                holds: holds
                    .iter()
                    .filter(|h| h.0 == id)
                    .map(|(_, channel, until_ms, reason)| {
                        format!("{channel} held until {}: {reason}", beijing_ms(*until_ms))
                    })
                    .collect(),
            }
        })
        .collect();

    Ok(OverviewPage {
        nav: "overview",
        now: beijing(now),
        backend: ctx.store.backend_name(),
        apps,
        force_budget: FORCE_REFRESH_PER_DAY,
        depth,
        oldest: oldest.map(|t| format!("{} ({})", beijing_ms(t.millis()), relative(now, t.secs()))),
        today: beijing(midnight)[..10].to_owned(),
        followers: super::followers::lines(ctx).await?,
    })
}
