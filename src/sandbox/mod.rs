//! The sandbox: with no configuration, wxlink runs against its built-in simulator with two
//! apps (`oa`, `mp`), a development API key and a page at `/` ([`pages`]) to walk the whole
//! flow in a desktop browser as a simulated WeChat user.

pub mod backend;
mod js_sdk;
pub mod pages;
pub mod receiver;
pub mod results;

use crate::clock::Clock;
use crate::config::{ApiKey, AppConfig, AppKind, Config, TokenMode};
use crate::domain::{AppId, JsSafeDomains, WxAppId, hash_token, random_alphanumeric};
use crate::seal::{Keyring, StorageKey};
use crate::sim::{Sim, SimApp};
use crate::wechat::AppCredentials;
use anyhow::Context as _;
use secrecy::SecretString;
use url::Url;

/// What the sandbox adds to the context.
pub struct Sandbox {
    pub sim: Sim,
    /// The development API key, printed at start-up and shown on the page.
    pub api_key: String,
    /// Signs the sandbox's deliveries to its own receiver ([`receiver`]).
    pub webhook_secret: String,
    /// What that receiver got, newest first.
    pub webhooks_received: std::sync::Mutex<std::collections::VecDeque<receiver::Delivery>>,
    /// The backend API the pages call as a business backend would ([`backend`]).
    pub backend: backend::Backend,
    /// Where the sandbox's authorizations may return: its own `/sandbox/` and the extra
    /// entries (`[sandbox] return_to_allow`), shown on the page.
    pub return_to_allow: Vec<Url>,
    /// Other machines can reach it (`[sandbox] allow_public`): said loudly at start-up.
    pub public: bool,
}

/// The sandbox apps' templates, registered in the built-in simulator at start-up.
pub const ORDER_SHIPPED: &str = "sandbox_order_shipped";
pub const ORDER_STATUS: &str = "sandbox_order_status";
pub const LEGACY_ORDER: &str = "sandbox_legacy_order";
/// The Official Account's subscribe-notification template (`oa_subscribe`).
pub const ORDER_NOTICE: &str = "sandbox_order_notice";

const OA_APPID: &str = "wxsandbox0a000001";
const MP_APPID: &str = "wxsandbox0b000002";

impl Sandbox {
    /// Sandbox apps `oa` and `mp` (one unionid group) on the simulator mounted at `/sim`,
    /// the development API key, and a storage key when none is configured.
    pub fn setup(config: &mut Config, public_url: &Url, clock: &Clock) -> anyhow::Result<Self> {
        let sim = Sim::new(clock.clone());
        let sim_base = format!("{}/sim", public_url.as_str().trim_end_matches('/'));
        let auth_domain = crate::domain::host_and_port(public_url);
        for (id, kind, appid) in [
            ("oa", AppKind::OfficialAccount, OA_APPID),
            ("mp", AppKind::MiniProgram, MP_APPID),
        ] {
            if config.apps.iter().any(|a| a.id.as_str() == id) {
                continue;
            }
            let secret = crate::domain::OneTimeCode::generate().expose().to_owned();
            // The simulator pushes to the sandbox's own push endpoint, in safe mode.
            let app = AppConfig {
                id: AppId::parse(id)?,
                kind,
                wechat: AppCredentials {
                    appid: WxAppId::parse(appid)?,
                    secret: SecretString::from(secret),
                    api_base: sim_base.clone(),
                    open_base: sim_base.clone(),
                },
                push_token: Some(SecretString::from(random_alphanumeric(32))),
                encoding_aes_key: Some(SecretString::from(random_alphanumeric(43))),
                encoding_aes_key_previous: None,
                push_mode: crate::config::PushMode::Safe,
                token_mode: TokenMode::Stable,
                forward: None,
                js_safe_domains: js_safe_domains(kind, public_url)?,
            };
            sim.add_app(SimApp {
                auth_domain: auth_domain.clone(),
                unionid_group: Some("sandbox".to_owned()),
                ..SimApp::for_config(&app, public_url.as_str())
            });
            config.apps.push(app);
        }
        register_templates(&sim, OA_APPID, MP_APPID);
        let api_key = std::env::var("WXLINK_SANDBOX_API_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| format!("dev_{}", crate::domain::OneTimeCode::generate().expose()));
        let sha: [u8; 32] = hex::decode(hash_token(&api_key))?
            .try_into()
            .map_err(|_| anyhow::anyhow!("sha256 length"))?;
        config.api_keys.push(ApiKey::full_access("sandbox", sha));
        // The sandbox's admin pages open with the development key unless one is configured.
        config.admin.key_sha256.get_or_insert(sha);
        let own = Url::parse(&format!(
            "{}/sandbox/",
            public_url.as_str().trim_end_matches('/')
        ))?;
        let mut return_to_allow = vec![own.clone()];
        return_to_allow.extend(
            config
                .sandbox_settings
                .return_to_allow
                .entries()
                .iter()
                .cloned(),
        );
        for url in &return_to_allow {
            config.return_to_allow.push(url.clone());
        }
        // "Back" on the person pages leads to the sandbox page unless `[pages]` says otherwise.
        if config.pages.home_url.is_none() {
            config.pages.home_url = Some(public_url.clone());
        }
        if config.storage_key.is_none() {
            config.storage_key = Some(Keyring::new(storage_key(&config.database_url)?, None));
        }
        // Every event to the sandbox's own receiver, so webhooks can be watched at work.
        use base64::Engine;
        let webhook_secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(random_alphanumeric(32))
        );
        if !config.webhooks.iter().any(|w| w.name == "sandbox") {
            config.webhooks.push(crate::config::WebhookEndpoint {
                name: "sandbox".into(),
                url: Url::parse(&format!(
                    "{}/sandbox/webhooks",
                    public_url.as_str().trim_end_matches('/')
                ))?,
                events: vec!["*".into()],
                secrets: vec![SecretString::from(webhook_secret.clone())],
            });
        }
        let public = crate::config::sandbox_is_public(config.listen, config.public_url.as_ref());
        Ok(Self {
            sim,
            backend: backend::Backend::new(&api_key),
            api_key,
            webhook_secret,
            webhooks_received: Default::default(),
            return_to_allow,
            public,
        })
    }

