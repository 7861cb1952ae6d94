//! Routine maintenance of tenant files: `tenant vacuum` (checkpoint, VACUUM, ANALYZE, optimize)
//! and `tenant usage` (sizes, pages, rows, last change).
//!
//! Vacuum changes files only through SQLite, on a connection with a short busy timeout, so a
//! tenant the API is writing is skipped instead of waited for. Usage only reads
//! (`db::read_quietly`). Neither touches the registry. On PostgreSQL, vacuum is `VACUUM
//! (ANALYZE)` of each table of a tenant's schema and usage reads the catalog and row counts.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use serde::Serialize;

use super::db;
use super::error::{Context, Error, Result};
use super::fsutil;
use super::ids;
use super::names;
use super::progress::Progress;
use super::registry::TenantRow;
use super::tenant::{self, TableCount};
use super::{Backend, Batch, Store, Workspace};

/// How long vacuum waits for a tenant's lock before skipping it as in use.
pub const VACUUM_BUSY_TIMEOUT: Duration = Duration::from_millis(200);

/// A tenant `tenant vacuum` vacuumed. A tenant another connection held is an error of its
/// own (`Error::Busy`, exit 5): it was skipped with nothing changed, and another run may do it.
#[derive(Debug, Clone, Serialize)]
pub struct Vacuumed {
    pub path: Option<PathBuf>,
    /// File plus WAL (a schema's tables and indexes on PostgreSQL), before and after.
    pub size_before_bytes: Option<u64>,
    pub size_after_bytes: Option<u64>,
    /// `size_before_bytes - size_after_bytes` (0 when it grew).
    pub reclaimed_bytes: u64,
}

/// A batch like every run over several tenants (`results`, `succeeded`, `failed`), and the
/// space reclaimed in all.
#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    #[serde(flatten)]
    pub batch: Batch<Vacuumed>,
    pub reclaimed_bytes: u64,
}

/// The live tenants to work on: the named ones (each must exist and not be deleted), or with
/// `all` every tenant that is not deleted.
fn targets(ws: &Workspace, names_given: &[String], all: bool) -> Result<Vec<TenantRow>> {
    if names_given.is_empty() && !all {
        return Err(Error::Usage("name the tenants, or pass --all".into()));
    }
    for n in names_given {
        names::tenant(n)?;
    }
    let mut reg = ws.store()?;
    if all {
        return Ok(reg.all()?.into_iter().filter(|t| !t.is_deleted()).collect());
    }
    let mut out = Vec::new();
    for n in names_given {
        let t = reg.get(n)?;
        if t.is_deleted() {
            return Err(Error::Conflict(format!(
                "tenant '{n}' is deleted; its file is in the trash and is not maintained"
            )));
        }
        out.push(t);
    }
    Ok(out)
}

