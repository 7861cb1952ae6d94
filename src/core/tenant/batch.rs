//! SQLite creation in batches (built in parallel, placed and registered together), and one
//! tenant at a time (`create_one`).

use super::*;

/// A tenant of a batch whose private file is built and waits to be placed and registered.
pub(super) struct Pending {
    /// Index of the tenant in the batch.
    index: usize,
    final_path: PathBuf,
    tmp: PathBuf,
    _guard: fsutil::TempFile,
    built: Built,
    row: TenantRow,
    moved_aside: Vec<PathBuf>,
    placed: bool,
}

/// Creates a batch of tenants; one result per spec, in order.
///
/// 1. Each tenant's file is built privately beside its final path (not synced one by one).
/// 2. All of them are made durable at once: one `syncfs` on the file system of their directory
///    (opened before the files were written, so write-back errors are reported), or, when that
///    fails, one `fsync` per file.
/// 3. One registry transaction: per tenant (in a savepoint of its own) the name is checked
///    again, an unclaimed leftover at the final path is moved to `<data>/orphans/`, the file is
///    linked into place and the row and fixtures inserted; a tenant that fails there is rolled
///    back to its savepoint and its linked file removed, and the others go on. The directories
///    are synced once, BEFORE the commit, so that no committed row names a file whose directory
///    entry could be lost.
///
/// A kill at any moment leaves registered tenants whole: rows appear only with the commit, after
/// the files and their directory entries are on disk. Files linked by a killed run are claimed
/// by no row and are moved aside by the next create of that name, as `create_one` does.
pub(super) fn create_batch(
    reg: &mut Registry,
    layout: &Layout,
    specs: &[CreateSpec],
    builder: &Builder<'_>,
    progress: &dyn Progress,
    last_created: &mut SystemTime,
) -> Vec<Result<Created>> {
    let mut results: Vec<Option<Result<Created>>> = specs.iter().map(|_| None).collect();
    let database = layout.new_tenant_database().to_string();

    // Directories of the final paths, each opened before any file is written into it.
    let mut dirs: Vec<(PathBuf, Result<fsutil::FsSyncer>)> = Vec::new();

    // Phase 1: check every name and choose its paths (in order: the registry connection is not
    // shared between threads), then build the files privately on a few threads (`build_all`).
    let mut slots: Vec<Slot> = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        match locate(reg, layout, &database, spec, &mut dirs) {
            Ok(slot) => slots.push(Slot { index, ..slot }),
            Err(e) => {
                progress.advance(1, &spec.name);
                results[index] = Some(Err(e));
            }
        }
    }
    let built = build_all(&slots, specs, builder, progress);
    let mut pending: Vec<Pending> = Vec::new();
    for (slot, r) in slots.into_iter().zip(built) {
        match r {
            Ok(built) => pending.push(Pending {
                row: new_row(&specs[slot.index], &database, &slot.schema, &built),
                index: slot.index,
                final_path: slot.final_path,
                tmp: slot.tmp,
                _guard: slot.guard,
                built,
                moved_aside: Vec::new(),
                placed: false,
            }),
            Err(e) => results[slot.index] = Some(Err(e)),
        }
    }
    if !pending.is_empty() {
        crate::core::pause_point("tenant.batch.built");
    }

    // Phase 2: make every built file durable.
    let all_synced = dirs
        .iter()
        .all(|(_, s)| s.as_ref().is_ok_and(|s| s.sync().is_ok()));
    if !all_synced {
        pending.retain(|p| match fsutil::sync_file(&p.tmp) {
            Ok(()) => true,
            Err(e) => {
                results[p.index] = Some(Err(as_final(e, &p.tmp, &p.final_path)));
                false
            }
        });
    }
    if !pending.is_empty() {
        crate::core::pause_point("tenant.batch.synced");
    }

    // Phase 3: place and register them in one transaction.
    if !pending.is_empty() {
        let outcome = reg.write(|w| {
            let mut failed: Vec<(usize, Error)> = Vec::new();
            for p in pending.iter_mut() {
                let spec = &specs[p.index];
                w.tx()
                    .execute_batch("SAVEPOINT monk_batch_tenant")
                    .at(&layout.infra_path)?;
                match register_one(w, layout, spec, p, last_created) {
                    Ok(()) => w
                        .tx()
                        .execute_batch("RELEASE monk_batch_tenant")
                        .at(&layout.infra_path)?,
                    Err(e) => {
                        if w.tx().is_autocommit() {
                            // SQLite rolled the whole transaction back: nothing of the batch can
                            // be committed any more.
                            return Err(e);
                        }
                        w.tx()
                            .execute_batch(
                                "ROLLBACK TO monk_batch_tenant; RELEASE monk_batch_tenant",
                            )
                            .at(&layout.infra_path)?;
                        if p.placed {
                            let _ = fs::remove_file(&p.final_path);
                            p.placed = false;
                        }
                        failed.push((p.index, e));
                    }
                }
            }
            let mut synced: Vec<&Path> = Vec::new();
            for p in pending.iter().filter(|p| p.placed) {
                if let Some(dir) = p.final_path.parent() {
                    if !synced.contains(&dir) {
                        fsutil::sync_dir(dir)?;
                        synced.push(dir);
                    }
                }
            }
            crate::core::pause_point("tenant.batch.placed");
            Ok(failed)
        });
        match outcome {
            Ok(failed) => {
                for (index, e) in failed {
                    results[index] = Some(Err(e));
                }
                for p in pending.into_iter().filter(|p| p.placed) {
                    let r = reg.get(&specs[p.index].name).map(|tenant| Created {
                        tenant,
                        path: Some(p.final_path),
                        moved_aside: p.moved_aside,
                        existed: false,
                    });
                    results[p.index] = Some(r);
                }
            }
            Err(e) => {
                for p in pending {
                    if p.placed {
                        let _ = fs::remove_file(&p.final_path);
                    }
                    results[p.index] = Some(Err(same_kind(&e)));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Other("internal: tenant left unprocessed".into()))))
        .collect()
}

