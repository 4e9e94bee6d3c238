//! The command line: `herald serve` runs the server; every other command talks to one over
//! its REST API (`--server`/`HERALD_URL`, `--api-key`/`HERALD_API_KEY`), printing tables for
//! people and JSON with `--json`.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::client::{seg, Client};
use crate::config::{Config, Overrides};

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

#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// herald server URL.
    #[arg(
        long,
        global = true,
        env = "HERALD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// API key (printed by the server on first start and kept in <data-dir>/admin-api-key).
    #[arg(long, global = true, env = "HERALD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the herald server.
    Serve(ServeArgs),
    /// Create users (server admins only).
    #[command(subcommand)]
    User(UserCmd),
    /// Show who the API key belongs to.
    Whoami,
    /// Teams and organizations, and their members.
    #[command(subcommand)]
    Entity(EntityCmd),
    /// Projects in an entity.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Registries in an organization.
    #[command(subcommand)]
    Registry(RegistryCmd),
    /// Artifact versions: create, inspect, alias, tag, link into registries.
    #[command(subcommand)]
    Artifact(ArtifactCmd),
    /// Training runs: start, log metrics, finish.
    #[command(subcommand)]
    Run(RunCmd),
    /// An entity's event log.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Team secrets (write-only values used by integrations and payloads).
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Webhook integrations: where automations deliver.
    #[command(subcommand)]
    Integration(IntegrationCmd),
    /// Automations: when an event matches, call a webhook.
    #[command(subcommand)]
    Automation(Box<AutomationCmd>),
    /// Execution history: list, inspect, redeliver.
    #[command(subcommand)]
    Execution(ExecutionCmd),
    /// Measure herald on this machine.
    #[command(subcommand)]
    Bench(crate::bench::BenchCmd),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HERALD_LISTEN")]
    pub listen: Option<String>,
    /// Data directory (SQLite database, bootstrap admin key).
    #[arg(long, env = "HERALD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://…; SQLite in the data directory when absent.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file (see the README for its keys).
    #[arg(long, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user and print their API key.
    Create {
        /// The new user's name (1-128 letters, digits, `-`, `_` or `.`).
        username: String,
        /// The user's email address.
        #[arg(long)]
        email: Option<String>,
        /// Make the user a server admin.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum EntityCmd {
    /// Create a team (or, with --kind organization, an organization).
    Create {
        /// The entity's name.
        name: String,
        /// team, or organization (registries live in organizations).
        #[arg(long, default_value = "team", value_parser = ["team", "organization"])]
        kind: String,
    },
    /// List the entities you are a member of.
    List,
    /// List an entity's members.
    Members {
        /// The team or organization.
        entity: String,
    },
    /// Add a member or change their role (ADMIN, MEMBER or VIEWER).
    SetMember {
        /// The team or organization.
        entity: String,
        /// The user to add or change.
        username: String,
        /// ADMIN, MEMBER or VIEWER.
        role: String,
    },
    /// Remove a member.
    RemoveMember {
        /// The team or organization.
        entity: String,
        /// The member to remove.
        username: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProjectCmd {
    /// Create a project: ENTITY/PROJECT.
    Create {
        /// ENTITY/PROJECT.
        path: String,
        /// What the project is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List an entity's projects and registries.
    List {
        /// The team, user or organization.
        entity: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RegistryCmd {
    /// Create a registry: ORG/NAME (the project wandb-registry-NAME).
    Create {
        /// ORG/NAME.
        path: String,
        /// What the registry holds.
        #[arg(long)]
        description: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ArtifactCmd {
    /// Create a new version: ENTITY/PROJECT/COLLECTION.
    Create {
        /// ENTITY/PROJECT/COLLECTION.
        path: String,
        /// Artifact type (model, dataset, …).
        #[arg(long = "type")]
        artifact_type: String,
        /// The version's content digest (any text, such as a checksum).
        #[arg(long)]
        digest: Option<String>,
        /// What this version is.
        #[arg(long)]
        description: Option<String>,
        /// Metadata as a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        /// An alias to add (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// A tag to add (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// The run that produced it.
        #[arg(long)]
        run_id: Option<String>,
    },
    /// Show a version: ENTITY/PROJECT/COLLECTION[:VERSION] (vN or alias; latest by default).
    Get {
        /// ENTITY/PROJECT/COLLECTION[:VERSION].
        path: String,
    },
    /// List collections (ENTITY/PROJECT) or a collection's versions (ENTITY/PROJECT/COLLECTION).
    List {
        /// ENTITY/PROJECT or ENTITY/PROJECT/COLLECTION.
        path: String,
    },
    /// Add or remove an alias: ENTITY/PROJECT/COLLECTION:VERSION ALIAS.
    #[command(subcommand)]
    Alias(LabelCmd),
    /// Add or remove a tag: on a version (…/COLLECTION:VERSION) or a collection (…/COLLECTION).
    #[command(subcommand)]
    Tag(LabelCmd),
    /// Link a version into a registry collection.
    Link {
        /// ENTITY/PROJECT/COLLECTION:VERSION
        path: String,
        /// The registry: ORG/NAME.
        #[arg(long)]
        registry: String,
        /// Registry collection (defaults to the source collection's name).
        #[arg(long)]
        collection: Option<String>,
        /// An alias to add in the registry collection (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
    },
    /// Unlink a version from a registry collection: ORG/wandb-registry-NAME/COLLECTION:VERSION.
    Unlink {
        /// ORG/wandb-registry-NAME/COLLECTION:VERSION.
        path: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum LabelCmd {
    /// Add it (an alias held by another version moves here).
    Add {
        /// ENTITY/PROJECT/COLLECTION:VERSION (or …/COLLECTION for a collection's tag).
        path: String,
        /// The alias or tag.
        name: String,
    },
    /// Remove it.
    Remove {
        /// ENTITY/PROJECT/COLLECTION:VERSION (or …/COLLECTION for a collection's tag).
        path: String,
        /// The alias or tag.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunCmd {
    /// Start a run in ENTITY/PROJECT.
    Create {
        /// ENTITY/PROJECT.
        path: String,
        /// Run id (8 random characters when absent).
        #[arg(long)]
        id: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Config as a JSON object.
        #[arg(long)]
        config: Option<String>,
    },
    /// Show a run: ENTITY/PROJECT/RUN.
    Get {
        /// ENTITY/PROJECT/RUN.
        path: String,
    },
    /// Log history to ENTITY/PROJECT/RUN: `--step 3 loss=0.4 acc=0.9`, or rows from a JSON file.
    Log {
        /// ENTITY/PROJECT/RUN.
        path: String,
        /// Step of the row given as NAME=VALUE pairs.
        #[arg(long)]
        step: Option<i64>,
        /// NAME=VALUE pairs.
        values: Vec<String>,
        /// A JSON file: an array of {"step": N, "values": {...}} rows, or one such row per line.
        #[arg(long, conflicts_with_all = ["step", "values"])]
        file: Option<PathBuf>,
    },
    /// Finish a run (FINISHED by default; or FAILED, CRASHED, KILLED).
    Finish {
        /// ENTITY/PROJECT/RUN.
        path: String,
        /// FINISHED, FAILED, CRASHED (stored as FAILED) or KILLED.
        #[arg(long, default_value = "FINISHED")]
        state: String,
    },
    /// Mark a run FAILED (the same as `finish --state FAILED`).
    Fail {
        /// ENTITY/PROJECT/RUN.
        path: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCmd {
    /// List an entity's events, oldest first.
    List {
        /// The team, user or organization.
        entity: String,
        /// Start after this cursor (an event id).
        #[arg(long)]
        after: Option<String>,
        /// Events per page (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Follow cursors to the end.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretCmd {
    /// Create or rotate a secret. The value is read from standard input unless --value is given.
    /// A rotated signing secret's previous value keeps signing deliveries beside the new one
    /// for the grace period, so receivers can switch without rejecting a message.
    Set {
        /// The team that owns the secret.
        entity: String,
        /// The secret's name (letters, digits and `_`, not starting with a digit).
        name: String,
        /// The value (prefer standard input, which keeps it out of shell history).
        #[arg(long)]
        value: Option<String>,
        /// On a rotation, seconds the previous value stays valid (0 to 604800; the server's
        /// default is 86400, a day). 0 ends every previous value at once, as for a leaked secret.
        #[arg(long, value_name = "SECONDS")]
        grace_period: Option<u32>,
    },
    /// List secret names (values are never shown).
    List {
        /// The team that owns the secrets.
        entity: String,
    },
    /// Delete a secret.
    Delete {
        /// The team that owns the secret.
        entity: String,
        /// The secret's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing would only add noise
pub enum IntegrationCmd {
    /// Create a webhook or Slack integration in ENTITY (integrations belong to one team).
    Create {
        /// The team the integration belongs to; only its automations can use it.
        entity: String,
        /// webhook or slack.
        #[arg(long, default_value = "webhook", value_parser = ["webhook", "slack"])]
        kind: String,
        /// The integration's name, unique in the team.
        #[arg(long)]
        name: String,
        /// Webhooks: where deliveries are POSTed.
        #[arg(long)]
        url: Option<String>,
        /// Slack: the channel's name, for display.
        #[arg(long)]
        channel_name: Option<String>,
        /// Slack: the workspace's name, for display.
        #[arg(long)]
        workspace: Option<String>,
        /// Slack: a secret holding an incoming-webhook URL.
        #[arg(long)]
        webhook_url_secret: Option<String>,
        /// Slack: a secret holding a bot token (with --channel-id).
        #[arg(long)]
        bot_token_secret: Option<String>,
        /// Slack: the channel's id, for chat.postMessage.
        #[arg(long)]
        channel_id: Option<String>,
        /// Secret sent as `Authorization: Bearer …`.
        #[arg(long)]
        access_token_secret: Option<String>,
        /// Secret that signs deliveries.
        #[arg(long)]
        signing_secret: Option<String>,
    },
    /// List ENTITY's integrations.
    List {
        /// The team.
        entity: String,
    },
    /// Send a test payload through integration ID and show the answer (exits 1 unless 2xx).
    Test {
        /// The integration's id.
        id: i64,
        /// JSON payload (may use ${ACCESS_TOKEN} and the integration's secrets).
        #[arg(long)]
        payload: Option<String>,
    },
    /// Enable integration ID (also after herald disabled it, clearing the reason).
    Enable {
        /// The integration's id.
        id: i64,
    },
    /// Disable integration ID: its automations' waiting executions are cancelled.
    Disable {
        /// The integration's id.
        id: i64,
    },
    /// Delete integration ID.
    Delete {
        /// The integration's id.
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum AutomationCmd {
    /// Create an automation from flags or from a JSON file (the REST body).
    Create(Box<AutomationArgs>),
    /// List ENTITY's automations.
    List {
        /// The team, user or organization.
        entity: String,
        /// Only the automation with this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show automation ID.
    Get {
        /// The automation's id.
        id: i64,
    },
    /// Change automation ID: the JSON file's top-level fields replace the stored ones.
    Update {
        /// The automation's id.
        id: i64,
        /// A JSON file with the fields to replace.
        #[arg(long)]
        file: PathBuf,
    },
    /// Enable automation ID.
    Enable {
        /// The automation's id.
        id: i64,
    },
    /// Disable automation ID: its waiting executions are cancelled.
    Disable {
        /// The automation's id.
        id: i64,
    },
    /// Delete automation ID: its waiting executions are cancelled.
    Delete {
        /// The automation's id.
        id: i64,
    },
}

#[derive(Args, Debug)]
pub struct AutomationArgs {
    /// A JSON file with the whole automation (as POST /api/v1/entities/{e}/automations takes);
    /// its entity is the first part of scope.path.
    #[arg(long, conflicts_with_all = ["name", "scope", "event"])]
    pub file: Option<PathBuf>,
    /// The automation's name, unique in its entity.
    #[arg(long, required_unless_present = "file")]
    pub name: Option<String>,
    /// What the automation is for.
    #[arg(long)]
    pub description: Option<String>,
    /// ENTITY, ENTITY/PROJECT (or registry) or ENTITY/PROJECT/COLLECTION.
    #[arg(long, required_unless_present = "file")]
    pub scope: Option<String>,
    /// CREATE_ARTIFACT, LINK_ARTIFACT, UNLINK_ARTIFACT, ADD_ARTIFACT_ALIAS, ADD_ARTIFACT_TAG, …
    /// (run events are implied by --metric … and --run-state).
    #[arg(long)]
    pub event: Option<String>,
    #[command(flatten)]
    pub run: RunConditionArgs,
    /// Only when the alias matches this regex.
    #[arg(long)]
    pub alias_regex: Option<String>,
    /// Only when the tag matches this regex.
    #[arg(long)]
    pub tag_regex: Option<String>,
    /// A filter in W&B's JSON format (instead of --alias-regex/--tag-regex).
    #[arg(long, conflicts_with_all = ["alias_regex", "tag_regex"])]
    pub filter: Option<String>,
    /// Call this webhook integration (its id).
    #[arg(long)]
    pub webhook: Option<i64>,
    /// The webhook payload (JSON with ${variables}).
    #[arg(long, requires = "webhook")]
    pub payload: Option<String>,
    /// Record executions and do nothing (for trying an automation out).
    #[arg(long, conflicts_with_all = ["webhook", "slack"])]
    pub no_op: bool,
    /// Post to this Slack integration (its id).
    #[arg(long, conflicts_with = "webhook")]
    pub slack: Option<i64>,
    /// The Slack message's title (may use ${variables}).
    #[arg(long, requires = "slack")]
    pub title: Option<String>,
    /// The Slack message's text (may use ${variables}).
    #[arg(long, requires = "slack")]
    pub message: Option<String>,
    /// INFO, WARN or ERROR.
    #[arg(long, requires = "slack")]
    pub severity: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
}

/// Run-event conditions in a readable form, e.g. `--metric loss --agg avg --window 5 --gt 0.5`,
/// `--metric acc --decreases-by 10%`, `--metric acc --zscore 2`, `--run-state FAILED`.
#[derive(Args, Debug, Default)]
pub struct RunConditionArgs {
    /// The metric to watch (RUN_METRIC, RUN_METRIC_CHANGE or RUN_METRIC_ZSCORE).
    #[arg(long)]
    pub metric: Option<String>,
    /// Aggregate over the window: avg, min or max (default: the newest value).
    #[arg(long, value_parser = ["avg", "average", "min", "max"])]
    pub agg: Option<String>,
    /// Values in the window (the current window for changes; the z-score window).
    #[arg(long)]
    pub window: Option<u64>,
    /// The prior window for changes (default: --window).
    #[arg(long)]
    pub prior_window: Option<u64>,
    /// Fire when the value is above this.
    #[arg(long, allow_hyphen_values = true)]
    pub gt: Option<f64>,
    /// Fire when the value is at least this.
    #[arg(long, allow_hyphen_values = true)]
    pub gte: Option<f64>,
    /// Fire when the value is below this.
    #[arg(long, allow_hyphen_values = true)]
    pub lt: Option<f64>,
    /// Fire when the value is at most this.
    #[arg(long, allow_hyphen_values = true)]
    pub lte: Option<f64>,
    /// Fire when it increases by this much between windows (`0.5`, or `10%` for relative).
    #[arg(long)]
    pub increases_by: Option<String>,
    /// Fire when it decreases by this much between windows.
    #[arg(long)]
    pub decreases_by: Option<String>,
    /// Fire when it changes either way by this much between windows.
    #[arg(long)]
    pub changes_by: Option<String>,
    /// Fire when the newest value is this many standard deviations from the window's mean.
    #[arg(long)]
    pub zscore: Option<f64>,
    /// For --zscore: any, increase or decrease (default any).
    #[arg(long, value_parser = ["any", "increase", "decrease"])]
    pub direction: Option<String>,
    /// Fire when a run enters one of these states (comma-separated: RUNNING, FINISHED, FAILED).
    #[arg(long)]
    pub run_state: Option<String>,
    /// Only runs whose display name matches this regex.
    #[arg(long)]
    pub run_name_regex: Option<String>,
    /// Only runs of this user.
    #[arg(long)]
    pub run_user: Option<String>,
    /// Run-metric automations fire at most once per run per this many seconds (default a day).
    #[arg(long)]
    pub cooldown: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum ExecutionCmd {
    /// List executions of an automation (--automation) or of an entity (--entity).
    List {
        /// The automation's id.
        #[arg(long, required_unless_present = "entity")]
        automation: Option<i64>,
        /// The team, user or organization (every automation of it).
        #[arg(long)]
        entity: Option<String>,
        /// PENDING, RUNNING, FINISHED, FAILED, SKIPPED or CANCELLED.
        #[arg(long)]
        status: Option<String>,
        /// Executions to show, newest first (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show execution ID: its request (URL, headers and body, secrets masked) and every attempt.
    Show {
        /// The execution's id.
        id: i64,
    },
    /// Deliver execution ID again (same webhook-id).
    Redeliver {
        /// The execution's id.
        id: i64,
    },
    /// Cancel execution ID: a waiting retry never happens (an attempt in flight may finish).
    Cancel {
        /// The execution's id.
        id: i64,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Bench(cmd) => crate::bench::run(cmd).await,
        other => client_command(other, &cli.opts).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        config_file: args.config,
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
    };
    let config = Config::load(&overrides)?;
    crate::telemetry::init(&config.log);
    let app = crate::app::App::build(&config).await?;
    if let Some(key) = app.bootstrap_admin_key() {
        outln!(
            "Created the server admin user `admin`. Its API key (shown once; also in {}):",
            config.data_dir.join(crate::app::ADMIN_KEY_FILE).display()
        );
        outln!("\n    {key}\n");
    }
    let shutdown = CancellationToken::new();
    on_shutdown_signal(shutdown.clone())?;
    outln!("herald listening on http://{}", app.address());
    app.run_until_stopped(shutdown).await
}

/// Cancels `token` on SIGINT or SIGTERM. The handlers are in place when this returns, so a
/// signal sent as soon as the server says it is listening is not lost.
fn on_shutdown_signal(token: CancellationToken) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("shutdown requested; finishing in-flight requests");
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        token.cancel();
    });
    Ok(())
}

/// `ENTITY/PROJECT/COLLECTION[:VERSION]`.
struct ArtifactPath {
    entity: String,
    project: String,
    collection: String,
    version: Option<String>,
}

impl ArtifactPath {
    fn parse(s: &str) -> anyhow::Result<Self> {
        let (path, version) = match s.rsplit_once(':') {
            Some((p, v)) if !v.is_empty() => (p, Some(v.to_string())),
            Some(_) => bail!("{s:?}: nothing after ':'; write ENTITY/PROJECT/COLLECTION:VERSION"),
            None => (s, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            [e, p, c] if !e.is_empty() && !p.is_empty() && !c.is_empty() => Ok(Self {
                entity: e.to_string(),
                project: p.to_string(),
                collection: c.to_string(),
                version,
            }),
            _ => bail!("{s:?} is not ENTITY/PROJECT/COLLECTION[:VERSION]"),
        }
    }

    fn collection_url(&self) -> String {
        format!(
            "/api/v1/entities/{}/projects/{}/artifacts/{}",
            seg(&self.entity),
            seg(&self.project),
            seg(&self.collection)
        )
    }

    fn version_url(&self) -> String {
        format!(
            "{}/versions/{}",
            self.collection_url(),
            seg(self.version.as_deref().unwrap_or("latest"))
        )
    }
}

/// `A/B` or `A/B/C` split into `n` non-empty parts.
fn split_path<'a>(s: &'a str, n: usize, shape: &str) -> anyhow::Result<Vec<&'a str>> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() != n || parts.iter().any(|p| p.is_empty()) {
        bail!("{s:?} is not {shape}");
    }
    Ok(parts)
}

pub(crate) fn json_arg(what: &str, s: &Option<String>) -> anyhow::Result<Option<Value>> {
    s.as_deref()
        .map(|s| serde_json::from_str(s).with_context(|| format!("--{what} is not valid JSON")))
        .transpose()
}

async fn client_command(command: Command, opts: &ClientOpts) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) | Command::Bench(_) => unreachable!("handled by run"),
        Command::User(UserCmd::Create {
            username,
            email,
            admin,
        }) => {
            let out = client(opts)
                .post(
                    "/api/v1/users",
                    &json!({"username": username, "email": email, "admin": admin}),
                )
                .await?;
            show(opts, &out, || {
                outln!(
                    "created user {}; API key (shown once):\n\n    {}\n",
                    out["user"]["username"].as_str().unwrap_or("?"),
                    out["api_key"].as_str().unwrap_or("?")
                );
            })
        }
        Command::Whoami => {
            let out = client(opts).get("/api/v1/viewer").await?;
            show(opts, &out, || {
                outln!(
                    "{}{}",
                    out["user"]["username"].as_str().unwrap_or("?"),
                    if out["user"]["is_admin"] == json!(true) {
                        " (server admin)"
                    } else {
                        ""
                    }
                );
                table(
                    &["ENTITY", "KIND", "ROLE"],
                    rows(
                        &out["entities"],
                        &[&["entity", "name"], &["entity", "kind"], &["role"]],
                    ),
                );
            })
        }
        Command::Entity(cmd) => entity_command(opts, cmd).await,
        Command::Project(ProjectCmd::Create { path, description }) => {
            let p = split_path(&path, 2, "ENTITY/PROJECT")?;
            let out = client(opts)
                .post(
                    &format!("/api/v1/entities/{}/projects", seg(p[0])),
                    &json!({"name": p[1], "description": description}),
                )
                .await?;
            show(opts, &out, || outln!("created project {}/{}", p[0], p[1]))
        }
        Command::Project(ProjectCmd::List { entity }) => {
            let out = client(opts)
                .get(&format!("/api/v1/entities/{}/projects", seg(&entity)))
                .await?;
            show(opts, &out, || {
                table(
                    &["PROJECT", "REGISTRY", "DESCRIPTION"],
                    rows(&out, &[&["name"], &["is_registry"], &["description"]]),
                )
            })
        }
        Command::Registry(RegistryCmd::Create { path, description }) => {
            let p = split_path(&path, 2, "ORG/NAME")?;
            let out = client(opts)
                .post(
                    &format!("/api/v1/entities/{}/registries", seg(p[0])),
                    &json!({"name": p[1], "description": description}),
                )
                .await?;
            show(opts, &out, || {
                outln!(
                    "created registry {}/{}",
                    p[0],
                    out["name"].as_str().unwrap_or("?")
                )
            })
        }
        Command::Artifact(cmd) => artifact_command(opts, cmd).await,
        Command::Secret(cmd) => crate::cli_automations::secret(cmd, opts).await,
        Command::Integration(cmd) => crate::cli_automations::integration(cmd, opts).await,
        Command::Automation(cmd) => crate::cli_automations::automation(*cmd, opts).await,
        Command::Execution(cmd) => crate::cli_automations::execution(cmd, opts).await,
        Command::Run(cmd) => run_command(opts, cmd).await,
        Command::Events(EventsCmd::List {
            entity,
            after,
            limit,
            all,
        }) => {
            let c = client(opts);
            let mut cursor = after;
            let mut events = Vec::new();
            loop {
                let mut url = format!("/api/v1/entities/{}/events?limit={limit}", seg(&entity));
                if let Some(a) = &cursor {
                    url.push_str(&format!("&after={}", seg(a)));
                }
                let page = c.get(&url).await?;
                events.extend(page["events"].as_array().cloned().unwrap_or_default());
                cursor = page["next_cursor"].as_str().map(str::to_string);
                if !all || cursor.is_none() {
                    if opts.json && !all {
                        outln!("{}", serde_json::to_string_pretty(&page)?);
                        return Ok(());
                    }
                    break;
                }
            }
            let out = Value::Array(events);
            show(opts, &out, || {
                table(
                    &[
                        "ID",
                        "TYPE",
                        "PROJECT",
                        "COLLECTION",
                        "VERSION",
                        "ALIAS/TAG",
                        "RUN",
                        "AUTHOR",
                        "TIME",
                    ],
                    out.as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| {
                            vec![
                                cell(&e["id"]),
                                cell(&e["type"]),
                                cell(&e["project"]),
                                cell(&e["collection"]),
                                cell(&e["version"]),
                                if e["alias"].is_null() {
                                    cell(&e["tag"])
                                } else {
                                    cell(&e["alias"])
                                },
                                cell(&e["run"]),
                                cell(&e["author"]),
                                cell(&e["created_at"]),
                            ]
                        })
                        .collect(),
                );
                if let Some(c) = &cursor {
                    outln!("(more: --after {c})");
                }
            })
        }
    }
}

async fn entity_command(opts: &ClientOpts, cmd: EntityCmd) -> anyhow::Result<()> {
    match cmd {
        EntityCmd::Create { name, kind } => {
            let out = client(opts)
                .post("/api/v1/entities", &json!({"name": name, "kind": kind}))
                .await?;
            show(opts, &out, || {
                outln!("created {kind} {name}; you are its ADMIN")
            })
        }
        EntityCmd::List => {
            let out = client(opts).get("/api/v1/entities").await?;
            show(opts, &out, || {
                table(
                    &["ENTITY", "KIND", "ROLE"],
                    rows(&out, &[&["entity", "name"], &["entity", "kind"], &["role"]]),
                )
            })
        }
        EntityCmd::Members { entity } => {
            let out = client(opts)
                .get(&format!("/api/v1/entities/{}/members", seg(&entity)))
                .await?;
            show(opts, &out, || {
                table(&["USER", "ROLE"], rows(&out, &[&["username"], &["role"]]))
            })
        }
        EntityCmd::SetMember {
            entity,
            username,
            role,
        } => {
            let out = client(opts)
                .put(
                    &format!(
                        "/api/v1/entities/{}/members/{}",
                        seg(&entity),
                        seg(&username)
                    ),
                    &json!({"role": role.to_ascii_uppercase()}),
                )
                .await?;
            show(opts, &out, || {
                outln!(
                    "{username} is now {} in {entity}",
                    out["role"].as_str().unwrap_or("?")
                )
            })
        }
        EntityCmd::RemoveMember { entity, username } => {
            client(opts)
                .delete(&format!(
                    "/api/v1/entities/{}/members/{}",
                    seg(&entity),
                    seg(&username)
                ))
                .await?;
            show(opts, &Value::Null, || {
                outln!("removed {username} from {entity}")
            })
        }
    }
}

async fn artifact_command(opts: &ClientOpts, cmd: ArtifactCmd) -> anyhow::Result<()> {
    match cmd {
        ArtifactCmd::Create {
            path,
            artifact_type,
            digest,
            description,
            metadata,
            aliases,
            tags,
            run_id,
        } => {
            let a = ArtifactPath::parse(&path)?;
            if a.version.is_some() {
                bail!(
                    "{path:?}: a new version has no version yet; write ENTITY/PROJECT/COLLECTION"
                );
            }
            let body = json!({
                "collection": a.collection, "type": artifact_type, "digest": digest, "description": description,
                "metadata": json_arg("metadata", &metadata)?, "aliases": aliases, "tags": tags, "run_id": run_id,
            });
            let url = format!(
                "/api/v1/entities/{}/projects/{}/artifacts",
                seg(&a.entity),
                seg(&a.project)
            );
            let out = client(opts).post(&url, &body).await?;
            show(opts, &out, || print_version(&out))
        }
        ArtifactCmd::Get { path } => {
            let a = ArtifactPath::parse(&path)?;
            let out = client(opts).get(&a.version_url()).await?;
            show(opts, &out, || print_version(&out))
        }
        ArtifactCmd::List { path } => {
            let c = client(opts);
            if let Ok(p) = split_path(&path, 2, "") {
                let out = c
                    .get(&format!(
                        "/api/v1/entities/{}/projects/{}/artifacts",
                        seg(p[0]),
                        seg(p[1])
                    ))
                    .await?;
                return show(opts, &out, || {
                    table(
                        &["COLLECTION", "KIND", "TYPE", "TAGS"],
                        rows(&out, &[&["name"], &["kind"], &["type"], &["tags"]]),
                    )
                });
            }
            let a = ArtifactPath::parse(&path)?;
            let out = c.get(&format!("{}/versions", a.collection_url())).await?;
            show(opts, &out, || {
                table(
                    &[
                        "VERSION",
                        "ALIASES",
                        "TAGS",
                        "DIGEST",
                        "CREATED BY",
                        "CREATED",
                    ],
                    rows(
                        &out,
                        &[
                            &["version"],
                            &["aliases"],
                            &["tags"],
                            &["digest"],
                            &["created_by"],
                            &["created_at"],
                        ],
                    ),
                )
            })
        }
        ArtifactCmd::Alias(cmd) => {
            let (path, name, add) = label_parts(cmd);
            let a = ArtifactPath::parse(&path)?;
            if a.version.is_none() {
                bail!(
                    "{path:?}: say which version gets the alias: ENTITY/PROJECT/COLLECTION:VERSION"
                );
            }
            let c = client(opts);
            let out = if add {
                c.post(
                    &format!("{}/aliases", a.version_url()),
                    &json!({"alias": name}),
                )
                .await?
            } else {
                c.delete(&format!("{}/aliases/{}", a.version_url(), seg(&name)))
                    .await?
            };
            show(opts, &out, || print_version(&out))
        }
        ArtifactCmd::Tag(cmd) => {
            let (path, name, add) = label_parts(cmd);
            let a = ArtifactPath::parse(&path)?;
            let base = if a.version.is_some() {
                a.version_url()
            } else {
                a.collection_url()
            };
            let c = client(opts);
            let out = if add {
                c.post(&format!("{base}/tags"), &json!({"tag": name}))
                    .await?
            } else {
                c.delete(&format!("{base}/tags/{}", seg(&name))).await?
            };
            show(opts, &out, || {
                if a.version.is_some() {
                    print_version(&out)
                } else {
                    outln!(
                        "{}/{}/{} tags: {}",
                        a.entity,
                        a.project,
                        a.collection,
                        cell(&out["tags"])
                    )
                }
            })
        }
        ArtifactCmd::Link {
            path,
            registry,
            collection,
            aliases,
        } => {
            let a = ArtifactPath::parse(&path)?;
            let body = json!({"registry": registry, "collection": collection, "aliases": aliases});
            let out = client(opts)
                .post(&format!("{}/links", a.version_url()), &body)
                .await?;
            show(opts, &out, || {
                outln!(
                    "linked {path} into {}/{}/{} as {}",
                    out["entity"].as_str().unwrap_or("?"),
                    out["project"].as_str().unwrap_or("?"),
                    out["collection"].as_str().unwrap_or("?"),
                    out["version"].as_str().unwrap_or("?")
                );
                print_version(&out)
            })
        }
        ArtifactCmd::Unlink { path } => {
            let a = ArtifactPath::parse(&path)?;
            if a.version.is_none() {
                bail!("{path:?}: say which version to unlink: ORG/wandb-registry-NAME/COLLECTION:VERSION");
            }
            client(opts).delete(&a.version_url()).await?;
            show(opts, &Value::Null, || outln!("unlinked {path}"))
        }
    }
}

fn label_parts(cmd: LabelCmd) -> (String, String, bool) {
    match cmd {
        LabelCmd::Add { path, name } => (path, name, true),
        LabelCmd::Remove { path, name } => (path, name, false),
    }
}

fn run_url(path: &str) -> anyhow::Result<String> {
    let p = split_path(path, 3, "ENTITY/PROJECT/RUN")?;
    Ok(format!(
        "/api/v1/entities/{}/projects/{}/runs/{}",
        seg(p[0]),
        seg(p[1]),
        seg(p[2])
    ))
}

async fn run_command(opts: &ClientOpts, cmd: RunCmd) -> anyhow::Result<()> {
    match cmd {
        RunCmd::Create {
            path,
            id,
            name,
            tags,
            config,
        } => {
            let p = split_path(&path, 2, "ENTITY/PROJECT")?;
            let body = json!({"id": id, "display_name": name, "tags": tags, "config": json_arg("config", &config)?});
            let out = client(opts)
                .post(
                    &format!("/api/v1/entities/{}/projects/{}/runs", seg(p[0]), seg(p[1])),
                    &body,
                )
                .await?;
            show(opts, &out, || {
                outln!(
                    "started run {}/{}/{} ({})",
                    p[0],
                    p[1],
                    out["id"].as_str().unwrap_or("?"),
                    out["state"].as_str().unwrap_or("?")
                )
            })
        }
        RunCmd::Get { path } => {
            let out = client(opts).get(&run_url(&path)?).await?;
            show(opts, &out, || {
                table(
                    &["RUN", "NAME", "STATE", "USER", "TAGS", "UPDATED"],
                    rows(
                        &Value::Array(vec![out.clone()]),
                        &[
                            &["id"],
                            &["display_name"],
                            &["state"],
                            &["username"],
                            &["tags"],
                            &["updated_at"],
                        ],
                    ),
                )
            })
        }
        RunCmd::Log {
            path,
            step,
            values,
            file,
        } => {
            let rows = match file {
                Some(f) => read_rows(&f)?,
                None => {
                    let step = step.context("give --step N with NAME=VALUE pairs, or --file")?;
                    if values.is_empty() {
                        bail!("give at least one NAME=VALUE pair");
                    }
                    let mut map = serde_json::Map::new();
                    for v in &values {
                        let (k, x) = v
                            .split_once('=')
                            .with_context(|| format!("{v:?} is not NAME=VALUE"))?;
                        let x: f64 = x
                            .parse()
                            .with_context(|| format!("{v:?}: {x:?} is not a number"))?;
                        map.insert(k.to_string(), json!(x));
                    }
                    vec![json!({"step": step, "values": map})]
                }
            };
            let out = client(opts)
                .post(
                    &format!("{}/history", run_url(&path)?),
                    &json!({"rows": rows}),
                )
                .await?;
            show(opts, &out, || {
                outln!(
                    "logged {} rows ({} values) to {path}",
                    cell(&out["rows"]),
                    cell(&out["values"])
                )
            })
        }
        RunCmd::Finish { path, state } => finish_run(opts, &path, &state).await,
        RunCmd::Fail { path } => finish_run(opts, &path, "FAILED").await,
    }
}

async fn finish_run(opts: &ClientOpts, path: &str, state: &str) -> anyhow::Result<()> {
    let out = client(opts)
        .patch(&run_url(path)?, &json!({"state": state}))
        .await?;
    show(opts, &out, || {
        outln!("run {path} is {}", out["state"].as_str().unwrap_or("?"))
    })
}

/// History rows from a file: a JSON array, `{"rows": [...]}`, or one row per line.
fn read_rows(path: &PathBuf) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return match v {
            Value::Array(rows) => Ok(rows),
            Value::Object(mut o) if o.contains_key("rows") => Ok(o
                .remove("rows")
                .and_then(|r| r.as_array().cloned())
                .unwrap_or_default()),
            row @ Value::Object(_) => Ok(vec![row]),
            _ => bail!(
                "{}: expected rows of {{\"step\": N, \"values\": {{...}}}}",
                path.display()
            ),
        };
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))
        })
        .collect()
}

pub(crate) fn client(opts: &ClientOpts) -> Client {
    Client::new(&opts.server, opts.api_key.clone())
}

/// Prints `out` as JSON with `--json`, or runs `human`.
pub(crate) fn show(opts: &ClientOpts, out: &Value, human: impl FnOnce()) -> anyhow::Result<()> {
    if opts.json {
        outln!("{}", serde_json::to_string_pretty(out)?);
    } else {
        human();
    }
    Ok(())
}

fn print_version(v: &Value) {
    outln!(
        "{}/{}/{}:{}  type={}  aliases={}  tags={}  digest={}",
        cell(&v["entity"]),
        cell(&v["project"]),
        cell(&v["collection"]),
        cell(&v["version"]),
        cell(&v["type"]),
        cell(&v["aliases"]),
        cell(&v["tags"]),
        cell(&v["digest"])
    );
}

/// A JSON value as a table cell.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

pub(crate) fn rows(list: &Value, columns: &[&[&str]]) -> Vec<Vec<String>> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            columns
                .iter()
                .map(|path| cell(path.iter().fold(item, |v, k| &v[*k])))
                .collect()
        })
        .collect()
}

pub(crate) fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        outln!("{}", s.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths() {
        let a = ArtifactPath::parse("team/proj/model:production").unwrap();
        assert_eq!(
            (a.entity.as_str(), a.project.as_str(), a.collection.as_str()),
            ("team", "proj", "model")
        );
        assert_eq!(a.version.as_deref(), Some("production"));
        assert_eq!(
            a.version_url(),
            "/api/v1/entities/team/projects/proj/artifacts/model/versions/production"
        );
        assert!(ArtifactPath::parse("team/proj").is_err());
        assert!(ArtifactPath::parse("team/proj/model:").is_err());
        assert_eq!(
            ArtifactPath::parse("a/b/c").unwrap().version_url(),
            "/api/v1/entities/a/projects/b/artifacts/c/versions/latest"
        );
    }

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
