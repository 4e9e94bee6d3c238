//! The one interface the store's logic runs on, whichever the database: a connection (or
//! write transaction) that runs SQL text with `$n` parameters and hands each row to a reader
//! by column name. SQLite ([`super::sqlite`]) and PostgreSQL ([`super::postgres`]) each
//! implement it; every store operation is written once against it.

use super::{postgres, sqlite, Backend};
use crate::{StoreError, StoreResult};

/// A parameter of a statement. Nulls keep their type: PostgreSQL wants to know it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Int(Some(v as i64))
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a Option<String>> for Value<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Value::Text(v.as_deref())
    }
}

/// Names the domain parsed bind as their text.
macro_rules! text_values {
    ($($t:ty),*) => {$(
        impl<'a> From<&'a $t> for Value<'a> {
            fn from(v: &'a $t) -> Self {
                Value::Text(Some(v.as_str()))
            }
        }

        impl<'a> From<&'a Option<$t>> for Value<'a> {
            fn from(v: &'a Option<$t>) -> Self {
                Value::Text(v.as_ref().map(<$t>::as_str))
            }
        }
    )*};
}
text_values!(
    herald_domain::automation::AutomationName,
    herald_domain::automation::IntegrationName,
    herald_domain::automation::SecretName
);

/// `&[Value]` from expressions that convert into one: `params![id, name]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::sql::db::Value::from($v)),*]
    };
}
pub(crate) use params;

/// A row of either database, read by column name.
pub(crate) trait Columns {
    fn int(&self, name: &str) -> StoreResult<Option<i64>>;
    fn text(&self, name: &str) -> StoreResult<Option<String>>;

    /// A column that is never NULL.
    fn int_required(&self, name: &str) -> StoreResult<i64> {
        self.int(name)?
            .ok_or_else(|| anyhow::anyhow!("column {name} is NULL").into())
    }

    /// A column that is never NULL.
    fn text_required(&self, name: &str) -> StoreResult<String> {
        self.text(name)?
            .ok_or_else(|| anyhow::anyhow!("column {name} is NULL").into())
    }
}

/// A connection for reads, or a write transaction: see [`super::SqlStore::read`] and
/// [`super::SqlStore::write`]. A write transaction dropped without [`Conn::commit`] rolls back.
pub(crate) enum Conn<'a> {
    Sqlite(sqlite::Conn<'a>),
    Postgres(postgres::Conn),
}

impl Conn<'_> {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs a statement; returns how many rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> StoreResult<u64> {
        match self {
            Conn::Sqlite(c) => c.execute(sql, params),
            Conn::Postgres(c) => c.execute(sql, params).await,
        }
    }

    /// Runs a query and reads every row with `read`.
    pub(crate) async fn fetch_all<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnMut(&dyn Columns) -> StoreResult<T> + Send,
    ) -> StoreResult<Vec<T>> {
        match self {
            Conn::Sqlite(c) => c.fetch(sql, params, usize::MAX, read),
            Conn::Postgres(c) => c.fetch_all(sql, params, read).await,
        }
    }

    /// Runs a query and reads its first row, if any.
    pub(crate) async fn fetch_optional<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnOnce(&dyn Columns) -> StoreResult<T> + Send,
    ) -> StoreResult<Option<T>> {
        let mut read = Some(read);
        let mut once = move |r: &dyn Columns| match read.take() {
            Some(f) => f(r),
            None => Err(StoreError::Internal(anyhow::anyhow!("read twice"))),
        };
        Ok(match self {
            Conn::Sqlite(c) => c.fetch(sql, params, 1, &mut once)?.pop(),
            Conn::Postgres(c) => c.fetch_optional(sql, params, &mut once).await?,
        })
    }

    /// Runs a query that always gives a row, and reads the first.
    pub(crate) async fn fetch_one<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnOnce(&dyn Columns) -> StoreResult<T> + Send,
    ) -> StoreResult<T> {
        self.fetch_optional(sql, params, read)
            .await?
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("no row from {sql}")))
    }

    /// A single integer column of the first row (e.g. a count).
    pub(crate) async fn fetch_int(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        column: &str,
    ) -> StoreResult<Option<i64>> {
        self.fetch_one(sql, params, |r| r.int(column)).await
    }

    /// Runs `INSERT … RETURNING id` and gives the new row's id. On SQLite the clause is left
    /// out and the id taken from the connection: SQLite runs a statement with RETURNING through
    /// a statement journal, copying every page it touches aside first.
    pub(crate) async fn insert_id(&mut self, sql: &str, params: &[Value<'_>]) -> StoreResult<i64> {
        match self {
            Conn::Sqlite(c) => c.insert_id(sql, params),
            Conn::Postgres(c) => c
                .fetch_optional(sql, params, |r| r.int_required("id"))
                .await?
                .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("no id from {sql}"))),
        }
    }

    /// Commits a write transaction (a read connection has nothing to commit).
    pub(crate) async fn commit(self) -> StoreResult<()> {
        match self {
            Conn::Sqlite(c) => c.commit(),
            Conn::Postgres(c) => c.commit().await,
        }
    }

    /// `rows` split for multi-row statements of [`CHUNK_ROWS`] rows. SQLite gets the rest
    /// one row at a time, so each use prepares (and caches) two statements only; PostgreSQL
    /// gets the rest in one statement, as each statement there is a round trip.
    pub(crate) fn row_chunks<'r, T>(&self, rows: &'r [T]) -> Vec<&'r [T]> {
        let whole = rows.len() - rows.len() % CHUNK_ROWS;
        let chunks = rows[..whole].chunks(CHUNK_ROWS);
        match self.backend() {
            Backend::Sqlite => chunks.chain(rows[whole..].chunks(1)).collect(),
            Backend::Postgres => chunks
                .chain((whole < rows.len()).then_some(&rows[whole..]))
                .collect(),
        }
    }
}

/// Rows per multi-row statement (an insert, or an update of rows by their ids): a
/// statement's own costs are paid per chunk instead of per row. 32 rows of 16 values stay
/// far below either database's limit on parameters.
pub(crate) const CHUNK_ROWS: usize = 32;

/// `{head} VALUES ($…, …), …{tail}`: `rows` rows of `width` parameters each, numbered from
/// `$(skip + 1)`.
pub(crate) fn values_sql(head: &str, width: usize, rows: usize, skip: usize, tail: &str) -> String {
    use std::fmt::Write as _;
    // Written into one string: this runs for every multi-row statement of the hot paths.
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * width * 6 + 8);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 1..=width {
            let sep = if c == 1 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}", skip + r * width + c);
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// `$(from), $(from + 1), …`: `n` parameters, for an `IN (…)` list.
pub(crate) fn param_list(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_numbered_row_after_row() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b)", 2, 2, 1, " ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b) VALUES ($2, $3), ($4, $5) ON CONFLICT DO NOTHING"
        );
        assert_eq!(param_list(3, 3), "$3, $4, $5");
    }
}
