//! Scratch databases for analysis: in memory (with `temp_store=MEMORY`), never a file, with
//! `monk_uuid()` registered.

use std::path::PathBuf;

use rusqlite::Connection;

use crate::core::system;

fn scratch() -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch("PRAGMA temp_store=MEMORY;")?;
    system::register_functions(&conn)?;
    Ok(conn)
}

/// An in-memory database with the schema given as `CREATE` statements (from `sqlite_master`, in
/// creation order): never a file.
pub fn scratch_from_schema(schema: &[String]) -> rusqlite::Result<Connection> {
    let conn = scratch()?;
    for sql in schema {
        conn.execute_batch(sql)?;
    }
    Ok(conn)
}

/// An in-memory database at the baseline: the `system` fixture's schema and rows.
pub fn scratch_baseline() -> rusqlite::Result<Connection> {
    let conn = scratch()?;
    conn.execute_batch(system::SYSTEM_SQL)?;
    Ok(conn)
}

/// A label for a scratch database in errors.
pub fn scratch_path() -> PathBuf {
    PathBuf::from("<scratch copy in memory>")
}
