//! `/oauth/{app}/callback`: the state check, the one exchange of the code, and the answer
//! a repeated callback gets again.

use super::{
    Answer, Attempt, PendingAuth, SESSION_KEY, fail, page, session_error, unavailable, web_app,
};
use crate::config::AppConfig;
use crate::context::Ctx;
use crate::domain::{OAuthState, hash_token};
use crate::http::person::{Lang, Outcome};
use crate::identity::web_oauth::{self, Completed, Replay, Started};
use crate::wechat::{ErrCode, WechatError};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, RawQuery, State};
use serde::Deserialize;
use tower_sessions::Session;

#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// The callback, counted by outcome (`wxlink_oauth_callbacks_total`).
pub(super) async fn callback(
    State(ctx): State<Ctx>,
    Path(app): Path<String>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
    RawQuery(raw): RawQuery,
    session: Session,
) -> Answer {
    let answer = match query {
        Ok(Query(q)) => complete_callback(&ctx, &app, q, session).await,
        Err(e) => {
            tracing::info!(error = %e, "callback query refused");
            let attempt = Attempt {
                lang: Lang::from_query(raw.as_deref()),
                ..Default::default()
            };
            Answer::Page(page(&ctx, &attempt, Outcome::InvalidQuery))
        }
    };
    let app = ctx.config.app_named(&app).ok().map(|a| &a.id);
    crate::metrics::oauth_callback(app, answer.outcome().code());
    answer
}

async fn complete_callback(ctx: &Ctx, app: &str, q: CallbackQuery, session: Session) -> Answer {
    let nothing = Attempt::default();
    let app_cfg = match web_app(ctx, app) {
        Ok(a) => a,
        Err(o) => return Answer::Page(page(ctx, &nothing, o)),
    };
    let Some(state) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return Answer::Page(page(ctx, &nothing, Outcome::StateMissing));
    };
    let Ok(state) = OAuthState::parse(state) else {
        return Answer::Page(page(ctx, &nothing, Outcome::StateInvalid));
    };
    let mut pending: Vec<PendingAuth> = match session.get(SESSION_KEY).await {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => return Answer::Page(page(ctx, &nothing, session_error(e))),
    };
    let Some(idx) = pending
        .iter()
        .position(|p| p.state == state && p.app == app_cfg.id.as_str())
    else {
        // Not this browser's (or long gone): nothing is known of the attempt to resume.
        return Answer::Page(page(ctx, &nothing, Outcome::StateUnknown));
    };
    let attempt = Attempt::of(ctx, &pending[idx]);
    match exchange(ctx, app_cfg, q.code, &state, &mut pending, idx, &attempt).await {
        Ok(answer) => {
            if let Err(e) = session.insert(SESSION_KEY, &pending).await {
                return fail(ctx, &attempt, session_error(e));
            }
            answer
        }
        Err(outcome) => fail(ctx, &attempt, outcome),
    }
}

/// Everything after the state was found: decline, expiry, the one exchange or its replay.
/// Leaves `pending` as the session should keep it.
async fn exchange(
    ctx: &Ctx,
    app_cfg: &AppConfig,
    code: Option<String>,
    state: &OAuthState,
    pending: &mut Vec<PendingAuth>,
    idx: usize,
    attempt: &Attempt,
) -> Result<Answer, Outcome> {
    if pending[idx].created_at + ctx.config.oauth.state_ttl_secs <= ctx.clock.now() {
        pending.remove(idx);
        return Ok(fail(ctx, attempt, Outcome::StateExpired));
    }
    let Some(code) = code.filter(|c| !c.is_empty()) else {
        declined(ctx, &app_cfg.id, &pending[idx])
            .await
            .map_err(unavailable)?;
        pending.remove(idx);
        return Ok(fail(ctx, attempt, Outcome::Declined));
    };
    let code_hash = hash_token(&code);
    let state_hash = hash_token(state.as_str());
    if let Some(used) = &pending[idx].used_code_hash
        && *used != code_hash
    {
        return Err(Outcome::StateUsed);
    }

    let entry = pending[idx].clone();
    let answer = if ctx
        .store
        .claim_exchange(&code_hash, &app_cfg.id, &state_hash, ctx.clock.timestamp())
        .await
        .map_err(unavailable)?
    {
        let started = Started {
            ticket_hash: entry.ticket_hash.as_deref(),
            return_to: entry.return_to.as_ref(),
            client_state: entry.client_state.as_deref(),
        };
        let completed = web_oauth::complete(ctx, app_cfg, started, &code)
            .await
            .map_err(unavailable)?;
        let answer = answer_of(ctx, attempt, completed);
        let stored = serde_json::to_string(&answer).expect("answer serializes");
        ctx.store
            .finish_exchange(&code_hash, &stored, ctx.clock.timestamp())
            .await
            .map_err(unavailable)?;
        answer
    } else {
        replayed(
            ctx,
            attempt,
            web_oauth::replay(ctx, &code_hash, &state_hash)
                .await
                .map_err(unavailable)?,
        )?
    };
    pending[idx].used_code_hash = Some(code_hash);
    Ok(answer)
}

