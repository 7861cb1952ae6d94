//! Small SQL helpers every module uses instead of writing the statement again: quoting, the user
//! tables and their row counts, whether a table or a column exists, and the migration version a
//! database's history records.

use rusqlite::Connection;

use crate::core::schema::HISTORY_TABLE;

/// Rows of one table, for reports (`tenant show`, `tenant usage`, `archive inspect`).
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    #[serde(rename = "row_count")]
    pub rows: i64,
}

/// The row count of every user table, in creation order.
pub fn table_counts(conn: &Connection) -> rusqlite::Result<Vec<TableCount>> {
    user_tables(conn)?
        .into_iter()
        .map(|t| {
            let rows = conn.query_row(
                &format!("SELECT count(*) FROM {}", quote_ident(&t)),
                [],
                |r| r.get(0),
            )?;
            Ok(TableCount { table: t, rows })
        })
        .collect()
}

/// Quotes an SQL identifier (for table names read back from `sqlite_master`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Names of the user tables of a database, in creation order (no `sqlite_%` tables).
pub fn user_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
    )?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Whether `table` has a column named `column`.
pub fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut st = conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?;
    st.exists([table, column])
}

/// Whether the database has a table named `name` (compared as SQLite compares names in
/// `sqlite_master`: exactly).
pub fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists([name])
}

/// The highest version in the database's migration history (refinery's
/// `refinery_schema_history`, in the infra database and in migrated tenants); `None` when it has
/// no history table, or no row in it. The infra database counts that as version 0; a tenant
/// without history is judged from its tables instead (`schema::tenant_version`).
pub fn history_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    if !has_table(conn, HISTORY_TABLE)? {
        return Ok(None);
    }
    conn.query_row(
        &format!("SELECT max(version) FROM {HISTORY_TABLE}"),
        [],
        |r| r.get(0),
    )
}
