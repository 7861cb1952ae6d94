//! `restore` of an archive into a SQLite deployment, and `tenant copy` (either backend).

use super::*;

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore under this name instead of the archived one (a new tenant id when it differs).
    pub as_name: Option<String>,
    /// Replace the content of an existing tenant of that name.
    pub force: bool,
    /// Bring an older schema up to date after restoring.
    pub migrate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreMode {
    /// A new tenant was registered.
    Created,
    /// An existing tenant's content was replaced.
    Replaced,
}

#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub archive: PathBuf,
    pub mode: RestoreMode,
    #[serde(flatten)]
    pub tenant: TenantRow,
    /// The tenant's database file; `null` on PostgreSQL.
    pub path: Option<PathBuf>,
    /// Where the replaced content was saved (an archive in `<data>/trash/`).
    pub previous_saved_to: Option<PathBuf>,
    /// When replacing: how many pages the tenant database has now, and how many were written
    /// (those that differed from the archive's, or every one where they could not be compared).
    pub pages: Option<db::Replaced>,
    pub schema_version: i64,
    /// True when the deployment's migrations have versions the restored tenant lacks (restored
    /// without `--migrate`): run `monkctl migrate up` for it.
    pub needs_migration: bool,
    /// The fixtures recorded for the tenant, as the archive holds them.
    pub fixtures: Vec<crate::core::registry::DeployedFixture>,
}

/// The tenant name a restore writes to, and whether it exists already (for the confirmation).
pub fn restore_target(
    ws: &Workspace,
    archive: &Path,
    as_name: Option<&str>,
) -> Result<(String, bool)> {
    let meta = metadata_of(archive)?;
    let name = as_name.unwrap_or(&meta.tenant.name).to_string();
    names::tenant(&name)?;
    let exists = match ws.store() {
        Ok(mut reg) => reg.find(&name)?.is_some(),
        Err(Error::NoInfra { .. }) => false,
        Err(e) => return Err(e),
    };
    Ok((name, exists))
}

/// Restores an archive: verifies it first; a tenant of that name that does not exist is created
/// whole or not at all (the archived id kept unless `--as` names another tenant); an existing one
/// is replaced only with `force`, after its content was saved to the trash, through SQLite into
/// the open database, in one transaction, so that a reader sees the old or the new content,
/// never a mix (`db::replace_content`).
pub fn restore(ws: &Workspace, archive: &Path, opts: &RestoreOptions) -> Result<Restored> {
    let mut restored = restore_content(ws, archive, opts)?;
    if opts.migrate {
        // The operator's migrations count too; destructive ones are left to `migrate up`.
        let set = ws.migration_set()?;
        let run = crate::core::migrate::RunOptions {
            selection: crate::core::migrate::Selection {
                tenants: vec![restored.tenant.name.clone()],
                include_trashed: true,
            },
            ..Default::default()
        };
        let mut outcomes = crate::core::Collected::default();
        crate::core::migrate::up(ws, set, &run, &crate::core::progress::Silent, &mut outcomes)?;
        match outcomes.results.into_iter().next() {
            Some(o) if o.ok => {
                restored.schema_version = o.result.map(|r| r.to).unwrap_or(restored.schema_version);
                restored.needs_migration = false;
            }
            Some(o) => {
                return Err(Error::Other(format!(
                    "tenant '{}' was restored, but migrating it failed: {}; fix that and run `monkctl migrate up --tenant {}`",
                    restored.tenant.name,
                    o.error.unwrap_or_default(),
                    restored.tenant.name
                )))
            }
            None => {}
        }
    }
    Ok(restored)
}

/// What `tenant copy` did.
#[derive(Debug, Clone, Serialize)]
pub struct Copied {
    /// The tenant copied, in the source deployment (left as it was).
    pub tenant: String,
    /// The source deployment's backend.
    pub from: &'static str,
    /// The target deployment's backend.
    pub to: &'static str,
    /// The archive the copy went through, kept in the source's `<data>/copies/`.
    pub archive: PathBuf,
    /// The tenant made in the target deployment.
    pub restored: Restored,
}

