//! The tenants of a run (named, or the fleet a page at a time), the ordered worker pool, and
//! the analysis of pending migrations on scratch copies.

use super::*;

/// Which tenants a run covers.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Named tenants; every live tenant when empty.
    pub tenants: Vec<String>,
    /// Trashed tenants too (deleted tenants' files are in the trash and are never migrated).
    pub include_trashed: bool,
}

/// A tenant of a run: only what the workers need, so that a fleet costs little memory.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) name: String,
    pub(super) database: String,
    pub(super) schema: String,
}

impl Target {
    /// The tenant's file: in the data directory, or, for a PostgreSQL registry's SQLite
    /// tenant, under `--sqlite-data-dir`.
    pub(super) fn path(&self, ws: &Workspace) -> Result<PathBuf> {
        ws.sqlite_layout()?
            .tenant_path(&self.database, &self.schema)
    }
}

/// How many tenants the registry is read at a time during a run.
pub(super) const PAGE: usize = 512;

/// The tenants of a run, in name order: the ones named, or the fleet read from the registry a
/// page at a time (a run over 100,000 tenants holds a page, not 100,000 rows).
pub(super) enum Targets<'a> {
    Named(std::vec::IntoIter<Target>),
    Fleet {
        reg: &'a Registry,
        after: String,
        page: std::vec::IntoIter<Target>,
        done: bool,
        include_trashed: bool,
    },
}

impl Targets<'_> {
    pub(super) fn next(&mut self) -> Result<Option<Target>> {
        match self {
            Targets::Named(it) => Ok(it.next()),
            Targets::Fleet {
                reg,
                after,
                page,
                done,
                include_trashed,
            } => loop {
                if let Some(t) = page.next() {
                    return Ok(Some(t));
                }
                if *done {
                    return Ok(None);
                }
                let rows = reg.locations_after(after, PAGE)?;
                *done = rows.len() < PAGE;
                if let Some(last) = rows.last() {
                    after.clone_from(&last.name);
                }
                *page = rows
                    .into_iter()
                    .filter(|l| !l.deleted && (*include_trashed || !l.trashed))
                    .map(|l| Target {
                        name: l.name,
                        database: l.database,
                        schema: l.schema,
                    })
                    .collect::<Vec<_>>()
                    .into_iter();
            },
        }
    }
}

/// The tenants of a run, how many there are, and how many were left out (trashed or deleted).
/// Unknown names are an error before anything runs.
pub(super) fn select<'a>(
    reg: &'a Registry,
    sel: &Selection,
) -> Result<(Targets<'a>, usize, usize)> {
    if !sel.tenants.is_empty() {
        let mut out = Vec::new();
        for n in &sel.tenants {
            names::tenant(n)?;
            if out.iter().any(|t: &Target| &t.name == n) {
                continue;
            }
            let row = reg.get(n)?;
            if row.is_deleted() {
                return Err(Error::Conflict(format!(
                    "tenant '{n}' is deleted: its file is in the trash and is not migrated"
                )));
            }
            if row.is_trashed() && !sel.include_trashed {
                return Err(Error::Conflict(format!(
                    "tenant '{n}' is trashed; pass --include-trashed to migrate it anyway"
                )));
            }
            out.push(Target {
                name: row.name,
                database: row.database,
                schema: row.schema,
            });
        }
        let n = out.len();
        return Ok((Targets::Named(out.into_iter()), n, 0));
    }
    let (live, trashed, deleted) = reg.count_states()?;
    let total = live + trashed + deleted;
    let selected = live + if sel.include_trashed { trashed } else { 0 };
    Ok((
        Targets::Fleet {
            reg,
            after: String::new(),
            page: Vec::new().into_iter(),
            done: false,
            include_trashed: sel.include_trashed,
        },
        selected,
        total - selected,
    ))
}

/// Runs `f` over the targets on `jobs` threads (`core::pool`) and hands each outcome to `emit`,
/// on this thread, in the targets' order. With `fail_fast`, no tenant starts after the first
/// failure; the names of those not started (that, or Ctrl-C) are returned, in order.
#[allow(clippy::too_many_arguments)]
pub(super) fn pool<T: Send>(
    targets: &mut Targets<'_>,
    total: usize,
    jobs: usize,
    fail_fast: bool,
    progress: &dyn Progress,
    label: &str,
    f: impl Fn(&Target) -> Result<T> + Sync,
    emit: &mut dyn FnMut(Outcome<T>),
) -> Result<Vec<String>> {
    progress.start(total as u64, label);
    let run = crate::core::pool::Run {
        jobs: jobs.clamp(1, total.max(1)),
        fail_fast,
        progress,
        name: |t: &Target| &t.name,
    };
    let mut not_started = Vec::new();
    let r = crate::core::pool::ordered(
        &run,
        &mut || targets.next(),
        &|| (),
        &|_, t| f(t),
        &|r: &Result<T>| r.is_err(),
        &mut |t, r| match r {
            Some(r) => emit(Outcome::of(t.name, r)),
            None => not_started.push(t.name),
        },
    );
    progress.finish();
    r.map(|()| not_started)
}

