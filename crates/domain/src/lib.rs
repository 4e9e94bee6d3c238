//! herald's domain: the types every other layer speaks in, and the rules that need no I/O.
//!
//! Values arrive here as raw strings and JSON and leave as parsed types (`EntityName::parse`,
//! `VersionRef::parse`, `HistoryRow::parse`): once a value has one of these types, the layers
//! above never check it again. Nothing in this crate is async, touches a database or knows HTTP,
//! so most unit and property tests live here.
#![forbid(unsafe_code)]

pub mod automation;
pub mod catalog;
pub mod console;
pub mod error;
pub mod event;
pub mod filter;
pub mod ids;
pub mod names;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod run;
pub mod template;
pub mod wandb_artifact;
pub mod wandb_run;
pub mod webhook_url;

pub use error::InvalidInput;
pub mod run_filter;
pub mod slack;
pub mod window;
