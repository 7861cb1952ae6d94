//! `migrate status`, `plan` and `up` on a PostgreSQL deployment: every tenant schema.
//!
//! Each tenant is migrated in one transaction: `search_path` set to its schema alone, every
//! statement through the PostgreSQL guard (`guard_postgres`) and bounded by `statement_timeout`,
//! its `refinery_schema_history` (in its own schema) written in the same transaction; it ends
//! fully at the new version or untouched. A per-tenant advisory lock keeps two runs from
//! migrating one schema at once. Tenants are migrated in parallel, one connection per job.
//!
//! Destructive statements are found from PostgreSQL's own view, not from the SQL text: the
//! schema's catalog (tables and columns) before and after each migration, and the transaction's
//! row counters (`pg_stat_xact_user_tables`: rows deleted or updated). A migration that dropped or
//! overwrote anything is rolled back unless `--allow-destructive`; then the schema is first
//! written to a snapshot (`pg_dump`, under `<data>/snapshots/<run>/`) and the migration run
//! again. `migrate plan` runs the pending migrations the same way and always rolls back.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use postgres::{Client, Transaction};

use super::destructive::Finding;
use super::{
    judge_history, Applied, InfraStatus, InfraUp, Inspection, MigrationSet, RunOptions, Selection,
    Summary, Survey, SurveyHead, TenantStatus, TenantUp, UpHead, UpReport, UpSummary, HISTORY_DDL,
};
use crate::core::backend::postgres::{ident, Registry, Target};
use crate::core::error::{exit, Error, Result};
use crate::core::guard_postgres;
use crate::core::progress::Progress;
use crate::core::registry::TenantRow;
use crate::core::{ids, names, schema, Outcome, RunSink, Tally, Workspace};

/// Connections a run opens at most, whatever `--jobs` says: each is a server process.
const MAX_CONNECTIONS: usize = 16;

fn infra_status(reg: &mut Registry) -> Result<InfraStatus> {
    let (version, latest) = reg.infra_versions()?;
    Ok(InfraStatus {
        path: None,
        version,
        latest,
        pending: version < latest,
    })
}

/// The selected tenants: the schemas (in name order), the SQLite tenants of a mixed registry
/// when `--sqlite-data-dir` says where their files are (in name order, visited after the
/// schemas), and how many were left out (trashed, deleted, or SQLite tenants without the
/// setting).
fn select(
    ws: &Workspace,
    reg: &mut Registry,
    sel: &Selection,
) -> Result<(Vec<TenantRow>, Vec<super::Target>, usize)> {
    let file = |t: &TenantRow| super::Target {
        name: t.name.clone(),
        database: t.database.clone(),
        schema: t.schema.clone(),
    };
    if !sel.tenants.is_empty() {
        let mut out: Vec<TenantRow> = Vec::new();
        let mut files: Vec<super::Target> = Vec::new();
        for n in &sel.tenants {
            names::tenant(n)?;
            if out.iter().any(|t| &t.name == n) || files.iter().any(|t| &t.name == n) {
                continue;
            }
            let row = reg
                .find(n)?
                .ok_or_else(|| Error::TenantNotFound(n.clone()))?;
            if row.db_type != "postgresql" && row.db_type != "sqlite" {
                return Err(Error::Unsupported(format!(
                    "tenant '{n}' has db_type '{}', neither 'postgresql' nor 'sqlite'; fix its row",
                    row.db_type
                )));
            }
            if row.db_type == "sqlite" {
                ws.sqlite_layout().map_err(|e| match e {
                    Error::Unsupported(m) => Error::Unsupported(format!("tenant '{n}': {m}")),
                    other => other,
                })?;
            }
            if row.is_deleted() {
                return Err(Error::Conflict(format!(
                    "tenant '{n}' is deleted and is not migrated"
                )));
            }
            if row.is_trashed() && !sel.include_trashed {
                return Err(Error::Conflict(format!(
                    "tenant '{n}' is trashed; pass --include-trashed to migrate it anyway"
                )));
            }
            if row.db_type == "sqlite" {
                files.push(file(&row));
            } else {
                out.push(row);
            }
        }
        return Ok((out, files, 0));
    }
    let all = reg.all()?;
    let total = all.len();
    let wanted = |t: &TenantRow| !t.is_deleted() && (sel.include_trashed || !t.is_trashed());
    let files: Vec<super::Target> = if ws.sqlite_files.is_some() {
        all.iter()
            .filter(|t| t.db_type == "sqlite" && wanted(t))
            .map(file)
            .collect()
    } else {
        Vec::new()
    };
    let out: Vec<TenantRow> = all
        .into_iter()
        .filter(|t| t.db_type == "postgresql" && wanted(t))
        .collect();
    let skipped = total - out.len() - files.len();
    Ok((out, files, skipped))
}

