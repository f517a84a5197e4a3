//! Logging set-up. Request spans carry method, path and the request id, so every line
//! written while a request is handled names it (JSON: in `span` and `spans`); never the
//! query string or headers, which hold authorization codes, tickets and keys. Background
//! work runs in spans of its own: `token_refresher{app}`, `outbox_claimer`,
//! `outbox_send{message_id,app,channel,attempt}`, `outbox_finisher`.

use axum::http::Request;
use tracing::Span;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The default filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_sessions=warn";

/// Logs to standard output: `RUST_LOG` (default [`DEFAULT_FILTER`]), JSON lines with
/// `WXLINK_LOG_FORMAT=json`. Colours only on a terminal: a log file or journald got the
/// escape codes inside every line.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("WXLINK_LOG_FORMAT").as_deref() == Ok("json");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    build(filter, json, ansi, std::io::stdout);
}

/// The same subscriber writing to `writer`, without colours (tests capture a whole run's
/// logs with it).
pub fn init_with<W>(filter: EnvFilter, json: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    build(filter, json, false, writer);
}

fn build<W>(filter: EnvFilter, json: bool, ansi: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already initialised (tests start several apps in one process): keep the first.
    let _ = result;
}

/// `X-Request-Id` for a request that brings none: a random version-4 UUID from the
/// thread's generator. tower-http's `MakeRequestUuid` asks the kernel for every one (a
/// `getrandom` call per request, 3% of the token route's time in bench/profile.sh).
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomRequestId;

impl tower_http::request_id::MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<tower_http::request_id::RequestId> {
        let id = uuid_v4(rand::RngExt::random(&mut rand::rng()));
        axum::http::HeaderValue::from_str(&id)
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// 128 random bits written as a version-4, variant-1 UUID.
fn uuid_v4(bits: u128) -> String {
    let v = (bits & !(0xF << 76)) | (0x4 << 76);
    let v = (v & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The span of one HTTP request: no query string, no headers, openids in paths shortened.
pub fn request_span<B>(req: &Request<B>) -> Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %loggable_path(req.uri().path()),
        request_id = %request_id,
        api_key = tracing::field::Empty,
    )
}

/// The path as logged: an openid in it (`/api/v1/users/{user}/identities/{app}/{openid}`)
/// keeps its first 6 characters, as `OpenId::redacted` logs it elsewhere.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.starts_with("/api/v1/users/") {
        return path.into();
    }
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["", "api", "v1", "users", _, "identities", _, openid, ..]
            if openid.chars().count() > 6 =>
        {
            let head: String = openid.chars().take(6).collect();
            let mut out = segments.clone();
            let short = format!("{head}…");
            out[7] = &short;
            out.join("/").into()
        }
        _ => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{loggable_path, uuid_v4};

    #[test]
    fn request_ids_are_version_4_uuids() {
        assert_eq!(uuid_v4(0), "00000000-0000-4000-8000-000000000000");
        assert_eq!(uuid_v4(u128::MAX), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let mut make = super::RandomRequestId;
        let req = axum::http::Request::new(());
        let a = tower_http::request_id::MakeRequestId::make_request_id(&mut make, &req).unwrap();
        let b = tower_http::request_id::MakeRequestId::make_request_id(&mut make, &req).unwrap();
        assert_ne!(a.header_value(), b.header_value());
        assert_eq!(a.header_value().len(), 36);
    }

    #[test]
    fn openids_in_paths_are_shortened() {
        assert_eq!(
            loggable_path("/api/v1/users/42/identities/oa/o6_bmjrPTlm6_2sgVt7hMZOPfL2M"),
            "/api/v1/users/42/identities/oa/o6_bmj…"
        );
        assert_eq!(loggable_path("/api/v1/users/42"), "/api/v1/users/42");
        assert_eq!(loggable_path("/oauth/oa/callback"), "/oauth/oa/callback");
    }
}