fn file_and_wal(path: &Path) -> Option<u64> {
    let main = fsutil::size_of(path)?;
    Some(main + fsutil::size_of(&fsutil::with_suffix(path, "-wal")).unwrap_or(0))
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Checkpoints, vacuums and analyzes tenants one after another. A tenant another connection
/// holds is skipped (reported, exit code 8), never waited for beyond `VACUUM_BUSY_TIMEOUT`.
pub fn vacuum(
    ws: &Workspace,
    names_given: &[String],
    all: bool,
    progress: &dyn Progress,
) -> Result<VacuumReport> {
    let rows = targets(ws, names_given, all)?;
    progress.start(rows.len() as u64, "vacuuming");
    let mut batch = Batch::default();
    let mut pg = match &ws.backend {
        Backend::Postgres(_) => match ws.store()? {
            Store::Postgres(reg) => Some(reg),
            Store::Sqlite(_) => None,
        },
        Backend::Sqlite => None,
    };
    // Ctrl-C: the tenant being vacuumed finishes, no other starts.
    let _stoppable = crate::core::Stoppable::begin();
    for t in &rows {
        if crate::core::interrupted() {
            batch.push(&t.name, Err(Error::Interrupted));
            continue;
        }
        let r = match pg.as_mut() {
            Some(reg) => vacuum_schema(reg, t),
            None => vacuum_one(ws, t),
        };
        crate::core::pause_point("tenant.vacuum.done");
        batch.push(&t.name, r);
        progress.advance(1, &t.name);
    }
    progress.finish();
    let reclaimed_bytes = batch
        .results
        .iter()
        .filter_map(|o| o.result.as_ref())
        .map(|v| v.reclaimed_bytes)
        .sum();
    Ok(VacuumReport {
        batch,
        reclaimed_bytes,
    })
}

/// `size_before - size_after`, 0 when it grew.
fn vacuumed(path: Option<PathBuf>, before: Option<u64>, after: Option<u64>) -> Vacuumed {
    Vacuumed {
        path,
        size_before_bytes: before,
        size_after_bytes: after,
        reclaimed_bytes: match (before, after) {
            (Some(b), Some(a)) => b.saturating_sub(a),
            _ => 0,
        },
    }
}

enum Step {
    Busy(String),
    Failed(Error),
}

/// PostgreSQL: `VACUUM (ANALYZE)` of each table of the tenant's schema. VACUUM takes a SHARE
/// UPDATE EXCLUSIVE lock, which the API's reads and writes do not wait for; a table another
/// session holds more strongly is skipped after `VACUUM_BUSY_TIMEOUT`.
fn vacuum_schema(
    reg: &mut crate::core::backend::postgres::Registry,
    t: &TenantRow,
) -> Result<Vacuumed> {
    let size = |reg: &mut crate::core::backend::postgres::Registry| {
        reg.schema_sizes()
            .ok()
            .and_then(|s| s.get(&t.schema).copied())
    };
    let before = size(reg);
    reg.vacuum_schema(&t.schema, VACUUM_BUSY_TIMEOUT)
        .map_err(|e| match e.exit_code() {
            crate::core::exit::BUSY => Error::Busy {
                what: format!("tenant '{}'", t.name),
                detail: format!("in use by another session, skipped: {e}"),
            },
            _ => e,
        })?;
    Ok(vacuumed(None, before, size(reg)))
}

fn vacuum_one(ws: &Workspace, t: &TenantRow) -> Result<Vacuumed> {
    let path = ws.layout.tenant_path(&t.database, &t.schema)?;
    let before = file_and_wal(&path);
    run_vacuum(&path).map_err(|e| match e {
        Step::Busy(detail) => Error::Busy {
            what: path.display().to_string(),
            detail: format!("in use by another connection, skipped: {detail}"),
        },
        Step::Failed(e) => e,
    })?;
    Ok(vacuumed(Some(path.clone()), before, file_and_wal(&path)))
}

fn run_vacuum(path: &Path) -> std::result::Result<(), Step> {
    let failed = Step::Failed;
    let conn = db::open(path, db::Mode::ReadWrite).map_err(|e| match e {
        Error::Busy { detail, .. } => Step::Busy(detail),
        e => failed(e),
    })?;
    conn.busy_timeout(VACUUM_BUSY_TIMEOUT)
        .map_err(|e| Step::Failed(Error::sqlite(path, e)))?;
    let step = |sql: &str| -> std::result::Result<(), Step> {
        conn.execute_batch(sql).map_err(|e| {
            if is_busy(&e) {
                Step::Busy(e.to_string())
            } else {
                failed(Error::sqlite(path, e))
            }
        })
    };
    checkpoint(&conn, path)?;
    step("VACUUM")?;
    step("ANALYZE; PRAGMA optimize;")?;
    // VACUUM in WAL mode writes the new pages to the WAL; fold them into the file.
    checkpoint(&conn, path)?;
    Ok(())
}

fn checkpoint(conn: &Connection, path: &Path) -> std::result::Result<(), Step> {
    match db::checkpoint_truncate(conn) {
        Ok(c) if !c.busy => Ok(()),
        Ok(_) => Err(Step::Busy("a reader or writer holds its WAL".into())),
        Err(e) if is_busy(&e) => Err(Step::Busy(e.to_string())),
        Err(e) => Err(Step::Failed(Error::sqlite(path, e))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsageSort {
    #[default]
    Name,
    Size,
    Wal,
    Rows,
    Free,
    Changed,
}

/// `tenant usage`: one tenant's space and content.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub tenant: String,
    pub status: String,
    /// The tenant's file; `null` on PostgreSQL (the sizes are its schema's).
    pub path: Option<PathBuf>,
    /// The main file (a schema's tables and indexes on PostgreSQL), without its WAL.
    #[serde(rename = "size_bytes")]
    pub file_bytes: Option<u64>,
    pub wal_bytes: Option<u64>,
    pub page_size: Option<i64>,
    pub page_count: Option<i64>,
    pub freelist_count: Option<i64>,
    #[serde(rename = "row_count")]
    pub total_rows: Option<i64>,
    pub tables: Vec<TableCount>,
    /// The newer modification time of the file and its WAL, ISO 8601 UTC.
    #[serde(rename = "last_changed_at")]
    pub last_change: Option<String>,
    /// Why the file could not be read, if it could not.
    pub error: Option<String>,
}

/// Usage of the named tenants, or of every tenant (deleted and trashed ones only with `all`;
/// a deleted tenant's file is read in the trash).
pub fn usage(
    ws: &Workspace,
    names_given: &[String],
    all: bool,
    sort: UsageSort,
    reverse: bool,
) -> Result<Vec<Usage>> {
    for n in names_given {
        names::tenant(n)?;
    }
    let mut reg = ws.store()?;
    let rows: Vec<TenantRow> = if names_given.is_empty() {
        reg.all()?
            .into_iter()
            .filter(|t| all || !(t.is_deleted() || t.is_trashed()))
            .collect()
    } else {
        names_given
            .iter()
            .map(|n| reg.get(n))
            .collect::<Result<_>>()?
    };
    let mut out: Vec<Usage> = match &mut reg {
        Store::Postgres(pg) => {
            let sizes = pg.schema_sizes()?;
            rows.iter().map(|t| usage_schema(pg, &sizes, t)).collect()
        }
        Store::Sqlite(_) => {
            drop(reg);
            rows.iter().map(|t| usage_one(ws, t)).collect()
        }
    };
    match sort {
        UsageSort::Name => out.sort_by(|a, b| a.tenant.cmp(&b.tenant)),
        UsageSort::Size => out.sort_by_key(|u| std::cmp::Reverse(u.file_bytes)),
        UsageSort::Wal => out.sort_by_key(|u| std::cmp::Reverse(u.wal_bytes)),
        UsageSort::Rows => out.sort_by_key(|u| std::cmp::Reverse(u.total_rows)),
        UsageSort::Free => out.sort_by_key(|u| std::cmp::Reverse(u.freelist_count)),
        UsageSort::Changed => out.sort_by(|a, b| b.last_change.cmp(&a.last_change)),
    }
    if reverse {
        out.reverse();
    }
    Ok(out)
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// PostgreSQL: the schema's bytes (tables with indexes and TOAST), its pages of 8 KiB, and row
/// counts read in one snapshot; there is no WAL or free list of its own.
fn usage_schema(
    reg: &mut crate::core::backend::postgres::Registry,
    sizes: &std::collections::HashMap<String, u64>,
    t: &TenantRow,
) -> Usage {
    let mut u = Usage {
        tenant: t.name.clone(),
        status: t.status.clone(),
        path: None,
        file_bytes: sizes.get(&t.schema).copied(),
        wal_bytes: None,
        page_size: Some(8192),
        page_count: sizes.get(&t.schema).map(|b| (*b / 8192) as i64),
        freelist_count: None,
        total_rows: None,
        tables: Vec::new(),
        last_change: None,
        error: None,
    };
    if u.file_bytes.is_none() {
        u.error = Some(format!(
            "the schema {} is missing (run `monkctl doctor`)",
            t.schema
        ));
        return u;
    }
    match reg.read_content(&t.schema, &t.owner_id) {
        Ok((_, tables)) => {
            u.total_rows = Some(tables.iter().map(|t| t.rows).sum());
            u.tables = tables;
        }
        Err(e) => u.error = Some(e.to_string()),
    }
    u
}

fn usage_one(ws: &Workspace, t: &TenantRow) -> Usage {
    let path = tenant::file_of(&ws.layout, t).unwrap_or_default();
    let wal = fsutil::with_suffix(&path, "-wal");
    let mut u = Usage {
        tenant: t.name.clone(),
        status: t.status.clone(),
        file_bytes: fsutil::size_of(&path),
        wal_bytes: fsutil::size_of(&wal),
        page_size: None,
        page_count: None,
        freelist_count: None,
        total_rows: None,
        tables: Vec::new(),
        last_change: mtime(&path).max(mtime(&wal)).map(ids::iso_from),
        error: None,
        path: Some(path.clone()),
    };
    if u.file_bytes.is_none() {
        u.error = Some("the file is missing (run `monkctl doctor`)".into());
        return u;
    }
    match read_usage(&path) {
        Ok((ps, pc, fc, tables)) => {
            u.page_size = Some(ps);
            u.page_count = Some(pc);
            u.freelist_count = Some(fc);
            u.total_rows = Some(tables.iter().map(|t| t.rows).sum());
            u.tables = tables;
        }
        Err(e) => u.error = Some(e.to_string()),
    }
    u
}

fn read_usage(path: &Path) -> Result<(i64, i64, i64, Vec<TableCount>)> {
    db::read_quietly(path, |conn, path| {
        let pragma = |p: &str| -> Result<i64> {
            conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
                .at(path)
        };
        let (ps, pc, fc) = (
            pragma("page_size")?,
            pragma("page_count")?,
            pragma("freelist_count")?,
        );
        let tables = db::table_counts(conn).at(path)?;
        Ok((ps, pc, fc, tables))
    })
}
