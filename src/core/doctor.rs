//! `doctor`: finds what crashes, full disks and hand edits leave behind in a data directory, and
//! repairs what is safe to repair.
//!
//! Owns the checks (each an independent function that appends findings), the findings' stable
//! codes, and the repairs. Checks only read: tenant files are read with `db::read_quietly`
//! (no lock a running API trips on) and never changed. Repairs never touch tenant data: they remove
//! monkctl's own dead temporary files (and the scratch directories killed `fixture check`s of
//! older versions left in the system temporary directory) and stale lock files, move unclaimed files to
//! `<data>/orphans/` (never delete them), checkpoint WALs through SQLite, narrow permissions,
//! finish an interrupted move to the trash, and bring `tenant_fixtures` to what the tenant files
//! record (and prove).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use serde::Serialize;

use super::db;
use super::error::{exit, Context, Error, Result};
use super::fixture;
use super::fsutil::{self, pid_alive};
use super::ids;
use super::layout::Layout;
use super::lock::{self, LockState};
use super::migrate::MigrationSet;
use super::names;
use super::progress::Progress;
use super::registry::{Registry, TenantRow};
use super::schema;
use super::system;
use super::tenant;
use super::{Store, Workspace};

#[path = "doctor_postgres.rs"]
mod postgres;

/// A WAL above this size is reported (`wal_oversized`): the API checkpoints on its own, so a
/// large WAL means a reader held it open for long or checkpoints keep failing.
pub const WAL_WARN_BYTES: u64 = 64 * 1024 * 1024;

/// The fixture every tenant built from the API's schema holds.
const SYSTEM_FIXTURE: &str = "system";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Healthy,
    Degraded,
    Failing,
}

impl Status {
    /// The exit code of a doctor run with this status.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Healthy => exit::SUCCESS,
            Status::Degraded => exit::DEGRADED,
            Status::Failing => exit::FAILING,
        }
    }
}

/// What `--repair` would do about a finding. Not serialized: the finding's `fix` says it in words.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    RemoveTemp(PathBuf),
    RemoveScratch(PathBuf),
    RemoveStaleLock(PathBuf),
    MoveToOrphans(PathBuf),
    /// A PostgreSQL tenant schema no registry row claims: renamed aside, never dropped.
    SchemaAside(String),
    Checkpoint(PathBuf),
    Chmod(PathBuf, u32),
    FinishTrashMove(String),
    RecordFixture {
        tenant_id: String,
        fixture: String,
        version: Option<String>,
        deployed_at: Option<String>,
    },
    ForgetFixture {
        tenant_id: String,
        fixture: String,
    },
}

/// One problem found. `code` is a stable snake_case identifier for scripts.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    /// The tenant it is about; `null` for the data directory, or for a finding that stands for
    /// several tenants (`tenants`).
    pub tenant: Option<String>,
    /// Every tenant it is about, in name order (one, or the tenants of a grouped finding).
    pub tenants: Vec<String>,
    /// How many places it stands for: 1, or the number of tenants of a grouped finding.
    pub count: usize,
    pub path: Option<PathBuf>,
    pub message: String,
    pub fix: String,
    pub repairable: bool,
    #[serde(skip)]
    action: Option<Action>,
}

impl Finding {
    fn new(severity: Severity, code: &'static str, message: String, fix: &str) -> Finding {
        Finding {
            severity,
            code,
            tenant: None,
            tenants: Vec::new(),
            count: 1,
            path: None,
            message,
            fix: fix.to_string(),
            repairable: false,
            action: None,
        }
    }

    fn tenant(mut self, name: &str) -> Finding {
        self.tenant = Some(name.to_string());
        self
    }

    fn path(mut self, p: &Path) -> Finding {
        self.path = Some(p.to_path_buf());
        self
    }

    fn repair(mut self, a: Action) -> Finding {
        self.repairable = true;
        self.action = Some(a);
        self
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub tenants_checked: usize,
}

/// One repair that `--repair` attempted.
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    pub code: &'static str,
    pub tenant: Option<String>,
    pub path: Option<PathBuf>,
    /// What was done, in words (`removed`, `moved to ...`, `checkpointed`, ...).
    pub action: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// The result of a doctor run. With `--repair`, `status`, `summary` and `findings` are those of
/// the checks re-run after repairing; `status_before` is the status found first.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Status,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    pub repairs: Vec<Repair>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_before: Option<Status>,
    /// Ctrl-C stopped the tenant checks: the tenants not reached are not in `summary` (exit 130).
    pub interrupted: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these tenants (and no data-directory checks) when not empty.
    pub tenants: Vec<String>,
    /// `integrity_check` and `foreign_key_check` instead of `quick_check`.
    pub full: bool,
    pub repair: bool,
    /// Threads for the tenant checks (`core::pool::jobs`).
    pub jobs: usize,
}

fn status_of(findings: &[Finding]) -> Status {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => Status::Failing,
        Some(Severity::Warning) => Status::Degraded,
        _ => Status::Healthy,
    }
}

fn summarize(findings: &[Finding], tenants_checked: usize) -> Summary {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    Summary {
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        infos: count(Severity::Info),
        tenants_checked,
    }
}

/// A finding about this many tenants or more, with the same code and fix, is reported once.
const GROUP_AT: usize = 3;

