//! `extract`: a live SQLite tenant to an archive file (see the module header of `archive`).

use super::*;

/// One archive written.
#[derive(Debug, Clone, Serialize)]
pub struct Extracted {
    pub tenant: String,
    pub path: PathBuf,
    pub size_bytes: u64,
    pub schema_version: i64,
    pub checksum: String,
    #[serde(rename = "table_count")]
    pub tables: usize,
    #[serde(rename = "row_count")]
    pub rows: i64,
}

/// Where `extract` writes: a file, or a directory that receives default names.
#[derive(Debug, Clone)]
pub enum Output {
    /// `<cwd>/<tenant>-<stamp>.monk.db`.
    Default,
    /// `<dir>/<tenant>-<stamp>.monk.db`; the directory is made (owner-only) when missing.
    Dir(PathBuf),
    File(PathBuf),
}

/// The default archive name of a tenant: `<tenant>-<UTC stamp>.monk.db`.
pub fn default_name(tenant: &str, at: SystemTime) -> String {
    format!("{tenant}-{}{SUFFIX}", ids::file_stamp(at))
}

/// Extracts tenants, one archive each; a failure of one does not stop the others.
pub fn extract_many(
    ws: &Workspace,
    names_: &[String],
    out: &Output,
    force: bool,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<Batch<Extracted>> {
    if names_.is_empty() {
        return Err(Error::Usage(
            "no tenant to extract: give TENANT... or --all -o DIR".into(),
        ));
    }
    for n in names_ {
        names::tenant(n)?;
    }
    if names_.len() > 1 && matches!(out, Output::File(_)) {
        return Err(Error::Usage(
            "-o names one file, but several tenants are extracted: give a directory".into(),
        ));
    }
    // Rows are read first, in one short read of the registry; the copies then run in parallel.
    let mut reg = ws.store()?;
    let mut lookups: Vec<Option<Error>> = Vec::new();
    let mut items: Vec<(String, Option<RowAndFixtures>)> = Vec::new();
    for n in names_ {
        let row = reg
            .get(n)
            .and_then(|t| reg.fixtures_of(&t.id).map(|f| (t, f)));
        match row {
            Ok(r) => {
                items.push((n.clone(), Some(r)));
                lookups.push(None);
            }
            Err(e) => {
                items.push((n.clone(), None));
                lookups.push(Some(e));
            }
        }
    }
    drop(reg);
    // A directory named for the archives is made when missing, once a tenant is there to go in.
    if let Output::Dir(d) = out {
        if items.iter().any(|(_, r)| r.is_some()) {
            fsutil::create_private_dir(d)?;
        }
    }
    // What killed extracts left in the output directory goes before the new ones
    // are made (nothing else looks there).
    let out_dir = match out {
        Output::Default => PathBuf::from("."),
        Output::Dir(d) => d.clone(),
        Output::File(f) => match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
    };
    fsutil::remove_dead_temps(&out_dir);
    let stamp = SystemTime::now();
    progress.start(items.len() as u64, "extracting");
    // Ctrl-C: the archives being written finish, no other starts (`None`).
    let results = crate::core::pool::map(&items, jobs, |(name, row)| {
        let r = row.as_ref().map(|(t, f)| {
            let final_path = match out {
                Output::Default => PathBuf::from(default_name(name, stamp)),
                Output::Dir(d) => d.join(default_name(name, stamp)),
                Output::File(f) => f.clone(),
            };
            extract_row(ws, t, f, &final_path, force)
        });
        progress.advance(1, name);
        r
    });
    progress.finish();
    let mut batch = Batch::default();
    for (((name, _), r), lookup) in items.iter().zip(results).zip(lookups) {
        let r = r.unwrap_or(Some(Err(Error::Interrupted)));
        match (r, lookup) {
            (Some(r), _) => batch.push(name, r),
            (None, Some(e)) => batch.push(name, Err(e)),
            (None, None) => unreachable!("a tenant without a row has a lookup error"),
        }
    }
    Ok(batch)
}

pub(super) type RowAndFixtures = (TenantRow, Vec<FixtureRow>);

/// Extracts the tenant of registry row `t` to `final_path`, on either backend.
pub(super) fn extract_row(
    ws: &Workspace,
    t: &TenantRow,
    fixtures: &[FixtureRow],
    final_path: &Path,
    force: bool,
) -> Result<Extracted> {
    match &ws.backend {
        // A SQLite tenant, of a SQLite registry or of a PostgreSQL one (`--sqlite-data-dir`).
        _ if t.db_type == "sqlite" => ws
            .sqlite_file_of(t)
            .and_then(|live| extract_file(&live, t, fixtures, final_path, force)),
        crate::core::Backend::Sqlite => tenant::file_of(&ws.layout, t)
            .and_then(|live| extract_file(&live, t, fixtures, final_path, force)),
        crate::core::Backend::Postgres(target) => ws
            .migration_set()
            .and_then(|set| postgres::extract(target, set, t, fixtures, final_path, force)),
    }
}

/// `extract --all`: every tenant that is not deleted, and a copy of the infra registry, into `dir`.
pub fn extract_all(
    ws: &Workspace,
    dir: &Path,
    force: bool,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<Batch<Extracted>> {
    fsutil::create_private_dir(dir)?;
    let mut reg = ws.store()?;
    let names_: Vec<String> = reg
        .all()?
        .into_iter()
        .filter(|t| !t.is_deleted())
        .map(|t| t.name)
        .collect();
    drop(reg);
    let mut batch = if names_.is_empty() {
        Batch::default()
    } else {
        extract_many(
            ws,
            &names_,
            &Output::Dir(dir.to_path_buf()),
            force,
            jobs,
            progress,
        )?
    };
    // On PostgreSQL each archive carries its tenant's registry row; the registry itself is the
    // server's to back up (`pg_dump -n public`).
    if matches!(ws.backend, crate::core::Backend::Postgres(_)) {
        return Ok(batch);
    }
    // The registry: a plain consistent copy (no archive metadata); '.' cannot occur in a tenant
    // name, so this name never collides with a tenant's archive.
    let infra_name = format!(
        "infra.{}-{}.db",
        ws.layout.database_name,
        ids::file_stamp(SystemTime::now())
    );
    let r = copy_registry(&ws.layout.infra_path, &dir.join(infra_name), force);
    batch.push("(infra registry)", r);
    Ok(batch)
}

pub(super) fn copy_registry(infra: &Path, final_path: &Path, force: bool) -> Result<Extracted> {
    check_free(final_path, force)?;
    let (mut tmp, _held) = fsutil::TempFile::held(final_path)?;
    // Read without a lock the API can trip on; a read that is done again copies anew.
    db::read_quietly(infra, |src, _| {
        let mut dst = db::open_scratch(tmp.path())?;
        db::backup_all(src, &mut dst, tmp.path(), LIVE_WRITE_WAIT)?;
        db::leave_wal(&dst, tmp.path())?;
        dst.close().map_err(|(_, e)| e).at(tmp.path())
    })?;
    fsutil::sync_file(tmp.path())?;
    place(tmp.path(), final_path, force)?;
    tmp.disarm();
    Ok(Extracted {
        tenant: "(infra registry)".into(),
        size_bytes: fsutil::size_of(final_path).unwrap_or(0),
        path: final_path.to_path_buf(),
        schema_version: 0,
        checksum: String::new(),
        tables: 0,
        rows: 0,
    })
}

/// Writes an archive of the database at `live` (a tenant's file, which the API may be writing)
/// to `final_path`.
pub fn extract_file(
    live: &Path,
    t: &TenantRow,
    fixtures: &[FixtureRow],
    final_path: &Path,
    force: bool,
) -> Result<Extracted> {
    // A quiet tenant is read as its file alone, without a lock (`db::QuietFile`); a quiet read
    // that the file changed under (an API checkpoint) is done again, then read as a live one.
    for _ in 0..3 {
        let quiet = Extraction::begin(live, final_path, force, Fix::Quiet)?;
        if let Some(done) = quiet.finish_once(t, fixtures)? {
            return Ok(done);
        }
    }
    Extraction::begin(live, final_path, force, Fix::Reading)?.finish(t, fixtures)
}

/// How an extraction fixes the state it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fix {
    /// The caller holds the live database's write lock, with nothing written under it: the
    /// archive is exactly the content of the last commit.
    UnderLock,
    /// The file alone when it is quiet (`db::QuietFile`), else as `Reading`.
    Quiet,
    /// Read transactions that take no lock a writer needs (`db::begin_read_snapshot`): the
    /// state of the last commit when they began.
    Reading,
}

/// An archive being written: the state it copies is fixed when it begins (two read
/// transactions on the live database, one for the copy and one for the checksum).
pub(super) struct Extraction {
    live: PathBuf,
    final_path: PathBuf,
    force: bool,
    src: Connection,
    twin: Connection,
    snapshot: db::Snapshot,
    /// Set when the connections read the quiet file alone.
    quiet: Option<db::QuietFile>,
}

impl Extraction {
    /// Checks the output and fixes the state to copy (see `Fix`).
    pub(super) fn begin(live: &Path, final_path: &Path, force: bool, fix: Fix) -> Result<Self> {
        let final_path = output_path(final_path, force)?;
        // The checksum is computed from the live tenant by a second connection that reads the
        // very state the copy reads, on another core while the copy runs.
        let (quiet, readers) = match fix {
            Fix::UnderLock => (
                None,
                vec![
                    db::open_for_inspection(live)?,
                    db::open_for_inspection(live)?,
                ],
            ),
            Fix::Quiet => db::open_readers(live, 2, true)?,
            Fix::Reading => db::open_readers(live, 2, false)?,
        };
        let [src, twin]: [Connection; 2] = readers
            .try_into()
            .map_err(|_| Error::Other("two readers were asked for".into()))?;
        let snapshot = if quiet.is_some() {
            db::Snapshot::SharedFileOnly
        } else if fix == Fix::UnderLock {
            db::begin_readers_under_lock(live, &[&src, &twin])?
        } else {
            db::begin_read_snapshot(live, &[&src, &twin])?
        };
        Ok(Extraction {
            live: live.to_path_buf(),
            final_path,
            force,
            src,
            twin,
            snapshot,
            quiet,
        })
    }

    /// Copies the state, writes the metadata, syncs and puts the archive in place.
    pub(super) fn finish(self, t: &TenantRow, fixtures: &[FixtureRow]) -> Result<Extracted> {
        let live = self.live.clone();
        self.finish_once(t, fixtures)?.ok_or_else(|| {
            Error::Other(format!(
                "{}: the file changed while it was read; nothing was written",
                live.display()
            ))
        })
    }

    /// As `finish`; `None`, with nothing written, when the quiet file changed under the copy.
    fn finish_once(self, t: &TenantRow, fixtures: &[FixtureRow]) -> Result<Option<Extracted>> {
        let Extraction {
            live,
            final_path,
            force,
            src,
            twin,
            snapshot,
            quiet,
        } = self;
        let (live, final_path) = (live.as_path(), final_path.as_path());
        let (mut tmp, _held) = fsutil::TempFile::held(final_path)?;
        let tmp_path = tmp.path().to_path_buf();
        // Errors name the archive being made, not its temporary file (gone by then).
        let shown = final_path.display().to_string();
        let done = (|| -> Result<_> {
            enum Copy {
                FileBytes(u64),
                Pages(Connection),
            }
            let mut copy = match snapshot {
                db::Snapshot::SharedFileOnly => Copy::FileBytes(
                    src.query_row(
                        "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                    .at(live)? as u64,
                ),
                _ => Copy::Pages(db::open_scratch(&tmp_path)?),
            };
            let shared = snapshot != db::Snapshot::NotShared;
            let (copied, twin_content) = std::thread::scope(|s| {
                let sum = shared.then(|| s.spawn(move || content_of(&twin, live)));
                let copied =
                    fsutil::while_flushing(std::slice::from_ref(&tmp_path), || match &mut copy {
                        Copy::FileBytes(len) => copy_main_file(&src, live, &tmp_path, *len),
                        Copy::Pages(dst) => db::backup_all(&src, dst, &tmp_path, LIVE_WRITE_WAIT),
                    });
                let sum = sum.map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Other("computing the checksum failed".into()))
                    })
                });
                (copied, sum)
            });
            // The connections are closed after this look (closing drops the file's lock).
            if quiet.as_ref().is_some_and(|q| !q.unchanged()) {
                return Ok(None);
            }
            drop(src);
            copied?;
            crate::core::pause_point("extract.copied");
            let mut dst = match copy {
                Copy::Pages(dst) => dst,
                Copy::FileBytes(_) => db::open_scratch(&tmp_path)?,
            };
            // The copy carries the live file's WAL flag; an archive is one self-contained file.
            db::leave_wal(&dst, &tmp_path)?;
            let content = match twin_content {
                Some(c) => c?,
                // No shared snapshot (the API held its write lock throughout): read the copy back.
                None => fsutil::while_flushing(std::slice::from_ref(&tmp_path), || {
                    content_of(&dst, &tmp_path)
                })?,
            };
            let schema_version = schema::tenant_version(&dst).at(&tmp_path)?;
            let meta = Metadata::made_now(t, fixtures, schema_version, &content);
            write_metadata(&mut dst, &meta, &tmp_path)?;
            dst.close().map_err(|(_, e)| e).at(&tmp_path)?;
            fsutil::sync_file(&tmp_path)?;
            Ok(Some((content, schema_version)))
        })()
        .map_err(|e| e.renamed(&tmp_path, &shown));
        // A quiet read that a checkpoint wrote into may fail as well as succeed (a page read
        // half-written looks malformed): either way the file changed, and it is read again.
        if done.is_err() && quiet.as_ref().is_some_and(|q| !q.unchanged()) {
            return Ok(None);
        }
        let Some((content, schema_version)) = done? else {
            return Ok(None);
        };
        place(&tmp_path, final_path, force)?;
        tmp.disarm();
        Ok(Some(Extracted::placed(
            t,
            final_path,
            schema_version,
            content,
        )))
    }
}

