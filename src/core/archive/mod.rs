//! Tenant archives: `extract` a live tenant to one portable SQLite file, `inspect` and `verify`
//! such a file, and `restore` it as a new tenant or over an existing one.
//!
//! An archive is the tenant's own database (same tables, same pages, `journal_mode=DELETE`, no
//! WAL) plus one table, `_monk_archive` (key/value, JSON values), that records the registry row,
//! the fixtures, the schema version, where and when it was made, row counts and a content
//! checksum. So any `sqlite3` can read an archive, and `verify` can tell damage apart.
//!
//! Rules this module keeps: a live tenant database is written only through SQLite, into the
//! open database in one transaction (`db::Replacement`), and read only as SQLite sees it:
//! through the backup API, or, when its WAL holds nothing, as its file's bytes while an open
//! SQLite read transaction (or the write lock) keeps every checkpoint from writing the file,
//! read through SQLite's own handle on it (`db::read_main_file`), never the file and its `-wal`
//! separately and never by opening the file beside SQLite; every file it makes is written beside
//! its final name, synced, then renamed or linked; a restore computes every path from the layout
//! and validated names, never from what the archive says; memory stays bounded whatever the
//! tenant's size (SQLite copies page by page, the checksum streams row by row).

pub mod crossing;
mod postgres;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::db;
use super::error::{Context, Error, Result};
use super::fsutil;
use super::ids;
use super::lock::{self, Lock};
use super::migrate::{self, MigrationSet};
use super::names;
use super::progress::Progress;
use super::registry::{FixtureRow, TenantRow};
use super::schema;
use super::tenant::{self, Built, CreateSpec};
use super::{Batch, Workspace};

/// The metadata table every archive carries.
pub const META_TABLE: &str = "_monk_archive";
/// The value of the `format` key: what kind of file this is.
pub const FORMAT_NAME: &str = "monkctl-tenant-archive";
/// The newest archive format this monkctl reads (and writes for a PostgreSQL tenant; an
/// archive of a SQLite tenant is version 1, which every monkctl reads).
pub const FORMAT_VERSION: i64 = 2;
/// The suffix of archive file names.
pub const SUFFIX: &str = ".monk.db";

/// Ends the name of the copy `restore --force` saves in the trash before replacing a tenant.
pub const BEFORE_RESTORE_SUFFIX: &str = ".before-restore.monk.db";
/// The name of the content checksum algorithm, recorded in front of the digest.
pub const CHECKSUM_ALGORITHM: &str = "lanes64";

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// How long a copy into a live database waits for the API to let go of its write lock.
const LIVE_WRITE_WAIT: Duration = Duration::from_secs(60);

/// What an archive records about the tenant it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    pub format: String,
    pub format_version: i64,
    /// The tenant's registry row when the archive was made.
    pub tenant: TenantRow,
    /// Its `tenant_fixtures` rows.
    pub fixtures: Vec<FixtureRow>,
    /// Its schema version (`core::schema::tenant_version`).
    pub schema_version: i64,
    pub created_at: String,
    pub host: String,
    pub monkctl_version: String,
    /// Rows per tenant table, by table name.
    pub row_counts: BTreeMap<String, i64>,
    /// `lanes64:<16 hex digits>`, over the content (see `Checksum`).
    pub checksum: String,
    /// `postgresql` for an archive of a PostgreSQL tenant; absent (SQLite) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_backend: Option<String>,
    /// For an archive of a PostgreSQL tenant: every table's columns and their PostgreSQL types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_columns: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

// ---------------------------------------------------------------------------------------------
// The content checksum.
// ---------------------------------------------------------------------------------------------

/// A streaming 64-bit hash over four independent 64-bit lanes ("lanes64").
///
/// Input is consumed in 32-byte blocks, one little-endian word per lane; each lane steps as
/// `lane = rotl((lane ^ word) * P1, 31) * P2`. Every step is a bijection of the lane for a fixed
/// word and of the word for a fixed lane, so changing any one block changes that lane's state for
/// certain, and no later block can undo it: a flipped byte is always visible in the lanes (the
/// final 64-bit fold can collide only by chance, 2^-64). Four lanes let the CPU run the
/// multiplications in parallel, so hashing runs at memory speed, unlike byte-at-a-time FNV.
/// The tail is zero-padded and the total length is folded in, so padding cannot collide.
#[derive(Clone)]
pub struct Checksum {
    lanes: [u64; 4],
    buf: [u8; 32],
    buf_len: usize,
    total: u64,
}

const P1: u64 = 0x9E37_79B9_7F4A_7C15;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;

fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum {
            lanes: [
                0x243F_6A88_85A3_08D3,
                0x1319_8A2E_0370_7344,
                0xA409_3822_299F_31D0,
                0x082E_FA98_EC4E_6C89,
            ],
            buf: [0; 32],
            buf_len: 0,
            total: 0,
        }
    }
}

