//! The infra database: the `tenants` and `tenant_fixtures` tables and their migrations.
//!
//! Owns every SQL statement against the infra database. Writes go through `BEGIN IMMEDIATE`
//! transactions; tables the API owns besides these (`processes`, `auth0_identity_mappings`) are
//! never touched.

use std::collections::HashMap;
use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::db::{self, Mode};
use super::error::{Context, Error, Result};
use super::fsutil;
use super::layout::Layout;

mod embedded {
    refinery::embed_migrations!("migrations/infra");
}

/// A row of `tenants`, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub db_type: String,
    pub database: String,
    pub schema: String,
    pub status: String,
    pub template_version: i64,
    pub description: Option<String>,
    pub source_template: Option<String>,
    pub owner_id: String,
    pub is_active: bool,
    // Times are printed in one form (`ids::iso_shown`), whichever the API or a column default
    // stored.
    #[serde(serialize_with = "crate::core::ids::serialize_iso")]
    pub created_at: String,
    #[serde(serialize_with = "crate::core::ids::serialize_iso")]
    pub updated_at: String,
    #[serde(serialize_with = "crate::core::ids::serialize_opt_iso")]
    pub trashed_at: Option<String>,
    #[serde(serialize_with = "crate::core::ids::serialize_opt_iso")]
    pub deleted_at: Option<String>,
}

impl TenantRow {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some() || self.status == "deleted"
    }

    pub fn is_trashed(&self) -> bool {
        self.trashed_at.is_some()
    }
}

/// A row of `tenant_fixtures`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FixtureRow {
    pub fixture_name: String,
    pub deployed_at: String,
    /// The deployed version (infra migration 2); `null` for rows the API or an older monkctl wrote.
    #[serde(default)]
    pub version: Option<String>,
}

/// A fixture deployed to a tenant as every output shows it (`tenant list`, `show`, `restore`):
/// the fixture's name is `fixture`, as everywhere else in monkctl's output.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeployedFixture {
    pub fixture: String,
    pub version: Option<String>,
    #[serde(serialize_with = "crate::core::ids::serialize_iso")]
    pub deployed_at: String,
}

impl From<FixtureRow> for DeployedFixture {
    fn from(f: FixtureRow) -> Self {
        DeployedFixture {
            fixture: f.fixture_name,
            version: f.version,
            deployed_at: f.deployed_at,
        }
    }
}

/// The values of `tenants.status` the API knows (Monk API 6).
pub const STATUSES: &[&str] = &["pending", "active", "suspended", "dissolving", "deleted"];

const TENANT_COLUMNS: &str = "id, name, db_type, database, schema, status, template_version, \
     description, source_template, owner_id, is_active, created_at, updated_at, trashed_at, deleted_at";

/// The same columns for a registry written by an API older than 6 (no `status` column), read
/// without changing it: the status is derived as the API derives it when it adds the column.
const LEGACY_TENANT_COLUMNS: &str = "id, name, db_type, database, schema, \
     CASE WHEN deleted_at IS NOT NULL THEN 'deleted' WHEN is_active = 1 THEN 'active' ELSE 'suspended' END, \
     template_version, description, source_template, owner_id, is_active, created_at, updated_at, \
     trashed_at, deleted_at";

fn tenant_from_row(r: &Row<'_>) -> rusqlite::Result<TenantRow> {
    Ok(TenantRow {
        id: r.get(0)?,
        name: r.get(1)?,
        db_type: r.get(2)?,
        database: r.get(3)?,
        schema: r.get(4)?,
        status: r.get(5)?,
        template_version: r.get(6)?,
        description: r.get(7)?,
        source_template: r.get(8)?,
        owner_id: r.get(9)?,
        is_active: r.get::<_, i64>(10)? != 0,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        trashed_at: r.get(13)?,
        deleted_at: r.get(14)?,
    })
}

/// Where a tenant's file is, and whether it is trashed or deleted (see `locations_after`).
#[derive(Debug, Clone)]
pub struct Location {
    pub name: String,
    pub database: String,
    pub schema: String,
    pub trashed: bool,
    pub deleted: bool,
    pub status: String,
}

/// An open infra database.
pub struct Registry {
    pub conn: Connection,
    pub path: PathBuf,
    /// The select list for tenant rows (derives `status` on a pre-6 registry opened to read).
    columns: &'static str,
}

