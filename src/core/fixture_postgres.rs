//! Fixtures on PostgreSQL: the same fixture directories, applied to a tenant's schema.
//!
//! One directory serves both backends. Data files (`.csv`, `.jsonl`) are backend-neutral: each
//! value is sent as text and converted by the column's PostgreSQL type (`uuid`, `boolean`,
//! `numeric`, `jsonb`, timestamps...; an array column takes a JSON array such as `["a","b"]` or
//! PostgreSQL's own `{a,b}`). SQL files may differ: `schema.sql` listed in `fixture.toml` is
//! replaced by `schema.postgres.sql` beside it on PostgreSQL (and by `schema.sqlite.sql` on
//! SQLite) when that file exists. SQL runs through the PostgreSQL guard, statement by statement,
//! with `search_path` set to the tenant's schema alone and `statement_timeout` as the limit.
//!
//! A tenant's fixtures are applied in one transaction that also records them in the tenant's
//! own `_monkctl_fixtures` table, then in `tenant_fixtures`, as on SQLite; a per-schema advisory
//! lock queues two deploys to one tenant.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use postgres::types::Type;
use postgres::Transaction;

use super::{Cell, DataRow, Deployed, FixtureVersion, Loaded, Part, Recorded, TENANT_RECORD};
use crate::core::backend::postgres::{ident, Registry, Target};
use crate::core::error::{exit, Error, Result};
use crate::core::guard_postgres;
use crate::core::ids;
use crate::core::registry::TenantRow;

/// The schemas of the database: names operator SQL may not reach.
pub(crate) fn schemas(reg: &mut Registry) -> Result<Vec<String>> {
    let target = reg.target.clone();
    crate::core::backend::postgres::schemas(&mut reg.client, &target)
}

/// Applies `plan` inside `tx` (the tenant's transaction, `search_path` already the tenant's),
/// and records the fixtures in the tenant's `_monkctl_fixtures`.
pub(crate) fn apply_in(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    plan: &[&Loaded],
    others: &[String],
    limit: Duration,
) -> Result<()> {
    let err = |e| target.error(Some(schema), e);
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        limit.as_millis().max(1)
    ))
    .map_err(err)?;
    for l in plan {
        if l.fixture.is_builtin() {
            // Every tenant is built from `system`; it is never applied again.
            continue;
        }
        for part in &l.parts {
            match part {
                Part::Sql { file, statements } => {
                    for st in statements {
                        let checked = guard_postgres::check(&st.sql, file, schema, others)
                            .map_err(|e| relined(e, st.line))?;
                        for (i, c) in checked.iter().enumerate() {
                            tx.batch_execute(&c.sql).map_err(|e| {
                                statement_error(
                                    target,
                                    schema,
                                    file,
                                    st.line,
                                    i + 1,
                                    &c.sql,
                                    limit,
                                    e,
                                )
                            })?;
                        }
                    }
                }
                Part::Rows {
                    file,
                    table,
                    header,
                    rows,
                } => insert_rows(tx, target, schema, file, table, header, rows)?,
            }
        }
    }
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .map_err(err)?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {TENANT_RECORD} (name text PRIMARY KEY, version text, deployed_at text NOT NULL)"
    ))
    .map_err(err)?;
    let now = ids::now_iso();
    for l in plan {
        tx.execute(
            &format!(
                "INSERT INTO {TENANT_RECORD} (name, version, deployed_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version, deployed_at = excluded.deployed_at"
            ),
            &[&l.fixture.name, &l.fixture.version, &now],
        )
        .map_err(err)?;
    }
    Ok(())
}

/// A refusal of a statement checked alone: its line in the file.
fn relined(e: Error, line: usize) -> Error {
    match e {
        Error::Refused {
            path,
            line: 0 | 1,
            message,
        } => Error::Refused {
            path,
            line,
            message,
        },
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
fn statement_error(
    target: &Target,
    schema: &str,
    file: &Path,
    line: usize,
    number: usize,
    sql: &str,
    limit: Duration,
    e: postgres::Error,
) -> Error {
    if e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED) {
        return Error::StatementTimeout {
            path: file.to_path_buf(),
            line,
            number,
            limit,
            statement: sql.to_string(),
        };
    }
    Error::Postgres {
        target: target.at(Some(schema)),
        detail: format!(
            "{}:{line}: statement `{}` fails: {}; the tenant was rolled back",
            file.display(),
            crate::core::migrate::destructive::shorten(sql),
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string())
        ),
        exit: exit::FAILURE,
    }
}

/// The expression that turns a text parameter into a value of a column: PostgreSQL's own input
/// conversion, and for arrays also a JSON array.
fn cast(param: usize, type_name: &str, category: &str) -> String {
    if category == "A" {
        format!(
            "(CASE WHEN left(${param}, 1) = '[' \
             THEN ARRAY(SELECT jsonb_array_elements_text(${param}::jsonb))::{type_name} \
             ELSE ${param}::{type_name} END)"
        )
    } else {
        format!("${param}::{type_name}")
    }
}

