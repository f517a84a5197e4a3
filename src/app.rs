//! Start-up: bind the listener (port 0 works), open the store, wire the routes, and, with no
//! configuration, set up the sandbox with its built-in simulator. Shutdown: stop accepting,
//! let requests and sends in flight finish within the grace period, give back the outbox's
//! claims.

use crate::clock::Clock;
use crate::config::Config;
use crate::context::{Context, Ctx};
use crate::http;
use crate::http::ratelimit::RateLimits;
use crate::outbox::Outbox;
use crate::push::Inbox;
use crate::sandbox::Sandbox;
use crate::store::{Db, Store};
use crate::token::TokenManager;
use crate::webhooks::Webhooks;
use crate::wechat::WechatClient;
use anyhow::Context as _;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{ExpiredDeletion, Expiry, SessionManagerLayer};
use url::Url;

pub struct App {
    listener: TcpListener,
    router: Router,
    ctx: Ctx,
    sandbox: Option<Arc<Sandbox>>,
    rate_limits: Arc<RateLimits>,
    /// Follower info lookups and imports; the API reaches it as an extension.
    followers: crate::followers::Followers,
}

const SESSION_IDLE: tower_sessions::cookie::time::Duration =
    tower_sessions::cookie::time::Duration::minutes(30);

impl App {
    /// Binds `listen` and builds the service on it.
    pub async fn build(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (setting `listen`)", config.listen))?;
        Self::build_with_listener(config, clock, listener).await
    }

    /// Builds the service on a listener the caller bound (instead of `listen`), so the
    /// caller knows the address before the service starts without binding twice.
    pub async fn build_with_listener(
        mut config: Config,
        clock: Clock,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        crate::metrics::install();
        let addr = listener.local_addr()?;
        let public_url = match &config.public_url {
            Some(u) => u.clone(),
            None => {
                let host = if addr.ip().is_unspecified() {
                    "127.0.0.1".to_owned()
                } else {
                    addr.ip().to_string()
                };
                Url::parse(&format!("http://{host}:{}/", addr.port()))?
            }
        };

        let sandbox = if config.sandbox {
            Some(Arc::new(Sandbox::setup(&mut config, &public_url, &clock)?))
        } else {
            None
        };

        let store = Store::connect(&config.database_url, &config.database)
            .await
            .with_context(|| {
                format!(
                    "cannot open the database (setting `database_url`, {})",
                    redact_url(&config.database_url)
                )
            })?
            .with_keys(config.storage_key.clone());
        store
            .seal_plain_values()
            .await
            .context("cannot seal the values an older version stored in clear")?;

        if sandbox.is_some() {
            store.forget_access_tokens().await?;
            store.forget_js_tickets().await?;
        }
        let wechat = WechatClient::new()?;
        let tokens = TokenManager::new(
            &config.apps,
            store.clone(),
            wechat.clone(),
            clock.clone(),
            config.tokens.clone(),
        );
        let tickets = crate::ticket::TicketManager::new(
            &config.apps,
            store.clone(),
            wechat.clone(),
            tokens.clone(),
            clock.clone(),
            config.tokens.clone(),
        );
        let outbox = Outbox::new(
            &config.apps,
            store.clone(),
            tokens.clone(),
            wechat.clone(),
            clock.clone(),
            config.outbox.clone(),
        );
        let push = Inbox::new(
            store.clone(),
            outbox.clone(),
            clock.clone(),
            config.push.clone(),
        )?;
        let followers = crate::followers::Followers::new(
            &config.apps,
            store.clone(),
            tokens.clone(),
            wechat.clone(),
            clock.clone(),
            config.followers.clone(),
        );
        let webhooks = Webhooks::new(
            &config.webhooks,
            config.webhook_delivery.clone(),
            store.clone(),
            clock.clone(),
        )?;
        webhooks
            .sync()
            .await
            .context("cannot record the [[webhooks]] endpoints in the database")?;
        let ctx: Ctx = Arc::new(Context {
            outbox,
            webhooks,
            config,
            public_url: public_url.clone(),
            store: store.clone(),
            wechat,
            clock,
            tokens,
            tickets,
            push,
            sandbox_sim: sandbox.as_ref().map(|sb| sb.sim.clone()),
        });

        let secure = public_url.scheme() == "https";
        // The two session stores are different types with inherent migrate(); the rest is shared.
        // Sessions are written on every authorization: on SQLite they go through the writer.
        let browser = match &store.write {
            Db::Sqlite(pool) => {
                let sessions = tower_sessions_sqlx_store::SqliteStore::new(pool.clone());
                sessions
                    .migrate()
                    .await
                    .context("session table migration")?;
                with_sessions(sessions, secure, sandbox.clone())
            }
            Db::Postgres(pool) => {
                let sessions = tower_sessions_sqlx_store::PostgresStore::new(pool.clone());
                sessions
                    .migrate()
                    .await
                    .context("session table migration")?;
                with_sessions(sessions, secure, sandbox.clone())
            }
        };
        let mut router =
            http::router(ctx.clone(), browser).layer(axum::Extension(followers.clone()));
        if let Some(sb) = &sandbox {
            router = router
                .nest("/sim", sb.sim.router())
                .merge(crate::sandbox::receiver::router(sb.clone()));
        }
        let rate_limits = RateLimits::new(&ctx.config.rate_limits);
        let router = router
            .layer(axum::middleware::from_fn_with_state(
                rate_limits.clone(),
                http::ratelimit::limit,
            ))
            .layer(TraceLayer::new_for_http().make_span_with(crate::telemetry::request_span))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(
                crate::telemetry::RandomRequestId,
            ));