/// A tenant of a batch whose name is free and whose paths are chosen.
pub(super) struct Slot {
    index: usize,
    /// The tenant's name, for progress.
    name: String,
    schema: String,
    final_path: PathBuf,
    tmp: PathBuf,
    guard: fsutil::TempFile,
}

/// Phase 1 of a batch for one tenant, before building: the name is free (checked again under
/// the write lock later) and the paths; the final directory exists and is open for syncing.
pub(super) fn locate(
    reg: &Registry,
    layout: &Layout,
    database: &str,
    spec: &CreateSpec,
    dirs: &mut Vec<(PathBuf, Result<fsutil::FsSyncer>)>,
) -> Result<Slot> {
    names::tenant(&spec.name)?;
    names::user(&spec.owner)?;
    if reg.find(&spec.name)?.is_some() {
        return Err(Error::TenantExists(spec.name.clone()));
    }
    let schema = Layout::schema_for(&spec.name);
    let final_path = layout.tenant_path(database, &schema)?;
    let dir = final_path
        .parent()
        .unwrap_or(&layout.data_dir)
        .to_path_buf();
    if !dirs.iter().any(|(d, _)| *d == dir) {
        fsutil::create_private_dir(&dir)?;
        let syncer = fsutil::FsSyncer::open(&dir);
        dirs.push((dir, syncer));
    }
    let tmp = fsutil::temp_beside(&final_path);
    Ok(Slot {
        index: 0,
        name: spec.name.clone(),
        schema,
        final_path,
        guard: fsutil::TempFile(Some(tmp.clone())),
        tmp,
    })
}

