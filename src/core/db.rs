//! The one way monkctl opens a SQLite database, with the pragmas the Monk API uses.
//!
//! WAL, foreign keys on, a 5 s busy timeout, synchronous NORMAL. Writes to shared databases take
//! `BEGIN IMMEDIATE` (set as the connection's default transaction behaviour) so monkctl queues
//! behind a running API instead of failing half-way through a transaction.
//!
//! Reads take no lock that a running API's requests need (it connects with busy timeout 0, so
//! any such lock fails a request): `read_quietly` (a quiet file read by `immutable` connections
//! under the shared lock every reader holds, `QuietFile`) and `open_for_inspection` (no
//! checkpoint on close, the API's shared-memory index used read-only, never rebuilt). A read
//! never switches the journal mode. `begin_read_snapshot` lines up two readers without a lock.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::error::{Context, Error, Result};
use super::fsutil;

pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The file must exist; opened for reading and writing.
    ReadWrite,
    /// The file must exist; never written. Used by commands that only report.
    ReadOnly,
    /// Created (owner-only) when missing.
    Create,
}

/// What this build of SQLite is, for `--version`.
pub struct BuildInfo {
    pub sqlite_version: &'static str,
    /// `sqlite_dbpage` is compiled in: `restore --force` writes only the pages that differ.
    pub dbpage: bool,
}

pub fn build_info() -> BuildInfo {
    let dbpage = Connection::open_in_memory()
        .and_then(|c| {
            c.query_row(
                "SELECT sqlite_compileoption_used('ENABLE_DBPAGE_VTAB')",
                [],
                |r| r.get::<_, bool>(0),
            )
        })
        .unwrap_or(false);
    BuildInfo {
        sqlite_version: rusqlite::version(),
        dbpage,
    }
}

/// Process-wide SQLite settings, applied once before the first connection (SQLite accepts them
/// only before it initializes; later calls change nothing). Turns off SQLite's memory
/// statistics: with them on, every allocation takes one global mutex, and the threads that open
/// thousands of tenants (each open parses the schema, which allocates a lot) queue on it.
pub fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; called before any connection exists
        // (the binary calls this first thing), and a refusal (already initialized) is harmless.
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                std::ffi::c_int::from(0u8),
            );
        }
    });
}

/// Opens `path` with the standard pragmas. A missing file is `FileNotFound` unless `Mode::Create`;
/// a file that is not SQLite is `Corrupt`, naming the file.
pub fn open(path: &Path, mode: Mode) -> Result<Connection> {
    let flags = match mode {
        Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Mode::ReadWrite | Mode::Create => OpenFlags::SQLITE_OPEN_READ_WRITE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    match mode {
        Mode::Create => fsutil::ensure_private_file(path)?,
        _ => {
            if !path.exists() {
                return Err(Error::FileNotFound {
                    what: "database file",
                    path: path.to_path_buf(),
                    hint: String::new(),
                });
            }
        }
    }
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| cannot_open(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).at(path)?;
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    if mode != Mode::ReadOnly {
        let jm: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| cannot_open(path, e))?;
        if !jm.eq_ignore_ascii_case("wal") {
            return Err(Error::Other(format!(
                "{}: could not switch to WAL (journal_mode is {jm}); is another process holding it in a rollback transaction?",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL;").at(path)?;
    } else {
        // Reading the schema is the cheapest way to learn that a file is not a database.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .at(path)?;
    }
    conn.execute_batch("PRAGMA foreign_keys=ON;").at(path)?;
    Ok(conn)
}

/// SQLite says "unable to open database file" both for a read-only directory and for missing
/// permissions; say which file and what to check.
fn cannot_open(path: &Path, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::CannotOpen | C::ReadOnly | C::PermissionDenied) => Error::Permission {
            path: path.to_path_buf(),
            detail: format!(
                "{e}: the file or its directory is read-only or not writable by this user"
            ),
        },
        _ => Error::sqlite(path, e),
    }
}

/// Opens an existing database to read it without changing it, and without taking any lock
/// that a running API can trip on (it connects with busy timeout 0, so any lock held at the
/// moment it needs one fails its request):
///
/// - never a pragma that writes (no journal-mode switch);
/// - no checkpoint on close (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`): the last connection to close
///   a WAL database would otherwise take the file's exclusive lock to fold the WAL into it and
///   delete it, and an API request arriving meanwhile fails. The WAL is left to the API, whose
///   own last connection checkpoints it;
/// - when the database has a `-wal` and a `-shm` (the API has it open, or left them), read-only
///   with `readonly_shm`: the connection then never rebuilds the shared-memory index (recovery
///   holds exclusive locks), never creates a file, and when no other process has the database
///   open it reads the WAL into its own memory instead;
/// - otherwise read-write when the file allows it (a read-only connection to a WAL database
///   needs a `-shm` it may not create), which creates an empty `-wal` and a `-shm` beside the
///   file and leaves them. Callers that read a quiet database briefly use `read_quietly`, which
///   creates nothing.
pub fn open_for_inspection(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(Error::FileNotFound {
            what: "database file",
            path: path.to_path_buf(),
            hint: String::new(),
        });
    }
    // While the API is around (a `-wal` exists) its shared-memory index is shared, never
    // rebuilt: between its connections the `-shm` can be missing for a moment, so the share is
    // tried for `SHARE_WAIT` before the ordinary open (which rebuilds the index under exclusive
    // locks and fails the API's requests meanwhile). Without a `-wal` nobody is writing.
    let mut wait = ShareWait::new(path);
    while wait.more() {
        if let Some(conn) = open_beside_others(path) {
            return Ok(conn);
        }
        if !fsutil::with_suffix(path, "-wal").exists() {
            break;
        }
        wait.pause();
    }
    let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_READ_WRITE)
        .or_else(|_| Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_READ_ONLY))
        .at(path)?;
    ready_to_read(conn).at(path)
}