/// What one tenant's visit is to do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Read where it stands.
    Status,
    /// Run what is pending and roll back: destructive findings and failures, nothing changed.
    Plan,
    /// Run what is pending and commit.
    Up,
}

struct Ctx<'a> {
    /// Where `up` records its snapshotted tenants (`manifest.jsonl`).
    run: Option<&'a super::RunDir>,
    ws: &'a Workspace,
    target: &'a Target,
    set: &'a MigrationSet,
    version: i64,
    opts: &'a RunOptions,
    schemas: Vec<String>,
    mode: Mode,
    run_dir: std::path::PathBuf,
}

/// What a visit found and did.
struct Visit {
    ins: Inspection,
    up: TenantUp,
    destructive: Vec<Finding>,
    would_fail: Option<String>,
}

fn read_history(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<Vec<Applied>> {
    let err = |e| target.error(Some(schema), e);
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass(format('%I.refinery_schema_history', $1::text)) IS NOT NULL",
            &[&schema],
        )
        .map_err(err)?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            &format!(
                "SELECT version::int8, coalesce(name, '')::text, coalesce(checksum, '')::text \
                 FROM {}.refinery_schema_history ORDER BY version",
                ident(schema)
            ),
            &[],
        )
        .map_err(err)?;
    Ok(rows
        .iter()
        .map(|r| Applied {
            version: r.get(0),
            name: r.get(1),
            checksum: r.get(2),
        })
        .collect())
}

/// The version an API-made schema without history matches: the baseline when it has the
/// API's system tables.
fn baseline_of(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<i64> {
    let n: i64 = tx
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname IN ('models', 'fields', 'users')",
            &[&schema],
        )
        .map_err(|e| target.error(Some(schema), e))?
        .get(0);
    if n < 3 {
        return Err(Error::Postgres {
            target: target.at(Some(schema)),
            detail: "it has neither a migration history nor the Monk system tables (models, fields, users), so it is not a Monk tenant schema".into(),
            exit: exit::CORRUPT,
        });
    }
    Ok(schema::BASELINE_VERSION)
}

/// Tables and their columns of a schema, and the rows the transaction deleted or updated in
/// each table so far.
#[derive(Default)]
struct View {
    columns: BTreeSet<(String, String)>,
    changed: HashMap<String, (i64, i64)>,
}

fn view(tx: &mut Transaction<'_>, target: &Target, schema: &str) -> Result<View> {
    let err = |e| target.error(Some(schema), e);
    let mut v = View::default();
    for r in tx
        .query(
            "SELECT c.relname::text, coalesce(a.attname::text, '') FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')",
            &[&schema],
        )
        .map_err(err)?
    {
        v.columns.insert((r.get(0), r.get(1)));
    }
    for r in tx
        .query(
            "SELECT relname::text, n_tup_del::int8, n_tup_upd::int8 FROM pg_stat_xact_user_tables \
             WHERE schemaname = $1",
            &[&schema],
        )
        .map_err(err)?
    {
        v.changed.insert(r.get(0), (r.get(1), r.get(2)));
    }
    Ok(v)
}