impl Registry {
    /// Opens an existing infra database without creating or migrating anything. For commands
    /// that only read.
    pub fn open_existing(layout: &Layout) -> Result<Registry> {
        if !layout.infra_path.exists() {
            return Err(Error::NoInfra {
                data_dir: layout.data_dir.clone(),
                design: Layout::design_infra(&layout.data_dir, &layout.database_name),
                api: Layout::api_infra(&layout.data_dir, &layout.database_name),
            });
        }
        // Reading must not change the file nor lock the API out: one consistent copy in memory,
        // read from the quiet file or under a read transaction (see `db::read_quietly`).
        let conn = db::read_quietly(&layout.infra_path, db::copy_into_memory)?;
        let mut reg = Registry {
            conn,
            path: layout.infra_path.clone(),
            columns: TENANT_COLUMNS,
        };
        reg.check_is_registry()?;
        if !db::has_column(&reg.conn, "tenants", "status").at(&reg.path)? {
            reg.columns = LEGACY_TENANT_COLUMNS;
        }
        Ok(reg)
    }

    /// Opens the infra database for writing, creating the data directory and the database when
    /// missing, and bringing its schema up to date. Safe to call from many processes at once.
    pub fn open_for_write(layout: &Layout) -> Result<Registry> {
        let path = &layout.infra_path;
        if let Some(dir) = path.parent() {
            fsutil::create_private_dir(dir)?;
        }
        let conn = open_infra(path, Mode::Create)?;
        let mut reg = Registry {
            conn,
            path: path.clone(),
            columns: TENANT_COLUMNS,
        };
        if reg.pending_migrations()? {
            reg.migrate(layout)?;
        }
        Ok(reg)
    }

    fn check_is_registry(&self) -> Result<()> {
        if !db::has_table(&self.conn, "tenants").at(&self.path)? {
            let objects: i64 = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .at(&self.path)?;
            if objects == 0 {
                // What an init killed before its first transaction leaves: an empty file.
                return Err(Error::FileNotFound {
                    what: "registry in the infra database (the file is empty)",
                    path: self.path.clone(),
                    hint: "run `monkctl init` to create it".into(),
                });
            }
            if self.only_empty_history()? {
                // What an init that ran out of space leaves: refinery's history table, created
                // before the migrations' transaction, and nothing else.
                return Err(Error::FileNotFound {
                    what: "registry in the infra database (an init did not finish)",
                    path: self.path.clone(),
                    hint: "run `monkctl init` to finish it".into(),
                });
            }
            return Err(Error::Corrupt {
                path: self.path.clone(),
                detail: "it has no tenants table, so it is not a Monk infra database".into(),
            });
        }
        Ok(())
    }

