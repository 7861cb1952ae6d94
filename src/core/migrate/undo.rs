//! `migrate undo` and the snapshots of runs (`list_runs`, `prune`).

use super::*;

#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub restored_to: i64,
    pub was: i64,
    pub snapshot: PathBuf,
    /// The tenant held its snapshot's content already (restored by an undo that was interrupted
    /// before it could record so).
    pub already: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UndoReport {
    pub run_id: String,
    pub tenants: Batch<Restored>,
}

/// A run's directory under `<data>/snapshots/`.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub path: PathBuf,
    #[serde(rename = "tenant_count")]
    pub tenants: usize,
    /// Tenants an `undo` of this run would still restore (all of them until a first undo).
    pub to_restore: usize,
    #[serde(rename = "size_bytes")]
    pub bytes: u64,
    pub undone: bool,
    #[serde(rename = "modified_at")]
    pub modified: String,
}

pub(super) fn read_manifest(dir: &Path) -> Result<Vec<ManifestLine>> {
    let path = dir.join("manifest.jsonl");
    let f = fs::File::open(&path).at(&path)?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.at(&path)?;
        // A line cut short by a crash belongs to a tenant whose commit never happened.
        if let Ok(l) = serde_json::from_str::<ManifestLine>(&line) {
            out.push(l);
        }
    }
    Ok(out)
}

/// Every run with snapshots, newest first.
pub fn list_runs(ws: &Workspace) -> Result<Vec<RunInfo>> {
    let dir = snapshots_dir(ws);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for e in fs::read_dir(&dir).at(&dir)? {
        let e = e.at(&dir)?;
        let p = e.path();
        if !p.is_dir() || !p.join("manifest.jsonl").is_file() {
            continue;
        }
        let mut bytes = 0;
        for f in fs::read_dir(&p).at(&p)?.flatten() {
            bytes += f.metadata().map(|m| m.len()).unwrap_or(0);
        }
        let modified = e
            .metadata()
            .and_then(|m| m.modified())
            .map(ids::iso_from)
            .unwrap_or_default();
        let manifest = read_manifest(&p)?;
        let record = read_undone(&p);
        let to_restore = match &record {
            Some(u) => manifest
                .iter()
                .filter(|l| !u.restored.contains(&l.tenant) && !u.left.contains(&l.tenant))
                .count(),
            None => manifest.len(),
        };
        out.push(RunInfo {
            run_id: e.file_name().to_string_lossy().into_owned(),
            tenants: manifest.len(),
            to_restore,
            undone: record.is_some_and(|u| u.failed.is_empty()),
            path: p,
            bytes,
            modified,
        });
    }
    out.sort_by(|a, b| run_order(&b.run_id).cmp(&run_order(&a.run_id)));
    Ok(out)
}

/// Where a run id sorts: its UTC stamp, then its sequence number within that stamp, then the
/// rest. Ids are `<stamp>-<sequence>-<random>` (`20261123T032553Z-0001-3fa2c1d9`); an id of an
/// older monkctl (`<stamp>-<random>`) has sequence 0.
pub(super) fn run_order(id: &str) -> (&str, u64, &str) {
    let (stamp, rest) = id.split_once('-').unwrap_or((id, ""));
    match rest.split_once('-') {
        Some((seq, rand)) if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) => {
            (stamp, seq.parse().unwrap_or(u64::MAX), rand)
        }
        _ => (stamp, 0, rest),
    }
}

/// A new run id that sorts after every run in `dir` (called under the run lock): the stamp of
/// `now`, or, when the newest run has the same stamp or a later one (two runs within one second,
/// a clock set back), that run's stamp with the next sequence number. So `undo` always takes the
/// run made last.
pub(super) fn new_run_id(dir: &Path, now: SystemTime) -> String {
    let existing: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    next_run_id(&existing, now, &ids::uuid_v4()[..8])
}