/// The answer the browser gets for the one exchange of its code (stored for replays).
fn answer_of(ctx: &Ctx, attempt: &Attempt, completed: Completed) -> Answer {
    let outcome = match completed {
        Completed::Redirect { location } => {
            return Answer::Redirect {
                location,
                outcome: Outcome::Linked,
            };
        }
        Completed::Linked { .. } => Outcome::Linked,
        Completed::CodeRefused(e) => wechat_failure(&e),
        Completed::Malformed(_) => Outcome::WechatError,
        Completed::Snapshot => Outcome::Snapshot,
        Completed::Ticket(problem) => super::ticket_outcome(problem),
        Completed::Conflict(conflict) => {
            tracing::info!(conflict = %conflict.message(), "authorization ended in a binding conflict");
            Outcome::Conflict
        }
        Completed::TicketOtherPerson => Outcome::TicketOtherPerson,
    };
    fail(ctx, attempt, outcome)
}

/// The answer to a repeated callback: the first one's, as stored.
fn replayed(ctx: &Ctx, attempt: &Attempt, replay: Replay) -> Result<Answer, Outcome> {
    match replay {
        Replay::Stored(outcome) => serde_json::from_str(&outcome).map_err(|e| {
            tracing::error!(error = %e, "stored callback answer does not parse");
            Outcome::Unavailable
        }),
        Replay::OtherSignIn => Err(Outcome::CodeReused),
        Replay::StillWorking => {
            let mut p = page(ctx, attempt, Outcome::InProgress);
            p.reload = true;
            Ok(Answer::Page(p))
        }
    }
}

fn wechat_failure(e: &WechatError) -> Outcome {
    match e.code() {
        Some(
            ErrCode::CodeUsed | ErrCode::InvalidCode | ErrCode::CodeExpired | ErrCode::MissingCode,
        ) => {
            tracing::info!(error = %e, "authorization code refused");
            Outcome::CodeInvalid
        }
        Some(_) => {
            tracing::error!(error = %e, "WeChat refused the code exchange");
            Outcome::WechatError
        }
        None => {
            tracing::error!(error = %e, "WeChat unreachable during code exchange");
            Outcome::WechatUnreachable
        }
    }
}

/// Records `authorization.declined`: for the ticket's user when the link was minted for
/// one (the person is not known otherwise: WeChat names nobody when consent is refused).
async fn declined(
    ctx: &Ctx,
    app: &crate::domain::AppId,
    auth: &PendingAuth,
) -> Result<(), crate::store::StoreError> {
    let now = ctx.clock.timestamp();
    let user = match &auth.ticket_hash {
        Some(hash) => ctx
            .store
            .check_ticket(hash, now)
            .await?
            .ok()
            .map(|t| t.user_id),
        None => None,
    };
    let event = crate::domain::NewEvent {
        id: crate::domain::EventId::generate(),
        kind: crate::domain::EventType::AuthorizationDeclined,
        at: now,
        app: Some(app.clone()),
        openid: None,
        unionid: None,
        user_id: user,
        data: serde_json::json!({ "scope": auth.scope }),
    };
    ctx.store.record_events(&[event]).await
}
