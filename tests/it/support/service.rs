//! The service under test: the WeChat simulator and wxlink in this process, on random
//! loopback ports, each test with its own database and clocks.

use super::database::test_database;
use super::sim::SimClient;
use reqwest::Client;
use tokio_util::sync::{CancellationToken, DropGuard};
use wxlink::app::App;
use wxlink::clock::Clock;
use wxlink::config::Config;
use wxlink::sim::{Sim, SimApp};

pub const OA_APPID: &str = "wxtestoa00000001";
pub const MP_APPID: &str = "wxtestmp00000002";
pub const OA2_APPID: &str = "wxtestoa20000003";
/// An Official Account whose token is fetched the classic way.
pub const CL_APPID: &str = "wxtestcl00000004";
/// A mini-program outside any unionid group, known to the simulator only; a test that
/// needs it in the service adds it with `Options::extra_toml`.
pub const MP2_APPID: &str = "wxtestmp20000005";
/// The first JS-safe domain of `oa` (the second is `shop.example.com/pages`).
pub const OA_JS_DOMAIN: &str = "example.com";
/// The test services' storage_key (32 bytes, base64).
pub const STORAGE_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const API_KEY: &str = "test-api-key-0123456789";
/// Push settings of the test apps: `oa` and `mp` in safe mode, `oa2` plain, `cl` compatible.
pub const OA_PUSH_TOKEN: &str = "oaPushToken1";
pub const OA_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const MP_PUSH_TOKEN: &str = "mpPushToken2";
pub const MP_AES_KEY: &str = "MpKey0123456789abcdefghijklmnopqrstuvwxyzAB";
pub const OA2_PUSH_TOKEN: &str = "oa2PushToken3";
pub const CL_PUSH_TOKEN: &str = "clPushToken4";
pub const CL_AES_KEY: &str = "ClKey0123456789abcdefghijklmnopqrstuvwxyzAB";

/// One test's world: the service and the simulator it talks to, stopped when dropped.
pub struct TestApp {
    /// The service, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
    /// The simulator's control routes (people, templates, faults, stats...).
    pub simulator: SimClient,
    /// The simulator's state, read and changed directly.
    pub sim: Sim,
    /// The service's clock (state, ticket and login-code expiry).
    pub clock: Clock,
    /// The simulator's clock (code and token expiry).
    pub sim_clock: Clock,
    /// A plain HTTP client (no cookies, redirects followed).
    pub api: Client,
    /// The service's shared state (token manager, store...).
    pub ctx: wxlink::context::Ctx,
    /// The service's follower lookups and imports (driven directly by some tests).
    pub followers: wxlink::followers::Followers,
    config_toml: String,
    token: CancellationToken,
    _guard: DropGuard,
    _dir: tempfile::TempDir,
}