/// What a migration destroyed, from the views before and after it.
fn destroyed(before: &View, after: &View, version: i64, file: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let tables_after: BTreeSet<&String> = after.columns.iter().map(|(t, _)| t).collect();
    let mut dropped_tables: BTreeSet<&String> = BTreeSet::new();
    for (t, c) in &before.columns {
        if !tables_after.contains(t) {
            if dropped_tables.insert(t) {
                out.push(finding(version, file, "drop_table", t.clone()));
            }
        } else if !c.is_empty() && !after.columns.contains(&(t.clone(), c.clone())) {
            out.push(finding(version, file, "drop_column", format!("{t}.{c}")));
        }
    }
    for (t, (del, upd)) in &after.changed {
        let (del0, upd0) = before.changed.get(t).copied().unwrap_or((0, 0));
        let existed = before.columns.iter().any(|(bt, _)| bt == t);
        if existed && del > &del0 {
            out.push(finding(version, file, "delete_rows", t.clone()));
        }
        if existed && upd > &upd0 {
            out.push(finding(version, file, "update_rows", t.clone()));
        }
    }
    out
}

fn finding(version: i64, file: &str, action: &str, object: String) -> Finding {
    Finding {
        version,
        file: file.to_string(),
        statement: String::new(),
        action: action.to_string(),
        object,
    }
}

