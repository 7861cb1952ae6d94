//! `migrate status` and `plan`.

use super::*;

#[derive(Debug, Clone, Serialize)]
pub struct InfraStatus {
    /// The infra database file; `null` on PostgreSQL (the registry is schema `public`).
    pub path: Option<PathBuf>,
    pub version: i64,
    pub latest: i64,
    pub pending: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    /// The tenant's file; `null` on PostgreSQL (the tenant is its schema).
    pub path: Option<PathBuf>,
    #[serde(flatten)]
    pub inspection: Inspection,
    /// Another process holds the database's write lock or its migration lock (plan only).
    pub locked: bool,
    /// Destructive statements among the pending migrations (plan only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destructive: Vec<Finding>,
    /// A pending statement that fails on a copy of this tenant's schema (plan only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_fail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigInfo {
    pub version: i64,
    pub name: String,
    pub file: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    #[serde(rename = "tenant_count")]
    pub tenants: usize,
    /// Tenants at each applied version.
    pub by_version: BTreeMap<i64, usize>,
    pub up_to_date: usize,
    pub pending: usize,
    pub adopt: usize,
    pub diverged: usize,
    pub missing: usize,
    pub locked: usize,
    pub destructive: usize,
    pub would_fail: usize,
    /// Tenants that could not be read (missing file, corrupt, unreadable).
    pub failed: usize,
    pub corrupt: usize,
    /// Trashed and deleted tenants left out.
    pub skipped: usize,
}

impl Summary {
    /// Counts one tenant's outcome of a survey (both backends).
    pub(super) fn add(&mut self, o: &Outcome<TenantStatus>) {
        self.tenants += 1;
        match &o.result {
            Some(st) => {
                let i = &st.inspection;
                *self.by_version.entry(i.version).or_default() += 1;
                self.pending += usize::from(!i.pending.is_empty());
                self.up_to_date += usize::from(i.pending.is_empty());
                self.adopt += usize::from(i.adopt);
                self.diverged += usize::from(!i.diverged.is_empty());
                self.missing += usize::from(!i.missing.is_empty());
                self.locked += usize::from(st.locked);
                self.destructive += usize::from(!st.destructive.is_empty());
                self.would_fail += usize::from(st.would_fail.is_some());
            }
            None => {
                self.failed += 1;
                self.corrupt += usize::from(o.exit_code == exit::CORRUPT);
            }
        }
    }
}

/// What a survey is about, known before any tenant is read (the head of its JSON).
#[derive(Debug, Clone, Serialize)]
pub struct SurveyHead {
    pub infra: InfraStatus,
    pub target: i64,
    pub migrations: Vec<MigInfo>,
    /// The holder of the run lock when a run is in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_in_progress: Option<Holder>,
}

/// A survey once every tenant was handed to the sink.
#[derive(Debug, Clone)]
pub struct Survey {
    pub head: SurveyHead,
    pub tenants: Tally,
    pub summary: Summary,
}

impl Survey {
    /// `migrate plan`'s exit code: diverged or missing migrations first, then corrupt files,
    /// locked databases, any other failure; 0 when every tenant can be migrated.
    pub fn plan_exit_code(&self) -> i32 {
        let s = &self.summary;
        if s.diverged + s.missing > 0 {
            exit::DIVERGED
        } else if s.corrupt > 0 {
            exit::CORRUPT
        } else if s.locked > 0 || self.head.run_in_progress.is_some() {
            exit::BUSY
        } else if s.failed > 0 {
            self.tenants.exit_code()
        } else if s.would_fail > 0 {
            exit::FAILURE
        } else {
            exit::SUCCESS
        }
    }
}

/// Options shared by the commands that visit tenants.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub selection: Selection,
    pub target: Option<i64>,
    pub jobs: usize,
    pub fail_fast: bool,
    pub allow_destructive: bool,
    /// How long to wait for a tenant database another process is writing.
    pub busy_timeout: Duration,
    /// The time limit of each migration statement on a tenant (`up`).
    pub statement_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            selection: Selection::default(),
            target: None,
            jobs: crate::core::pool::default_jobs(crate::core::pool::Work::Waiting),
            fail_fast: false,
            allow_destructive: false,
            busy_timeout: db::BUSY_TIMEOUT,
            statement_timeout: guard::STATEMENT_TIMEOUT,
        }
    }
}

