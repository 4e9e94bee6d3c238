//! Schema migrations, through sqlx's migrator: it records each applied migration with its
//! checksum (an edited migration is refused), and on PostgreSQL holds an advisory lock while
//! it runs, so replicas starting together on a new database wait for the first instead of
//! each creating the tables. SQLite migrates through a short-lived sqlx connection opened for
//! that alone; the store's queries never use it.
//!
//! Databases made before the migrator recorded their migrations in `herald_migrations`
//! (versions only); [`adopt`] enters those in the migrator's table before it runs.

use std::path::Path;

use anyhow::Context as _;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, Row as _};

/// Enters the migrations the old runner recorded in `herald_migrations` into the migrator's
/// table, with the migrator's checksums, so that it does not apply them again; refuses a
/// database the old runner took past this herald's migrations. `$exists` counts the
/// `herald_migrations` tables (0 or 1). A macro for both drivers' connections.
macro_rules! adopt {
    ($conn:expr, $migrator:expr, $exists:expr) => {
        async {
            use sqlx::migrate::Migrate as _;
            let conn = $conn;
            let migrator: &Migrator = $migrator;
            let exists: i64 = sqlx::query($exists).fetch_one(&mut *conn).await?.try_get("n")?;
            if exists == 0 {
                return anyhow::Ok(());
            }
            let versions: Vec<i64> = sqlx::query("SELECT version FROM herald_migrations")
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| r.try_get("version"))
                .collect::<Result<_, _>>()?;
            let latest = latest(migrator);
            if let Some(newer) = versions.iter().find(|v| **v > latest) {
                anyhow::bail!(
                    "the database is at schema version {newer}, newer than this herald knows ({latest}); upgrade herald"
                );
            }
            conn.ensure_migrations_table().await?;
            for m in migrator.iter().filter(|m| versions.contains(&m.version)) {
                sqlx::query(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                     VALUES ($1, $2, TRUE, $3, 0) ON CONFLICT (version) DO NOTHING",
                )
                .bind(m.version)
                .bind(m.description.as_ref())
                .bind(m.checksum.as_ref())
                .execute(&mut *conn)
                .await?;
            }
            anyhow::Ok(())
        }
        .await
        .context("recording the migrations of an older herald")
    };
}

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

/// Brings a PostgreSQL database up to date, on a connection of its own (a session lock must
/// not go back to a pool).
pub(crate) async fn postgres(options: &PgConnectOptions) -> anyhow::Result<()> {
    use sqlx::migrate::Migrate as _;
    let mut conn = sqlx::PgConnection::connect_with(options)
        .await
        .context("connecting to PostgreSQL")?;
    conn.lock()
        .await
        .context("waiting for the migrations lock")?;
    let adopted = adopt!(
        &mut conn,
        &POSTGRES,
        "SELECT COUNT(*) AS n FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = 'herald_migrations'"
    );
    conn.unlock().await?;
    adopted?;
    let migrated = POSTGRES.run(&mut conn).await;
    conn.close().await?;
    migrated.map_err(|e| refused(e, &POSTGRES))
}

/// Brings the SQLite database `filename` (a path, or an in-memory database's shared name)
/// up to date.
pub(crate) async fn sqlite(filename: &Path, in_memory: bool) -> anyhow::Result<()> {
    let options = SqliteConnectOptions::new()
        .filename(filename)
        .in_memory(in_memory)
        .shared_cache(in_memory)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening {} to migrate it", filename.display()))?;
    let adopted = adopt!(
        &mut conn,
        &SQLITE,
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'herald_migrations'"
    );
    let migrated = match adopted {
        Ok(()) => SQLITE.run(&mut conn).await.map_err(|e| refused(e, &SQLITE)),
        Err(e) => Err(e),
    };
    conn.close().await?;
    migrated
}

/// A migration error, saying so when the database is newer than this herald.
fn refused(e: MigrateError, migrator: &Migrator) -> anyhow::Error {
    match e {
        MigrateError::VersionMissing(v) => anyhow::anyhow!(
            "the database is at schema version {v}, newer than this herald knows ({}); upgrade herald",
            latest(migrator)
        ),
        e => anyhow::Error::new(e).context("migrating the database"),
    }
}

fn latest(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}