/// Visits one tenant on `client`: reads where it stands and, for `Plan` and `Up`, runs what is
/// pending in one transaction.
fn visit(cx: &Ctx<'_>, client: &mut Client, t: &TenantRow) -> Result<Visit> {
    let schema = t.schema.as_str();
    names::path_component("tenants.schema", schema)?;
    let target = cx.target;
    let err = |e| target.error(Some(schema), e);
    let mut tx = client.transaction().map_err(err)?;
    if cx.mode == Mode::Up {
        // One run at a time per schema; waits at most the session's lock_timeout.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('monkctl.migrate.' || $1::text))",
            &[&schema],
        )
        .map_err(err)?;
    }
    let hist = read_history(&mut tx, target, schema)?;
    let baseline = if hist.is_empty() {
        baseline_of(&mut tx, target, schema)?
    } else {
        0
    };
    let ins = judge_history(&hist, baseline, cx.set, cx.version, |m| m.pg_checksum);
    let mut up = TenantUp {
        from: ins.version,
        to: ins.version,
        applied: Vec::new(),
        adopted: false,
        snapshot: None,
    };
    if cx.mode == Mode::Status {
        tx.rollback().map_err(err)?;
        return Ok(Visit {
            ins,
            up,
            destructive: Vec::new(),
            would_fail: None,
        });
    }
    if !ins.diverged.is_empty() || !ins.missing.is_empty() {
        let mut all = ins.diverged.clone();
        all.extend(ins.missing.clone());
        return Err(Error::Diverged(format!(
            "tenant '{}': {}; nothing was changed",
            t.name,
            all.join("; ")
        )));
    }
    if ins.pending.is_empty() && !(ins.adopt && cx.mode == Mode::Up) {
        tx.rollback().map_err(err)?;
        return Ok(Visit {
            ins,
            up,
            destructive: Vec::new(),
            would_fail: None,
        });
    }
    let others: Vec<String> = cx
        .schemas
        .iter()
        .filter(|s| s.as_str() != schema)
        .cloned()
        .collect();
    let limit_ms = cx.opts.statement_timeout.as_millis().max(1);
    tx.batch_execute(&format!(
        "SET LOCAL search_path TO {}; SET LOCAL statement_timeout = {limit_ms}",
        ident(schema)
    ))
    .map_err(err)?;
    let mut findings = Vec::new();
    let mut would_fail = None;
    // The run after a snapshot records the tenant in the run's manifest, with its fingerprint
    // before and after, for `undo`.
    let snapshotted = NO_SNAPSHOT.with(|f| f.get());
    let pre_hash = if snapshotted && cx.mode == Mode::Up {
        Some(content_hash(&mut tx, target, schema)?)
    } else {
        None
    };
    let mut before = view(&mut tx, target, schema)?;
    for v in &ins.pending {
        let Some(m) = cx.set.get(*v) else { continue };
        let checked = guard_postgres::check(&m.pg_sql, Path::new(&m.file), schema, &others)?;
        for (i, st) in checked.iter().enumerate() {
            if let Err(e) = tx.batch_execute(&st.sql) {
                let why = match e.code() {
                    Some(c) if *c == postgres::error::SqlState::QUERY_CANCELED => {
                        return Err(Error::StatementTimeout {
                            path: m.file.clone().into(),
                            line: st.line,
                            number: i + 1,
                            limit: cx.opts.statement_timeout,
                            statement: st.sql.clone(),
                        })
                    }
                    _ => e
                        .as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| e.to_string()),
                };
                let message = format!(
                    "{}:{} (V{}): statement {} `{}` fails: {why}; nothing was applied, the tenant stays at V{}",
                    m.file,
                    st.line,
                    m.version,
                    i + 1,
                    super::destructive::shorten(&st.sql),
                    ins.version
                );
                if cx.mode == Mode::Plan {
                    would_fail = Some(message);
                    break;
                }
                return Err(Error::Postgres {
                    target: target.at(Some(schema)),
                    detail: message,
                    exit: exit::FAILURE,
                });
            }
        }
        if would_fail.is_some() {
            break;
        }
        let after = view(&mut tx, target, schema)?;
        findings.extend(destroyed(&before, &after, m.version, &m.file));
        before = after;
        up.applied.push(m.version);
    }
    if cx.mode == Mode::Plan {
        tx.rollback().map_err(err)?;
        return Ok(Visit {
            ins,
            up,
            destructive: findings,
            would_fail,
        });
    }
    if !findings.is_empty() && !cx.opts.allow_destructive {
        return Err(Error::Destructive(format!(
            "tenant '{}' would run destructive statements: {}; nothing was changed; rerun with --allow-destructive (each tenant's schema is written to a snapshot first)",
            t.name,
            super::destructive::summary(&findings)
        )));
    }
    if !findings.is_empty() && !NO_SNAPSHOT.with(|f| f.get()) {
        // Snapshot the schema as it is before the migration (this transaction changed nothing
        // yet that another session sees), then run the migration again.
        tx.rollback().map_err(err)?;
        let file = cx
            .run_dir
            .join(format!("{}.{}.pgdump", t.database, t.schema));
        crate::core::backend::postgres::dump_schema(target, schema, &file)?;
        let mut again = visit_once_allowed(cx, client, t)?;
        again.up.snapshot = Some(file);
        return Ok(again);
    }
    tx.batch_execute(HISTORY_DDL).map_err(err)?;
    let mut record = |m: &super::Mig| -> Result<()> {
        tx.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES ($1::int8::int4, $2, $3, $4)",
            &[
                &m.version,
                &m.name,
                &ids::now_iso(),
                &m.pg_checksum.to_string(),
            ],
        )
        .map(|_| ())
        .map_err(err)
    };
    if ins.adopt {
        for m in cx.set.migs.iter().filter(|m| m.version <= ins.version) {
            record(m)?;
        }
        up.adopted = true;
    }
    for v in &up.applied {
        if let Some(m) = cx.set.get(*v) {
            record(m)?;
        }
    }
    up.to = up.applied.last().copied().unwrap_or(up.from);
    if let (Some(pre), Some(run)) = (pre_hash, cx.run) {
        run.append(&super::ManifestLine {
            tenant: t.name.clone(),
            database: t.database.clone(),
            schema: t.schema.clone(),
            snapshot: format!("{}.{}.pgdump", t.database, t.schema),
            from: up.from,
            to: up.to,
            post_hash: content_hash(&mut tx, target, schema)?,
            pre_hash: Some(pre),
            at: ids::now_iso(),
        })?;
    }
    crate::core::pause_point("migrate.pg.before_commit");
    tx.commit().map_err(err)?;
    Ok(Visit {
        ins,
        up,
        destructive: findings,
        would_fail: None,
    })
}