pub(super) fn run_lock_path(ws: &Workspace) -> PathBuf {
    ws.layout.migrate_lock()
}

pub(super) fn infra_status(reg: &Registry) -> Result<InfraStatus> {
    let version = db::history_version(&reg.conn).at(&reg.path)?.unwrap_or(0);
    let latest = Registry::latest_version();
    Ok(InfraStatus {
        path: Some(reg.path.clone()),
        version,
        latest,
        pending: version < latest,
    })
}

/// `migrate status` (`plan == false`) and `migrate plan`: where every selected tenant stands;
/// the plan also analyses pending statements and looks for locks. Writes nothing.
pub fn survey(
    ws: &Workspace,
    set: &MigrationSet,
    opts: &RunOptions,
    plan: bool,
    progress: &dyn Progress,
    sink: &mut dyn RunSink<SurveyHead, TenantStatus>,
) -> Result<Survey> {
    if let crate::core::Backend::Postgres(t) = &ws.backend {
        return postgres::survey(ws, t, set, opts, plan, progress, sink);
    }
    let target = set.target(opts.target)?;
    if plan {
        guard_set(ws, set, target, &opts.selection, guard::ANALYSIS_TIMEOUT)?;
    }
    let reg = ws.registry()?;
    let infra = infra_status(&reg)?;
    let (mut targets, selected, skipped) = select(&reg, &opts.selection)?;
    let run_lock = run_lock_path(ws);
    let run_in_progress = match lock::inspect(&run_lock) {
        Ok(LockState::Held { holder }) => Some(holder.unwrap_or(Holder {
            pid: 0,
            host: String::new(),
            command: "unknown".into(),
            since: String::new(),
        })),
        _ => None,
    };
    let head = SurveyHead {
        infra,
        target,
        migrations: set.infos(),
        run_in_progress,
    };
    sink.begin(&head);
    let mut summary = Summary {
        skipped,
        ..Summary::default()
    };
    let mut tally = Tally::default();
    let analyses = Analyses::new(guard::ANALYSIS_TIMEOUT);
    pool(
        &mut targets,
        selected,
        opts.jobs,
        false,
        progress,
        if plan { "planning" } else { "reading" },
        |t| survey_one(ws, set, opts, target, plan, &analyses, t),
        &mut |o: Outcome<TenantStatus>| {
            summary.add(&o);
            tally.add(&o);
            sink.outcome(o);
        },
    )?;
    Ok(Survey {
        head,
        tenants: tally,
        summary,
    })
}
/// Where one SQLite tenant stands (`status`), and with `plan` what `up` would do to it.
pub(super) fn survey_one(
    ws: &Workspace,
    set: &MigrationSet,
    opts: &RunOptions,
    target: i64,
    plan: bool,
    analyses: &Analyses,
    t: &Target,
) -> Result<TenantStatus> {
    let path = t.path(ws)?;
    if !plan {
        let ins = db::read_quietly(&path, |conn, path| {
            conn.busy_timeout(opts.busy_timeout).at(path)?;
            inspect(conn, path, set, target)
        })?;
        return Ok(TenantStatus {
            path: Some(path),
            inspection: ins,
            locked: false,
            destructive: Vec::new(),
            would_fail: None,
        });
    }
    // Whether `up` would find the write lock held for all of its busy timeout, asked
    // without taking the lock (that would fail the API's requests), before this
    // process opens the file.
    let locked = db::write_lock_held_elsewhere(&path, opts.busy_timeout);
    let (ins, schema) = db::read_quietly(&path, |conn, path| {
        conn.busy_timeout(opts.busy_timeout).at(path)?;
        let ins = inspect(conn, path, set, target)?;
        let schema = if ins.pending.is_empty() {
            None
        } else {
            Some(schema_sql(conn).at(path)?)
        };
        Ok((ins, schema))
    })?;
    let mut st = TenantStatus {
        path: Some(path.clone()),
        inspection: ins,
        locked,
        destructive: Vec::new(),
        would_fail: None,
    };
    if let Some(schema) = schema {
        let pending: Vec<&Mig> = st
            .inspection
            .pending
            .iter()
            .filter_map(|v| set.get(*v))
            .collect();
        if !pending.is_empty() {
            match analyses.get(&schema, &pending)? {
                Ok(f) => st.destructive = f,
                Err(f) if f.kind == FailKind::Failed => {
                    st.would_fail = Some(failure_message(&f, st.inspection.version))
                }
                Err(f) => {
                    let from = st.inspection.version;
                    return Err(f.error(|f| Error::Other(failure_message(f, from))));
                }
            }
        }
    }
    Ok(st)
}

