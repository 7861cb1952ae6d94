//! Schema migrations of the infra database and of every tenant database: status, plan, up, undo
//! and the snapshots that make undo possible.
//!
//! Owns the tenant migration set (embedded `migrations/tenant/` plus an operator directory), the
//! tenant databases' `refinery_schema_history` (written in refinery's own format and checksums,
//! so refinery reads it back), the run lock `<data>/locks/migrate.lock`, the per-database locks
//! and `<data>/snapshots/`. A tenant is migrated in one `BEGIN IMMEDIATE` transaction: it ends
//! fully at the new version or untouched. Snapshots are taken and restored through SQLite (the
//! backup API), never by copying a live file. No printing, no prompts.

pub mod destructive;
pub(crate) mod postgres;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use self::destructive::{FailKind, Failure, Finding};
use super::db::{self, Mode};
use super::error::{exit, Context, Error, Result};
use super::fsutil;
use super::guard::{self, Kind};
use super::ids;
use super::lock::{self, Holder, Lock, LockState};
use super::names;
use super::progress::Progress;
use super::registry::Registry;
use super::schema::{self, HISTORY_TABLE};
use super::system;
use super::{Batch, Outcome, RunSink, Tally, Workspace};

/// refinery 0.10's history table, as its rusqlite driver creates it (int4 versions).
pub(crate) const HISTORY_DDL: &str = "CREATE TABLE IF NOT EXISTS refinery_schema_history(
             version int4 PRIMARY KEY,
             name VARCHAR(255),
             applied_on VARCHAR(255),
             checksum VARCHAR(255));";

/// One tenant migration: embedded or from the operator's directory.
#[derive(Debug, Clone)]
pub struct Mig {
    pub version: i64,
    pub name: String,
    /// Where it comes from, for messages: a path, or `built-in V1__x.sql`.
    pub file: String,
    pub sql: String,
    /// refinery's checksum of name, version and SQL.
    pub checksum: u64,
    /// The body run on PostgreSQL: the same SQL for `V<n>__<name>.sql`, the `.postgres.sql`
    /// file's for a pair, empty (recorded, nothing run) for a `.sqlite.sql` alone.
    pub pg_sql: String,
    /// refinery's checksum of name, version and `pg_sql`, as a PostgreSQL history records it.
    pub pg_checksum: u64,
}

/// Which backends a migration file is for: `V<n>__<name>.sql` (both), `.sqlite.sql` or
/// `.postgres.sql` (that one; the other records the version without running anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForBackend {
    Both,
    Sqlite,
    Postgres,
}

/// Whether a migration read so far is one backend's half of a pair that a file for `other`
/// completes: it came from one `.sqlite.sql` or `.postgres.sql` file and `other` is the other.
fn pair_half(m: &Mig, other: ForBackend) -> bool {
    match other {
        ForBackend::Postgres => m.file.ends_with(".sqlite.sql") && m.pg_sql.is_empty(),
        ForBackend::Sqlite => m.file.ends_with(".postgres.sql") && m.sql.is_empty(),
        ForBackend::Both => false,
    }
}

/// refinery's checksum of a migration named `V<version>__<name>` with this SQL.
fn refinery_checksum(version: i64, name: &str, sql: &str) -> Result<u64> {
    refinery::Migration::unapplied(&format!("V{version}__{name}"), sql)
        .map(|m| m.checksum())
        .map_err(|e| Error::Usage(format!("V{version}__{name}: {e}")))
}

/// The ordered tenant migrations of this run.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    pub migs: Vec<Mig>,
    /// The operator directory, when there is one.
    pub dir: Option<PathBuf>,
}

/// `V<version>__<name>.sql` with a positive version that fits refinery's 32-bit versions and a
/// name of ASCII letters, digits and `_`.
pub fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    parse_file_name_for(name).map(|(v, n, _)| (v, n))
}

/// `parse_file_name`, with the backend a `.sqlite.sql` or `.postgres.sql` file is for.
pub fn parse_file_name_for(name: &str) -> Option<(i64, &str, ForBackend)> {
    let (name, backend) = if let Some(n) = name.strip_suffix(".postgres.sql") {
        (n, ForBackend::Postgres)
    } else if let Some(n) = name.strip_suffix(".sqlite.sql") {
        (n, ForBackend::Sqlite)
    } else {
        (name.strip_suffix(".sql")?, ForBackend::Both)
    };
    let (v, n) = parse_stem(name.strip_prefix('V')?)?;
    Some((v, n, backend))
}

fn parse_stem(stem: &str) -> Option<(i64, &str)> {
    let (num, nm) = stem.split_once("__")?;
    if num.is_empty()
        || !num.bytes().all(|b| b.is_ascii_digit())
        || nm.is_empty()
        || !nm.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    let v: i32 = num.parse().ok()?;
    (v >= 1).then_some((i64::from(v), nm))
}

