//! herald's engine: the rules that need the store but not HTTP — who may do what
//! ([`access`]), API keys and the bootstrap admin ([`auth`]), and the catalog operations that
//! combine several store calls ([`catalog`]). Matching automations and delivering their
//! actions will live here too.
#![forbid(unsafe_code)]

pub mod access;
pub mod auth;
pub mod catalog;
mod error;

pub use error::{Error, Result};
