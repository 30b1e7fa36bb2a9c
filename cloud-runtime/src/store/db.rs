//! The two engines under one query interface: SQLite (the embedded default) and PostgreSQL
//! (replicas sharing one database).
//!
//! The store writes each statement once, in the SQL both engines accept (`$1`-style
//! parameters, `ON CONFLICT`, `RETURNING`), binds [`Value`]s, and runs it on whichever
//! engine the [`Pool`] holds; rows decode into the same Rust types on both, because every
//! integer column is 64-bit on both (see the two `migrations/` folders).

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{FromRow, Postgres, SqlSafeStr, SqlStr, Sqlite, Transaction};

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One SQLite file in the data directory.
    Sqlite,
    /// A PostgreSQL database that several replicas share.
    Postgres,
}

/// A connection pool of either engine.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// The pool's engine.
    pub(crate) fn engine(&self) -> Engine {
        match self {
            Self::Sqlite(_) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
        }
    }

    /// Starts a transaction.
    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Closes every connection (waits for those in use).
    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }
}

/// A transaction of either engine; dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(t) => t.commit().await,
            Self::Postgres(t) => t.commit().await,
        }
    }
}

/// Where a statement runs: on the pool, or inside a transaction.
pub(crate) enum Exec<'e> {
    Pool(&'e Pool),
    Tx(&'e mut Tx),
}

impl<'e> From<&'e Pool> for Exec<'e> {
    fn from(p: &'e Pool) -> Self {
        Self::Pool(p)
    }
}

impl<'e> From<&'e mut Tx> for Exec<'e> {
    fn from(t: &'e mut Tx) -> Self {
        Self::Tx(t)
    }
}

/// A bound parameter: the types the store's columns hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'q> {
    Int(Option<i64>),
    Text(Option<&'q str>),
    OwnedText(Option<String>),
    Bytes(Option<&'q [u8]>),
    OwnedBytes(Option<Vec<u8>>),
}

/// The kind of a column: every column of the schema is one of these on both engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Text,
    Bytes,
}

impl Kind {
    /// The kind of a column declared as `declared` (SQLite's declared type or PostgreSQL's
    /// `data_type`), if the schema uses it.
    pub(crate) fn of(declared: &str) -> Option<Self> {
        match declared.to_ascii_lowercase().as_str() {
            "bigint" | "integer" => Some(Self::Int),
            "text" => Some(Self::Text),
            "blob" | "bytea" => Some(Self::Bytes),
            _ => None,
        }
    }
}

/// Reads the columns of `row` as `kinds` say.
fn decode_row<'r, R>(row: &'r R, kinds: &[Kind]) -> Result<Vec<Value<'static>>, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            Ok(match kind {
                Kind::Int => Value::Int(row.try_get(i)?),
                Kind::Text => Value::OwnedText(row.try_get(i)?),
                Kind::Bytes => Value::OwnedBytes(row.try_get(i)?),
            })
        })
        .collect()
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl<'q> From<&'q str> for Value<'q> {
    fn from(v: &'q str) -> Self {
        Self::Text(Some(v))
    }
}

impl<'q> From<&'q String> for Value<'q> {
    fn from(v: &'q String) -> Self {
        Self::Text(Some(v))
    }
}

impl<'q> From<Option<&'q str>> for Value<'q> {
    fn from(v: Option<&'q str>) -> Self {
        Self::Text(v)
    }
}

impl<'q> From<&'q Option<String>> for Value<'q> {
    fn from(v: &'q Option<String>) -> Self {
        Self::Text(v.as_deref())
    }
}

impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Self::OwnedText(Some(v))
    }
}

impl From<Option<String>> for Value<'_> {
    fn from(v: Option<String>) -> Self {
        Self::OwnedText(v)
    }
}

impl From<Vec<u8>> for Value<'_> {
    fn from(v: Vec<u8>) -> Self {
        Self::OwnedBytes(Some(v))
    }
}

impl<'q> From<&'q [u8]> for Value<'q> {
    fn from(v: &'q [u8]) -> Self {
        Self::Bytes(Some(v))
    }
}

impl<'q> From<Option<&'q [u8]>> for Value<'q> {
    fn from(v: Option<&'q [u8]>) -> Self {
        Self::Bytes(v)
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    rows: u64,
}

