//! Test databases: every test gets a fresh SQLite file, and a fresh PostgreSQL schema when
//! PostgreSQL answers at `HERALD_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`).
//! `HERALD_TEST_POSTGRES=off` skips PostgreSQL.
#![allow(dead_code)] // each test binary uses some of these

use herald_store::sql::{SqlOptions, SqlStore};

/// A store under test and what keeps its database alive.
pub struct TestDb {
    pub name: &'static str,
    pub store: SqlStore,
    _dir: Option<tempfile::TempDir>,
}

fn postgres_base() -> Option<String> {
    match std::env::var("HERALD_TEST_POSTGRES") {
        Ok(v) if v == "off" => None,
        Ok(v) => Some(v),
        Err(_) => Some("postgres://postgres@127.0.0.1:5432/test".to_string()),
    }
}

/// A fresh SQLite store, and a fresh PostgreSQL one when PostgreSQL is reachable.
pub async fn databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut out = vec![TestDb {
        name: "sqlite",
        store: SqlStore::connect(&url, &SqlOptions::default())
            .await
            .unwrap(),
        _dir: Some(dir),
    }];
    let mut postgres = "off (HERALD_TEST_POSTGRES=off)".to_string();
    if let Some(base) = postgres_base() {
        postgres = format!("not answering at {base}; SQLite only");
        if let Some(store) = fresh_schema(&base).await {
            postgres = format!("yes, a fresh schema at {base}");
            out.push(TestDb {
                name: "postgres",
                store,
                _dir: None,
            });
        }
    }
    say_backends(&postgres);
    out
}

/// Says once per test binary which databases its tests ran on. Written to the process's
/// standard error itself, past the test harness's capture, so every run shows it.
fn say_backends(postgres: &str) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "herald store tests: SQLite yes; PostgreSQL {postgres}"
        );
    });
}

/// A store on a new schema of the PostgreSQL at `base` (left behind; schemas are cheap and
/// named uniquely), or `None` if PostgreSQL does not answer (a failure instead with
/// `HERALD_TEST_POSTGRES_REQUIRED=1`).
async fn fresh_schema(base: &str) -> Option<SqlStore> {
    let url = herald_store::sql::postgres_schema_url(base, &fresh_schema_name()).await;
    let url = match url {
        Ok(url) => url,
        Err(e) if postgres_required() => panic!("HERALD_TEST_POSTGRES_REQUIRED=1, but: {e:#}"),
        Err(_) => return None,
    };
    Some(
        SqlStore::connect(&url, &SqlOptions::default())
            .await
            .expect("connecting to the test schema"),
    )
}

fn postgres_required() -> bool {
    std::env::var("HERALD_TEST_POSTGRES_REQUIRED").is_ok_and(|v| v == "1")
}

/// The PostgreSQL base URL if PostgreSQL is on and answers, for tests that make their own
/// schemas.
pub async fn postgres_base_answering() -> Option<String> {
    let base = postgres_base()?;
    let probe = herald_store::sql::postgres_schema_url(&base, "herald_test_probe").await;
    match probe {
        Ok(_) => Some(base),
        Err(e) if postgres_required() => panic!("HERALD_TEST_POSTGRES_REQUIRED=1, but: {e:#}"),
        Err(_) => None,
    }
}

/// A schema name no other test uses.
pub fn fresh_schema_name() -> String {
    format!("herald_test_{}_{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}",
        t % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