/// `tenant copy`: extracts tenant `name` of `from` into an archive kept in `from`'s
/// `<data>/copies/`, then restores it into `to` as a new tenant (`as_name`, else the same name).
/// The source is only read; the target gets the tenant whole or not at all.
pub fn copy(from: &Workspace, name: &str, to: &Workspace, as_name: Option<&str>) -> Result<Copied> {
    names::tenant(name)?;
    if let Some(n) = as_name {
        names::tenant(n)?;
    }
    // Refused before anything is written: a name the target has already.
    let target_name = as_name.unwrap_or(name);
    let taken = match to.store() {
        Ok(mut reg) => reg.find(target_name)?.is_some(),
        Err(Error::NoInfra { .. }) => false,
        Err(e) => return Err(e),
    };
    if taken {
        return Err(Error::TenantExists(target_name.to_string()));
    }
    let dir = from.layout.copies_dir();
    fsutil::create_private_dir(&dir)?;
    let path = dir.join(default_name(name, SystemTime::now()));
    let (row, fixtures) = {
        let mut reg = from.store()?;
        let row = reg.get(name)?;
        let fixtures = reg.fixtures_of(&row.id)?;
        (row, fixtures)
    };
    if row.is_deleted() {
        return Err(Error::Conflict(format!(
            "tenant '{name}' is deleted; undelete it first to copy it"
        )));
    }
    extract_row(from, &row, &fixtures, &path, false)?;
    let restored = restore(
        to,
        &path,
        &RestoreOptions {
            as_name: as_name.map(str::to_string),
            force: false,
            migrate: false,
        },
    )?;
    Ok(Copied {
        tenant: name.to_string(),
        from: from.backend.name(),
        to: to.backend.name(),
        archive: path,
        restored,
    })
}

/// What a restore starts from, on both backends: the archive's metadata, its schema judged
/// against the deployment's migration set, and the name it is restored under.
pub(super) struct Start {
    pub meta: Metadata,
    pub standing: SchemaStanding,
    pub archived_name: String,
    pub name: String,
    pub renamed: bool,
}

impl Start {
    /// Checks `--as` and reads and judges the archive, changing nothing.
    fn read(ws: &Workspace, archive: &Path, opts: &RestoreOptions) -> Result<Start> {
        if let Some(n) = &opts.as_name {
            names::tenant(n)?;
        }
        // The metadata now, for the checks and the plan; the whole verification runs beside
        // the copies, and nothing the user can see changes before it has passed.
        let meta = metadata_of(archive)?;
        let set = ws.migration_set()?;
        // Judged before anything changes (a restore over a newer tenant is refused on it);
        // when the judgement fails, a fault the full verification finds is reported first, as
        // `verify` reports it.
        let standing = judged(archive, set, meta.schema_version)
            .map_err(|e| verify_file(archive).err().unwrap_or(e))?;
        let archived_name = meta.tenant.name.clone();
        let name = opts
            .as_name
            .clone()
            .unwrap_or_else(|| archived_name.clone());
        Ok(Start {
            renamed: name != archived_name,
            meta,
            standing,
            archived_name,
            name,
        })
    }
}

