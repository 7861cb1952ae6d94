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

mod extract;
mod restore;

pub(super) use extract::extract;
use extract::{autoincrement_columns, write_archive};
pub(super) use restore::restore;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{IsolationLevel, Transaction};
use rusqlite::Connection;

use super::crossing::{self, Field, Kind, EXACT_DDL, EXACT_TABLE};
use super::{
    content_of, place, write_metadata, ContentHasher, Extracted, Metadata, RestoreMode,
    RestoreOptions, Restored, CHECKSUM_ALGORITHM, META_TABLE,
};
use crate::core::backend::postgres::{ident, insert_fixture_rows, insert_row, Registry, Target};
use crate::core::db;
use crate::core::error::{Context, Error, Result};
use crate::core::fsutil;
use crate::core::guard;
use crate::core::ids;
use crate::core::layout::Layout;
use crate::core::migrate::MigrationSet;
use crate::core::registry::{FixtureRow, TenantRow};
use crate::core::schema::{self, HISTORY_TABLE};
use crate::core::Workspace;

/// The columns every user model table starts with.
pub(super) const STANDARD_COLUMNS: [&str; 9] = [
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
pub(super) struct PgColumn {
    pub(super) name: String,
    /// `format_type`: `numeric`, `timestamp without time zone`, `text[]`.
    pub(super) ty: String,
    pub(super) kind: Kind,
}

pub(super) fn unconvertible(
    table: &str,
    row: &str,
    column: &str,
    detail: impl Into<String>,
) -> Error {
    Error::Unconvertible {
        table: table.to_string(),
        row: row.to_string(),
        column: column.to_string(),
        detail: detail.into(),
    }
}

/// Every table of `schema` with its columns in order.
pub(super) fn catalog(
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
pub(super) fn sqlite_tables(
    conn: &Connection,
    path: &Path,
) -> Result<BTreeMap<String, Vec<String>>> {
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
pub(super) type FieldRows = HashMap<String, (String, bool)>;

/// The fields of a user model in its table's column order: each column after the standard
/// ones, typed by its `fields` row.
pub(super) fn model_fields(
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
