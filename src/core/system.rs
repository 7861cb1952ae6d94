//! The built-in `system` fixture: the tenant schema and rows Monk API 6.2 writes, and building a
//! new tenant database file from it.
//!
//! Builds only private temporary files; placing them and registering the tenant is `tenant`'s job.

use std::path::Path;

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection};

use super::db;
use super::error::{Context, Result};
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

/// Builds a complete tenant database at `path` (a new file) at the latest version of the
/// deployment's migration `set`, with `owner` as its owner; returns the owner id.
pub fn build(path: &Path, owner: &str, set: &MigrationSet) -> Result<String> {
    let mut conn = db::open_build(path)?;
    // A private file being built: an error discards it, so no rollback is needed.
    conn.execute_batch("BEGIN").at(path)?;
    set.execute_schema(&mut conn, path, super::guard::STATEMENT_TIMEOUT)?;
    let owner_id = add_owner(&conn, owner).at(path)?;
    conn.execute_batch("COMMIT").at(path)?;
    db::finish_build(conn, path)?;
    Ok(owner_id)
}