/// Reports a finding that stands for many tenants once: with the count, every tenant in
/// `tenants`, and the first tenant's message as the example. The status and the repairs are
/// decided on the findings as found, before grouping.
fn grouped(findings: Vec<Finding>) -> Vec<Finding> {
    let mut sizes: HashMap<(Severity, &'static str, String), usize> = HashMap::new();
    for f in findings.iter().filter(|f| f.tenant.is_some()) {
        *sizes
            .entry((f.severity, f.code, f.fix.clone()))
            .or_default() += 1;
    }
    let mut out: Vec<Finding> = Vec::new();
    let mut group_at: HashMap<(Severity, &'static str, String), usize> = HashMap::new();
    for mut f in findings {
        let key = (f.severity, f.code, f.fix.clone());
        let Some(tenant) = f.tenant.clone() else {
            out.push(f);
            continue;
        };
        if sizes.get(&key).copied().unwrap_or(0) < GROUP_AT {
            f.tenants = vec![tenant];
            out.push(f);
            continue;
        }
        match group_at.get(&key) {
            Some(&i) => {
                out[i].tenants.push(tenant);
                out[i].count += 1;
            }
            None => {
                let n = sizes[&key];
                f.message = format!("{n} tenants, for example '{tenant}': {}", f.message);
                f.tenant = None;
                f.path = None;
                f.tenants = vec![tenant];
                group_at.insert(key, out.len());
                out.push(f);
            }
        }
    }
    out
}

/// Runs the checks, and with `opts.repair` the repairs and the checks again.
pub fn run(ws: &Workspace, opts: &Options, progress: &dyn Progress) -> Result<Report> {
    for t in &opts.tenants {
        names::tenant(t)?;
    }
    let (findings, checked) = check(ws, opts, progress)?;
    // Interrupted: the findings so far, and no repair (Ctrl-C asks to stop, not to change more).
    if !opts.repair || crate::core::interrupted() {
        return Ok(Report {
            status: status_of(&findings),
            summary: summarize(&findings, checked),
            findings: grouped(findings),
            repairs: Vec::new(),
            status_before: None,
            interrupted: crate::core::interrupted(),
        });
    }
    let before = status_of(&findings);
    let repairs = repair(ws, &findings);
    let (findings, checked) = check(ws, opts, progress)?;
    Ok(Report {
        status: status_of(&findings),
        summary: summarize(&findings, checked),
        findings: grouped(findings),
        repairs,
        status_before: Some(before),
        interrupted: crate::core::interrupted(),
    })
}

/// What the checks share: the layout, the registry rows and who claims which file.
struct Ctx<'a> {
    layout: &'a Layout,
    registry: &'a Registry,
    rows: Vec<TenantRow>,
    fixtures: HashMap<String, Vec<String>>,
    /// Files (main database files) that rows claim: live files of all rows, trash files of
    /// deleted rows.
    claimed: HashSet<PathBuf>,
    /// Directories that hold tenant files.
    tenant_dirs: Vec<PathBuf>,
}

/// Checks of the data directory as a whole, run unless `--tenant` narrows the run. Each is
/// independent: a new kind of file (templates, snapshots, archives) adds its own function here.
const DATA_DIR_CHECKS: &[fn(&Ctx<'_>, &mut Vec<Finding>)] = &[
    check_infra,
    check_second_registry,
    check_registry_rules,
    check_orphans,
    check_dir_permissions,
];

/// Checks of monkctl's own state in the data directory (temporary files, scratch directories,
/// locks, the modes of its directories and snapshots), the same on both backends, run unless
/// `--tenant` narrows the run.
const STATE_CHECKS: &[fn(&Layout, &mut Vec<Finding>)] = &[
    check_temp_leftovers,
    check_scratch_leftovers,
    check_locks,
    check_state_permissions,
];

/// Checks of one registry row against the files, run for every selected tenant.
const ROW_CHECKS: &[fn(&Ctx<'_>, &TenantRow, &mut Vec<Finding>)] = &[check_row];

/// Runs every check; returns the findings (sorted: errors first) and how many tenant files were
/// checked.
fn check(ws: &Workspace, opts: &Options, progress: &dyn Progress) -> Result<(Vec<Finding>, usize)> {
    if let super::Backend::Postgres(_) = ws.backend {
        let Store::Postgres(mut reg) = ws.store()? else {
            unreachable!("a PostgreSQL deployment has a PostgreSQL registry")
        };
        let (mut found, checked) = postgres::check(&mut reg, opts, ws.sqlite_files.as_ref())?;
        if opts.tenants.is_empty() {
            for check in STATE_CHECKS {
                check(&ws.layout, &mut found);
            }
        }
        sort_findings(&mut found);
        return Ok((found, checked));
    }
    let layout = &ws.layout;
    let mut out = Vec::new();
    let reg = match ws.registry() {
        Ok(r) => r,
        Err(e @ Error::NoInfra { .. }) => return Err(e),
        Err(e) => {
            out.push(
                Finding::new(
                    Severity::Error,
                    "infra_unreadable",
                    format!("the infra database cannot be read: {e}"),
                    "restore the infra database from a backup; no tenant was checked",
                )
                .path(&layout.infra_path),
            );
            return Ok((out, 0));
        }
    };
    let rows = reg.all()?;
    for t in &opts.tenants {
        if !rows.iter().any(|r| &r.name == t) {
            return Err(Error::TenantNotFound(t.clone()));
        }
    }
    let fixtures = reg
        .all_fixtures()?
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().map(|f| f.fixture_name).collect()))
        .collect();
    let ctx = Ctx::new(layout, &reg, rows, fixtures);
    let selected: Vec<&TenantRow> = ctx
        .rows
        .iter()
        .filter(|r| opts.tenants.is_empty() || opts.tenants.contains(&r.name))
        .collect();

    if opts.tenants.is_empty() {
        for check in DATA_DIR_CHECKS {
            check(&ctx, &mut out);
        }
        for check in STATE_CHECKS {
            check(layout, &mut out);
        }
    }
    for t in &selected {
        for check in ROW_CHECKS {
            check(&ctx, t, &mut out);
        }
    }
    let checked = check_tenant_files(
        &ctx,
        ws.migration_set()?,
        &selected,
        opts,
        progress,
        &mut out,
    );
    drop(ctx);
    drop(reg);
    sort_findings(&mut out);
    Ok((out, checked))
}

/// Errors first, then by tenant, code and path.
fn sort_findings(out: &mut [Finding]) {
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.tenant.cmp(&b.tenant))
            .then_with(|| a.code.cmp(b.code))
            .then_with(|| a.path.cmp(&b.path))
    });
}

impl<'a> Ctx<'a> {
    fn new(
        layout: &'a Layout,
        registry: &'a Registry,
        rows: Vec<TenantRow>,
        fixtures: HashMap<String, Vec<String>>,
    ) -> Ctx<'a> {
        let mut claimed = HashSet::new();
        let mut dirs: Vec<PathBuf> = vec![layout.data_dir.join(layout.new_tenant_database())];
        for r in &rows {
            if let Ok(p) = layout.tenant_path(&r.database, &r.schema) {
                if let Some(d) = p.parent() {
                    if !dirs.iter().any(|x| x == d) {
                        dirs.push(d.to_path_buf());
                    }
                }
                claimed.insert(p);
            }
            if r.is_deleted() {
                if let Ok(p) = layout.trash_path(&r.schema, &r.id) {
                    claimed.insert(p);
                }
            }
        }
        // The infra database is claimed too (in the API-6 layout it sits among the tenants).
        claimed.insert(layout.infra_path.clone());
        Ctx {
            layout,
            registry,
            rows,
            fixtures,
            claimed,
            tenant_dirs: dirs,
        }
    }
}