impl Done {
    /// How many rows it changed.
    pub(crate) fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A row type both engines decode.
pub(crate) trait Row:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{}

/// A statement and its parameters, for either engine.
#[must_use = "a query does nothing until it is run"]
pub(crate) struct Query<'q> {
    sql: SqlStr,
    values: Vec<Value<'q>>,
}

/// A statement with `$1`-style parameters.
pub(crate) fn query<'q>(sql: impl SqlSafeStr) -> Query<'q> {
    Query {
        sql: sql.into_sql_str(),
        values: Vec::new(),
    }
}

/// Binds every value of `$values` to the sqlx query `$q`.
macro_rules! bind_all {
    ($q:expr, $values:expr) => {{
        let mut q = $q;
        for v in $values {
            q = match v {
                Value::Int(v) => q.bind(v),
                Value::Text(v) => q.bind(v),
                Value::OwnedText(v) => q.bind(v),
                Value::Bytes(v) => q.bind(v),
                Value::OwnedBytes(v) => q.bind(v),
            };
        }
        q
    }};
}

/// Runs `$run` (a method of sqlx's `Query`) on whichever engine `$exec` is.
macro_rules! run {
    ($self:expr, $exec:expr, |$q:ident, $e:ident| $run:expr) => {{
        let Query { sql, values } = $self;
        match $exec.into() {
            Exec::Pool(Pool::Sqlite($e)) => {
                let $q = bind_all!(sqlx::query::<Sqlite>(sql), values);
                $run
            }
            Exec::Pool(Pool::Postgres($e)) => {
                let $q = bind_all!(sqlx::query::<Postgres>(sql), values);
                $run
            }
            Exec::Tx(Tx::Sqlite(t)) => {
                let $e = &mut **t;
                let $q = bind_all!(sqlx::query::<Sqlite>(sql), values);
                $run
            }
            Exec::Tx(Tx::Postgres(t)) => {
                let $e = &mut **t;
                let $q = bind_all!(sqlx::query::<Postgres>(sql), values);
                $run
            }
        }
    }};
}

impl<'q> Query<'q> {
    /// Binds the next parameter.
    pub(crate) fn bind(mut self, value: impl Into<Value<'q>>) -> Self {
        self.values.push(value.into());
        self
    }

    /// Runs a statement that returns no rows.
    pub(crate) async fn execute<'e>(self, exec: impl Into<Exec<'e>>) -> Result<Done, sqlx::Error> {
        let rows = run!(self, exec, |q, e| q.execute(e).await?.rows_affected());
        Ok(Done { rows })
    }

    /// The first row, if any, as `T`.
    pub(crate) async fn fetch_optional<'e, T: Row>(
        self,
        exec: impl Into<Exec<'e>>,
    ) -> Result<Option<T>, sqlx::Error> {
        run!(self, exec, |q, e| match q.fetch_optional(e).await? {
            Some(row) => T::from_row(&row).map(Some),
            None => Ok(None),
        })
    }

    /// The one row, as `T` ([`sqlx::Error::RowNotFound`] if there is none).
    pub(crate) async fn fetch_one<'e, T: Row>(
        self,
        exec: impl Into<Exec<'e>>,
    ) -> Result<T, sqlx::Error> {
        self.fetch_optional(exec)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Every row, its columns read as `kinds` say (for copying rows whose types are known
    /// only from the schema).
    pub(crate) async fn fetch_values<'e>(
        self,
        exec: impl Into<Exec<'e>>,
        kinds: &[Kind],
    ) -> Result<Vec<Vec<Value<'static>>>, sqlx::Error> {
        run!(self, exec, |q, e| q
            .fetch_all(e)
            .await?
            .iter()
            .map(|row| decode_row(row, kinds))
            .collect())
    }

    /// Every row, as `T`.
    pub(crate) async fn fetch_all<'e, T: Row>(
        self,
        exec: impl Into<Exec<'e>>,
    ) -> Result<Vec<T>, sqlx::Error> {
        run!(self, exec, |q, e| q
            .fetch_all(e)
            .await?
            .iter()
            .map(T::from_row)
            .collect())
    }
}