impl Checksum {
    fn block(&mut self, b: &[u8]) {
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            let w = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            *lane = ((*lane ^ w).wrapping_mul(P1))
                .rotate_left(31)
                .wrapping_mul(P2);
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (32 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 32 {
                return;
            }
            let b = self.buf;
            self.block(&b);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(32);
        for c in &mut chunks {
            self.block(c);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub fn finish(&self) -> u64 {
        let mut me = self.clone();
        if me.buf_len > 0 {
            let mut b = [0u8; 32];
            b[..me.buf_len].copy_from_slice(&me.buf[..me.buf_len]);
            me.block(&b);
        }
        let mut h = mix64(me.total ^ P2);
        for lane in me.lanes {
            h = mix64(h ^ mix64(lane)).wrapping_mul(P1);
        }
        mix64(h)
    }

    fn value(&mut self, v: ValueRef<'_>) {
        match v {
            ValueRef::Null => self.update(&[0]),
            ValueRef::Integer(i) => {
                self.update(&[1]);
                self.update(&i.to_le_bytes());
            }
            ValueRef::Real(f) => {
                self.update(&[2]);
                self.update(&f.to_bits().to_le_bytes());
            }
            ValueRef::Text(t) => {
                self.update(&[3]);
                self.update(&(t.len() as u64).to_le_bytes());
                self.update(t);
            }
            ValueRef::Blob(b) => {
                self.update(&[4]);
                self.update(&(b.len() as u64).to_le_bytes());
                self.update(b);
            }
        }
    }
}

/// The content of a tenant database as the checksum and row counts see it.
struct Content {
    checksum: String,
    row_counts: BTreeMap<String, i64>,
}

/// Hashes a tenant database's content in a fixed order: first the `sql` of every schema entry
/// (but the metadata table) ordered by type and name; then each table in name order (byte
/// order), its name and column count, then each row in rowid order (primary-key order for
/// `WITHOUT ROWID` tables), the rowid first, each value as a type tag, a length for text and
/// blobs, and its bytes (integers and reals as 8 little-endian bytes). Reads one row at a time.
fn content_of(conn: &Connection, path: &Path) -> Result<Content> {
    let mut h = Checksum::default();
    {
        let mut st = conn
            .prepare(
                "SELECT type, name, coalesce(sql, '') FROM sqlite_master \
                 WHERE name <> ?1 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
            )
            .at(path)?;
        let mut rows = st.query([META_TABLE]).at(path)?;
        while let Some(r) = rows.next().at(path)? {
            for i in 0..3 {
                h.value(r.get_ref(i).at(path)?);
            }
        }
    }
    let tables: Vec<(String, bool)> = {
        let mut st = conn
            .prepare(
                "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
                 AND name <> ?1 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )
            .at(path)?;
        let rows = st
            .query_map([META_TABLE], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))
            .at(path)?;
        rows.collect::<rusqlite::Result<_>>().at(path)?
    };
    let mut row_counts = BTreeMap::new();
    for (table, without_rowid) in tables {
        let q = db::quote_ident(&table);
        let sql = if without_rowid {
            format!("SELECT * FROM {q}")
        } else {
            format!("SELECT _rowid_, * FROM {q} ORDER BY _rowid_")
        };
        let mut st = conn.prepare(&sql).at(path)?;
        let ncols = st.column_count();
        h.value(ValueRef::Text(table.as_bytes()));
        h.update(&(ncols as u64).to_le_bytes());
        let mut rows = st.query([]).at(path)?;
        let mut n = 0i64;
        while let Some(r) = rows.next().at(path)? {
            for i in 0..ncols {
                h.value(r.get_ref(i).at(path)?);
            }
            n += 1;
        }
        row_counts.insert(table, n);
    }
    Ok(Content {
        checksum: format!("{CHECKSUM_ALGORITHM}:{:016x}", h.finish()),
        row_counts,
    })
}

// ---------------------------------------------------------------------------------------------
// Opening and copying.
// ---------------------------------------------------------------------------------------------

/// Opens an archive strictly for reading: `immutable=1`, so SQLite takes no lock and creates no
/// `-journal`, `-wal` or `-shm` beside it; the file is never changed.
fn open_archive(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        db::file_uri(path, "mode=ro&immutable=1"),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .at(path)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .at(path)?;
    Ok(conn)
}

/// Copies the file `from` (an archive: a file no SQLite connection of this process holds locks
/// on, see `db::read_main_file`) into the new private file `to`, by the kernel.
fn copy_file_bytes(from: &Path, to: &Path) -> Result<()> {
    let mut src = fs::File::open(from).at(from)?;
    // A new file (never one found at the temporary name): owner-only.
    let mut out = fsutil::create_private_file(to)?;
    std::io::copy(&mut src, &mut out).at(to)?;
    Ok(())
}

/// Copies the first `len` bytes of the main database file of `conn` (at `from`) into `to`, a
/// private temporary file this run created (`TempFile::held`), read through SQLite's own handle
/// on it (`db::read_main_file`: the live tenant is never opened beside SQLite).
fn copy_main_file(conn: &Connection, from: &Path, to: &Path, len: u64) -> Result<()> {
    use std::io::Write;
    let mut out = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(to)
        .at(to)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        db::read_main_file(conn, at, &mut buf[..n], from)?;
        out.write_all(&buf[..n]).at(to)?;
        at += n as u64;
    }
    Ok(())
}

/// Opens a new private file of our own for writing with no journal and no syncing: the file is
/// synced once when complete, and a crash leaves only a temporary file to discard.
fn open_scratch(path: &Path) -> Result<Connection> {
    if !path.exists() {
        fsutil::create_private_file(path)?;
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .at(path)?;
    conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
        .at(path)?;
    Ok(conn)
}

// ---------------------------------------------------------------------------------------------
// Extract.
// ---------------------------------------------------------------------------------------------

/// One archive written.
#[derive(Debug, Clone, Serialize)]
pub struct Extracted {
    pub tenant: String,
    pub path: PathBuf,
    pub size_bytes: u64,
    pub schema_version: i64,
    pub checksum: String,
    pub tables: usize,
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
    let results = parallel(&items, jobs, |(name, row)| {
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
        match (r, lookup) {
            (Some(r), _) => batch.push(name, r),
            (None, Some(e)) => batch.push(name, Err(e)),
            (None, None) => unreachable!("a tenant without a row has a lookup error"),
        }
    }
    Ok(batch)
}

type RowAndFixtures = (TenantRow, Vec<FixtureRow>);

/// Extracts the tenant of registry row `t` to `final_path`, on either backend.
fn extract_row(
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
        super::Backend::Sqlite => tenant::file_of(&ws.layout, t)
            .and_then(|live| extract_file(&live, t, fixtures, final_path, force)),
        super::Backend::Postgres(target) => ws
            .migration_set()
            .and_then(|set| postgres::extract(target, set, t, final_path, force)),
    }
}

/// Runs `f` over `items` on up to `jobs` threads; results in the items' order.
fn parallel<I: Sync, T: Send>(items: &[I], jobs: usize, f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                out.lock().expect("results")[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .expect("results")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
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
    if matches!(ws.backend, super::Backend::Postgres(_)) {
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

fn copy_registry(infra: &Path, final_path: &Path, force: bool) -> Result<Extracted> {
    check_free(final_path, force)?;
    let (mut tmp, _held) = fsutil::TempFile::held(final_path)?;
    // Read without a lock the API can trip on; a read that is done again copies anew.
    db::read_quietly(infra, |src, _| {
        let mut dst = open_scratch(tmp.path())?;
        db::backup_all(src, &mut dst, tmp.path(), LIVE_WRITE_WAIT)?;
        let jm: String = dst
            .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
            .at(tmp.path())?;
        if !jm.eq_ignore_ascii_case("delete") {
            return Err(Error::Other(format!(
                "{}: the registry copy stayed in journal mode '{jm}' instead of 'delete'; an archive must be one self-contained file",
                tmp.path().display()
            )));
        }
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

fn check_free(final_path: &Path, force: bool) -> Result<()> {
    if !force && final_path.exists() {
        return Err(Error::Conflict(format!(
            "{} exists already; choose another -o or pass --force to overwrite it",
            final_path.display()
        )));
    }
    if final_path.is_dir() {
        return Err(Error::Conflict(format!(
            "{} is a directory; name a file, or give the directory as -o for default names",
            final_path.display()
        )));
    }
    Ok(())
}

/// Puts a finished, synced temporary file at its final name: never over an existing file unless
/// `force` (then an atomic rename replaces it).
fn place(tmp: &Path, final_path: &Path, force: bool) -> Result<()> {
    if force {
        fs::rename(tmp, final_path).at(final_path)?;
        if let Some(d) = final_path.parent() {
            fsutil::sync_dir(d)?;
        }
        Ok(())
    } else {
        fsutil::place_new(tmp, final_path).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Error::Conflict(format!(
                    "{} exists already; choose another -o or pass --force to overwrite it",
                    final_path.display()
                ))
            }
            other => other,
        })
    }
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
enum Fix {
    /// The caller holds the live database's write lock, with nothing written under it: the
    /// archive is exactly the content of the last commit.
    UnderLock,
    /// The file alone when it is quiet (`db::QuietFile`), else as `Reading`.
    Quiet,
    /// Read transactions that take no lock a writer needs (`db::begin_read_snapshot`): the
    /// state of the last commit when they began.
    Reading,
}

/// Where an archive goes, checked: free (or `force`), in a directory that exists. A bare file
/// name is in the working directory; it says so, so that its directory can be synced.
fn output_path(final_path: &Path, force: bool) -> Result<PathBuf> {
    let final_path = match final_path.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new(".").join(final_path),
        _ => final_path.to_path_buf(),
    };
    check_free(&final_path, force)?;
    if let Some(dir) = final_path.parent() {
        if !dir.is_dir() {
            return Err(Error::FileNotFound {
                what: "output directory",
                path: dir.to_path_buf(),
                hint: "create it first".into(),
            });
        }
    }
    Ok(final_path)
}

/// An archive being written: the state it copies is fixed when it begins (two read
/// transactions on the live database, one for the copy and one for the checksum).
struct Extraction {
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
    fn begin(live: &Path, final_path: &Path, force: bool, fix: Fix) -> Result<Self> {
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
    fn finish(self, t: &TenantRow, fixtures: &[FixtureRow]) -> Result<Extracted> {
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
                _ => Copy::Pages(open_scratch(&tmp_path)?),
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
            super::pause_point("extract.copied");
            let mut dst = match copy {
                Copy::Pages(dst) => dst,
                Copy::FileBytes(_) => open_scratch(&tmp_path)?,
            };
            // The copy carries the live file's WAL flag; an archive is one self-contained file.
            let jm: String = dst
                .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
                .at(&tmp_path)?;
            if !jm.eq_ignore_ascii_case("delete") {
                return Err(Error::Other(format!(
                    "{}: could not leave WAL mode (journal_mode is {jm})",
                    tmp_path.display()
                )));
            }
            dst.execute_batch("PRAGMA synchronous=OFF;").at(&tmp_path)?;
            let content = match twin_content {
                Some(c) => c?,
                // No shared snapshot (the API held its write lock throughout): read the copy back.
                None => fsutil::while_flushing(std::slice::from_ref(&tmp_path), || {
                    content_of(&dst, &tmp_path)
                })?,
            };
            let schema_version = schema::tenant_version(&dst).at(&tmp_path)?;
            let meta = Metadata {
                format: FORMAT_NAME.into(),
                format_version: 1,
                tenant: t.clone(),
                fixtures: fixtures.to_vec(),
                schema_version,
                created_at: ids::now_iso(),
                host: lock::hostname(),
                monkctl_version: env!("CARGO_PKG_VERSION").into(),
                row_counts: content.row_counts.clone(),
                checksum: content.checksum.clone(),
                source_backend: None,
                postgres_columns: None,
            };
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
        Ok(Some(Extracted {
            tenant: t.name.clone(),
            size_bytes: fsutil::size_of(final_path).unwrap_or(0),
            path: final_path.to_path_buf(),
            schema_version,
            checksum: content.checksum,
            tables: content.row_counts.len(),
            rows: content.row_counts.values().sum(),
        }))
    }
}

fn write_metadata(conn: &mut Connection, m: &Metadata, path: &Path) -> Result<()> {
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

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Inspect and verify.
// ---------------------------------------------------------------------------------------------

/// The facts of the 100-byte SQLite header that tell damage apart before SQLite opens the file.
fn check_header(path: &Path) -> Result<u64> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::FileNotFound {
            what: "archive",
            path: path.to_path_buf(),
            hint: String::new(),
        },
        _ => Error::io(path, e),
    })?;
    if !meta.is_file() {
        return Err(Error::NotArchive {
            path: path.to_path_buf(),
            detail: "it is not a regular file".into(),
        });
    }
    let len = meta.len();
    let mut head = Vec::with_capacity(100);
    fs::File::open(path)
        .at(path)?
        .take(100)
        .read_to_end(&mut head)
        .at(path)?;
    let n = head.len().min(16);
    if head.is_empty() || head[..n] != SQLITE_MAGIC[..n] {
        return Err(Error::NotArchive {
            path: path.to_path_buf(),
            detail: if head.is_empty() {
                "the file is empty".into()
            } else {
                "it does not start with the SQLite header".into()
            },
        });
    }
    if head.len() < 100 {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            detail: format!("only {len} bytes, shorter than the 100-byte SQLite header"),
        });
    }
    let raw = u16::from_be_bytes([head[16], head[17]]);
    let page_size: u64 = if raw == 1 { 65_536 } else { u64::from(raw) };
    if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(Error::NotArchive {
            path: path.to_path_buf(),
            detail: format!("its header gives an impossible page size {page_size}"),
        });
    }
    check_header_fields(&head, page_size).map_err(|detail| Error::NotArchive {
        path: path.to_path_buf(),
        detail,
    })?;
    let change = u32::from_be_bytes(head[24..28].try_into().expect("4"));
    let valid_for = u32::from_be_bytes(head[92..96].try_into().expect("4"));
    let pages = u64::from(u32::from_be_bytes(head[28..32].try_into().expect("4")));
    if change == valid_for && pages > 0 && len < pages * page_size {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "{len} bytes, but its header says {pages} pages of {page_size} bytes ({} bytes)",
                pages * page_size
            ),
        });
    }
    if len % page_size != 0 {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            detail: format!("{len} bytes is not a whole number of {page_size}-byte pages"),
        });
    }
    Ok(page_size)
}