pub(super) fn write_metadata(conn: &mut Connection, m: &Metadata, path: &Path) -> Result<()> {
    let pairs: Vec<(&str, String)> = vec![
        ("format", m.format.clone()),
        ("format_version", m.format_version.to_string()),
        ("tenant", json(&m.tenant)),
        ("fixtures", json(&m.fixtures)),
        ("schema_version", m.schema_version.to_string()),
        ("created_at", m.created_at.clone()),
        ("host", m.host.clone()),
        ("monkctl_version", m.monkctl_version.clone()),
        ("row_counts", json(&m.row_counts)),
        ("checksum", m.checksum.clone()),
    ];
    let mut pairs = pairs;
    if let Some(b) = &m.source_backend {
        pairs.push(("source_backend", b.clone()));
    }
    if let Some(c) = &m.postgres_columns {
        pairs.push(("postgres_columns", json(c)));
    }
    let tx = conn.transaction().at(path)?;
    tx.execute_batch(&format!(
        "CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
    ))
    .at(path)?;
    {
        let mut st = tx
            .prepare(&format!(
                "INSERT INTO {META_TABLE} (key, value) VALUES (?1, ?2)"
            ))
            .at(path)?;
        for (k, v) in pairs {
            st.execute(params![k, v]).at(path)?;
        }
    }
    tx.commit().at(path)
}