/// Extra TOML appended to the generated configuration.
#[derive(Default)]
pub struct Options {
    /// Appended to the configuration (e.g. more `[[apps]]`).
    pub extra_toml: String,
    /// Lines of the `[tokens]` section (the default checks the store every 50 ms).
    pub tokens_toml: Option<String>,
    /// Lifetime of the simulator's global access tokens (WeChat: 7200 s).
    pub sim_token_ttl_secs: Option<i64>,
    /// The simulator's getticket calls per app, type and day before 45009.
    pub sim_ticket_daily_limit: Option<u64>,
    /// Run on PostgreSQL instead of SQLite: the server URL (a fresh database is created).
    pub postgres: Option<String>,
    /// Lines of the `[outbox]` section (the default polls every 20 ms and retries after
    /// 20 ms, doubling up to 200 ms).
    pub outbox_toml: Option<String>,
    /// More `return_to_allow` entries (a test's own business site).
    pub return_to_allow: Vec<String>,
    /// Lines added to a standard app's `[[apps]]` table, by its id (e.g. `forward_url`).
    pub app_lines: Vec<(&'static str, String)>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> Self {
        let token = CancellationToken::new();
        let sim_clock = Clock::system();
        let t = token.clone();
        let (sim, simulator) =
            super::sim::start(sim_clock.clone(), async move { t.cancelled().await }).await;
        let sim_base = simulator.base().to_owned();

        let dir = tempfile::tempdir().unwrap();
        let db = test_database(opts.postgres.clone(), dir.path()).await;
        let toml = format!(
            r#"
            listen = "127.0.0.1:0"
            database_url = "{db}"
            return_to_allow = ["https://shop.example.com/"{more_return_to}]
            storage_key = "{STORAGE_KEY}"

            [[api_keys]]
            name = "tests"
            key_sha256 = "{key}"

            [[apps]]
            id = "oa"
            kind = "official_account"
            appid = "{OA_APPID}"
            secret = "oa-secret"
            push_token = "{OA_PUSH_TOKEN}"
            encoding_aes_key = "{OA_AES_KEY}"
            js_safe_domains = ["{OA_JS_DOMAIN}", "shop.example.com/pages"]
            api_base = "{sim_base}"
            open_base = "{sim_base}"

            [[apps]]
            id = "mp"
            kind = "mini_program"
            appid = "{MP_APPID}"
            secret = "mp-secret"
            push_token = "{MP_PUSH_TOKEN}"
            encoding_aes_key = "{MP_AES_KEY}"
            api_base = "{sim_base}"
            open_base = "{sim_base}"

            [[apps]]
            id = "oa2"
            kind = "official_account"
            appid = "{OA2_APPID}"
            secret = "oa2-secret"
            push_token = "{OA2_PUSH_TOKEN}"
            api_base = "{sim_base}"
            open_base = "{sim_base}"

            [[apps]]
            id = "cl"
            kind = "official_account"
            appid = "{CL_APPID}"
            secret = "cl-secret"
            token_mode = "classic"
            push_token = "{CL_PUSH_TOKEN}"
            encoding_aes_key = "{CL_AES_KEY}"
            push_mode = "compatible"
            api_base = "{sim_base}"
            open_base = "{sim_base}"
            {extra}

            [tokens]
            {tokens}

            [outbox]
            {outbox}
            "#,
            key = wxlink::domain::hash_token(API_KEY),
            more_return_to = opts
                .return_to_allow
                .iter()
                .map(|e| format!(", \"{e}\""))
                .collect::<String>(),
            extra = opts.extra_toml.replace("{SIM}", &sim_base),
            tokens = opts
                .tokens_toml
                .as_deref()
                .unwrap_or("check_interval_ms = 50\njitter_secs = 60"),
            outbox = opts
                .outbox_toml
                .as_deref()
                .unwrap_or("poll_interval_ms = 20\nbackoff_base_ms = 20\nbackoff_max_ms = 200"),
        );
        let mut toml = toml;
        for (id, lines) in &opts.app_lines {
            let at = format!("id = \"{id}\"\n");
            assert!(toml.contains(&at), "no standard app {id}");
            toml = toml.replacen(&at, &format!("{at}{lines}\n"), 1);
        }
        let clock = Clock::system();
        // The simulator knows the apps before the service (and its token refreshers) start:
        // the service's listener is bound first, and handed to it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let domain = format!("127.0.0.1:{port}");
        let toml = toml.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        // The standard apps as the service has them (secrets, push settings), pushing to it.
        let config = Config::from_toml_str(&toml).expect("test configuration");
        for (appid, group) in [
            (OA_APPID, Some("g1")),
            (MP_APPID, Some("g1")),
            (OA2_APPID, None),
            (CL_APPID, None),
        ] {
            let app = config
                .apps
                .iter()
                .find(|a| a.wechat.appid.as_str() == appid)
                .expect("standard test app");
            sim.add_app(SimApp {
                auth_domain: Some(domain.clone()),
                unionid_group: group.map(str::to_owned),
                token_ttl_secs: opts.sim_token_ttl_secs,
                ticket_daily_limit: opts.sim_ticket_daily_limit,
                ..SimApp::for_config(app, &base)
            });
        }
        // A mini-program some tests add to the service with `extra_toml`.
        sim.add_app(SimApp {
            appid: MP2_APPID.into(),
            secret: "mp2-secret".into(),
            kind: "mini_program".into(),
            auth_domain: Some(domain.clone()),
            unionid_group: None,
            token_ttl_secs: opts.sim_token_ttl_secs,
            push_url: None,
            push_token: None,
            encoding_aes_key: None,
            push_mode: None,
            js_safe_domains: Vec::new(),
            ticket_ttl_secs: None,
            ticket_daily_limit: None,
        });
        let (_, ctx, followers) =
            start_instance(&toml, Some(listener), clock.clone(), token.clone()).await;

        TestApp {
            base,
            simulator,
            sim,
            clock,
            sim_clock,
            api: Client::new(),
            ctx,
            followers,
            config_toml: toml,
            _guard: token.clone().drop_guard(),
            token,
            _dir: dir,
        }
    }

