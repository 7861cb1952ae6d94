//! `migrate up`: each tenant in one transaction, destructive ones snapshotted first.

use super::*;

#[derive(Debug, Clone, Serialize)]
pub struct TenantUp {
    pub from: i64,
    pub to: i64,
    pub applied: Vec<i64>,
    /// The baseline was recorded (a database the API created).
    pub adopted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InfraUp {
    /// The infra database file; `null` on PostgreSQL.
    pub path: Option<PathBuf>,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UpSummary {
    #[serde(rename = "tenant_count")]
    pub tenants: usize,
    pub migrated: usize,
    pub adopted: usize,
    pub up_to_date: usize,
    pub failed: usize,
    pub not_started: usize,
    pub skipped: usize,
}

impl UpSummary {
    /// Counts one tenant's outcome of `up` (both backends).
    pub(super) fn add(&mut self, o: &Outcome<TenantUp>) {
        if let Some(r) = &o.result {
            self.migrated += usize::from(!r.applied.is_empty());
            self.adopted += usize::from(r.adopted);
            self.up_to_date += usize::from(r.applied.is_empty() && !r.adopted);
        }
    }
}

/// What a run is about, known once the infra database is migrated and before any tenant is (the
/// head of its JSON).
#[derive(Debug, Clone, Serialize)]
pub struct UpHead {
    pub run_id: String,
    pub target: i64,
    pub infra: InfraUp,
    /// The holder of a run lock left by a dead process, taken over by this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_over_stale_lock: Option<Holder>,
}

/// A run once every tenant was handed to the sink.
#[derive(Debug, Clone)]
pub struct UpReport {
    pub head: UpHead,
    /// Where this run's snapshots are, when a destructive migration ran.
    pub snapshots: Option<PathBuf>,
    pub tenants: Tally,
    /// Tenants not started because of `--fail-fast`.
    pub not_started: Vec<String>,
    pub summary: UpSummary,
}

impl UpReport {
    pub fn exit_code(&self) -> i32 {
        if self.summary.failed == 0 && self.not_started.is_empty() {
            exit::SUCCESS
        } else if self.tenants.succeeded == 0 && self.not_started.is_empty() {
            self.tenants.exit_code()
        } else {
            exit::PARTIAL
        }
    }

    /// The tenants to retry: failed and not started.
    pub fn retry(&self) -> Vec<&str> {
        self.tenants
            .failures
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.not_started.iter().map(String::as_str))
            .collect()
    }
}

/// One line of a run's `manifest.jsonl`: a tenant snapshotted before a destructive migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestLine {
    pub tenant: String,
    pub database: String,
    pub schema: String,
    /// File name inside the run's directory.
    pub snapshot: String,
    pub from: i64,
    pub to: i64,
    /// `content_hash` of the tenant as the run left it.
    pub post_hash: String,
    /// The fingerprint of the tenant before the run (PostgreSQL runs; `null` in SQLite runs,
    /// whose snapshot is read directly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_hash: Option<String>,
    pub at: String,
}

pub(super) struct RunDir {
    pub(super) dir: PathBuf,
    pub(super) manifest: Mutex<Option<fs::File>>,
}

impl RunDir {
    pub(super) fn ensure(&self) -> Result<()> {
        fsutil::create_private_dir(&self.dir)
    }

    /// Appends a line and syncs it: written before the tenant's commit, so a crash can leave a
    /// line for a tenant that was rolled back (undo then finds it unchanged from before and
    /// skips it), never a committed tenant without its line.
    pub(super) fn append(&self, line: &ManifestLine) -> Result<()> {
        let path = self.dir.join("manifest.jsonl");
        let mut guard = self
            .manifest
            .lock()
            .map_err(|_| Error::Other("manifest lock poisoned".into()))?;
        if guard.is_none() {
            *guard = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&path)
                    .at(&path)?,
            );
        }
        let f = guard.as_mut().expect("opened above");
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        f.write_all(text.as_bytes()).at(&path)?;
        f.sync_data().at(&path)
    }
}

