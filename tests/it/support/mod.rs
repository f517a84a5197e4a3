//! What every feature module shares, by role: the service under test (`service`), its API
//! (`api`) and pages (`browser`: HTTP clients that act as browsers), a real headless
//! Chromium (`chromium`) and the business site it returns to (`business`), the sandbox
//! (`sandbox`), the simulated WeChat (`sim`), real wxlink processes (`process`), databases
//! (`database`), pushes (`push`), an account's existing push handler (`downstream`), a
//! webhook receiver (`webhooks`), other people's scripts and libraries (`peers`), and tests
//! that need a process of their own (`alone`).

pub mod alone;
pub mod api;
pub mod browser;
pub mod business;
pub mod chromium;
pub mod database;
pub mod downstream;
pub mod peers;
pub mod process;
pub mod push;
pub mod sandbox;
pub mod service;
pub mod sim;
pub mod webhooks;

pub use browser::*;
pub use database::*;
pub use service::*;
pub use sim::SimClient;
