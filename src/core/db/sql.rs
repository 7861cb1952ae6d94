//! Small SQL helpers: quoting, the user tables and their row counts, whether a column exists.

use rusqlite::Connection;

/// Rows of one table, for reports (`tenant show`, `tenant usage`, `archive inspect`).
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
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
