//! `herald bench`: measurements on this machine, printed as figures (never asserted).
//!
//! Each benchmark has a module of its own: [`blobs`] (file uploads and downloads),
//! [`catalog`] (catalog writes through the API),
//! [`delivery`] (events to webhook deliveries), [`evaluator`] (the run-metric evaluator alone)
//! and [`history`] (logged values through the API). What they share: [`server`] (a `herald
//! serve` child process), [`drive`] (the concurrent load loop) and [`procfs`] (what Linux says
//! a process used).

mod blobs;
mod catalog;
mod delivery;
mod drive;
mod evaluator;
mod history;
mod procfs;
mod server;

use clap::Subcommand;

pub use server::ServerProcess;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Upload and download throughput of one large file (64 MiB) through signed URLs, and the
    /// server's RSS meanwhile.
    Blobs(blobs::BlobsArgs),
    /// Catalog writes per second through the HTTP API, and idle RSS.
    Catalog(catalog::CatalogArgs),
    /// Events → matched → delivered to a local webhook: deliveries/s and latency, against the
    /// raw loopback POST rate of the same client.
    Delivery(delivery::DeliveryArgs),
    /// The run-metric evaluator alone: evaluations per second on one core, 100 automations.
    Evaluator(evaluator::EvaluatorArgs),
    /// Logged values per second through the history API, without and with 100 automations.
    History(history::HistoryArgs),
    /// Raw POSTs to a URL from this process (`bench delivery` runs its ceiling this way, so
    /// the client is a process apart from the receiver, as herald is).
    #[command(hide = true)]
    RawPosts(delivery::RawPostArgs),
}

pub async fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Blobs(args) => blobs::blobs(args).await,
        BenchCmd::Catalog(args) => catalog::catalog(args).await,
        BenchCmd::Delivery(args) => delivery::run(args).await,
        BenchCmd::Evaluator(args) => evaluator::evaluator(args),
        BenchCmd::History(args) => history::history(args).await,
        BenchCmd::RawPosts(args) => delivery::raw_posts_here(args).await,
    }
}
