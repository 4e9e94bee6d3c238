//! Support for tests that run the whole suite on either backend: with
//! `HERALD_TEST_BACKEND=postgres`, each test server gets its own PostgreSQL schema (on
//! `HERALD_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`); otherwise
//! SQLite in its data directory, as in production.

use std::hash::{Hash as _, Hasher as _};
use std::path::Path;

fn backend_is_postgres() -> bool {
    let postgres = std::env::var("HERALD_TEST_BACKEND").ok().as_deref() == Some("postgres");
    // Once per test binary, past the harness's capture, so every run shows its backend.
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write as _;
        let on = if postgres {
            format!("PostgreSQL, a schema per server at {}", base())
        } else {
            "SQLite (HERALD_TEST_BACKEND=postgres runs them on PostgreSQL)".to_string()
        };
        let _ = writeln!(std::io::stderr(), "herald integration tests: {on}");
    });
    postgres
}

fn base() -> String {
    std::env::var("HERALD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn schema_for(dir: &Path) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    format!("herald_t_{:016x}", h.finish())
}

/// Everything stored in the PostgreSQL schema of the test server with data directory `dir`, as
/// text; `None` on SQLite (whose database is a file in `dir`).
pub async fn database_dump(dir: &Path) -> Option<String> {
    if !backend_is_postgres() {
        return None;
    }
    Some(
        herald_store::sql::dump_postgres_schema(&base(), &schema_for(dir))
            .await
            .expect("dumping the test schema"),
    )
}

/// The database URL a test server with data directory `dir` should use: `None` for SQLite.
/// The same directory always maps to the same schema, so a restarted server finds its data.
pub async fn database_url_for(dir: &Path) -> Option<String> {
    if !backend_is_postgres() {
        return None;
    }
    Some(
        herald_store::sql::postgres_schema_url(&base(), &schema_for(dir))
            .await
            .unwrap_or_else(|e| panic!("HERALD_TEST_BACKEND=postgres, but: {e:#}")),
    )
}

/// Environment for a `herald serve` child process of a test: on PostgreSQL its database, and a
/// short lease, so that executions a killed child held come back within seconds (SQLite
/// releases them at start instead: it has one process by design).
pub async fn child_env(dir: &Path) -> Vec<(String, String)> {
    match database_url_for(dir).await {
        Some(url) => vec![
            ("DATABASE_URL".into(), url),
            ("HERALD_DELIVERY_LEASE".into(), "3s".into()),
        ],
        None => vec![],
    }
}
