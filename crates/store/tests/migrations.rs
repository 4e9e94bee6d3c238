//! Databases migrated by herald's former runner (a `herald_migrations` table of versions)
//! open with the migrator and keep their rows; a database newer than this herald is refused.

mod common;

use herald_domain::names::Username;
use herald_store::sql::{SqlOptions, SqlStore};
use herald_store::{NewUser, Store, UserStore};
use sqlx::{Connection as _, Executor as _, Row as _};

/// The migrations of `backend` (`sqlite` or `postgres`), by version, as the files hold them.
fn migrations(backend: &str) -> Vec<(i64, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut out: Vec<(i64, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let version = name.split('_').next().unwrap().parse().unwrap();
            (version, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// What the former runner left: every migration applied, each recorded by version, and a
/// user with an API key; then `extra` (SQL) run.
fn old_runner_state(backend: &str, extra: &str) -> String {
    let mut sql = String::from(
        "CREATE TABLE herald_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL);\n",
    );
    for (version, text) in migrations(backend) {
        sql.push_str(&text);
        sql.push_str(&format!(
            ";\nINSERT INTO herald_migrations (version, name, applied_at) VALUES ({version}, 'm', 1);\n"
        ));
    }
    sql.push_str(
        "INSERT INTO users (username, email, is_admin, created_at) VALUES ('olduser', NULL, 0, 1);
         INSERT INTO api_keys (user_id, key_hash, created_at) VALUES (1, 'old-key-hash', 1);\n",
    );
    sql.push_str(extra);
    sql
}

/// Opens `url` twice (the second time finds everything recorded) and checks the old rows and
/// that new ones can be written.
async fn opens_and_keeps_rows(url: &str) {
    for round in 0..2 {
        let store = SqlStore::connect(url, &SqlOptions::default())
            .await
            .unwrap_or_else(|e| panic!("opening (round {round}): {e:#}"));
        assert!(store.ping().await, "the store answers");
        let old = store.user_by_key_hash("old-key-hash").await.unwrap();
        assert_eq!(old.unwrap().username.as_str(), "olduser");
        let name = format!("new{round}");
        store
            .create_user(NewUser {
                username: Username::parse(&name).unwrap(),
                email: None,
                is_admin: false,
                key_hash: format!("key-{name}"),
            })
            .await
            .unwrap();
        assert_eq!(store.count_users().await.unwrap(), 2 + round);
    }
}

async fn refused(url: &str) -> String {
    let e = SqlStore::connect(url, &SqlOptions::default())
        .await
        .err()
        .expect("a database newer than herald must be refused");
    format!("{e:#}")
}

fn sqlite_file(dir: &tempfile::TempDir, sql: &str) -> String {
    let path = dir.path().join("h.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn a_sqlite_database_of_the_old_runner_opens_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_file(&dir, &old_runner_state("sqlite", ""));
    opens_and_keeps_rows(&url).await;
    let conn = rusqlite::Connection::open(dir.path().join("h.db")).unwrap();
    let recorded: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE success",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recorded, migrations("sqlite").len() as i64);
}

#[tokio::test]
async fn a_sqlite_database_newer_than_herald_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let extra =
        "INSERT INTO herald_migrations (version, name, applied_at) VALUES (999, 'future', 1);";
    let message = refused(&sqlite_file(&dir, &old_runner_state("sqlite", extra))).await;
    assert!(message.contains("newer than this herald"), "{message}");

    // Migrated by the migrator of a newer herald.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    SqlStore::connect(&url, &SqlOptions::default())
        .await
        .unwrap();
    rusqlite::Connection::open(dir.path().join("h.db"))
        .unwrap()
        .execute_batch(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (999, 'future', TRUE, X'00', 0)",
        )
        .unwrap();
    let message = refused(&url).await;
    assert!(message.contains("newer than this herald"), "{message}");
}

#[tokio::test]
async fn a_postgres_database_of_the_old_runner_opens_and_keeps_its_rows() {
    let Some(base) = common::postgres_base_answering().await else {
        return;
    };
    let schema = common::fresh_schema_name();
    let url = herald_store::sql::postgres_schema_url(&base, &schema)
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    conn.execute(old_runner_state("postgres", "").as_str())
        .await
        .unwrap();
    opens_and_keeps_rows(&url).await;
    let recorded: i64 = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("n");
    assert_eq!(recorded, migrations("postgres").len() as i64);

    let schema = common::fresh_schema_name();
    let url = herald_store::sql::postgres_schema_url(&base, &schema)
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let extra =
        "INSERT INTO herald_migrations (version, name, applied_at) VALUES (999, 'future', 1);";
    conn.execute(old_runner_state("postgres", extra).as_str())
        .await
        .unwrap();
    let message = refused(&url).await;
    assert!(message.contains("newer than this herald"), "{message}");
}