/// The infra database itself: integrity and migration state.
fn check_infra(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let reg = ctx.registry;
    let path = &reg.path;
    match quick_check(&reg.conn) {
        Ok(problems) if problems.is_empty() => {}
        Ok(problems) => out.push(
            Finding::new(
                Severity::Error,
                "infra_integrity",
                format!(
                    "the infra database fails quick_check: {}",
                    problems.join("; ")
                ),
                "stop the API, restore the infra database from a backup",
            )
            .path(path),
        ),
        Err(e) => out.push(
            Finding::new(
                Severity::Error,
                "infra_integrity",
                format!("the infra database cannot be checked: {e}"),
                "stop the API, restore the infra database from a backup",
            )
            .path(path),
        ),
    }
    let applied = infra_version(&reg.conn).unwrap_or(0);
    let latest = Registry::latest_version();
    if applied > latest {
        out.push(
            Finding::new(
                Severity::Warning,
                "infra_newer",
                format!("the infra database is at migration {applied}, newer than this monkctl knows ({latest})"),
                "upgrade monkctl before changing the registry",
            )
            .path(path),
        );
    } else if applied < latest {
        out.push(
            Finding::new(
                Severity::Info,
                "infra_migrations_pending",
                format!("the infra database is at migration {applied} of {latest} (an API-created registry has none recorded)"),
                "nothing to do: the next monkctl command that writes the registry applies them",
            )
            .path(path),
        );
    }
}

fn infra_version(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(db::history_version(conn)?.unwrap_or(0))
}

/// Rules over all rows: unique names and locations (a hand edit can drop the constraints).
/// Another registry in the data directory (the other layout, or another API database): the API
/// reads the one its `DATABASE_URL` names, monkctl the one its settings chose.
fn check_second_registry(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    for other in ctx.layout.other_registries() {
        out.push(
            Finding::new(
                Severity::Warning,
                "second_registry",
                format!(
                    "the data directory holds a second registry besides {} ({} layout), which monkctl does not administer",
                    ctx.layout.infra_path.display(),
                    ctx.layout.kind.as_str()
                ),
                "make sure the API's DATABASE_URL names the registry monkctl administers; move the unused one out of the data directory",
            )
            .path(&other),
        );
    }
}

fn check_registry_rules(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_loc: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for r in &ctx.rows {
        *by_name.entry(&r.name).or_default() += 1;
        by_loc
            .entry((&r.database, &r.schema))
            .or_default()
            .push(&r.name);
    }
    for (name, n) in by_name.into_iter().filter(|(_, n)| *n > 1) {
        out.push(
            Finding::new(
                Severity::Error,
                "duplicate_name",
                format!("{n} registry rows are named '{name}'"),
                "edit the infra database so that each name has one row (the API picks one at random)",
            )
            .tenant(name),
        );
    }
    for ((database, schema), names) in by_loc.into_iter().filter(|(_, v)| v.len() > 1) {
        out.push(Finding::new(
            Severity::Error,
            "duplicate_location",
            format!(
                "tenants {} all claim the file {database}/{schema}.db",
                names.join(", ")
            ),
            "give each row its own database/schema; tenants sharing a file see each other's data",
        ));
    }
}

/// Rules of one row: a valid location, status consistent with `deleted_at`, the file where the
/// row says (live for a live tenant, not live for a deleted one).
fn check_row(ctx: &Ctx<'_>, t: &TenantRow, out: &mut Vec<Finding>) {
    let live = match ctx.layout.tenant_path(&t.database, &t.schema) {
        Ok(p) => p,
        Err(e) => {
            out.push(
                Finding::new(
                    Severity::Error,
                    "invalid_location",
                    format!("the row's database/schema do not name a file: {e}"),
                    "fix tenants.database and tenants.schema in the infra database",
                )
                .tenant(&t.name),
            );
            return;
        }
    };
    let deleted_at = t.deleted_at.is_some();
    let status_deleted = t.status == "deleted";
    if deleted_at != status_deleted {
        out.push(
            Finding::new(
                Severity::Warning,
                "status_inconsistent",
                format!(
                    "status is '{}' but deleted_at is {}",
                    t.status,
                    t.deleted_at.as_deref().unwrap_or("not set")
                ),
                "set both (status 'deleted' and deleted_at) or neither; run `monkctl tenant delete` to finish a delete",
            )
            .tenant(&t.name),
        );
    }
    if t.is_deleted() {
        if live.exists() {
            let trash = ctx.layout.trash_path(&t.schema, &t.id).ok();
            let mut f = Finding::new(
                Severity::Warning,
                "deleted_file_live",
                "the tenant is deleted but its file is still in place (an interrupted delete)"
                    .into(),
                "`monkctl doctor --repair` (or `tenant delete` again) moves it to the trash",
            )
            .tenant(&t.name)
            .path(&live);
            if trash.is_some_and(|p| !p.exists()) {
                f = f.repair(Action::FinishTrashMove(t.name.clone()));
            } else {
                f.fix = "its trash file exists already: compare the two and move one to <data>/orphans/ by hand".into();
            }
            out.push(f);
        }
    } else if !live.exists() {
        out.push(
            Finding::new(
                Severity::Error,
                "file_missing",
                "the tenant's database file is missing; the API cannot serve it".into(),
                "restore the file from a backup or archive, or delete the tenant",
            )
            .tenant(&t.name)
            .path(&live),
        );
    }
}

/// Files in tenant directories and in the trash that no row claims, including `-wal`/`-shm`
/// without their main file (a stale WAL would be replayed into any file later put there).
fn check_orphans(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let mut dirs = ctx.tenant_dirs.clone();
    dirs.push(ctx.layout.trash_dir());
    // `restore --force` saves the tenant it replaces as `<schema>.<id>.<stamp>.before-restore…`
    // in the trash: a copy kept on purpose, not an orphan.
    let saved_prefixes: HashSet<String> = ctx
        .rows
        .iter()
        .map(|r| format!("{}.{}.", r.schema, r.id))
        .collect();
    let is_saved_copy = |name: &str| {
        name.ends_with(super::archive::BEFORE_RESTORE_SUFFIX)
            && name
                .match_indices('.')
                .nth(1)
                .is_some_and(|(i, _)| saved_prefixes.contains(&name[..=i]))
    };
    for dir in dirs {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(fsutil::TEMP_MARKER) || !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = e.path();
            if dir == ctx.layout.trash_dir() && is_saved_copy(&name) {
                out.push(
                    Finding::new(
                        Severity::Info,
                        "saved_before_restore",
                        format!("{name}: the tenant as it was before a restore replaced it"),
                        "keep it until the restore is confirmed, then remove it by hand",
                    )
                    .path(&path),
                );
                continue;
            }
            let (main, sidecar) = match ["-wal", "-shm", "-journal"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
            {
                Some(m) => (dir.join(m), true),
                None => (path.clone(), false),
            };
            if ctx.claimed.contains(&main) {
                if sidecar && !main.exists() {
                    out.push(
                        Finding::new(
                            Severity::Warning,
                            "stray_sidecar",
                            format!("{name} has no database file beside it; SQLite would replay it into any file put at {}", main.display()),
                            "`monkctl doctor --repair` moves it to <data>/orphans/",
                        )
                        .path(&path)
                        .repair(Action::MoveToOrphans(path.clone())),
                    );
                }
                continue;
            }
            let what = if sidecar && !main.exists() {
                "stray_sidecar"
            } else {
                "orphan_file"
            };
            out.push(
                Finding::new(
                    Severity::Warning,
                    what,
                    format!("no registry row claims {name}"),
                    "`monkctl doctor --repair` moves it to <data>/orphans/ (nothing is deleted)",
                )
                .path(&path)
                .repair(Action::MoveToOrphans(path.clone())),
            );
        }
    }
}

