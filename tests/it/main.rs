//! The integration tests, one binary (the crate is linked once): a module per feature, all
//! sharing `support`. One feature alone: `cargo test --test it send::`.

mod support;

mod admin;
mod api;
mod api_contract;
mod at_rest;
mod auto;
mod browser_suite;
mod check;
mod config;
mod delivery;
mod erase;
mod fleet;
mod layout;
mod link_tickets;
mod logs;
mod miniprogram;
mod oauth;
mod openapi;
mod ops;
mod pacing;
mod pages;
mod peers;
mod postgres;
mod push;
mod push_events;
mod readme;
mod recipes;
mod retention;
mod sandbox;
mod sandbox_cards;
mod sandbox_start;
mod scopes;
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
