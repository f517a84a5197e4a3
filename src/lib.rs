//! wxlink links WeChat identities to a company's own user ids, owns each app's global
//! access token, and sends WeChat notifications by business user id.
//!
//! # Layout
//!
//! - [`config`]: the TOML file and environment, parsed once into typed values, one file
//!   per section.
//! - [`check`]: `wxlink check`, the read-only look at configuration, database and credentials.
//! - [`app`]: start-up; binds the listener, opens the store, wires routes and background work.
//! - [`context`]: what every handler shares (configuration, store, client, token manager,
//!   outbox, push inbox); it is built by `app` and knows nothing of HTTP.
//! - [`sandbox`]: the no-configuration mode: its apps on the built-in simulator, the
//!   development key, its storage key, the start-up banner, and the page at `/`.
//! - [`domain`]: validated values (AppId, OpenId, UnionId, UserId, MessageId, ReturnTo...).
//! - [`identity`]: who a person is: web OAuth's code exchange, mini-program login and the
//!   linking rules both bind by, side by side.
//! - [`followers`]: follower info (`user/info`) completing Official Account identities
//!   (after a `subscribe` push, on demand, in the background within a daily quota) and
//!   the resumable import of an account's existing followers.
//! - [`token`]: the access-token manager: one fetch per refresh window across the fleet.
//! - [`ticket`]: the JS-SDK tickets (`jsapi`, `wx_card`) managed like access tokens, and the
//!   `wx.config` signatures made with them.
//! - [`renewal`]: what both share: the versioned cache and the refresher loop.
//! - [`outbox`]: send by business user id: parsed drafts in, typed refusals out; checks
//!   before queueing, the durable outbox, its workers, retries and quota holds.
//! - [`seal`]: encryption at rest (AES-256-GCM under `storage_key`, with the previous key
//!   for rotation).
//! - [`retention`]: the pruner of finished records, in small batches on a schedule.
//! - [`wechat`]: the thin typed client for WeChat's APIs and its error codes.
//! - [`store`]: the only place with SQL; SQLite or PostgreSQL behind one `Store`.
//! - [`push`]: WeChat's server push: verification, safe-mode crypto, its refusals, the event
//!   log and what each event does ([`push::Inbox`]), and forwarding to an app's existing
//!   handler ([`push::forward`]).
//! - [`http`]: browser OAuth pages, the backend JSON API (its wire types and their parsing),
//!   the push endpoint, the admin pages; [`http::error`]: the error of each HTTP boundary,
//!   its single mapping to a response, and the catalogue of every error code.
//! - [`sim`]: the WeChat simulator, sharing the wire types of [`wechat::types`].
//! - [`clock`]: time with an offset, so tests move time instead of sleeping, and
//!   [`clock::Timestamp`], the one type of a stored instant.
//! - [`metrics`]: the Prometheus recorder and every series' helper (a leaf: the gauge
//!   sampler runs from `app`).
//! - [`telemetry`]: logs (text or JSON) and the request span.
//! - [`webhooks`]: events out: signed (Standard Webhooks) deliveries of the events the core
//!   records in its own transactions, to the company's endpoints, in order, with retries.

// Handlers return pages and responses as their error types; those are built at most once
// per request, so their size is not worth boxing.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod check;
pub mod clock;
pub mod config;
pub mod context;
pub mod domain;
pub mod followers;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod outbox;
pub mod push;
pub mod renewal;
pub mod retention;
pub mod sandbox;
pub mod seal;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod ticket;
pub mod token;
pub mod webhooks;
pub mod wechat;
