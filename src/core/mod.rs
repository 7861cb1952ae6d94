//! The monkctl library: every subcommand reaches the data directory through here.
//!
//! No clap, no printing, no prompts: functions take plain values and return `Serialize` results
//! or typed errors. Rules that must hold everywhere (name validation, pragmas, atomic placement,
//! locks) live in exactly one module each: opening a SQLite database with its pragmas (live,
//! inspected, built, scratch) and the small SQL helpers (does a table exist, the history's
//! version, a checkpoint) in `db`; operator SQL in `guard` (`guard_postgres` on PostgreSQL). Both are
//! directories of parts, which their `mod.rs` describes; callers use them as `db::<item>` and
//! `guard::<item>` whatever part holds it.
//!
//! The tree (a directory's `mod.rs` or `<name>.rs` names its parts):
//! - where things are: `config` (settings and their sources), `layout` (paths in a data
//!   directory), `backend` (the seam between the rules and SQLite or PostgreSQL: `Store`, and
//!   `backend/postgres/`), `registry` (the SQLite infra database);
//! - one rule each: `names` (validation before a path or SQL), `fsutil` (owner-only files,
//!   atomic placement), `lock` (locks between monkctl processes), `db` (opening SQLite, SQL
//!   helpers), `guard` and `guard_postgres` (operator SQL), `fingerprint` (XXH3), `ids` (UUIDs
//!   and times), `pool` (work over many tenants, `--jobs`), `error` (errors and exit codes),
//!   `progress` (the trait long runs report through);
//! - the commands' work: `tenant` (create, batch, view, lifecycle, purge), `system` (the built-in
//!   fixture), `schema` (tenant schema versions), `fixture` (manifest, data, apply, check,
//!   deploy, postgres), `template`, `migrate` (set, inspect, targets, survey, up, undo,
//!   destructive, postgres), `archive` (checksum, extract, verify, restore, crossing,
//!   postgres), `doctor` (with `doctor_postgres`), `maintenance` (vacuum, usage), `query` (with
//!   `query_postgres`);
//! - `sql/`: the SQL files built in (`system.sql`, the PostgreSQL schema).

pub mod archive;
pub mod backend;
pub mod config;
pub mod db;
pub mod doctor;
pub mod error;
pub mod fingerprint;
pub mod fixture;
pub mod fsutil;
pub mod guard;
pub mod guard_postgres;
pub mod ids;
pub mod layout;
pub mod lock;
pub mod maintenance;
pub mod migrate;
pub mod names;
pub mod pool;
pub mod progress;
pub mod query;
pub mod registry;
pub mod schema;
pub mod system;
pub mod template;
pub mod tenant;

use std::path::PathBuf;

use serde::Serialize;

pub use backend::{Backend, Store};
pub use config::{Overrides, Settings};
pub use error::{exit, Error, Result};
pub use layout::{Layout, LayoutKind};
pub use registry::Registry;

/// Environment variable naming a point where the process stops (pausing until killed), so that
/// crash-safety tests can kill it with SIGKILL at an exact step: `MONKCTL_PAUSE_AT=tenant.placed`.
/// Only debug builds (what `cargo test` runs) read it: a release binary never pauses.
pub const PAUSE_ENV: &str = "MONKCTL_PAUSE_AT";

/// With `MONKCTL_PAUSE_AT`, a file whose appearance ends the pause, so that a test can act
/// while the process waits at an exact step and then let it go on (instead of killing it).
pub const RESUME_ENV: &str = "MONKCTL_RESUME_WHEN";

