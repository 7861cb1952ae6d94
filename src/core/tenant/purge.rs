//! `tenant purge`: deleted tenants past a retention, their trash files removed (on PostgreSQL,
//! their schemas archived, then dropped).

use super::*;

#[derive(Debug, Clone, Serialize)]
pub struct Purged {
    pub name: String,
    pub id: String,
    #[serde(serialize_with = "crate::core::ids::serialize_opt_iso")]
    pub deleted_at: Option<String>,
    /// SQLite: the trash files removed. PostgreSQL: the archive the schema was written to
    /// before it was dropped (`pg_restore` brings it back).
    pub files: Vec<PathBuf>,
    /// The schema dropped (PostgreSQL); `null` on SQLite.
    pub schema: Option<String>,
    #[serde(rename = "size_bytes")]
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PurgeReport {
    pub older_than_seconds: u64,
    pub dry_run: bool,
    pub purged: Vec<Purged>,
    /// Deleted tenants still inside the retention whose trash copy is still there (those purged
    /// before are not counted).
    pub kept: usize,
}

/// Deleted tenants whose `deleted_at` is older than `older_than`, with their trash files (on
/// PostgreSQL: with the archive their schema is written to before it is dropped).
pub fn purge_candidates(ws: &Workspace, older_than: Duration) -> Result<(Vec<Purged>, usize)> {
    let mut store = ws.store()?;
    let cutoff =
        ids::unix_now().saturating_sub(i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX));
    let (mut due, mut kept) = (Vec::new(), 0);
    let sizes = match &mut store {
        Store::Postgres(reg) => Some((reg.tenant_schemas()?, reg.schema_sizes()?)),
        Store::Sqlite(_) => None,
    };
    for t in store.all()?.into_iter().filter(TenantRow::is_deleted) {
        let (files, bytes) = match &sizes {
            // A SQLite tenant of the registry (with `--sqlite-data-dir`): its file, written to
            // an archive in the trash before it is removed.
            Some(_) if t.db_type == "sqlite" => {
                let Some(layout) = &ws.sqlite_files else {
                    continue;
                };
                let live = layout.tenant_path(&t.database, &t.schema)?;
                if !live.exists() {
                    continue;
                }
                let bytes = ["", "-wal"]
                    .iter()
                    .filter_map(|s| fsutil::size_of(&fsutil::with_suffix(&live, s)))
                    .sum();
                (vec![sqlite_trash_archive(&ws.layout, &t)?], bytes)
            }
            Some((schemas, sizes)) => {
                if t.db_type != "postgresql" || !schemas.contains(&t.schema) {
                    continue;
                }
                let archive = pg_trash_archive(&ws.layout, &t)?;
                (vec![archive], sizes.get(&t.schema).copied().unwrap_or(0))
            }
            None => {
                let trash = ws.layout.trash_path(&t.schema, &t.id)?;
                let files: Vec<PathBuf> = ["", "-wal", "-shm"]
                    .iter()
                    .map(|s| fsutil::with_suffix(&trash, s))
                    .filter(|p| p.exists())
                    .collect();
                let bytes = files.iter().filter_map(|p| fsutil::size_of(p)).sum();
                (files, bytes)
            }
        };
        if files.is_empty() {
            // Purged before: neither due nor kept.
            continue;
        }
        let when = t.deleted_at.as_deref().and_then(ids::parse_timestamp);
        // A deleted row without a readable time is kept: purging is the one irreversible step.
        if when.is_none_or(|w| w > cutoff) {
            kept += 1;
            continue;
        }
        due.push(Purged {
            bytes,
            name: t.name,
            id: t.id,
            deleted_at: t.deleted_at,
            schema: (sizes.is_some() && t.db_type != "sqlite").then_some(t.schema),
            files,
        });
    }
    Ok((due, kept))
}

/// Where `purge` writes a PostgreSQL registry's SQLite tenant before removing its file:
/// `<data>/trash/<schema>-<id>.monk.db` (an archive: `restore` brings it back).
pub(super) fn sqlite_trash_archive(layout: &Layout, t: &TenantRow) -> Result<PathBuf> {
    names::path_component("tenants.schema", &t.schema)?;
    names::path_component("tenants.id", &t.id)?;
    Ok(layout.trash_dir().join(format!(
        "{}-{}{}",
        t.schema,
        t.id,
        crate::core::archive::SUFFIX
    )))
}

/// Where `purge` writes a PostgreSQL tenant's schema before dropping it:
/// `<data>/trash/<schema>-<id>.pgdump` (restore it with `pg_restore`).
pub(super) fn pg_trash_archive(layout: &Layout, t: &TenantRow) -> Result<PathBuf> {
    names::path_component("tenants.schema", &t.schema)?;
    names::path_component("tenants.id", &t.id)?;
    Ok(layout
        .trash_dir()
        .join(format!("{}-{}.pgdump", t.schema, t.id)))
}

/// Removes the trash files of deleted tenants past the retention. The registry rows stay, as
/// the API keeps deleted names reserved.
pub fn purge(ws: &Workspace, older_than: Duration, dry_run: bool) -> Result<PurgeReport> {
    let (due, kept) = purge_candidates(ws, older_than)?;
    purge_these(ws, older_than, dry_run, due, kept)
}

/// Removes exactly the files of `due` (as listed by `purge_candidates` and confirmed), and no
/// other: a prompt left open past the cutoff cannot widen what is removed.
pub fn purge_these(
    ws: &Workspace,
    older_than: Duration,
    dry_run: bool,
    due: Vec<Purged>,
    kept: usize,
) -> Result<PurgeReport> {
    if let (false, Backend::Postgres(target)) = (dry_run, &ws.backend) {
        let mut store = ws.store()?;
        let Store::Postgres(reg) = &mut store else {
            unreachable!("a PostgreSQL deployment has a PostgreSQL registry")
        };
        for p in &due {
            let Some(archive) = p.files.first() else {
                continue;
            };
            let Some(schema) = &p.schema else {
                // A SQLite tenant of the registry: its file, archived first, then removed.
                let Some(t) = reg.find(&p.name)?.filter(|t| t.id == p.id) else {
                    continue;
                };
                let live = ws.sqlite_file_of(&t)?;
                let fixtures = reg.fixtures_of(&t.id)?;
                fsutil::create_private_dir(&ws.layout.trash_dir())?;
                crate::core::archive::extract_file(&live, &t, &fixtures, archive, false)?;
                crate::core::pause_point("tenant.purge.archived");
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let f = fsutil::with_suffix(&live, suffix);
                    match fs::remove_file(&f) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io(&f, e)),
                    }
                }
                if let Some(dir) = live.parent() {
                    fsutil::sync_dir(dir).ok();
                }
                continue;
            };
            // The archive is complete and durable before anything is dropped.
            crate::core::backend::postgres::dump_schema(target, schema, archive)?;
            crate::core::pause_point("tenant.purge.archived");
            reg.drop_schema(schema)?;
        }
    } else if !dry_run {
        for p in &due {
            for f in &p.files {
                match fs::remove_file(f) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(f, e)),
                }
            }
        }
        fsutil::sync_dir(&ws.layout.trash_dir()).ok();
    }
    Ok(PurgeReport {
        older_than_seconds: older_than.as_secs(),
        dry_run,
        purged: due,
        kept,
    })
}