/// Verifies the archive and puts its content in place (a new tenant, or over an existing one).
pub(super) fn restore_content(
    ws: &Workspace,
    archive: &Path,
    opts: &RestoreOptions,
) -> Result<Restored> {
    let start = Start::read(ws, archive, opts)?;
    if let crate::core::Backend::Postgres(target) = &ws.backend {
        return postgres::restore(ws, target, archive, opts, start);
    }
    let Start {
        meta,
        standing,
        archived_name,
        name,
        renamed,
    } = start;
    let needs_migration = standing.needs_migration;
    let mut reg = crate::core::Store::Sqlite(ws.registry_for_write()?);
    // Refusals come before the lock, so that a refused restore leaves no file behind; the checks
    // run again under the lock (create_one re-checks in its registry transaction).
    let current = check_target(
        &mut reg,
        &name,
        &archived_name,
        renamed,
        opts.force,
        &meta,
        ws,
    )?;
    if let Some(t) = &current {
        refuse_rollback(&ws.layout, t, &standing, opts.migrate)?;
    }
    let _lock = Lock::acquire_transient(
        &ws.layout.restore_lock(&name),
        &format!("monkctl restore {}", archive.display()),
    )?;
    let again = check_target(
        &mut reg,
        &name,
        &archived_name,
        renamed,
        opts.force,
        &meta,
        ws,
    )?;
    if again.as_ref().map(|t| &t.id) != current.as_ref().map(|t| &t.id) {
        return Err(Error::Conflict(format!(
            "tenant '{name}' changed while the restore started; run it again"
        )));
    }
    match current {
        None => {
            let id = (!renamed).then(|| meta.tenant.id.clone());
            let status = match meta.tenant.status.as_str() {
                "suspended" => Some("suspended".to_string()),
                _ => Some("active".to_string()),
            };
            let built = Built {
                owner_id: meta.tenant.owner_id.clone(),
                source_template: meta.tenant.source_template.clone(),
                template_version: Some(meta.tenant.template_version),
                fixtures: meta
                    .fixtures
                    .iter()
                    .map(|f| f.fixture_name.clone())
                    .collect(),
                id,
                fixture_versions: meta
                    .fixtures
                    .iter()
                    .filter_map(|f| Some((f.fixture_name.clone(), f.version.clone()?)))
                    .collect(),
                status,
                created_at: (!renamed).then(|| meta.tenant.created_at.clone()),
            };
            let spec = CreateSpec {
                name: name.clone(),
                owner: "root".into(),
                description: meta.tenant.description.clone(),
            };
            let builder = |tmp: &Path, _: &CreateSpec| -> Result<Built> {
                let (verified, copied) = std::thread::scope(|s| {
                    let v = s.spawn(|| verified_as(archive, &meta));
                    let copied = copy_content(archive, tmp, None, true);
                    (joined(v.join(), "verifying the archive"), copied)
                });
                verified?;
                copied?;
                Ok(built.clone())
            };
            let mut store = reg;
            let created = tenant::create_one(&mut store, &ws.layout, &spec, &builder)?;
            Ok(Restored {
                archive: archive.to_path_buf(),
                mode: RestoreMode::Created,
                path: Some(
                    created
                        .path
                        .unwrap_or_else(|| ws.layout.data_dir.join(&created.tenant.database)),
                ),
                tenant: created.tenant,
                previous_saved_to: None,
                pages: None,
                schema_version: standing.version,
                needs_migration,
                fixtures: meta.deployed_fixtures(),
            })
        }
        Some(current) => replace_existing(&ws.layout, &mut reg, archive, &meta, current, &standing),
    }
}

/// The full verification of an archive whose metadata `meta` was read before: the same file
/// must still carry the same content.
pub(super) fn verified_as(archive: &Path, meta: &Metadata) -> Result<Verified> {
    let v = verify_file(archive)?;
    if v.checksum != meta.checksum || v.tenant_id != meta.tenant.id {
        return Err(Error::Conflict(format!(
            "{} changed while it was being restored; nothing was changed, run the restore again",
            archive.display()
        )));
    }
    Ok(v)
}

/// An archive whose schema is older than the tenant it would replace would roll the tenant's
/// schema back behind the deployment's: refused (exit 4) unless `--migrate` brings the restored
/// content up again.
pub(super) fn refuse_rollback(
    layout: &crate::core::layout::Layout,
    current: &TenantRow,
    archived: &SchemaStanding,
    migrate: bool,
) -> Result<()> {
    if migrate {
        return Ok(());
    }
    let live = layout.tenant_path(&current.database, &current.schema)?;
    let live_version = db::read_quietly(&live, |conn, path| schema::tenant_version(conn).at(path))?;
    if archived.version < live_version {
        return Err(Error::Conflict(format!(
            "the archive holds tenant '{}' at schema version {}, older than the tenant here (version {live_version}): restoring it would roll the tenant's schema back; pass --migrate to bring the restored content up to the deployment's migrations, or --as NEW_NAME to restore it beside",
            current.name, archived.version
        )));
    }
    Ok(())
}

