//! The tenant lifecycle: create, list, show, trash/untrash, suspend/activate, delete, purge.
//!
//! Promises: a tenant appears whole or not at all (its file is built privately, synced, then
//! linked into place while the registry's write lock is held, its directory entry synced, and its
//! row committed in that same transaction; several tenants share these steps in batches, see
//! `create_many`); a tenant's file is never destroyed by `delete` (it is moved to the trash);
//! only `purge` removes files, and only deleted tenants' trash past a retention.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::backend::RegistryWriter;
use super::db;
use super::error::{Context, Error, Result};
use super::fixture;
use super::fsutil;
use super::ids;
use super::layout::Layout;
use super::migrate::MigrationSet;
use super::names;
use super::progress::Progress;
use super::registry::{FixtureRow, Registry, TenantRow, Writer};
use super::system;
use super::{Backend, Batch, Store, Workspace};

/// What to create: one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSpec {
    pub name: String,
    pub owner: String,
    pub description: Option<String>,
}

/// What a builder made in a private temporary file, for the registry row.
#[derive(Debug, Clone, Default)]
pub struct Built {
    pub owner_id: String,
    pub source_template: Option<String>,
    pub template_version: Option<i64>,
    /// Fixtures the new database holds, recorded in `tenant_fixtures` with the row.
    pub fixtures: Vec<String>,
    /// The registry id to use (a restore keeps the archived id); a fresh one when `None`.
    pub id: Option<String>,
    /// Versions of the fixtures in `fixtures` (name, version), recorded with them.
    pub fixture_versions: Vec<(String, String)>,
    /// The status to register (a restore keeps `suspended`); `active` when `None`.
    pub status: Option<String>,
    /// The creation time to register (a restore keeps the original); now when `None`.
    pub created_at: Option<String>,
}

/// Builds a complete tenant database at a new private path.
pub type Builder<'a> = dyn Fn(&Path, &CreateSpec) -> Result<Built> + Sync + 'a;

/// What a new tenant is made of.
#[derive(Clone, Copy)]
pub enum Recipe<'a> {
    /// A plain tenant: the `system` fixture and the deployment's later migrations (both backends).
    System(&'a MigrationSet),
    /// A plain tenant, then these fixtures (`tenant create --fixture`), each statement bounded
    /// by `limit`.
    Fixtures {
        set: &'a MigrationSet,
        fixtures: &'a [fixture::Loaded],
        limit: Duration,
    },
    /// A clone of a template, then these fixtures (`tenant create --template`): on SQLite the
    /// template's database, on PostgreSQL its frozen fixtures replayed.
    Template {
        image: &'a super::template::Image,
        fixtures: &'a [fixture::Loaded],
        limit: Duration,
    },
    /// A tenant database built by this builder (a restore); SQLite only.
    Built(&'a Builder<'a>),
}

/// Tenants created in one PostgreSQL transaction: each costs a few milliseconds of DDL, so a
/// batch commits about a second of work at once and holds `tenants` only for its last moments.
pub const PG_BATCH_SIZE: usize = 64;

/// The builder of a plain tenant: the `system` fixture and the deployment's later migrations
/// executed into a new file; the tenant records its `system` fixture.
pub fn system_builder(
    set: &MigrationSet,
) -> impl Fn(&Path, &CreateSpec) -> Result<Built> + Sync + '_ {
    move |path: &Path, spec: &CreateSpec| {
        Ok(Built::with_system(system::build(path, &spec.owner, set)?))
    }
}

