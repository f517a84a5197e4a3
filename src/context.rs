//! What every handler shares: configuration, store, WeChat client, clock, token manager,
//! outbox and push inbox. Built at start-up (`crate::app`); the core below it (outbox,
//! push, store, token, wechat) never takes it, so it holds them all without an import loop.

use crate::clock::Clock;
use crate::config::{AppConfig, Config};
use crate::domain::AppId;
use crate::store::Store;
use crate::wechat::WechatClient;
use std::sync::Arc;
use url::Url;

pub type Ctx = Arc<Context>;

pub struct Context {
    pub config: Config,
    /// Resolved at start-up: configured, or derived from the bound address.
    pub public_url: Url,
    pub store: Store,
    pub wechat: WechatClient,
    pub clock: Clock,
    pub tokens: crate::token::TokenManager,
    /// The Official Accounts' JS-SDK tickets.
    pub tickets: crate::ticket::TicketManager,
    pub outbox: crate::outbox::Outbox,
    /// What WeChat pushes to us: received, stored, handled.
    pub push: crate::push::Inbox,
    /// Signed events out to the configured endpoints.
    pub webhooks: crate::webhooks::Webhooks,
    /// The sandbox's simulator, when the sandbox runs: what a backend records about a
    /// simulated person through the API (an acceptance) that person also did in WeChat.
    pub sandbox_sim: Option<crate::sim::Sim>,
}

impl Context {
    pub fn app(&self, id: &AppId) -> Option<&AppConfig> {
        self.config.app(id)
    }

    /// An absolute URL of ours for a path starting with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }
}
