//! Archives of PostgreSQL tenants, and restores into a PostgreSQL deployment.
//!
//! `extract` of a tenant schema writes the same single-file SQLite archive as a SQLite tenant's
//! (`crossing` says how each value is written), read in one `REPEATABLE READ` snapshot, so it is
//! consistent while the API writes. The archive's tables are those of the deployment's
//! migration set at the tenant's schema version (the SQLite half of each migration), plus a
//! table per user model made as the API's SQLite backend makes it from its `models` and `fields`
//! rows. The metadata records the source backend and every column's PostgreSQL type; numerics
//! whose digits a REAL does not reproduce are kept in `crossing::EXACT_TABLE`.
//!
//! `restore` into PostgreSQL builds the schema as `tenant create` does (the API's DDL, then the
//! PostgreSQL half of each migration up to the archive's version), adds each user model's table
//! as the API's PostgreSQL backend makes it, empties the seed, and loads every table with
//! `COPY`, then the registry row: all in one transaction, so the tenant exists whole or not at
//! all. `restore --force` saves the tenant it replaces first (an archive in the trash, read in
//! the same transaction after its tables were locked against writers) and replaces it in that
//! transaction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{IsolationLevel, Transaction};
use rusqlite::{Connection, OptionalExtension};

use super::crossing::{self, Field, Kind, EXACT_DDL, EXACT_TABLE};
use super::{
    content_of, judged, metadata_of, open_archive, open_scratch, place, verify_file,
    write_metadata, Extracted, Metadata, RestoreMode, RestoreOptions, Restored, FORMAT_NAME,
    META_TABLE,
};
use crate::core::backend::postgres::{ident, insert_fixture_rows, insert_row, Registry, Target};
use crate::core::db;
use crate::core::error::{Context, Error, Result};
use crate::core::fsutil;
use crate::core::guard;
use crate::core::ids;
use crate::core::layout::Layout;
use crate::core::lock;
use crate::core::migrate::MigrationSet;
use crate::core::names;
use crate::core::registry::{FixtureRow, TenantRow};
use crate::core::schema::{self, HISTORY_TABLE};
use crate::core::Workspace;

/// The archive format of an archive made from PostgreSQL: it carries `EXACT_TABLE` and the
/// PostgreSQL facts, which an older monkctl would not drop on a restore.
pub const FORMAT_VERSION_POSTGRES: i64 = 2;

/// The columns every user model table starts with.
const STANDARD_COLUMNS: [&str; 9] = [
    "id",
    "access_read",
    "access_edit",
    "access_full",
    "access_deny",
    "created_at",
    "updated_at",
    "trashed_at",
    "deleted_at",
];

/// A column of a PostgreSQL table.
#[derive(Debug, Clone)]
struct PgColumn {
    name: String,
    /// `format_type`: `numeric`, `timestamp without time zone`, `text[]`.
    ty: String,
    kind: Kind,
}

fn unconvertible(table: &str, row: &str, column: &str, detail: impl Into<String>) -> Error {
    Error::Unconvertible {
        table: table.to_string(),
        row: row.to_string(),
        column: column.to_string(),
        detail: detail.into(),
    }
}

/// Every table of `schema` with its columns in order.
fn catalog(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
) -> Result<BTreeMap<String, Vec<PgColumn>>> {
    let rows = tx
        .query(
            "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    t.typname::text, t.typcategory::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             JOIN pg_type t ON t.oid = a.atttypid \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname, a.attnum",
            &[&schema],
        )
        .map_err(|e| target.error(Some(schema), e))?;
    let mut out: BTreeMap<String, Vec<PgColumn>> = BTreeMap::new();
    for r in rows {
        let table: String = r.get(0);
        let typname: String = r.get(3);
        let category: String = r.get(4);
        out.entry(table).or_default().push(PgColumn {
            name: r.get(1),
            ty: r.get(2),
            kind: Kind::of(&typname, &category),
        });
    }
    Ok(out)
}

/// The tables of an archive (or archive being built) and their columns, in order: not the
/// metadata, the exact values or SQLite's own.
fn sqlite_tables(conn: &Connection, path: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let names: Vec<String> = {
        let mut st = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN (?1, ?2) \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )
            .at(path)?;
        let rows = st
            .query_map([META_TABLE, EXACT_TABLE], |r| r.get(0))
            .at(path)?;
        rows.collect::<rusqlite::Result<_>>().at(path)?
    };
    let mut out = BTreeMap::new();
    for n in names {
        let mut st = conn
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
            .at(path)?;
        let cols = st
            .query_map([&n], |r| r.get(0))
            .at(path)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .at(path)?;
        out.insert(n, cols);
    }
    Ok(out)
}

/// `fields` rows of a model: name to (type, required).
type FieldRows = HashMap<String, (String, bool)>;

