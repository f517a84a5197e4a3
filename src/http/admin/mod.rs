//! The admin pages under `/admin`: what an operator looks at when something seems off.
//! Apps with their token state and today's quotas, a user search showing identities (with
//! their follow status) and messages, the outbox with filters and each message's history,
//! the pushes WeChat sent, and the webhook endpoints with their deliveries.
//!
//! Server-rendered HTML with one small CSS block and no JavaScript; every value is escaped
//! by askama. The pages only read: no form changes anything, so there is nothing to forge
//! across sites. They sit behind `[admin] key_sha256`, given as the basic-auth password
//! (any user name, so a browser's own login prompt works) or as a bearer token; while it is
//! unset the pages do not exist (404, like any unknown path). No page shows a token, a
//! session key or an API key; openids and unionids are shown (an operator needs them).

mod followers;
mod outbox;
mod overview;
mod pushes;
mod users;
mod webhooks;

use crate::context::Ctx;
use crate::http::error::Page;
use askama::Template;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub fn router() -> Router<Ctx> {
    Router::new()
        .route("/admin", get(overview::page))
        .route("/admin/", get(overview::page))
        .route("/admin/users", get(users::page))
        .route("/admin/outbox", get(outbox::list))
        .route("/admin/messages/{id}", get(outbox::message))
        .route("/admin/pushes", get(pushes::list))
        .route("/admin/webhooks", get(webhooks::page))
        .layer(axum::middleware::map_response(protect))
}

/// Proof that the request carries the admin credential. Its rejection is the whole answer:
/// 404 while the admin pages are off, 401 with a basic-auth challenge otherwise.
pub struct Admin;

impl FromRequestParts<Ctx> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &Ctx) -> Result<Self, Response> {
        let Some(want) = &ctx.config.admin.key_sha256 else {
            return Err(super::not_found_page().into_response());
        };
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(challenge(
                "admin_login_required",
                "The admin pages need the admin key: any user name, the key as password.",
            ));
        };
        let presented = value.to_str().ok().and_then(credential);
        // Digests first, so the comparison takes the same time whatever the lengths.
        let matches = presented.is_some_and(|key| {
            let got: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            bool::from(got.ct_eq(want))
        });
        if !matches {
            tracing::warn!("admin pages: a wrong admin credential was presented");
            return Err(challenge(
                "admin_key_invalid",
                "That is not the admin key. Try again with the key from [admin] key_sha256.",
            ));
        }
        Ok(Admin)
    }
}

/// The key in `Basic base64(user:key)` (any user) or `Bearer key`.
fn credential(header: &str) -> Option<String> {
    if let Some(b64) = header.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_user, key) = text.split_once(':')?;
        (!key.is_empty()).then(|| key.to_owned())
    } else {
        let key = header.strip_prefix("Bearer ")?.trim();
        (!key.is_empty()).then(|| key.to_owned())
    }
}

fn challenge(outcome: &str, message: &str) -> Response {
    let mut r = Page::new(
        StatusCode::UNAUTHORIZED,
        outcome,
        "需要登录 / Admin login",
        message,
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"wxlink admin\", charset=\"UTF-8\""),
    );
    r
}

/// Headers on every admin answer: never cached, never framed, no scripts at all, no
/// referrer leaving with the page's ids in it.
async fn protect(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

/// Renders a page template, or a 500 if it fails (it should not).
fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A filter or id the page cannot use.
fn bad_request(message: impl Into<String>) -> Response {
    Page::new(
        StatusCode::BAD_REQUEST,
        "admin_bad_request",
        "无效的请求 / Bad request",
        message,
    )
    .link("/admin", "Admin overview")
    .into_response()
}

/// Unix seconds as Beijing time (UTC+8), `2026-11-25 23:59:59`: WeChat's quota days are
/// Beijing days, so the pages speak that time.
pub(crate) fn beijing(unix_secs: i64) -> String {
    let t = unix_secs + 8 * 3600;
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Milliseconds as [`beijing`] time.
pub(crate) fn beijing_ms(unix_ms: i64) -> String {
    beijing(unix_ms.div_euclid(1000))
}

/// `5 min ago` / `in 1 h 55 min`, relative to `now`.
pub(crate) fn relative(now: i64, t: i64) -> String {
    let d = (t - now).abs();
    let span = if d < 60 {
        format!("{d} s")
    } else if d < 3600 {
        format!("{} min", d / 60)
    } else if d < 86_400 {
        format!("{} h {} min", d / 3600, d % 3600 / 60)
    } else {
        format!("{} d {} h", d / 86_400, d % 86_400 / 3600)
    };
    if t >= now {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time() {
        // 2026-11-25 15:59:59 UTC
        assert_eq!(beijing(1_795_622_399), "2026-11-25 23:59:59");
        assert_eq!(beijing(1_795_622_400), "2026-11-26 00:00:00");
        assert_eq!(beijing(0), "1970-01-01 08:00:00");
        assert_eq!(beijing(951_782_400 - 8 * 3600), "2000-02-29 00:00:00");
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(1000, 1000 + 6900), "in 1 h 55 min");
        assert_eq!(relative(1000, 700), "5 min ago");
        assert_eq!(relative(1000, 1000), "in 0 s");
    }

    #[test]
    fn credentials() {
        let basic = base64::engine::general_purpose::STANDARD.encode("admin:s3cret:x");
        assert_eq!(
            credential(&format!("Basic {basic}")).as_deref(),
            Some("s3cret:x")
        );
        assert_eq!(credential("Bearer k").as_deref(), Some("k"));
        assert_eq!(credential("Bearer "), None);
        let empty = base64::engine::general_purpose::STANDARD.encode("admin:");
        assert_eq!(credential(&format!("Basic {empty}")), None);
        assert_eq!(credential("Basic !!!"), None);
    }
}