/// The read-only `readonly_shm` connection of `open_for_inspection`, when the database has a
/// `-wal` and a `-shm` and it can be had.
fn open_beside_others(path: &Path) -> Option<Connection> {
    let has = |s: &str| fsutil::with_suffix(path, s).exists();
    if !(has("-wal") && has("-shm")) {
        return None;
    }
    Connection::open_with_flags(
        file_uri(path, "mode=ro&readonly_shm=1"),
        OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(ready_to_read)
    .ok()
}

/// Sets a reading connection up (busy timeout, no checkpoint on close) and reads the schema,
/// the cheapest way to learn that a file is not a database.
fn ready_to_read(conn: Connection) -> rusqlite::Result<Connection> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    Ok(conn)
}

/// Whether another process holds the write lock of the database at `path` and keeps it for
/// `wait`: asked of the operating system (`F_GETLK`), never by taking the lock, so that asking
/// fails no request of a running API. Looks at the WAL write lock in the `-shm` and at the
/// rollback journal's reserved and pending bytes in the file. Samples every few milliseconds
/// and answers no at the first sample that finds it free.
///
/// Must not be called while this process has a connection to the database open: the files are
/// opened and closed here, and closing any descriptor of a file drops every POSIX lock the
/// process holds on it, SQLite's included.
pub fn write_lock_held_elsewhere(path: &Path, wait: Duration) -> bool {
    // SQLite's lock offsets: the WAL write lock is the first lock byte of the `-shm` (byte
    // 120); a rollback-mode writer holds RESERVED (PENDING + 1) and PENDING at 1 GiB.
    const SHM_WRITE_LOCK: i64 = 120;
    const PENDING_BYTE: i64 = 0x4000_0000;
    let held = |file: &Path, start: i64, len: i64| -> bool {
        use std::os::fd::AsRawFd;
        let Ok(f) = std::fs::File::open(file) else {
            return false;
        };
        // SAFETY: `flock` is plain data, zero-initialised then filled; F_GETLK only reads the
        // descriptor's file and writes into `lk`.
        let mut lk: libc::flock = unsafe { std::mem::zeroed() };
        lk.l_type = libc::F_WRLCK as libc::c_short;
        lk.l_whence = libc::SEEK_SET as libc::c_short;
        lk.l_start = start as libc::off_t;
        lk.l_len = len as libc::off_t;
        let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut lk) };
        rc == 0 && lk.l_type != libc::F_UNLCK as libc::c_short
    };
    let shm = fsutil::with_suffix(path, "-shm");
    let start = Instant::now();
    loop {
        if !(held(&shm, SHM_WRITE_LOCK, 1) || held(path, PENDING_BYTE, 2)) {
            return false;
        }
        if start.elapsed() >= wait {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Before a writer lets go of a live database: copies what its commits left in the WAL into the
/// file with a passive checkpoint (best effort; it waits for nobody and takes no lock the API's
/// requests need). Closing the last connection to a WAL database checkpoints it under the
/// file's exclusive lock, during which every API connection fails; after this, that close
/// finds nothing left to copy and holds the lock only to delete the `-wal` and `-shm`.
pub fn checkpoint_before_close(conn: &Connection) {
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

/// `file:` URI of a path, percent-encoding what a URI would misread.
pub fn file_uri(path: &Path, query: &str) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut s = String::from("file:");
    for b in abs.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(b) {
            s.push(*b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s.push('?');
    s.push_str(query);
    s
}

/// What says that nobody touched a database file: its identity, size and modification time,
/// and that its `-wal` is missing or empty (no frame holds content the file lacks) and it has no
/// `-journal` (no rollback-mode writer is at work, no hot journal to roll back). The `-wal`'s
/// identity is part of it: a writer that came, committed and checkpointed creates or deletes it.
type Stamp = (u64, u64, i64, i64, Option<u64>);

fn quiet_stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    if fsutil::with_suffix(path, "-journal")
        .symlink_metadata()
        .is_ok()
    {
        return None;
    }
    let wal = match fsutil::with_suffix(path, "-wal").symlink_metadata() {
        Ok(w) if w.is_file() && w.len() == 0 => Some(w.ino()),
        Ok(_) => return None,
        Err(_) => None,
    };
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec(), wal))
}

/// A database file being read as a quiet file: it held all of its content (no `-wal` with
/// frames, no `-journal`) when this began, and this process holds the shared lock on it that
/// every reading SQLite connection holds. That lock stops the one writer of the file that a
/// running API has between its requests, the checkpoint its last connection runs on closing
/// (it needs the file's exclusive lock; without it, it leaves the WAL for the next close and
/// fails nothing), and it never holds up a request: the API's connections take the same shared
/// lock, and its writes go to the WAL. Connections from `open` are `immutable`: they take no
/// lock, create no `-wal` or `-shm`, and never rebuild the shared-memory index (which holds
/// locks that fail the API's requests). A checkpoint that runs anyway (a commit that finds the
/// WAL past 1,000 pages) changes the file's modification time: `unchanged` says whether what
/// was read is still the file's state, and a caller that finds it changed reads again.
///
/// While it lasts, this process must not have an ordinary connection to the same file: POSIX
/// locks belong to the process, and SQLite's and this one would undo each other.
pub struct QuietFile {
    path: std::path::PathBuf,
    stamp: Stamp,
    /// Holds the shared lock; closed last (after the `immutable` connections, which hold none).
    _guard: std::fs::File,
}

impl QuietFile {
    /// Begins when the file is quiet and its shared lock can be had at once; `None` otherwise
    /// (read it through `open_for_inspection`).
    pub fn begin(path: &Path) -> Option<QuietFile> {
        let before = quiet_stamp(path)?;
        let guard = std::fs::File::open(path).ok()?;
        if !shared_lock(&guard) {
            return None;
        }
        // The lock is held: no close can fold a WAL into the file any more. Quiet still?
        (quiet_stamp(path) == Some(before)).then(|| QuietFile {
            path: path.to_path_buf(),
            stamp: before,
            _guard: guard,
        })
    }

    /// A connection that reads the file alone, without locks.
    pub fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            file_uri(&self.path, "mode=ro&immutable=1"),
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .at(&self.path)?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .at(&self.path)?;
        Ok(conn)
    }

    /// Whether the file is still the one it was, with the same size and modification time: what
    /// the connections read is one state of the database. A `-wal` the API started meanwhile
    /// does not matter: its frames are later commits.
    pub fn unchanged(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.path).is_ok_and(|m| {
            (m.ino(), m.len(), m.mtime(), m.mtime_nsec())
                == (self.stamp.0, self.stamp.1, self.stamp.2, self.stamp.3)
        })
    }
}

