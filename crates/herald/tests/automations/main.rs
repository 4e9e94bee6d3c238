//! Automations end to end (issue 3): the real server, in process or as the `herald serve`
//! binary, delivering to a real HTTP receiver on loopback. Every artifact and collection event
//! at every scope, with and without filters; the exact body, headers and signatures received;
//! each receiver misbehaviour recorded and retried as the policy says; a kill -9 mid-delivery
//! that loses nothing; secrets that never leak; and bad input refused with nothing stored.
#![forbid(unsafe_code)]

mod backlog;
mod bad_input;
mod cancel;
mod crash;
mod delivery_faults;
mod events;
mod helpers;
mod readme_receiver;
mod secrets;
#[path = "../support/mod.rs"]
mod support;