/// Builds every slot's file on `core::pool` threads (one per core, at most 4; SQLite
/// connections are not shared); one result per slot, in order. Each thread takes the next slot
/// until none is left, so a slow tenant does not hold the others up. A slot that Ctrl-C left
/// unbuilt is `Error::Interrupted`.
pub(super) fn build_all(
    slots: &[Slot],
    specs: &[CreateSpec],
    builder: &Builder<'_>,
    progress: &dyn Progress,
) -> Vec<Result<Built>> {
    let run = crate::core::pool::Run {
        jobs: crate::core::pool::default_jobs(crate::core::pool::Work::Files)
            .min(slots.len().max(1)),
        fail_fast: false,
        progress,
        name: |slot: &&Slot| &slot.name,
    };
    let mut feed = slots.iter();
    let mut all = Vec::with_capacity(slots.len());
    // The feed is a list: it cannot fail.
    let _ = crate::core::pool::ordered(
        &run,
        &mut || Ok(feed.next()),
        &|| (),
        &|_, slot| {
            builder(&slot.tmp, &specs[slot.index])
                .map_err(|e| as_final(e, &slot.tmp, &slot.final_path))
        },
        &|_| false,
        &mut |_, r| all.push(r.unwrap_or(Err(Error::Interrupted))),
    );
    all
}

/// Phase 3 of a batch for one tenant, inside the registry transaction: check, clear the final
/// path, link the file (its directory is synced later, once for the batch), insert the rows.
/// `created_at` is taken here, in the order the tenants were given, and strictly increases over
/// the run (by 1 ms when the clock has not moved), so that sorting by creation time keeps that
/// order as it does for tenants created one at a time. Within a batch it may run ahead of the
/// clock by up to a millisecond per tenant (at most `BATCH_SIZE` ms); building the next batch
/// takes longer than that, so the clock catches up.
pub(super) fn register_one(
    w: &Writer<'_>,
    layout: &Layout,
    spec: &CreateSpec,
    p: &mut Pending,
    last_created: &mut SystemTime,
) -> Result<()> {
    if p.built.created_at.is_none() {
        let now = SystemTime::now().max(*last_created + Duration::from_millis(1));
        *last_created = now;
        p.row.created_at = ids::iso_from(now);
    }
    p.moved_aside = clear_location(w, layout, spec, &p.row, &p.final_path)?;
    fsutil::place_new_unsynced(&p.tmp, &p.final_path)?;
    p.placed = true;
    insert_rows(w, &p.row, &p.built)
}

/// Refuses a name that is taken or a location another row claims, then moves the files an
/// interrupted earlier attempt left at the final path (no row claims them) to `<data>/orphans/`.
pub(super) fn clear_location(
    w: &dyn RegistryWriter,
    layout: &Layout,
    spec: &CreateSpec,
    row: &TenantRow,
    final_path: &Path,
) -> Result<Vec<PathBuf>> {
    if w.find(&spec.name)?.is_some() {
        return Err(Error::TenantExists(spec.name.clone()));
    }
    if w.location_claimed(&row.database, &row.schema)? {
        return Err(Error::Conflict(format!(
            "another tenant's row already claims {}; fix the registry (monkctl doctor) before creating '{}'",
            final_path.display(),
            spec.name
        )));
    }
    let mut moved_aside = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = fsutil::with_suffix(final_path, suffix);
        if p.exists() {
            moved_aside.push(fsutil::move_into(&p, &layout.orphans_dir())?);
        }
    }
    Ok(moved_aside)
}

/// The tenant's row and its fixtures.
pub(super) fn insert_rows(w: &dyn RegistryWriter, row: &TenantRow, built: &Built) -> Result<()> {
    w.insert(row)?;
    for f in &built.fixtures {
        w.record_fixture(&row.id, f, &row.created_at)?;
    }
    for (f, v) in &built.fixture_versions {
        w.set_fixture_version(&row.id, f, v)?;
    }
    Ok(())
}

