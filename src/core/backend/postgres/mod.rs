//! The PostgreSQL driver: a registry in schema `public` and a schema `ns_tenant_<name>` per
//! tenant, in the one database `DATABASE_URL` names (see the README's PostgreSQL section).
//!
//! Owns every statement monkctl sends to PostgreSQL. What it promises:
//! - Sessions run with time zone UTC (the API stores UTC wall-clock time in `timestamp` columns)
//!   and a `lock_timeout`, so monkctl never queues forever behind the API.
//! - Registry transactions are short: the API takes an ACCESS EXCLUSIVE lock on `tenants` at every
//!   tenant lookup, so any lock monkctl holds on it makes the API's requests wait. A transaction
//!   touches `tenants` only at its end, after the tenant work it commits with.
//! - A tenant appears whole or not at all: its schema, tables, seed rows and registry row commit
//!   in one transaction.
//! - The password is handed to the driver only; every message names host, database and schema.
//!
//! The parts: this file (the target and its connections, errors, the registry's reads and
//! short writes), `create` (tenant schemas in batches), `writer` (`RegistryWriter`), `infra` (the
//! registry's own migrations) and `dump` (`pg_dump` and `psql` of a schema).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use postgres::{Client, Config, NoTls, Row, Transaction};

use crate::core::config::PgUrl;
use crate::core::error::{exit, Error, Result};
use crate::core::migrate::MigrationSet;
use crate::core::registry::{FixtureRow, TenantRow};
use crate::core::tenant::CreateSpec;
use crate::core::{ids, system};

use super::RegistryWriter;

mod create;
mod dump;
mod infra;
mod writer;

pub(crate) use create::{insert_fixture_rows, insert_row, schema_exists_error};
pub use dump::*;
pub use infra::*;
use writer::*;

mod embedded {
    refinery::embed_migrations!("migrations/infra-postgres");
}

/// The tenant DDL and seed rows of Monk API 6.2 on PostgreSQL, run with `search_path` set to the
/// new tenant's schema alone.
pub const SYSTEM_SQL: &str = include_str!("../../sql/postgres/system.sql");

/// The version of the `system` fixture on PostgreSQL, as `tenant_fixtures.version` records it.
pub fn system_version() -> String {
    crate::core::fixture::checksum_hex(SYSTEM_SQL.as_bytes())
}

/// How long a monkctl statement waits for a lock before it gives up (exit 5).
const LOCK_TIMEOUT: &str = "5s";

/// Where a PostgreSQL deployment is: the parsed URL and the driver's configuration.
pub struct Target {
    pub url: PgUrl,
    config: Config,
    /// `host:port`, for messages.
    pub host: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("url", &self.url).finish()
    }
}