    /// What `wxlink serve` prints when the sandbox starts: where everything is.
    pub fn banner(&self, database_url: &str, public_url: &Url) -> String {
        let allow: Vec<&str> = self.return_to_allow.iter().map(Url::as_str).collect();
        format!(
            "wxlink sandbox: SQLite at {database_url}, WeChat simulator at {public_url}sim\n  \
             open {public_url} in a browser to try the authorization flow\n  \
             development API key: {}\n  \
             API reference: {public_url}api/docs/; admin pages: {public_url}admin (any user name, the API key as password)\n  \
             return_to allowed: {} (more with WXLINK_SANDBOX_RETURN_TO_ALLOW)",
            self.api_key,
            allow.join(", ")
        )
    }

    /// What `wxlink serve` prints (to standard error) when the sandbox is public.
    pub fn public_warning(&self, listen: std::net::SocketAddr, public_url: &Url) -> Option<String> {
        self.public.then(|| {
            let line = "!".repeat(78);
            format!(
                "{line}\n\
                 WARNING: this sandbox is reachable from other machines ({listen}, {public_url}).\n\
                 Its page at / shows the development API key to anyone who opens it, and that key\n\
                 calls the whole backend API and opens the admin pages. Started anyway because\n\
                 [sandbox] allow_public = true (or WXLINK_SANDBOX_ALLOW_PUBLIC=true) says so.\n\
                 {line}"
            )
        })
    }
}

/// The sandbox's Official Account signs JS-SDK configs for the sandbox's own pages.
fn js_safe_domains(kind: AppKind, public_url: &Url) -> anyhow::Result<JsSafeDomains> {
    let own = match (kind, crate::domain::host_and_port(public_url)) {
        (AppKind::OfficialAccount, Some(host)) => vec![host],
        _ => Vec::new(),
    };
    Ok(JsSafeDomains::parse(&own)?)
}

/// Gives the sandbox's Official Account a template message and a subscribe notification,
/// and its mini-program a subscribe and a legacy template, so sends can be tried at once.
fn register_templates(sim: &Sim, oa_appid: &str, mp_appid: &str) {
    for (appid, id, kind, title, content) in [
        (
            oa_appid,
            ORDER_SHIPPED,
            "template",
            "订单发货通知",
            "{{first.DATA}}\n订单号：{{keyword1.DATA}}\n快递公司：{{keyword2.DATA}}\n{{remark.DATA}}",
        ),
        (
            oa_appid,
            ORDER_NOTICE,
            "subscribe",
            "订单进度提醒",
            "订单内容：{{thing1.DATA}}\n更新时间：{{time2.DATA}}",
        ),
        (
            mp_appid,
            ORDER_STATUS,
            "subscribe",
            "订单状态通知",
            "订单内容：{{thing1.DATA}}\n更新时间：{{time2.DATA}}",
        ),
        (
            mp_appid,
            LEGACY_ORDER,
            "form",
            "订单通知",
            "订单：{{keyword1.DATA}}",
        ),
    ] {
        sim.add_template(
            appid,
            crate::sim::SimTemplate {
                template_id: id.to_owned(),
                kind: kind.to_owned(),
                title: title.to_owned(),
                content: content.to_owned(),
                example: String::new(),
            },
        );
    }
}

/// The sandbox's storage key when none is configured: kept in `<database file>.storage-key`
/// so a restarted sandbox still opens the session keys it sealed. An in-memory or
/// PostgreSQL sandbox gets a fresh key each start (its sealed values then no longer open).
fn storage_key(database_url: &str) -> anyhow::Result<StorageKey> {
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    let file = database_url
        .starts_with("sqlite:")
        .then(|| SqliteConnectOptions::from_str(database_url).ok())
        .flatten()
        .map(|o| o.get_filename().to_owned())
        .filter(|f| f.as_os_str() != ":memory:" && !database_url.contains("mode=memory"));
    let Some(db_file) = file else {
        tracing::warn!(
            "sandbox without a database file: a fresh storage_key this run (set storage_key to keep one)"
        );
        return Ok(StorageKey::generate());
    };
    let mut path = db_file.into_os_string();
    path.push(".storage-key");
    let path = std::path::PathBuf::from(path);
    let read = |path: &std::path::Path| -> anyhow::Result<StorageKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the sandbox storage key {}", path.display()))?;
        StorageKey::parse(&text)
            .map_err(|e| anyhow::anyhow!("sandbox storage key {} {}", path.display(), e.0))
    };
    if path.exists() {
        return read(&path);
    }
    let key = StorageKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(key.to_base64().as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(key)
        }
        // Another sandbox process on the same file won the race: use its key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(e)
            .with_context(|| format!("cannot create the sandbox storage key {}", path.display())),
    }
}
