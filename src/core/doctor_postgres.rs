//! `doctor` on a PostgreSQL deployment: the registry against the schemas of the database.
//!
//! Only reads (the drift reference is built in a transaction that is rolled back). The one
//! repair is of a tenant schema that no registry row claims: `--repair` renames it aside
//! (`monk_orphan_<name>_<seconds>`), as an orphan file is moved to `orphans/` on SQLite; the
//! name is free again and nothing is dropped. Every other finding's `fix` says what to run.
//! monkctl's own state in the data directory is checked (and repaired) as on SQLite.

use std::collections::{BTreeMap, HashSet};

use super::{Finding, Options, Severity};
use crate::core::backend::postgres::{Column, Registry};
use crate::core::error::Result;
use crate::core::registry::TenantRow;

/// Runs the checks; returns the findings and how many tenant schemas were checked.
/// A SQLite tenant of the registry (`db_type='sqlite'`) is checked as a file under
/// `sqlite_files` (`--sqlite-data-dir`): there, readable, sound (`quick_check`, read without a
/// lock the API could trip on); without the setting it is reported, not guessed at.
pub(super) fn check(
    reg: &mut Registry,
    opts: &Options,
    sqlite_files: Option<&crate::core::layout::Layout>,
) -> Result<(Vec<Finding>, usize)> {
    let mut out = Vec::new();
    let rows = reg.all()?;
    for t in &opts.tenants {
        if !rows.iter().any(|r| &r.name == t) {
            return Err(super::Error::TenantNotFound(t.clone()));
        }
    }
    let schemas: HashSet<String> = reg.tenant_schemas()?.into_iter().collect();
    let selected: Vec<&TenantRow> = rows
        .iter()
        .filter(|r| opts.tenants.is_empty() || opts.tenants.contains(&r.name))
        .collect();
    if opts.tenants.is_empty() {
        check_infra(reg, &mut out)?;
        check_orphan_schemas(&rows, &schemas, &mut out);
    }
    let reference = reg.reference_columns()?;
    let mut columns: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for c in reg.tenant_columns()? {
        columns.entry(c.schema.clone()).or_default().push(c);
    }
    let mut checked = 0;
    for t in selected {
        if t.db_type != "postgresql" {
            match sqlite_files {
                Some(layout) if t.db_type == "sqlite" => {
                    if check_sqlite_file(layout, t, &mut out) {
                        checked += 1;
                    }
                }
                _ => out.push(
                    Finding::new(
                        Severity::Info,
                        "sqlite_tenant_in_postgres_registry",
                        format!(
                            "tenant '{}' is a SQLite tenant (db_type '{}') in a PostgreSQL registry; the API serves it from its SQLITE_DATA_DIR, which monkctl was not given, so its file was not checked",
                            t.name, t.db_type
                        ),
                        "give the API's SQLITE_DATA_DIR with --sqlite-data-dir to check it",
                    )
                    .tenant(&t.name),
                ),
            }
            continue;
        }
        if !schemas.contains(&t.schema) {
            if !t.is_deleted() {
                out.push(
                    Finding::new(
                        Severity::Error,
                        "schema_missing",
                        format!(
                            "tenant '{}' has no schema {}: the API fails every request for it",
                            t.name, t.schema
                        ),
                        "restore the tenant from an archive, or delete it (`monkctl tenant delete`)",
                    )
                    .tenant(&t.name),
                );
            }
            continue;
        }
        checked += 1;
        let own = columns.remove(&t.schema).unwrap_or_default();
        check_drift(t, &own, &reference, &mut out);
        if own.iter().any(|c| c.table == "users") && !reg.owner_present(&t.schema, &t.owner_id)? {
            out.push(
                Finding::new(
                    Severity::Warning,
                    "owner_missing",
                    format!(
                        "tenant '{}' names owner {} in the registry, but its users table has no such user",
                        t.name, t.owner_id
                    ),
                    "add the owner back to the tenant's users table, or set tenants.owner_id to an existing user",
                )
                .tenant(&t.name),
            );
        }
    }
    Ok((out, checked))
}

fn check_infra(reg: &mut Registry, out: &mut Vec<Finding>) -> Result<()> {
    let (applied, latest) = reg.infra_versions()?;
    if applied < latest {
        out.push(Finding::new(
            Severity::Info,
            "infra_migrations_pending",
            format!(
                "the registry is at monkctl's infra version {applied} of {latest}{}",
                if applied == 0 {
                    " (a registry the API made, not yet adopted)"
                } else {
                    ""
                }
            ),
            "`monkctl init` (or any command that writes) adopts it: the API's tables and rows stay as they are",
        ));
    }
    Ok(())
}

