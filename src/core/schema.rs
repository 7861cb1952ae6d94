//! Tenant schema versions: the embedded tenant migrations (`migrations/tenant/`) and how a tenant
//! database tells its version.
//!
//! Version 1 is the Monk API 6.2 baseline. A database without migration history that has the
//! system tables is at the baseline (that is how the API leaves it); `tenant create` records the
//! history of the deployment's whole migration set (`migrate::MigrationSet::execute_schema`).

use rusqlite::Connection;

use super::db;

pub(crate) mod embedded {
    refinery::embed_migrations!("migrations/tenant");
}

/// The version of the Monk API 6.2 baseline: the `system` fixture, `V1__api_6_2_baseline.sql`.
pub const BASELINE_VERSION: i64 = 1;

/// The refinery history table, in the infra database and in migrated tenant databases.
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// The embedded tenant migrations, in version order. A deployment's schema is these plus the
/// operator's: ask `Workspace::migration_set`, never these alone.
pub fn tenant_migrations() -> Vec<refinery::Migration> {
    let mut m = embedded::migrations::runner().get_migrations().clone();
    m.sort_by_key(|m| m.version());
    m
}

/// The schema version of an open tenant database: the highest version in its migration
/// history, else 1 when it holds the system tables (the baseline), else 0 (not a tenant).
pub fn tenant_version(conn: &Connection) -> rusqlite::Result<i64> {
    // An empty history says nothing: such a tenant is judged from its tables, as one without.
    if let Some(v) = db::history_version(conn)? {
        return Ok(v);
    }
    let system_tables = db::has_table(conn, "models")? && db::has_table(conn, "users")?;
    Ok(if system_tables { BASELINE_VERSION } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_system_tenant_is_at_the_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        super::super::system::build(&p, "root", &super::super::migrate::MigrationSet::builtin())
            .unwrap();
        let conn = Connection::open(&p).unwrap();
        assert_eq!(tenant_version(&conn).unwrap(), 1);
        let empty = Connection::open_in_memory().unwrap();
        assert_eq!(tenant_version(&empty).unwrap(), 0);
    }
}
