//! `/admin/users?q=`: find a person by business user id, openid or unionid (exact match)
//! and see every identity of theirs and their latest messages.

use super::outbox::MessageLine;
use super::{Admin, bad_request, beijing, render};
use crate::context::Ctx;
use crate::domain::UserId;
use crate::store::{Identity, StoreError};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Identities a search may match; more are not shown.
const MAX_MATCHES: i64 = 100;
/// Users a search shows in full.
const MAX_USERS: usize = 20;
/// Messages shown per user.
const MESSAGES_PER_USER: i64 = 20;

#[derive(Deserialize)]
pub(super) struct Search {
    #[serde(default)]
    q: String,
}

/// One identity as the page shows it.
pub(super) struct IdentityLine {
    app: String,
    openid: String,
    unionid: String,
    scope: String,
    nickname: String,
    snapshot: bool,
    created: String,
    bound: String,
    /// From subscribe / unsubscribe pushes (Official Accounts): `follows`, `unfollowed` or
    /// empty when none came.
    follows: &'static str,
    follow_changed: String,
}

impl From<&Identity> for IdentityLine {
    fn from(i: &Identity) -> Self {
        Self {
            app: i.app.to_string(),
            openid: i.openid.to_string(),
            unionid: i
                .unionid
                .as_ref()
                .map(|u| u.to_string())
                .unwrap_or_default(),
            scope: i.scope.as_str().to_owned(),
            nickname: i
                .profile
                .as_ref()
                .map(|p| p.nickname.clone())
                .unwrap_or_default(),
            snapshot: i.is_snapshot,
            created: beijing(i.created_at.secs()),
            bound: i.bound_at.map(|t| beijing(t.secs())).unwrap_or_default(),
            follows: match i.follows {
                Some(true) => "follows",
                Some(false) => "unfollowed",
                None => "",
            },
            follow_changed: i
                .follow_changed_at
                .map(|t| beijing(t.secs()))
                .unwrap_or_default(),
        }
    }
}

/// A user found by the search.
struct UserBlock {
    user_id: String,
    identities: Vec<IdentityLine>,
    messages: Vec<MessageLine>,
    muted: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    nav: &'static str,
    now: String,
    q: String,
    searched: bool,
    users: Vec<UserBlock>,
    /// Matching identities bound to nobody.
    unbound: Vec<IdentityLine>,
    truncated: bool,
}

pub(super) async fn page(
    _admin: Admin,
    State(ctx): State<Ctx>,
    Query(search): Query<Search>,
) -> Response {
    let q = search.q.trim();
    if q.chars().count() > 128 {
        return bad_request("search for one user id, openid or unionid (at most 128 characters)");
    }
    match build(&ctx, q).await {
        Ok(p) => render(&p),
        Err(e) => crate::http::error::Page::from(e).into_response(),
    }
}

async fn build(ctx: &Ctx, q: &str) -> Result<UsersPage, StoreError> {
    let mut page = UsersPage {
        nav: "users",
        now: beijing(ctx.clock.now()),
        q: q.to_owned(),
        searched: !q.is_empty(),
        users: Vec::new(),
        unbound: Vec::new(),
        truncated: false,
    };
    if q.is_empty() {
        return Ok(page);
    }
    let found = ctx.store.admin_find_identities(q, MAX_MATCHES).await?;
    page.truncated = found.len() as i64 == MAX_MATCHES;
    let mut user_ids: Vec<UserId> = Vec::new();
    for identity in &found {
        match &identity.user_id {
            Some(u) if !user_ids.contains(u) => user_ids.push(u.clone()),
            Some(_) => {}
            None => page.unbound.push(identity.into()),
        }
    }
    if user_ids.len() > MAX_USERS {
        user_ids.truncate(MAX_USERS);
        page.truncated = true;
    }
    for user in user_ids {
        // Every identity of the user, not only the one that matched; snapshot-mode ones
        // that matched are kept (the store's list leaves them out).
        let mut identities: Vec<IdentityLine> = ctx
            .store
            .user_identities(&user)
            .await?
            .iter()
            .map(IdentityLine::from)
            .collect();
        for i in found
            .iter()
            .filter(|i| i.is_snapshot && i.user_id.as_ref() == Some(&user))
        {
            identities.push(i.into());
        }
        let messages = ctx
            .store
            .user_messages(&user, None, MESSAGES_PER_USER)
            .await?
            .iter()
            .map(MessageLine::from)
            .collect();
        let muted = ctx
            .store
            .muted(&user)
            .await?
            .iter()
            .map(|c| c.to_string())
            .collect();
        page.users.push(UserBlock {
            user_id: user.to_string(),
            identities,
            messages,
            muted,
        });
    }
    Ok(page)
}