impl Built {
    /// What a tenant built from the `system` fixture holds, before any other fixture.
    pub fn with_system(owner_id: String) -> Built {
        Built {
            owner_id,
            fixtures: vec![fixture::SYSTEM.to_string()],
            fixture_versions: vec![(fixture::SYSTEM.to_string(), fixture::system_version())],
            ..Built::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub tenant: TenantRow,
    /// The tenant's database file; `null` on PostgreSQL (the tenant is `schema`).
    pub path: Option<PathBuf>,
    /// Files of an interrupted earlier attempt that stood at this tenant's path, moved aside.
    pub moved_aside: Vec<PathBuf>,
    /// True when the tenant existed already and `--skip-existing` left it as it was.
    pub existed: bool,
}

/// Parses a `--from-file` list: one tenant a line, `NAME [OWNER [DESCRIPTION...]]`, blank lines
/// and `#` comments ignored. Every line is checked before anything is created.
pub fn parse_create_file(path: &Path) -> Result<Vec<CreateSpec>> {
    let bytes = fs::read(path).at(path)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::BadInput {
        path: path.to_path_buf(),
        line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        message: "the file is not valid UTF-8".into(),
    })?;
    let mut specs: Vec<CreateSpec> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: String| Error::BadInput {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        // Fields are separated by any run of blanks, so aligned columns work; the description is
        // the rest of the line as written.
        let (name, rest) = split_field(line);
        let (owner, rest) = split_field(rest);
        let name = name.to_string();
        let owner = if owner.is_empty() { "root" } else { owner }.to_string();
        let description = Some(rest.trim())
            .filter(|s| !s.is_empty())
            .map(String::from);
        names::tenant(&name).map_err(|e| bad(e.to_string()))?;
        names::user(&owner).map_err(|e| bad(e.to_string()))?;
        if specs.iter().any(|s| s.name == name) {
            return Err(bad(format!("tenant '{name}' is listed twice")));
        }
        specs.push(CreateSpec {
            name,
            owner,
            description,
        });
    }
    if specs.is_empty() {
        return Err(Error::BadInput {
            path: path.to_path_buf(),
            line: 0,
            message: "the file lists no tenant; write one `NAME [OWNER [DESCRIPTION]]` a line"
                .into(),
        });
    }
    Ok(specs)
}

/// The first blank-separated field of `s` and the rest after the blanks that follow it.
fn split_field(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Validates every spec (names, owners, duplicates) before anything is written.
pub fn validate_specs(specs: &[CreateSpec]) -> Result<()> {
    if specs.is_empty() {
        return Err(Error::Usage(
            "no tenant to create: give NAME... or --from-file FILE".into(),
        ));
    }
    for (i, s) in specs.iter().enumerate() {
        names::tenant(&s.name)?;
        names::user(&s.owner)?;
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(Error::Usage(format!("tenant '{}' is given twice", s.name)));
        }
    }
    Ok(())
}

/// Tenants built before their files are synced and registered together: bounds the temporary
/// files a batch holds at once (and the time the registry's write lock is held per batch).
pub const BATCH_SIZE: usize = 256;

/// Creates tenants; each either fully exists afterwards or not at all. A failure of one does not
/// stop the others. One tenant goes through `create_one`; more are created in batches of up to
/// `BATCH_SIZE` (see `create_batch`), which pays one file-system sync, one directory sync and one
/// registry transaction per batch instead of per tenant, with the same crash-safety promises.
pub fn create_many(
    ws: &Workspace,
    specs: &[CreateSpec],
    recipe: Recipe<'_>,
    skip_existing: bool,
    progress: &dyn Progress,
) -> Result<Batch<Created>> {
    create_many_as(ws, specs, recipe, skip_existing, false, progress)
}

/// `create_many`; with `sqlite_files` on a PostgreSQL registry, each tenant is a SQLite file
/// under `--sqlite-data-dir` (a `db_type='sqlite'` row, which the API serves from its
/// `SQLITE_DATA_DIR`) instead of a schema.
pub fn create_many_as(
    ws: &Workspace,
    specs: &[CreateSpec],
    recipe: Recipe<'_>,
    skip_existing: bool,
    sqlite_files: bool,
    progress: &dyn Progress,
) -> Result<Batch<Created>> {
    if sqlite_files {
        ws.sqlite_layout()?;
    }
    validate_specs(specs)?;
    let mut store = ws.store_for_write()?;
    progress.start(specs.len() as u64, "creating tenants");
    // With `skip_existing`, a tenant that exists (not deleted) is a success left as it is, so
    // that a provisioning script can run again after an interruption and exit 0. Found before
    // building, and again when a concurrent create won the name meanwhile.
    let existing = |store: &mut Store, name: &str| -> Option<Result<Created>> {
        if !skip_existing {
            return None;
        }
        let t = store
            .find(name)
            .ok()
            .flatten()
            .filter(|t| !t.is_deleted())?;
        let path = if t.db_type == "sqlite" {
            ws.sqlite_file_of(&t).map(Some)
        } else {
            Ok(None)
        };
        Some(path.map(|path| Created {
            tenant: t,
            path,
            moved_aside: Vec::new(),
            existed: true,
        }))
    };
    let mut results: Vec<Option<Result<Created>>> = specs
        .iter()
        .map(|s| existing(&mut store, &s.name))
        .collect();
    for (spec, _) in specs.iter().zip(&results).filter(|(_, r)| r.is_some()) {
        progress.advance(1, &spec.name);
    }
    let todo: Vec<usize> = (0..specs.len()).filter(|i| results[*i].is_none()).collect();
    let made: Vec<CreateSpec> = todo.iter().map(|i| specs[*i].clone()).collect();
    let created = match &mut store {
        Store::Postgres(reg) if !sqlite_files => create_schemas(ws, reg, &made, recipe, progress)?,
        _ => create_files(ws, &mut store, &made, recipe, progress)?,
    };
    for (i, r) in todo.into_iter().zip(created) {
        results[i] = Some(match r {
            Err(Error::TenantExists(name)) if skip_existing => {
                existing(&mut store, &name).unwrap_or(Err(Error::TenantExists(name)))
            }
            other => other,
        });
    }
    let mut batch = Batch::default();
    for (spec, r) in specs.iter().zip(results) {
        if let Some(r) = r {
            batch.push(&spec.name, r);
        }
    }
    progress.finish();
    Ok(batch)
}

/// SQLite: each tenant's file built privately, then placed and registered (one tenant through
/// `create_one`, more in batches through `create_batch`).
fn create_files(
    ws: &Workspace,
    reg: &mut Store,
    made: &[CreateSpec],
    recipe: Recipe<'_>,
    progress: &dyn Progress,
) -> Result<Vec<Result<Created>>> {
    let layout = ws.sqlite_layout()?;
    let system;
    let with_fixtures;
    let cloned;
    let builder: &Builder<'_> = match recipe {
        Recipe::Template {
            image,
            fixtures,
            limit,
        } => {
            cloned = super::template::builder(image, fixtures, limit);
            &cloned
        }
        Recipe::System(set) => {
            system = system_builder(set);
            &system
        }
        Recipe::Fixtures {
            set,
            fixtures,
            limit,
        } => {
            with_fixtures = fixture::builder(set, fixtures, limit);
            &with_fixtures
        }
        Recipe::Built(b) => b,
    };
    let mut created: Vec<Result<Created>> = Vec::new();
    match reg {
        Store::Sqlite(r) if made.len() > 1 => {
            let mut last_created = SystemTime::UNIX_EPOCH;
            for chunk in made.chunks(BATCH_SIZE) {
                created.extend(create_batch(
                    r,
                    layout,
                    chunk,
                    builder,
                    progress,
                    &mut last_created,
                ));
            }
        }
        // One tenant, or SQLite files of a PostgreSQL registry: one at a time.
        _ => {
            for spec in made {
                created.push(create_one(reg, layout, spec, builder));
                progress.advance(1, &spec.name);
            }
        }
    }
    Ok(created)
}