impl Target {
    pub fn new(url: &PgUrl) -> Result<Target> {
        let mut config: Config = url.url.parse().map_err(|e| {
            Error::Usage(format!(
                "DATABASE_URL '{}' is not a valid PostgreSQL URL: {e}",
                url.redacted
            ))
        })?;
        if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("monkctl");
        config.ssl_mode(match url.sslmode.as_str() {
            "disable" => postgres::config::SslMode::Disable,
            "prefer" => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        let host = match (config.get_hosts().first(), config.get_ports().first()) {
            (Some(postgres::config::Host::Tcp(h)), Some(p)) => format!("{h}:{p}"),
            (Some(postgres::config::Host::Tcp(h)), None) => format!("{h}:5432"),
            (Some(postgres::config::Host::Unix(p)), _) => p.display().to_string(),
            (None, _) => "localhost:5432".to_string(),
        };
        Ok(Target {
            url: url.clone(),
            config,
            host,
        })
    }

    /// `PostgreSQL HOST:PORT/DATABASE[, schema S]`: where an error happened.
    pub fn at(&self, schema: Option<&str>) -> String {
        match schema {
            Some(s) => format!("PostgreSQL {}/{}, schema {s}", self.host, self.url.database),
            None => format!("PostgreSQL {}/{}", self.host, self.url.database),
        }
    }

    /// A new session: time zone UTC, a bounded lock wait.
    pub fn connect(&self) -> Result<Client> {
        let connected = if self.url.sslmode == "disable" {
            self.config.connect(NoTls)
        } else {
            self.config.connect(super::tls::connector(&self.url)?)
        };
        let mut client = connected.map_err(|e| self.error(None, e))?;
        client
            .batch_execute(&format!(
                "SET TIME ZONE 'UTC'; SET lock_timeout = '{LOCK_TIMEOUT}'; SET search_path TO public"
            ))
            .map_err(|e| self.error(None, e))?;
        Ok(client)
    }

    /// The error `e` at `schema` (or the database), with the exit code a user can act on.
    pub fn error(&self, schema: Option<&str>, e: postgres::Error) -> Error {
        error_at(self.at(schema), &self.url, e)
    }
}

/// Turns a driver error into monkctl's: the one place SQLSTATEs become exit codes.
fn error_at(target: String, url: &PgUrl, e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let (exit, hint) = match code {
            "28P01" | "28000" => (
                exit::PERMISSION,
                "the server refused the login: check the user and password of DATABASE_URL (or PGPASSWORD)".to_string(),
            ),
            "3D000" => (
                exit::NOT_FOUND,
                format!(
                    "create the database first (`createdb {}`) or name an existing one in DATABASE_URL",
                    url.database
                ),
            ),
            "42501" => (
                exit::PERMISSION,
                "the user lacks a privilege this needs: connect as the database's owner".into(),
            ),
            "23505" => (exit::CONFLICT, String::new()),
            "55P03" | "40P01" | "40001" => (
                exit::BUSY,
                "another session holds a lock this needs; retry when it is done".into(),
            ),
            "57014" => (exit::STATEMENT_TIMEOUT, String::new()),
            "53100" => (exit::DISK_FULL, String::new()),
            "53300" | "57P01" | "57P02" | "57P03" => (
                exit::UNREACHABLE,
                "the server is shutting down, starting or out of connections; retry later".into(),
            ),
            _ => (exit::FAILURE, String::new()),
        };
        let mut detail = format!("{} (SQLSTATE {code})", db.message());
        if let Some(d) = db.detail() {
            detail.push_str(&format!("; {d}"));
        }
        if !hint.is_empty() {
            detail.push_str(&format!("; {hint}"));
        }
        return Error::Postgres {
            target,
            detail,
            exit,
        };
    }
    // Not the server's answer: the connection failed or went away.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !detail.contains(&text) {
            detail.push_str(&format!(": {text}"));
        }
        source = s.source();
    }
    let detail = detail.replace(&url.url, &url.redacted);
    Error::Postgres {
        target,
        detail: format!(
            "{detail}; check that the server runs and that DATABASE_URL names its host and port"
        ),
        exit: exit::UNREACHABLE,
    }
}