/// The fields of the 100-byte header that SQLite 3 gives fixed values or a small range, so
/// that a file SQLite would open read-only or refuse later (a write version of 3 makes the
/// restored tenant read-only) is refused by `verify` and `restore` alike, before anything is
/// written. The page size and the page count are checked by the caller.
fn check_header_fields(head: &[u8], page_size: u64) -> std::result::Result<(), String> {
    let (write, read) = (head[18], head[19]);
    if !matches!(write, 1 | 2) || !matches!(read, 1 | 2) {
        return Err(format!(
            "its header's file format versions (bytes 18 and 19) are {write} and {read}; SQLite 3 writes 1 (rollback journal) or 2 (WAL)"
        ));
    }
    let reserved = u64::from(head[20]);
    if page_size - reserved < 480 {
        return Err(format!(
            "its header reserves {reserved} bytes of each {page_size}-byte page (byte 20), leaving less than the 480 SQLite needs"
        ));
    }
    if head[21..24] != [64, 32, 32] {
        return Err(format!(
            "its header's payload fractions (bytes 21 to 23) are {:?}, not the [64, 32, 32] of every SQLite 3 file",
            &head[21..24]
        ));
    }
    let schema_format = u32::from_be_bytes(head[44..48].try_into().expect("4"));
    if !(1..=4).contains(&schema_format) {
        return Err(format!(
            "its header's schema format number (bytes 44 to 47) is {schema_format}, not 1 to 4"
        ));
    }
    let encoding = u32::from_be_bytes(head[56..60].try_into().expect("4"));
    if !(1..=3).contains(&encoding) {
        return Err(format!(
            "its header's text encoding (bytes 56 to 59) is {encoding}, not 1 (UTF-8), 2 or 3 (UTF-16)"
        ));
    }
    Ok(())
}

