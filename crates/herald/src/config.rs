//! Configuration in layers: the commented defaults embedded in the binary
//! (`config/default.toml`), an optional TOML file, `HERALD_*` environment variables, and
//! command-line flags, each overriding the one before (merged by `figment`; durations are
//! read by `humantime`, as in `5s`, `250ms` or `1h 30m`). Loaded and validated once at start,
//! so a bad setting stops the process with a message that names it and where it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use figment::error::Kind;
use figment::providers::{Format as _, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use herald_engine::delivery::retry::RetryPolicy;
use herald_engine::delivery::slack::SlackSettings;
use herald_engine::delivery::ssrf::AllowList;
use herald_engine::delivery::DeliveryConfig;
use herald_engine::secrets::MasterKey;
use serde::{Deserialize, Serialize};

mod blobs;
mod runs;
pub use blobs::{BlobSettings, ByteSize, TotalSize};
pub use runs::{ConsoleMode, RunSettings};

/// The defaults, embedded.
pub const DEFAULTS: &str = include_str!("../config/default.toml");

/// A secret setting: `Debug` never prints it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub server: ServerSettings,
    pub log: LogConfig,
    pub storage: StorageConfig,
    pub delivery: DeliverySettings,
    pub slack: SlackSettingsFile,
    pub runs: RunSettings,
    /// The herald server's public base URL, for links in Slack messages and the file URLs
    /// clients upload to and download from; empty means `http://<listen>`. (HERALD_PUBLIC_URL)
    pub public_url: String,
    /// Whether this process runs the matcher and the delivery workers. `false` makes an
    /// API-only replica: it accepts and stores events, and another process sharing the
    /// database matches and delivers them.                                    (HERALD_ENGINE)
    pub engine: bool,
    /// The key that seals team secrets, from `HERALD_MASTER_KEY` (64 hex characters or base64 of
    /// 32 bytes). Without it herald keeps one in `<data_dir>/master-key`, created 0600.
    #[serde(default)]
    pub master_key: Option<Secret>,
    /// Only from `HERALD_BOOTSTRAP_API_KEY`: the key of the admin created on an empty store.
    #[serde(default)]
    pub bootstrap_api_key: Option<Secret>,
}

/// Limits on clients' connections and requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Unset: derived from the process's open-file limit.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