/// `visit` again for a destructive run once its snapshot is taken: the findings are allowed
/// now, and no second snapshot is taken.
fn visit_once_allowed(cx: &Ctx<'_>, client: &mut Client, t: &TenantRow) -> Result<Visit> {
    let opts = RunOptions {
        allow_destructive: true,
        ..cx.opts.clone()
    };
    let again = Ctx {
        run: cx.run,
        ws: cx.ws,
        target: cx.target,
        set: cx.set,
        version: cx.version,
        opts: &opts,
        schemas: cx.schemas.clone(),
        mode: cx.mode,
        run_dir: cx.run_dir.clone(),
    };
    NO_SNAPSHOT.with(|f| f.set(true));
    let r = visit(&again, client, t);
    NO_SNAPSHOT.with(|f| f.set(false));
    r
}

thread_local! {
    /// Set while a tenant is migrated again after its snapshot.
    static NO_SNAPSHOT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Visits every selected tenant on up to `jobs` connections (`core::pool`), handing outcomes to
/// `emit` in the tenants' order as they complete. Returns the tenants not started
/// (`--fail-fast`, Ctrl-C).
fn fan_out<T: Send>(
    cx: &Ctx<'_>,
    tenants: Vec<TenantRow>,
    progress: &dyn Progress,
    label: &str,
    work: impl Fn(&Ctx<'_>, &mut Option<Client>, &TenantRow) -> Result<T> + Sync,
    emit: &mut dyn FnMut(Outcome<T>),
) -> Result<Vec<String>> {
    let n = tenants.len();
    progress.start(n as u64, label);
    let run = crate::core::pool::Run {
        jobs: cx.opts.jobs.clamp(1, MAX_CONNECTIONS).min(n.max(1)),
        fail_fast: cx.opts.fail_fast,
        progress,
        name: |t: &TenantRow| &t.name,
    };
    let mut feed = tenants.into_iter();
    let mut not_started = Vec::new();
    crate::core::pool::ordered(
        &run,
        &mut || Ok(feed.next()),
        // Connected on first need: a run whose tenants all have nothing to do opens no
        // connection here; a connection that broke is opened again for the next tenant.
        &|| None,
        &|client, t| work(cx, client, t),
        &|r: &Result<T>| r.is_err(),
        &mut |t, r| match r {
            Some(r) => emit(Outcome::of(t.name, r)),
            None => not_started.push(t.name),
        },
    )?;
    progress.finish();
    Ok(not_started)
}

/// The worker's connection, opened when first needed or when the last one broke.
fn connection<'c>(cx: &Ctx<'_>, slot: &'c mut Option<Client>) -> Result<&'c mut Client> {
    if slot.as_ref().is_none_or(|c| c.is_closed()) {
        *slot = Some(cx.target.connect()?);
    }
    Ok(slot.as_mut().expect("connected above"))
}

/// Brings a schema being created (holding the API's baseline) to the set's latest version inside
/// the creating transaction: every later migration through the guard, bounded by `limit`, then
/// the history of all of them. A set of the baseline alone adds nothing (no history table: the
/// tenant is exactly what the API makes, and `migrate` adopts it like one of the API's).
pub(crate) fn execute_later(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    set: &MigrationSet,
    others: &[String],
    limit: std::time::Duration,
) -> Result<()> {
    execute_later_to(tx, target, schema, set, others, limit, set.latest())
}

/// `execute_later` up to `version` (a restored tenant's schema at its archived version).
pub(crate) fn execute_later_to(
    tx: &mut Transaction<'_>,
    target: &Target,
    schema: &str,
    set: &MigrationSet,
    others: &[String],
    limit: std::time::Duration,
    version: i64,
) -> Result<()> {
    let later: Vec<&super::Mig> = set
        .migs
        .iter()
        .filter(|m| m.version > schema::BASELINE_VERSION && m.version <= version)
        .collect();
    if later.is_empty() {
        return Ok(());
    }
    let err = |e| target.error(Some(schema), e);
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        limit.as_millis().max(1)
    ))
    .map_err(err)?;
    for m in &later {
        let checked = guard_postgres::check(&m.pg_sql, Path::new(&m.file), schema, others)?;
        for (i, st) in checked.iter().enumerate() {
            tx.batch_execute(&st.sql).map_err(|e| match e.code() {
                Some(c) if *c == postgres::error::SqlState::QUERY_CANCELED => {
                    Error::StatementTimeout {
                        path: m.file.clone().into(),
                        line: st.line,
                        number: i + 1,
                        limit,
                        statement: st.sql.clone(),
                    }
                }
                _ => Error::Postgres {
                    target: target.at(Some(schema)),
                    detail: format!(
                        "{}:{} (V{}): statement {} `{}` fails: {}",
                        m.file,
                        st.line,
                        m.version,
                        i + 1,
                        super::destructive::shorten(&st.sql),
                        e.as_db_error()
                            .map(|d| d.message().to_string())
                            .unwrap_or_else(|| e.to_string())
                    ),
                    exit: exit::FAILURE,
                },
            })?;
        }
    }
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .map_err(err)?;
    tx.batch_execute(HISTORY_DDL).map_err(err)?;
    for m in set.migs.iter().take_while(|m| m.version <= version) {
        tx.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES ($1::int8::int4, $2, $3, $4)",
            &[
                &m.version,
                &m.name,
                &ids::now_iso(),
                &m.pg_checksum.to_string(),
            ],
        )
        .map_err(err)?;
    }
    Ok(())
}