fn meta_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::ArchiveMetadata {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Reads and validates the metadata: `ArchiveMetadata` when missing or unreadable,
/// `Unsupported` when newer than this monkctl.
fn read_metadata(conn: &Connection, path: &Path) -> Result<Metadata> {
    let has: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
            [META_TABLE],
            |r| r.get::<_, i64>(0),
        )
        .at(path)?
        > 0;
    if !has {
        return Err(meta_err(path, format!("the table {META_TABLE} is missing")));
    }
    // A damaged page under the table is corruption (6); a table of another shape is metadata
    // that cannot be read (14).
    let unreadable = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            Error::sqlite(path, e)
        }
        _ => meta_err(path, format!("{META_TABLE} cannot be read: {e}")),
    };
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    {
        let mut st = conn
            .prepare(&format!("SELECT key, value FROM {META_TABLE}"))
            .map_err(unreadable)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(unreadable)?;
        for r in rows {
            let (k, v) = r.map_err(unreadable)?;
            kv.insert(k, v);
        }
    }
    let get = |k: &str| {
        kv.get(k)
            .cloned()
            .ok_or_else(|| meta_err(path, format!("the key '{k}' is missing")))
    };
    let int = |k: &str| -> Result<i64> {
        get(k)?
            .parse()
            .map_err(|_| meta_err(path, format!("the key '{k}' is not a number")))
    };
    let format = get("format")?;
    if format != FORMAT_NAME {
        return Err(meta_err(
            path,
            format!("its format is '{format}', not '{FORMAT_NAME}'"),
        ));
    }
    let format_version = int("format_version")?;
    if format_version > FORMAT_VERSION {
        return Err(Error::Unsupported(format!(
            "{} is a version {format_version} archive; this monkctl ({}) reads versions up to {FORMAT_VERSION}: upgrade monkctl",
            path.display(),
            env!("CARGO_PKG_VERSION")
        )));
    }
    let parse = |k: &str| -> Result<serde_json::Value> {
        serde_json::from_str(&get(k)?)
            .map_err(|e| meta_err(path, format!("the key '{k}' is not valid JSON: {e}")))
    };
    let tenant: TenantRow = serde_json::from_value(parse("tenant")?)
        .map_err(|e| meta_err(path, format!("the tenant row is incomplete: {e}")))?;
    let fixtures: Vec<FixtureRow> = serde_json::from_value(parse("fixtures")?)
        .map_err(|e| meta_err(path, format!("the fixtures are unreadable: {e}")))?;
    let row_counts: BTreeMap<String, i64> = serde_json::from_value(parse("row_counts")?)
        .map_err(|e| meta_err(path, format!("the row counts are unreadable: {e}")))?;
    let m = Metadata {
        format,
        format_version,
        tenant,
        fixtures,
        schema_version: int("schema_version")?,
        created_at: get("created_at")?,
        host: get("host")?,
        monkctl_version: get("monkctl_version")?,
        row_counts,
        checksum: get("checksum")?,
        source_backend: kv.get("source_backend").cloned(),
        postgres_columns: match kv.get("postgres_columns") {
            None => None,
            Some(v) => Some(serde_json::from_str(v).map_err(|e| {
                meta_err(
                    path,
                    format!("the key 'postgres_columns' is unreadable: {e}"),
                )
            })?),
        },
    };
    // Whatever the metadata says is checked before a restore could use it.
    names::tenant(&m.tenant.name)
        .map_err(|e| meta_err(path, format!("its tenant name is unusable: {e}")))?;
    check_id(&m.tenant.id)
        .map_err(|d| meta_err(path, format!("its tenant id is unusable: {d}")))?;
    if m.tenant.owner_id.is_empty() || m.tenant.owner_id.len() > 64 {
        return Err(meta_err(path, "its owner_id is empty or too long"));
    }
    for f in &m.fixtures {
        names::plain("fixture name", &f.fixture_name)
            .map_err(|e| meta_err(path, format!("a fixture name is unusable: {e}")))?;
    }
    check_archived_facts(conn, path, &m)?;
    if !m.checksum.starts_with(&format!("{CHECKSUM_ALGORITHM}:")) {
        return Err(meta_err(path, format!("unknown checksum '{}'", m.checksum)));
    }
    Ok(m)
}