/// PostgreSQL: each batch of tenants (schema, tables, seed rows, registry row) in one
/// transaction, see `backend::postgres::Registry::create_batch`.
fn create_schemas(
    ws: &Workspace,
    reg: &mut crate::core::backend::postgres::Registry,
    made: &[CreateSpec],
    recipe: Recipe<'_>,
    progress: &dyn Progress,
) -> Result<Vec<Result<Created>>> {
    let set = ws.migration_set()?;
    let (plan, limit, template): (Vec<&fixture::Loaded>, Duration, Option<(&str, i64)>) =
        match recipe {
            Recipe::Built(_) => {
                return Err(Error::Unsupported(
                    "restore is not available on a PostgreSQL deployment yet".into(),
                ))
            }
            Recipe::System(_) => (Vec::new(), super::guard::STATEMENT_TIMEOUT, None),
            Recipe::Fixtures {
                fixtures, limit, ..
            } => (fixtures.iter().collect(), limit, None),
            Recipe::Template {
                image,
                fixtures,
                limit,
            } => (
                image
                    .loaded
                    .iter()
                    .chain(fixtures.iter().filter(|f| {
                        !image
                            .loaded
                            .iter()
                            .any(|l| l.fixture.name == f.fixture.name)
                    }))
                    .collect(),
                limit,
                Some((image.meta.name.as_str(), image.meta.generation)),
            ),
        };
    let mut created = Vec::with_capacity(made.len());
    for chunk in made.chunks(PG_BATCH_SIZE) {
        let made = reg.create_batch(
            chunk,
            &ws.settings.database_name,
            set,
            &plan,
            limit,
            template,
        )?;
        for (spec, r) in chunk.iter().zip(made) {
            progress.advance(1, &spec.name);
            created.push(r.map(|tenant| Created {
                tenant,
                path: None,
                moved_aside: Vec::new(),
                existed: false,
            }));
        }
    }
    Ok(created)
}