    /// Another wxlink instance on the same database and simulator (what a second process or
    /// a restart sees), with its own clock. Returns its base URL and state.
    pub async fn another_instance(&self, clock: Clock) -> (String, wxlink::context::Ctx) {
        self.another_instance_with(clock, |t| t).await
    }

    /// [`TestApp::another_instance`] with its configuration changed by `edit` (a restart
    /// after an operator edited the file).
    pub async fn another_instance_with(
        &self,
        clock: Clock,
        edit: impl FnOnce(String) -> String,
    ) -> (String, wxlink::context::Ctx) {
        let port = self.base.rsplit(':').next().unwrap();
        let toml = edit(self.config_toml.clone())
            .replace(
                &format!("listen = \"127.0.0.1:{port}\""),
                "listen = \"127.0.0.1:0\"",
            )
            .replace(
                "return_to_allow",
                &format!("public_url = \"{}\"\nreturn_to_allow", self.base),
            );
        let (base, ctx, _) = start_instance(&toml, None, clock, self.token.clone()).await;
        (base, ctx)
    }

    /// The service's configuration, changed by `edit`, as a command such as `wxlink
    /// reseal` would load it.
    pub fn config_with(&self, edit: impl FnOnce(String) -> String) -> Config {
        Config::from_toml_str(&self.config_toml_with(edit)).expect("test configuration")
    }

    /// The service's configuration file, changed by `edit`.
    pub fn config_toml_with(&self, edit: impl FnOnce(String) -> String) -> String {
        edit(self.config_toml.clone())
    }

    /// Moves both the service's and the simulator's clocks.
    /// Waits until every configured app's token has been fetched (the start-up fetches run
    /// in the background, and under load one can land after a test's first steps).
    pub async fn tokens_fetched(&self) {
        for _ in 0..500 {
            if self
                .ctx
                .tokens
                .status()
                .iter()
                .all(|s| s.fetched_at.is_some())
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the apps' tokens were not all fetched within 5 s");
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
        self.sim_clock.advance(secs);
    }
}

/// Starts a service on `listener`, or on its configured `listen` address.
async fn start_instance(
    toml: &str,
    listener: Option<tokio::net::TcpListener>,
    clock: Clock,
    stop: CancellationToken,
) -> (String, wxlink::context::Ctx, wxlink::followers::Followers) {
    let config = Config::from_toml_str(toml).expect("test configuration");
    let app = match listener {
        Some(listener) => App::build_with_listener(config, clock, listener).await,
        None => App::build(config, clock).await,
    }
    .expect("service starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let ctx = app.context().clone();
    let followers = app.followers().clone();
    tokio::spawn(app.run_until_stopped(async move { stop.cancelled().await }));
    (base, ctx, followers)
}