impl MigrationSet {
    /// The embedded migrations plus every file of `dir`. Every file there must be a migration
    /// (refinery would skip a misnamed one silently; this refuses it), versions must be unique,
    /// files regular (no symbolic link, FIFO or device), UTF-8 without NUL bytes. Reads only.
    pub fn load(dir: Option<&Path>) -> Result<MigrationSet> {
        let mut migs: Vec<Mig> = schema::tenant_migrations()
            .into_iter()
            .map(|m| {
                let version = i64::from(m.version());
                // The API's baseline has a body of its own on PostgreSQL.
                let pg_sql = if version == schema::BASELINE_VERSION {
                    super::backend::postgres::SYSTEM_SQL.to_string()
                } else {
                    m.sql().unwrap_or_default().to_string()
                };
                Mig {
                    version,
                    name: m.name().to_string(),
                    file: format!("built-in V{}__{}.sql", m.version(), m.name()),
                    sql: m.sql().unwrap_or_default().to_string(),
                    checksum: m.checksum(),
                    pg_checksum: refinery_checksum(version, m.name(), &pg_sql)
                        .expect("a built-in migration has a valid name"),
                    pg_sql,
                }
            })
            .collect();
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(Error::FileNotFound {
                    what: "migrations directory",
                    path: dir.to_path_buf(),
                    hint: "check --migrations, MONK_MIGRATIONS_DIR or migrations_dir in the config file".into(),
                });
            }
            let mut paths: Vec<PathBuf> = fs::read_dir(dir)
                .at(dir)?
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()
                .at(dir)?;
            paths.sort();
            for p in paths {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Looked at without following a link: a linked file or directory is refused
                // (`guard::read_source`), a FIFO or device never opened.
                let meta = fs::symlink_metadata(&p).at(&p)?;
                if meta.is_dir() {
                    return Err(Error::Usage(format!(
                        "{}: is a directory; the migrations directory is read flat: move its files up or the directory elsewhere",
                        p.display()
                    )));
                }
                let Some((version, nm, backend)) = parse_file_name_for(&name) else {
                    return Err(Error::Usage(format!(
                        "{}: not a migration file name: every file in {} must be named V<version>__<name>.sql (or .sqlite.sql / .postgres.sql for one backend; version a positive number, name of letters, digits and _), otherwise refinery would skip it silently; rename it or move it out",
                        p.display(),
                        dir.display()
                    )));
                };
                guard::check_regular(&p, &meta)?;
                let sql = guard::read_source(&p)?;
                let file = p.display().to_string();
                match migs.iter_mut().find(|m| m.version == version) {
                    // The other backend's half of a pair `V<n>__<name>.sqlite.sql` +
                    // `V<n>__<name>.postgres.sql`.
                    Some(m)
                        if m.name == nm
                            && !m.file.starts_with("built-in")
                            && pair_half(m, backend) =>
                    {
                        match backend {
                            ForBackend::Postgres => {
                                m.pg_checksum = refinery_checksum(version, nm, &sql)?;
                                m.pg_sql = sql;
                            }
                            _ => {
                                m.checksum = refinery_checksum(version, nm, &sql)?;
                                m.sql = sql;
                            }
                        }
                        m.file = format!("{} + {file}", m.file);
                    }
                    Some(other) => {
                        return Err(Error::Usage(format!(
                            "{}: version {version} is also used by {}; every migration needs its own version (a pair for both backends is V{version}__{nm}.sqlite.sql and V{version}__{nm}.postgres.sql)",
                            p.display(),
                            other.file
                        )))
                    }
                    None => {
                        let (lite, pg) = match backend {
                            ForBackend::Both => (sql.clone(), sql),
                            ForBackend::Sqlite => (sql, String::new()),
                            ForBackend::Postgres => (String::new(), sql),
                        };
                        migs.push(Mig {
                            version,
                            name: nm.to_string(),
                            checksum: refinery_checksum(version, nm, &lite)?,
                            pg_checksum: refinery_checksum(version, nm, &pg)?,
                            file,
                            sql: lite,
                            pg_sql: pg,
                        });
                    }
                }
            }
        }
        migs.sort_by_key(|m| m.version);
        Ok(MigrationSet {
            migs,
            dir: dir.map(Path::to_path_buf),
        })
    }

    /// Executes the deployment's tenant schema into a database being built, inside the caller's
    /// open transaction: the `system` fixture (the API's baseline, V1), then every later
    /// migration of the set, each recorded in the database's migration history as `migrate up`
    /// records it. A tenant, template or scratch copy built this way is at `latest()`, and
    /// `migrate status` finds nothing to adopt or run. Returns the version.
    /// The operator's migrations pass the guard as in `migrate up` (`limit` per statement).
    pub fn execute_schema(
        &self,
        conn: &mut Connection,
        path: &Path,
        limit: Duration,
    ) -> Result<i64> {
        self.execute_schema_to(conn, path, self.latest(), limit)
    }

    /// `execute_schema` up to `version` (the reference schema of a tenant at that version).
    pub fn execute_schema_to(
        &self,
        conn: &mut Connection,
        path: &Path,
        version: i64,
        limit: Duration,
    ) -> Result<i64> {
        conn.execute_batch(system::SYSTEM_SQL).at(path)?;
        conn.execute_batch(HISTORY_DDL).at(path)?;
        let g = guard::install(conn, guard::Kind::Migration, limit).at(path)?;
        let run = || -> Result<()> {
            for m in self.migs.iter().take_while(|m| m.version <= version) {
                if m.version > schema::BASELINE_VERSION {
                    run_statements(conn, &g, path, m, schema::BASELINE_VERSION)?;
                }
                record_applied(conn, path, m)?;
            }
            Ok(())
        };
        let r = run();
        g.remove(conn).at(path)?;
        r.map(|_| version.max(schema::BASELINE_VERSION))
    }

    /// The built-in migrations alone: for code that has no deployment (tests, benchmarks).
    pub fn builtin() -> MigrationSet {
        MigrationSet::load(None).expect("the built-in migrations load")
    }

    /// Where the set's migrations come from, for messages.
    pub fn origin(&self) -> String {
        match &self.dir {
            Some(d) => format!("the built-in migrations and {}", d.display()),
            None => "the built-in migrations (no --migrations directory is set)".to_string(),
        }
    }

    /// The set as a survey's head lists it.
    pub fn infos(&self) -> Vec<MigInfo> {
        self.migs
            .iter()
            .map(|m| MigInfo {
                version: m.version,
                name: m.name.clone(),
                file: m.file.clone(),
            })
            .collect()
    }

    pub fn latest(&self) -> i64 {
        self.migs.last().map(|m| m.version).unwrap_or(0)
    }

    pub fn get(&self, version: i64) -> Option<&Mig> {
        self.migs.iter().find(|m| m.version == version)
    }

    /// The target version: `--target N` must name a migration of the set.
    pub fn target(&self, target: Option<i64>) -> Result<i64> {
        match target {
            None => Ok(self.latest()),
            Some(n) if self.get(n).is_some() => Ok(n),
            Some(n) => Err(Error::Usage(format!(
                "--target {n}: there is no migration V{n}; known versions are {}",
                self.migs
                    .iter()
                    .map(|m| m.version.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// A row of a tenant's `refinery_schema_history`.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub(crate) version: i64,
    pub(crate) name: String,
    pub(crate) checksum: String,
}

fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn read_history(conn: &Connection) -> rusqlite::Result<Vec<Applied>> {
    if !has_table(conn, HISTORY_TABLE)? {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(
        "SELECT CAST(version AS INTEGER), coalesce(name, ''), coalesce(CAST(checksum AS TEXT), '') \
         FROM refinery_schema_history ORDER BY version",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Applied {
            version: r.get(0)?,
            name: r.get(1)?,
            checksum: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Where a tenant database stands against the migration set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inspection {
    pub version: i64,
    /// No migration history yet: the baseline it matches would be recorded, nothing run.
    pub adopt: bool,
    pub pending: Vec<i64>,
    /// Applied migrations whose file was edited since (name or checksum differ).
    pub diverged: Vec<String>,
    /// Applied migrations no longer in the set, and migrations below the applied version that
    /// were never applied.
    pub missing: Vec<String>,
}

fn inspect(conn: &Connection, path: &Path, set: &MigrationSet, target: i64) -> Result<Inspection> {
    let hist = read_history(conn).at(path)?;
    let baseline = if hist.is_empty() {
        let v = schema::tenant_version(conn).at(path)?;
        if v == 0 {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                detail: "it has neither a migration history nor the Monk system tables, so it is not a Monk tenant database".into(),
            });
        }
        v
    } else {
        0
    };
    Ok(judge_history(&hist, baseline, set, target, |m| m.checksum))
}

/// Where a tenant stands from its migration history (`hist`), the same on every backend. An
/// empty history is adopted at `baseline` (the version its schema matches). `checksum` is the
/// backend's checksum of a migration.
fn judge_history(
    hist: &[Applied],
    baseline: i64,
    set: &MigrationSet,
    target: i64,
    checksum: impl Fn(&Mig) -> u64,
) -> Inspection {
    let mut ins = Inspection::default();
    let mut applied: HashSet<i64> = HashSet::new();
    if hist.is_empty() {
        ins.version = baseline;
        ins.adopt = true;
        applied.extend(
            set.migs
                .iter()
                .map(|m| m.version)
                .filter(|v| *v <= ins.version),
        );
    } else {
        ins.version = hist.iter().map(|a| a.version).max().unwrap_or(0);
        for a in hist {
            applied.insert(a.version);
            match set.get(a.version) {
                None => ins.missing.push(format!(
                    "V{} {} is applied but {} hold no V{}",
                    a.version,
                    a.name,
                    set.origin(),
                    a.version
                )),
                Some(m) if m.name != a.name || checksum(m).to_string() != a.checksum => {
                    ins.diverged.push(format!(
                        "V{} {} was edited after it was applied ({} has checksum {}, the database recorded {} {})",
                        a.version,
                        m.name,
                        m.file,
                        checksum(m),
                        a.name,
                        a.checksum
                    ))
                }
                Some(_) => {}
            }
        }
    }
    for m in &set.migs {
        if applied.contains(&m.version) {
            continue;
        }
        if m.version <= ins.version {
            ins.missing.push(format!(
                "V{} {} ({}) was never applied but the database is already at V{}",
                m.version, m.name, m.file, ins.version
            ));
        } else if m.version <= target {
            ins.pending.push(m.version);
        }
    }
    ins
}

/// The `CREATE` statements of a database, in creation order, for a scratch copy.
fn schema_sql(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
    )?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// FNV-1a, 64 bits: the form of fingerprints recorded before they were tagged (read only).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Length-delimited, so that ("ab","c") and ("a","bc") differ.
        for x in (b.len() as u64).to_le_bytes() {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The tag of `content_hash`'s current form (`core::fingerprint`).
const CONTENT_HASH_TAG: &str = "xxh3:";

/// A fingerprint of a database's logical content (schema and every row), independent of how
/// pages sit between the main file and the WAL, and of what only describes the content: the
/// statistics `ANALYZE` keeps (`sqlite_stat*`, written by `tenant vacuum` and the API's
/// `PRAGMA optimize`) and the order pages happen to hold rows in (rows are read in rowid order,
/// or primary-key order for WITHOUT ROWID tables). Tagged `xxh3:`; used by undo to tell whether
/// a tenant changed since the run that migrated it.
pub fn content_hash(conn: &Connection) -> rusqlite::Result<String> {
    let mut h = crate::core::fingerprint::Fingerprint::default();
    let mut field = |b: &[u8]| {
        // Length-delimited, so that ("ab","c") and ("a","bc") differ.
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    let mut tables: Vec<(String, bool)> = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT m.type, m.name, coalesce(m.sql, ''), coalesce(t.wr, 0) FROM sqlite_master m \
             LEFT JOIN pragma_table_list t ON t.schema = 'main' AND t.name = m.name \
             WHERE m.name NOT LIKE 'sqlite\\_stat%' ESCAPE '\\' ORDER BY m.type, m.name",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (t, n, s): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            field(t.as_bytes());
            field(n.as_bytes());
            field(s.as_bytes());
            if t == "table" && !s.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
                tables.push((n, r.get::<_, i64>(3)? != 0));
            }
        }
    }
    for (t, without_rowid) in tables {
        field(t.as_bytes());
        let order = if without_rowid {
            let mut st =
                conn.prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")?;
            let pk = st
                .query_map([&t], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            pk.iter()
                .map(|c| db::quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            "_rowid_".to_string()
        };
        let mut st = conn.prepare(&format!(
            "SELECT * FROM {} ORDER BY {order}",
            db::quote_ident(&t)
        ))?;
        let n = st.column_count();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            for i in 0..n {
                match r.get_ref(i)? {
                    ValueRef::Null => field(b"n"),
                    ValueRef::Integer(v) => field(&[b"i".as_slice(), &v.to_le_bytes()].concat()),
                    ValueRef::Real(v) => field(&[b"r".as_slice(), &v.to_le_bytes()].concat()),
                    ValueRef::Text(v) => field(&[b"t".as_slice(), v].concat()),
                    ValueRef::Blob(v) => field(&[b"b".as_slice(), v].concat()),
                }
            }
        }
    }
    Ok(h.finish())
}

/// Whether a database's content is what a fingerprint recorded. Fingerprints of runs made
/// before the tag (16 hex digits, FNV over unordered rows and statistics) are compared in
/// their own form, so that those runs can still be undone.
fn content_is(conn: &Connection, recorded: &str) -> rusqlite::Result<bool> {
    if recorded.starts_with(CONTENT_HASH_TAG) {
        return Ok(content_hash(conn)? == recorded);
    }
    Ok(legacy_content_hash(conn)? == recorded)
}

/// The untagged fingerprint of runs recorded before `content_hash` was tagged.
fn legacy_content_hash(conn: &Connection) -> rusqlite::Result<String> {
    let mut h = Fnv::new();
    let mut tables = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (t, n, s): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            h.bytes(t.as_bytes());
            h.bytes(n.as_bytes());
            h.bytes(s.as_bytes());
            if t == "table" && !s.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
                tables.push(n);
            }
        }
    }
    for t in tables {
        h.bytes(t.as_bytes());
        let mut st = conn.prepare(&format!("SELECT * FROM {}", db::quote_ident(&t)))?;
        let n = st.column_count();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            for i in 0..n {
                match r.get_ref(i)? {
                    ValueRef::Null => h.bytes(b"n"),
                    ValueRef::Integer(v) => h.bytes(&[b"i".as_slice(), &v.to_le_bytes()].concat()),
                    ValueRef::Real(v) => h.bytes(&[b"r".as_slice(), &v.to_le_bytes()].concat()),
                    ValueRef::Text(v) => h.bytes(&[b"t".as_slice(), v].concat()),
                    ValueRef::Blob(v) => h.bytes(&[b"b".as_slice(), v].concat()),
                }
            }
        }
    }
    Ok(format!("{:016x}", h.0))
}

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
struct Target {
    name: String,
    database: String,
    schema: String,
}

impl Target {
    /// The tenant's file: in the data directory, or, for a PostgreSQL registry's SQLite
    /// tenant, under `--sqlite-data-dir`.
    fn path(&self, ws: &Workspace) -> Result<PathBuf> {
        ws.sqlite_layout()?
            .tenant_path(&self.database, &self.schema)
    }
}

/// How many tenants the registry is read at a time during a run.
const PAGE: usize = 512;

/// The tenants of a run, in name order: the ones named, or the fleet read from the registry a
/// page at a time (a run over 100,000 tenants holds a page, not 100,000 rows).
enum Targets<'a> {
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
    fn next(&mut self) -> Result<Option<Target>> {
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
fn select<'a>(reg: &'a Registry, sel: &Selection) -> Result<(Targets<'a>, usize, usize)> {
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

/// Runs `f` over the targets on `jobs` threads and hands each outcome to `emit`, on this
/// thread, in the targets' order, as soon as it and every one before it are done. Memory holds
/// the tenants in flight (a few per job), not the fleet. With `fail_fast`, no tenant starts after
/// the first failure; the names of those not started are returned, in order.
#[allow(clippy::too_many_arguments)]
fn pool<T: Send>(
    targets: &mut Targets<'_>,
    total: usize,
    jobs: usize,
    fail_fast: bool,
    progress: &dyn Progress,
    label: &str,
    f: impl Fn(&Target) -> Result<T> + Sync,
    emit: &mut dyn FnMut(Outcome<T>),
) -> Result<Vec<String>> {
    use std::sync::mpsc::{self, TrySendError};
    let stop = AtomicBool::new(false);
    let jobs = jobs.clamp(1, total.max(1));
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Target)>(jobs * 2);
    let work_rx = Mutex::new(work_rx);
    // `None`: not started (the run stopped first).
    type Done<T> = (usize, String, Option<Result<T>>);
    let (done_tx, done_rx) = mpsc::channel::<Done<T>>();
    progress.start(total as u64, label);
    let mut not_started = Vec::new();
    let mut feed_error = None;
    let mut held: Option<Target> = None;
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            let (work_rx, stop, f) = (&work_rx, &stop, &f);
            s.spawn(move || loop {
                let job = match work_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => break,
                };
                let Ok((i, t)) = job else { break };
                let r = (!stop.load(Ordering::SeqCst)).then(|| f(&t));
                if fail_fast && matches!(r, Some(Err(_))) {
                    stop.store(true, Ordering::SeqCst);
                }
                if done_tx.send((i, t.name, r)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        let mut work_tx = Some(work_tx);
        let (mut sent, mut received, mut next_out) = (0usize, 0usize, 0usize);
        let mut ready: BTreeMap<usize, (String, Option<Result<T>>)> = BTreeMap::new();
        loop {
            // Keep the workers' queue full; the rest of the fleet stays in the registry.
            while let Some(tx) = &work_tx {
                if stop.load(Ordering::SeqCst) {
                    work_tx = None;
                    break;
                }
                let next = match held.take() {
                    Some(t) => Some(t),
                    None => match targets.next() {
                        Ok(t) => t,
                        Err(e) => {
                            feed_error = Some(e);
                            stop.store(true, Ordering::SeqCst);
                            None
                        }
                    },
                };
                let Some(t) = next else {
                    work_tx = None;
                    break;
                };
                match tx.try_send((sent, t)) {
                    Ok(()) => sent += 1,
                    Err(TrySendError::Full((_, t))) => {
                        held = Some(t);
                        break;
                    }
                    Err(TrySendError::Disconnected((_, t))) => {
                        held = Some(t);
                        work_tx = None;
                    }
                }
            }
            if work_tx.is_none() && received == sent {
                break;
            }
            let Ok((i, name, r)) = done_rx.recv() else {
                break;
            };
            received += 1;
            progress.advance(1, &name);
            ready.insert(i, (name, r));
            while let Some((name, r)) = ready.remove(&next_out) {
                next_out += 1;
                match r {
                    Some(r) => emit(Outcome::of(name, r)),
                    None => not_started.push(name),
                }
            }
        }
    });
    progress.finish();
    if let Some(e) = feed_error {
        return Err(e);
    }
    // Stopped early: the tenants never handed to a worker are not started either.
    if stop.load(Ordering::SeqCst) {
        not_started.extend(held.map(|t| t.name));
        while let Some(t) = targets.next()? {
            not_started.push(t.name);
        }
    }
    Ok(not_started)
}

/// Destructive analyses already made, by schema and pending migrations: tenants share a schema,
/// so a fleet costs one analysis per distinct schema. Each statement is limited to `limit`.
struct Analyses {
    done: Mutex<HashMap<String, std::result::Result<Vec<Finding>, Failure>>>,
    limit: Duration,
}

impl Analyses {
    fn new(limit: Duration) -> Analyses {
        Analyses {
            done: Mutex::new(HashMap::new()),
            limit,
        }
    }

    fn get(
        &self,
        schema: &[String],
        pending: &[&Mig],
    ) -> Result<std::result::Result<Vec<Finding>, Failure>> {
        let mut h = Fnv::new();
        for s in schema {
            h.bytes(s.as_bytes());
        }
        let key = format!(
            "{:016x}:{}",
            h.0,
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

fn failure_message(f: &Failure, from: i64) -> String {
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
fn pending_anywhere(
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

// ---------------------------------------------------------------------------------------------
// status and plan

#[derive(Debug, Clone, Serialize)]
pub struct InfraStatus {
    /// The infra database file; `null` on PostgreSQL (the registry is schema `public`).
    pub path: Option<PathBuf>,
    pub version: i64,
    pub latest: i64,
    pub pending: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    /// The tenant's file; `null` on PostgreSQL (the tenant is its schema).
    pub path: Option<PathBuf>,
    #[serde(flatten)]
    pub inspection: Inspection,
    /// Another process holds the database's write lock or its migration lock (plan only).
    pub locked: bool,
    /// Destructive statements among the pending migrations (plan only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destructive: Vec<Finding>,
    /// A pending statement that fails on a copy of this tenant's schema (plan only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_fail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigInfo {
    pub version: i64,
    pub name: String,
    pub file: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub tenants: usize,
    /// Tenants at each applied version.
    pub by_version: BTreeMap<i64, usize>,
    pub up_to_date: usize,
    pub pending: usize,
    pub adopt: usize,
    pub diverged: usize,
    pub missing: usize,
    pub locked: usize,
    pub destructive: usize,
    pub would_fail: usize,
    /// Tenants that could not be read (missing file, corrupt, unreadable).
    pub failed: usize,
    pub corrupt: usize,
    /// Trashed and deleted tenants left out.
    pub skipped: usize,
}

impl Summary {
    /// Counts one tenant's outcome of a survey (both backends).
    fn add(&mut self, o: &Outcome<TenantStatus>) {
        self.tenants += 1;
        match &o.result {
            Some(st) => {
                let i = &st.inspection;
                *self.by_version.entry(i.version).or_default() += 1;
                self.pending += usize::from(!i.pending.is_empty());
                self.up_to_date += usize::from(i.pending.is_empty());
                self.adopt += usize::from(i.adopt);
                self.diverged += usize::from(!i.diverged.is_empty());
                self.missing += usize::from(!i.missing.is_empty());
                self.locked += usize::from(st.locked);
                self.destructive += usize::from(!st.destructive.is_empty());
                self.would_fail += usize::from(st.would_fail.is_some());
            }
            None => {
                self.failed += 1;
                self.corrupt += usize::from(o.exit_code == exit::CORRUPT);
            }
        }
    }
}

/// What a survey is about, known before any tenant is read (the head of its JSON).
#[derive(Debug, Clone, Serialize)]
pub struct SurveyHead {
    pub infra: InfraStatus,
    pub target: i64,
    pub migrations: Vec<MigInfo>,
    /// The holder of the run lock when a run is in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_in_progress: Option<Holder>,
}

/// A survey once every tenant was handed to the sink.
#[derive(Debug, Clone)]
pub struct Survey {
    pub head: SurveyHead,
    pub tenants: Tally,
    pub summary: Summary,
}

impl Survey {
    /// `migrate plan`'s exit code: diverged or missing migrations first, then corrupt files,
    /// locked databases, any other failure; 0 when every tenant can be migrated.
    pub fn plan_exit_code(&self) -> i32 {
        let s = &self.summary;
        if s.diverged + s.missing > 0 {
            exit::DIVERGED
        } else if s.corrupt > 0 {
            exit::CORRUPT
        } else if s.locked > 0 || self.head.run_in_progress.is_some() {
            exit::BUSY
        } else if s.failed > 0 {
            self.tenants.exit_code()
        } else if s.would_fail > 0 {
            exit::FAILURE
        } else {
            exit::SUCCESS
        }
    }
}

/// Options shared by the commands that visit tenants.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub selection: Selection,
    pub target: Option<i64>,
    pub jobs: usize,
    pub fail_fast: bool,
    pub allow_destructive: bool,
    /// How long to wait for a tenant database another process is writing.
    pub busy_timeout: Duration,
    /// The time limit of each migration statement on a tenant (`up`).
    pub statement_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            selection: Selection::default(),
            target: None,
            jobs: default_jobs(),
            fail_fast: false,
            allow_destructive: false,
            busy_timeout: db::BUSY_TIMEOUT,
            statement_timeout: guard::STATEMENT_TIMEOUT,
        }
    }
}

/// Four jobs per core (at most 64): a tenant's migration spends most of its time waiting for
/// the disk (the WAL checkpoint syncs when the connection closes), not on the CPU, so one job
/// per core leaves the cores idle. Measured on 2 cores, 300 tenants: 4.8 s with 2 jobs, 1.0 s
/// with 8.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .saturating_mul(4)
        .min(64)
}

fn run_lock_path(ws: &Workspace) -> PathBuf {
    ws.layout.locks_dir().join("migrate.lock")
}

fn infra_status(reg: &Registry) -> Result<InfraStatus> {
    let version: i64 = if has_table(&reg.conn, HISTORY_TABLE).at(&reg.path)? {
        reg.conn
            .query_row(
                "SELECT coalesce(max(version), 0) FROM refinery_schema_history",
                [],
                |r| r.get(0),
            )
            .at(&reg.path)?
    } else {
        0
    };
    let latest = Registry::latest_version();
    Ok(InfraStatus {
        path: Some(reg.path.clone()),
        version,
        latest,
        pending: version < latest,
    })
}

/// `migrate status` (`plan == false`) and `migrate plan`: where every selected tenant stands;
/// the plan also analyses pending statements and looks for locks. Writes nothing.
pub fn survey(
    ws: &Workspace,
    set: &MigrationSet,
    opts: &RunOptions,
    plan: bool,
    progress: &dyn Progress,
    sink: &mut dyn RunSink<SurveyHead, TenantStatus>,
) -> Result<Survey> {
    if let super::Backend::Postgres(t) = &ws.backend {
        return postgres::survey(ws, t, set, opts, plan, progress, sink);
    }
    let target = set.target(opts.target)?;
    if plan {
        guard_set(ws, set, target, &opts.selection, guard::ANALYSIS_TIMEOUT)?;
    }
    let reg = ws.registry()?;
    let infra = infra_status(&reg)?;
    let (mut targets, selected, skipped) = select(&reg, &opts.selection)?;
    let run_lock = run_lock_path(ws);
    let run_in_progress = match lock::inspect(&run_lock) {
        Ok(LockState::Held { holder }) => Some(holder.unwrap_or(Holder {
            pid: 0,
            host: String::new(),
            command: "unknown".into(),
            since: String::new(),
        })),
        _ => None,
    };
    let head = SurveyHead {
        infra,
        target,
        migrations: set.infos(),
        run_in_progress,
    };
    sink.begin(&head);
    let mut summary = Summary {
        skipped,
        ..Summary::default()
    };
    let mut tally = Tally::default();
    let analyses = Analyses::new(guard::ANALYSIS_TIMEOUT);
    pool(
        &mut targets,
        selected,
        opts.jobs,
        false,
        progress,
        if plan { "planning" } else { "reading" },
        |t| survey_one(ws, set, opts, target, plan, &analyses, t),
        &mut |o: Outcome<TenantStatus>| {
            summary.add(&o);
            tally.add(&o);
            sink.outcome(o);
        },
    )?;
    Ok(Survey {
        head,
        tenants: tally,
        summary,
    })
}
/// Where one SQLite tenant stands (`status`), and with `plan` what `up` would do to it.
fn survey_one(
    ws: &Workspace,
    set: &MigrationSet,
    opts: &RunOptions,
    target: i64,
    plan: bool,
    analyses: &Analyses,
    t: &Target,
) -> Result<TenantStatus> {
    let path = t.path(ws)?;
    if !plan {
        let ins = db::read_quietly(&path, |conn, path| {
            conn.busy_timeout(opts.busy_timeout).at(path)?;
            inspect(conn, path, set, target)
        })?;
        return Ok(TenantStatus {
            path: Some(path),
            inspection: ins,
            locked: false,
            destructive: Vec::new(),
            would_fail: None,
        });
    }
    // Whether `up` would find the write lock held for all of its busy timeout, asked
    // without taking the lock (that would fail the API's requests), before this
    // process opens the file.
    let locked = db::write_lock_held_elsewhere(&path, opts.busy_timeout);
    let (ins, schema) = db::read_quietly(&path, |conn, path| {
        conn.busy_timeout(opts.busy_timeout).at(path)?;
        let ins = inspect(conn, path, set, target)?;
        let schema = if ins.pending.is_empty() {
            None
        } else {
            Some(schema_sql(conn).at(path)?)
        };
        Ok((ins, schema))
    })?;
    let mut st = TenantStatus {
        path: Some(path.clone()),
        inspection: ins,
        locked,
        destructive: Vec::new(),
        would_fail: None,
    };
    if let Some(schema) = schema {
        let pending: Vec<&Mig> = st
            .inspection
            .pending
            .iter()
            .filter_map(|v| set.get(*v))
            .collect();
        if !pending.is_empty() {
            match analyses.get(&schema, &pending)? {
                Ok(f) => st.destructive = f,
                Err(f) if f.kind == FailKind::Failed => {
                    st.would_fail = Some(failure_message(&f, st.inspection.version))
                }
                Err(f) => {
                    let from = st.inspection.version;
                    return Err(f.error(|f| Error::Other(failure_message(f, from))));
                }
            }
        }
    }
    Ok(st)
}

/// `status`/`plan` of a PostgreSQL registry's SQLite tenants (`--sqlite-data-dir`), after its
/// schemas: each file read as on a SQLite deployment.
#[allow(clippy::too_many_arguments)]
fn survey_files(
    ws: &Workspace,
    set: &MigrationSet,
    opts: &RunOptions,
    target: i64,
    plan: bool,
    files: Vec<Target>,
    progress: &dyn Progress,
    emit: &mut dyn FnMut(Outcome<TenantStatus>),
) -> Result<()> {
    let n = files.len();
    let analyses = Analyses::new(guard::ANALYSIS_TIMEOUT);
    pool(
        &mut Targets::Named(files.into_iter()),
        n,
        opts.jobs,
        false,
        progress,
        if plan { "planning" } else { "reading" },
        |t| survey_one(ws, set, opts, target, plan, &analyses, t),
        emit,
    )?;
    Ok(())
}

/// `up` of a PostgreSQL registry's SQLite tenants (`--sqlite-data-dir`), after its schemas:
/// each file migrated as on a SQLite deployment (one transaction under its write lock, the
/// guard, its history). A destructive migration is refused there even with
/// `--allow-destructive` (the run's undo restores schemas, not files); the names of those not
/// started (`--fail-fast`) are returned.
#[allow(clippy::too_many_arguments)]
fn up_files(
    ws: &Workspace,
    set: &MigrationSet,
    opts: &RunOptions,
    target: i64,
    files: Vec<Target>,
    run_dir: &Path,
    progress: &dyn Progress,
    emit: &mut dyn FnMut(Outcome<TenantUp>),
) -> Result<Vec<String>> {
    let n = files.len();
    let asked = opts.allow_destructive;
    let opts = RunOptions {
        allow_destructive: false,
        ..opts.clone()
    };
    let cx = UpCtx {
        ws,
        set,
        target,
        opts: &opts,
        analyses: Analyses::new(opts.statement_timeout),
        run: RunDir {
            dir: run_dir.to_path_buf(),
            manifest: Mutex::new(None),
        },
    };
    pool(
        &mut Targets::Named(files.into_iter()),
        n,
        opts.jobs,
        opts.fail_fast,
        progress,
        "migrating",
        |t| {
            up_one(&cx, t).map_err(|e| match e {
                Error::Destructive(m) if asked => Error::Destructive(format!(
                    "{m}; --allow-destructive does not apply to a SQLite tenant of a PostgreSQL registry (the run's undo restores schemas only): migrate its file from a SQLite deployment, or move it onto PostgreSQL with `monkctl tenant copy`"
                )),
                other => other,
            })
        },
        emit,
    )
}

/// The destructive findings of the migrations up to `target`, on a baseline tenant: what a run
/// may do, for the confirmation before `up --allow-destructive`.
pub fn destructive_in_set(set: &MigrationSet, target: Option<i64>) -> Result<Vec<Finding>> {
    let target = set.target(target)?;
    let mut scratch = destructive::scratch_baseline()
        .map_err(|e| Error::Other(format!("could not build a baseline for analysis: {e}")))?;
    let migs: Vec<&Mig> = set
        .migs
        .iter()
        .filter(|m| m.version > 1 && m.version <= target)
        .collect();
    destructive::analyse(&mut scratch, &migs, guard::ANALYSIS_TIMEOUT, false)
        .map_err(|f| f.error(|f| Error::Other(failure_message(f, 1))))
}

// ---------------------------------------------------------------------------------------------
// up

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
    fn add(&mut self, o: &Outcome<TenantUp>) {
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

struct RunDir {
    dir: PathBuf,
    manifest: Mutex<Option<fs::File>>,
}

impl RunDir {
    fn ensure(&self) -> Result<()> {
        fsutil::create_private_dir(&self.dir)
    }

    /// Appends a line and syncs it: written before the tenant's commit, so a crash can leave a
    /// line for a tenant that was rolled back (undo then finds it unchanged from before and
    /// skips it), never a committed tenant without its line.
    fn append(&self, line: &ManifestLine) -> Result<()> {
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

fn snapshots_dir(ws: &Workspace) -> PathBuf {
    ws.layout.snapshots_dir()
}

/// Copies the database through SQLite's backup API from a second connection: the migrating
/// connection holds the write lock, so what this reads is exactly the state the migration
/// starts from. The copy is written beside, synced, then renamed into place (0600).
fn take_snapshot(path: &Path, run: &RunDir, t: &Target, wait: Duration) -> Result<PathBuf> {
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
fn run_statements(
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

fn record_applied(conn: &Connection, path: &Path, m: &Mig) -> Result<()> {
    conn.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (?1, ?2, ?3, ?4)",
        params![m.version, m.name, ids::now_iso(), m.checksum.to_string()],
    )
    .map(|_| ())
    .at(path)
}

struct UpCtx<'a> {
    ws: &'a Workspace,
    set: &'a MigrationSet,
    target: i64,
    opts: &'a RunOptions,
    analyses: Analyses,
    run: RunDir,
}

fn up_one(cx: &UpCtx<'_>, t: &Target) -> Result<TenantUp> {
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

fn refuse_diverged(ins: &Inspection, path: &Path) -> Result<()> {
    refuse_unknown(
        ins,
        path,
        "restore the original migration files (or the database) before migrating",
    )
}

fn refuse_unknown(ins: &Inspection, path: &Path, fix: &str) -> Result<()> {
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

fn up_in_tx(
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
    if let super::Backend::Postgres(t) = &ws.backend {
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

// ---------------------------------------------------------------------------------------------
// undo and snapshots

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
    pub tenants: usize,
    /// Tenants an `undo` of this run would still restore (all of them until a first undo).
    pub to_restore: usize,
    pub bytes: u64,
    pub undone: bool,
    pub modified: String,
}

fn read_manifest(dir: &Path) -> Result<Vec<ManifestLine>> {
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
fn run_order(id: &str) -> (&str, u64, &str) {
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
fn new_run_id(dir: &Path, now: SystemTime) -> String {
    let existing: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    next_run_id(&existing, now, &ids::uuid_v4()[..8])
}

fn next_run_id(existing: &[String], now: SystemTime, rand: &str) -> String {
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

fn restore_one(
    ws: &Workspace,
    run: &Path,
    l: &ManifestLine,
    timeout: Duration,
) -> Result<Restored> {
    names::path_component("snapshot", &l.snapshot)?;
    if let super::Backend::Postgres(t) = &ws.backend {
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
struct Undone {
    undone_at: String,
    /// Tenants whose snapshot was put back.
    restored: Vec<String>,
    /// Tenants changed since the run, left alone on purpose.
    left: Vec<String>,
    /// Tenants that could not be restored for another reason (a full disk, a lock held): the
    /// run stays open, and the next `undo` tries these again.
    failed: Vec<String>,
}

/// The undo record of a run: `None` when it was never undone. A record this version cannot
/// read (an older monkctl's) counts as a run undone whole.
fn read_undone(run: &Path) -> Option<Undone> {
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
        super::pause_point("migrate.undo.restored");
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

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_sort_by_creation_within_one_second_and_after_a_clock_set_back() {
        use std::time::{Duration, UNIX_EPOCH};
        let t = UNIX_EPOCH + Duration::from_secs(1_795_404_353);
        let mut ids: Vec<String> = Vec::new();
        // Random parts that sort against creation order: the sequence must decide.
        for (i, rand) in ["ffffffff", "00000000", "88888888"].iter().enumerate() {
            let id = super::next_run_id(&ids, t + Duration::from_millis(i as u64 * 10), rand);
            ids.push(id);
        }
        assert_eq!(
            ids,
            [
                "20261123T032553Z-0000-ffffffff",
                "20261123T032553Z-0001-00000000",
                "20261123T032553Z-0002-88888888"
            ]
        );
        // The clock went back an hour: the next run still sorts last.
        let back = super::next_run_id(&ids, t - Duration::from_secs(3600), "00000000");
        assert_eq!(back, "20261123T032553Z-0003-00000000");
        // A later second starts again at 0; an older monkctl's id sorts by its stamp.
        let later = super::next_run_id(&ids, t + Duration::from_secs(1), "0");
        assert_eq!(later, "20261123T032554Z-0000-0");
        let legacy = "20261123T032553Z-9abcdef0".to_string();
        let mut all = vec![
            later.clone(),
            legacy.clone(),
            ids[1].clone(),
            ids[0].clone(),
        ];
        all.sort_by(|a, b| super::run_order(a).cmp(&super::run_order(b)));
        assert_eq!(all, [legacy, ids[0].clone(), ids[1].clone(), later]);
        // Stray files in the snapshots directory do not count.
        let stray = vec![".x.monktmp-1-2".to_string(), "notes.txt".to_string()];
        assert_eq!(
            super::next_run_id(&stray, t, "aa"),
            "20261123T032553Z-0000-aa"
        );
    }

    use super::*;

    #[test]
    fn file_names_follow_refinery_rule() {
        assert_eq!(parse_file_name("V2__add_x.sql"), Some((2, "add_x")));
        assert_eq!(parse_file_name("V10__a__b.sql"), Some((10, "a__b")));
        for bad in [
            "v2__x.sql",
            "V2_x.sql",
            "V2__x.SQL",
            "V__x.sql",
            "V0__x.sql",
            "V2__.sql",
            "V2__a-b.sql",
            "U2__x.sql",
            "README.md",
            "V99999999999__x.sql",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn checksums_match_refinery_and_history_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("V2__add_col.sql"),
            "ALTER TABLE users ADD COLUMN nick TEXT;",
        )
        .unwrap();
        let set = MigrationSet::load(Some(dir.path())).unwrap();
        let m = set.get(2).unwrap();
        let rm = refinery::Migration::unapplied("V2__add_col", &m.sql).unwrap();
        assert_eq!(m.checksum, rm.checksum());
        let p = dir.path().join("t.db");
        // A tenant built at the set's latest version runs V2 and records the whole history.
        system::build(&p, "root", &set).unwrap();
        let conn = Connection::open(&p).unwrap();
        let nick: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'nick'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(nick, 1);
        // refinery agrees the database is fully migrated and finds nothing to apply.
        let mut conn = conn;
        let runner = refinery::Runner::new(
            &set.migs
                .iter()
                .map(|m| {
                    refinery::Migration::unapplied(&format!("V{}__{}", m.version, m.name), &m.sql)
                        .unwrap()
                })
                .collect::<Vec<_>>(),
        );
        let applied = runner.get_applied_migrations(&mut conn).unwrap();
        assert_eq!(applied.len(), 2);
        let report = runner.run(&mut conn).unwrap();
        assert!(report.applied_migrations().is_empty());
    }

    #[test]
    fn content_hash_ignores_statistics_and_row_placement_and_reads_old_runs() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (a, b); CREATE INDEX t_a ON t (a);
             CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
             INSERT INTO t VALUES (1, 'x'), (2, 'y'); INSERT INTO w VALUES ('b', 1), ('a', 2);",
        )
        .unwrap();
        let h = content_hash(&c).unwrap();
        assert!(h.starts_with(CONTENT_HASH_TAG), "{h}");
        let legacy = legacy_content_hash(&c).unwrap();
        // ANALYZE (tenant vacuum, the API's PRAGMA optimize) writes statistics, not content.
        c.execute_batch("ANALYZE").unwrap();
        assert_eq!(content_hash(&c).unwrap(), h);
        assert_ne!(legacy_content_hash(&c).unwrap(), legacy);
        // A run recorded before the tag is compared in its own form.
        let c2 = Connection::open_in_memory().unwrap();
        c2.execute_batch("CREATE TABLE t (a); INSERT INTO t VALUES (1);")
            .unwrap();
        let old = legacy_content_hash(&c2).unwrap();
        assert!(content_is(&c2, &old).unwrap());
        c2.execute_batch("UPDATE t SET a = 2").unwrap();
        assert!(!content_is(&c2, &old).unwrap());
    }

    #[test]
    fn content_hash_sees_any_row_change() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a, b); INSERT INTO t VALUES (1, 'x');")
            .unwrap();
        let h1 = content_hash(&c).unwrap();
        assert_eq!(h1, content_hash(&c).unwrap());
        c.execute_batch("UPDATE t SET b = 'y'").unwrap();
        assert_ne!(h1, content_hash(&c).unwrap());
    }
}