/// A tenant of a batch whose private file is built and waits to be placed and registered.
struct Pending {
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
fn create_batch(
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
    // shared between threads), then build the files privately on up to `BUILD_THREADS` threads.
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
        super::pause_point("tenant.batch.built");
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
        super::pause_point("tenant.batch.synced");
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
            super::pause_point("tenant.batch.placed");
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

/// Threads that build the files of a batch at most (each builds whole tenants; SQLite
/// connections are not shared).
const BUILD_THREADS: usize = 4;

/// A tenant of a batch whose name is free and whose paths are chosen.
struct Slot {
    index: usize,
    schema: String,
    final_path: PathBuf,
    tmp: PathBuf,
    guard: fsutil::TempFile,
}

/// Phase 1 of a batch for one tenant, before building: the name is free (checked again under
/// the write lock later) and the paths; the final directory exists and is open for syncing.
fn locate(
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
        schema,
        final_path,
        guard: fsutil::TempFile(Some(tmp.clone())),
        tmp,
    })
}

/// Builds every slot's file; one result per slot, in order. Each thread takes the next slot
/// until none is left, so a slow tenant does not hold the others up.
fn build_all(
    slots: &[Slot],
    specs: &[CreateSpec],
    builder: &Builder<'_>,
    progress: &dyn Progress,
) -> Vec<Result<Built>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out: Vec<(usize, Result<Built>)> = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(i) else { break };
            let spec = &specs[slot.index];
            let built =
                builder(&slot.tmp, spec).map_err(|e| as_final(e, &slot.tmp, &slot.final_path));
            out.push((i, built));
            progress.advance(1, &spec.name);
        }
        out
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(BUILD_THREADS)
        .min(slots.len())
        .max(1);
    let mut all = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut all = work();
        for h in helpers {
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        all
    });
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// Phase 3 of a batch for one tenant, inside the registry transaction: check, clear the final
/// path, link the file (its directory is synced later, once for the batch), insert the rows.
/// `created_at` is taken here, in the order the tenants were given, and strictly increases over
/// the run (by 1 ms when the clock has not moved), so that sorting by creation time keeps that
/// order as it does for tenants created one at a time. Within a batch it may run ahead of the
/// clock by up to a millisecond per tenant (at most `BATCH_SIZE` ms); building the next batch
/// takes longer than that, so the clock catches up.
fn register_one(
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
fn clear_location(
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
fn insert_rows(w: &dyn RegistryWriter, row: &TenantRow, built: &Built) -> Result<()> {
    w.insert(row)?;
    for f in &built.fixtures {
        w.record_fixture(&row.id, f, &row.created_at)?;
    }
    for (f, v) in &built.fixture_versions {
        w.set_fixture_version(&row.id, f, v)?;
    }
    Ok(())
}

fn new_row(spec: &CreateSpec, database: &str, schema: &str, built: &Built) -> TenantRow {
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
fn as_final(e: Error, tmp: &Path, final_path: &Path) -> Error {
    e.renamed(tmp, &final_path.display().to_string())
}

/// A batch-wide failure, reported for each tenant of the batch with the same exit code.
fn same_kind(e: &Error) -> Error {
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
    super::pause_point("tenant.built");

    let row = new_row(spec, &database, &schema, &built);
    let mut placed = false;
    let mut moved_aside = Vec::new();
    let result = reg.write(|w| {
        moved_aside = clear_location(w, layout, spec, &row, &final_path)?;
        fsutil::place_new(&tmp, &final_path)?;
        placed = true;
        super::pause_point("tenant.placed");
        insert_rows(w, &row, &built)?;
        super::pause_point("tenant.inserted");
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Name,
    Created,
    Status,
    Size,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only these statuses (any when empty).
    pub statuses: Vec<String>,
    pub include_trashed: bool,
    pub include_deleted: bool,
    pub sort: SortKey,
    pub reverse: bool,
}

/// One line of `tenant list`.
#[derive(Debug, Clone, Serialize)]
pub struct TenantSummary {
    pub id: String,
    pub name: String,
    pub status: String,
    pub owner_id: String,
    pub description: Option<String>,
    pub created_at: String,
    pub trashed_at: Option<String>,
    pub deleted_at: Option<String>,
    pub path: Option<PathBuf>,
    /// Size of the database file (not its WAL); `null` when the file is missing.
    pub size_bytes: Option<u64>,
    pub fixtures: Vec<String>,
}

/// Lists tenants. Trashed and deleted ones only on request.
pub fn list(ws: &Workspace, filter: &ListFilter) -> Result<Vec<TenantSummary>> {
    let (rows, fixtures, mut measure): (_, _, Measure) = match ws.store()? {
        Store::Postgres(mut reg) => {
            let (rows, fixtures) = (reg.all()?, reg.all_fixtures()?);
            let sizes = reg.schema_sizes()?;
            // A SQLite tenant of the registry: its file, when `--sqlite-data-dir` says where.
            let files = ws.sqlite_files.clone();
            (
                rows,
                fixtures,
                Box::new(move |t: &TenantRow| {
                    if t.db_type == "sqlite" {
                        let path = files.as_ref().and_then(|l| file_of(l, t).ok());
                        let size = path.as_deref().and_then(fsutil::size_of);
                        return (path, size);
                    }
                    (None, sizes.get(&t.schema).copied())
                }),
            )
        }
        Store::Sqlite(reg) => {
            let (rows, fixtures, sizes) = sqlite_rows_and_sizes(ws, &reg)?;
            let layout = ws.layout.clone();
            let mut sizes = sizes;
            (
                rows,
                fixtures,
                Box::new(move |t: &TenantRow| located_size(&layout, t, &mut sizes)),
            )
        }
    };
    summarize(rows, fixtures, filter, &mut *measure)
}

/// Where a tenant is and its size: a file and its bytes, or (PostgreSQL) no path and the bytes
/// of its schema's tables.
type Located = (Option<PathBuf>, Option<u64>);

/// Finds where each listed tenant is and its size.
type Measure = Box<dyn FnMut(&TenantRow) -> Located>;

/// The registry's rows and fixtures, with the sizes of the files of the directory most tenants
/// live in, measured while the registry is read.
#[allow(clippy::type_complexity)]
fn sqlite_rows_and_sizes(
    ws: &Workspace,
    reg: &Registry,
) -> Result<(
    Vec<TenantRow>,
    std::collections::HashMap<String, Vec<FixtureRow>>,
    fsutil::DirSizes,
)> {
    // Most tenants live in one directory: measure its files while the registry is read.
    let main_dir = ws.layout.new_tenant_database().to_string();
    let scan_path = ws.layout.data_dir.join(&main_dir);
    let (rows, fixtures, scanned) = std::thread::scope(|s| {
        let scan = s.spawn(|| fsutil::scan_sizes(&scan_path));
        let rows = reg.all();
        let fixtures = reg.all_fixtures();
        (rows, fixtures, scan.join().unwrap_or_default())
    });
    let (rows, fixtures) = (rows?, fixtures?);
    let mut sizes = fsutil::DirSizes::default();
    sizes.insert(&main_dir, scanned);
    Ok((rows, fixtures, sizes))
}

/// The rule of `tenant list`, the same on every backend: which rows, what each line says, order.
fn summarize(
    rows: Vec<TenantRow>,
    mut fixtures: std::collections::HashMap<String, Vec<FixtureRow>>,
    filter: &ListFilter,
    measure: &mut dyn FnMut(&TenantRow) -> Located,
) -> Result<Vec<TenantSummary>> {
    let wanted = |t: &TenantRow| {
        let status_ok = filter.statuses.is_empty() || filter.statuses.contains(&t.status);
        let named_deleted = filter.statuses.iter().any(|s| s == "deleted");
        let deleted_ok = !t.is_deleted() || filter.include_deleted || named_deleted;
        let trashed_ok = !t.is_trashed() || filter.include_trashed;
        status_ok && deleted_ok && trashed_ok
    };
    let mut out: Vec<TenantSummary> = rows
        .into_iter()
        .filter(wanted)
        .map(|t| {
            let (path, size_bytes) = measure(&t);
            let deployed = if fixtures.is_empty() {
                None
            } else {
                fixtures.remove(&t.id)
            };
            TenantSummary {
                fixtures: deployed
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| f.fixture_name)
                    .collect(),
                id: t.id,
                name: t.name,
                status: t.status,
                owner_id: t.owner_id,
                description: t.description,
                created_at: t.created_at,
                trashed_at: t.trashed_at,
                deleted_at: t.deleted_at,
                path,
                size_bytes,
            }
        })
        .collect();
    match filter.sort {
        SortKey::Name => {}
        SortKey::Created => out.sort_by_key(|t| ids::parse_timestamp_ms(&t.created_at)),
        SortKey::Status => out.sort_by(|a, b| a.status.cmp(&b.status)),
        SortKey::Size => out.sort_by_key(|t| t.size_bytes),
    }
    if filter.reverse {
        out.reverse();
    }
    Ok(out)
}

/// A tenant's current file and its size, from one directory scan per directory (see `file_of`).
fn located_size(
    layout: &Layout,
    t: &TenantRow,
    sizes: &mut fsutil::DirSizes,
) -> (Option<PathBuf>, Option<u64>) {
    if names::path_component("tenants.database", &t.database).is_err()
        || names::path_component("tenants.schema", &t.schema).is_err()
    {
        return (None, None);
    }
    let live_name = format!("{}.db", t.schema);
    let live = sizes.get(&layout.data_dir, &t.database, &live_name);
    if live.is_some() || !t.is_deleted() {
        let path = layout.data_dir.join(&t.database).join(live_name);
        return (Some(path), live);
    }
    match layout.trash_path(&t.schema, &t.id) {
        Ok(p) => {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let size = name.and_then(|n| sizes.get(&layout.data_dir, "trash", &n));
            (Some(p), size)
        }
        Err(_) => (None, None),
    }
}

/// Where a tenant's database file is now: its live path, or its trash path once deleted.
pub fn file_of(layout: &Layout, t: &TenantRow) -> Result<PathBuf> {
    let live = layout.tenant_path(&t.database, &t.schema)?;
    if t.is_deleted() && !live.exists() {
        return layout.trash_path(&t.schema, &t.id);
    }
    Ok(live)
}

pub use super::db::TableCount;

/// `tenant show`: the row, the file, and what the file holds.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: TenantRow,
    /// The database file; `null` on PostgreSQL, where the tenant is its `schema`.
    pub path: Option<PathBuf>,
    /// Whether the file (on PostgreSQL, the schema) exists.
    pub file_exists: bool,
    pub size_bytes: Option<u64>,
    pub wal_bytes: Option<u64>,
    /// The owner's name in the tenant's `users` table, when the file can be read.
    pub owner_name: Option<String>,
    pub tables: Vec<TableCount>,
    pub fixtures: Vec<FixtureRow>,
    /// Why the file's content could not be read, if it could not.
    pub file_error: Option<String>,
    /// A deleted tenant whose trash copy `tenant purge` removed: there is no file to read.
    pub purged: bool,
}

pub fn show(ws: &Workspace, name: &str) -> Result<TenantDetail> {
    names::tenant(name)?;
    let mut store = ws.store()?;
    let tenant = store.get(name)?;
    let fixtures = store.fixtures_of(&tenant.id)?;
    let sqlite_tenant = tenant.db_type == "sqlite";
    let (path, file_exists, size_bytes, wal_bytes, content) = match &mut store {
        Store::Postgres(reg) if !sqlite_tenant => {
            let exists = reg.schema_exists(&tenant.schema)?;
            let size = if exists {
                reg.schema_sizes()?.get(&tenant.schema).copied()
            } else {
                None
            };
            let content = exists.then(|| reg.read_content(&tenant.schema, &tenant.owner_id));
            (None, exists, size, None, content)
        }
        // Without `--sqlite-data-dir`, a SQLite tenant of a PostgreSQL registry is shown from
        // its row, and the detail says which setting finds its file.
        Store::Postgres(_) if ws.sqlite_files.is_none() => (
            None,
            false,
            None,
            None,
            Some(Err(ws.sqlite_layout().err().unwrap_or_else(|| {
                Error::Other("no SQLite data directory".into())
            }))),
        ),
        _ => {
            let path = ws.sqlite_file_of(&tenant)?;
            let exists = path.exists();
            let content = exists.then(|| read_content(&path, &tenant.owner_id));
            (
                Some(path.clone()),
                exists,
                fsutil::size_of(&path),
                fsutil::size_of(&fsutil::with_suffix(&path, "-wal")),
                content,
            )
        }
    };
    let (mut owner_name, mut tables, mut file_error) = (None, Vec::new(), None);
    match content {
        Some(Ok((o, t))) => {
            owner_name = o;
            tables = t;
        }
        Some(Err(e)) => file_error = Some(e.to_string()),
        None if !tenant.is_deleted() => {
            file_error = Some(match &path {
                Some(p) => format!(
                    "the file is missing: {} (run `monkctl doctor`)",
                    p.display()
                ),
                None => format!(
                    "the schema {} is missing (run `monkctl doctor`)",
                    tenant.schema
                ),
            })
        }
        None => {}
    }
    // A deleted tenant whose trash copy (schema) is gone was purged: nothing is left to read.
    let purged = tenant.is_deleted() && !file_exists;
    Ok(TenantDetail {
        size_bytes,
        wal_bytes,
        tenant,
        path,
        file_exists,
        purged,
        owner_name,
        tables,
        fixtures,
        file_error,
    })
}

/// Reads a tenant file without writing to it: the owner's name and row counts per table.
fn read_content(path: &Path, owner_id: &str) -> Result<(Option<String>, Vec<TableCount>)> {
    db::read_quietly(path, |conn, path| {
        let tables = db::table_counts(conn).at(path)?;
        let owner = conn
            .query_row("SELECT name FROM users WHERE id = ?1", [owner_id], |r| {
                r.get(0)
            })
            .ok();
        Ok((owner, tables))
    })
}

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
    super::pause_point("tenant.deleted");
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
        super::pause_point("tenant.undelete.placed");
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
fn undelete_schema(ws: &Workspace, name: &str) -> Result<Undeleted> {
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
const TRASH_MARGIN: u64 = 256 * 1024;

/// Refuses to delete a tenant whose file cannot be copied into the trash for lack of space,
/// before the registry is changed: the copy comes after the deletion is committed, and a full
/// disk there would leave a deleted tenant with its file in place.
fn room_in_trash(name: &str, live: &Path, trash: &Path) -> Result<()> {
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
fn move_to_trash(live: &Path, trash: &Path) -> Result<Vec<MovedFile>> {
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
    let mut copy = system::open_build(&tmp)?;
    db::backup_all(&source, &mut copy, &tmp, Duration::from_secs(5))?;
    drop(source);
    system::finish_build(copy, &tmp)?;
    // The live file is the truth: a trash copy left by an interrupted earlier run is replaced.
    fs::rename(&tmp, trash).at(trash)?;
    drop(guard);
    if let Some(dir) = trash.parent() {
        fsutil::sync_dir(dir)?;
    }
    super::pause_point("tenant.delete.copied");
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

#[derive(Debug, Clone, Serialize)]
pub struct Purged {
    pub name: String,
    pub id: String,
    pub deleted_at: Option<String>,
    /// SQLite: the trash files removed. PostgreSQL: the archive the schema was written to
    /// before it was dropped (`pg_restore` brings it back).
    pub files: Vec<PathBuf>,
    /// The schema dropped (PostgreSQL); `null` on SQLite.
    pub schema: Option<String>,
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
fn sqlite_trash_archive(layout: &Layout, t: &TenantRow) -> Result<PathBuf> {
    names::path_component("tenants.schema", &t.schema)?;
    names::path_component("tenants.id", &t.id)?;
    Ok(layout
        .trash_dir()
        .join(format!("{}-{}{}", t.schema, t.id, super::archive::SUFFIX)))
}

/// Where `purge` writes a PostgreSQL tenant's schema before dropping it:
/// `<data>/trash/<schema>-<id>.pgdump` (restore it with `pg_restore`).
fn pg_trash_archive(layout: &Layout, t: &TenantRow) -> Result<PathBuf> {
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
                super::archive::extract_file(&live, &t, &fixtures, archive, false)?;
                super::pause_point("tenant.purge.archived");
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
            super::pause_point("tenant.purge.archived");
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