/// `status`/`plan` of a PostgreSQL registry's SQLite tenants (`--sqlite-data-dir`), after its
/// schemas: each file read as on a SQLite deployment.
#[allow(clippy::too_many_arguments)]
pub(super) fn survey_files(
    ws: &Workspace,
    set: &MigrationSet,
    opts: &RunOptions,
    target: i64,
    plan: bool,
    files: Vec<Target>,
    progress: &dyn Progress,
    emit: &mut dyn FnMut(Outcome<TenantStatus>),
) -> Result<()> {
    let n = files.len();
    let analyses = Analyses::new(guard::ANALYSIS_TIMEOUT);
    pool(
        &mut Targets::Named(files.into_iter()),
        n,
        opts.jobs,
        false,
        progress,
        if plan { "planning" } else { "reading" },
        |t| survey_one(ws, set, opts, target, plan, &analyses, t),
        emit,
    )?;
    Ok(())
}

/// `up` of a PostgreSQL registry's SQLite tenants (`--sqlite-data-dir`), after its schemas:
/// each file migrated as on a SQLite deployment (one transaction under its write lock, the
/// guard, its history). A destructive migration is refused there even with
/// `--allow-destructive` (the run's undo restores schemas, not files); the names of those not
/// started (`--fail-fast`) are returned.
#[allow(clippy::too_many_arguments)]
pub(super) fn up_files(
    ws: &Workspace,
    set: &MigrationSet,
    opts: &RunOptions,
    target: i64,
    files: Vec<Target>,
    run_dir: &Path,
    progress: &dyn Progress,
    emit: &mut dyn FnMut(Outcome<TenantUp>),
) -> Result<Vec<String>> {
    let n = files.len();
    let asked = opts.allow_destructive;
    let opts = RunOptions {
        allow_destructive: false,
        ..opts.clone()
    };
    let cx = UpCtx {
        ws,
        set,
        target,
        opts: &opts,
        analyses: Analyses::new(opts.statement_timeout),
        run: RunDir {
            dir: run_dir.to_path_buf(),
            manifest: Mutex::new(None),
        },
    };
    pool(
        &mut Targets::Named(files.into_iter()),
        n,
        opts.jobs,
        opts.fail_fast,
        progress,
        "migrating",
        |t| {
            up_one(&cx, t).map_err(|e| match e {
                Error::Destructive(m) if asked => Error::Destructive(format!(
                    "{m}; --allow-destructive does not apply to a SQLite tenant of a PostgreSQL registry (the run's undo restores schemas only): migrate its file from a SQLite deployment, or move it onto PostgreSQL with `monkctl tenant copy`"
                )),
                other => other,
            })
        },
        emit,
    )
}

/// The destructive findings of the migrations up to `target`, on a baseline tenant: what a run
/// may do, for the confirmation before `up --allow-destructive`.
pub fn destructive_in_set(set: &MigrationSet, target: Option<i64>) -> Result<Vec<Finding>> {
    let target = set.target(target)?;
    let mut scratch = destructive::scratch_baseline()
        .map_err(|e| Error::Other(format!("could not build a baseline for analysis: {e}")))?;
    let migs: Vec<&Mig> = set
        .migs
        .iter()
        .filter(|m| m.version > 1 && m.version <= target)
        .collect();
    destructive::analyse(&mut scratch, &migs, guard::ANALYSIS_TIMEOUT, false)
        .map_err(|f| f.error(|f| Error::Other(failure_message(f, 1))))
}
