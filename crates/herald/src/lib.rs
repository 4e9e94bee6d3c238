//! The `herald` binary's library: configuration, the assembled server ([`app::App`]), the
//! command line ([`cli`]) and its HTTP client, and benchmarks. `main.rs` only parses and calls.
#![forbid(unsafe_code)]

pub mod app;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod telemetry;
