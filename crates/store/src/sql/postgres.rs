//! The PostgreSQL backend, on sqlx: its pool, its write transactions and their lock, and the
//! schema helpers tests use.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection as _, Executor as _, PgConnection, PgPool, Postgres, Row as _};

use super::db::{Columns, Value};
use crate::{StoreError, StoreResult};

/// Connects a pool of at least two connections (the server handles concurrency) and applies
/// pending migrations.
pub(crate) async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
    super::migrate::postgres(&options).await?;
    PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL")
}

/// Begins a write transaction. Writers take one advisory lock, so commits happen in the order
/// event ids were assigned and the matcher's cursor can never pass an event that commits later
/// (SQLite's single writer gives the same for free).
pub(crate) async fn begin_write(pool: &PgPool) -> StoreResult<Conn> {
    let mut tx = pool.begin().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7243)").await?;
    Ok(Conn::Tx(tx))
}

pub(crate) async fn read(pool: &PgPool) -> StoreResult<Conn> {
    Ok(Conn::Pool(pool.acquire().await?))
}

/// A pooled connection for reads, or a write transaction.
pub(crate) enum Conn {
    Pool(PoolConnection<Postgres>),
    Tx(sqlx::Transaction<'static, Postgres>),
}

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn query<'q>(sql: &'q str, params: &'q [Value<'q>]) -> Query<'q> {
    params.iter().fold(sqlx::query(sql), |q, p| match *p {
        Value::Int(v) => q.bind(v),
        Value::Text(v) => q.bind(v),
    })
}

impl Conn {
    fn pg(&mut self) -> &mut PgConnection {
        match self {
            Conn::Pool(c) => c,
            Conn::Tx(t) => t,
        }
    }

    pub(crate) async fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> StoreResult<u64> {
        Ok(query(sql, params).execute(self.pg()).await?.rows_affected())
    }

    pub(crate) async fn fetch_all<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        mut read: impl FnMut(&dyn Columns) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let rows = query(sql, params).fetch_all(self.pg()).await?;
        rows.iter().map(|r| read(r)).collect()
    }

    pub(crate) async fn fetch_optional<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        mut read: impl FnMut(&dyn Columns) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let row = query(sql, params).fetch_optional(self.pg()).await?;
        row.as_ref().map(|r| read(r)).transpose()
    }

    pub(crate) async fn commit(self) -> StoreResult<()> {
        if let Conn::Tx(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

impl Columns for PgRow {
    fn int(&self, name: &str) -> StoreResult<Option<i64>> {
        Ok(self.try_get(name)?)
    }
    fn text(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get(name)?)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database error"))
    }
}

/// Whether `e` is PostgreSQL's unique violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation))
}

/// Creates schema `schema` in the PostgreSQL at `base` if needed and returns a URL whose
/// connections use it, for giving each test (or test server) a database of its own.
pub async fn postgres_schema_url(base: &str, schema: &str) -> anyhow::Result<String> {
    on_postgres_schema(base, schema, "CREATE SCHEMA IF NOT EXISTS {}").await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// Drops schema `schema` of the PostgreSQL at `base` and everything in it.
pub async fn drop_postgres_schema(base: &str, schema: &str) -> anyhow::Result<()> {
    on_postgres_schema(base, schema, "DROP SCHEMA IF EXISTS {} CASCADE").await
}

/// Runs `statement`, with `{}` standing for `schema`, on the PostgreSQL at `base`.
async fn on_postgres_schema(base: &str, schema: &str, statement: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !schema.is_empty()
            && schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "schema name {schema:?} must be letters, digits and '_'"
    );
    let mut admin = PgConnection::connect(base)
        .await
        .with_context(|| format!("connecting to {base}"))?;
    admin
        .execute(statement.replace("{}", schema).as_str())
        .await?;
    admin.close().await?;
    Ok(())
}

/// Every row of every table of `schema`, as text (for tests that check what is stored).
pub async fn dump_postgres_schema(base: &str, schema: &str) -> anyhow::Result<String> {
    let mut conn = PgConnection::connect(base).await?;
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_all(&mut conn)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>("t"))
    .collect::<Result<_, _>>()?;
    let mut out = String::new();
    for t in tables {
        let rows = sqlx::query(&format!(
            "SELECT row_to_json(x)::text AS j FROM {schema}.{t} x"
        ))
        .fetch_all(&mut conn)
        .await?;
        for r in rows {
            out.push_str(&r.try_get::<String, _>("j")?);
            out.push('\n');
        }
    }
    conn.close().await?;
    Ok(out)
}