/// Whether the archive may go to tenant `name`: the existing row when it replaces one (with
/// `force`), `None` when it creates one. Refuses another tenant's archive without `--as`.
pub(super) fn check_target(
    reg: &mut crate::core::Store,
    name: &str,
    archived_name: &str,
    renamed: bool,
    force: bool,
    meta: &Metadata,
    ws: &Workspace,
) -> Result<Option<TenantRow>> {
    match reg.find(name)? {
        None => {
            if !renamed {
                if let Some(other) = reg.name_of_id(&meta.tenant.id)? {
                    return Err(Error::OtherTenant(format!(
                        "the archive's tenant id {} belongs to tenant '{other}' here, not to a tenant named '{name}'; restore it as a new tenant with --as NEW_NAME",
                        meta.tenant.id
                    )));
                }
            }
            Ok(None)
        }
        Some(current) => {
            if !renamed && current.id != meta.tenant.id {
                return Err(Error::OtherTenant(format!(
                    "the archive holds tenant '{archived_name}' with id {}, but the tenant '{name}' here has id {}: it is another tenant; pass --as {name} --force to replace it anyway, or --as NEW_NAME to restore beside it",
                    meta.tenant.id, current.id
                )));
            }
            if !force {
                return Err(Error::Conflict(format!(
                    "tenant '{name}' exists; pass --force to replace its content with the archive (its current content is saved to {} first), or --as NEW_NAME to restore beside it",
                    ws.layout.trash_dir().display()
                )));
            }
            if current.is_deleted() {
                return Err(Error::Conflict(format!(
                    "tenant '{name}' is deleted; a deleted tenant is not restored over: restore the archive as a new tenant with --as NEW_NAME"
                )));
            }
            Ok(Some(current))
        }
    }
}

/// Copies an archive's tenant content into a new private file at `dst` (no metadata table),
/// with `page_size` when given; in WAL mode (as the API expects) and synced when `final_file`
/// (a staging copy that only feeds a replacement is neither). An archive is a self-contained
/// file that nothing writes (no WAL, no journal: the same bytes `db::open_immutable` reads), so its
/// bytes are copied as they are, by the kernel, and the copy, private to this process, is then
/// changed through SQLite.
pub(super) fn copy_content(
    archive: &Path,
    dst: &Path,
    page_size: Option<i64>,
    final_file: bool,
) -> Result<()> {
    let flush = if final_file {
        vec![dst.to_path_buf()]
    } else {
        Vec::new()
    };
    fsutil::while_flushing(&flush, || copy_file_bytes(archive, dst))?;
    let conn = db::open_scratch(dst)?;
    conn.execute_batch(&format!(
        "DROP TABLE {META_TABLE}; DROP TABLE IF EXISTS {};",
        crossing::EXACT_TABLE
    ))
    .at(dst)?;
    if let Some(ps) = page_size {
        let cur: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .at(dst)?;
        if cur != ps {
            conn.execute_batch(&format!("PRAGMA page_size={ps}; VACUUM;"))
                .at(dst)?;
        }
    }
    if final_file {
        db::finish_build(conn, dst)?;
        fsutil::sync_file(dst)?;
    } else {
        conn.close().map_err(|(_, e)| e).at(dst)?;
    }
    Ok(())
}

