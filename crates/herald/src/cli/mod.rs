//! The command line: `herald serve` runs the server; every other command talks to one over
//! its REST API (`--server`/`HERALD_URL`, `--api-key`/`HERALD_API_KEY`), printing tables for
//! people and the server's JSON with `--json`.
//!
//! This module holds the command tree and hands each command to the module of its resource;
//! [`remote`] holds what those share (the client options, how answers are shown).

mod artifacts;
mod automation_flags;
mod automations;
mod entities;
mod events;
mod executions;
mod integrations;
mod projects;
mod remote;
mod runs;
mod secrets;
mod serve;
mod users;

use clap::{Parser, Subcommand};

pub use automation_flags::{AutomationArgs, RunConditionArgs};
pub use automations::AutomationCmd;
pub use remote::ClientOpts;
pub use serve::ServeArgs;

use remote::Remote;

#[derive(Parser, Debug)]
#[command(
    name = "herald",
    version,
    about = "Automations for ML teams: when an artifact or run changes, call a webhook or post to Slack.",
    long_about = "herald is a self-hosted automations engine. `herald serve` runs the server (SQLite in ./herald-data by default); the other commands talk to a running server."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// The server and key every client command uses; global, so they may come before or after
    /// the subcommand (`herald --json whoami`, `herald whoami --json`).
    #[command(flatten)]
    pub opts: ClientOpts,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the herald server.
    Serve(ServeArgs),
    /// Create users (server admins only).
    #[command(subcommand)]
    User(users::UserCmd),
    /// Show who the API key belongs to.
    Whoami,
    /// Teams and organizations, and their members.
    #[command(subcommand)]
    Entity(entities::EntityCmd),
    /// Projects in an entity.
    #[command(subcommand)]
    Project(projects::ProjectCmd),
    /// Registries in an organization.
    #[command(subcommand)]
    Registry(projects::RegistryCmd),
    /// Artifact versions: create, inspect, alias, tag, link into registries.
    #[command(subcommand)]
    Artifact(artifacts::ArtifactCmd),
    /// Training runs: start, log metrics, finish, stop.
    #[command(subcommand)]
    Run(runs::RunCmd),
    /// An entity's event log.
    #[command(subcommand)]
    Events(events::EventsCmd),
    /// Team secrets (write-only values used by integrations and payloads).
    #[command(subcommand)]
    Secret(secrets::SecretCmd),
    /// Webhook integrations: where automations deliver.
    #[command(subcommand)]
    Integration(integrations::IntegrationCmd),
    /// Automations: when an event matches, call a webhook.
    #[command(subcommand)]
    Automation(Box<AutomationCmd>),
    /// Execution history: list, inspect, redeliver.
    #[command(subcommand)]
    Execution(executions::ExecutionCmd),
    /// Measure herald on this machine.
    #[command(subcommand)]
    Bench(crate::bench::BenchCmd),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = match cli.command {
        Command::Serve(args) => return serve::serve(args).await,
        Command::Bench(cmd) => return crate::bench::run(cmd).await,
        other => other,
    };
    let remote = Remote::new(&cli.opts);
    let r = &remote;
    match command {
        Command::Serve(_) | Command::Bench(_) => unreachable!("run on their own above"),
        Command::User(cmd) => users::user(r, cmd).await,
        Command::Whoami => users::whoami(r).await,
        Command::Entity(cmd) => entities::entity(r, cmd).await,
        Command::Project(cmd) => projects::project(r, cmd).await,
        Command::Registry(cmd) => projects::registry(r, cmd).await,
        Command::Artifact(cmd) => artifacts::artifact(r, cmd).await,
        Command::Run(cmd) => runs::run(r, cmd).await,
        Command::Events(cmd) => events::events(r, cmd).await,
        Command::Secret(cmd) => secrets::secret(r, cmd).await,
        Command::Integration(cmd) => integrations::integration(r, cmd).await,
        Command::Automation(cmd) => automations::automation(r, *cmd).await,
        Command::Execution(cmd) => executions::execution(r, cmd).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_argument_and_flag_has_help() {
        use clap::CommandFactory as _;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() {
                missing.push(format!("{path} (the command)"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if !matches!(id, "help" | "version") && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