/// A fingerprint of a schema's content: every table's rows (in a stable order, as text), by
/// table name, hashed by the server (md5 of each table) and combined here (xxh3). The same
/// content gives the same fingerprint whatever order rows sit in on disk.
pub(crate) fn content_hash(
    client: &mut impl postgres::GenericClient,
    target: &Target,
    schema: &str,
) -> Result<String> {
    let err = |e| target.error(Some(schema), e);
    let tables: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
            &[&schema],
        )
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for t in tables {
        let digest: String = client
            .query_one(
                &format!(
                    "SELECT md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM {}.{} x",
                    ident(schema),
                    ident(&t)
                ),
                &[],
            )
            .map_err(err)?
            .get(0);
        h.update(t.as_bytes());
        h.update(b"\0");
        h.update(digest.as_bytes());
        h.update(b"\0");
    }
    Ok(format!("pg-xxh3:{:016x}", h.digest()))
}

/// `undo` of one PostgreSQL tenant: the snapshot (a `pg_dump` archive of its schema) replaces
/// the schema in one transaction, if the tenant is as the run left it; a tenant changed since
/// is left alone (exit 4), one already holding the snapshot's content is not touched again.
pub(super) fn restore_one(
    target: &Target,
    run: &Path,
    l: &super::ManifestLine,
) -> Result<super::Restored> {
    let snap = run.join(&l.snapshot);
    names::path_component("tenants.schema", &l.schema)?;
    let schema = l.schema.as_str();
    let script = crate::core::backend::postgres::restore_script(target, &snap)?;
    let mut client = target.connect()?;
    let err = |e| target.error(Some(schema), e);
    let mut tx = client.transaction().map_err(err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('monkctl.migrate.' || $1::text))",
        &[&schema],
    )
    .map_err(err)?;
    let now = content_hash(&mut tx, target, schema)?;
    if l.pre_hash.as_deref() == Some(now.as_str()) {
        tx.rollback().map_err(err)?;
        return Ok(super::Restored {
            restored_to: l.from,
            was: l.from,
            snapshot: snap,
            already: true,
        });
    }
    if now != l.post_hash {
        return Err(Error::Conflict(format!(
            "tenant '{}' changed since the migration run (its content differs from what the run left), so it was not restored; its snapshot stays at {}",
            l.tenant,
            snap.display()
        )));
    }
    tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", ident(schema)))
        .map_err(err)?;
    tx.batch_execute(&script).map_err(err)?;
    // The script's settings (search_path '') last for the session only; this one ends here.
    crate::core::pause_point("migrate.pg.undo.before_commit");
    tx.commit().map_err(err)?;
    Ok(super::Restored {
        restored_to: l.from,
        was: l.to,
        snapshot: snap,
        already: false,
    })
}

