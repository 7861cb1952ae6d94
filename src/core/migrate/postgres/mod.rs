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
//!
//! Parts: this file (selection, the runs `survey` and `up`, the fan-out over connections),
//! `visit` (one tenant: its history, catalog view, migration and destructive judgement) and
//! `later` (the set applied outside a run, to a schema being created or restored; the content
//! fingerprint; `undo` of one tenant from its snapshot).

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

mod later;
mod visit;

pub(in crate::core::migrate) use later::restore_one;
pub(crate) use later::{content_hash, execute_later, execute_later_to};

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
            let v = visit::visit(cx, connection(cx, slot)?, t)?;
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
            None => visit::visit(cx, connection(cx, slot)?, t).map(|v| v.up),
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