    /// Whether the database holds nothing but refinery's history table, with no row.
    fn only_empty_history(&self) -> Result<bool> {
        let others: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE tbl_name <> 'refinery_schema_history'",
                [],
                |r| r.get(0),
            )
            .at(&self.path)?;
        if others > 0 {
            return Ok(false);
        }
        let applied: i64 = self
            .conn
            .query_row("SELECT count(*) FROM refinery_schema_history", [], |r| {
                r.get(0)
            })
            .at(&self.path)?;
        Ok(applied == 0)
    }

    fn applied_version(&self) -> Result<i64> {
        Ok(db::history_version(&self.conn).at(&self.path)?.unwrap_or(0))
    }

    /// The newest infra migration version built into this binary.
    pub fn latest_version() -> i64 {
        embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0)
    }

    fn pending_migrations(&self) -> Result<bool> {
        Ok(self.applied_version()? < Self::latest_version())
    }

    /// Adopts an API-created database (adds `status` when an older API left it out) and runs the
    /// embedded migrations in grouped mode, under a lock so that concurrent processes do not race.
    fn migrate(&mut self, layout: &Layout) -> Result<()> {
        let _lock = crate::core::lock::Lock::wait(
            &layout.infra_migrate_lock(),
            "monkctl: infra database migrations",
        )?;
        // Another process may have migrated while this one waited.
        if !self.pending_migrations()? {
            return Ok(());
        }
        self.add_status_column_if_missing()?;
        embedded::migrations::runner()
            .set_grouped(true)
            .set_abort_divergent(true)
            .set_abort_missing(false)
            .run(&mut self.conn)
            .map_err(|e| {
                // A full disk stays recognisable (exit 19) through refinery's wrapping.
                let sqlite = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<rusqlite::Error>())
                    .and_then(|s| Error::disk_full(&self.path, s));
                sqlite.unwrap_or_else(|| {
                    Error::Other(format!(
                        "{}: infra migration failed: {e}; the database was left as it was",
                        self.path.display()
                    ))
                })
            })?;
        Ok(())
    }

    /// Monk API 6 adds `status` at start when missing and fills it from `is_active`; so does this.
    fn add_status_column_if_missing(&mut self) -> Result<()> {
        let path = self.path.clone();
        let tx = self.conn.transaction().at(&path)?;
        if db::has_table(&tx, "tenants").at(&path)?
            && !db::has_column(&tx, "tenants", "status").at(&path)?
        {
            tx.execute_batch(
                "ALTER TABLE tenants ADD COLUMN status TEXT DEFAULT 'active' NOT NULL \
                   CHECK (status IN ('pending', 'active', 'suspended', 'dissolving', 'deleted'));
                 UPDATE tenants SET status = CASE
                   WHEN deleted_at IS NOT NULL THEN 'deleted'
                   WHEN is_active = 1 THEN 'active'
                   ELSE 'suspended' END;",
            )
            .at(&path)?;
        }
        tx.commit().at(&path)
    }

    /// The tenant named `name`, deleted ones included.
    pub fn find(&self, name: &str) -> Result<Option<TenantRow>> {
        find_in(&self.conn, self.columns, name).at(&self.path)
    }

    /// The tenant named `name`, or `TenantNotFound`.
    pub fn get(&self, name: &str) -> Result<TenantRow> {
        self.find(name)?
            .ok_or_else(|| Error::TenantNotFound(name.to_string()))
    }

    /// Every tenant row, ordered by name.
    pub fn all(&self) -> Result<Vec<TenantRow>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {} FROM tenants ORDER BY name",
                self.columns
            ))
            .at(&self.path)?;
        let rows = st.query_map([], tenant_from_row).at(&self.path)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().at(&self.path)
    }

    /// The name of the tenant whose row has this id, deleted ones included.
    pub fn name_of_id(&self, id: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT name FROM tenants WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
            .at(&self.path)
    }

    /// The `version` column of `tenant_fixtures`, or NULL on a registry that has none yet (one
    /// the API created, opened only to read).
    fn version_column(&self) -> Result<&'static str> {
        Ok(
            if db::has_column(&self.conn, "tenant_fixtures", "version").at(&self.path)? {
                "version"
            } else {
                "NULL"
            },
        )
    }

    /// The "is deleted" expression of this registry: a pre-6 registry has no `status` column.
    fn deleted_expr(&self) -> &'static str {
        if self.columns == LEGACY_TENANT_COLUMNS {
            "deleted_at IS NOT NULL"
        } else {
            "(deleted_at IS NOT NULL OR status = 'deleted')"
        }
    }

    /// Up to `limit` tenants whose name sorts after `after` ("" for the first page), by name,
    /// with only where their file is and their state: runs over large fleets read the registry
    /// a page at a time instead of holding every row.
    pub fn locations_after(&self, after: &str, limit: usize) -> Result<Vec<Location>> {
        let sql = format!(
            "SELECT name, database, schema, trashed_at IS NOT NULL, {}, status FROM tenants \
             WHERE name > ?1 ORDER BY name LIMIT ?2",
            self.deleted_expr()
        );
        let mut st = self.conn.prepare_cached(&sql).at(&self.path)?;
        let rows = st
            .query_map(params![after, limit as i64], |r| {
                Ok(Location {
                    name: r.get(0)?,
                    database: r.get(1)?,
                    schema: r.get(2)?,
                    trashed: r.get(3)?,
                    deleted: r.get(4)?,
                    status: r.get(5)?,
                })
            })
            .at(&self.path)?;
        rows.collect::<rusqlite::Result<_>>().at(&self.path)
    }

    /// How many tenants there are: (neither trashed nor deleted, trashed, deleted).
    pub fn count_states(&self) -> Result<(usize, usize, usize)> {
        let d = self.deleted_expr();
        let sql = format!(
            "SELECT coalesce(sum(trashed_at IS NULL AND NOT {d}), 0), \
             coalesce(sum(trashed_at IS NOT NULL AND NOT {d}), 0), \
             coalesce(sum({d}), 0) FROM tenants"
        );
        self.conn
            .query_row(&sql, [], |r| {
                Ok((
                    r.get::<_, i64>(0)? as usize,
                    r.get::<_, i64>(1)? as usize,
                    r.get::<_, i64>(2)? as usize,
                ))
            })
            .at(&self.path)
    }

    /// Deployed fixtures of every tenant, by tenant id, in deployment order.
    pub fn all_fixtures(&self) -> Result<HashMap<String, Vec<FixtureRow>>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT tenant_id, fixture_name, deployed_at, {} FROM tenant_fixtures \
                 ORDER BY tenant_id, deployed_at, fixture_name",
                self.version_column()?
            ))
            .at(&self.path)?;
        let mut map: HashMap<String, Vec<FixtureRow>> = HashMap::new();
        let mut rows = st.query([]).at(&self.path)?;
        while let Some(r) = rows.next().at(&self.path)? {
            map.entry(r.get(0).at(&self.path)?)
                .or_default()
                .push(FixtureRow {
                    fixture_name: r.get(1).at(&self.path)?,
                    deployed_at: r.get(2).at(&self.path)?,
                    version: r.get(3).at(&self.path)?,
                });
        }
        Ok(map)
    }

    /// Deployed fixtures of one tenant.
    pub fn fixtures_of(&self, tenant_id: &str) -> Result<Vec<FixtureRow>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT fixture_name, deployed_at, {} FROM tenant_fixtures WHERE tenant_id = ?1 \
                 ORDER BY deployed_at, fixture_name",
                self.version_column()?
            ))
            .at(&self.path)?;
        let rows = st
            .query_map([tenant_id], |r| {
                Ok(FixtureRow {
                    fixture_name: r.get(0)?,
                    deployed_at: r.get(1)?,
                    version: r.get(2)?,
                })
            })
            .at(&self.path)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().at(&self.path)
    }

    /// The recorded version of each deployed fixture of one tenant (`None` for rows without one,
    /// and for every row of an infra database that predates the `version` column).
    pub fn fixture_versions(&self, tenant_id: &str) -> Result<HashMap<String, Option<String>>> {
        if !db::has_column(&self.conn, "tenant_fixtures", "version").at(&self.path)? {
            return Ok(HashMap::new());
        }
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT fixture_name, version FROM tenant_fixtures WHERE tenant_id = ?1",
            )
            .at(&self.path)?;
        let rows = st
            .query_map([tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .at(&self.path)?;
        rows.collect::<rusqlite::Result<HashMap<_, _>>>()
            .at(&self.path)
    }

    /// Makes the following commits durable before they return (`synchronous=FULL`), for writes
    /// that files are moved after.
    pub fn durable(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA synchronous=FULL")
            .at(&self.path)
    }

    /// Runs `f` inside one `BEGIN IMMEDIATE` transaction; commits only if it returns `Ok`.
    pub fn write<T>(&mut self, f: impl FnOnce(&Writer<'_>) -> Result<T>) -> Result<T> {
        let path = self.path.clone();
        let tx = self.conn.transaction().at(&path)?;
        let out = f(&Writer {
            tx: &tx,
            path: &path,
        })?;
        tx.commit().at(&path)?;
        Ok(out)
    }
}

/// Opens the infra database. Closing the last connection would checkpoint the WAL (two fsyncs,
/// and a reader would rewrite the file); commits already checkpoint once the WAL passes 1,000
/// pages and the API checkpoints too, so a short-lived monkctl process leaves the WAL to them.
fn open_infra(path: &std::path::Path, mode: Mode) -> Result<Connection> {
    let conn = db::open(path, mode)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .at(path)?;
    Ok(conn)
}

fn find_in(conn: &Connection, columns: &str, name: &str) -> rusqlite::Result<Option<TenantRow>> {
    conn.prepare_cached(&format!("SELECT {columns} FROM tenants WHERE name = ?1"))?
        .query_row([name], tenant_from_row)
        .optional()
}

/// Writes inside an open registry transaction.
pub struct Writer<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    path: &'a PathBuf,
}