/// [`ServerSettings`] checked, with the connection limit resolved.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl ServerSettings {
    pub fn limits(&self) -> anyhow::Result<ServerLimits> {
        for (key, d) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
        ] {
            if d.is_zero() {
                bail!("invalid configuration: server.{key} must be a positive duration like 5s");
            }
        }
        let max_connections = match self.max_connections {
            Some(0) => bail!("invalid configuration: server.max_connections must be at least 1"),
            Some(n) => n,
            None => crate::http_server::default_max_connections(),
        };
        Ok(ServerLimits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_connections,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub sqlite_synchronous: SqliteSynchronous,
    pub max_connections: u32,
    /// Files: run files, artifact files and manifests.
    pub blobs: BlobSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettingsFile {
    pub base_url: String,
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub retry_schedule: Vec<humantime_serde::Serde<Duration>>,
    pub jitter: f64,
    pub max_in_flight: usize,
    pub per_destination: usize,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    pub allowed_destinations: String,
    /// A forward proxy for deliveries; empty connects directly.
    #[serde(default)]
    pub proxy: String,
    pub retention_days: u32,
    /// Worker threads of the deliveries' own runtime; 0 shares the server's. Unset: one per core.
    #[serde(default)]
    pub threads: Option<usize>,
}

impl DeliverySettings {
    /// The engine's delivery configuration; every value was checked by [`Config::load`].
    pub fn to_engine(&self) -> anyhow::Result<DeliveryConfig> {
        if !(0.0..=1.0).contains(&self.jitter) {
            bail!("invalid configuration: delivery.jitter must be between 0 and 1");
        }
        if self.max_in_flight == 0 || self.per_destination == 0 {
            bail!("invalid configuration: delivery.max_in_flight and delivery.per_destination must be at least 1");
        }
        if self.timeout.is_zero() {
            bail!("invalid configuration: delivery.timeout must be positive");
        }
        let allow = AllowList::parse(&self.allowed_destinations).map_err(|e| {
            anyhow::anyhow!("invalid configuration: delivery.allowed_destinations: {e}")
        })?;
        let proxy = if self.proxy.is_empty() {
            None
        } else {
            let bad = || {
                anyhow::anyhow!("invalid configuration: delivery.proxy {:?} is not a proxy URL like http://proxy.internal:3128", self.proxy)
            };
            let url = reqwest::Url::parse(&self.proxy).map_err(|_| bad())?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(bad());
            }
            reqwest::Proxy::all(url.clone()).map_err(|_| bad())?;
            Some(url)
        };
        Ok(DeliveryConfig {
            timeout: self.timeout,
            proxy,
            retry: RetryPolicy {
                schedule: self.retry_schedule.iter().map(|d| **d).collect(),
                jitter: self.jitter,
            },
            max_in_flight: self.max_in_flight,
            per_destination: self.per_destination,
            lease: self.lease,
            allow,
            retention: Duration::from_secs(u64::from(self.retention_days.max(1)) * 24 * 3600),
            slack: SlackSettings::default(),
            threads: self.threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }),
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Normal,
    Full,
}

/// Overrides from flags (already merged with their environment variables by clap).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    /// Which file is read, not a setting.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// Environment variables without a flag, and the config key each one sets.
const ENV_KEYS: &[(&str, &str)] = &[
    ("HERALD_HEADER_TIMEOUT", "server.header_timeout"),
    ("HERALD_BODY_TIMEOUT", "server.body_timeout"),
    ("HERALD_MAX_CONNECTIONS", "server.max_connections"),
    ("HERALD_LOG", "log.level"),
    ("HERALD_LOG_FORMAT", "log.format"),
    ("HERALD_SQLITE_SYNCHRONOUS", "storage.sqlite_synchronous"),
    ("HERALD_DB_MAX_CONNECTIONS", "storage.max_connections"),
    ("HERALD_BLOBS_URL", "storage.blobs.url"),
    ("HERALD_BLOBS_MAX_FILE_SIZE", "storage.blobs.max_file_size"),
    (
        "HERALD_BLOBS_MAX_TOTAL_SIZE",
        "storage.blobs.max_total_size",
    ),
    (
        "HERALD_BLOBS_UPLOAD_URL_TTL",
        "storage.blobs.upload_url_ttl",
    ),
    (
        "HERALD_BLOBS_DOWNLOAD_URL_TTL",
        "storage.blobs.download_url_ttl",
    ),
    ("HERALD_BOOTSTRAP_API_KEY", "bootstrap_api_key"),
    ("HERALD_MASTER_KEY", "master_key"),
    (
        "HERALD_ALLOWED_DESTINATIONS",
        "delivery.allowed_destinations",
    ),
    ("HERALD_DELIVERY_TIMEOUT", "delivery.timeout"),
    ("HERALD_DELIVERY_PROXY", "delivery.proxy"),
    ("HERALD_DELIVERY_LEASE", "delivery.lease"),
    ("HERALD_DELIVERY_MAX_IN_FLIGHT", "delivery.max_in_flight"),
    (
        "HERALD_DELIVERY_PER_DESTINATION",
        "delivery.per_destination",
    ),
    ("HERALD_DELIVERY_THREADS", "delivery.threads"),
    ("HERALD_SLACK_BASE_URL", "slack.base_url"),
    ("HERALD_PUBLIC_URL", "public_url"),
    ("HERALD_ENGINE", "engine"),
    ("HERALD_RUNS_CONSOLE", "runs.console"),
    ("HERALD_RUNS_CONSOLE_MAX_LINES", "runs.console_max_lines"),
];

/// The `HERALD_*` variables of [`ENV_KEYS`] as a figment layer. Values stay strings (a key
/// that takes a number or a boolean has it read at extraction), so a token or key made of
/// digits is not turned into a number. Read through a function, not the process environment
/// directly, so tests can give each server its own.
struct EnvLayer(Vec<(&'static str, String)>);

impl EnvLayer {
    const NAME: &'static str = "environment variable";

    fn read(env: impl Fn(&str) -> Option<String>) -> Self {
        Self(
            ENV_KEYS
                .iter()
                .filter_map(|(var, key)| env(var).map(|v| (*key, v)))
                .collect(),
        )
    }

    /// The variable that sets `keys` (a config key split at its dots).
    fn variable(_: &Profile, keys: &[&str]) -> String {
        let key = keys.join(".");
        ENV_KEYS
            .iter()
            .find(|(_, k)| *k == key)
            .map_or(key, |(var, _)| (*var).to_string())
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named(Self::NAME).interpolater(Self::variable)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, v) in &self.0 {
            // `storage.blobs.url`: the leaf `url` in the table `blobs` of the table `storage`.
            let mut path: Vec<&str> = key.split('.').collect();
            let leaf = path.pop().unwrap_or_default();
            let mut table = &mut dict;
            for name in path {
                let entry = table
                    .entry(name.to_string())
                    .or_insert_with(|| Dict::new().into());
                let Value::Dict(_, inner) = entry else {
                    unreachable!("only tables are made on the way to a leaf")
                };
                table = inner;
            }
            table.insert(leaf.to_string(), Value::from(v.clone()));
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// A figment error as one line naming the key, where its value came from, and what is wrong.
fn explain(e: figment::Error) -> anyhow::Error {
    let key = e.path.join(".");
    let from = match &e.metadata {
        Some(md) if md.name == EnvLayer::NAME => {
            let path: Vec<&str> = e.path.iter().map(String::as_str).collect();
            format!(" (from {})", EnvLayer::variable(&Profile::Default, &path))
        }
        Some(md) => match md.source.as_ref().and_then(|s| s.file_path()) {
            Some(file) => format!(" (in config file {})", file.display()),
            None => String::new(),
        },
        None => String::new(),
    };
    let one_of = |names: &[&str]| names.join(", ");
    let what = match &e.kind {
        Kind::UnknownField(found, expected) => {
            format!(
                "unknown key `{found}`; the keys here are {}",
                one_of(expected)
            )
        }
        Kind::UnknownVariant(found, expected) => {
            format!("`{found}` is not one of {}", one_of(expected))
        }
        Kind::InvalidValue(_, expected) if expected == "a duration" => {
            format!("{} such as 5s, 250ms or 1h 30m", e.kind)
        }
        kind => kind.to_string(),
    };
    if key.is_empty() {
        anyhow::anyhow!("invalid configuration{from}: {what}")
    } else {
        anyhow::anyhow!("invalid configuration: {key}{from}: {what}")
    }
}

impl Config {
    /// Loads the layers with the process environment.
    pub fn load(overrides: &Overrides) -> anyhow::Result<Self> {
        Self::load_from(overrides, |k| std::env::var(k).ok())
    }

    /// Loads the layers with `env` standing in for the environment (tests pass their own).
    pub fn load_from(
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut layers = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = &overrides.config_file {
            // Read here first: figment would take a missing file for an empty one.
            std::fs::File::open(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            layers = layers.merge(Toml::file_exact(path));
        }
        let config: Config = layers
            .merge(EnvLayer::read(env))
            .merge(Serialized::defaults(overrides))
            .extract_lossy()
            .map_err(explain)?;
        config.validate()?;
        Ok(config)
    }

    /// The engine's delivery configuration, Slack settings included.
    pub fn delivery_config(&self) -> anyhow::Result<DeliveryConfig> {
        let mut d = self.delivery.to_engine()?;
        let base = self.slack.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("invalid configuration: slack.base_url {base:?} must be an http(s) URL");
        }
        let public = if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.clone()
        };
        if !(public.starts_with("http://") || public.starts_with("https://")) {
            bail!("invalid configuration: public_url {public:?} must be an http(s) URL");
        }
        d.slack = SlackSettings {
            base_url: base.to_string(),
            public_url: Some(public),
            min_interval: self.slack.min_interval,
        };
        Ok(d)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        self.server.limits()?;
        if self.storage.max_connections == 0 || self.storage.max_connections > 1000 {
            bail!("invalid configuration: storage.max_connections must be between 1 and 1000");
        }
        if !self.database_url.is_empty()
            && !["sqlite:", "postgres:", "postgresql:"]
                .iter()
                .any(|p| self.database_url.starts_with(p))
        {
            bail!("invalid configuration: database_url must start with sqlite:// or postgres://");
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            anyhow::anyhow!("invalid configuration: log.level {:?}: {e}", self.log.level)
        })?;
        self.delivery_config()?;
        self.storage.blobs.validate(&self.data_dir)?;
        self.runs.validate()?;
        if let Some(k) = &self.master_key {
            MasterKey::parse(k.expose())
                .map_err(|e| anyhow::anyhow!("invalid configuration: HERALD_MASTER_KEY: {e}"))?;
        }
        if let Some(k) = &self.bootstrap_api_key {
            if k.expose().len() < 16 {
                bail!("invalid configuration: HERALD_BOOTSTRAP_API_KEY must be at least 16 characters");
            }
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen.parse().map_err(|_| {
            anyhow::anyhow!(
                "invalid configuration: listen {:?} is not an address like 127.0.0.1:8080",
                self.listen
            )
        })
    }

    /// The public base URL in effect: the configured one, or `http://<address>` where `address`
    /// is the one the server is listening on.
    pub fn public_base(&self, address: SocketAddr) -> String {
        if self.public_url.is_empty() {
            format!("http://{address}")
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }

    /// The database URL in effect: the configured one, or SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", sqlite_path(&self.data_dir).display())
        } else {
            self.database_url.clone()
        }
    }
}

fn sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("herald.db")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_need_no_setup() {
        let c = Config::load_from(&Overrides::default(), no_env).unwrap();
        assert_eq!(c.listen_addr().unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./herald-data"));
        assert_eq!(
            c.effective_database_url(),
            "sqlite://./herald-data/herald.db"
        );
        assert_eq!(c.storage.sqlite_synchronous, SqliteSynchronous::Normal);
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[log]\nlevel = \"debug\"\n",
        )
        .unwrap();
        let env = |k: &str| (k == "HERALD_LOG").then(|| "warn".to_string());
        let o = Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        };
        let c = Config::load_from(&o, env).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000", "file beats defaults");
        assert!(c.engine, "the engine runs unless turned off");
        let off = |k: &str| (k == "HERALD_ENGINE").then(|| "false".to_string());
        assert!(!Config::load_from(&o, off).unwrap().engine);
        assert_eq!(c.log.level, "warn", "environment beats file");
        let o = Overrides {
            config_file: Some(file),
            listen: Some("127.0.0.1:9001".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::load_from(&o, no_env).unwrap().listen,
            "127.0.0.1:9001",
            "flag beats file"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let err = |o: Overrides, env: &dyn Fn(&str) -> Option<String>| {
            Config::load_from(&o, env).unwrap_err().to_string()
        };
        assert!(err(
            Overrides {
                listen: Some("nowhere".into()),
                ..Default::default()
            },
            &no_env
        )
        .contains("listen"));
        assert!(err(
            Overrides {
                database_url: Some("mysql://x".into()),
                ..Default::default()
            },
            &no_env
        )
        .contains("database_url"));
        let env = |k: &str| (k == "HERALD_SQLITE_SYNCHRONOUS").then(|| "sometimes".to_string());
        assert!(err(Overrides::default(), &env).contains("sqlite_synchronous"));
        let env = |k: &str| (k == "HERALD_ENGINE").then(|| "maybe".to_string());
        assert!(err(Overrides::default(), &env).contains("engine"));
        let env = |k: &str| (k == "HERALD_BOOTSTRAP_API_KEY").then(|| "short".to_string());
        assert!(err(Overrides::default(), &env).contains("at least 16"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(err(
            Overrides {
                config_file: Some(file),
                ..Default::default()
            },
            &no_env
        )
        .contains("lisen"));
    }

    #[test]
    fn a_bad_value_names_its_key_where_it_came_from_and_what_is_wrong() {
        let from_env = |k: &'static str, v: &'static str| {
            let env = move |x: &str| (x == k).then(|| v.to_string());
            Config::load_from(&Overrides::default(), env)
                .unwrap_err()
                .to_string()
        };
        let e = from_env("HERALD_DELIVERY_TIMEOUT", "soon");
        for part in [
            "delivery.timeout",
            "HERALD_DELIVERY_TIMEOUT",
            "\"soon\"",
            "duration",
        ] {
            assert!(e.contains(part), "{part} missing from: {e}");
        }
        let e = from_env("HERALD_ENGINE", "maybe");
        for part in ["engine", "HERALD_ENGINE", "\"maybe\"", "bool"] {
            assert!(e.contains(part), "{part} missing from: {e}");
        }
        let e = from_env("HERALD_SQLITE_SYNCHRONOUS", "sometimes");
        for part in ["HERALD_SQLITE_SYNCHRONOUS", "`sometimes`", "normal, full"] {
            assert!(e.contains(part), "{part} missing from: {e}");
        }
        let e = from_env("HERALD_DB_MAX_CONNECTIONS", "lots");
        for part in [
            "storage.max_connections",
            "HERALD_DB_MAX_CONNECTIONS",
            "\"lots\"",
        ] {
            assert!(e.contains(part), "{part} missing from: {e}");
        }

        let dir = tempfile::tempdir().unwrap();
        let from_file = |text: &str| {
            let file = dir.path().join("herald.toml");
            std::fs::write(&file, text).unwrap();
            let o = Overrides {
                config_file: Some(file.clone()),
                ..Default::default()
            };
            (Config::load_from(&o, no_env).unwrap_err().to_string(), file)
        };
        let (e, file) = from_file("[slack]\nmin_interval = \"often\"\n");
        let file = file.display().to_string();
        for part in ["slack.min_interval", &file, "\"often\"", "duration"] {
            assert!(e.contains(part), "{part} missing from: {e}");
        }
        let (e, _) = from_file("[log]\nlvl = \"debug\"\n");
        assert!(e.contains("log.lvl") && e.contains("level, format"), "{e}");
        let (e, _) = from_file("[delivery]\nmax_in_flight = -3\n");
        assert!(
            e.contains("delivery.max_in_flight") && e.contains("-3"),
            "{e}"
        );
        let (e, _) = from_file("listen = \n");
        assert!(e.contains(&file), "a file that is not TOML is named: {e}");
        let missing = Overrides {
            config_file: Some(dir.path().join("absent.toml")),
            ..Default::default()
        };
        let e = Config::load_from(&missing, no_env).unwrap_err().to_string();
        assert!(
            e.contains("reading config file") && e.contains("absent.toml"),
            "{e}"
        );
    }

    #[test]
    fn durations_are_read_as_humantime_in_every_layer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(
            &file,
            "[delivery]\nretry_schedule = [\"100ms\", \"1m 30s\"]\n[slack]\nmin_interval = \"20ms\"\n",
        )
        .unwrap();
        let env = |k: &str| (k == "HERALD_DELIVERY_LEASE").then(|| "2m".to_string());
        let o = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let d = Config::load_from(&o, env)
            .unwrap()
            .delivery_config()
            .unwrap();
        assert_eq!(
            d.retry.schedule,
            [Duration::from_millis(100), Duration::from_secs(90)]
        );
        assert_eq!(d.lease, Duration::from_secs(120));
        assert_eq!(d.slack.min_interval, Duration::from_millis(20));
        assert_eq!(d.timeout, Duration::from_secs(15), "the default stays");
    }

    #[test]
    fn an_environment_value_made_of_digits_stays_a_string_where_a_string_is_wanted() {
        let env =
            |k: &str| (k == "HERALD_BOOTSTRAP_API_KEY").then(|| "1234567890123456".to_string());
        let c = Config::load_from(&Overrides::default(), env).unwrap();
        assert_eq!(
            c.bootstrap_api_key.as_ref().map(Secret::expose),
            Some("1234567890123456")
        );
    }

    #[test]
    fn delivery_settings() {
        let env = |k: &str| match k {
            "HERALD_ALLOWED_DESTINATIONS" => Some("127.0.0.0/8".to_string()),
            "HERALD_DELIVERY_TIMEOUT" => Some("2s".to_string()),
            "HERALD_DELIVERY_PER_DESTINATION" => Some("16".to_string()),
            _ => None,
        };
        let c = Config::load_from(&Overrides::default(), env).unwrap();
        let d = c.delivery.to_engine().unwrap();
        assert_eq!(d.timeout, std::time::Duration::from_secs(2));
        assert_eq!((d.per_destination, d.max_in_flight), (16, 64));
        assert_eq!(d.retry.schedule.len(), 9);
        assert!(d.allow.permits("127.0.0.1".parse().unwrap()));
        let bad = |k: &'static str, v: &'static str| {
            let env = move |x: &str| (x == k).then(|| v.to_string());
            Config::load_from(&Overrides::default(), env)
                .unwrap_err()
                .to_string()
        };
        assert!(bad("HERALD_ALLOWED_DESTINATIONS", "localhost").contains("allowed_destinations"));
        assert!(bad("HERALD_DELIVERY_TIMEOUT", "soon").contains("delivery.timeout"));
        assert!(bad("HERALD_DELIVERY_MAX_IN_FLIGHT", "many").contains("max_in_flight"));
        assert!(bad("HERALD_DELIVERY_THREADS", "-1").contains("threads"));
        assert!(bad("HERALD_MASTER_KEY", "short").contains("HERALD_MASTER_KEY"));
        assert!(bad("HERALD_DELIVERY_PROXY", "proxy:3128").contains("delivery.proxy"));
        assert!(bad("HERALD_DELIVERY_PROXY", "ftp://proxy/").contains("delivery.proxy"));
        assert!(bad("HERALD_HEADER_TIMEOUT", "0s").contains("server.header_timeout"));
        assert!(bad("HERALD_BODY_TIMEOUT", "later").contains("server.body_timeout"));
        assert!(bad("HERALD_MAX_CONNECTIONS", "0").contains("server.max_connections"));
    }

    #[test]
    fn a_delivery_proxy_comes_only_from_the_configuration() {
        let c = Config::load_from(&Overrides::default(), no_env).unwrap();
        assert_eq!(c.delivery.to_engine().unwrap().proxy, None);
        let env = |k: &str| {
            (k == "HERALD_DELIVERY_PROXY").then(|| "http://proxy.internal:3128".to_string())
        };
        let c = Config::load_from(&Overrides::default(), env).unwrap();
        let proxy = c.delivery.to_engine().unwrap().proxy.unwrap();
        assert_eq!(proxy.as_str(), "http://proxy.internal:3128/");
    }

    #[test]
    fn server_limits_have_defaults_and_can_be_set() {
        let c = Config::load_from(&Overrides::default(), no_env).unwrap();
        let l = c.server.limits().unwrap();
        assert_eq!(l.header_timeout, std::time::Duration::from_secs(5));
        assert_eq!(l.body_timeout, std::time::Duration::from_secs(30));
        assert!(l.max_connections >= 64);
        let env = |k: &str| match k {
            "HERALD_HEADER_TIMEOUT" => Some("2s".to_string()),
            "HERALD_MAX_CONNECTIONS" => Some("100".to_string()),
            _ => None,
        };
        let l = Config::load_from(&Overrides::default(), env)
            .unwrap()
            .server
            .limits()
            .unwrap();
        assert_eq!(
            (l.header_timeout, l.max_connections),
            (std::time::Duration::from_secs(2), 100)
        );
    }

    #[test]
    fn deliveries_get_a_thread_per_core_unless_told() {
        let threads = |v: Option<&'static str>| {
            let env = move |k: &str| {
                v.filter(|_| k == "HERALD_DELIVERY_THREADS")
                    .map(str::to_string)
            };
            let c = Config::load_from(&Overrides::default(), env).unwrap();
            c.delivery.to_engine().unwrap().threads
        };
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(threads(None), cores);
        assert_eq!(threads(Some("3")), 3);
        assert_eq!(
            threads(Some("0")),
            0,
            "0: deliveries share the server's runtime"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2hunter2hunter2")),
            "Secret(***)"
        );
    }
}