/// monkctl's temporary files (`.NAME.monktmp-PID-RAND`) anywhere in the data directory but
/// `orphans/`: a dead owner's are leftovers of an interrupted run.
fn check_temp_leftovers(layout: &Layout, out: &mut Vec<Finding>) {
    let skip = layout.orphans_dir();
    let mut stack = vec![layout.data_dir.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if path != skip {
                    stack.push(path);
                }
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = fsutil::temp_owner_pid(&name) else {
                continue;
            };
            if fsutil::temp_in_use(&path, pid) {
                out.push(
                    Finding::new(
                        Severity::Info,
                        "temp_in_use",
                        format!("{name} belongs to running process {pid}"),
                        "nothing to do: it disappears when that run ends",
                    )
                    .path(&path),
                );
            } else {
                out.push(
                    Finding::new(
                        Severity::Warning,
                        "temp_leftover",
                        format!("{name} was left by process {pid}, which is gone"),
                        "`monkctl doctor --repair` removes it (an unfinished temporary file, never a tenant's data)",
                    )
                    .path(&path)
                    .repair(Action::RemoveTemp(path.clone())),
                );
            }
        }
    }
}

/// The pid in the name of a scratch directory older monkctl versions made for `fixture check` in
/// the system temporary directory: `monkctl-check-<pid>-<8 hex>`.
fn scratch_owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("monkctl-check-")?;
    let (pid, rand) = rest.split_once('-')?;
    (rand.len() == 8 && rand.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| pid.parse().ok())
        .flatten()
}

/// Scratch directories that `fixture check` of older versions left in the system temporary
/// directory when it was killed (it checks in memory now, and makes none). Only directories
/// named as monkctl named them, whose process is gone; never followed through a link.
fn check_scratch_leftovers(_layout: &Layout, out: &mut Vec<Finding>) {
    let tmp = std::env::temp_dir();
    let Ok(rd) = fs::read_dir(&tmp) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = scratch_owner_pid(&name) else {
            continue;
        };
        if !e.file_type().is_ok_and(|t| t.is_dir()) || pid_alive(pid) {
            continue;
        }
        let path = e.path();
        out.push(
            Finding::new(
                Severity::Warning,
                "scratch_leftover",
                format!("{name} in {} is the scratch directory of a `fixture check` (of an older monkctl) killed in process {pid}, which is gone", tmp.display()),
                "`monkctl doctor --repair` removes it (a scratch copy, never a tenant's data)",
            )
            .path(&path)
            .repair(Action::RemoveScratch(path.clone())),
        );
    }
}

/// Lock files in `<data>/locks/`: a recorded holder whose process is gone is stale.
fn check_locks(layout: &Layout, out: &mut Vec<Finding>) {
    let Ok(rd) = fs::read_dir(layout.locks_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match lock::inspect(&path) {
            Ok(LockState::Free) => {}
            Ok(LockState::Held { holder }) => out.push(
                Finding::new(
                    Severity::Info,
                    "lock_held",
                    match holder {
                        Some(h) => format!("held by pid {} ({}) since {}", h.pid, h.command, h.since),
                        None => "held by a running process".into(),
                    },
                    "nothing to do: a run is in progress",
                )
                .path(&path),
            ),
            Ok(LockState::Stale { holder }) => out.push(
                Finding::new(
                    Severity::Warning,
                    "stale_lock",
                    format!(
                        "left by pid {} ({}) since {}, which no longer holds it",
                        holder.pid, holder.command, holder.since
                    ),
                    "`monkctl doctor --repair` removes it; that run was interrupted, check what it was doing",
                )
                .path(&path)
                .repair(Action::RemoveStaleLock(path.clone())),
            ),
            Err(e) => out.push(
                Finding::new(
                    Severity::Warning,
                    "lock_unreadable",
                    format!("cannot inspect the lock file: {e}"),
                    "check its owner and mode",
                )
                .path(&path),
            ),
        }
    }
}

fn permission_finding(path: &Path, mode: u32, dir: bool, tenant: Option<&str>) -> Finding {
    let want = if dir { 0o700 } else { 0o600 };
    let mut f = Finding::new(
        Severity::Warning,
        "permissions_too_wide",
        format!(
            "{} {} has mode {mode:o}; other users can read it",
            if dir { "directory" } else { "file" },
            path.display()
        ),
        &format!("`monkctl doctor --repair` sets it to {want:o} (owner only)"),
    )
    .path(path)
    .repair(Action::Chmod(path.to_path_buf(), want));
    if let Some(t) = tenant {
        f = f.tenant(t);
    }
    f
}

/// The directories of monkctl's own state: the data directory and its subdirectories.
fn state_dirs(l: &Layout) -> [PathBuf; 5] {
    [
        l.data_dir.clone(),
        l.trash_dir(),
        l.orphans_dir(),
        l.locks_dir(),
        l.templates_dir(),
    ]
}

/// The data directory and monkctl's subdirectories, and the snapshots of destructive
/// migrations, on either backend.
fn check_state_permissions(l: &Layout, out: &mut Vec<Finding>) {
    for d in state_dirs(l) {
        if let Some(mode) = fsutil::wider_than_owner(&d) {
            out.push(permission_finding(&d, mode, true, None));
        }
    }
    // The snapshots of destructive migrations are whole tenant copies (or dumps): every run
    // directory and every file in it is checked, not only the top directory.
    let snapshots = l.snapshots_dir();
    if let Some(mode) = fsutil::wider_than_owner(&snapshots) {
        out.push(permission_finding(&snapshots, mode, true, None));
    }
    for run in fs::read_dir(&snapshots).into_iter().flatten().flatten() {
        let run = run.path();
        let is_dir = run.is_dir();
        if let Some(mode) = fsutil::wider_than_owner(&run) {
            out.push(permission_finding(&run, mode, is_dir, None));
        }
        if !is_dir {
            continue;
        }
        for f in fs::read_dir(&run).into_iter().flatten().flatten() {
            let f = f.path();
            if let Some(mode) = fsutil::wider_than_owner(&f) {
                out.push(permission_finding(&f, mode, f.is_dir(), None));
            }
        }
    }
}