/// The schemas among `tenants` that have a history with nothing pending, diverged or missing
/// against the set up to `version`, with their version: read in statements of up to 500 schemas
/// each (one `UNION ALL` over their history tables). Read without a lock a writer waits for; a
/// tenant that changes meanwhile is found by its own visit (`visit` reads its history again).
fn up_to_date(
    client: &mut Client,
    target: &Target,
    tenants: &[TenantRow],
    set: &MigrationSet,
    version: i64,
) -> Result<HashMap<String, i64>> {
    let err = |e| target.error(None, e);
    let with_history: Vec<String> = client
        .query(
            "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = 'refinery_schema_history' AND c.relkind = 'r' \
             AND n.nspname = ANY($1)",
            &[&tenants
                .iter()
                .map(|t| t.schema.as_str())
                .collect::<Vec<_>>()],
        )
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut hist: HashMap<String, Vec<Applied>> = HashMap::new();
    for chunk in with_history.chunks(500) {
        let sql = chunk
            .iter()
            .map(|s| {
                format!(
                    "SELECT {}::text, version::int8, coalesce(name, '')::text, coalesce(checksum, '')::text FROM {}.refinery_schema_history",
                    crate::core::backend::postgres::literal(s),
                    ident(s)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        for r in client.query(&sql, &[]).map_err(err)? {
            hist.entry(r.get(0)).or_default().push(Applied {
                version: r.get(1),
                name: r.get(2),
                checksum: r.get(3),
            });
        }
    }
    let mut out = HashMap::new();
    for (schema, mut h) in hist {
        h.sort_by_key(|a| a.version);
        let ins = judge_history(&h, 0, set, version, |m| m.pg_checksum);
        if !ins.adopt && ins.pending.is_empty() && ins.diverged.is_empty() && ins.missing.is_empty()
        {
            out.insert(schema, ins.version);
        }
    }
    Ok(out)
}

/// `migrate status` and `migrate plan` on PostgreSQL.
pub(super) fn survey(
    ws: &Workspace,
    target: &Arc<Target>,
    set: &MigrationSet,
    opts: &RunOptions,
    plan: bool,
    progress: &dyn Progress,
    sink: &mut dyn RunSink<SurveyHead, TenantStatus>,
) -> Result<Survey> {
    let version = set.target(opts.target)?;
    let mut reg = Registry::open_existing(target)?;
    let infra = infra_status(&mut reg)?;
    let (tenants, files, skipped) = select(ws, &mut reg, &opts.selection)?;
    let schemas = crate::core::backend::postgres::schemas(&mut reg.client, target)?;
    drop(reg);
    let head = SurveyHead {
        infra,
        target: version,
        migrations: set.infos(),
        run_in_progress: None,
    };
    sink.begin(&head);
    let cx = Ctx {
        run: None,
        ws,
        target,
        set,
        version,
        opts,
        schemas,
        mode: if plan { Mode::Plan } else { Mode::Status },
        run_dir: ws.layout.snapshots_dir(),
    };
    let mut summary = Summary {
        skipped,
        ..Summary::default()
    };
    let mut tally = Tally::default();
    fan_out(
        &cx,
        tenants,
        progress,
        if plan { "planning" } else { "reading" },
        |cx, slot, t| {
            let v = visit(cx, connection(cx, slot)?, t)?;
            Ok(TenantStatus {
                path: None,
                inspection: v.ins,
                locked: false,
                destructive: v.destructive,
                would_fail: v.would_fail,
            })
        },
        &mut |o: Outcome<TenantStatus>| {
            summary.add(&o);
            tally.add(&o);
            sink.outcome(o);
        },
    )?;
    if !files.is_empty() {
        super::survey_files(
            ws,
            set,
            opts,
            version,
            plan,
            files,
            progress,
            &mut |o: Outcome<TenantStatus>| {
                summary.add(&o);
                tally.add(&o);
                sink.outcome(o);
            },
        )?;
    }
    Ok(Survey {
        head,
        tenants: tally,
        summary,
    })
}

/// `migrate up` on PostgreSQL.
pub(super) fn up(
    ws: &Workspace,
    target: &Arc<Target>,
    set: &MigrationSet,
    opts: &RunOptions,
    progress: &dyn Progress,
    sink: &mut dyn RunSink<UpHead, TenantUp>,
) -> Result<UpReport> {
    let version = set.target(opts.target)?;
    let (before, _) = Registry::open_existing(target)?.infra_versions()?;
    let mut reg = Registry::open_for_write(target)?;
    let after = infra_status(&mut reg)?;
    let (tenants, files, skipped) = select(ws, &mut reg, &opts.selection)?;
    let schemas = crate::core::backend::postgres::schemas(&mut reg.client, target)?;
    // Tenants with nothing to do are found from their histories, read for many schemas in one
    // statement, and need no transaction of their own.
    let idle = up_to_date(&mut reg.client, target, &tenants, set, version)?;
    drop(reg);
    let run_id = format!(
        "{}-pg-{}",
        ids::now_iso().replace([':', '.'], "-"),
        std::process::id()
    );
    let head = UpHead {
        run_id: run_id.clone(),
        target: version,
        infra: InfraUp {
            path: None,
            from: before,
            to: after.version,
        },
        took_over_stale_lock: None,
    };
    sink.begin(&head);
    let run_dir = ws.layout.snapshots_dir().join(&run_id);
    let manifest = super::RunDir {
        dir: run_dir.clone(),
        manifest: Mutex::new(None),
    };
    let cx = Ctx {
        run: Some(&manifest),
        ws,
        target,
        set,
        version,
        opts,
        schemas,
        mode: Mode::Up,
        run_dir: run_dir.clone(),
    };
    let mut summary = UpSummary {
        tenants: tenants.len() + files.len(),
        skipped,
        ..UpSummary::default()
    };
    let mut tally = Tally::default();
    let not_started = fan_out(
        &cx,
        tenants,
        progress,
        "migrating",
        |cx, slot, t| match idle.get(&t.schema) {
            Some(v) => Ok(TenantUp {
                from: *v,
                to: *v,
                applied: Vec::new(),
                adopted: false,
                snapshot: None,
            }),
            None => visit(cx, connection(cx, slot)?, t).map(|v| v.up),
        },
        &mut |o: Outcome<TenantUp>| {
            summary.add(&o);
            tally.add(&o);
            sink.outcome(o);
        },
    )?;
    let mut not_started = not_started;
    if !files.is_empty() {
        if opts.fail_fast && tally.failed > 0 {
            not_started.extend(files.iter().map(|t| t.name.clone()));
        } else {
            not_started.extend(super::up_files(
                ws,
                set,
                opts,
                version,
                files,
                &run_dir,
                progress,
                &mut |o: Outcome<TenantUp>| {
                    summary.add(&o);
                    tally.add(&o);
                    sink.outcome(o);
                },
            )?);
        }
    }
    summary.failed = tally.failed;
    summary.not_started = not_started.len();
    Ok(UpReport {
        head,
        snapshots: run_dir.is_dir().then_some(run_dir),
        tenants: tally,
        not_started,
        summary,
    })
}