pub(super) fn next_run_id(existing: &[String], now: SystemTime, rand: &str) -> String {
    let stamp = ids::file_stamp(now);
    // Only run directories count (a stamp of 16 characters ending in Z), not stray files.
    let newest = existing
        .iter()
        .map(|e| run_order(e))
        .filter(|(s, _, _)| s.len() == stamp.len() && s.ends_with('Z'))
        .max();
    let (stamp, seq) = match newest {
        Some((s, n, _)) if s >= stamp.as_str() => (s.to_string(), n.saturating_add(1)),
        _ => (stamp, 0),
    };
    format!("{stamp}-{seq:04}-{rand}")
}

pub(super) fn restore_one(
    ws: &Workspace,
    run: &Path,
    l: &ManifestLine,
    timeout: Duration,
) -> Result<Restored> {
    names::path_component("snapshot", &l.snapshot)?;
    if let crate::core::Backend::Postgres(t) = &ws.backend {
        return postgres::restore_one(t, run, l);
    }
    let path = ws.layout.tenant_path(&l.database, &l.schema)?;
    let snap = run.join(&l.snapshot);
    let live = db::open(&path, Mode::ReadWrite)?;
    // Read-write flags so that closing it leaves no -wal/-shm beside the snapshot.
    let src = db::open_for_inspection(&snap)?;
    let mut was = 0;
    let mut already = false;
    // Restored into the open live database: SQLite takes its write lock, the tenant is checked
    // under it (a second connection reads the last commit, and none can land meanwhile), then
    // the pages are replaced in one transaction; readers see the old or the new content. A
    // tenant that holds its snapshot's content already (an undo killed after restoring it) is
    // restored: writing the same content again changes nothing.
    db::replace_content(&src, live, &path, timeout, || {
        let reader = db::open_for_inspection(&path)?;
        if content_is(&reader, &l.post_hash).at(&path)? {
            // As the run left it: restored below.
        } else if content_hash(&reader).at(&path)? == content_hash(&src).at(&snap)? {
            already = true;
        } else {
            return Err(Error::Conflict(format!(
                "tenant '{}' changed since the migration run (its content differs from what the run left), so it was not restored; its snapshot stays at {}",
                l.tenant,
                snap.display()
            )));
        }
        was = schema::tenant_version(&reader).at(&path)?;
        Ok(())
    })?;
    drop(src);
    let restored_to = schema::tenant_version(&db::open_for_inspection(&path)?).at(&path)?;
    Ok(Restored {
        restored_to,
        was,
        snapshot: snap,
        already,
    })
}

/// What the undo attempts of a run did so far (`undone.json` in the run's directory).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Undone {
    pub(super) undone_at: String,
    /// Tenants whose snapshot was put back.
    pub(super) restored: Vec<String>,
    /// Tenants changed since the run, left alone on purpose.
    pub(super) left: Vec<String>,
    /// Tenants that could not be restored for another reason (a full disk, a lock held): the
    /// run stays open, and the next `undo` tries these again.
    pub(super) failed: Vec<String>,
}

/// The undo record of a run: `None` when it was never undone. A record this version cannot
/// read (an older monkctl's) counts as a run undone whole.
pub(super) fn read_undone(run: &Path) -> Option<Undone> {
    let text = fs::read_to_string(run.join("undone.json")).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_default())
}