/// Destructive analyses already made, by schema and pending migrations: tenants share a schema,
/// so a fleet costs one analysis per distinct schema. Each statement is limited to `limit`.
pub(super) struct Analyses {
    pub(super) done: Mutex<HashMap<String, std::result::Result<Vec<Finding>, Failure>>>,
    pub(super) limit: Duration,
}

impl Analyses {
    pub(super) fn new(limit: Duration) -> Analyses {
        Analyses {
            done: Mutex::new(HashMap::new()),
            limit,
        }
    }

    pub(super) fn get(
        &self,
        schema: &[String],
        pending: &[&Mig],
    ) -> Result<std::result::Result<Vec<Finding>, Failure>> {
        let mut h = crate::core::fingerprint::Fingerprint::default();
        for s in schema {
            // Length-delimited, so that ("ab","c") and ("a","bc") differ.
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        let key = format!(
            "{}:{}",
            h.finish(),
            pending
                .iter()
                .map(|m| format!("{}-{}", m.version, m.checksum))
                .collect::<Vec<_>>()
                .join(",")
        );
        if let Some(r) = self.done.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(r);
        }
        let mut scratch = destructive::scratch_from_schema(schema)
            .map_err(|e| Error::Other(format!("could not copy the schema for analysis: {e}")))?;
        let r = destructive::analyse(&mut scratch, pending, self.limit, false);
        if let Ok(mut m) = self.done.lock() {
            m.insert(key, r.clone());
        }
        Ok(r)
    }
}

pub(super) fn failure_message(f: &Failure, from: i64) -> String {
    format!(
        "{}:{} (V{}): statement {} `{}` fails: {}; nothing was applied, the tenant stays at V{from}",
        f.file,
        f.line,
        f.version,
        f.number,
        destructive::shorten(&f.statement),
        f.message
    )
}

/// Runs every migration of the set up to `target` through the guard on a baseline scratch copy
/// in memory, before a run touches anything: a statement the guard refuses, or one that runs
/// longer than `limit`, fails the whole command (exit 2 or 20) with its file and line, when its
/// migration is pending on at least one selected tenant. (A migration every tenant applied
/// already never runs again, and cannot be edited without diverging: a statement in it that
/// this guard refuses does not block the fleet.) Statements that only fail on the baseline (a
/// table only the tenants have) are left to each tenant's own analysis, which meets the guard
/// again before anything runs on that tenant.
pub fn guard_set(
    ws: &Workspace,
    set: &MigrationSet,
    target: i64,
    sel: &Selection,
    limit: Duration,
) -> Result<()> {
    let migs: Vec<&Mig> = set
        .migs
        .iter()
        .filter(|m| m.version > 1 && m.version <= target)
        .collect();
    if migs.is_empty() {
        return Ok(());
    }
    let mut scratch = destructive::scratch_baseline()
        .map_err(|e| Error::Other(format!("could not build a baseline for analysis: {e}")))?;
    let refused = destructive::refusals(&mut scratch, &migs, limit);
    if refused.is_empty() {
        return Ok(());
    }
    // Rare: find which of those migrations some tenant still has to run (reads only).
    let pending = pending_anywhere(ws, set, target, sel)?;
    match refused.iter().find(|f| pending.contains(&f.version)) {
        Some(f) => Err(f.error(|f| Error::Other(failure_message(f, 1)))),
        None => Ok(()),
    }
}

/// The versions pending on at least one selected tenant, read without a lock.
pub(super) fn pending_anywhere(
    ws: &Workspace,
    set: &MigrationSet,
    target: i64,
    sel: &Selection,
) -> Result<HashSet<i64>> {
    let reg = ws.registry()?;
    let (mut targets, _, _) = select(&reg, sel)?;
    let mut out = HashSet::new();
    while let Some(t) = targets.next()? {
        let path = t.path(ws)?;
        // A tenant that cannot be read is reported by the run itself.
        if let Ok(ins) = db::read_quietly(&path, |conn, path| inspect(conn, path, set, target)) {
            out.extend(ins.pending);
        }
    }
    Ok(out)
}