impl Writer<'_> {
    pub fn find(&self, name: &str) -> Result<Option<TenantRow>> {
        find_in(self.tx, TENANT_COLUMNS, name).at(self.path)
    }

    pub fn get(&self, name: &str) -> Result<TenantRow> {
        self.find(name)?
            .ok_or_else(|| Error::TenantNotFound(name.to_string()))
    }

    /// Whether any row already claims `<database>/<schema>`.
    pub fn location_claimed(&self, database: &str, schema: &str) -> Result<bool> {
        self.tx
            .prepare_cached("SELECT 1 FROM tenants WHERE database = ?1 AND schema = ?2")
            .and_then(|mut s| s.exists([database, schema]))
            .at(self.path)
    }

    /// Inserts a tenant's row. `updated_at` is `created_at` unless the row says otherwise (not
    /// the column's default, `datetime('now')`, whose form differs from every other time
    /// monkctl writes), as on PostgreSQL.
    pub fn insert(&self, t: &TenantRow) -> Result<()> {
        let updated = if t.updated_at.is_empty() {
            &t.created_at
        } else {
            &t.updated_at
        };
        self.tx
            .prepare_cached(
                "INSERT INTO tenants (id, name, db_type, database, schema, status, template_version, \
                 description, source_template, owner_id, is_active, created_at, trashed_at, deleted_at, \
                 updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    t.id,
                    t.name,
                    t.db_type,
                    t.database,
                    t.schema,
                    t.status,
                    t.template_version,
                    t.description,
                    t.source_template,
                    t.owner_id,
                    t.is_active as i64,
                    t.created_at,
                    t.trashed_at,
                    t.deleted_at,
                    updated,
                ])
            })
            .map(|_| ())
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => {
                    Error::TenantExists(t.name.clone())
                }
                _ => Error::sqlite(self.path, e),
            })
    }

    /// Sets the lifecycle columns of a tenant (`status`, `is_active`, `trashed_at`,
    /// `deleted_at`) and `updated_at`.
    pub fn update_state(&self, t: &TenantRow) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE tenants SET status = ?2, is_active = ?3, trashed_at = ?4, deleted_at = ?5, \
                 updated_at = ?6 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    t.id,
                    t.status,
                    t.is_active as i64,
                    t.trashed_at,
                    t.deleted_at,
                    t.updated_at
                ])
            })
            .map(|_| ())
            .at(self.path)
    }

    /// Records a deployed fixture (kept when already recorded).
    pub fn record_fixture(&self, tenant_id: &str, fixture: &str, deployed_at: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO tenant_fixtures (tenant_id, fixture_name, deployed_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (tenant_id, fixture_name) DO UPDATE SET deployed_at = excluded.deployed_at",
            )
            .and_then(|mut s| s.execute(params![tenant_id, fixture, deployed_at]))
            .map(|_| ())
            .at(self.path)
    }

    /// Removes a fixture's row (the tenant file does not hold that fixture).
    pub fn forget_fixture(&self, tenant_id: &str, fixture: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "DELETE FROM tenant_fixtures WHERE tenant_id = ?1 AND fixture_name = ?2",
            )
            .and_then(|mut s| s.execute(params![tenant_id, fixture]))
            .map(|_| ())
            .at(self.path)
    }

    /// Sets the version of a recorded fixture (the `version` column of infra migration 2).
    pub fn set_fixture_version(&self, tenant_id: &str, fixture: &str, version: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE tenant_fixtures SET version = ?3 WHERE tenant_id = ?1 AND fixture_name = ?2",
            )
            .and_then(|mut s| s.execute(params![tenant_id, fixture, version]))
            .map(|_| ())
            .at(self.path)
    }

    /// Sets what a tenant's row says about its database content, after that content was
    /// replaced (a restore over an existing tenant): owner, template, `updated_at`.
    pub fn update_content_info(&self, t: &TenantRow) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE tenants SET owner_id = ?2, template_version = ?3, source_template = ?4, \
                 updated_at = ?5 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    t.id,
                    t.owner_id,
                    t.template_version,
                    t.source_template,
                    t.updated_at
                ])
            })
            .map(|_| ())
            .at(self.path)
    }

    /// Forgets every recorded fixture of a tenant (its content was replaced; the new content's
    /// fixtures are recorded next, in the same transaction).
    pub fn clear_fixtures(&self, tenant_id: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM tenant_fixtures WHERE tenant_id = ?1")
            .and_then(|mut s| s.execute([tenant_id]))
            .map(|_| ())
            .at(self.path)
    }

    /// The underlying transaction, for core modules that extend the registry.
    pub fn tx(&self) -> &rusqlite::Transaction<'_> {
        self.tx
    }
}