/// `migrate undo`: restores the snapshots of the last run not undone yet. A tenant changed since
/// the run is reported and left alone.
///
/// `confirmed` is the run the user was asked about: if another run became the newest meanwhile,
/// nothing is restored (exit 4) rather than undoing a run nobody confirmed.
pub fn undo(
    ws: &Workspace,
    confirmed: Option<&str>,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<UndoReport> {
    let _lock = Lock::acquire(&run_lock_path(ws), "monkctl migrate undo")?;
    let run = list_runs(ws)?
        .into_iter()
        .find(|r| !r.undone)
        .ok_or_else(|| Error::FileNotFound {
            what: "migration run with snapshots to undo",
            path: snapshots_dir(ws),
            hint: "only runs that applied destructive migrations take snapshots; `migrate snapshots list` shows them".into(),
        })?;
    if let Some(id) = confirmed.filter(|id| *id != run.run_id) {
        return Err(Error::Conflict(format!(
            "run {} is now the newest run to undo, not run {id} that was confirmed; nothing was restored: run `migrate undo` again to be asked about it",
            run.run_id
        )));
    }
    // A run undone before with failures: only the tenants that failed are tried again.
    let mut record = read_undone(&run.path).unwrap_or_default();
    let done: std::collections::HashSet<String> = record
        .restored
        .iter()
        .chain(&record.left)
        .cloned()
        .collect();
    let mut lines: Vec<ManifestLine> = read_manifest(&run.path)?
        .into_iter()
        .filter(|l| !done.contains(&l.tenant))
        .collect();
    // Results in tenant order, as every fan-out reports them (the manifest is in finishing order).
    lines.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    progress.start(lines.len() as u64, "restoring");
    let mut tenants = Batch::default();
    record.failed.clear();
    for l in &lines {
        let r = restore_one(ws, &run.path, l, timeout);
        match &r {
            Ok(_) => record.restored.push(l.tenant.clone()),
            Err(Error::Conflict(_)) => record.left.push(l.tenant.clone()),
            Err(_) => record.failed.push(l.tenant.clone()),
        }
        tenants.push(&l.tenant, r);
        progress.advance(1, &l.tenant);
        crate::core::pause_point("migrate.undo.restored");
    }
    progress.finish();
    record.undone_at = ids::now_iso();
    let marker = run.path.join("undone.json");
    let tmp = fsutil::temp_beside(&marker);
    let mut f = fsutil::create_private_file(&tmp)?;
    f.write_all(
        serde_json::to_string(&record)
            .unwrap_or_default()
            .as_bytes(),
    )
    .at(&tmp)?;
    f.sync_all().at(&tmp)?;
    fs::rename(&tmp, &marker).at(&marker)?;
    fsutil::sync_dir(&run.path)?;
    Ok(UndoReport {
        run_id: run.run_id,
        tenants,
    })
}

/// Which runs `prune` removes: all but the newest `keep`, and/or those older than `older_than`.
pub fn prune_candidates(
    ws: &Workspace,
    keep: Option<usize>,
    older_than: Option<Duration>,
) -> Result<Vec<RunInfo>> {
    if keep.is_none() && older_than.is_none() {
        return Err(Error::Usage(
            "say what to prune: --keep N (keep the newest N runs) or --older-than DURATION".into(),
        ));
    }
    let now = SystemTime::now();
    Ok(list_runs(ws)?
        .into_iter()
        .enumerate()
        .filter(|(i, r)| {
            let beyond_keep = keep.is_some_and(|k| *i >= k);
            let old = older_than.is_some_and(|d| {
                fs::metadata(&r.path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|age| age > d)
            });
            match (keep, older_than) {
                (Some(_), Some(_)) => beyond_keep && old,
                (Some(_), None) => beyond_keep,
                _ => old,
            }
        })
        .map(|(_, r)| r)
        .collect())
}

/// Removes exactly the snapshot runs given (those `prune_candidates` named and the user
/// confirmed), under the run lock: a run that finished meanwhile shifts no window onto a run
/// nobody confirmed. A run already gone is skipped.
pub fn prune(ws: &Workspace, confirmed: &[RunInfo]) -> Result<Vec<RunInfo>> {
    let _lock = Lock::acquire(&run_lock_path(ws), "monkctl migrate snapshots prune")?;
    let dir = snapshots_dir(ws);
    let mut runs = Vec::new();
    for r in confirmed {
        // Only a run directory of this data directory's snapshots, whatever the list says.
        names::path_component("snapshot run", &r.run_id)?;
        let path = dir.join(&r.run_id);
        if path.is_dir() {
            fs::remove_dir_all(&path).at(&path)?;
            runs.push(r.clone());
        }
    }
    if !runs.is_empty() {
        fsutil::sync_dir(&snapshots_dir(ws))?;
    }
    Ok(runs)
}