/// The fields of a user model in its table's column order: each column after the standard
/// ones, typed by its `fields` row.
fn model_fields(
    table: &str,
    columns: &[String],
    rows: &FieldRows,
    recorded: Option<&BTreeMap<String, String>>,
) -> Result<Vec<Field>> {
    let mut out = Vec::new();
    for c in columns
        .iter()
        .filter(|c| !STANDARD_COLUMNS.contains(&c.as_str()))
    {
        match rows.get(c) {
            Some((ft, required)) => out.push(Field {
                name: c.clone(),
                ftype: ft.clone(),
                required: *required,
            }),
            None => {
                // A column without a `fields` row: its PostgreSQL type, when the archive
                // recorded it, is the only honest answer.
                let Some(ty) = recorded.and_then(|r| r.get(c)) else {
                    return Err(unconvertible(
                        table,
                        "",
                        c,
                        "the column has no `fields` row, so the type the API would give it is unknown; add the field to the model (or drop the column) and extract again",
                    ));
                };
                out.push(Field {
                    name: c.clone(),
                    ftype: format!("pg:{ty}"),
                    required: false,
                });
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Extract.
// ---------------------------------------------------------------------------------------------

/// `extract` of the PostgreSQL tenant `t` to `final_path`, in a snapshot of its own.
pub(super) fn extract(
    target: &Arc<Target>,
    set: &MigrationSet,
    t: &TenantRow,
    final_path: &Path,
    force: bool,
) -> Result<Extracted> {
    let final_path = super::output_path(final_path, force)?;
    let mut client = target.connect()?;
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|e| target.error(None, e))?;
    // The registry row and fixtures as of the snapshot the content is read in.
    let row = crate::core::backend::postgres::find_in(&mut tx, target, &t.name)?
        .ok_or_else(|| Error::TenantNotFound(t.name.clone()))?;
    let fixtures = crate::core::backend::postgres::fixtures_in(&mut tx, target, &row.id)?;
    write_archive(&mut tx, target, set, &row, &fixtures, &final_path, force)
}

/// Writes the archive of tenant `t` (schema `t.schema`) as `tx` sees it.
fn write_archive(
    tx: &mut Transaction<'_>,
    target: &Target,
    set: &MigrationSet,
    t: &TenantRow,
    fixtures: &[FixtureRow],
    final_path: &Path,
    force: bool,
) -> Result<Extracted> {
    let schema = t.schema.as_str();
    let err = |e| target.error(Some(schema), e);
    tx.batch_execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'")
        .map_err(err)?;
    let tables = catalog(tx, target, schema)?;
    if !tables.contains_key("models") || !tables.contains_key("users") {
        return Err(Error::Postgres {
            target: target.at(Some(schema)),
            detail: format!(
                "tenant '{}' has no tenant schema here (no tables models and users in {schema}); run `monkctl doctor`",
                t.name
            ),
            exit: crate::core::error::exit::NOT_FOUND,
        });
    }
    // The history, and the version it gives.
    let history: Vec<(i64, String, String, String)> = if tables.contains_key(HISTORY_TABLE) {
        tx.query(
            &format!(
                "SELECT version::int8, coalesce(name, '')::text, coalesce(applied_on, '')::text, \
                 coalesce(checksum, '')::text FROM {}.{HISTORY_TABLE} ORDER BY version",
                ident(schema)
            ),
            &[],
        )
        .map_err(err)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
    } else {
        Vec::new()
    };
    let version = history
        .last()
        .map(|h| h.0)
        .unwrap_or(schema::BASELINE_VERSION);
    if version > set.latest() {
        return Err(Error::Diverged(format!(
            "tenant '{}' is at schema version {version}, newer than the deployment's migrations ({}, latest {}): extract it with the migration set it was migrated with (--migrations)",
            t.name,
            set.origin(),
            set.latest()
        )));
    }

    let (mut tmp, _held) = fsutil::TempFile::held(final_path)?;
    let tmp_path = tmp.path().to_path_buf();
    let shown = final_path.display().to_string();
    let built = (|| -> Result<_> {
        let mut conn = open_scratch(&tmp_path)?;
        crate::core::system::register_functions(&conn).at(&tmp_path)?;
        // The deployment's SQLite schema at the tenant's version, without its seed rows.
        // Rows go in table by table, whatever references what (the snapshot is consistent).
        conn.execute_batch("PRAGMA foreign_keys=OFF; BEGIN").at(&tmp_path)?;
        set.execute_schema_to(&mut conn, &tmp_path, version, guard::STATEMENT_TIMEOUT)?;
        let built = sqlite_tables(&conn, &tmp_path)?;
        for name in built.keys() {
            conn.execute_batch(&format!("DELETE FROM {}", db::quote_ident(name)))
                .at(&tmp_path)?;
        }
        if history.is_empty() {
            conn.execute_batch(&format!("DROP TABLE {HISTORY_TABLE}"))
                .at(&tmp_path)?;
        }
        conn.execute_batch(EXACT_DDL).at(&tmp_path)?;
        // A table per user model, as the API's SQLite backend makes it.
        for (table, cols) in tables.iter().filter(|(n, _)| !built.contains_key(*n)) {
            let rows = pg_field_rows(tx, target, schema, table)?;
            if rows.is_empty() && !model_exists(tx, target, schema, table)? {
                return Err(unconvertible(
                    table,
                    "",
                    "",
                    format!(
                        "the table is neither the API's nor a model's (no `models` row) nor made by a migration of the set at version {version}; drop it or add the migration that makes it"
                    ),
                ));
            }
            let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            let fields = model_fields(table, &names, &rows, None)?;
            let ddl = crossing::sqlite_model_ddl(table, &fields)
                .map_err(|(c, d)| unconvertible(table, "", &c, d))?;
            conn.execute_batch(&ddl).at(&tmp_path)?;
        }
        let archive_tables = sqlite_tables(&conn, &tmp_path)?;
        for (table, cols) in &tables {
            let acols = &archive_tables[table];
            copy_table_out(tx, target, schema, table, cols, acols, &conn, &tmp_path)?;
        }
        // The history as the SQLite side records it: each version's SQLite checksum when the
        // set has that migration under that name (else as it was, which `verify` reports).
        if !history.is_empty() {
            conn.execute_batch(&format!("DELETE FROM {HISTORY_TABLE}"))
                .at(&tmp_path)?;
            let mut st = conn
                .prepare(&format!(
                    "INSERT INTO {HISTORY_TABLE} (version, name, applied_on, checksum) VALUES (?1, ?2, ?3, ?4)"
                ))
                .at(&tmp_path)?;
            for (v, name, applied, sum) in &history {
                let sum = match set.get(*v) {
                    Some(m) if &m.name == name && sum == &m.pg_checksum.to_string() => {
                        m.checksum.to_string()
                    }
                    _ => sum.clone(),
                };
                st.execute(rusqlite::params![v, name, applied, sum])
                    .at(&tmp_path)?;
            }
        }
        sequences_out(tx, target, schema, &tables, &conn, &tmp_path)?;
        conn.execute_batch("COMMIT").at(&tmp_path)?;
        let jm: String = conn
            .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
            .at(&tmp_path)?;
        if !jm.eq_ignore_ascii_case("delete") {
            return Err(Error::Other(format!(
                "{}: journal_mode stayed '{jm}'",
                tmp_path.display()
            )));
        }
        let content = content_of(&conn, &tmp_path)?;
        let schema_version = schema::tenant_version(&conn).at(&tmp_path)?;
        let columns: BTreeMap<String, BTreeMap<String, String>> = tables
            .iter()
            .map(|(t, cols)| {
                (
                    t.clone(),
                    cols.iter().map(|c| (c.name.clone(), c.ty.clone())).collect(),
                )
            })
            .collect();
        let meta = Metadata {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION_POSTGRES,
            tenant: t.clone(),
            fixtures: fixtures.to_vec(),
            schema_version,
            created_at: ids::now_iso(),
            host: lock::hostname(),
            monkctl_version: env!("CARGO_PKG_VERSION").into(),
            row_counts: content.row_counts.clone(),
            checksum: content.checksum.clone(),
            source_backend: Some("postgresql".into()),
            postgres_columns: Some(columns),
        };
        write_metadata(&mut conn, &meta, &tmp_path)?;
        conn.close().map_err(|(_, e)| e).at(&tmp_path)?;
        fsutil::sync_file(&tmp_path)?;
        Ok((content, schema_version))
    })()
    .map_err(|e| e.renamed(&tmp_path, &shown));
    let (content, schema_version) = built?;
    place(&tmp_path, final_path, force)?;
    tmp.disarm();
    Ok(Extracted {
        tenant: t.name.clone(),
        size_bytes: fsutil::size_of(final_path).unwrap_or(0),
        path: final_path.to_path_buf(),
        schema_version,
        checksum: content.checksum,
        tables: content.row_counts.len(),
        rows: content.row_counts.values().sum(),
    })
}

fn pg_field_rows(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    model: &str,
) -> Result<FieldRows> {
    Ok(tx
        .query(
            &format!(
                "SELECT field_name::text, type::text, coalesce(required, false) FROM {}.fields \
                 WHERE model_name = $1",
                ident(schema)
            ),
            &[&model],
        )
        .map_err(|e| target.error(Some(schema), e))?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect())
}

fn model_exists(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    model: &str,
) -> Result<bool> {
    Ok(tx
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {}.models WHERE model_name = $1)",
                ident(schema)
            ),
            &[&model],
        )
        .map_err(|e| target.error(Some(schema), e))?
        .get(0))
}