/// Takes the shared lock SQLite's unix VFS takes on a database file (a read lock on its shared
/// byte range, asked while holding a read lock on the pending byte so that a writer waiting
/// for the exclusive lock is not overtaken), without waiting.
fn shared_lock(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    const PENDING_BYTE: i64 = 0x4000_0000;
    const SHARED_FIRST: i64 = PENDING_BYTE + 2;
    const SHARED_SIZE: i64 = 510;
    let set = |kind: libc::c_int, start: i64, len: i64| -> bool {
        // SAFETY: `flock` is plain data, zero-initialised then filled; F_SETLK on our own
        // descriptor only changes this process's locks on the file.
        let mut lk: libc::flock = unsafe { std::mem::zeroed() };
        lk.l_type = kind as libc::c_short;
        lk.l_whence = libc::SEEK_SET as libc::c_short;
        lk.l_start = start as libc::off_t;
        lk.l_len = len as libc::off_t;
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &lk) == 0 }
    };
    if !set(libc::F_RDLCK, PENDING_BYTE, 1) {
        return false;
    }
    let shared = set(libc::F_RDLCK, SHARED_FIRST, SHARED_SIZE);
    set(libc::F_UNLCK, PENDING_BYTE, 1);
    shared
}

/// Runs the read `f` on a database without taking a lock the API can trip on and, when the
/// file is quiet (`QuietFile`), without creating anything beside it: the cost of a plain file
/// read (opening a WAL database the ordinary way creates and removes a `-wal` and a `-shm`,
/// which on a fleet costs more than the read). A quiet read the file changed under is run
/// again. A file that is not quiet is read through `open_for_inspection`'s `readonly_shm`
/// connection; while neither can be had (the API's last connection is closing, and deleting
/// its `-wal` and `-shm`), it tries again for a few milliseconds, and only then opens the
/// ordinary way (which rebuilds the shared-memory index under exclusive locks when no other
/// process has the file open). Whatever `f` returns on a connection that is not quiet is the
/// answer. `f` runs inside one read transaction (`begin_read`): it sees one state throughout.
pub fn read_quietly<T>(path: &Path, f: impl Fn(&Connection, &Path) -> Result<T>) -> Result<T> {
    let mut wait = ShareWait::new(path);
    while wait.more() {
        if let Some(quiet) = QuietFile::begin(path) {
            let read = quiet
                .open()
                .and_then(|conn| begin_read(&conn, path).and_then(|()| f(&conn, path)));
            match read {
                Ok(v) if quiet.unchanged() => return Ok(v),
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        if let Some(conn) = open_beside_others(path) {
            begin_read(&conn, path)?;
            return f(&conn, path);
        }
        wait.pause();
    }
    let conn = open_for_inspection(path)?;
    begin_read(&conn, path)?;
    f(&conn, path)
}

/// How long a read keeps trying to share the file with the API (a quiet file, or the API's
/// `-shm`) before it opens the ordinary way, which may rebuild the shared-memory index under
/// exclusive locks and fail the API's requests meanwhile. The API's closing connection deletes
/// its `-wal` and `-shm` in well under a millisecond, but on a loaded machine the next chance
/// can be many milliseconds away: a few milliseconds of trying were seen to run out there.
const SHARE_WAIT: Duration = Duration::from_millis(500);

/// The tries of `read_quietly` and `read_once`: short pauses growing to 2 ms, for at most
/// `SHARE_WAIT` (none for a file that does not exist: the ordinary open reports that).
struct ShareWait {
    until: std::time::Instant,
    attempt: u32,
    exists: bool,
}

impl ShareWait {
    fn new(path: &Path) -> ShareWait {
        ShareWait {
            until: std::time::Instant::now() + SHARE_WAIT,
            attempt: 0,
            exists: path.exists(),
        }
    }

    fn more(&self) -> bool {
        self.exists && std::time::Instant::now() < self.until
    }

    fn pause(&mut self) {
        std::thread::sleep(Duration::from_micros(250 << (self.attempt / 5).min(3)));
        self.attempt += 1;
    }
}

/// `n` connections that read the database at `path` side by side without taking a lock the
/// API can trip on: `immutable` connections under a `QuietFile` (returned with them; keep it
/// until they are closed) when `quiet` is allowed and the file is quiet, else `readonly_shm`
/// connections sharing the API's index. Neither may be had for a moment while the API's last
/// connection closes (it deletes the `-wal` and `-shm`); both are tried again for up to
/// `SHARE_WAIT` before the connections are opened as `open_for_inspection` opens them. Opening
/// the ordinary way at once when the `-wal` is gone would make this process the file's first
/// connection, which builds the WAL's shared-memory index under exclusive locks and fails an
/// API request that arrives meanwhile.
pub fn open_readers(
    path: &Path,
    n: usize,
    quiet: bool,
) -> Result<(Option<QuietFile>, Vec<Connection>)> {
    let mut wait = ShareWait::new(path);
    while wait.more() {
        if let Some(q) = quiet.then(|| QuietFile::begin(path)).flatten() {
            match (0..n).map(|_| q.open()).collect::<Result<Vec<_>>>() {
                Ok(conns) => return Ok((Some(q), conns)),
                // A checkpoint wrote into the file while it was opened: try again.
                Err(_) if !q.unchanged() => continue,
                Err(e) => return Err(e),
            }
        }
        if let Some(conns) = (0..n).map(|_| open_beside_others(path)).collect() {
            return Ok((None, conns));
        }
        wait.pause();
    }
    let conns = (0..n)
        .map(|_| open_for_inspection(path))
        .collect::<Result<_>>()?;
    Ok((None, conns))
}

/// Starts a read transaction on `conn` (a connection to `path` that has none open) and reads
/// the schema in it, so that everything run on `conn` until it ends sees one state and no
/// later statement has to begin one. A connection that shares the API's shared-memory index
/// read-only (`readonly_shm`) cannot rebuild that index: between the moment the API's first
/// connection creates a fresh `-shm` and the moment it rebuilds it, such a read fails with
/// SQLITE_READONLY_RECOVERY (or _CANTINIT), which says nothing about permissions. That read
/// is tried again for up to `SHARE_WAIT`, by which time the API has rebuilt the index.
pub fn begin_read(conn: &Connection, path: &Path) -> Result<()> {
    let mut wait = ShareWait::new(path);
    loop {
        let begun = conn
            .execute_batch("BEGIN")
            .and_then(|()| conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())));
        match begun {
            Ok(()) => return Ok(()),
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                if !(index_being_rebuilt(&e) && wait.more()) {
                    return Err(Error::sqlite(path, e));
                }
                wait.pause();
            }
        }
    }
}

