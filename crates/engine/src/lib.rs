//! herald's engine: the rules that need the store but not HTTP — who may do what
//! ([`access`]), API keys, their checking service and the bootstrap admin ([`auth`], which
//! the API uses whether or not the engine runs), catalog operations that span store calls
//! ([`catalog`]), saving automations ([`automations`]), matching events to them ([`matcher`]),
//! delivering their actions ([`delivery`]), team secrets ([`secrets`]), files and the signed URLs
//! clients reach them by ([`blobs`]), and the loops that run it all ([`runtime::Engine`]).
#![forbid(unsafe_code)]

pub mod access;
pub mod artifact_save;
pub mod auth;
pub mod automations;
pub mod blobs;
pub mod catalog;
pub mod delivery;
mod error;
pub mod matcher;
pub mod run_matching;
pub mod runtime;
pub mod secrets;
pub mod variables;

pub use error::{Error, Result};
pub use runtime::Engine;