/// Copies one table of the snapshot into the archive, row by row (the rows stream from the
/// server; memory stays flat whatever the table's size).
#[allow(clippy::too_many_arguments)]
fn copy_table_out(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    table: &str,
    cols: &[PgColumn],
    archive_cols: &[String],
    conn: &Connection,
    path: &Path,
) -> Result<()> {
    if let Some(c) = cols.iter().find(|c| !archive_cols.contains(&c.name)) {
        return Err(unconvertible(
            table,
            "",
            &c.name,
            format!(
                "the SQLite form of the table (the API's, or the SQLite half of the migration set) has no such column ({}); give the migration that adds it a SQLite half",
                c.ty
            ),
        ));
    }
    let select: Vec<String> = cols
        .iter()
        .map(|c| c.kind.select_expr(&ident(&c.name)))
        .collect();
    // `tracked` keeps its change order (its SQLite rowid); other tables in the server's order.
    let order = if table == "tracked" && cols.iter().any(|c| c.name == "change_id") {
        " ORDER BY change_id"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {} FROM {}.{}{order}",
        select.join(", "),
        ident(schema),
        ident(table)
    );
    let names: Vec<String> = cols.iter().map(|c| db::quote_ident(&c.name)).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let mut insert = conn
        .prepare(&format!(
            "INSERT INTO {} ({}) VALUES ({})",
            db::quote_ident(table),
            names.join(", "),
            marks.join(", ")
        ))
        .at(path)?;
    let mut exact = conn
        .prepare(&format!(
            "INSERT INTO {EXACT_TABLE} (tbl, rid, col, value) VALUES (?1, ?2, ?3, ?4)"
        ))
        .at(path)?;
    let err = |e| target.error(Some(schema), e);
    let mut rows = tx
        .query_raw(
            &sql,
            std::iter::empty::<&(dyn postgres::types::ToSql + Sync)>(),
        )
        .map_err(err)?;
    let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(cols.len());
    let mut exacts: Vec<(usize, String)> = Vec::new();
    while let Some(r) = rows.next().map_err(err)? {
        values.clear();
        exacts.clear();
        for (i, c) in cols.iter().enumerate() {
            use rusqlite::types::Value as V;
            let v = match c.kind {
                Kind::Int => r.get::<_, Option<i64>>(i).map_or(V::Null, V::Integer),
                Kind::Bool => r
                    .get::<_, Option<bool>>(i)
                    .map_or(V::Null, |b| V::Integer(b as i64)),
                Kind::Float => r.get::<_, Option<f64>>(i).map_or(V::Null, V::Real),
                Kind::Bytea => r
                    .get::<_, Option<&[u8]>>(i)
                    .map_or(V::Null, |b| V::Blob(b.to_vec())),
                Kind::Numeric => match r.get::<_, Option<&str>>(i) {
                    None => V::Null,
                    Some(s) => {
                        let (x, same) = crossing::numeric_as_real(s);
                        if !same {
                            exacts.push((i, s.to_string()));
                        }
                        x.map_or(V::Null, V::Real)
                    }
                },
                Kind::Timestamp => r
                    .get::<_, Option<&str>>(i)
                    .map_or(V::Null, |s| V::Text(crossing::api_timestamp(s))),
                Kind::Json => r
                    .get::<_, Option<&str>>(i)
                    .map_or(V::Null, |s| V::Text(crossing::compact_json(s))),
                Kind::Array | Kind::Text => r
                    .get::<_, Option<&str>>(i)
                    .map_or(V::Null, |s| V::Text(s.to_string())),
            };
            values.push(v);
        }
        insert
            .execute(rusqlite::params_from_iter(values.iter()))
            .map_err(|e| unconvertible(table, &row_label(cols, &values), "", e.to_string()))?;
        if !exacts.is_empty() {
            let rid = conn.last_insert_rowid();
            for (i, text) in &exacts {
                exact
                    .execute(rusqlite::params![table, rid, cols[*i].name, text])
                    .at(path)?;
            }
        }
    }
    Ok(())
}

