//! Moving a store to another engine (`cloud-runtime migrate-store`): every row of every
//! table, in one transaction on the target, into a database that holds nothing yet.

use super::db::{Exec, Kind, Pool, query};
use super::{Store, StoreError};

/// A table of the schema and its columns.
#[derive(Debug, PartialEq, Eq)]
struct Table {
    name: String,
    columns: Vec<(String, Kind)>,
}

/// How many rows of a table were copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The table.
    pub table: String,
    /// Its rows, now in both stores.
    pub rows: u64,
}

/// Tables the runtime derives from others (the audit search index, from the chains):
/// not copied, since the target's runtime fills them from what was.
const DERIVED: &[&str] = &["audit_index"];

/// Whether `name` is an identifier the schema would use (so it can go into SQL text as is).
fn plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The tables of the store's schema (not the migrations' own), `tenants` first: every
/// other table that refers to another refers to it.
async fn tables(pool: &Pool) -> Result<Vec<Table>, StoreError> {
    let (list_tables, list_columns) = match pool {
        Pool::Sqlite(_) => (
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
            "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
        ),
        Pool::Postgres(_) => (
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name <> '_sqlx_migrations' ORDER BY table_name",
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        ),
    };
    let names = query(list_tables).fetch_all::<(String,)>(pool).await?;
    let mut tables = Vec::with_capacity(names.len());
    for (name,) in names {
        if !plain_identifier(&name) {
            return Err(StoreError::Corrupt(format!(
                "the schema has a table named {name:?}"
            )));
        }
        let mut columns = Vec::new();
        for (column, declared) in query(list_columns)
            .bind(name.as_str())
            .fetch_all::<(String, String)>(pool)
            .await?
        {
            let kind = Kind::of(&declared).filter(|_| plain_identifier(&column));
            let Some(kind) = kind else {
                return Err(StoreError::Corrupt(format!(
                    "column {column:?} of table {name} has type {declared:?}, which the store does not use"
                )));
            };
            columns.push((column, kind));
        }
        tables.push(Table { name, columns });
    }
    // Derived tables are rebuilt by the runtime on the target, from what is copied.
    tables.retain(|t| !DERIVED.contains(&t.name.as_str()));
    tables.sort_by_key(|t| t.name != "tenants");
    Ok(tables)
}

/// The number of rows of `table`.
async fn count<'e>(exec: impl Into<Exec<'e>>, table: &str) -> Result<i64, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
    Ok(query(sql).fetch_one::<(i64,)>(exec).await?.0)
}

impl Store {
    /// Copies every row of this store into `target`, which must be empty and have the same
    /// schema (both opened by this binary, so both are migrated to its version). The copy
    /// reads one snapshot of this store and is one transaction on the target: it lands
    /// whole or not at all. Returns the rows per table, counted again on the target.
    pub async fn copy_into(&self, target: &Store) -> Result<Vec<Copied>, StoreError> {
        let schema = tables(&self.pool).await?;
        if tables(&target.pool).await? != schema {
            return Err(StoreError::Corrupt(
                "the two databases' schemas differ (tables, columns or their types)".into(),
            ));
        }
        for table in &schema {
            let rows = count(&target.pool, &table.name).await?;
            if rows > 0 {
                return Err(StoreError::TargetNotEmpty {
                    table: table.name.clone(),
                    rows,
                });
            }
        }
        let mut source = self.pool.begin().await?;
        let mut into = target.pool.begin().await?;
        let mut copied = Vec::with_capacity(schema.len());
        for table in &schema {
            let names: Vec<&str> = table.columns.iter().map(|(c, _)| c.as_str()).collect();
            let kinds: Vec<Kind> = table.columns.iter().map(|(_, k)| *k).collect();
            let select =
                sqlx::AssertSqlSafe(format!("SELECT {} FROM {}", names.join(", "), table.name));
            let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let insert = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.name,
                names.join(", "),
                placeholders.join(", ")
            );
            let rows = query(select).fetch_values(&mut source, &kinds).await?;
            for row in &rows {
                let mut q = query(sqlx::AssertSqlSafe(insert.as_str()));
                for value in row {
                    q = q.bind(value.clone());
                }
                q.execute(&mut into).await?;
            }
            copied.push(Copied {
                table: table.name.clone(),
                rows: rows.len() as u64,
            });
        }
        into.commit().await?;
        drop(source);
        for c in &copied {
            let rows = count(&target.pool, &c.table).await?;
            if u64::try_from(rows).ok() != Some(c.rows) {
                return Err(StoreError::Corrupt(format!(
                    "{} holds {rows} rows after copying {}",
                    c.table, c.rows
                )));
            }
        }
        Ok(copied)
    }
}

#[cfg(test)]
mod tests {
    use shared::identity::{ConnectorId, TenantId};

    use super::*;
    use crate::store::test_store;

    #[test]
    fn only_plain_identifiers_go_into_sql() {
        assert!(plain_identifier("oauth_refresh"));
        for bad in ["", "users; DROP TABLE tenants", "Users", "a\"b", "a b"] {
            assert!(!plain_identifier(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn every_row_moves_and_a_second_copy_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let from = Store::open(&dir.path().join("from.db")).await.unwrap();
        let t: TenantId = "acme".parse().unwrap();
        let c: ConnectorId = "c1".parse().unwrap();
        from.create_tenant(&t).await.unwrap();
        from.create_join_token("h", &t, &c, from.now_ms() + 60_000)
            .await
            .unwrap();
        from.complete_enrollment("h", &t, &c, "01", from.now_ms() + 86_400_000)
            .await
            .unwrap();
        from.record_certificate(&c, "01", &[0x30, 0x82, 0x00, 0xff])
            .await
            .unwrap();
        // The other engine where the tests have one, else another SQLite file.
        let to_dir = tempfile::tempdir().unwrap();
        let to = test_store(to_dir.path()).await;
        let copied = from.copy_into(&to).await.unwrap();
        assert_eq!(copied.first().map(|c| c.table.as_str()), Some("tenants"));
        let rows = |name: &str| copied.iter().find(|c| c.table == name).map(|c| c.rows);
        assert_eq!(rows("tenants"), Some(1));
        assert_eq!(rows("join_tokens"), Some(1));
        assert_eq!(rows("connectors"), Some(1));
        let moved = to.connector(&c).await.unwrap().unwrap();
        let original = from.connector(&c).await.unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&moved).unwrap(),
            serde_json::to_value(&original).unwrap()
        );
        let certs = to.issued_certificates(&c).await.unwrap().unwrap();
        assert_eq!(certs.cert_der, Some(vec![0x30, 0x82, 0x00, 0xff]));
        assert!(matches!(
            from.copy_into(&to).await,
            Err(StoreError::TargetNotEmpty { table, rows: 1 }) if table == "tenants"
        ));
    }
}
