//! The integration tests, one binary (the crate is linked once): a module per feature, all
//! sharing `support`. One feature alone: `cargo test --test it send::`.

mod support;

mod admin;
mod api;
mod at_rest;
mod auto;
mod check;
mod config;
mod delivery;
mod fleet;
mod layout;
mod logs;
mod miniprogram;
mod oauth;
mod openapi;
mod ops;
mod pacing;
mod pages;
mod postgres;
mod push;
mod push_events;
mod retention;
mod sandbox;
mod send;
mod send_crash;
mod shutdown;
mod sim;
mod sim_wire;
mod storage;
mod token;
mod token_processes;
mod webhooks;
mod webhooks_fleet;
mod webhooks_receivers;
mod wechat_client;