/// How a row is named in a message: its `id`, else its values' start.
fn row_label(cols: &[PgColumn], values: &[rusqlite::types::Value]) -> String {
    cols.iter()
        .position(|c| c.name == "id")
        .and_then(|i| match &values[i] {
            rusqlite::types::Value::Text(s) => Some(s.clone()),
            rusqlite::types::Value::Integer(n) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "(without id)".into())
}

/// Each AUTOINCREMENT table of the archive gets the value of its column's PostgreSQL sequence
/// (`sqlite_sequence`), so that ids handed out after a move continue where they stood.
fn sequences_out(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    tables: &BTreeMap<String, Vec<PgColumn>>,
    conn: &Connection,
    path: &Path,
) -> Result<()> {
    for (table, col) in autoincrement_columns(conn, path)? {
        if !tables.contains_key(&table) {
            continue;
        }
        let seq: Option<String> = tx
            .query_one(
                "SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3)",
                &[&schema, &table, &col],
            )
            .map_err(|e| target.error(Some(schema), e))?
            .get(0);
        let Some(seq) = seq else { continue };
        let r = tx
            .query_one(&format!("SELECT last_value, is_called FROM {seq}"), &[])
            .map_err(|e| target.error(Some(schema), e))?;
        let last: i64 = r.get(0);
        let called: bool = r.get(1);
        let value = if called { last } else { last - 1 };
        conn.execute(
            "DELETE FROM sqlite_sequence WHERE name = ?1",
            rusqlite::params![table],
        )
        .at(path)?;
        if value > 0 {
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                rusqlite::params![table, value],
            )
            .at(path)?;
        }
    }
    Ok(())
}

/// The archive's AUTOINCREMENT tables and their INTEGER PRIMARY KEY column.
fn autoincrement_columns(conn: &Connection, path: &Path) -> Result<Vec<(String, String)>> {
    let has_seq: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .at(path)?
        > 0;
    if !has_seq {
        return Ok(Vec::new());
    }
    let mut st = conn
        .prepare(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.sql LIKE '%AUTOINCREMENT%' AND p.pk = 1 \
             AND upper(p.type) = 'INTEGER'",
        )
        .at(path)?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).at(path)?;
    rows.collect::<rusqlite::Result<_>>().at(path)
}

// ---------------------------------------------------------------------------------------------
// Restore.
// ---------------------------------------------------------------------------------------------