/// On SQLite: the tenant directories and the infra database's directory and files (those of
/// monkctl's own state are `check_state_permissions`'s).
fn check_dir_permissions(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let l = ctx.layout;
    let mut seen: HashSet<PathBuf> = state_dirs(l).into_iter().collect();
    let mut dirs: Vec<PathBuf> = l
        .infra_path
        .parent()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    dirs.extend(ctx.tenant_dirs.iter().cloned());
    for d in dirs {
        if !seen.insert(d.clone()) {
            continue;
        }
        if let Some(mode) = fsutil::wider_than_owner(&d) {
            out.push(permission_finding(&d, mode, true, None));
        }
    }
    for s in ["", "-wal", "-shm"] {
        let p = fsutil::with_suffix(&l.infra_path, s);
        if let Some(mode) = fsutil::wider_than_owner(&p) {
            out.push(permission_finding(&p, mode, false, None));
        }
    }
}

/// The tables and columns of a database: table → column → (type, notnull, pk).
type Shape = BTreeMap<String, BTreeMap<String, (String, bool, i64)>>;

/// The columns of every table (for the reference, built once).
fn shape_of(conn: &Connection) -> rusqlite::Result<Shape> {
    let mut st = conn.prepare(
        "SELECT m.name, p.name, p.type, p.\"notnull\", p.pk FROM sqlite_master m \
         JOIN pragma_table_info(m.name) p WHERE m.type = 'table'",
    )?;
    let mut shape = Shape::new();
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let table: String = r.get(0)?;
        let col: String = r.get(1)?;
        let ty: String = r.get(2)?;
        shape.entry(table).or_default().insert(
            col,
            (ty.to_ascii_uppercase(), r.get::<_, i64>(3)? != 0, r.get(4)?),
        );
    }
    Ok(shape)
}

/// The columns of one table (`pragma_table_info` prepares a statement of its own per table, so
/// it is read only for tables whose SQL differs from the reference).
fn columns_of(
    conn: &Connection,
    table: &str,
) -> rusqlite::Result<BTreeMap<String, (String, bool, i64)>> {
    let mut st =
        conn.prepare_cached("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")?;
    let mut cols = BTreeMap::new();
    let mut rows = st.query([table])?;
    while let Some(r) = rows.next()? {
        let ty: String = r.get(1)?;
        cols.insert(
            r.get(0)?,
            (ty.to_ascii_uppercase(), r.get::<_, i64>(2)? != 0, r.get(3)?),
        );
    }
    Ok(cols)
}

/// The schema a tenant at one version should have: each system table's `CREATE` statement as
/// stored in `sqlite_master`, and its columns.
struct Reference {
    sql: BTreeMap<String, String>,
    shape: Shape,
}

/// Compares a tenant's system tables with the reference: a table whose stored SQL is the
/// reference's text is the same table (the common case, one query); others are compared column
/// by column, so that an equivalent table the API wrote with other formatting is not drift.
fn compare(
    conn: &Connection,
    reference: &Reference,
) -> rusqlite::Result<(Vec<String>, Vec<String>)> {
    let mut st = conn.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'")?;
    let mut stored: HashMap<String, Option<String>> = HashMap::new();
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        stored.insert(r.get(0)?, r.get(1)?);
    }
    let (mut expected, mut actual) = (Shape::new(), Shape::new());
    for (table, sql) in &reference.sql {
        match stored.get(table) {
            Some(Some(have)) if have == sql => continue,
            Some(_) => {
                actual.insert(table.clone(), columns_of(conn, table)?);
            }
            None => {}
        }
        if let Some(cols) = reference.shape.get(table) {
            expected.insert(table.clone(), cols.clone());
        }
    }
    Ok(drift(&expected, &actual))
}

/// What a tenant at `version` should hold: the deployment's schema (the `system` fixture and
/// its migrations up to `version`, operator ones included) executed into an in-memory database
/// (no file is written anywhere). Built once per version and run.
fn reference_shape(set: &MigrationSet, version: i64) -> Result<Reference> {
    let here = Path::new(":memory: (reference schema)");
    let mut conn = Connection::open_in_memory().at(here)?;
    system::register_functions(&conn).at(here)?;
    set.execute_schema_to(&mut conn, here, version, super::guard::ANALYSIS_TIMEOUT)?;
    let mut shape = shape_of(&conn).at(here)?;
    shape.remove(schema::HISTORY_TABLE);
    let mut sql = BTreeMap::new();
    {
        let mut st = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
            .at(here)?;
        let mut rows = st.query([]).at(here)?;
        while let Some(r) = rows.next().at(here)? {
            let name: String = r.get(0).at(here)?;
            if shape.contains_key(&name) {
                sql.insert(
                    name,
                    r.get::<_, Option<String>>(1).at(here)?.unwrap_or_default(),
                );
            }
        }
    }
    Ok(Reference { sql, shape })
}

/// Differences of `actual` from `reference`: missing tables and columns (errors: the API fails
/// on them), changed columns (warnings). Tables and columns the reference lacks are the tenant's
/// own models, not drift.
fn drift(reference: &Shape, actual: &Shape) -> (Vec<String>, Vec<String>) {
    let (mut missing, mut changed) = (Vec::new(), Vec::new());
    for (table, cols) in reference {
        let Some(have) = actual.get(table) else {
            missing.push(format!("table {table}"));
            continue;
        };
        for (col, spec) in cols {
            match have.get(col) {
                None => missing.push(format!("column {table}.{col}")),
                Some(h) if h != spec => changed.push(format!(
                    "column {table}.{col} is {} {}{} (expected {} {}{})",
                    h.0,
                    if h.1 { "NOT NULL" } else { "NULL" },
                    if h.2 > 0 { " PK" } else { "" },
                    spec.0,
                    if spec.1 { "NOT NULL" } else { "NULL" },
                    if spec.2 > 0 { " PK" } else { "" },
                )),
                Some(_) => {}
            }
        }
    }
    (missing, changed)
}

/// `PRAGMA quick_check`: the problems it lists (none when the file is sound).
pub(super) fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    pragma_lines(conn, "PRAGMA quick_check")
}

fn pragma_lines(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(sql)?;
    let lines = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(lines.into_iter().filter(|l| l != "ok").collect())
}

/// Shared state of the parallel tenant checks: the deployment's migrations, and the reference
/// shapes by version, built on demand.
struct Shapes<'a> {
    set: &'a MigrationSet,
    built: Mutex<HashMap<i64, Arc<Result<Reference, String>>>>,
}

