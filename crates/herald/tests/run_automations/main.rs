//! Run automations end to end (issue 4): history logged and run states changed through the
//! REST API fire RUN_METRIC, RUN_METRIC_CHANGE, RUN_METRIC_ZSCORE and RUN_STATE automations
//! at exactly the right point, at most once per run per cooldown, for the runs their filters
//! admit, with every payload variable checked in the body a real receiver gets; windows and
//! cooldowns survive a SIGKILL of the real binary; bad filters are refused with nothing stored.
//!
//! Most tests step the in-process engine by hand (`helpers::TestApp::step`), so a batch that
//! must not fire is checked exactly, without sleeps; the restart tests run `herald serve`.
//! `ordering` uses the same hand-stepped engine for the order of artifact deliveries.
#![forbid(unsafe_code)]

mod bad_input;
mod defaults;
mod firing;
mod helpers;
mod kinds;
mod ordering;
mod restart;
#[path = "../support/mod.rs"]
mod support;