/// `restore` into a PostgreSQL deployment (see the module's header).
pub(super) fn restore(
    ws: &Workspace,
    target: &Arc<Target>,
    archive: &Path,
    opts: &RestoreOptions,
) -> Result<Restored> {
    if let Some(n) = &opts.as_name {
        names::tenant(n)?;
    }
    let meta = metadata_of(archive)?;
    let set = ws.migration_set()?;
    let standing = judged(archive, set, meta.schema_version)
        .map_err(|e| verify_file(archive).err().unwrap_or(e))?;
    let archived_name = meta.tenant.name.clone();
    let name = opts
        .as_name
        .clone()
        .unwrap_or_else(|| archived_name.clone());
    let renamed = name != archived_name;
    let mut reg = Registry::open_for_write(target)?;
    let current = check_target(&mut reg, &name, renamed, opts.force, &meta, ws)?;
    if let Some(cur) = &current {
        if cur.db_type != "postgresql" {
            return Err(Error::Unsupported(format!(
                "tenant '{name}' is a SQLite tenant of this registry (db_type '{}'); restoring over it is not supported here: restore with --as NEW_NAME",
                cur.db_type
            )));
        }
    }
    let schema_name = Layout::schema_for(&name);
    let others: Vec<String> = crate::core::backend::postgres::schemas(&mut reg.client, target)?
        .into_iter()
        .filter(|s| *s != schema_name)
        .collect();
    let trash = ws.layout.trash_dir();
    let saved_path = current.as_ref().map(|cur| {
        trash.join(format!(
            "{}.{}.{}-{}{}",
            cur.schema,
            cur.id,
            ids::file_stamp(SystemTime::now()),
            &ids::uuid_v4()[..8],
            super::BEFORE_RESTORE_SUFFIX
        ))
    });
    let database = target.url.database.clone();
    let mut tx = reg
        .client
        .transaction()
        .map_err(|e| target.error(None, e))?;
    let err = |e| target.error(Some(&schema_name), e);
    tx.batch_execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'")
        .map_err(err)?;
    // The full verification reads the archive on another core while the schema is built; the
    // transaction commits only once it has passed.
    let outcome = std::thread::scope(|s| -> Result<(TenantRow, Vec<String>)> {
        let verify = s.spawn(|| super::verified_as(archive, &meta));
        let built = (|| -> Result<(TenantRow, Vec<String>)> {
            // What is replaced is saved first, as it is under the lock that keeps writers out.
            if let (Some(cur), Some(saved)) = (&current, &saved_path) {
                let live = crate::core::backend::postgres::find_in(&mut tx, target, &cur.name)?
                    .ok_or_else(|| Error::TenantNotFound(cur.name.clone()))?;
                let live_version = live_version(&mut tx, target, &cur.schema)?;
                if standing.version < live_version && !opts.migrate {
                    return Err(Error::Conflict(format!(
                        "the archive holds tenant '{}' at schema version {}, older than the tenant here (version {live_version}): restoring it would roll the tenant's schema back; pass --migrate to bring the restored content up to the deployment's migrations, or --as NEW_NAME to restore it beside",
                        cur.name, standing.version
                    )));
                }
                lock_schema(&mut tx, target, &cur.schema)?;
                fsutil::create_private_dir(&trash)?;
                let fixtures =
                    crate::core::backend::postgres::fixtures_in(&mut tx, target, &cur.id)?;
                write_archive(&mut tx, target, set, &live, &fixtures, saved, false)?;
                tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", ident(&cur.schema)))
                    .map_err(|e| target.error(Some(&cur.schema), e))?;
            }
            load(
                &mut tx,
                target,
                set,
                archive,
                &meta,
                &schema_name,
                &others,
                standing.version,
            )?;
            let fixture_names: Vec<String> = meta
                .fixtures
                .iter()
                .map(|f| f.fixture_name.clone())
                .collect();
            tx.batch_execute("SET LOCAL search_path TO public")
                .map_err(err)?;
            let row = match &current {
                None => {
                    let now = ids::now_iso();
                    let row = TenantRow {
                        id: if renamed {
                            ids::uuid_v4()
                        } else {
                            meta.tenant.id.clone()
                        },
                        name: name.clone(),
                        db_type: "postgresql".into(),
                        database: database.clone(),
                        schema: schema_name.clone(),
                        status: if meta.tenant.status == "suspended" {
                            "suspended".into()
                        } else {
                            "active".into()
                        },
                        template_version: meta.tenant.template_version,
                        description: meta.tenant.description.clone(),
                        source_template: meta.tenant.source_template.clone(),
                        owner_id: meta.tenant.owner_id.clone(),
                        is_active: true,
                        created_at: if renamed {
                            now.clone()
                        } else {
                            meta.tenant.created_at.clone()
                        },
                        updated_at: now,
                        trashed_at: None,
                        deleted_at: None,
                    };
                    insert_row(&mut tx, target, &row)?;
                    row
                }
                Some(cur) => {
                    let mut row = cur.clone();
                    row.owner_id = meta.tenant.owner_id.clone();
                    row.template_version = meta.tenant.template_version;
                    row.source_template = meta.tenant.source_template.clone();
                    row.updated_at = ids::now_iso();
                    tx.execute(
                        "UPDATE public.tenants SET owner_id = $2::text::uuid, template_version = $3::int8::int4, \
                         source_template = $4, updated_at = $5::text::timestamp WHERE id = $1::text::uuid",
                        &[&row.id, &row.owner_id, &row.template_version, &row.source_template, &row.updated_at],
                    )
                    .map_err(|e| target.error(None, e))?;
                    tx.execute(
                        "DELETE FROM public.tenant_fixtures WHERE tenant_id = $1::text::uuid",
                        &[&row.id],
                    )
                    .map_err(|e| target.error(None, e))?;
                    row
                }
            };
            let fixture_rows: Vec<(&str, &str, &str, String)> = meta
                .fixtures
                .iter()
                .map(|f| {
                    (
                        row.id.as_str(),
                        f.fixture_name.as_str(),
                        f.deployed_at.as_str(),
                        f.version.clone().unwrap_or_default(),
                    )
                })
                .collect();
            insert_fixture_rows(&mut tx, target, &fixture_rows)?;
            Ok((row, fixture_names))
        })();
        let verified = super::joined(verify.join(), "verifying the archive");
        // A problem with the archive is the one to report.
        verified?;
        built
    });
    let (row, fixtures) = match outcome {
        Ok(v) => v,
        Err(e) => {
            drop(tx);
            if let Some(saved) = &saved_path {
                let _ = std::fs::remove_file(saved);
            }
            return Err(e);
        }
    };
    crate::core::pause_point("restore.pg.loaded");
    tx.commit().map_err(|e| {
        if let Some(saved) = &saved_path {
            let _ = std::fs::remove_file(saved);
        }
        target.error(None, e)
    })?;
    let tenant = reg.find(&row.name)?.unwrap_or(row);
    Ok(Restored {
        archive: archive.to_path_buf(),
        mode: if current.is_some() {
            RestoreMode::Replaced
        } else {
            RestoreMode::Created
        },
        tenant,
        path: None,
        previous_saved_to: saved_path,
        pages: None,
        schema_version: standing.version,
        needs_migration: standing.needs_migration,
        fixtures,
    })
}