/// Pauses here (printing `paused at NAME` on stderr) when `MONKCTL_PAUSE_AT` names this point,
/// in debug builds only: for 60 s, or until the file `MONKCTL_RESUME_WHEN` names exists.
#[cfg(debug_assertions)]
pub fn pause_point(name: &str) {
    static WANTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let wanted = WANTED.get_or_init(|| std::env::var(PAUSE_ENV).ok());
    if wanted.as_deref() == Some(name) {
        eprintln!("paused at {name}");
        let resume = std::env::var_os(RESUME_ENV).map(PathBuf::from);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < until && !resume.as_ref().is_some_and(|p| p.exists()) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks the runs over several tenants to stop starting tenants (Ctrl-C): those in progress
/// finish, the others are reported as not started.
pub fn interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether `interrupt` was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

static STOPPABLE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Held by a run over several tenants that checks `interrupted` before it starts each one.
pub struct Stoppable(());

impl Stoppable {
    pub fn begin() -> Stoppable {
        STOPPABLE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Stoppable(())
    }
}

impl Drop for Stoppable {
    fn drop(&mut self) {
        STOPPABLE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Whether a run that stops between tenants is going on (else Ctrl-C ends the process).
pub fn stoppable_running() -> bool {
    STOPPABLE.load(std::sync::atomic::Ordering::SeqCst) > 0
}

/// A release build has no pause points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn pause_point(_name: &str) {}

/// The resolved settings and the layout of the data directory they point at.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub settings: Settings,
    /// Where monkctl's own files are (locks, trash, snapshots, templates); on SQLite also the
    /// registry and the tenants.
    pub layout: Layout,
    /// Where the registry and the tenants live.
    pub backend: Backend,
    /// On PostgreSQL with `--sqlite-data-dir`: where the registry's SQLite tenants' files are
    /// (`<dir>/<tenants.database>/<tenants.schema>.db`, the API layout).
    pub sqlite_files: Option<Layout>,
    /// The deployment's tenant migration set, read on first use (`migration_set`).
    set: std::sync::OnceLock<migrate::MigrationSet>,
}

impl Workspace {
    /// The settings and the registry they find (`Layout::resolve`): exit 2 when the data
    /// directory holds two registries and nothing chooses between them.
    pub fn new(settings: Settings) -> Result<Workspace> {
        if let Some(url) = &settings.postgres {
            // The data directory holds only monkctl's own state: no registry is looked for.
            let layout = Layout::resolve(
                &settings.data_dir.value,
                &settings.database_name,
                true,
                Some(LayoutKind::Design),
            )?;
            let sqlite_files = settings.sqlite_data_dir.value.as_ref().map(|dir| Layout {
                data_dir: dir.clone(),
                database_name: url.database.clone(),
                kind: LayoutKind::Api6,
                infra_path: Layout::api_infra(dir, &url.database),
            });
            return Ok(Workspace {
                backend: Backend::Postgres(std::sync::Arc::new(backend::postgres::Target::new(
                    url,
                )?)),
                settings,
                layout,
                sqlite_files,
                set: std::sync::OnceLock::new(),
            });
        }
        let layout = Layout::resolve(
            &settings.data_dir.value,
            &settings.database_name,
            settings.database_url.source != config::Source::Default,
            settings.layout.value,
        )?;
        Ok(Workspace {
            settings,
            layout,
            backend: Backend::Sqlite,
            sqlite_files: None,
            set: std::sync::OnceLock::new(),
        })
    }

    /// Where the SQLite tenants of this deployment are: the data directory's layout on SQLite;
    /// on PostgreSQL, `--sqlite-data-dir` (`Unsupported`, naming the setting, without it).
    pub fn sqlite_layout(&self) -> Result<&Layout> {
        match (&self.backend, &self.sqlite_files) {
            (Backend::Sqlite, _) => Ok(&self.layout),
            (Backend::Postgres(_), Some(l)) => Ok(l),
            (Backend::Postgres(t), None) => Err(Error::Unsupported(format!(
                "{} holds SQLite tenants (db_type 'sqlite'), whose files the API keeps under its SQLITE_DATA_DIR: give that directory with --sqlite-data-dir (or SQLITE_DATA_DIR, or sqlite_data_dir in the config file)",
                t.at(None)
            ))),
        }
    }

    /// The database file of a SQLite tenant of either backend's registry (a deleted tenant's
    /// trashed file when its live one is gone).
    pub fn sqlite_file_of(&self, t: &registry::TenantRow) -> Result<PathBuf> {
        let layout = self.sqlite_layout().map_err(|e| match e {
            Error::Unsupported(m) => Error::Unsupported(format!("tenant '{}': {m}", t.name)),
            other => other,
        })?;
        tenant::file_of(layout, t)
    }

    /// Refuses, on a PostgreSQL deployment, a command whose PostgreSQL side does not exist yet.
    fn sqlite_only(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite => Ok(()),
            Backend::Postgres(t) => Err(Error::Unsupported(format!(
                "this works on a SQLite deployment only, and {} is PostgreSQL; see the README's PostgreSQL section",
                t.at(None)
            ))),
        }
    }

    /// The registry for reading, on either backend; never creates anything.
    pub fn store(&self) -> Result<Store> {
        match &self.backend {
            Backend::Sqlite => Ok(Store::Sqlite(Registry::open_existing(&self.layout)?)),
            Backend::Postgres(t) => Ok(Store::Postgres(
                backend::postgres::Registry::open_existing(t)?,
            )),
        }
    }

    /// The registry for changing existing tenants: `NoInfra` when there is none, brought up to
    /// date otherwise.
    pub fn store_existing_for_write(&self) -> Result<Store> {
        match &self.backend {
            Backend::Sqlite => Ok(Store::Sqlite(self.registry_existing_for_write()?)),
            Backend::Postgres(t) => {
                drop(backend::postgres::Registry::open_existing(t)?);
                Ok(Store::Postgres(
                    backend::postgres::Registry::open_for_write(t)?,
                ))
            }
        }
    }

    /// The registry for writing; creates it when missing.
    pub fn store_for_write(&self) -> Result<Store> {
        match &self.backend {
            Backend::Sqlite => Ok(Store::Sqlite(self.registry_for_write()?)),
            Backend::Postgres(t) => Ok(Store::Postgres(
                backend::postgres::Registry::open_for_write(t)?,
            )),
        }
    }

    /// The deployment's tenant migrations: the built-in ones plus the operator directory
    /// (`--migrations`, `MONK_MIGRATIONS_DIR` or `migrations_dir`). Every command that creates,
    /// judges or changes a tenant's schema reads its versions from here, so that archives,
    /// templates, doctor and create agree with `migrate`. Read once per process.
    pub fn migration_set(&self) -> Result<&migrate::MigrationSet> {
        if let Some(set) = self.set.get() {
            return Ok(set);
        }
        let set = migrate::MigrationSet::load(self.settings.migrations_dir.value.as_deref())?;
        Ok(self.set.get_or_init(|| set))
    }

    /// The infra database for reading; never creates anything.
    pub fn registry(&self) -> Result<Registry> {
        self.sqlite_only()?;
        Registry::open_existing(&self.layout)
    }

    /// The infra database for changing existing tenants: `NoInfra` when there is none (a command
    /// about a tenant must not create an empty registry), brought up to date otherwise.
    pub fn registry_existing_for_write(&self) -> Result<Registry> {
        self.sqlite_only()?;
        if !self.layout.infra_path.exists() {
            Registry::open_existing(&self.layout)?;
        }
        Registry::open_for_write(&self.layout)
    }

    /// The infra database for writing; creates the data directory and the database when missing.
    pub fn registry_for_write(&self) -> Result<Registry> {
        self.sqlite_only()?;
        Registry::open_for_write(&self.layout)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub data_dir: PathBuf,
    /// The data directory's layout; `null` on PostgreSQL, where tenants are schemas.
    pub layout: Option<LayoutKind>,
    pub infra_path: PathBuf,
    /// False when the infra database existed already.
    pub created: bool,
    pub infra_version: i64,
    /// What the API needs to serve this data directory (`DATABASE_URL`, `SQLITE_DATA_DIR`);
    /// `null` for the design layout, which the API does not read.
    pub api_env: Option<std::collections::BTreeMap<String, String>>,
}

/// Creates the data directory and the infra database (idempotent). Refuses to make a second
/// registry beside one the directory holds already (another layout or another name).
pub fn init(ws: &Workspace) -> Result<InitReport> {
    if let Backend::Postgres(t) = &ws.backend {
        let existed = backend::postgres::Registry::open_existing(t).is_ok();
        drop(ws.store_for_write()?);
        fsutil::create_private_dir(&ws.layout.data_dir)?;
        return Ok(InitReport {
            data_dir: ws.layout.data_dir.clone(),
            layout: None,
            infra_path: PathBuf::from(t.at(None)),
            created: !existed,
            infra_version: backend::postgres::latest_version(),
            api_env: Some(std::collections::BTreeMap::from([(
                "DATABASE_URL".to_string(),
                t.url.redacted.clone(),
            )])),
        });
    }
    let existed = ws.layout.infra_path.exists();
    if !existed {
        if let Some(other) = ws.layout.other_registries().first() {
            return Err(Error::Conflict(format!(
                "{} already holds a registry at {}; init would make a second one at {}, and the API and monkctl would each read another: use the one there (drop --layout and DATABASE_URL, or set them to it), or another --data-dir",
                ws.layout.data_dir.display(),
                other.display(),
                ws.layout.infra_path.display()
            )));
        }
    }
    let reg = ws.registry_for_write()?;
    drop(reg);
    Ok(InitReport {
        data_dir: ws.layout.data_dir.clone(),
        layout: Some(ws.layout.kind),
        infra_path: ws.layout.infra_path.clone(),
        created: !existed,
        infra_version: Registry::latest_version(),
        api_env: ws.layout.api_env(),
    })
}

/// The result of one item of a run over several tenants.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome<T> {
    pub tenant: String,
    pub ok: bool,
    /// `null` when the item failed.
    pub result: Option<T>,
    /// `null` when the item succeeded.
    pub error: Option<String>,
    /// The exit code this item alone would have had.
    pub exit_code: i32,
}

/// The results of a run over several tenants: it never stops at the first failure.
#[derive(Debug, Clone, Serialize)]
pub struct Batch<T> {
    pub results: Vec<Outcome<T>>,
    pub succeeded: usize,
    pub failed: usize,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch {
            results: Vec::new(),
            succeeded: 0,
            failed: 0,
        }
    }
}

impl<T> Outcome<T> {
    pub fn of(tenant: String, r: Result<T>) -> Outcome<T> {
        match r {
            Ok(v) => Outcome {
                tenant,
                ok: true,
                result: Some(v),
                error: None,
                exit_code: exit::SUCCESS,
            },
            Err(e) => Outcome {
                tenant,
                ok: false,
                result: None,
                error: Some(e.to_string()),
                exit_code: e.exit_code(),
            },
        }
    }
}

impl<T> Batch<T> {
    pub fn push(&mut self, tenant: &str, r: Result<T>) {
        let outcome = Outcome::of(tenant.to_string(), r);
        if outcome.ok {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        self.results.push(outcome);
    }

    /// 0 when all succeeded; the items' own code when every item failed with the same one;
    /// otherwise `PARTIAL`.
    pub fn exit_code(&self) -> i32 {
        run_exit_code(
            self.succeeded,
            self.results.iter().filter(|o| !o.ok).map(|o| o.exit_code),
        )
    }
}

/// The exit code of a run over many items from its failed items' codes: 0 when none failed;
/// their one code when every item failed with the same; otherwise `PARTIAL`.
fn run_exit_code(succeeded: usize, mut failed_codes: impl Iterator<Item = i32>) -> i32 {
    let Some(first) = failed_codes.next() else {
        return exit::SUCCESS;
    };
    if succeeded == 0 && failed_codes.all(|c| c == first) {
        first
    } else {
        exit::PARTIAL
    }
}

/// The counts of a run whose outcomes were handed on as they came (see `RunSink`) instead of
/// being kept: it keeps only the failures (name and exit code), which the retry line names.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub succeeded: usize,
    pub failed: usize,
    pub failures: Vec<(String, i32)>,
}

impl Tally {
    pub fn add<T>(&mut self, o: &Outcome<T>) {
        if o.ok {
            self.succeeded += 1;
        } else {
            self.failed += 1;
            self.failures.push((o.tenant.clone(), o.exit_code));
        }
    }

    /// As `Batch::exit_code`: 0, the one code every item failed with, or `PARTIAL`.
    pub fn exit_code(&self) -> i32 {
        run_exit_code(self.succeeded, self.failures.iter().map(|(_, c)| *c))
    }
}

/// Where a run over many tenants puts what it finds as soon as it is known: first the run's
/// head (what it is about), then each tenant's outcome in the run's order. A sink that writes
/// them out keeps memory flat however many tenants there are.
pub trait RunSink<H, T> {
    fn begin(&mut self, head: &H);
    fn outcome(&mut self, o: Outcome<T>);
}

/// A sink that keeps everything, for callers that need the whole list (tables, one tenant).
#[derive(Debug)]
pub struct Collected<H, T> {
    pub head: Option<H>,
    pub results: Vec<Outcome<T>>,
}

impl<H, T> Default for Collected<H, T> {
    fn default() -> Self {
        Collected {
            head: None,
            results: Vec::new(),
        }
    }
}

impl<H: Clone, T> RunSink<H, T> for Collected<H, T> {
    fn begin(&mut self, head: &H) {
        self.head = Some(head.clone());
    }

    fn outcome(&mut self, o: Outcome<T>) {
        self.results.push(o);
    }
}
