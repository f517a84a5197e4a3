//! `GET/POST /wechat/{app}/push`: WeChat's server push. Answers are plain text: the
//! `echostr`, `success`, or `code: reason` with a 4xx (see [`PushError`]); or, for an app
//! with a downstream, that handler's answer (a passive reply).

use crate::config::UnknownApp;
use crate::context::Ctx;
use crate::http::error::{PushCode, PushError};
use crate::metrics::{self, PushOutcome};
use crate::push::Receipt;
use crate::push::forward::AsSent;
use crate::push::inbound::{self, PushQuery};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub fn router(max_body_bytes: usize) -> Router<Ctx> {
    Router::new()
        .route("/wechat/{app}/push", get(verify).post(receive))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

fn app(
    ctx: &Ctx,
    path: Result<Path<String>, PathRejection>,
) -> Result<&crate::config::AppConfig, PushError> {
    let Path(name) = path.map_err(|_| UnknownApp {
        name: String::new(),
    })?;
    Ok(ctx.config.app_named(&name)?)
}

fn query(q: Result<Query<PushQuery>, QueryRejection>) -> Result<PushQuery, PushError> {
    q.map(|Query(q)| q)
        .map_err(|e| PushError::new(PushCode::BadQuery, e.body_text()))
}

fn text(body: impl Into<String>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
}

/// The console's verification: echo `echostr` for a valid signature only.
async fn verify(
    State(ctx): State<Ctx>,
    path: Result<Path<String>, PathRejection>,
    q: Result<Query<PushQuery>, QueryRejection>,
) -> Result<impl IntoResponse, PushError> {
    let app = app(&ctx, path)?;
    let q = query(q)?;
    let echostr = inbound::verify_echo(app, &q)?;
    Ok(text(echostr.to_owned()))
}

/// A push: stored durably, then acknowledged with `success` (also for WeChat's retries),
/// or forwarded as it came and answered with the downstream's answer.
async fn receive(
    State(ctx): State<Ctx>,
    path: Result<Path<String>, PathRejection>,
    q: Result<Query<PushQuery>, QueryRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, PushError> {
    let arrived = tokio::time::Instant::now();
    let taken = async {
        let app = app(&ctx, path)?;
        let q = query(q)?;
        let body = body.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                PushError::new(
                    PushCode::TooLarge,
                    format!(
                        "push body is larger than {} bytes",
                        ctx.config.push.max_body_bytes
                    ),
                )
            } else {
                PushError::new(PushCode::UnreadableBody, r.body_text())
            }
        })?;
        let received = ctx.push.receive(app, &q, &body).await?;
        Ok::<_, PushError>((app, body, received))
    }
    .await;
    let (app, body, received) = taken.inspect_err(count_refused)?;
    let env = &received.envelope;
    let outcome = match received.receipt {
        Receipt::New(_) => PushOutcome::Accepted,
        Receipt::Duplicate => PushOutcome::Duplicate,
    };
    metrics::push(env.event.as_deref().unwrap_or(&env.msg_type), outcome);
    let sent = AsSent {
        query: raw.as_deref().unwrap_or(""),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        body: &body,
        arrived,
    };
    let answer = ctx.push.answer(app, &received, sent).await;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    ))
}

/// Counts a refused push under its code; one the store could not keep is not a refusal
/// (WeChat retries it).
fn count_refused(e: &PushError) {
    if let PushError::Coded { code, .. } = e {
        metrics::push("unknown", PushOutcome::Refused(code.code()));
    }
}

#[cfg(test)]
mod tests;
