//! The server assembled: store, blob store, API and engine workers, on a listener the caller
//! may have bound already, so tests run the real app on port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use herald_api::AppState;
use herald_domain::console::ConsolePolicy;
use herald_engine::blobs::Blobs;
use herald_engine::secrets::MasterKey;
use herald_engine::Engine;
use herald_store::sql::{SqlOptions, SqlStore, SqliteSync};
use herald_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ServerLimits, SqliteSynchronous};
use crate::http_server::ConnectionLimits;

/// File in the data directory that holds the bootstrap admin's API key (mode 0600).
pub const ADMIN_KEY_FILE: &str = "admin-api-key";
/// File in the data directory that holds the master key sealing team secrets (mode 0600),
/// when `HERALD_MASTER_KEY` is not set.
pub const MASTER_KEY_FILE: &str = "master-key";

pub struct App {
    listener: TcpListener,
    address: SocketAddr,
    store: Arc<SqlStore>,
    engine: Arc<Engine>,
    blobs: Arc<Blobs>,
    run_engine: bool,
    limits: ServerLimits,
    console: ConsolePolicy,
    admin_key: Option<String>,
}

impl App {
    /// Opens the store and binds the configured address.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let addr = config.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Self::build_with_listener(config, listener).await
    }

    /// Opens the store (creating the data directory and applying migrations), and creates the
    /// bootstrap admin on an empty store.
    pub async fn build_with_listener(
        config: &Config,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        create_private_dir(&config.data_dir)?;
        for file in [ADMIN_KEY_FILE, MASTER_KEY_FILE] {
            make_private(&config.data_dir.join(file))?;
        }
        let options = SqlOptions {
            max_connections: config.storage.max_connections,
            sqlite_synchronous: match config.storage.sqlite_synchronous {
                SqliteSynchronous::Normal => SqliteSync::Normal,
                SqliteSynchronous::Full => SqliteSync::Full,
            },
        };
        let store = Arc::new(SqlStore::connect(&config.effective_database_url(), &options).await?);
        let wanted = config.bootstrap_api_key.as_ref().map(|k| k.expose());
        let admin_key = herald_engine::auth::bootstrap_admin(&*store, wanted)
            .await
            .map_err(|e| anyhow::anyhow!("creating the bootstrap admin: {e}"))?;
        if let Some(key) = &admin_key {
            write_private(&config.data_dir.join(ADMIN_KEY_FILE), key)?;
        }
        let master_key = load_master_key(config)?;
        let address = listener.local_addr()?;
        let blobs = open_blobs(config, &master_key, address).await?;
        let dyn_store: Arc<dyn Store> = store.clone();
        let engine = Engine::new(dyn_store, master_key, config.delivery_config()?);
        Ok(Self {
            listener,
            address,
            store,
            engine,
            blobs,
            run_engine: config.engine,
            limits: config.server.limits()?,
            console: config.runs.console_policy(),
            admin_key,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The admin key created at this start, if the store was empty (it is not kept anywhere
    /// but the 0600 key file).
    pub fn bootstrap_admin_key(&self) -> Option<&str> {
        self.admin_key.as_deref()
    }

    /// The engine, for tests that step the matcher and delivery by hand.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// The store, for tests that run the server's chores by hand.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The blob store and its signed URLs, for tests that make URLs as the GraphQL API will.
    pub fn blobs(&self) -> Arc<Blobs> {
        self.blobs.clone()
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests and closes the store.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let store: Arc<dyn Store> = self.store.clone();
        let router = herald_api::router(
            AppState::new(store, self.engine.clone(), self.blobs.clone())
                .with_console(self.console),
            herald_api::RequestLimits {
                body_timeout: self.limits.body_timeout,
            },
        );
        tracing::info!(address = %self.address, "herald is listening");
        if !self.run_engine {
            tracing::info!(
                "engine off (engine = false): events are stored, not matched or delivered"
            );
        }
        let engine = self
            .run_engine
            .then(|| tokio::spawn(self.engine.clone().run(shutdown.clone())));
        let sweeper = tokio::spawn(herald_engine::artifact_save::sweep_until_stopped(
            self.store.clone(),
            self.blobs.clone(),
            shutdown.clone(),
        ));
        let limits = ConnectionLimits {
            header_timeout: self.limits.header_timeout,
            max_connections: self.limits.max_connections,
        };
        crate::http_server::serve(self.listener, router, limits, shutdown.clone()).await;
        // Then let the engine drain its deliveries.
        shutdown.cancel();
        if let Some(engine) = engine {
            let _ = engine.await;
        }
        let _ = sweeper.await;
        self.store.close().await;
        tracing::info!("herald stopped");
        Ok(())
    }
}

/// Opens the blob store (`storage.blobs`), its URLs signed under `master` and rooted at the
/// public URL, or at `http://<address>` when none is configured.
async fn open_blobs(
    config: &Config,
    master: &MasterKey,
    address: SocketAddr,
) -> anyhow::Result<Arc<Blobs>> {
    let settings = &config.storage.blobs;
    let location = settings.location(&config.data_dir)?;
    let store = herald_blobs::open(&location, settings.limits()).await?;
    let base = config.public_base(address);
    if config.public_url.is_empty() && address.ip().is_unspecified() {
        tracing::warn!(
            "public_url is not set: file URLs name {base}, which clients on other machines cannot reach; set HERALD_PUBLIC_URL"
        );
    }
    tracing::info!(blobs = %location.describe(), public_url = %base, "blob store open");
    let blobs = Blobs::new(Arc::new(store), master, &base, settings.lifetimes())?;
    Ok(Arc::new(blobs))
}

/// The master key from the configuration, or from the key file (created on first start).
fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Some(k) = &config.master_key {
        return MasterKey::parse(k.expose()).map_err(|e| anyhow::anyhow!("HERALD_MASTER_KEY: {e}"));
    }
    let path = config.data_dir.join(MASTER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            write_private(&path, &key.to_base64())?;
            tracing::info!(path = %path.display(), "created the master key for team secrets");
            Ok(key)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    }
}

/// Creates the data directory accessible to its owner only (0700), or makes an existing one
/// so: it holds the database, the master key and the admin's key.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        builder.mode(0o700);
        builder
            .create(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making data directory {} private", dir.display()))?;
        }
    }
    #[cfg(not(unix))]
    builder
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    Ok(())
}

/// Makes an existing file readable by its owner only (an older herald left its keys 0644).
fn make_private(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private", path.display()))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes `contents` to `path` readable by the owner only.
fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // The mode applies only when the file is created; an older one may be readable by all.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}