/// Where an archive's tenant schema stands against the deployment's migrations.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaStanding {
    /// The version its migration history (or, without one, its tables) shows.
    pub version: i64,
    /// True when the deployment's migrations have versions it lacks: restore with `--migrate`,
    /// or run `migrate up` for it after the restore.
    pub needs_migration: bool,
    /// Those versions.
    pub pending: Vec<i64>,
}

/// `standing` of the archive at `path`, which must agree with the version its metadata records.
fn judged(path: &Path, set: &MigrationSet, recorded: i64) -> Result<SchemaStanding> {
    let s = standing(&open_archive(path)?, path, set)?;
    if s.version != recorded {
        return Err(meta_err(
            path,
            format!(
                "its metadata says schema version {recorded}, but its content is at version {}",
                s.version
            ),
        ));
    }
    Ok(s)
}

/// Judges an archive's migration history against the deployment's set (`migrate::judge`): a
/// migration the set does not have, or has with other content, is exit 17.
fn standing(conn: &Connection, path: &Path, set: &MigrationSet) -> Result<SchemaStanding> {
    let ins = migrate::judge(conn, path, set)?;
    Ok(SchemaStanding {
        version: ins.version,
        needs_migration: !ins.pending.is_empty(),
        pending: ins.pending,
    })
}

/// Every field of the archived registry row and fixtures against the registry's rules and the
/// archive's own content, so that what `verify` accepts a restore can store: the owner is a
/// user of the archived tenant, the status one the API knows, names and locations valid,
/// numbers in range, timestamps readable. The message names the field and what is wrong.
fn check_archived_facts(conn: &Connection, path: &Path, m: &Metadata) -> Result<()> {
    check_archived_row(m).map_err(|d| meta_err(path, d))?;
    // The owner must be a user of the archived tenant (else the API has no one to let in, and
    // `doctor` would report `owner_missing` after the restore). A damaged page is corruption.
    let owner = conn
        .prepare("SELECT 1 FROM users WHERE id = ?1")
        .and_then(|mut st| st.exists([&m.tenant.owner_id]));
    match owner {
        Ok(true) => Ok(()),
        Ok(false) => Err(meta_err(
            path,
            format!(
                "owner_id {} is no user in the archived tenant's users table",
                m.tenant.owner_id
            ),
        )),
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ) =>
        {
            Err(Error::sqlite(path, e))
        }
        Err(e) => Err(meta_err(
            path,
            format!("the owner cannot be looked up in the archived tenant's users table: {e}"),
        )),
    }
}