pub(super) fn replace_existing(
    layout: &crate::core::layout::Layout,
    reg: &mut crate::core::Store,
    archive: &Path,
    meta: &Metadata,
    current: TenantRow,
    standing: &SchemaStanding,
) -> Result<Restored> {
    let live = layout.tenant_path(&current.database, &current.schema)?;
    // 1. Where what is there now is saved, as an archive, so that nothing is lost.
    let trash = layout.trash_dir();
    fsutil::create_private_dir(&trash)?;
    let saved = super::before_restore_path(&trash, &current.schema, &current.id);
    names::path_component("tenants.schema", &current.schema)?;
    names::path_component("tenants.id", &current.id)?;
    let fixtures = reg.fixtures_of(&current.id)?;

    // 2. The live database's write lock, taken first and held until the new content commits:
    //    the copy saved to the trash is then exactly the content replaced, with no commit of
    //    the API in between (its writes wait meanwhile, as behind any writer). Nothing changes
    //    before the archive's verification has passed.
    let live_conn = db::open(&live, db::Mode::ReadWrite)?;
    let page_size: i64 = live_conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .at(&live)?;
    let replacement = db::Replacement::begin(live_conn, &live, LIVE_WRITE_WAIT)?;
    let wal = [fsutil::with_suffix(&live, "-wal")];
    // The new content, without the metadata table and in the live file's page size, staged as
    // a private file beside the live one.
    let staging = fsutil::TempFile(Some(fsutil::temp_beside(&live)));
    let stage = || copy_content(archive, staging.path(), Some(page_size), false);
    // Until the new content commits, the live tenant is as it was and its saved copy not needed.
    let unsave = |e: Error| {
        let _ = fs::remove_file(&saved);
        let _ = fsutil::sync_dir(&trash);
        e
    };
    let replaced = match replacement {
        db::Replacement::Pages(mut writer) => {
            // 3. The save starts under the lock and runs beside everything else: the
            //    verification and the staging, then the writing of the pages that differ into
            //    the open transaction, which commits once the save is on disk.
            let save = Extraction::begin(&live, &saved, false, Fix::UnderLock)?;
            let (saved_r, written_r) = std::thread::scope(|s| {
                let save = s.spawn(|| save.finish(&current, &fixtures));
                let verify = s.spawn(|| verified_as(archive, meta));
                let staged = stage();
                let written = joined(verify.join(), "verifying the archive")
                    .and(staged)
                    .and_then(|()| db::open_immutable(staging.path()))
                    .and_then(|src| fsutil::while_flushing(&wal, || writer.write(&src)));
                (joined(save.join(), "saving the current database"), written)
            });
            // Dropped on an error, the writer rolls back: the live tenant is as it was. A
            // problem with the archive is the one to report when the save failed as well.
            match (saved_r, written_r) {
                (Ok(_), Ok(_)) => {}
                (Ok(_), Err(e)) => return Err(unsave(e)),
                (Err(_), Err(e)) | (Err(e), Ok(_)) => return Err(e),
            }
            fsutil::while_flushing(&wal, || writer.commit()).map_err(unsave)?
        }
        db::Replacement::Whole(conn) => {
            // 3'. Every page is copied with the backup API, which takes the lock itself: the
            //     archive is verified and staged first, and the save runs under that lock
            //     before any page is copied.
            let verified = std::thread::scope(|s| {
                let verify = s.spawn(|| verified_as(archive, meta));
                let staged = stage();
                joined(verify.join(), "verifying the archive").and(staged)
            });
            verified?;
            let src = db::open_immutable(staging.path())?;
            fsutil::while_flushing(&wal, || {
                db::replace_whole(&src, conn, &live, LIVE_WRITE_WAIT, || {
                    Extraction::begin(&live, &saved, false, Fix::UnderLock)?
                        .finish(&current, &fixtures)
                        .map(|_| ())
                })
            })
            .map_err(unsave)?
        }
    };
    // Best effort: fold the new pages into the file now so the WAL does not stay large; not
    // waiting for a reader of an older state (an API request), which leaves what it still
    // needs for the API's own checkpoints. The flushing thread's descriptor of the file is
    // closed only once this process has no connection to it left (see `db::read_main_file`).
    fsutil::while_flushing(std::slice::from_ref(&live), || {
        if let Ok(conn) = db::open(&live, db::Mode::ReadWrite) {
            let _ = conn.busy_timeout(Duration::ZERO);
            if !db::checkpoint_truncate(&conn).is_ok_and(|c| !c.busy) {
                db::checkpoint_before_close(&conn);
            }
            let _ = conn.close();
        }
    });
    drop(staging);

    // 4. The registry row keeps its id, name and state; what it says about the content follows
    //    the archive.
    let mut t = current;
    t.owner_id = meta.tenant.owner_id.clone();
    t.template_version = meta.tenant.template_version;
    t.source_template = meta.tenant.source_template.clone();
    t.updated_at = ids::now_iso();
    reg.write(|w| {
        w.update_content_info(&t)?;
        w.clear_fixtures(&t.id)?;
        for f in &meta.fixtures {
            w.record_fixture(&t.id, &f.fixture_name, &f.deployed_at)?;
            if let Some(v) = &f.version {
                w.set_fixture_version(&t.id, &f.fixture_name, v)?;
            }
        }
        Ok(())
    })?;
    let tenant = reg.get(&t.name)?;
    Ok(Restored {
        archive: archive.to_path_buf(),
        mode: RestoreMode::Replaced,
        tenant,
        path: Some(live),
        previous_saved_to: Some(saved),
        pages: Some(replaced),
        schema_version: standing.version,
        needs_migration: standing.needs_migration,
        fixtures: meta.deployed_fixtures(),
    })
}