impl Shapes<'_> {
    fn get(&self, version: i64) -> Arc<Result<Reference, String>> {
        let mut m = self.built.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(version)
            .or_insert_with(|| {
                Arc::new(reference_shape(self.set, version).map_err(|e| e.to_string()))
            })
            .clone()
    }
}

/// Checks the files of the selected live tenants on `opts.jobs` threads; returns how many were
/// checked.
fn check_tenant_files(
    ctx: &Ctx<'_>,
    set: &MigrationSet,
    selected: &[&TenantRow],
    opts: &Options,
    progress: &dyn Progress,
    out: &mut Vec<Finding>,
) -> usize {
    let work: Vec<(&TenantRow, PathBuf)> = selected
        .iter()
        .filter(|t| !t.is_deleted())
        .filter_map(|t| {
            let p = ctx.layout.tenant_path(&t.database, &t.schema).ok()?;
            p.exists().then_some((*t, p))
        })
        .collect();
    let shapes = Shapes {
        set,
        built: Mutex::new(HashMap::new()),
    };
    // The context holds the registry connection, which must stay on this thread.
    let recorded = &ctx.fixtures;
    progress.start(work.len() as u64, "checking tenants");
    let run = crate::core::pool::Run {
        jobs: opts.jobs.clamp(1, work.len().max(1)),
        fail_fast: false,
        progress,
        name: |w: &&(&TenantRow, PathBuf)| &w.0.name,
    };
    let mut feed = work.iter();
    let mut checked = 0;
    // The feed is a list: it cannot fail. Ctrl-C leaves the rest unchecked (`None`).
    let _ = crate::core::pool::ordered(
        &run,
        &mut || Ok(feed.next()),
        &|| (),
        &|_, (t, path)| {
            let fixtures = recorded.get(&t.id).map(Vec::as_slice).unwrap_or(&[]);
            let mut found = Vec::new();
            check_tenant_file(t, path, fixtures, opts.full, &shapes, &mut found);
            crate::core::pause_point("doctor.tenant.checked");
            found
        },
        &|_| false,
        &mut |_, found| {
            if let Some(found) = found {
                checked += 1;
                out.extend(found);
            }
        },
    );
    progress.finish();
    checked
}

/// A tenant file that cannot be read as a database.
fn unreadable_tenant(name: &str, path: &Path, detail: String) -> Finding {
    Finding::new(
        Severity::Error,
        "tenant_unreadable",
        format!("the file cannot be opened as a database: {detail}"),
        "restore the tenant from a backup or archive",
    )
    .tenant(name)
    .path(path)
}

/// Every check of one tenant's file, read without changing it.
fn check_tenant_file(
    t: &TenantRow,
    path: &Path,
    fixtures: &[String],
    full: bool,
    shapes: &Shapes<'_>,
    out: &mut Vec<Finding>,
) {
    let name = t.name.as_str();
    let wal = fsutil::with_suffix(path, "-wal");
    let mut wal_size = None;
    // One stat per file: mode and size together.
    for s in ["", "-wal", "-shm"] {
        let p = fsutil::with_suffix(path, s);
        let Ok(meta) = fs::metadata(&p) else { continue };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(permission_finding(&p, mode, false, Some(name)));
        }
        if s == "-wal" {
            wal_size = Some(meta.len());
        }
    }
    if let Some(size) = wal_size.filter(|s| *s > WAL_WARN_BYTES) {
        out.push(
            Finding::new(
                Severity::Warning,
                "wal_oversized",
                format!(
                    "the WAL is {} MiB (more than {} MiB): checkpoints are not keeping up",
                    size / (1024 * 1024),
                    WAL_WARN_BYTES / (1024 * 1024)
                ),
                "`monkctl doctor --repair` checkpoints it through SQLite; look for a long-lived reader",
            )
            .tenant(name)
            .path(&wal)
            .repair(Action::Checkpoint(path.to_path_buf())),
        );
    }
    let unreadable = |detail: String| unreadable_tenant(name, path, detail);
    // Read as `read_quietly` reads: a quiet file without a lock and without creating anything
    // beside it, any other through a connection that takes no lock the API needs. Its findings
    // are kept only from the read that counts (a quiet read the file changed under is redone).
    let read = db::read_quietly(path, |conn, _| {
        // `read_quietly` runs this in one read transaction: all checks see the same snapshot,
        // and SQLite takes its locks and looks for the WAL once instead of once per statement.
        let mut found = Vec::new();
        check_tenant_content(conn, t, path, fixtures, full, shapes, &mut found);
        Ok(found)
    });
    match read {
        Ok(found) => out.extend(found),
        Err(e) => out.push(unreadable(e.to_string())),
    }
}

