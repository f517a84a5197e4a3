//! Browser routes of the web authorization flow: `/oauth/{app}/authorize` and
//! `/oauth/{app}/callback`: the browser session, the state check, and where each outcome
//! ends: back at the business's `return_to` (with `wxlink_code`, or `wxlink_error` when it
//! failed), or on a page for the person ([`crate::http::person`]). The rules of the one
//! exchange of a code live in [`crate::identity::web_oauth`].

mod callback;

use crate::config::{AppConfig, AppKind};
use crate::context::Ctx;
use crate::domain::{OAuthScope, OAuthState, ReturnTo, hash_token};
use crate::http::person::{self, Lang, Outcome, PersonPage};
use crate::store::CodeProblem;
use crate::wechat::oauth::authorize_url;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

const SESSION_KEY: &str = "wxlink.oauth";
/// Pending authorizations kept per browser (several tabs); the oldest drop off.
const MAX_PENDING: usize = 8;
/// The longest `client_state` handed back.
const MAX_CLIENT_STATE: usize = 512;

pub fn router() -> Router<Ctx> {
    Router::new()
        .route("/oauth/{app}/authorize", get(authorize))
        .route("/oauth/{app}/callback", get(callback::callback))
        .route(person::SCRIPT_PATH, get(person::script))
}

/// One authorization this browser started, kept in its session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingAuth {
    state: OAuthState,
    app: String,
    scope: OAuthScope,
    return_to: Option<ReturnTo>,
    ticket_hash: Option<String>,
    created_at: i64,
    /// Set once a code was exchanged under this state; only that code may come back.
    used_code_hash: Option<String>,
    /// The authorize query it started with: "try again" resumes this very attempt.
    #[serde(default)]
    query: Option<String>,
    /// The business's opaque value, handed back on success and failure alike.
    #[serde(default)]
    client_state: Option<String>,
    /// `lang=` of the authorize link, if given.
    #[serde(default)]
    lang: Option<Lang>,
}

/// Where an attempt ends when it fails: what it knows of the business and how to resume.
#[derive(Debug, Default, Clone)]
struct Attempt {
    return_to: Option<ReturnTo>,
    client_state: Option<String>,
    /// "Try again": the same authorize link.
    retry: Option<String>,
    lang: Option<Lang>,
}

impl Attempt {
    fn of(ctx: &Ctx, p: &PendingAuth) -> Self {
        Self {
            return_to: p.return_to.clone(),
            client_state: p.client_state.clone(),
            retry: retry_url(ctx, &p.app, p.query.as_deref()),
            lang: p.lang,
        }
    }
}

fn retry_url(ctx: &Ctx, app: &str, query: Option<&str>) -> Option<String> {
    Some(match query.filter(|q| !q.is_empty()) {
        Some(q) => ctx.url(&format!("/oauth/{app}/authorize?{q}")),
        None => ctx.url(&format!("/oauth/{app}/authorize")),
    })
}

/// The outcomes "try again" can change: the same attempt may end otherwise.
fn retryable(o: Outcome) -> bool {
    matches!(
        o,
        Outcome::Declined
            | Outcome::Snapshot
            | Outcome::StateExpired
            | Outcome::CodeReused
            | Outcome::CodeInvalid
            | Outcome::WechatError
            | Outcome::WechatUnreachable
            | Outcome::Unavailable
    )
}

/// What a browser route answers: a redirect (to WeChat, or back to the business) or a page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Answer {
    Redirect {
        location: String,
        /// What the redirect means (`linked`, or the failure carried as `wxlink_error`).
        #[serde(default = "linked")]
        outcome: Outcome,
    },
    Page(PersonPage),
}

fn linked() -> Outcome {
    Outcome::Linked
}

