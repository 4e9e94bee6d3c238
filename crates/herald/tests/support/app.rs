//! The real server in process: [`start_app`], [`TestApp`], and the [`Options`] its config file
//! and environment are made from.

use std::collections::HashMap;
use std::path::PathBuf;

use herald::app::App;
use herald::config::{Config, Overrides};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{http_client, Api, ADMIN_KEY};

/// Delivery (and Slack) settings of a test server. Each test binary that uses it implements
/// `Default` with its own values.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HERALD_ALLOWED_DESTINATIONS`; `None` leaves loopback refused.
    pub allowed_destinations: Option<String>,
    /// `HERALD_DELIVERY_TIMEOUT`.
    pub timeout: String,
    /// `[delivery] retry_schedule` in the config file.
    pub retry_schedule: Vec<String>,
    /// `[delivery] jitter`.
    pub jitter: f64,
    /// `[delivery] per_destination`.
    pub per_destination: usize,
    /// `[delivery] max_in_flight`.
    pub max_in_flight: usize,
    /// `[slack] min_interval`; `None` keeps the built-in default (1s).
    pub min_interval: Option<&'static str>,
}

impl Options {
    /// The config file's text.
    pub fn toml(&self) -> String {
        let schedule: Vec<String> = self
            .retry_schedule
            .iter()
            .map(|s| format!("{s:?}"))
            .collect();
        let mut t = format!(
            "[delivery]\nretry_schedule = [{}]\njitter = {:?}\nper_destination = {}\nmax_in_flight = {}\n",
            schedule.join(", "),
            self.jitter,
            self.per_destination,
            self.max_in_flight
        );
        if let Some(i) = self.min_interval {
            t.push_str(&format!("\n[slack]\nmin_interval = {i:?}\n"));
        }
        t
    }

    /// The environment a server with these options gets (with the bootstrap admin's key).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "HERALD_BOOTSTRAP_API_KEY".to_string(),
                ADMIN_KEY.to_string(),
            ),
            ("HERALD_DELIVERY_TIMEOUT".to_string(), self.timeout.clone()),
        ];
        if let Some(a) = &self.allowed_destinations {
            env.push(("HERALD_ALLOWED_DESTINATIONS".to_string(), a.clone()));
        }
        env
    }
}

/// A server running in this process. Dropping it stops the server; the data directory lives as
/// long as it does.
pub struct TestApp {
    pub base: String,
    /// The bootstrap server admin `admin`.
    pub admin: Api,
    pub data_dir: PathBuf,
    /// The server's blob store and URL signer, to make URLs as its GraphQL API does.
    pub blobs: std::sync::Arc<herald_engine::blobs::Blobs>,
    /// The server's store, for tests that run its background chores by hand.
    pub store: std::sync::Arc<dyn herald_store::Store>,
    http: reqwest::Client,
    /// Stops the server when dropped (before the data directory goes).
    _shutdown: DropGuard,
    _dir: TempDir,
}

/// Starts the real app (engine loops and all) on 127.0.0.1:0 with a fresh temporary data
/// directory, the config file `config` if given, and the fake environment `env`: nothing from
/// the real process environment. `env` must set `HERALD_BOOTSTRAP_API_KEY` to [`ADMIN_KEY`].
pub async fn start_app(config: Option<String>, env: Vec<(String, String)>) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config_file = config.map(|text| {
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, text).expect("writing the config file");
        file
    });
    let data_dir = dir.path().join("data");
    let overrides = Overrides {
        config_file,
        data_dir: Some(data_dir.clone()),
        listen: Some("127.0.0.1:0".into()),
        database_url: herald::testing::database_url_for(&data_dir).await,
    };
    let env: HashMap<String, String> = env.into_iter().collect();
    let config = Config::load_from(&overrides, |k| env.get(k).cloned()).expect("test config");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding an ephemeral port");
    let app = App::build_with_listener(&config, listener)
        .await
        .expect("the app builds");
    assert_eq!(app.bootstrap_admin_key(), Some(ADMIN_KEY));
    let base = format!("http://{}", app.address());
    let blobs = app.blobs();
    let store = app.store();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let http = http_client();
    TestApp {
        admin: Api::with_client(&base, http.clone(), Some(ADMIN_KEY)),
        base,
        data_dir,
        blobs,
        store,
        http,
        _shutdown: shutdown.drop_guard(),
        _dir: dir,
    }
}

impl TestApp {
    /// A client that sends no credentials.
    pub fn anonymous(&self) -> Api {
        self.with_key(None)
    }

    /// A client that sends `key` as a bearer token.
    pub fn with_key(&self, key: Option<&str>) -> Api {
        Api::with_client(&self.base, self.http.clone(), key)
    }

    /// Creates user `username` as the admin and returns a client acting as them.
    pub async fn create_user(&self, username: &str) -> Api {
        let key = self.admin.create_user(username).await;
        self.with_key(Some(&key))
    }
}