/// Whether `e` says that the shared-memory index of a WAL database must be rebuilt before a
/// read-only connection can read it (see `begin_read`).
fn index_being_rebuilt(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    matches!(
        e,
        rusqlite::Error::SqliteFailure(err, _)
            if err.extended_code == ffi::SQLITE_READONLY_RECOVERY
                || err.extended_code == ffi::SQLITE_READONLY_CANTINIT
    )
}

/// Runs one long read `f` (a query streaming its rows) on a connection of its own, as
/// `read_quietly` reads, but once: `f` is never run again, since what it handed on cannot be
/// taken back. On a quiet file whose content changed during the read (a checkpoint the API
/// forced), the result is an error saying so: what was read may mix two states.
pub fn read_once<T>(path: &Path, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
    let mut wait = ShareWait::new(path);
    while wait.more() {
        if let Some(quiet) = QuietFile::begin(path) {
            let mut conn = quiet.open()?;
            begin_read(&conn, path)?;
            let v = f(&mut conn);
            drop(conn);
            if v.is_ok() && !quiet.unchanged() {
                return Err(Error::Busy {
                    what: path.display().to_string(),
                    detail: "the file was checkpointed while it was read, so the rows may mix two states; run again".into(),
                });
            }
            return v;
        }
        if let Some(mut conn) = open_beside_others(path) {
            begin_read(&conn, path)?;
            return f(&mut conn);
        }
        wait.pause();
    }
    let mut conn = open_for_inspection(path)?;
    begin_read(&conn, path)?;
    f(&mut conn)
}