/// The checks of one tenant's content, on `conn` inside a read transaction.
fn check_tenant_content(
    conn: &rusqlite::Connection,
    t: &TenantRow,
    path: &Path,
    fixtures: &[String],
    full: bool,
    shapes: &Shapes,
    out: &mut Vec<Finding>,
) {
    let name = t.name.as_str();
    let unreadable = |detail: String| unreadable_tenant(name, path, detail);
    let integrity = if full {
        pragma_lines(conn, "PRAGMA integrity_check")
    } else {
        quick_check(conn)
    };
    match integrity {
        Ok(p) if p.is_empty() => {}
        Ok(p) => {
            let shown: Vec<&str> = p.iter().take(5).map(String::as_str).collect();
            out.push(
                Finding::new(
                    Severity::Error,
                    "integrity_failed",
                    format!(
                        "{} reports {} problem(s): {}",
                        if full { "integrity_check" } else { "quick_check" },
                        p.len(),
                        shown.join("; ")
                    ),
                    "restore the tenant from a backup or archive; `sqlite3 FILE .recover` may save rows",
                )
                .tenant(name)
                .path(path),
            );
            return;
        }
        Err(e) => {
            out.push(unreadable(e.to_string()));
            return;
        }
    }
    if full {
        match conn
            .prepare("PRAGMA foreign_key_check")
            .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.count_ok())
        {
            Ok(0) => {}
            Ok(n) => out.push(
                Finding::new(
                    Severity::Error,
                    "foreign_key_violation",
                    format!("{n} row(s) reference rows that do not exist"),
                    "run `PRAGMA foreign_key_check` in sqlite3 on the file to list them, and fix the rows",
                )
                .tenant(name)
                .path(path),
            ),
            Err(e) => out.push(unreadable(e.to_string())),
        }
    }
    let version = match schema::tenant_version(conn) {
        Ok(v) => v,
        Err(e) => {
            out.push(unreadable(e.to_string()));
            return;
        }
    };
    let latest = shapes.set.latest();
    // Set when the tenant was compared with its reference and no system table or column is
    // missing: that proves the `system` fixture.
    let mut system_proven = false;
    if version == 0 {
        out.push(
            Finding::new(
                Severity::Error,
                "not_a_tenant",
                "the file has neither migration history nor the system tables (models, users)"
                    .into(),
                "restore the tenant from a backup or archive",
            )
            .tenant(name)
            .path(path),
        );
        return;
    }
    if shapes.set.get(version).is_none() {
        out.push(
            Finding::new(
                Severity::Warning,
                "schema_newer",
                format!(
                    "schema version {version} is not among the deployment's migrations ({}, up to version {latest})",
                    shapes.set.origin()
                ),
                "set --migrations (MONK_MIGRATIONS_DIR, migrations_dir) to the directory the tenant was migrated with, or upgrade monkctl; its schema was not compared",
            )
            .tenant(name)
            .path(path),
        );
    } else {
        let reference = shapes.get(version);
        match reference.as_ref().as_ref().map(|r| compare(conn, r)) {
            Ok(Ok((missing, changed))) => {
                system_proven = missing.is_empty();
                if !missing.is_empty() || !changed.is_empty() {
                    let mut parts = Vec::new();
                    if !missing.is_empty() {
                        parts.push(format!("missing {}", missing.join(", ")));
                    }
                    parts.extend(changed);
                    out.push(
                        Finding::new(
                            if missing.is_empty() {
                                Severity::Warning
                            } else {
                                Severity::Error
                            },
                            "schema_drift",
                            format!(
                                "the schema differs from version {version}: {}",
                                parts.join("; ")
                            ),
                            "someone edited it by hand: restore the tenant from a backup, or recreate what is missing as the API defines it",
                        )
                        .tenant(name)
                        .path(path),
                    );
                }
            }
            Err(e) => out.push(
                Finding::new(
                    Severity::Warning,
                    "reference_unavailable",
                    format!("the reference schema of version {version} could not be built: {e}"),
                    "report this as a monkctl bug",
                )
                .tenant(name),
            ),
            Ok(Err(e)) => out.push(unreadable(e.to_string())),
        }
    }
    let owner = conn
        .prepare("SELECT 1 FROM users WHERE id = ?1")
        .and_then(|mut st| st.exists([&t.owner_id]));
    if !matches!(owner, Ok(true)) {
        out.push(
            Finding::new(
                Severity::Error,
                "owner_missing",
                format!(
                    "the owner {} of the registry row has no row in the tenant's users table",
                    t.owner_id
                ),
                "restore the owner's user row, or set tenants.owner_id to an existing root user",
            )
            .tenant(name)
            .path(path),
        );
    }
    if system_proven && !fixtures.iter().any(|f| f == SYSTEM_FIXTURE) {
        out.push(
            Finding::new(
                Severity::Info,
                "fixture_unrecorded",
                "the file holds the system tables but tenant_fixtures has no 'system' row".into(),
                "`monkctl doctor --repair` records it",
            )
            .tenant(name)
            .repair(Action::RecordFixture {
                tenant_id: t.id.clone(),
                fixture: SYSTEM_FIXTURE.into(),
                version: None,
                deployed_at: None,
            }),
        );
    }
    check_fixture_records(t, path, conn, fixtures, out);
}

/// The fixtures the tenant file records (`fixture::TENANT_RECORD`, written in the fixtures' own
/// transaction) against the registry's `tenant_fixtures`: the file is the truth, so the registry
/// is brought to it. A file without the record table (made before monkctl kept one) proves
/// nothing and is not compared.
fn check_fixture_records(
    t: &TenantRow,
    path: &Path,
    conn: &Connection,
    registry: &[String],
    out: &mut Vec<Finding>,
) {
    let recorded = match fixture::recorded_in(conn) {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            out.push(
                Finding::new(
                    Severity::Warning,
                    "fixture_record_unreadable",
                    format!("the table {} cannot be read: {e}", fixture::TENANT_RECORD),
                    "compare `monkctl fixture status` with the tenant's content by hand",
                )
                .tenant(&t.name)
                .path(path),
            );
            return;
        }
    };
    for r in &recorded {
        if registry.iter().any(|f| f == &r.name) {
            continue;
        }
        out.push(
            Finding::new(
                Severity::Warning,
                "fixture_not_in_registry",
                format!(
                    "the file records fixture '{}' (deployed {}) but tenant_fixtures has no row for it (a deploy interrupted between its two commits)",
                    r.name, r.deployed_at
                ),
                "`monkctl doctor --repair` records it in the registry (or deploy it again: the deploy only records it)",
            )
            .tenant(&t.name)
            .path(path)
            .repair(Action::RecordFixture {
                tenant_id: t.id.clone(),
                fixture: r.name.clone(),
                version: r.version.clone(),
                deployed_at: Some(r.deployed_at.clone()),
            }),
        );
    }
    for f in registry {
        if f == SYSTEM_FIXTURE || recorded.iter().any(|r| &r.name == f) {
            continue;
        }
        out.push(
            Finding::new(
                Severity::Warning,
                "fixture_not_in_tenant",
                format!(
                    "tenant_fixtures records fixture '{f}' but the file's own record ({}) does not hold it",
                    fixture::TENANT_RECORD
                ),
                "`monkctl doctor --repair` removes the registry row, so that a deploy applies the fixture again",
            )
            .tenant(&t.name)
            .path(path)
            .repair(Action::ForgetFixture {
                tenant_id: t.id.clone(),
                fixture: f.clone(),
            }),
        );
    }
}

trait CountOk {
    fn count_ok(self) -> rusqlite::Result<usize>;
}

impl<I: Iterator<Item = rusqlite::Result<String>>> CountOk for I {
    fn count_ok(self) -> rusqlite::Result<usize> {
        let mut n = 0;
        for r in self {
            r?;
            n += 1;
        }
        Ok(n)
    }
}