pub(super) fn new_row(spec: &CreateSpec, database: &str, schema: &str, built: &Built) -> TenantRow {
    TenantRow {
        id: built.id.clone().unwrap_or_else(ids::uuid_v4),
        name: spec.name.clone(),
        db_type: "sqlite".into(),
        database: database.to_string(),
        schema: schema.to_string(),
        status: built.status.clone().unwrap_or_else(|| "active".into()),
        template_version: built.template_version.unwrap_or(1),
        description: spec.description.clone(),
        source_template: built.source_template.clone(),
        owner_id: built.owner_id.clone(),
        is_active: true,
        created_at: built.created_at.clone().unwrap_or_else(ids::now_iso),
        updated_at: String::new(),
        trashed_at: None,
        deleted_at: None,
    }
}

/// An error about a tenant's private temporary file, told about the file it was to become: the
/// temporary one is gone by the time the user reads the message (a full disk names the device's
/// file the tenant would have had).
pub(super) fn as_final(e: Error, tmp: &Path, final_path: &Path) -> Error {
    e.renamed(tmp, &final_path.display().to_string())
}

/// A batch-wide failure, reported for each tenant of the batch with the same exit code.
pub(super) fn same_kind(e: &Error) -> Error {
    match e {
        Error::Busy { what, detail } => Error::Busy {
            what: what.clone(),
            detail: detail.clone(),
        },
        Error::Permission { path, detail } => Error::Permission {
            path: path.clone(),
            detail: detail.clone(),
        },
        Error::Corrupt { path, detail } => Error::Corrupt {
            path: path.clone(),
            detail: detail.clone(),
        },
        Error::DiskFull { path, detail } => Error::DiskFull {
            path: path.clone(),
            detail: detail.clone(),
        },
        Error::Conflict(m) => Error::Conflict(m.clone()),
        Error::Unsupported(m) => Error::Unsupported(m.clone()),
        other => Error::Other(other.to_string()),
    }
}

/// Creates one tenant: build privately, then link into place and insert the row in one registry
/// transaction. A file left at the final path by an interrupted earlier attempt (no row claims
/// it) is moved to `<data>/orphans/` so that it never blocks a retry.
pub fn create_one(
    reg: &mut Store,
    layout: &Layout,
    spec: &CreateSpec,
    builder: &Builder<'_>,
) -> Result<Created> {
    names::tenant(&spec.name)?;
    names::user(&spec.owner)?;
    if reg.find(&spec.name)?.is_some() {
        return Err(Error::TenantExists(spec.name.clone()));
    }
    let database = layout.new_tenant_database().to_string();
    let schema = Layout::schema_for(&spec.name);
    let final_path = layout.tenant_path(&database, &schema)?;
    if let Some(dir) = final_path.parent() {
        fsutil::create_private_dir(dir)?;
    }
    let tmp = fsutil::temp_beside(&final_path);
    let guard = fsutil::TempFile(Some(tmp.clone()));
    let built = builder(&tmp, spec).map_err(|e| as_final(e, &tmp, &final_path))?;
    // Builders do not sync (a batch syncs all its files at once): this one file is synced here.
    fsutil::sync_file(&tmp).map_err(|e| as_final(e, &tmp, &final_path))?;
    crate::core::pause_point("tenant.built");

    let row = new_row(spec, &database, &schema, &built);
    let mut placed = false;
    let mut moved_aside = Vec::new();
    let result = reg.write(|w| {
        moved_aside = clear_location(w, layout, spec, &row, &final_path)?;
        fsutil::place_new(&tmp, &final_path)?;
        placed = true;
        crate::core::pause_point("tenant.placed");
        insert_rows(w, &row, &built)?;
        crate::core::pause_point("tenant.inserted");
        Ok(())
    });
    drop(guard);
    if let Err(e) = result {
        if placed {
            let _ = fs::remove_file(&final_path);
        }
        return Err(e);
    }
    let tenant = reg.get(&spec.name)?;
    Ok(Created {
        tenant,
        path: Some(final_path),
        moved_aside,
        existed: false,
    })
}