/// The fields of the archived row and fixtures on their own (see `check_archived_facts`).
fn check_archived_row(m: &Metadata) -> std::result::Result<(), String> {
    let t = &m.tenant;
    let shown = |v: &str| v.escape_debug().to_string();
    let expected = m.source_backend.as_deref().unwrap_or("sqlite");
    if !["sqlite", "postgresql"].contains(&expected) {
        return Err(format!(
            "source_backend '{}' is neither 'sqlite' nor 'postgresql'",
            shown(expected)
        ));
    }
    if t.db_type != expected {
        return Err(format!(
            "db_type '{}' is not '{expected}' (the backend the archive was made on)",
            shown(&t.db_type)
        ));
    }
    if !super::registry::STATUSES.contains(&t.status.as_str()) {
        return Err(format!(
            "status '{}' is none of the API's statuses ({})",
            shown(&t.status),
            super::registry::STATUSES.join(", ")
        ));
    }
    if t.template_version < 0 {
        return Err(format!(
            "template_version {} is negative",
            t.template_version
        ));
    }
    if let Some(st) = &t.source_template {
        names::plain("template name", st).map_err(|e| format!("source_template: {e}"))?;
    }
    if t.description.as_ref().is_some_and(|d| d.len() > 10_000) {
        return Err("description is longer than 10000 bytes".into());
    }
    names::path_component("tenants.database", &t.database)
        .map_err(|_| format!("database '{}' is not a plain name", shown(&t.database)))?;
    names::path_component("tenants.schema", &t.schema)
        .map_err(|_| format!("schema '{}' is not a plain name", shown(&t.schema)))?;
    check_id(&t.owner_id).map_err(|d| format!("owner_id: {d}"))?;
    let times = [
        ("created_at", Some(&t.created_at)),
        ("updated_at", Some(&t.updated_at)),
        ("trashed_at", t.trashed_at.as_ref()),
        ("deleted_at", t.deleted_at.as_ref()),
        ("the archive's created_at", Some(&m.created_at)),
    ];
    for (field, v) in times {
        if let Some(v) = v.filter(|v| ids::parse_timestamp(v).is_none()) {
            return Err(format!("{field} '{}' is not a timestamp", shown(v)));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for f in &m.fixtures {
        if !seen.insert(f.fixture_name.as_str()) {
            return Err(format!("fixture '{}' is listed twice", f.fixture_name));
        }
        if ids::parse_timestamp(&f.deployed_at).is_none() {
            return Err(format!(
                "fixture '{}': deployed_at '{}' is not a timestamp",
                f.fixture_name,
                shown(&f.deployed_at)
            ));
        }
        if let Some(v) = &f.version {
            if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
                return Err(format!(
                    "fixture '{}': version '{}' is empty, too long or holds control characters",
                    f.fixture_name,
                    shown(v)
                ));
            }
        }
    }
    for (key, v) in [("host", &m.host), ("monkctl_version", &m.monkctl_version)] {
        if v.len() > 255 || v.chars().any(char::is_control) {
            return Err(format!(
                "{key} '{}' is longer than 255 bytes or holds control characters",
                shown(v)
            ));
        }
    }
    if let Some((table, n)) = m.row_counts.iter().find(|(_, n)| **n < 0) {
        return Err(format!("row count of '{}' is negative ({n})", shown(table)));
    }
    Ok(())
}

/// A registry id from an archive: hex digits and hyphens (a UUID), as the API writes them.
fn check_id(id: &str) -> std::result::Result<(), String> {
    if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        Ok(())
    } else {
        Err(format!("'{}' is not a UUID", id.escape_debug()))
    }
}

/// `archive inspect`: what a file holds, read without changing it.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// `null` when the file has no usable metadata; `metadata_error` says why.
    pub metadata: Option<Metadata>,
    pub metadata_error: Option<String>,
    /// Its schema against the deployment's migrations; `null` when it cannot be judged, and
    /// `schema_error` says why (a migration the deployment does not have, for one).
    pub schema: Option<SchemaStanding>,
    pub schema_error: Option<String>,
    pub tables: Vec<db::TableCount>,
}

/// `archive inspect`: reports what the file holds, problems included, and fails only when it is
/// not a readable SQLite file.
pub fn inspect(path: &Path, set: &MigrationSet) -> Result<Inspection> {
    check_header(path)?;
    let conn = open_archive(path)?;
    let (metadata, metadata_error) = match read_metadata(&conn, path) {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let (schema, schema_error) = match standing(&conn, path, set) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut tables = db::table_counts(&conn).at(path)?;
    tables.retain(|t| t.table != META_TABLE);
    Ok(Inspection {
        size_bytes: fsutil::size_of(path).unwrap_or(0),
        path: path.to_path_buf(),
        metadata,
        metadata_error,
        schema,
        schema_error,
        tables,
    })
}

/// `archive verify`: every check passed.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub path: PathBuf,
    pub ok: bool,
    pub tenant: String,
    pub tenant_id: String,
    pub format_version: i64,
    pub schema_version: i64,
    /// True when the deployment's migrations have versions the archive lacks: restore it with
    /// `--migrate` (or run `migrate up` for it after the restore).
    pub needs_migration: bool,
    /// Those versions.
    pub pending_migrations: Vec<i64>,
    pub checksum: String,
    pub rows: i64,
    pub tables: usize,
    #[serde(skip)]
    pub metadata: Option<Metadata>,
}

/// Checks an archive: header (not SQLite → `NotArchive`, short → `Truncated`), metadata
/// (missing → `ArchiveMetadata`, newer → `Unsupported`), `PRAGMA integrity_check` (→ `Corrupt`),
/// then the row counts and content checksum (→ `ChecksumMismatch`). Never changes the file.
/// Last, its migration history against the deployment's set (`standing`: a migration the set
/// does not have → `Diverged`).
pub fn verify(path: &Path, set: &MigrationSet) -> Result<Verified> {
    let mut v = verify_file(path)?;
    let s = judged(path, set, v.schema_version)?;
    v.schema_version = s.version;
    v.needs_migration = s.needs_migration;
    v.pending_migrations = s.pending;
    Ok(v)
}