/// A copy in memory of the database `from` (at `path`) as one read transaction sees it: for
/// a small database read many times over a command's run (the registry), so that the file is
/// held neither by a lock nor by a long read transaction. An empty file copies as an empty
/// database.
pub fn copy_into_memory(from: &Connection, path: &Path) -> Result<Connection> {
    let mut mem = Connection::open_in_memory().at(path)?;
    let pages: i64 = from
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .at(path)?;
    if pages > 0 {
        backup_all(from, &mut mem, path, BUSY_TIMEOUT)?;
    }
    Ok(mem)
}

/// Reads `buf.len()` bytes at `offset` of the main database file of `conn` (at `path`), through
/// the file handle SQLite itself holds. A database file that a connection of this process has
/// open must never be opened and closed again beside it: closing any descriptor of a file drops
/// every POSIX lock the process holds on it, SQLite's own included, and another process could
/// then act as if nobody else had the file open (the API's last connection, closing, would
/// checkpoint into the file and delete its WAL while this process still reads or writes them).
pub fn read_main_file(conn: &Connection, offset: u64, buf: &mut [u8], path: &Path) -> Result<()> {
    use rusqlite::ffi;
    let failed = |rc: std::ffi::c_int| {
        Error::sqlite(
            path,
            rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None),
        )
    };
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `conn.handle()` is a live connection used by this thread only for the call;
    // SQLITE_FCNTL_FILE_POINTER writes one `sqlite3_file *` into `file`.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&mut file as *mut *mut ffi::sqlite3_file).cast(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(failed(rc));
    }
    // SAFETY: a non-null `file` is the connection's open main database file, valid while
    // `conn` lives; its methods are SQLite's VFS, whose `xRead` fills `buf` (up to its length).
    let read = unsafe { file.as_ref() }
        .and_then(|f| unsafe { f.pMethods.as_ref() })
        .and_then(|m| m.xRead)
        .ok_or_else(|| failed(ffi::SQLITE_CANTOPEN))?;
    let len = std::ffi::c_int::try_from(buf.len()).map_err(|_| failed(ffi::SQLITE_TOOBIG))?;
    let rc = unsafe { read(file, buf.as_mut_ptr().cast(), len, offset as i64) };
    if rc != ffi::SQLITE_OK {
        return Err(failed(rc));
    }
    Ok(())
}

/// How the readers of a snapshot began (`begin_read_snapshot`, `begin_readers_under_lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// Only the first reader has a read transaction: the others could not be shown to see the
    /// same state.
    NotShared,
    /// The readers share one state.
    Shared,
    /// The readers share one state, and it is the database file alone: no frame of the WAL
    /// was needed when they began. SQLite then reads the file only, and while such a reader
    /// lasts no checkpoint may write to the file, so the file's bytes are that state,
    /// unchanging.
    SharedFileOnly,
}

/// Whether the file of the database at `path` holds its last commit, with nothing of it only
/// in the WAL: the WAL is empty, or a checkpoint run now (through `conn`, a connection to it
/// that has no transaction open) copies every frame into the file. Meant for a caller that
/// holds the write lock through another connection, so that no frame can be added after. The
/// checkpoint is SQLite's own passive one, as the API runs after its commits; it does not
/// wait, and it cannot complete while a reader still needs an older state, in which case the
/// answer is no.
pub fn wal_folded(conn: &Connection, path: &Path) -> bool {
    file_alone(path)
        || conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok(r.get::<_, i64>(0)? == 0 && r.get::<_, i64>(1)? == r.get::<_, i64>(2)?)
            })
            .unwrap_or(false)
}

/// Starts a read transaction on each of `readers` (connections to `path` from
/// `open_for_inspection`) without taking any lock a writer needs: a running API is never held
/// up. When, with all of them begun, the database's `-wal` is missing or empty, none of them
/// needed a frame of it: they all read the file alone, one and the same state
/// (`SharedFileOnly`). None of them can have used frames that are gone by then: emptying the
/// WAL takes the lock of every reader that uses it (a truncating checkpoint) or the file's
/// exclusive lock (the last connection's close), and these readers hold theirs from their
/// first read on. Otherwise
/// (the API wrote since its last checkpoint) only the first reader keeps its transaction
/// (`NotShared`): two read transactions begun one after the other may see two states.
pub fn begin_read_snapshot(path: &Path, readers: &[&Connection]) -> Result<Snapshot> {
    if let Err(e) = readers.iter().try_for_each(|r| begin_read(r, path)) {
        rollback_all(readers);
        return Err(e);
    }
    if file_alone(path) {
        return Ok(Snapshot::SharedFileOnly);
    }
    rollback_all(&readers[readers.len().min(1)..]);
    Ok(Snapshot::NotShared)
}

fn rollback_all(readers: &[&Connection]) {
    for r in readers {
        if !r.is_autocommit() {
            let _ = r.execute_batch("ROLLBACK");
        }
    }
}