fn text_of(cell: &Cell) -> Option<String> {
    match cell {
        Cell::Null => None,
        Cell::Text(s) => Some(s.clone()),
        Cell::Json(serde_json::Value::Null) => None,
        Cell::Json(serde_json::Value::String(s)) => Some(s.clone()),
        Cell::Json(v) => Some(v.to_string()),
    }
}

fn insert_rows(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    file: &Path,
    table: &str,
    header: &[String],
    rows: &[DataRow],
) -> Result<()> {
    let bad = |line: usize, message: String| Error::BadInput {
        path: file.to_path_buf(),
        line,
        message,
    };
    let types: HashMap<String, (String, String)> = tx
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typcategory::text \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&schema, &table],
        )
        .map_err(|e| target.error(Some(schema), e))?
        .iter()
        .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2))))
        .collect();
    if types.is_empty() {
        return Err(bad(
            1,
            format!(
                "table '{table}' does not exist in the tenant (the file's name names the table)"
            ),
        ));
    }
    let mut prepared: HashMap<Vec<String>, postgres::Statement> = HashMap::new();
    for row in rows {
        let columns: &[String] = row.columns.as_deref().unwrap_or(header);
        if let Some(c) = columns.iter().find(|c| !types.contains_key(*c)) {
            return Err(bad(
                row.line,
                format!("table '{table}' has no column '{c}'"),
            ));
        }
        if !prepared.contains_key(columns) {
            let exprs: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let (t, cat) = &types[c];
                    cast(i + 1, t, cat)
                })
                .collect();
            let sql = format!(
                "INSERT INTO {}.{} ({}) VALUES ({})",
                ident(schema),
                ident(table),
                columns
                    .iter()
                    .map(|c| ident(c))
                    .collect::<Vec<_>>()
                    .join(", "),
                exprs.join(", ")
            );
            let stmt = tx
                .prepare_typed(&sql, &vec![Type::TEXT; columns.len()])
                .map_err(|e| target.error(Some(schema), e))?;
            prepared.insert(columns.to_vec(), stmt);
        }
        let values: Vec<Option<String>> = row.cells.iter().map(text_of).collect();
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        tx.execute(&prepared[columns], &params).map_err(|e| {
            let message = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            bad(
                row.line,
                format!("a row of table '{table}' does not fit: {message}"),
            )
        })?;
    }
    Ok(())
}

/// A scratch tenant schema (`monkctl_check_<pid>`: the API's DDL and the set's migrations) in a
/// transaction the caller rolls back; with the database's other schemas.
fn scratch<'c>(
    client: &'c mut postgres::Client,
    target: &Target,
    set: &crate::core::migrate::MigrationSet,
    limit: Duration,
) -> Result<(Transaction<'c>, String, Vec<String>)> {
    let err = |e| target.error(None, e);
    let others = crate::core::backend::postgres::schemas(client, target)?;
    let schema = format!("monkctl_check_{}", std::process::id());
    let mut tx = client.transaction().map_err(err)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA {s}; SET LOCAL search_path TO {s}; {}",
        crate::core::backend::postgres::SYSTEM_SQL,
        s = ident(&schema)
    ))
    .map_err(err)?;
    crate::core::migrate::postgres::execute_later(&mut tx, target, &schema, set, &others, limit)?;
    Ok((tx, schema, others))
}