/// As the SQLite `check_target`, against the PostgreSQL registry.
fn check_target(
    reg: &mut Registry,
    name: &str,
    renamed: bool,
    force: bool,
    meta: &Metadata,
    ws: &Workspace,
) -> Result<Option<TenantRow>> {
    match reg.find(name)? {
        None => {
            if !renamed {
                let other: Option<String> = reg
                    .client
                    .query_opt(
                        "SELECT name::text FROM public.tenants WHERE id::text = $1",
                        &[&meta.tenant.id],
                    )
                    .map_err(|e| reg.target.error(None, e))?
                    .map(|r| r.get(0));
                if let Some(other) = other {
                    return Err(Error::OtherTenant(format!(
                        "the archive's tenant id {} belongs to tenant '{other}' here, not to a tenant named '{name}'; restore it as a new tenant with --as NEW_NAME",
                        meta.tenant.id
                    )));
                }
            }
            Ok(None)
        }
        Some(current) => {
            if !renamed && current.id != meta.tenant.id {
                return Err(Error::OtherTenant(format!(
                    "the archive holds tenant '{}' with id {}, but the tenant '{name}' here has id {}: it is another tenant; pass --as {name} --force to replace it anyway, or --as NEW_NAME to restore beside it",
                    meta.tenant.name, meta.tenant.id, current.id
                )));
            }
            if !force {
                return Err(Error::Conflict(format!(
                    "tenant '{name}' exists; pass --force to replace its content with the archive (its current content is saved to {} first), or --as NEW_NAME to restore beside it",
                    ws.layout.trash_dir().display()
                )));
            }
            if current.is_deleted() {
                return Err(Error::Conflict(format!(
                    "tenant '{name}' is deleted; a deleted tenant is not restored over: restore the archive as a new tenant with --as NEW_NAME"
                )));
            }
            Ok(Some(current))
        }
    }
}

/// The schema version of a live tenant schema: its history's highest, else the baseline.
fn live_version(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<i64> {
    let err = |e| target.error(Some(schema), e);
    let has: bool = tx
        .query_one(
            &format!("SELECT to_regclass(format('%I.{HISTORY_TABLE}', $1::text)) IS NOT NULL"),
            &[&schema],
        )
        .map_err(err)?
        .get(0);
    if !has {
        return Ok(schema::BASELINE_VERSION);
    }
    let v: Option<i64> = tx
        .query_one(
            &format!(
                "SELECT max(version)::int8 FROM {}.{HISTORY_TABLE}",
                ident(schema)
            ),
            &[],
        )
        .map_err(err)?
        .get(0);
    Ok(v.unwrap_or(schema::BASELINE_VERSION))
}

/// Locks every table of `schema` against writers (readers go on) until the transaction ends.
fn lock_schema(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<()> {
    let tables: Vec<String> = catalog(tx, target, schema)?.into_keys().collect();
    if tables.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = tables
        .iter()
        .map(|t| format!("{}.{}", ident(schema), ident(t)))
        .collect();
    tx.batch_execute(&format!("LOCK TABLE {} IN SHARE MODE", list.join(", ")))
        .map_err(|e| target.error(Some(schema), e))
}

/// Builds schema `schema` and loads the archive's content into it, inside `tx`.
#[allow(clippy::too_many_arguments)]
fn load(
    tx: &mut Transaction<'_>,
    target: &Target,
    set: &MigrationSet,
    archive: &Path,
    meta: &Metadata,
    schema_name: &str,
    others: &[String],
    version: i64,
) -> Result<()> {
    let err = |e| target.error(Some(schema_name), e);
    let created = tx.batch_execute(&format!(
        "CREATE SCHEMA {s}; SET LOCAL search_path TO {s};\n{}",
        crate::core::backend::postgres::SYSTEM_SQL,
        s = ident(schema_name)
    ));
    if let Err(e) = created {
        // There already, or made meanwhile by a concurrent create or restore (the catalog's
        // unique index).
        let duplicate = e.code() == Some(&postgres::error::SqlState::DUPLICATE_SCHEMA)
            || (e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
                && e.as_db_error()
                    .and_then(|d| d.constraint())
                    .is_some_and(|c| c.starts_with("pg_namespace")));
        if duplicate {
            return Err(Error::Conflict(format!(
                "schema {schema_name} exists already at {}: a tenant created or restored meanwhile, or a schema left without a registry row (`monkctl doctor` shows it); nothing was restored",
                target.at(None)
            )));
        }
        return Err(err(e));
    }
    crate::core::migrate::postgres::execute_later_to(
        tx,
        target,
        schema_name,
        set,
        others,
        guard::STATEMENT_TIMEOUT,
        version,
    )?;
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .map_err(err)?;
    let src = open_archive(archive)?;
    let atables = sqlite_tables(&src, archive)?;
    // A history the build did not make (a set of the baseline alone makes none on PostgreSQL,
    // while a SQLite tenant always has one): the same table, for the archive's rows.
    if atables.contains_key(HISTORY_TABLE) {
        tx.batch_execute(crate::core::migrate::HISTORY_DDL)
            .map_err(err)?;
    }
    let built = catalog(tx, target, schema_name)?;
    // A table per user model, as the API's PostgreSQL backend makes it.
    for (table, cols) in atables.iter().filter(|(n, _)| !built.contains_key(*n)) {
        let rows = sqlite_field_rows(&src, archive, table)?;
        let has_model: bool = src
            .query_row(
                "SELECT count(*) FROM models WHERE model_name = ?1",
                [table],
                |r| r.get::<_, i64>(0),
            )
            .at(archive)?
            > 0;
        if !has_model {
            return Err(unconvertible(
                table,
                "",
                "",
                format!(
                    "the archive's table is neither the API's nor a model's (no `models` row) nor made by a migration of this deployment's set at version {version}"
                ),
            ));
        }
        let recorded = meta.postgres_columns.as_ref().and_then(|c| c.get(table));
        let fields = model_fields(table, cols, &rows, recorded)?;
        let ddl = postgres_ddl(table, &fields)?;
        tx.batch_execute(&ddl).map_err(err)?;
    }
    let tables = catalog(tx, target, schema_name)?;
    // Empty what the build seeded (the archive is the whole content), in one statement.
    let list: Vec<String> = tables.keys().map(|t| ident(t)).collect();
    if !list.is_empty() {
        tx.batch_execute(&format!("TRUNCATE {}", list.join(", ")))
            .map_err(err)?;
    }
    if !atables.contains_key(HISTORY_TABLE) && tables.contains_key(HISTORY_TABLE) {
        tx.batch_execute(&format!("DROP TABLE {HISTORY_TABLE}"))
            .map_err(err)?;
    }
    for table in load_order(tx, target, schema_name, &atables)? {
        let Some(cols) = tables.get(&table) else {
            return Err(unconvertible(
                &table,
                "",
                "",
                format!("the deployment's schema at version {version} has no such table"),
            ));
        };
        copy_table_in(
            tx,
            target,
            schema_name,
            &src,
            archive,
            &table,
            &atables[&table],
            cols,
        )?;
    }
    // The history as the PostgreSQL side records it: the set's PostgreSQL checksums (the
    // archive's history was judged against the set before anything was built).
    if atables.contains_key(HISTORY_TABLE) {
        for m in set.migs.iter().take_while(|m| m.version <= version) {
            tx.execute(
                &format!("UPDATE {HISTORY_TABLE} SET checksum = $2 WHERE version = $1::int8::int4"),
                &[&m.version, &m.pg_checksum.to_string()],
            )
            .map_err(err)?;
        }
    }
    sequences_in(tx, target, schema_name, &tables, &src, archive)?;
    Ok(())
}

fn postgres_ddl(table: &str, fields: &[Field]) -> Result<String> {
    // Columns typed from the archive's record of PostgreSQL types (`pg:` prefix) go in as
    // such; the others as the API maps their field type.
    let plain: Vec<Field> = fields
        .iter()
        .map(|f| Field {
            ftype: if f.ftype.starts_with("pg:") {
                "text".into()
            } else {
                f.ftype.clone()
            },
            ..f.clone()
        })
        .collect();
    let mut ddl = crossing::postgres_model_ddl(table, &plain)
        .map_err(|(c, d)| unconvertible(table, "", &c, d))?;
    for f in fields {
        if let Some(ty) = f.ftype.strip_prefix("pg:") {
            ddl.push_str(&format!(
                "; ALTER TABLE {} ALTER COLUMN {} TYPE {ty} USING {}::{ty}",
                ident(table),
                ident(&f.name),
                ident(&f.name)
            ));
        }
    }
    Ok(ddl)
}

fn sqlite_field_rows(conn: &Connection, path: &Path, model: &str) -> Result<FieldRows> {
    let mut st = conn
        .prepare("SELECT field_name, type, coalesce(required, 0) FROM fields WHERE model_name = ?1")
        .at(path)?;
    let rows = st
        .query_map([model], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get::<_, String>(1)?, r.get::<_, i64>(2)? != 0),
            ))
        })
        .at(path)?;
    rows.collect::<rusqlite::Result<_>>().at(path)
}