/// Starts a read transaction on each of `readers` (connections to `path`) while the caller
/// holds the database's write lock, with nothing written yet under it: they all see the last
/// commit, which is what the lock's holder is about to change. `Shared`, or `SharedFileOnly`
/// when the file alone holds that commit (`wal_folded`; nothing can be appended to the WAL
/// while the lock is held).
pub fn begin_readers_under_lock(path: &Path, readers: &[&Connection]) -> Result<Snapshot> {
    let file_only = readers.first().is_some_and(|r| wal_folded(r, path));
    if let Err(e) = readers.iter().try_for_each(|r| begin_read(r, path)) {
        rollback_all(readers);
        return Err(e);
    }
    Ok(if file_only {
        Snapshot::SharedFileOnly
    } else {
        Snapshot::Shared
    })
}

/// Copies every page of `from` into `to` with SQLite's backup API, all pages in one step (after
/// one that only locks `to`): the source is read inside one read transaction (its own, or the
/// one `from` has open), so the copy is one consistent snapshot even while other
/// connections write (in WAL mode they never block it), and SQLite never holds more than its
/// page cache in memory. Waits up to `wait` for a destination that another connection locks.
pub fn backup_all(
    from: &Connection,
    to: &mut Connection,
    to_path: &Path,
    wait: Duration,
) -> Result<()> {
    backup_checked(from, to, to_path, wait, || Ok(()))
}

