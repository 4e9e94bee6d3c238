//! `herald`: parse the command line and hand over to the library.
#![forbid(unsafe_code)]

use clap::Parser as _;

/// glibc's malloc and free took about a sixth of a busy server's CPU; mimalloc (without
/// transparent huge pages, which would inflate the resident size) takes a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = herald::cli::Cli::parse();
    match herald::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