fn check_orphan_schemas(rows: &[TenantRow], schemas: &HashSet<String>, out: &mut Vec<Finding>) {
    let claimed: HashSet<&str> = rows
        .iter()
        .filter(|r| r.db_type == "postgresql")
        .map(|r| r.schema.as_str())
        .collect();
    let mut orphans: Vec<&String> = schemas
        .iter()
        .filter(|s| !claimed.contains(s.as_str()))
        .collect();
    orphans.sort();
    for s in orphans {
        out.push(
            Finding::new(
                Severity::Warning,
                "schema_without_row",
                format!(
                    "schema {s} has no row in the registry: an interrupted create (the API commits the schema before the row) or a hand edit left it"
                ),
                "`monkctl doctor --repair` renames it to monk_orphan_<name>_<seconds> (nothing is dropped; the name is free again); look at its content, then drop it when it holds nothing of value",
            )
            .repair(super::Action::SchemaAside(s.clone())),
        );
    }
}

/// The system tables a tenant has against what a new tenant has now: a missing table or column,
/// or a column of another type, is drift. Tables and columns the tenant has besides (its user
/// models) are its own.
fn check_drift(t: &TenantRow, own: &[Column], reference: &[Column], out: &mut Vec<Finding>) {
    let prefix = format!("{}.", t.schema);
    let mut problems = Vec::new();
    for r in reference {
        match own
            .iter()
            .find(|c| c.table == r.table && c.column == r.column)
        {
            None if !own.iter().any(|c| c.table == r.table) => {
                let p = format!("table {} is missing", r.table);
                if !problems.contains(&p) {
                    problems.push(p);
                }
            }
            None => problems.push(format!("column {}.{} is missing", r.table, r.column)),
            Some(c) if c.type_name.replace(&prefix, "") != r.type_name => problems.push(format!(
                "column {}.{} is {} instead of {}",
                r.table, r.column, c.type_name, r.type_name
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        out.push(
            Finding::new(
                Severity::Warning,
                "schema_drift",
                format!(
                    "tenant '{}' differs from the API's schema: {}",
                    t.name,
                    problems.join("; ")
                ),
                "compare with a new tenant (`monkctl tenant create`); repair the schema by a migration",
            )
            .tenant(&t.name),
        );
    }
}

/// The file of a SQLite tenant of the registry: findings for a missing, unreadable or damaged
/// one; true when it was read.
fn check_sqlite_file(
    layout: &crate::core::layout::Layout,
    t: &TenantRow,
    out: &mut Vec<Finding>,
) -> bool {
    let path = match crate::core::tenant::file_of(layout, t) {
        Ok(p) => p,
        Err(e) => {
            out.push(
                Finding::new(
                    Severity::Error,
                    "bad_location",
                    format!("tenant '{}': {e}", t.name),
                    "fix the tenant's row in the registry",
                )
                .tenant(&t.name),
            );
            return false;
        }
    };
    if !path.exists() {
        if !t.is_deleted() {
            out.push(
                Finding::new(
                    Severity::Error,
                    "file_missing",
                    format!(
                        "SQLite tenant '{}' has no file {}: the API fails every request for it",
                        t.name,
                        path.display()
                    ),
                    "restore the tenant from an archive, or delete it (`monkctl tenant delete`)",
                )
                .tenant(&t.name),
            );
        }
        return false;
    }
    let problems = crate::core::db::read_quietly(&path, |conn, p| {
        use crate::core::error::Context;
        super::quick_check(conn).at(p)
    });
    match problems {
        Ok(p) if p.is_empty() => {}
        Ok(p) => out.push(
            Finding::new(
                Severity::Error,
                "corrupt",
                format!(
                    "SQLite tenant '{}' ({}) fails quick_check: {}",
                    t.name,
                    path.display(),
                    p.join("; ")
                ),
                "restore the tenant from an archive",
            )
            .tenant(&t.name),
        ),
        Err(e) => out.push(
            Finding::new(
                Severity::Error,
                "unreadable",
                format!("SQLite tenant '{}': {e}", t.name),
                "check the file's permissions and that it is a SQLite database",
            )
            .tenant(&t.name),
        ),
    }
    true
}