/// Copies every page of `from` (a file nothing else writes, such as a snapshot) into `to` in
/// one write transaction that is decided under its write lock: the lock is taken first, with
/// nothing copied yet; then `check` runs (typically reading `to` through another connection,
/// which sees the last commit, and no commit can land meanwhile) and only if it passes are the
/// pages copied and committed. Otherwise `to` is as it was. Waits up to `wait` for the lock.
pub fn backup_checked(
    from: &Connection,
    to: &mut Connection,
    to_path: &Path,
    wait: Duration,
    check: impl FnOnce() -> Result<()>,
) -> Result<()> {
    // Only a source without a single page would be copied (and committed) by the first step.
    let pages: i64 = from
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .at(to_path)?;
    if pages == 0 {
        return Err(Error::Other(format!(
            "{}: the content to copy in is empty; nothing was changed",
            to_path.display()
        )));
    }
    let b = Backup::new(from, to).at(to_path)?;
    let start = Instant::now();
    let mut check = Some(check);
    loop {
        // The first step copies no page: it only takes the destination's write lock.
        let pages = if check.is_some() { 0 } else { -1 };
        match b.step(pages).at(to_path)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {
                if let Some(c) = check.take() {
                    c()?;
                }
            }
            StepResult::Busy | StepResult::Locked => {
                if start.elapsed() > wait {
                    return Err(Error::Busy {
                        what: to_path.display().to_string(),
                        detail: "another connection held it locked during the whole copy; retry when the API is idle".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {}
        }
    }
}

/// What a replacement wrote into the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Replaced {
    /// Pages of the new content.
    pub total: u64,
    /// Pages written: those that differed from the destination's (page 1 always), or every
    /// page when the backup API copied them.
    pub written: u64,
}

/// The page that holds SQLite's lock bytes (offset 1 GiB): never written, and read as zeros.
fn pending_byte_page(page_size: i64) -> i64 {
    0x4000_0000 / page_size + 1
}

/// How the content of an open database is replaced (see `Replacement::begin`).
pub enum Replacement {
    /// The write lock is held and nothing is written yet: `PageWriter::write`, then `commit`.
    Pages(PageWriter),
    /// Pages cannot be written one by one into this database (it uses auto-vacuum, whose
    /// commit rearranges pages from what it read before they changed, or this SQLite has no
    /// `sqlite_dbpage`): copy every page with `replace_whole`, which takes the lock itself.
    Whole(Connection),
}

/// One write transaction on a database whose content is being replaced with that of another
/// file, writing only the pages that differ. Dropped without `commit`, it rolls back.
pub struct PageWriter {
    conn: Connection,
    path: std::path::PathBuf,
    /// When the write lock was taken, the database file held the last commit (`wal_folded`):
    /// it alone is the content being replaced, and stays so (no commit, so no checkpoint, can
    /// change it before this transaction's own commit).
    file_is_content: bool,
    written: Option<Replaced>,
}

/// Whether the file at `path` alone holds its database's content: no `-wal` with frames and no
/// `-journal` beside it (looked at, never opened).
fn file_alone(path: &Path) -> bool {
    ["-wal", "-journal"].iter().all(|suffix| {
        fsutil::with_suffix(path, suffix)
            .metadata()
            .map_or(true, |m| m.len() == 0)
    })
}

impl Replacement {
    /// Starts replacing the content of the open database `to` (at `path`): takes its write lock
    /// (waiting up to `wait`) when its pages can be written one by one, so that whatever the
    /// caller reads from now on (another connection's read transaction, begun now) is exactly
    /// the content that will be replaced.
    ///
    /// A reader of `to` sees the old or the new content, never a mix, and a crash before the
    /// commit leaves the old: the new pages go to the WAL in that one transaction. Only the
    /// pages that differ are written, through SQLite's `sqlite_dbpage` table, so putting back
    /// a copy of a tenant that changed little writes little (each written page goes to the WAL
    /// and then to the file). Page 1 is always written, with two header fields set as the
    /// backup API sets them: the file format bytes of `to`'s journal mode, and, last of all,
    /// the schema cookie one past `to`'s, so that every open connection re-reads the schema.
    pub fn begin(to: Connection, path: &Path, wait: Duration) -> Result<Replacement> {
        to.busy_timeout(wait).at(path)?;
        to.execute_batch("PRAGMA synchronous=FULL").at(path)?;
        if to.prepare("SELECT data FROM sqlite_dbpage").is_err() {
            return Ok(Replacement::Whole(to));
        }
        to.execute_batch("BEGIN IMMEDIATE").at(path)?;
        let auto_vacuum = to
            .query_row("PRAGMA auto_vacuum", [], |r| r.get::<_, i64>(0))
            .at(path);
        match auto_vacuum {
            Ok(0) => {
                // The checkpoint needs a connection without a transaction: a second one, which
                // SQLite closes itself (see `read_main_file`).
                let file_is_content = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .is_ok_and(|c| wal_folded(&c, path));
                Ok(Replacement::Pages(PageWriter {
                    conn: to,
                    path: path.to_path_buf(),
                    file_is_content,
                    written: None,
                }))
            }
            Ok(_) => {
                to.execute_batch("ROLLBACK").at(path)?;
                Ok(Replacement::Whole(to))
            }
            Err(e) => Err(e),
        }
    }
}

impl PageWriter {
    /// Writes the pages of `from` (a file nothing else writes, such as a staged archive or a
    /// snapshot, read in one read transaction) that differ from the database's, and cuts off
    /// the database's pages past `from`'s last. Once only.
    pub fn write(&mut self, from: &Connection) -> Result<Replaced> {
        let path = self.path.as_path();
        if self.written.is_some() {
            return Err(Error::Other(format!(
                "{}: its content was already replaced in this transaction",
                path.display()
            )));
        }
        let read =
            rusqlite::Transaction::new_unchecked(from, TransactionBehavior::Deferred).at(path)?;
        let page_size: i64 = read
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .at(path)?;
        let pages: i64 = read
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .at(path)?;
        let to = &self.conn;
        let to_page_size: i64 = to
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .at(path)?;
        if pages == 0 || page_size != to_page_size {
            return Err(Error::Other(format!(
                "{}: the content to copy in has {pages} pages of {page_size} bytes, this database pages of {to_page_size}; nothing was changed",
                path.display()
            )));
        }
        let to_pages: i64 = to
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .at(path)?;
        let mut write = to
            .prepare("INSERT INTO sqlite_dbpage (pgno, data) VALUES (?1, ?2)")
            .at(path)?;
        let header: Vec<u8> = to
            .query_row("SELECT data FROM sqlite_dbpage WHERE pgno = 1", [], |r| {
                r.get(0)
            })
            .at(path)?;
        let mut put = |pgno: i64, data: &[u8]| -> Result<()> {
            if pgno == 1 {
                // The cookie stays the database's until `commit`: a statement that found it
                // changed would re-read the schema from pages not all written yet.
                let mut first = data.to_vec();
                first[18..20].copy_from_slice(&header[18..20]);
                first[40..44].copy_from_slice(&header[40..44]);
                write.execute(rusqlite::params![pgno, first]).at(path)?;
            } else {
                write.execute(rusqlite::params![pgno, data]).at(path)?;
            }
            Ok(())
        };
        let pending = pending_byte_page(page_size);
        let ps = page_size as usize;
        let holds =
            |p: &Path, n: i64| fsutil::size_of(p).is_some_and(|len| len >= n as u64 * ps as u64);
        let from_file = from
            .path()
            .map(std::path::PathBuf::from)
            .filter(|p| file_alone(p) && holds(p, pages));
        let mut written = 0u64;
        match from_file {
            Some(from_path) if self.file_is_content && holds(path, to_pages) => {
                // Both files are their content: compared a megabyte at a time, read through
                // the handles SQLite holds on them.
                let chunk = ((1 << 20) / ps).max(1);
                let (mut new, mut old) = (vec![0u8; chunk * ps], vec![0u8; chunk * ps]);
                let mut first = 1i64;
                while first <= pages {
                    let n = chunk.min((pages - first + 1) as usize);
                    let at = (first - 1) as u64 * ps as u64;
                    read_main_file(from, at, &mut new[..n * ps], &from_path)?;
                    let m = n.min((to_pages - first + 1).max(0) as usize);
                    read_main_file(to, at, &mut old[..m * ps], path)?;
                    for i in 0..n {
                        let pgno = first + i as i64;
                        let page = &new[i * ps..(i + 1) * ps];
                        if pgno == pending
                            || (pgno > 1 && i < m && *page == old[i * ps..(i + 1) * ps])
                        {
                            continue;
                        }
                        put(pgno, page)?;
                        written += 1;
                    }
                    first += n as i64;
                }
            }
            _ => {
                // Through SQLite, which reads what the WAL holds.
                let mut source = read
                    .prepare("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
                    .at(path)?;
                let mut current = to
                    .prepare("SELECT data FROM sqlite_dbpage WHERE pgno = ?1")
                    .at(path)?;
                let mut rows = source.query([]).at(path)?;
                while let Some(row) = rows.next().at(path)? {
                    let pgno: i64 = row.get(0).at(path)?;
                    let data = row.get_ref(1).and_then(|v| Ok(v.as_blob()?)).at(path)?;
                    if pgno == pending {
                        continue;
                    }
                    if pgno > 1 && pgno <= to_pages {
                        let same = current
                            .query_row([pgno], |r| Ok(r.get_ref(0)?.as_blob()? == data))
                            .at(path)?;
                        if same {
                            continue;
                        }
                    }
                    put(pgno, data)?;
                    written += 1;
                }
            }
        }
        if pages < to_pages {
            // Page `pages + 1` and every one after it go: the last page written (a later one
            // would cancel it).
            write
                .execute(rusqlite::params![pages + 1, rusqlite::types::Null])
                .at(path)?;
        }
        let done = Replaced {
            total: pages as u64,
            written,
        };
        self.written = Some(done);
        Ok(done)
    }

    /// Sets the schema cookie one past the database's, commits (synced) and closes the
    /// connection, which is never used again: SQLite keeps what it parsed of a page beside the
    /// page in its cache, and the pages changed underneath that. Open a new connection to read
    /// the new content.
    pub fn commit(self) -> Result<Replaced> {
        let path = self.path.as_path();
        let Some(done) = self.written else {
            return Err(Error::Other(format!(
                "{}: nothing was written to replace its content; nothing was changed",
                path.display()
            )));
        };
        let cookie: i64 = self
            .conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .at(path)?;
        self.conn
            .execute_batch(&format!(
                "PRAGMA schema_version = {}; COMMIT;",
                (cookie as i32).wrapping_add(1)
            ))
            .at(path)?;
        self.conn.close().map_err(|(_, e)| e).at(path)?;
        Ok(done)
    }
}

/// Replaces the content of the open database `to` with that of `from` (a file nothing else
/// writes, such as a snapshot) in one write transaction (see `Replacement::begin`). `check`
/// runs once the write lock is held, before any page changes (as in `backup_checked`); an
/// error from it leaves `to` as it was. `to` is closed when done.
pub fn replace_content(
    from: &Connection,
    to: Connection,
    to_path: &Path,
    wait: Duration,
    check: impl FnOnce() -> Result<()>,
) -> Result<Replaced> {
    match Replacement::begin(to, to_path, wait)? {
        Replacement::Pages(mut w) => {
            check()?;
            w.write(from)?;
            w.commit()
        }
        Replacement::Whole(to) => replace_whole(from, to, to_path, wait, check),
    }
}

/// `Replacement::Whole`: every page of `from` copied into `to` with the backup API, `check`
/// running under its write lock before any page is copied (`backup_checked`). `to` is closed
/// when done.
pub fn replace_whole(
    from: &Connection,
    mut to: Connection,
    to_path: &Path,
    wait: Duration,
    check: impl FnOnce() -> Result<()>,
) -> Result<Replaced> {
    let total: i64 = from
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .at(to_path)?;
    backup_checked(from, &mut to, to_path, wait, check)?;
    to.close().map_err(|(_, e)| e).at(to_path)?;
    Ok(Replaced {
        total: total as u64,
        written: total as u64,
    })
}

/// Rows of one table, for reports (`tenant show`, `tenant usage`, `archive inspect`).
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
}

/// The row count of every user table, in creation order.
pub fn table_counts(conn: &Connection) -> rusqlite::Result<Vec<TableCount>> {
    user_tables(conn)?
        .into_iter()
        .map(|t| {
            let rows = conn.query_row(
                &format!("SELECT count(*) FROM {}", quote_ident(&t)),
                [],
                |r| r.get(0),
            )?;
            Ok(TableCount { table: t, rows })
        })
        .collect()
}

/// Quotes an SQL identifier (for table names read back from `sqlite_master`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Names of the user tables of a database, in creation order (no `sqlite_%` tables).
pub fn user_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
    )?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Whether `table` has a column named `column`.
pub fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut st = conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?;
    st.exists([table, column])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `read_main_file` reads through the connection's own descriptor, never the path: the
    /// bytes come from the file the connection opened even after another file took its name.
    #[test]
    fn read_main_file_reads_the_open_file_not_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES ('first file');")
            .unwrap();
        let original = std::fs::read(&path).unwrap();
        std::fs::rename(&path, dir.path().join("moved.db")).unwrap();
        std::fs::write(&path, vec![7u8; original.len()]).unwrap();

        let mut buf = vec![0u8; original.len()];
        read_main_file(&conn, 0, &mut buf, &path).unwrap();
        assert_eq!(buf, original);
        let mut tail = vec![0u8; 100];
        read_main_file(&conn, 100, &mut tail, &path).unwrap();
        assert_eq!(tail, original[100..200]);
        // Past the end: an error, not zeros passed off as content.
        let mut past = vec![0u8; 10];
        assert!(read_main_file(&conn, original.len() as u64 + 5, &mut past, &path).is_err());
    }
}