/// The checks of `verify` on the file alone: header, metadata, integrity and checksum.
fn verify_file(path: &Path) -> Result<Verified> {
    check_header(path)?;
    let conn = open_archive(path)?;
    let meta = read_metadata(&conn, path)?;
    verify_content(&conn, path, meta)
}

/// The checks of `verify` after the metadata was read: SQLite's integrity check and the content
/// checksum, on two connections side by side (the file never changes, so both read the same).
fn verify_content(conn: &Connection, path: &Path, meta: Metadata) -> Result<Verified> {
    let second = open_archive(path)?;
    let (problems, content) = std::thread::scope(|s| {
        let sum = s.spawn(move || content_of(&second, path));
        let problems = (|| -> Result<Vec<String>> {
            let mut st = conn.prepare("PRAGMA integrity_check(20)").at(path)?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).at(path)?;
            rows.collect::<rusqlite::Result<_>>().at(path)
        })();
        let content = sum
            .join()
            .unwrap_or_else(|_| Err(Error::Other("computing the checksum failed".into())));
        (problems, content)
    });
    let problems = problems?;
    if problems.len() != 1 || problems[0] != "ok" {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!("integrity check: {}", problems.join("; ")),
        });
    }
    let content = content?;
    if content.row_counts != meta.row_counts {
        let diff: Vec<String> = meta
            .row_counts
            .keys()
            .chain(content.row_counts.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|t| meta.row_counts.get(*t) != content.row_counts.get(*t))
            .map(|t| {
                format!(
                    "{t}: recorded {}, found {}",
                    meta.row_counts.get(t).map_or("none".into(), i64::to_string),
                    content
                        .row_counts
                        .get(t)
                        .map_or("none".into(), i64::to_string)
                )
            })
            .collect();
        return Err(Error::ChecksumMismatch {
            path: path.to_path_buf(),
            detail: format!("row counts differ: {}", diff.join(", ")),
        });
    }
    if content.checksum != meta.checksum {
        return Err(Error::ChecksumMismatch {
            path: path.to_path_buf(),
            detail: format!("recorded {}, computed {}", meta.checksum, content.checksum),
        });
    }
    Ok(Verified {
        path: path.to_path_buf(),
        ok: true,
        tenant: meta.tenant.name.clone(),
        tenant_id: meta.tenant.id.clone(),
        format_version: meta.format_version,
        schema_version: meta.schema_version,
        needs_migration: false,
        pending_migrations: Vec::new(),
        checksum: content.checksum,
        rows: content.row_counts.values().sum(),
        tables: content.row_counts.len(),
        metadata: Some(meta),
    })
}

/// A line of `archive list`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// `null` when the file has no usable metadata; `error` says why.
    pub tenant: Option<String>,
    pub tenant_id: Option<String>,
    /// When the archive was made.
    pub created_at: Option<String>,
    pub format_version: Option<i64>,
    pub schema_version: Option<i64>,
    /// With `--verify`: whether every check of `archive verify` passed; `null` when not checked.
    pub verified: Option<bool>,
    pub error: Option<String>,
}

/// `archive list DIR`: every `*.monk.db` in `dir` (not below it), by name, with what its
/// metadata says; with `verify`, each fully verified against the deployment's `set` as `archive
/// verify` does. A file that fails is listed with its error, never stops the listing. Reads
/// only.
pub fn list(dir: &Path, verify_each: bool, set: &MigrationSet) -> Result<Vec<Listed>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .at(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(SUFFIX) && !n.starts_with('.'))
        })
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let mut l = Listed {
                size_bytes: fsutil::size_of(&path).unwrap_or(0),
                path: path.clone(),
                tenant: None,
                tenant_id: None,
                created_at: None,
                format_version: None,
                schema_version: None,
                verified: None,
                error: None,
            };
            match metadata_of(&path) {
                Ok(m) => {
                    l.tenant = Some(m.tenant.name);
                    l.tenant_id = Some(m.tenant.id);
                    l.created_at = Some(m.created_at);
                    l.format_version = Some(m.format_version);
                    l.schema_version = Some(m.schema_version);
                }
                Err(e) => l.error = Some(e.to_string()),
            }
            if verify_each && l.error.is_none() {
                match verify(&path, set) {
                    Ok(_) => l.verified = Some(true),
                    Err(e) => {
                        l.verified = Some(false);
                        l.error = Some(e.to_string());
                    }
                }
            }
            l
        })
        .collect())
}

/// The metadata of an archive, checked only as far as reading it (for planning a restore).
pub fn metadata_of(path: &Path) -> Result<Metadata> {
    check_header(path)?;
    let conn = open_archive(path)?;
    read_metadata(&conn, path)
}

// ---------------------------------------------------------------------------------------------
// Restore.
// ---------------------------------------------------------------------------------------------

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
    pub fixtures: Vec<String>,
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
        let run = super::migrate::RunOptions {
            selection: super::migrate::Selection {
                tenants: vec![restored.tenant.name.clone()],
                include_trashed: true,
            },
            ..Default::default()
        };
        let mut outcomes = super::Collected::default();
        super::migrate::up(ws, set, &run, &super::progress::Silent, &mut outcomes)?;
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

