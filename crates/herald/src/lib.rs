//! The `herald` binary's library: configuration, the assembled server ([`app::App`]), the
//! command line ([`cli`]) and its HTTP client, and benchmarks. `main.rs` only parses and calls.
#![forbid(unsafe_code)]

#[macro_use]
pub mod output;

pub mod app;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
mod http_server;
pub mod telemetry;
pub mod testing;