impl Answer {
    fn outcome(&self) -> Outcome {
        match self {
            Answer::Redirect { outcome, .. } => *outcome,
            Answer::Page(p) => p.outcome,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Redirect { location, .. } => {
                (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
            }
            Answer::Page(p) => p.into_response(),
        }
    }
}

/// A failure: back to the business with `wxlink_error` when it can act on it and gave a
/// valid `return_to`; a page for the person otherwise.
fn fail(ctx: &Ctx, attempt: &Attempt, outcome: Outcome) -> Answer {
    if let (Some(rt), Some(code)) = (&attempt.return_to, outcome.return_error()) {
        let mut params = vec![("wxlink_error", code.code())];
        if let Some(cs) = &attempt.client_state {
            params.push(("client_state", cs));
        }
        return Answer::Redirect {
            location: rt.with_params(&params),
            outcome,
        };
    }
    Answer::Page(page(ctx, attempt, outcome))
}

/// The page of an outcome: "try again" where it can help, back to the business, close.
fn page(ctx: &Ctx, attempt: &Attempt, outcome: Outcome) -> PersonPage {
    PersonPage::new(outcome)
        .retry(attempt.retry.clone().filter(|_| retryable(outcome)))
        .back(ctx.config.pages.home_url.as_ref().map(|u| u.to_string()))
        .in_lang(attempt.lang)
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    scope: Option<String>,
    return_to: Option<String>,
    ticket: Option<String>,
    client_state: Option<String>,
    /// Sandbox only: treat this browser as WeChat's.
    wxsim: Option<String>,
}

fn web_app<'a>(ctx: &'a Ctx, app: &str) -> Result<&'a AppConfig, Outcome> {
    let app_cfg = ctx.config.app_named(app).map_err(|_| Outcome::UnknownApp)?;
    if app_cfg.kind != AppKind::OfficialAccount {
        return Err(Outcome::NotWebApp);
    }
    Ok(app_cfg)
}

fn ticket_outcome(problem: CodeProblem) -> Outcome {
    match problem {
        CodeProblem::Unknown => Outcome::TicketUnknown,
        CodeProblem::Used => Outcome::TicketUsed,
        CodeProblem::Expired => Outcome::TicketExpired,
    }
}

/// The one parameter `name` of a query, or `None` if absent or given more than once.
fn single_param(raw: Option<&str>, name: &str) -> Option<String> {
    let mut found = url::form_urlencoded::parse(raw?.as_bytes()).filter(|(k, _)| k == name);
    let first = found.next()?.1.into_owned();
    found.next().is_none().then_some(first)
}

async fn authorize(
    State(ctx): State<Ctx>,
    Path(app): Path<String>,
    query: Result<Query<AuthorizeQuery>, QueryRejection>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    session: Session,
) -> Answer {
    let lang = Lang::from_query(raw_query.as_deref());
    let app_cfg = match web_app(&ctx, &app) {
        Ok(a) => a,
        Err(o) => {
            let attempt = Attempt {
                lang,
                ..Default::default()
            };
            return Answer::Page(page(&ctx, &attempt, o));
        }
    };
    // What is known of the business before anything else is checked.
    let mut attempt = Attempt {
        return_to: single_param(raw_query.as_deref(), "return_to")
            .and_then(|r| ReturnTo::parse(&r, &ctx.config.return_to_allow).ok()),
        client_state: single_param(raw_query.as_deref(), "client_state")
            .filter(|c| c.chars().count() <= MAX_CLIENT_STATE),
        retry: retry_url(&ctx, app_cfg.id.as_str(), raw_query.as_deref()),
        lang,
    };
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            tracing::info!(app = %app_cfg.id, error = %e, "authorize query refused");
            return fail(&ctx, &attempt, Outcome::InvalidQuery);
        }
    };
    match start(&ctx, app_cfg, q, raw_query, &headers, session, &mut attempt).await {
        Ok(answer) => answer,
        Err(outcome) => fail(&ctx, &attempt, outcome),
    }
}