/// The archive's tables in an order that loads every referenced table before the tables that
/// reference it (the schema's foreign keys).
fn load_order(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    atables: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>> {
    let edges: Vec<(String, String)> = tx
        .query(
            "SELECT s.relname::text, d.relname::text FROM pg_constraint k \
             JOIN pg_class s ON s.oid = k.conrelid JOIN pg_class d ON d.oid = k.confrelid \
             JOIN pg_namespace n ON n.oid = s.relnamespace \
             WHERE k.contype = 'f' AND n.nspname = $1",
            &[&schema],
        )
        .map_err(|e| target.error(Some(schema), e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut left: Vec<&String> = atables.keys().collect();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .copied()
            .filter(|t| {
                edges.iter().all(|(from, to)| {
                    from != *t || to == *t || !left.contains(&to) || done.contains(to)
                })
            })
            .collect();
        // A cycle: the rest in name order (the load then fails on the first violation, named).
        let ready = if ready.is_empty() {
            left.clone()
        } else {
            ready
        };
        for t in &ready {
            done.push((*t).clone());
        }
        left.retain(|t| !ready.contains(t));
    }
    Ok(done)
}

/// Loads one archive table into the schema with `COPY`, each value converted for its column's
/// type; a value that does not fit names its table, row and column.
#[allow(clippy::too_many_arguments)]
fn copy_table_in(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    src: &Connection,
    archive: &Path,
    table: &str,
    acols: &[String],
    cols: &[PgColumn],
) -> Result<()> {
    let mut kinds: Vec<&PgColumn> = Vec::with_capacity(acols.len());
    for c in acols {
        match cols.iter().find(|p| &p.name == c) {
            Some(p) => kinds.push(p),
            None => {
                return Err(unconvertible(
                    table,
                    "",
                    c,
                    "the deployment's PostgreSQL schema has no such column (neither the API's DDL, a model's field nor the PostgreSQL half of a migration makes it)",
                ))
            }
        }
    }
    let without_rowid: bool = src
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .at(archive)?
        .unwrap_or(0)
        != 0;
    let quoted: Vec<String> = acols.iter().map(|c| db::quote_ident(c)).collect();
    let sql = if without_rowid {
        format!(
            "SELECT 0, {} FROM {}",
            quoted.join(", "),
            db::quote_ident(table)
        )
    } else {
        format!(
            "SELECT _rowid_, {} FROM {} ORDER BY _rowid_",
            quoted.join(", "),
            db::quote_ident(table)
        )
    };
    let id_col = acols.iter().position(|c| c == "id");
    let mut st = src.prepare(&sql).at(archive)?;
    let mut rows = st.query([]).at(archive)?;
    let mut ex = src
        .prepare(&format!(
            "SELECT rid, col, value FROM {EXACT_TABLE} WHERE tbl = ?1 ORDER BY rid"
        ))
        .ok();
    let mut exact_rows = match ex.as_mut() {
        Some(s) => Some(s.query([table]).at(archive)?),
        None => None,
    };
    let mut pending: Option<(i64, String, String)> = None;
    let next_exact =
        |rows: &mut Option<rusqlite::Rows<'_>>| -> Result<Option<(i64, String, String)>> {
            match rows {
                Some(r) => match r.next().at(archive)? {
                    Some(row) => Ok(Some((
                        row.get(0).at(archive)?,
                        row.get(1).at(archive)?,
                        row.get(2).at(archive)?,
                    ))),
                    None => Ok(None),
                },
                None => Ok(None),
            }
        };
    pending = pending.or(next_exact(&mut exact_rows)?);
    let cols_sql: Vec<String> = acols.iter().map(|c| ident(c)).collect();
    let copy_sql = format!(
        "COPY {}.{} ({}) FROM STDIN",
        ident(schema),
        ident(table),
        cols_sql.join(", ")
    );
    let err = |e| target.error(Some(schema), e);
    let writer = tx.copy_in(&copy_sql).map_err(err)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 18, writer);
    let mut line = String::with_capacity(4096);
    let mut row_exact: Vec<(String, String)> = Vec::new();
    while let Some(r) = rows.next().at(archive)? {
        let rid: i64 = r.get(0).at(archive)?;
        row_exact.clear();
        while let Some((erid, col, value)) = pending.take() {
            if erid < rid {
                pending = next_exact(&mut exact_rows)?;
            } else if erid == rid {
                row_exact.push((col, value));
                pending = next_exact(&mut exact_rows)?;
            } else {
                pending = Some((erid, col, value));
                break;
            }
        }
        line.clear();
        for (i, p) in kinds.iter().enumerate() {
            if i > 0 {
                line.push('\t');
            }
            let v = r.get_ref(i + 1).at(archive)?;
            let exact = row_exact
                .iter()
                .find(|(c, _)| c == &p.name)
                .map(|(_, v)| v.as_str());
            crossing::copy_field(&p.kind, &p.ty, v, exact, &mut line).map_err(|d| {
                let row = id_col
                    .and_then(|k| r.get_ref(k + 1).ok())
                    .and_then(|v| v.as_str().ok().map(str::to_string))
                    .unwrap_or_else(|| format!("#{rid}"));
                unconvertible(table, &row, &p.name, d)
            })?;
        }
        line.push('\n');
        out.write_all(line.as_bytes())
            .map_err(|e| copy_failed(target, schema, table, e))?;
    }
    let writer = out
        .into_inner()
        .map_err(|e| copy_failed(target, schema, table, e.into_error()))?;
    writer.finish().map_err(|e| {
        // The server names the line and column: the line is the row's place in the table.
        let line_no = e
            .as_db_error()
            .and_then(|d| d.where_())
            .and_then(|w| w.split(", line ").nth(1))
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<i64>().ok());
        let column = e
            .as_db_error()
            .and_then(|d| d.where_())
            .and_then(|w| w.split(", column ").nth(1))
            .map(|c| c.split(':').next().unwrap_or("").to_string())
            .unwrap_or_default();
        match (line_no, e.as_db_error()) {
            (Some(n), Some(d)) => {
                let row: Option<String> = if without_rowid {
                    None
                } else {
                    id_col.and_then(|k| {
                        src.query_row(
                            &format!(
                                "SELECT {} FROM {} ORDER BY _rowid_ LIMIT 1 OFFSET ?1",
                                db::quote_ident(&acols[k]),
                                db::quote_ident(table)
                            ),
                            [n - 1],
                            |r| r.get::<_, Option<String>>(0),
                        )
                        .ok()
                        .flatten()
                    })
                };
                unconvertible(
                    table,
                    &row.unwrap_or_else(|| format!("#{n}")),
                    &column,
                    format!("{} (SQLSTATE {})", d.message(), d.code().code()),
                )
            }
            _ => err(e),
        }
    })?;
    Ok(())
}