/// `fixture check` on PostgreSQL: the fixtures applied, in order, to a scratch tenant schema
/// built (API's DDL and the set's migrations) in a transaction of the deployment's database that
/// is always rolled back: nothing of it is ever committed or seen by another session. Each
/// fixture runs under a savepoint; its first problem is reported and the next one goes on.
pub(crate) fn check(
    target: &Target,
    order: &[super::Fixture],
    set: &crate::core::migrate::MigrationSet,
    limit: Duration,
    checked: &mut Vec<String>,
    problems: &mut Vec<super::Problem>,
) -> Result<()> {
    let mut client = target.connect()?;
    let err = |e| target.error(None, e);
    let (mut tx, schema, others) = scratch(&mut client, target, set, limit)?;
    for f in order {
        checked.push(f.name.clone());
        let loaded = match super::parse_for(f, true) {
            Ok(l) => l,
            Err(e) => {
                problems.push(super::Problem {
                    fixture: f.name.clone(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut sp = tx.savepoint("fixture").map_err(err)?;
        match apply_in(&mut sp, target, &schema, &[&loaded], &others, limit) {
            Ok(()) => sp.commit().map_err(err)?,
            Err(e) => {
                drop(sp);
                problems.push(super::Problem {
                    fixture: f.name.clone(),
                    message: e.to_string().replace(&schema, "<scratch>"),
                });
            }
        }
    }
    tx.rollback().map_err(err)?;
    Ok(())
}

/// The fixtures applied in order to a scratch tenant schema in a transaction that is always
/// rolled back; the first problem is the error (for `template build`).
pub(crate) fn trial(
    target: &Target,
    loaded: &[Loaded],
    set: &crate::core::migrate::MigrationSet,
    limit: Duration,
) -> Result<()> {
    let mut client = target.connect()?;
    let err = |e| target.error(None, e);
    let (mut tx, schema, others) = scratch(&mut client, target, set, limit)?;
    let plan: Vec<&Loaded> = loaded.iter().collect();
    let r = apply_in(&mut tx, target, &schema, &plan, &others, limit);
    tx.rollback().map_err(err)?;
    r
}

/// What a tenant's own record holds (empty when it has none).
fn recorded(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<Vec<Recorded>> {
    let err = |e| target.error(Some(schema), e);
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
            &[&schema, &TENANT_RECORD],
        )
        .map_err(err)?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    Ok(tx
        .query(
            &format!(
                "SELECT name, version, deployed_at FROM {}.{TENANT_RECORD} ORDER BY name",
                ident(schema)
            ),
            &[],
        )
        .map_err(err)?
        .iter()
        .map(|r| Recorded {
            name: r.get(0),
            version: r.get(1),
            deployed_at: r.get(2),
        })
        .collect())
}

/// `fixture deploy` to one PostgreSQL tenant: as `deploy_one` on SQLite.
pub(crate) fn deploy_one(
    reg: &mut Registry,
    t: &TenantRow,
    loaded: &[Loaded],
    wanted: &[String],
    force: bool,
    limit: Duration,
    others: &[String],
) -> Result<Deployed> {
    if t.is_deleted() {
        return Err(Error::Conflict(format!(
            "tenant '{}' is deleted; fixtures cannot be deployed to it",
            t.name
        )));
    }
    if t.db_type != "postgresql" {
        return Err(Error::Unsupported(format!(
            "tenant '{}' is a SQLite tenant of this PostgreSQL registry (db_type '{}'): give the directory of its file (the API's SQLITE_DATA_DIR) with --sqlite-data-dir to deploy to it",
            t.name, t.db_type
        )));
    }
    let in_registry = reg.fixtures_of(&t.id)?;
    let target = reg.target.clone();
    let schema = t.schema.as_str();
    let err = |e| target.error(Some(schema), e);
    let others: Vec<String> = others.iter().filter(|s| *s != schema).cloned().collect();
    let mut tx = reg.client.transaction().map_err(err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('monkctl.fixture.' || $1::text))",
        &[&schema],
    )
    .map_err(err)?;
    tx.batch_execute(&format!("SET LOCAL search_path TO {}", ident(schema)))
        .map_err(err)?;
    let in_tenant = recorded(&mut tx, &target, schema)?;
    let done: HashSet<&str> = in_registry
        .iter()
        .map(|f| f.fixture_name.as_str())
        .chain(in_tenant.iter().map(|r| r.name.as_str()))
        .chain(std::iter::once(super::SYSTEM))
        .collect();
    let (plan, skipped): (Vec<&Loaded>, Vec<&Loaded>) = loaded.iter().partition(|l| {
        !l.fixture.is_builtin()
            && (!done.contains(l.fixture.name.as_str())
                || (force && wanted.contains(&l.fixture.name)))
    });
    let skipped: Vec<String> = skipped.iter().map(|l| l.fixture.name.clone()).collect();
    let unrecorded: Vec<Recorded> = in_tenant
        .iter()
        .filter(|r| !in_registry.iter().any(|f| f.fixture_name == r.name))
        .filter(|r| !plan.iter().any(|l| l.fixture.name == r.name))
        .cloned()
        .collect();
    if plan.is_empty() {
        tx.rollback().map_err(err)?;
    } else {
        apply_in(&mut tx, &target, schema, &plan, &others, limit)?;
        tx.commit().map_err(err)?;
    }
    if plan.is_empty() && unrecorded.is_empty() {
        return Ok(Deployed {
            applied: Vec::new(),
            skipped,
            recorded: Vec::new(),
        });
    }
    crate::core::pause_point("fixture.deploy.applied");
    let now = ids::now_iso();
    let applied: Vec<FixtureVersion> = plan
        .iter()
        .map(|l| FixtureVersion {
            name: l.fixture.name.clone(),
            version: l.fixture.version.clone(),
        })
        .collect();
    reg.write(|w| {
        for a in &applied {
            w.record_fixture(&t.id, &a.name, &now)?;
            w.set_fixture_version(&t.id, &a.name, &a.version)?;
        }
        for r in &unrecorded {
            w.record_fixture(&t.id, &r.name, &r.deployed_at)?;
            if let Some(v) = &r.version {
                w.set_fixture_version(&t.id, &r.name, v)?;
            }
        }
        Ok(())
    })?;
    Ok(Deployed {
        applied,
        skipped,
        recorded: unrecorded.into_iter().map(|r| r.name).collect(),
    })
}