/// Carries out the repairable findings, each once; a failure is recorded, not fatal.
fn repair(ws: &Workspace, findings: &[Finding]) -> Vec<Repair> {
    let mut done: Vec<Repair> = Vec::new();
    let mut seen = HashSet::new();
    let mut fixtures: Vec<(&Finding, &Action)> = Vec::new();
    for f in findings {
        let Some(a) = &f.action else { continue };
        if !seen.insert(format!("{a:?}")) {
            continue;
        }
        if matches!(
            a,
            Action::RecordFixture { .. } | Action::ForgetFixture { .. }
        ) {
            fixtures.push((f, a));
            continue;
        }
        let r = apply(ws, a);
        done.push(Repair {
            code: f.code,
            tenant: f.tenant.clone(),
            path: f.path.clone(),
            ok: r.is_ok(),
            action: match &r {
                Ok(s) => s.clone(),
                Err(_) => describe(a),
            },
            error: r.err().map(|e| e.to_string()),
        });
    }
    if !fixtures.is_empty() {
        // All fixture rows in one registry transaction.
        let now = ids::now_iso();
        let r = ws.registry_for_write().and_then(|mut reg| {
            reg.write(|w| {
                for (_, a) in &fixtures {
                    match a {
                        Action::RecordFixture {
                            tenant_id,
                            fixture,
                            version,
                            deployed_at,
                        } => {
                            w.record_fixture(
                                tenant_id,
                                fixture,
                                deployed_at.as_deref().unwrap_or(&now),
                            )?;
                            if let Some(v) = version {
                                w.set_fixture_version(tenant_id, fixture, v)?;
                            }
                        }
                        Action::ForgetFixture { tenant_id, fixture } => {
                            w.forget_fixture(tenant_id, fixture)?;
                        }
                        _ => {}
                    }
                }
                Ok(())
            })
        });
        for (f, a) in &fixtures {
            done.push(Repair {
                code: f.code,
                tenant: f.tenant.clone(),
                path: None,
                action: describe(a),
                ok: r.is_ok(),
                error: r.as_ref().err().map(|e| e.to_string()),
            });
        }
    }
    done
}

fn describe(a: &Action) -> String {
    match a {
        Action::RemoveTemp(_) => "remove temporary leftover".into(),
        Action::RemoveScratch(_) => "remove scratch directory".into(),
        Action::RemoveStaleLock(_) => "remove stale lock".into(),
        Action::MoveToOrphans(_) => "move to orphans".into(),
        Action::SchemaAside(_) => "rename the schema aside".into(),
        Action::Checkpoint(_) => "checkpoint WAL".into(),
        Action::Chmod(_, m) => format!("chmod {m:o}"),
        Action::FinishTrashMove(_) => "move to trash".into(),
        Action::RecordFixture { fixture, .. } => format!("recorded fixture '{fixture}'"),
        Action::ForgetFixture { fixture, .. } => {
            format!("removed the registry row of fixture '{fixture}'")
        }
    }
}

fn apply(ws: &Workspace, a: &Action) -> Result<String> {
    match a {
        Action::RemoveTemp(p) => {
            // Check again: the owner could be a new process with a reused pid by now.
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if name
                .as_deref()
                .and_then(fsutil::temp_owner_pid)
                .is_some_and(|pid| fsutil::temp_in_use(p, pid))
            {
                return Err(Error::Conflict(
                    "its process is running now; left alone".into(),
                ));
            }
            fs::remove_file(p).at(p)?;
            Ok("removed".into())
        }
        Action::RemoveScratch(p) => {
            // Check again, without following a link: the pid could be reused by now.
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let meta = fs::symlink_metadata(p).at(p)?;
            if !meta.is_dir()
                || name
                    .as_deref()
                    .and_then(scratch_owner_pid)
                    .is_none_or(pid_alive)
            {
                return Err(Error::Conflict(
                    "it is no longer a dead process's scratch directory; left alone".into(),
                ));
            }
            fs::remove_dir_all(p).at(p)?;
            Ok("removed".into())
        }
        Action::RemoveStaleLock(p) => lock::remove_stale(p).map(|()| "removed".into()),
        Action::MoveToOrphans(p) => {
            let to = fsutil::move_into(p, &ws.layout.orphans_dir())?;
            Ok(format!("moved to {}", to.display()))
        }
        Action::SchemaAside(schema) => {
            let Store::Postgres(mut reg) = ws.store_existing_for_write()? else {
                return Err(Error::Unsupported(
                    "a schema is set aside on a PostgreSQL deployment only".into(),
                ));
            };
            let to = reg.set_schema_aside(schema)?;
            Ok(format!("renamed to {to}"))
        }
        Action::Checkpoint(p) => {
            let conn = db::open(p, db::Mode::ReadWrite)?;
            let db::Checkpointed { busy, log, done } = db::checkpoint_truncate(&conn).at(p)?;
            if busy {
                return Err(Error::Busy {
                    what: p.display().to_string(),
                    detail: format!("a reader holds the WAL ({done} of {log} frames checkpointed); retry when it is done"),
                });
            }
            Ok(format!("checkpointed {done} frame(s), WAL truncated"))
        }
        Action::Chmod(p, mode) => {
            fs::set_permissions(p, fs::Permissions::from_mode(*mode)).at(p)?;
            Ok(format!("chmod {mode:o}"))
        }
        Action::FinishTrashMove(name) => {
            let d = tenant::delete(ws, name)?;
            Ok(d.moved
                .iter()
                .map(|m| format!("moved to {}", m.to.display()))
                .collect::<Vec<_>>()
                .join(", "))
        }
        Action::RecordFixture { .. } | Action::ForgetFixture { .. } => Ok(describe(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_ignores_user_tables_and_names_missing_and_changed() {
        let mut reference = Shape::new();
        reference
            .entry("users".into())
            .or_default()
            .insert("id".into(), ("TEXT".into(), true, 1));
        reference
            .entry("users".into())
            .or_default()
            .insert("name".into(), ("TEXT".into(), true, 0));
        reference
            .entry("models".into())
            .or_default()
            .insert("id".into(), ("TEXT".into(), true, 1));
        let mut actual = reference.clone();
        actual
            .entry("widgets".into())
            .or_default()
            .insert("id".into(), ("TEXT".into(), false, 1));
        actual
            .get_mut("users")
            .unwrap()
            .insert("extra".into(), ("INT".into(), false, 0));
        assert_eq!(drift(&reference, &actual), (vec![], vec![]));
        actual.remove("models");
        actual
            .get_mut("users")
            .unwrap()
            .insert("name".into(), ("INTEGER".into(), true, 0));
        let (missing, changed) = drift(&reference, &actual);
        assert_eq!(missing, vec!["table models".to_string()]);
        assert_eq!(changed.len(), 1, "{changed:?}");
    }

    #[test]
    fn status_follows_the_worst_severity() {
        let f = |s| Finding::new(s, "x", String::new(), "");
        assert_eq!(status_of(&[]), Status::Healthy);
        assert_eq!(status_of(&[f(Severity::Info)]), Status::Healthy);
        assert_eq!(
            status_of(&[f(Severity::Info), f(Severity::Warning)]),
            Status::Degraded
        );
        assert_eq!(
            status_of(&[f(Severity::Error), f(Severity::Warning)]),
            Status::Failing
        );
    }
}
