//! The built-in `system` fixture: the tenant schema and rows Monk API 6.2 writes, and building a
//! new tenant database file from it.
//!
//! Builds only private temporary files; placing them and registering the tenant is `tenant`'s job.

use std::path::Path;

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, OpenFlags};

use super::error::{Context, Result};
use super::fsutil;
use super::ids;
use super::migrate::MigrationSet;

/// The SQL of the `system` fixture. Its checksum identifies the fixture's version.
pub const SYSTEM_SQL: &str = include_str!("sql/system.sql");

/// The root user's fixed id.
pub const ROOT_USER_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Registers `monk_uuid()` (a fresh UUID v4 per call) on a connection.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function("monk_uuid", 0, FunctionFlags::SQLITE_UTF8, |_| {
        Ok(ids::uuid_v4())
    })
}

/// Adds the owner user the way the API does: `root` is the built-in root user; any other name
/// gets its own row with a fresh id, access `root`. Returns the owner's id for `tenants.owner_id`.
pub fn add_owner(conn: &Connection, owner: &str) -> rusqlite::Result<String> {
    if owner == "root" {
        return Ok(ROOT_USER_ID.to_string());
    }
    let id = ids::uuid_v4();
    conn.execute(
        "INSERT INTO users (id, name, auth, access) VALUES (?1, ?2, ?2, 'root')",
        params![id, owner],
    )?;
    Ok(id)
}

/// Opens a new private file for building a tenant database: the rollback journal in memory (no
/// journal file, yet `ROLLBACK TO` a savepoint in a fixture undoes what it should, exactly as on a
/// live tenant), no syncing (the caller syncs the finished file once), foreign keys on,
/// `monk_uuid()` registered.
pub fn open_build(path: &Path) -> Result<Connection> {
    fsutil::create_private_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .at(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF; PRAGMA foreign_keys=ON;",
    )
    .at(path)?;
    register_functions(&conn).at(path)?;
    Ok(conn)
}

/// Finishes a built database: switches it to WAL (persistent in the file header, as the API
/// expects) and closes it (no `-wal` is left). It does not sync: whoever places the file makes it
/// durable first (`tenant::create_one` syncs it, `tenant::create_many` syncs a whole batch at once).
pub fn finish_build(conn: Connection, path: &Path) -> Result<()> {
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .at(path)?;
    conn.close().map_err(|(_, e)| e).at(path)
}

/// Builds a complete tenant database at `path` (a new file) at the latest version of the
/// deployment's migration `set`, with `owner` as its owner; returns the owner id.
pub fn build(path: &Path, owner: &str, set: &MigrationSet) -> Result<String> {
    let mut conn = open_build(path)?;
    // A private file being built: an error discards it, so no rollback is needed.
    conn.execute_batch("BEGIN").at(path)?;
    set.execute_schema(&mut conn, path, super::guard::STATEMENT_TIMEOUT)?;
    let owner_id = add_owner(&conn, owner).at(path)?;
    conn.execute_batch("COMMIT").at(path)?;
    finish_build(conn, path)?;
    Ok(owner_id)
}