fn copy_failed(target: &Target, schema: &str, table: &str, e: std::io::Error) -> Error {
    Error::Postgres {
        target: target.at(Some(schema)),
        detail: format!("loading table {table} failed: {e}"),
        exit: crate::core::error::exit::UNREACHABLE,
    }
}

/// Sets every serial column's sequence of the restored schema: from the archive's
/// `sqlite_sequence` for an AUTOINCREMENT table, else to the column's highest value.
fn sequences_in(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    tables: &BTreeMap<String, Vec<PgColumn>>,
    src: &Connection,
    archive: &Path,
) -> Result<()> {
    let err = |e| target.error(Some(schema), e);
    let seqs: HashMap<String, i64> = if autoincrement_columns(src, archive)?.is_empty() {
        HashMap::new()
    } else {
        let mut st = src
            .prepare("SELECT name, seq FROM sqlite_sequence")
            .at(archive)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .at(archive)?;
        rows.collect::<rusqlite::Result<_>>().at(archive)?
    };
    let autoinc: HashSet<(String, String)> =
        autoincrement_columns(src, archive)?.into_iter().collect();
    for (table, cols) in tables {
        for c in cols {
            let seq: Option<String> = tx
                .query_one(
                    "SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3)",
                    &[&schema, table, &c.name],
                )
                .map_err(err)?
                .get(0);
            let Some(seq) = seq else { continue };
            let value: i64 = if autoinc.contains(&(table.clone(), c.name.clone())) {
                seqs.get(table).copied().unwrap_or(0)
            } else {
                tx.query_one(
                    &format!(
                        "SELECT coalesce(max({})::int8, 0) FROM {}.{}",
                        ident(&c.name),
                        ident(schema),
                        ident(table)
                    ),
                    &[],
                )
                .map_err(err)?
                .get(0)
            };
            if value > 0 {
                tx.execute(
                    "SELECT setval($1::text::regclass, $2, true)",
                    &[&seq, &value],
                )
                .map_err(err)?;
            } else {
                tx.execute("SELECT setval($1::text::regclass, 1, false)", &[&seq])
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}