        Ok(Self {
            listener,
            router,
            ctx,
            sandbox,
            rate_limits,
            followers,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn public_url(&self) -> &Url {
        &self.ctx.public_url
    }

    pub fn context(&self) -> &Ctx {
        &self.ctx
    }

    /// Follower info lookups and imports (what tests drive directly).
    pub fn followers(&self) -> &crate::followers::Followers {
        &self.followers
    }

    /// The sandbox's simulator and development key, when it runs.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_deref()
    }

    /// Serves HTTP and runs the background work (token refreshers, outbox workers, the
    /// metrics sampler) until `shutdown`. Then: no new connections; requests in flight and
    /// the outbox's sends in flight get until `shutdown_grace_secs` to finish; the messages
    /// this instance still holds go back to the queue; background work stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let ctx = self.ctx;
        let background = CancellationToken::new();
        let _stop_background = background.clone().drop_guard();
        let outbox_stop = CancellationToken::new();
        let _stop_outbox = outbox_stop.clone().drop_guard();
        let http_stop = CancellationToken::new();

        ctx.tokens.spawn_refreshers(background.clone());
        ctx.tickets.spawn_refreshers(background.clone());
        ctx.push.spawn_sweeper(background.clone());
        self.followers.spawn(background.clone());
        ctx.store.spawn_file_watch(background.clone());
        ctx.store.spawn_checkpointer(background.clone());
        let workers = ctx.outbox.spawn(outbox_stop.clone());
        let webhooks_stop = CancellationToken::new();
        let _stop_webhooks = webhooks_stop.clone().drop_guard();
        let deliverer = ctx.webhooks.spawn(webhooks_stop.clone());
        spawn_sampler(
            ctx.store.clone(),
            ctx.tokens.clone(),
            ctx.clock.clone(),
            Duration::from_secs(ctx.config.metrics.refresh_secs),
            background.clone(),
        );
        self.rate_limits.spawn_sweeper(background.clone());
        crate::retention::spawn(
            ctx.store.clone(),
            ctx.clock.clone(),
            ctx.config.retention.clone(),
            background.clone(),
        );

        let server = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(http_stop.clone().cancelled_owned())
        .into_future();
        let mut server = std::pin::pin!(server);
        tokio::select! {
            // The listener failed on its own: nothing to drain for HTTP.
            result = &mut server => {
                outbox_stop.cancel();
                return result;
            }
            _ = shutdown => {}
        }

        let grace = Duration::from_secs(ctx.config.shutdown_grace_secs);
        let deadline = tokio::time::Instant::now() + grace;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new connections; finishing requests and sends in flight"
        );
        http_stop.cancel();
        outbox_stop.cancel();
        webhooks_stop.cancel();
        let _ = deliverer.await;
        ctx.webhooks.release().await;
        let http = async {
            match tokio::time::timeout_at(deadline, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("requests still in flight at the end of the grace period");
                    Ok(())
                }
            }
        };
        let (result, released) = tokio::join!(http, ctx.outbox.drain(workers, deadline));
        tracing::info!(released, "stopped");
        result
    }
}

/// The browser routes (OAuth and the sandbox's pages) behind the session layer, with
/// expired sessions swept in the background.
fn with_sessions<S>(store: S, secure: bool, sandbox: Option<Arc<Sandbox>>) -> Router<Ctx>
where
    S: tower_sessions::SessionStore + ExpiredDeletion + Clone,
{
    tokio::spawn(
        store
            .clone()
            .continuously_delete_expired(Duration::from_secs(300)),
    );
    http::browser_router()
        .merge(crate::sandbox::pages::router(sandbox))
        .layer(session_layer(store, secure))
}

fn session_layer<S: tower_sessions::SessionStore + Clone>(
    store: S,
    secure: bool,
) -> SessionManagerLayer<S> {
    SessionManagerLayer::new(store)
        .with_name("wxlink_sid")
        .with_secure(secure)
        // Lax: the cookie must come back on the top-level redirect from WeChat.
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_expiry(Expiry::OnInactivity(SESSION_IDLE))
}

/// Samples the gauges every `every` until `stop`: outbox depth (one small query), token
/// ages (from memory), and the exporter's upkeep.
fn spawn_sampler(
    store: Store,
    tokens: TokenManager,
    clock: Clock,
    every: Duration,
    stop: CancellationToken,
) {
    crate::metrics::install();
    tokio::spawn(async move {
        loop {
            match store.outbox_depth().await {
                Ok((depth, oldest)) => {
                    let age = oldest.map_or(0, |t| (clock.now_ms() - t.millis()).max(0));
                    crate::metrics::outbox_depth(depth, age as f64 / 1000.0);
                }
                Err(e) => tracing::warn!(error = %e, "metrics: cannot read the outbox depth"),
            }
            match store.webhook_endpoints().await {
                Ok(endpoints) => {
                    for e in endpoints {
                        let age = e
                            .oldest_pending_ms
                            .map_or(0, |t| (clock.now_ms() - t.millis()).max(0));
                        crate::metrics::webhook_endpoint(
                            &e.name,
                            e.pending,
                            age as f64 / 1000.0,
                            e.disabled_ms.is_some(),
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "metrics: cannot read the webhook queues"),
            }
            let now = clock.now();
            for t in tokens.status() {
                crate::metrics::token_age(
                    &t.app,
                    t.expires_at.map_or(0, |e| (e - now).max(0)),
                    t.fetched_at.map(|f| (now - f).max(0)),
                );
            }
            crate::metrics::upkeep();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
}

/// The database URL without a password, for messages.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