pub(super) fn snapshots_dir(ws: &Workspace) -> PathBuf {
    ws.layout.snapshots_dir()
}

/// Copies the database through SQLite's backup API from a second connection: the migrating
/// connection holds the write lock, so what this reads is exactly the state the migration
/// starts from. The copy is written beside, synced, then renamed into place (0600).
pub(super) fn take_snapshot(
    path: &Path,
    run: &RunDir,
    t: &Target,
    wait: Duration,
) -> Result<PathBuf> {
    run.ensure()?;
    let file = format!("{}.{}.db", t.database, t.schema);
    let dest = run.dir.join(&file);
    let tmp = fsutil::temp_beside(&dest);
    fsutil::create_private_file(&tmp)?;
    let result = (|| -> Result<()> {
        let src = db::open_for_inspection(path)?;
        let mut dst = Connection::open(&tmp).at(&tmp)?;
        {
            let b = Backup::new(&src, &mut dst).at(&tmp)?;
            // Busy or locked: another writer holds the tenant. Waited for as long as the run's
            // --busy-timeout, like every other lock of the run, then reported as busy.
            let deadline = std::time::Instant::now() + wait;
            loop {
                match b.step(-1).at(&tmp)? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    _ if std::time::Instant::now() >= deadline => {
                        return Err(Error::Busy {
                            what: path.display().to_string(),
                            detail: format!(
                                "the snapshot before a destructive migration waited {} for another writer; nothing was changed, run it again (or raise --busy-timeout)",
                                ids::format_wait(wait)
                            ),
                        })
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        dst.close().map_err(|(_, e)| e).at(&tmp)?;
        fsutil::sync_file(&tmp)?;
        fs::rename(&tmp, &dest).at(&dest)?;
        fsutil::sync_dir(&run.dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|_| dest)
}

/// Runs the statements of `m` on a tenant, each through `guard` (installed on `conn`).
pub(super) fn run_statements(
    conn: &Connection,
    guard: &guard::Guard,
    path: &Path,
    m: &Mig,
    from: i64,
) -> Result<()> {
    let fail = |n: usize, st: &guard::Statement, e: rusqlite::Error| {
        let detail = format!(
            "{}:{} (V{}), statement {n} `{}` failed: {e}; rolled back, the tenant stays at V{from}",
            m.file,
            st.line,
            m.version,
            destructive::shorten(&st.sql)
        );
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::Busy {
                    what: path.display().to_string(),
                    detail,
                }
            }
            _ => match Error::disk_full(path, &e) {
                Some(Error::DiskFull { path, .. }) => Error::DiskFull { path, detail },
                _ => Error::Other(format!("{}: {detail}", path.display())),
            },
        }
    };
    for (i, st) in guard::split(&m.sql).iter().enumerate() {
        if let Err(f) = guard.run(conn, st) {
            return Err(f.into_error(Path::new(&m.file), i + 1, st, |e| fail(i + 1, st, e)));
        }
    }
    Ok(())
}

pub(super) fn record_applied(conn: &Connection, path: &Path, m: &Mig) -> Result<()> {
    conn.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (?1, ?2, ?3, ?4)",
        params![m.version, m.name, ids::now_iso(), m.checksum.to_string()],
    )
    .map(|_| ())
    .at(path)
}

pub(super) struct UpCtx<'a> {
    pub(super) ws: &'a Workspace,
    pub(super) set: &'a MigrationSet,
    pub(super) target: i64,
    pub(super) opts: &'a RunOptions,
    pub(super) analyses: Analyses,
    pub(super) run: RunDir,
}

pub(super) fn up_one(cx: &UpCtx<'_>, t: &Target) -> Result<TenantUp> {
    let path = t.path(cx.ws)?;
    // A read first: a tenant with nothing to do costs no lock and no write.
    {
        let ins = db::read_quietly(&path, |conn, path| {
            conn.busy_timeout(cx.opts.busy_timeout).at(path)?;
            inspect(conn, path, cx.set, cx.target)
        })?;
        refuse_diverged(&ins, &path)?;
        if ins.pending.is_empty() && !ins.adopt {
            return Ok(TenantUp {
                from: ins.version,
                to: ins.version,
                applied: Vec::new(),
                adopted: false,
                snapshot: None,
            });
        }
    }
    // The lock of this database is SQLite's own write lock, held from BEGIN IMMEDIATE to the
    // commit: it excludes the API's writers as well as any other monkctl, and the history is
    // read again under it. (Runs exclude each other with the run lock.)
    let mut conn = db::open(&path, Mode::ReadWrite)?;
    conn.busy_timeout(cx.opts.busy_timeout).at(&path)?;
    system::register_functions(&conn).at(&path)?;
    conn.execute_batch("BEGIN IMMEDIATE").at(&path)?;
    // The guard is on from after monkctl's BEGIN to before its COMMIT: the operator's
    // statements run under it; monkctl's own in between (history, snapshot) pass its rules.
    let r = guard::install(&mut conn, Kind::Migration, cx.opts.statement_timeout)
        .at(&path)
        .and_then(|g| {
            let r = up_in_tx(cx, t, &conn, &g, &path);
            g.remove(&mut conn).at(&path)?;
            r
        })
        .and_then(|up| {
            conn.execute_batch("COMMIT").at(&path)?;
            db::checkpoint_before_close(&conn);
            Ok(up)
        });
    if r.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    r
}

/// Where a database that is not migrated in place (an archive) stands against the deployment's
/// set: its version and what `migrate up` would run on it. A migration it records that the set
/// does not have, or has with other content, is exit 17, naming each one and where the set
/// expected it.
pub fn judge(conn: &Connection, path: &Path, set: &MigrationSet) -> Result<Inspection> {
    let ins = inspect(conn, path, set, set.latest())?;
    refuse_unknown(
        &ins,
        path,
        "run with the migrations it was made with (--migrations, MONK_MIGRATIONS_DIR or migrations_dir)",
    )?;
    Ok(ins)
}

pub(super) fn refuse_diverged(ins: &Inspection, path: &Path) -> Result<()> {
    refuse_unknown(
        ins,
        path,
        "restore the original migration files (or the database) before migrating",
    )
}

pub(super) fn refuse_unknown(ins: &Inspection, path: &Path, fix: &str) -> Result<()> {
    if ins.diverged.is_empty() && ins.missing.is_empty() {
        return Ok(());
    }
    let all: Vec<&str> = ins
        .diverged
        .iter()
        .chain(&ins.missing)
        .map(String::as_str)
        .collect();
    Err(Error::Diverged(format!(
        "{}: {}; {fix}",
        path.display(),
        all.join("; ")
    )))
}

pub(super) fn up_in_tx(
    cx: &UpCtx<'_>,
    t: &Target,
    conn: &Connection,
    guard: &guard::Guard,
    path: &Path,
) -> Result<TenantUp> {
    // Read again under the write lock: another process may have migrated meanwhile.
    let ins = inspect(conn, path, cx.set, cx.target)?;
    refuse_diverged(&ins, path)?;
    let from = ins.version;
    let pending: Vec<&Mig> = ins.pending.iter().filter_map(|v| cx.set.get(*v)).collect();
    let mut snapshot = None;
    if !pending.is_empty() {
        let schema = schema_sql(conn).at(path)?;
        let findings = cx.analyses.get(&schema, &pending)?.map_err(|f| {
            f.error(|f| Error::Other(format!("{}: {}", path.display(), failure_message(f, from))))
        })?;
        if !findings.is_empty() {
            if !cx.opts.allow_destructive {
                return Err(Error::Destructive(format!(
                    "tenant '{}' would run destructive statements: {}; nothing was changed; rerun with --allow-destructive (each tenant is snapshotted first, `migrate undo` restores)",
                    t.name,
                    destructive::summary(&findings)
                )));
            }
            snapshot = Some(take_snapshot(path, &cx.run, t, cx.opts.busy_timeout)?);
        }
    }
    conn.execute_batch(HISTORY_DDL).at(path)?;
    if ins.adopt {
        for m in cx.set.migs.iter().filter(|m| m.version <= from) {
            record_applied(conn, path, m)?;
        }
    }
    let mut applied = Vec::new();
    for m in &pending {
        run_statements(conn, guard, path, m, from)?;
        record_applied(conn, path, m)?;
        applied.push(m.version);
    }
    let to = applied.last().copied().unwrap_or(from);
    if let Some(snap) = &snapshot {
        cx.run.append(&ManifestLine {
            tenant: t.name.clone(),
            database: t.database.clone(),
            schema: t.schema.clone(),
            snapshot: snap
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            from,
            to,
            post_hash: content_hash(conn).at(path)?,
            pre_hash: None,
            at: ids::now_iso(),
        })?;
    }
    Ok(TenantUp {
        from,
        to,
        applied,
        adopted: ins.adopt,
        snapshot,
    })
}

/// `migrate up`: the infra database first, then every selected tenant in parallel, each in one
/// transaction. A failed tenant does not stop the others (unless `fail_fast`). Each tenant's
/// outcome goes to `sink` as soon as it is known.
pub fn up(
    ws: &Workspace,
    set: &MigrationSet,
    opts: &RunOptions,
    progress: &dyn Progress,
    sink: &mut dyn RunSink<UpHead, TenantUp>,
) -> Result<UpReport> {
    if let crate::core::Backend::Postgres(t) = &ws.backend {
        return postgres::up(ws, t, set, opts, progress, sink);
    }
    let target = set.target(opts.target)?;
    // Every statement passes the guard on a scratch copy before anything is touched.
    guard_set(ws, set, target, &opts.selection, opts.statement_timeout)?;
    // Fail on a missing infra database before taking any lock or creating anything.
    let before = infra_status(&ws.registry()?)?;
    let run_lock = Lock::acquire(&run_lock_path(ws), "monkctl migrate up")?;
    let reg = ws.registry_for_write()?;
    let after = infra_status(&reg)?;
    let (mut targets, selected, skipped) = select(&reg, &opts.selection)?;
    let run_id = new_run_id(&snapshots_dir(ws), SystemTime::now());
    let head = UpHead {
        run_id: run_id.clone(),
        target,
        infra: InfraUp {
            path: after.path,
            from: before.version,
            to: after.version,
        },
        took_over_stale_lock: run_lock.took_over.clone(),
    };
    sink.begin(&head);
    let cx = UpCtx {
        ws,
        set,
        target,
        opts,
        analyses: Analyses::new(opts.statement_timeout),
        run: RunDir {
            dir: snapshots_dir(ws).join(&run_id),
            manifest: Mutex::new(None),
        },
    };
    let mut summary = UpSummary {
        tenants: selected,
        skipped,
        ..UpSummary::default()
    };
    let mut tally = Tally::default();
    let not_started = pool(
        &mut targets,
        selected,
        opts.jobs,
        opts.fail_fast,
        progress,
        "migrating",
        |t| up_one(&cx, t),
        &mut |o: Outcome<TenantUp>| {
            summary.add(&o);
            tally.add(&o);
            sink.outcome(o);
        },
    )?;
    summary.failed = tally.failed;
    summary.not_started = not_started.len();
    let snapshots = cx.run.dir.is_dir().then(|| cx.run.dir.clone());
    Ok(UpReport {
        head,
        snapshots,
        tenants: tally,
        not_started,
        summary,
    })
}
