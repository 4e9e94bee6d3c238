//! The REST API's integration tests: one binary, each test against its own freshly started
//! server and database (see `helpers::spawn_app`).
#![forbid(unsafe_code)]

mod access;
mod artifacts;
mod bad_input;
mod events;
mod graphql;
mod helpers;
mod ops;
mod runs;
mod slow_clients;
mod storage;
#[path = "../support/mod.rs"]
mod support;
mod users_entities;
mod wandb_artifacts;
mod wandb_console;
mod wandb_runs;
mod wandb_stop;
