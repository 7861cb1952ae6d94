//! Trash, untrash, suspend, activate; delete (to the trash) and undelete.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    Trash,
    Untrash,
    Suspend,
    Activate,
}

#[derive(Debug, Clone, Serialize)]
pub struct StateResult {
    #[serde(flatten)]
    pub tenant: TenantRow,
    /// False when the tenant was already in the requested state.
    pub changed: bool,
}

/// Trash, untrash, suspend or activate a tenant. Idempotent: asking for the state a tenant is in
/// changes nothing. A deleted tenant cannot change state.
pub fn change_state(ws: &Workspace, name: &str, change: StateChange) -> Result<StateResult> {
    names::tenant(name)?;
    let mut reg = ws.store_existing_for_write()?;
    reg.write(|w| {
        let mut t = w.get(name)?;
        if t.is_deleted() {
            return Err(Error::Conflict(format!(
                "tenant '{name}' is deleted; a deleted tenant cannot be changed: bring it back first with `monkctl tenant undelete {name}` (while its trash copy exists), or restore it from an archive"
            )));
        }
        let before = t.clone();
        let now = ids::now_iso();
        match change {
            StateChange::Trash if t.trashed_at.is_none() => t.trashed_at = Some(now.clone()),
            StateChange::Untrash => t.trashed_at = None,
            StateChange::Suspend => t.status = "suspended".into(),
            StateChange::Activate => {
                t.status = "active".into();
                t.is_active = true;
            }
            StateChange::Trash => {}
        }
        let changed = t != before;
        if changed {
            t.updated_at = now;
            w.update_state(&t)?;
        }
        Ok(StateResult { tenant: t, changed })
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct MovedFile {
    pub from: PathBuf,
    pub to: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deleted {
    #[serde(flatten)]
    pub tenant: TenantRow,
    /// Where the database file (and its WAL) went.
    pub moved: Vec<MovedFile>,
}

/// Deletes a tenant as the API does (`deleted_at`, `status='deleted'`, `is_active=0`, committed
/// first so a running API refuses it at once), then moves its file and WAL to `<data>/trash/`.
/// Run again on a deleted tenant whose file is still in place, it finishes the move.
pub fn delete(ws: &Workspace, name: &str) -> Result<Deleted> {
    names::tenant(name)?;
    let mut reg = ws.store_existing_for_write()?;
    // The file moves only after this commit; it must survive a power loss first.
    reg.durable()?;
    let layout = &ws.layout;
    // On PostgreSQL the schema stays where it is, as the API leaves it; only `purge` removes it.
    let files = matches!(reg, Store::Sqlite(_));
    let tenant = reg.write(|w| {
        let mut t = w.get(name)?;
        if !files {
            if t.is_deleted() {
                return Err(Error::Conflict(format!(
                    "tenant '{name}' is already deleted"
                )));
            }
        } else {
            let live = layout.tenant_path(&t.database, &t.schema)?;
            if t.is_deleted() {
                if !live.exists() {
                    return Err(Error::Conflict(format!(
                        "tenant '{name}' is already deleted and its file is in {}",
                        layout.trash_dir().display()
                    )));
                }
                return Ok(t);
            }
            room_in_trash(name, &live, &layout.trash_path(&t.schema, &t.id)?)?;
        }
        let now = ids::now_iso();
        t.status = "deleted".into();
        t.is_active = false;
        t.deleted_at = Some(now.clone());
        t.updated_at = now;
        w.update_state(&t)?;
        Ok(t)
    })?;
    crate::core::pause_point("tenant.deleted");
    if !files {
        return Ok(Deleted {
            tenant,
            moved: Vec::new(),
        });
    }
    let live = layout.tenant_path(&tenant.database, &tenant.schema)?;
    let trash = layout.trash_path(&tenant.schema, &tenant.id)?;
    let moved = move_to_trash(&live, &trash).map_err(|e| match e {
        // Space ran out between the check and the copy: the registry says deleted already.
        Error::DiskFull { path, detail } => Error::DiskFull {
            path,
            detail: format!(
                "{detail} while copying tenant '{name}' to the trash; it was marked deleted first and keeps its file until `monkctl tenant delete {name}` runs again"
            ),
        },
        other => other,
    })?;
    Ok(Deleted { tenant, moved })
}

/// What `tenant undelete` did.
#[derive(Debug, Clone, Serialize)]
pub struct Undeleted {
    #[serde(flatten)]
    pub tenant: TenantRow,
    /// The live file, put back from the trash copy; `null` on PostgreSQL (the schema never moved).
    pub path: Option<PathBuf>,
    /// The trash copy it came from (removed once the tenant was back); `null` on PostgreSQL.
    pub from: Option<PathBuf>,
    /// Files found at the live place (an interrupted earlier attempt), moved to the orphans.
    pub moved_aside: Vec<PathBuf>,
}

/// Brings back a deleted tenant whose trash copy is still there (not purged): the copy is put
/// back at the tenant's place as a new file (copied beside it, synced, linked, never over
/// another file) and its row made active again (`deleted_at` cleared, `status='active'`), both
/// in one registry transaction, as `create` places a tenant. The trash copy is removed after the
/// commit. A crash leaves the tenant deleted with its copy in the trash (run it again), or
/// undeleted with a stale trash copy that `doctor --repair` moves to the orphans.
pub fn undelete(ws: &Workspace, name: &str) -> Result<Undeleted> {
    names::tenant(name)?;
    if let Backend::Postgres(_) = ws.backend {
        return undelete_schema(ws, name);
    }
    let layout = &ws.layout;
    let mut reg = ws.registry_existing_for_write()?;
    let t = reg.get(name)?;
    if !t.is_deleted() {
        return Err(Error::Conflict(format!(
            "tenant '{name}' is not deleted; only a deleted tenant is undeleted"
        )));
    }
    let trash = layout.trash_path(&t.schema, &t.id)?;
    if !trash.exists() {
        return Err(Error::FileNotFound {
            what: "trash copy",
            path: trash,
            hint: format!(
                "tenant '{name}' was purged; restore it from an archive with `monkctl restore ARCHIVE --as NEW_NAME`"
            ),
        });
    }
    let live = layout.tenant_path(&t.database, &t.schema)?;
    if let Some(dir) = live.parent() {
        fsutil::create_private_dir(dir)?;
    }
    let tmp = fsutil::temp_beside(&live);
    let guard = fsutil::TempFile(Some(tmp.clone()));
    {
        let mut from = fs::File::open(&trash).at(&trash)?;
        let mut to = fsutil::create_private_file(&tmp)?;
        std::io::copy(&mut from, &mut to).at(&tmp)?;
    }
    fsutil::sync_file(&tmp)?;
    let mut moved_aside = Vec::new();
    let mut placed = false;
    let result = reg.write(|w| {
        let mut row = w.get(name)?;
        if !row.is_deleted() || row.id != t.id {
            return Err(Error::Conflict(format!(
                "tenant '{name}' changed while it was being undeleted; run it again"
            )));
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let p = fsutil::with_suffix(&live, suffix);
            if p.exists() {
                moved_aside.push(fsutil::move_into(&p, &layout.orphans_dir())?);
            }
        }
        fsutil::place_new(&tmp, &live)?;
        placed = true;
        crate::core::pause_point("tenant.undelete.placed");
        row.deleted_at = None;
        row.status = "active".into();
        row.is_active = true;
        row.updated_at = ids::now_iso();
        w.update_state(&row)
    });
    drop(guard);
    if let Err(e) = result {
        if placed {
            let _ = fs::remove_file(&live);
        }
        return Err(e);
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = fsutil::with_suffix(&trash, suffix);
        if p.exists() {
            fs::remove_file(&p).at(&p)?;
        }
    }
    fsutil::sync_dir(&layout.trash_dir())?;
    Ok(Undeleted {
        tenant: reg.get(name)?,
        path: Some(live),
        from: Some(trash),
        moved_aside,
    })
}

/// `undelete` on PostgreSQL: the schema never moved, so the row alone is made active again, as
/// long as the schema is there (not purged).
pub(super) fn undelete_schema(ws: &Workspace, name: &str) -> Result<Undeleted> {
    let mut store = ws.store_existing_for_write()?;
    let Store::Postgres(reg) = &mut store else {
        unreachable!("called for PostgreSQL deployments only")
    };
    let t = reg
        .find(name)?
        .ok_or_else(|| Error::TenantNotFound(name.to_string()))?;
    if !t.is_deleted() {
        return Err(Error::Conflict(format!(
            "tenant '{name}' is not deleted; only a deleted tenant is undeleted"
        )));
    }
    // A SQLite tenant of the registry keeps its file where it was (delete leaves it, as the
    // API's delete does): it comes back when the file is there.
    if t.db_type == "sqlite" {
        let file = ws.sqlite_file_of(&t)?;
        if !file.exists() {
            return Err(Error::Conflict(format!(
                "tenant '{name}' cannot be undeleted: its file {} is gone; restore it from an archive",
                file.display()
            )));
        }
    } else if !reg.schema_exists(&t.schema)? {
        return Err(Error::Conflict(format!(
            "tenant '{name}' was purged: its schema {} is gone; restore it from its archive in {}",
            t.schema,
            ws.layout.trash_dir().display()
        )));
    }
    let tenant = store.write(|w| {
        let mut row = w.get(name)?;
        if !row.is_deleted() || row.id != t.id {
            return Err(Error::Conflict(format!(
                "tenant '{name}' changed while it was being undeleted; run it again"
            )));
        }
        row.deleted_at = None;
        row.status = "active".into();
        row.is_active = true;
        row.updated_at = ids::now_iso();
        w.update_state(&row)?;
        Ok(row)
    })?;
    Ok(Undeleted {
        tenant,
        path: None,
        from: None,
        moved_aside: Vec::new(),
    })
}

/// Room the copy of a tenant into the trash needs besides its content: SQLite's `-shm` and
/// `-wal` set up when the live file is opened, and the copy's last pages.
pub(super) const TRASH_MARGIN: u64 = 256 * 1024;

/// Refuses to delete a tenant whose file cannot be copied into the trash for lack of space,
/// before the registry is changed: the copy comes after the deletion is committed, and a full
/// disk there would leave a deleted tenant with its file in place.
pub(super) fn room_in_trash(name: &str, live: &Path, trash: &Path) -> Result<()> {
    let Some(size) = fsutil::size_of(live) else {
        return Ok(());
    };
    let need =
        size + fsutil::size_of(&fsutil::with_suffix(live, "-wal")).unwrap_or(0) + TRASH_MARGIN;
    match fsutil::available_bytes(trash) {
        Some(left) if left < need => Err(Error::DiskFull {
            path: trash.to_path_buf(),
            detail: format!(
                "copying tenant '{name}' to the trash needs about {need} bytes and {left} are left"
            ),
        }),
        _ => Ok(()),
    }
}

/// Moves a live tenant database into the trash without ever renaming or unlinking a file that a
/// connection could still write through: with the tenant's write lock held (so no commit can
/// land in between), its content is copied through SQLite's backup API into a private file in
/// the trash, synced and renamed into place; only then are the live file and its `-wal`/`-shm`
/// removed. A crash leaves either the live tenant (and maybe a temporary file) or a complete
/// trash copy; running `delete` again, or `doctor --repair`, finishes the job.
pub(super) fn move_to_trash(live: &Path, trash: &Path) -> Result<Vec<MovedFile>> {
    if !live.exists() {
        return Ok(Vec::new());
    }
    let conn = db::open(live, db::Mode::ReadWrite)?;
    // The file is about to disappear: closing must not checkpoint into it.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .at(live)?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| match Error::sqlite(live, e) {
        Error::Busy { what, .. } => Error::Busy {
            what,
            detail: "a connection is writing to it; the tenant is deleted in the registry, run `monkctl tenant delete` again to move its file to the trash".into(),
        },
        other => other,
    })?;
    if let Some(dir) = trash.parent() {
        fsutil::create_private_dir(dir)?;
    }
    let tmp = fsutil::temp_beside(trash);
    let guard = fsutil::TempFile(Some(tmp.clone()));
    // SQLite copies from a connection that is not itself writing: a second one reads what the
    // first one's lock keeps still.
    let source = db::open(live, db::Mode::ReadWrite)?;
    let mut copy = db::open_build(&tmp)?;
    db::backup_all(&source, &mut copy, &tmp, Duration::from_secs(5))?;
    drop(source);
    db::finish_build(copy, &tmp)?;
    // The live file is the truth: a trash copy left by an interrupted earlier run is replaced.
    fs::rename(&tmp, trash).at(trash)?;
    drop(guard);
    if let Some(dir) = trash.parent() {
        fsutil::sync_dir(dir)?;
    }
    crate::core::pause_point("tenant.delete.copied");
    let moved = vec![MovedFile {
        from: live.to_path_buf(),
        to: trash.to_path_buf(),
    }];
    // The WAL's committed content is in the trash copy; the shared-memory index is derived.
    fs::remove_file(live).at(live)?;
    for suffix in ["-wal", "-shm"] {
        let side = fsutil::with_suffix(live, suffix);
        if side.exists() {
            fs::remove_file(&side).at(&side)?;
        }
    }
    if let Some(dir) = live.parent() {
        fsutil::sync_dir(dir)?;
    }
    drop(conn);
    Ok(moved)
}