/// Every schema of the database (the names operator SQL may not reach but its tenant's own).
pub fn schemas(client: &mut impl postgres::GenericClient, target: &Target) -> Result<Vec<String>> {
    Ok(client
        .query("SELECT nspname::text FROM pg_namespace", &[])
        .map_err(|e| target.error(None, e))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// `"name"`: an identifier quoted for SQL. Names reach here validated (`names::tenant`); the
/// quoting keeps a hand-edited registry row from becoming SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`: a string literal for SQL (for a name that must appear as a value in a statement
/// built for many schemas at once; names reach here validated).
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A `timestamp` column as the API's ISO form (UTC, milliseconds, `Z`).
macro_rules! iso {
    ($col:literal) => {
        concat!("to_char(", $col, ", 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
    };
}

const TENANT_COLUMNS: &str = concat!(
    "id::text, name::text, db_type::text, database::text, schema::text, status::text, ",
    "template_version::int8, description, source_template::text, owner_id::text, is_active, ",
    iso!("created_at"),
    ", ",
    iso!("updated_at"),
    ", ",
    iso!("trashed_at"),
    ", ",
    iso!("deleted_at")
);

fn tenant_from_row(r: &Row) -> TenantRow {
    TenantRow {
        id: r.get(0),
        name: r.get(1),
        db_type: r.get(2),
        database: r.get(3),
        schema: r.get(4),
        status: r.get(5),
        template_version: r.get(6),
        description: r.get(7),
        source_template: r.get(8),
        owner_id: r.get(9),
        is_active: r.get(10),
        created_at: r.get(11),
        updated_at: r.get(12),
        trashed_at: r.get(13),
        deleted_at: r.get(14),
    }
}

/// An open PostgreSQL registry: one session.
pub struct Registry {
    pub client: Client,
    pub target: Arc<Target>,
    /// Whether `tenant_fixtures` has monkctl's `version` column (infra migration 2).
    has_version: bool,
}

impl Registry {
    /// Opens the registry of an existing deployment without creating or changing anything.
    pub fn open_existing(target: &Arc<Target>) -> Result<Registry> {
        let mut client = target.connect()?;
        let row = client
            .query_one(
                "SELECT to_regclass('public.tenants') IS NOT NULL, \
                 EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' \
                   AND table_name = 'tenant_fixtures' AND column_name = 'version')",
                &[],
            )
            .map_err(|e| target.error(None, e))?;
        if !row.get::<_, bool>(0) {
            return Err(Error::Postgres {
                target: target.at(None),
                detail: "no tenant registry here (no table public.tenants): run `monkctl init` to create one, or name the API's database in DATABASE_URL".into(),
                exit: exit::NOT_FOUND,
            });
        }
        Ok(Registry {
            client,
            target: target.clone(),
            has_version: row.get(1),
        })
    }

    /// Opens the registry for writing: creates it, or brings an API-made one up to date (the
    /// API's tables are created with `IF NOT EXISTS`, so nothing of the API's changes).
    pub fn open_for_write(target: &Arc<Target>) -> Result<Registry> {
        let mut client = target.connect()?;
        migrate_infra(target, &mut client)?;
        Ok(Registry {
            client,
            target: target.clone(),
            has_version: true,
        })
    }

    fn err(&self, e: postgres::Error) -> Error {
        self.target.error(None, e)
    }

    pub fn find(&mut self, name: &str) -> Result<Option<TenantRow>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM public.tenants WHERE name = $1");
        let row = self
            .client
            .query_opt(&sql, &[&name])
            .map_err(|e| self.err(e))?;
        Ok(row.as_ref().map(tenant_from_row))
    }

    pub fn all(&mut self) -> Result<Vec<TenantRow>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM public.tenants ORDER BY name");
        let rows = self.client.query(&sql, &[]).map_err(|e| self.err(e))?;
        Ok(rows.iter().map(tenant_from_row).collect())
    }

    fn fixtures_sql(&self, filter: &str) -> String {
        format!(
            "SELECT tenant_id::text, fixture_name::text, {}, {} FROM public.tenant_fixtures {filter} \
             ORDER BY tenant_id, deployed_at, fixture_name",
            iso!("deployed_at"),
            if self.has_version { "version" } else { "NULL::text" }
        )
    }

    pub fn all_fixtures(&mut self) -> Result<HashMap<String, Vec<FixtureRow>>> {
        let sql = self.fixtures_sql("");
        let rows = self.client.query(&sql, &[]).map_err(|e| self.err(e))?;
        let mut map: HashMap<String, Vec<FixtureRow>> = HashMap::new();
        for r in rows {
            map.entry(r.get(0)).or_default().push(fixture_from_row(&r));
        }
        Ok(map)
    }

    /// The name of the tenant whose row has id `id`.
    pub fn name_of_id(&mut self, id: &str) -> Result<Option<String>> {
        Ok(self
            .client
            .query_opt(
                "SELECT name::text FROM public.tenants WHERE id::text = $1",
                &[&id],
            )
            .map_err(|e| self.err(e))?
            .map(|r| r.get(0)))
    }

    pub fn fixtures_of(&mut self, tenant_id: &str) -> Result<Vec<FixtureRow>> {
        let sql = self.fixtures_sql("WHERE tenant_id = $1::text::uuid");
        let rows = self
            .client
            .query(&sql, &[&tenant_id])
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(fixture_from_row).collect())
    }

    /// Runs `f` in one transaction; commits only if it returns `Ok`.
    pub fn write<T>(&mut self, f: impl FnOnce(&dyn RegistryWriter) -> Result<T>) -> Result<T> {
        let target = self.target.clone();
        let tx = self
            .client
            .transaction()
            .map_err(|e| target.error(None, e))?;
        let w = Writer {
            tx: RefCell::new(tx),
            target: &target,
        };
        let out = f(&w)?;
        w.tx.into_inner()
            .commit()
            .map_err(|e| target.error(None, e))?;
        Ok(out)
    }

    /// The names of every tenant-like schema (`ns_tenant_*`) of the database.
    pub fn tenant_schemas(&mut self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'ns\\_tenant\\_%' ORDER BY 1",
                &[],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub fn schema_exists(&mut self, schema: &str) -> Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&schema],
            )
            .map_err(|e| self.err(e))?;
        Ok(row.get(0))
    }

    /// The bytes of every tenant schema's tables (with their indexes and TOAST), by schema.
    pub fn schema_sizes(&mut self) -> Result<HashMap<String, u64>> {
        let rows = self
            .client
            .query(
                "SELECT n.nspname::text, sum(pg_total_relation_size(c.oid))::int8 \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname LIKE 'ns\\_tenant\\_%' AND c.relkind IN ('r', 'm', 'p') \
                 GROUP BY 1",
                &[],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
            .collect())
    }

    /// The owner's name and each table's row count in a tenant's schema, read in one snapshot.
    /// Plain reads take only ACCESS SHARE locks, which the API's writes never wait for.
    pub fn read_content(
        &mut self,
        schema: &str,
        owner_id: &str,
    ) -> Result<(Option<String>, Vec<crate::core::db::TableCount>)> {
        let target = self.target.clone();
        let err = |e| target.error(Some(schema), e);
        let mut tx = self
            .client
            .build_transaction()
            .read_only(true)
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .start()
            .map_err(err)?;
        let tables: Vec<String> = tx
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.oid",
                &[&schema],
            )
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut counts = Vec::with_capacity(tables.len());
        for t in tables {
            let n: i64 = tx
                .query_one(
                    &format!("SELECT count(*) FROM {}.{}", ident(schema), ident(&t)),
                    &[],
                )
                .map_err(err)?
                .get(0);
            counts.push(crate::core::db::TableCount { table: t, rows: n });
        }
        let owner = if counts.iter().any(|c| c.table == "users") {
            tx.query_opt(
                &format!(
                    "SELECT name::text FROM {}.users WHERE id::text = $1",
                    ident(schema)
                ),
                &[&owner_id],
            )
            .map_err(err)?
            .map(|r| r.get(0))
        } else {
            None
        };
        tx.commit().map_err(err)?;
        Ok((owner, counts))
    }

    /// The infra migration version this registry is at (0: none of monkctl's yet, as on a
    /// registry the API made) and the newest one this binary has.
    pub fn infra_versions(&mut self) -> Result<(i64, i64)> {
        let applied = infra::applied_version(&self.target, &mut self.client)?;
        Ok((applied, latest_version()))
    }

    /// Every column of the tables of every tenant schema: (schema, table, column, type,
    /// nullable), in one catalog read.
    pub fn tenant_columns(&mut self) -> Result<Vec<Column>> {
        self.columns_where("n.nspname LIKE 'ns\\_tenant\\_%'")
    }

    fn columns_where(&mut self, filter: &str) -> Result<Vec<Column>> {
        let sql = format!(
            "SELECT n.nspname::text, c.relname::text, a.attname::text, \
               format_type(a.atttypid, a.atttypmod), NOT a.attnotnull \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {filter} AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY 1, 2, a.attnum"
        );
        let rows = self.client.query(&sql, &[]).map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| Column {
                schema: r.get(0),
                table: r.get(1),
                column: r.get(2),
                type_name: r.get(3),
                nullable: r.get(4),
            })
            .collect())
    }

    /// The columns a tenant made now has (`SYSTEM_SQL`), read from a scratch schema built in a
    /// transaction that is rolled back: nothing of it is ever visible to another session.
    pub fn reference_columns(&mut self) -> Result<Vec<Column>> {
        let target = self.target.clone();
        let scratch = format!("monkctl_reference_{}", std::process::id());
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| target.error(None, e))?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA {s}; SET LOCAL search_path TO {s}; {SYSTEM_SQL}",
            s = ident(&scratch)
        ))
        .map_err(|e| target.error(None, e))?;
        let sql = "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
               NOT a.attnotnull \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 \
               AND NOT a.attisdropped ORDER BY 1, a.attnum";
        let rows = tx
            .query(sql, &[&scratch])
            .map_err(|e| target.error(None, e))?;
        tx.rollback().map_err(|e| target.error(None, e))?;
        Ok(rows
            .iter()
            .map(|r| Column {
                schema: String::new(),
                table: r.get(0),
                column: r.get(1),
                // A type of the tenant's own schema (`field_type`) is named bare in both.
                type_name: r.get::<_, String>(2).replace(&format!("{scratch}."), ""),
                nullable: r.get(3),
            })
            .collect())
    }

    /// Whether the tenant's `users` table holds its owner.
    pub fn owner_present(&mut self, schema: &str, owner_id: &str) -> Result<bool> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {}.users WHERE id::text = $1)",
            ident(schema)
        );
        let row = self
            .client
            .query_one(&sql, &[&owner_id])
            .map_err(|e| self.target.error(Some(schema), e))?;
        Ok(row.get(0))
    }

    /// `VACUUM (ANALYZE)` of every table of a tenant's schema, each waiting at most `wait` for
    /// its lock (exit 5 when another session holds one).
    pub fn vacuum_schema(&mut self, schema: &str, wait: Duration) -> Result<()> {
        let target = self.target.clone();
        let err = |e| target.error(Some(schema), e);
        let tables: Vec<String> = self
            .client
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'm') ORDER BY 1",
                &[&schema],
            )
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        self.client
            .batch_execute(&format!("SET lock_timeout = {}", wait.as_millis().max(1)))
            .map_err(err)?;
        let mut result = Ok(());
        for t in tables {
            let sql = format!("VACUUM (ANALYZE) {}.{}", ident(schema), ident(&t));
            if let Err(e) = self.client.batch_execute(&sql) {
                result = Err(err(e));
                break;
            }
        }
        self.client
            .batch_execute(&format!("SET lock_timeout = '{LOCK_TIMEOUT}'"))
            .map_err(err)?;
        result
    }

    /// Drops a tenant's schema and everything in it (for `purge`, after its archive is written).
    /// Renames the tenant schema `schema`, which no registry row claims, to
    /// `monk_orphan_<name>_<unix seconds>` (the name no longer taken, nothing dropped), in one
    /// transaction that checks again, under the lock that `ALTER SCHEMA` takes, that no row
    /// claims it. Returns the new name. Names reach here from `pg_namespace` and are quoted.
    pub fn set_schema_aside(&mut self, schema: &str) -> Result<String> {
        let target = self.target.clone();
        let fail = |e| target.error(Some(schema), e);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let bare = schema.strip_prefix("ns_tenant_").unwrap_or(schema);
        // PostgreSQL keeps the first 63 bytes of a name: the tenant's part is cut to fit.
        let keep = 63 - "monk_orphan__".len() - stamp.to_string().len();
        let cut: String = bare.chars().take(keep).collect();
        let to = format!("monk_orphan_{cut}_{stamp}");
        let mut tx = self.client.transaction().map_err(fail)?;
        tx.batch_execute(&format!(
            "ALTER SCHEMA {} RENAME TO {}",
            ident(schema),
            ident(&to)
        ))
        .map_err(fail)?;
        let claimed: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM public.tenants WHERE schema = $1)",
                &[&schema],
            )
            .map_err(fail)?
            .get(0);
        if claimed {
            return Err(Error::Conflict(format!(
                "a registry row claims {schema} now; left alone"
            )));
        }
        tx.commit().map_err(fail)?;
        Ok(to)
    }

    pub fn drop_schema(&mut self, schema: &str) -> Result<()> {
        self.client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", ident(schema)))
            .map_err(|e| self.target.error(Some(schema), e))
    }
}

/// A column of a table, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub schema: String,
    pub table: String,
    pub column: String,
    /// `format_type` of the column's type (`uuid`, `text[]`, `character varying(255)`...).
    pub type_name: String,
    pub nullable: bool,
}

fn fixture_from_row(r: &Row) -> FixtureRow {
    FixtureRow {
        fixture_name: r.get(1),
        deployed_at: r.get(2),
        version: r.get(3),
    }
}