async fn start(
    ctx: &Ctx,
    app_cfg: &AppConfig,
    q: AuthorizeQuery,
    raw_query: Option<String>,
    headers: &HeaderMap,
    session: Session,
    attempt: &mut Attempt,
) -> Result<Answer, Outcome> {
    let now = ctx.clock.now();
    if q.client_state
        .as_deref()
        .is_some_and(|c| c.chars().count() > MAX_CLIENT_STATE)
    {
        return Err(Outcome::InvalidQuery);
    }
    let (scope, return_to, ticket_hash) = if let Some(ticket) = &q.ticket {
        let hash = hash_token(ticket);
        let found = ctx.store.find_ticket(&hash).await.map_err(unavailable)?;
        // A refused ticket still sends the person back where its creator asked.
        attempt.return_to = found
            .as_ref()
            .filter(|t| t.app == app_cfg.id)
            .and_then(|t| t.return_to.as_deref())
            .and_then(|r| ReturnTo::parse(r, &ctx.config.return_to_allow).ok());
        let t = match found {
            None => return Err(Outcome::TicketUnknown),
            Some(t) if t.app != app_cfg.id => return Err(Outcome::TicketUnknown),
            Some(t) if t.used_at.is_some() => return Err(ticket_outcome(CodeProblem::Used)),
            Some(t) if t.expires_at <= ctx.clock.timestamp() => {
                return Err(ticket_outcome(CodeProblem::Expired));
            }
            Some(t) => t,
        };
        let return_to = t
            .return_to
            .as_deref()
            .map(|r| ReturnTo::parse(r, &ctx.config.return_to_allow))
            .transpose()
            .map_err(|_| Outcome::ReturnToNotAllowed)?;
        (t.scope, return_to, Some(hash))
    } else {
        let return_to = q
            .return_to
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|r| ReturnTo::parse(r, &ctx.config.return_to_allow))
            .transpose()
            .map_err(|_| Outcome::ReturnToNotAllowed)?;
        let scope = OAuthScope::parse(q.scope.as_deref().unwrap_or("snsapi_base"))
            .map_err(|_| Outcome::InvalidScope)?;
        (scope, return_to, None)
    };

    let in_wechat = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("MicroMessenger"))
        || (ctx.config.sandbox && q.wxsim.as_deref() == Some("1"));
    if !in_wechat {
        return Ok(Answer::Page(open_in_wechat(
            ctx,
            app_cfg,
            raw_query.as_deref(),
            attempt.lang,
        )));
    }

    let state = OAuthState::generate();
    let mut pending: Vec<PendingAuth> = session
        .get(SESSION_KEY)
        .await
        .map_err(session_error)?
        .unwrap_or_default();
    pending.retain(|p| p.created_at + ctx.config.oauth.state_ttl_secs > now);
    pending.push(PendingAuth {
        state: state.clone(),
        app: app_cfg.id.to_string(),
        scope,
        return_to,
        ticket_hash,
        created_at: now,
        used_code_hash: None,
        query: raw_query,
        client_state: q.client_state,
        lang: attempt.lang,
    });
    if pending.len() > MAX_PENDING {
        pending.drain(..pending.len() - MAX_PENDING);
    }
    session
        .insert(SESSION_KEY, &pending)
        .await
        .map_err(session_error)?;

    let redirect_uri = ctx.url(&format!("/oauth/{}/callback", app_cfg.id));
    let location = authorize_url(
        &app_cfg.wechat.open_base,
        app_cfg.wechat.appid.as_str(),
        &redirect_uri,
        scope,
        &state,
    );
    Ok(Answer::Redirect {
        location,
        outcome: Outcome::Linked,
    })
}

/// Outside WeChat: the same link as a QR code to scan with WeChat.
fn open_in_wechat(
    ctx: &Ctx,
    app_cfg: &AppConfig,
    raw_query: Option<&str>,
    lang: Option<Lang>,
) -> PersonPage {
    let here = retry_url(ctx, app_cfg.id.as_str(), raw_query).unwrap_or_default();
    let qr_svg = qrcode::QrCode::new(here.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build()
        })
        .ok();
    let mut page = PersonPage::new(Outcome::OpenInWechat)
        .back(ctx.config.pages.home_url.as_ref().map(|u| u.to_string()))
        .in_lang(lang);
    page.sandbox_url = ctx.config.sandbox.then(|| {
        let sep = if here.contains('?') { '&' } else { '?' };
        format!("{here}{sep}wxsim=1")
    });
    page.link = Some(here);
    page.qr_svg = qr_svg;
    page
}

fn session_error(e: tower_sessions::session::Error) -> Outcome {
    tracing::error!(error = %e, "session store failed");
    Outcome::Unavailable
}

fn unavailable(e: crate::store::StoreError) -> Outcome {
    tracing::error!(error = %e, "store failure while serving a page");
    Outcome::Unavailable
}
