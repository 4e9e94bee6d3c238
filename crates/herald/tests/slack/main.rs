//! Slack notifications end to end (issue 5): the real server, in process, posting to a fake
//! Slack on loopback (axum) that checks every request's shape the way Slack would. One message
//! per event family checked field by field; Slack's answers (429 with `Retry-After`, `ok:false`,
//! permanent errors that disable the integration); per-channel pacing that never slows another
//! channel; the integration test call; bad input refused with nothing stored; secrets that
//! never leak.
#![forbid(unsafe_code)]

mod bad_input;
mod failures;
mod fake_slack;
mod helpers;
mod limits;
mod messages;
mod pacing;
mod secrets;
#[path = "../support/mod.rs"]
mod support;
mod test_endpoint;