impl super::backend::RegistryWriter for Writer<'_> {
    fn find(&self, name: &str) -> Result<Option<TenantRow>> {
        Writer::find(self, name)
    }

    fn location_claimed(&self, database: &str, schema: &str) -> Result<bool> {
        Writer::location_claimed(self, database, schema)
    }

    fn insert(&self, t: &TenantRow) -> Result<()> {
        Writer::insert(self, t)
    }

    fn update_state(&self, t: &TenantRow) -> Result<()> {
        Writer::update_state(self, t)
    }

    fn record_fixture(&self, tenant_id: &str, fixture: &str, deployed_at: &str) -> Result<()> {
        Writer::record_fixture(self, tenant_id, fixture, deployed_at)
    }

    fn forget_fixture(&self, tenant_id: &str, fixture: &str) -> Result<()> {
        Writer::forget_fixture(self, tenant_id, fixture)
    }

    fn set_fixture_version(&self, tenant_id: &str, fixture: &str, version: &str) -> Result<()> {
        Writer::set_fixture_version(self, tenant_id, fixture, version)
    }

    fn update_content_info(&self, t: &TenantRow) -> Result<()> {
        Writer::update_content_info(self, t)
    }

    fn clear_fixtures(&self, tenant_id: &str) -> Result<()> {
        Writer::clear_fixtures(self, tenant_id)
    }
}