/// Verifies the archive and puts its content in place (a new tenant, or over an existing one).
fn restore_content(ws: &Workspace, archive: &Path, opts: &RestoreOptions) -> Result<Restored> {
    if let super::Backend::Postgres(target) = &ws.backend {
        return postgres::restore(ws, target, archive, opts);
    }
    if let Some(n) = &opts.as_name {
        names::tenant(n)?;
    }
    // The metadata now, for the checks and the plan; the whole verification runs beside the
    // copies below, and nothing the user can see changes before it has passed.
    let meta = metadata_of(archive)?;
    let set = ws.migration_set()?;
    // Judged before anything changes (a restore over a newer tenant is refused on it); when the
    // judgement fails, a fault the full verification finds is reported first, as `verify`
    // reports it.
    let standing = judged(archive, set, meta.schema_version)
        .map_err(|e| verify_file(archive).err().unwrap_or(e))?;
    let needs_migration = standing.needs_migration;
    let archived_name = meta.tenant.name.clone();
    let name = opts
        .as_name
        .clone()
        .unwrap_or_else(|| archived_name.clone());
    let renamed = name != archived_name;
    let mut reg = ws.registry_for_write()?;
    // Refusals come before the lock, so that a refused restore leaves no file behind; the checks
    // run again under the lock (create_one re-checks in its registry transaction).
    let current = check_target(&reg, &name, &archived_name, renamed, opts.force, &meta, ws)?;
    if let Some(t) = &current {
        refuse_rollback(ws, t, &standing, opts.migrate)?;
    }
    let _lock = Lock::acquire_transient(
        &ws.layout.locks_dir().join(format!("restore-{name}.lock")),
        &format!("monkctl restore {}", archive.display()),
    )?;
    let again = check_target(&reg, &name, &archived_name, renamed, opts.force, &meta, ws)?;
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
            let mut store = super::Store::Sqlite(reg);
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
                fixtures: built.fixtures,
            })
        }
        Some(current) => replace_existing(ws, &mut reg, archive, &meta, current, &standing),
    }
}

/// The full verification of an archive whose metadata `meta` was read before: the same file
/// must still carry the same content.
fn verified_as(archive: &Path, meta: &Metadata) -> Result<Verified> {
    let v = verify_file(archive)?;
    if v.checksum != meta.checksum || v.tenant_id != meta.tenant.id {
        return Err(Error::Conflict(format!(
            "{} changed while it was being restored; nothing was changed, run the restore again",
            archive.display()
        )));
    }
    Ok(v)
}

/// The result of a scoped thread; a panic there becomes an error naming `what`.
fn joined<T>(r: std::thread::Result<Result<T>>, what: &str) -> Result<T> {
    r.unwrap_or_else(|_| Err(Error::Other(format!("{what} failed"))))
}

/// An archive whose schema is older than the tenant it would replace would roll the tenant's
/// schema back behind the deployment's: refused (exit 4) unless `--migrate` brings the restored
/// content up again.
fn refuse_rollback(
    ws: &Workspace,
    current: &TenantRow,
    archived: &SchemaStanding,
    migrate: bool,
) -> Result<()> {
    if migrate {
        return Ok(());
    }
    let live = ws.layout.tenant_path(&current.database, &current.schema)?;
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
fn check_target(
    reg: &super::Registry,
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
                    "tenant '{name}' exists; pass --force to replace its content with the archive (its current database is saved to {} first), or --as NEW_NAME to restore beside it",
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
/// file that nothing writes (no WAL, no journal: the same bytes `open_archive` reads), so its
/// bytes are copied as they are, by the kernel, and the copy, private to this process, is then
/// changed through SQLite.
fn copy_content(
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
    let conn = open_scratch(dst)?;
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
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .at(dst)?;
    }
    conn.close().map_err(|(_, e)| e).at(dst)?;
    if final_file {
        fsutil::sync_file(dst)?;
    }
    Ok(())
}

fn replace_existing(
    ws: &Workspace,
    reg: &mut super::Registry,
    archive: &Path,
    meta: &Metadata,
    current: TenantRow,
    standing: &SchemaStanding,
) -> Result<Restored> {
    let live = ws.layout.tenant_path(&current.database, &current.schema)?;
    // 1. Where what is there now is saved, as an archive, so that nothing is lost.
    let trash = ws.layout.trash_dir();
    fsutil::create_private_dir(&trash)?;
    // The random part keeps two restores within one second from colliding.
    let saved = trash.join(format!(
        "{}.{}.{}-{}{BEFORE_RESTORE_SUFFIX}",
        current.schema,
        current.id,
        ids::file_stamp(SystemTime::now()),
        &ids::uuid_v4()[..8]
    ));
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
                    .and_then(|()| open_archive(staging.path()))
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
            let src = open_archive(staging.path())?;
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
            let truncated = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
            if truncated != Ok(0) {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
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
    let fixture_names: Vec<String> = meta
        .fixtures
        .iter()
        .map(|f| f.fixture_name.clone())
        .collect();
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
        fixtures: fixture_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(data: &[u8]) -> u64 {
        let mut h = Checksum::default();
        h.update(data);
        h.finish()
    }

    #[test]
    fn checksum_is_stable_across_chunking() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = digest(&data);
        let mut h = Checksum::default();
        for c in data.chunks(13) {
            h.update(c);
        }
        assert_eq!(h.finish(), whole);
    }

    #[test]
    fn checksum_sees_every_flipped_byte_and_padding() {
        let data: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let base = digest(&data);
        for i in 0..data.len() {
            let mut d = data.clone();
            d[i] ^= 0x01;
            assert_ne!(digest(&d), base, "flip at {i}");
        }
        assert_ne!(digest(b"ab"), digest(b"ab\0"));
        assert_ne!(digest(b""), digest(b"\0"));
    }

    #[test]
    fn uri_escapes_what_sqlite_would_misread() {
        let u = db::file_uri(Path::new("/tmp/a b?c#d%e.db"), "mode=ro");
        assert_eq!(u, "file:/tmp/a%20b%3Fc%23d%25e.db?mode=ro");
    }

    #[test]
    fn archived_ids_must_be_uuids() {
        assert!(check_id("0f8e4a52-1c2b-4d3e-9f00-123456789abc").is_ok());
        for bad in ["", "../../x", "a/b", "x y"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
