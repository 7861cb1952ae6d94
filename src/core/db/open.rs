//! Opening a database: the one way to open a shared (live) database with the pragmas the Monk
//! API uses (`open`), the way to read one without a lock the API can trip on
//! (`open_for_inspection`), and the connection kinds of files that nothing else opens: an
//! `immutable` read of a file nothing writes (`open_immutable`), a tenant being built
//! (`open_build`, or `open_clone` from a template's image, then `finish_build`) and a private
//! copy being made (`open_scratch`, `leave_wal`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::read::ShareWait;
use crate::core::error::{Context, Error, Result};
use crate::core::fsutil;
use crate::core::system;

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
pub(super) fn open_beside_others(path: &Path) -> Option<Connection> {
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

/// Opens a file that nothing writes (an archive, or a quiet file under its shared lock, see
/// `QuietFile`) strictly for reading: `immutable=1`, so SQLite takes no lock and creates no
/// `-journal`, `-wal` or `-shm` beside it; the file is never changed. Reads the schema, the
/// cheapest way to learn that a file is not a database.
pub fn open_immutable(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        file_uri(path, "mode=ro&immutable=1"),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .at(path)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .at(path)?;
    Ok(conn)
}

/// Creates a new private file (owner-only; it must not exist) and opens it for building a
/// tenant database: the rollback journal in memory (no journal file, yet `ROLLBACK TO` a
/// savepoint in a fixture undoes what it should, exactly as on a live tenant), no syncing (the
/// caller syncs the finished file once), foreign keys on, `monk_uuid()` registered. Finish it
/// with `finish_build`.
pub fn open_build(path: &Path) -> Result<Connection> {
    fsutil::create_private_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .at(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF; PRAGMA foreign_keys=ON;",
    )
    .at(path)?;
    system::register_functions(&conn).at(path)?;
    Ok(conn)
}

/// Opens the private file a template's image was just written into, to make it a new tenant:
/// as `open_build` (journal in memory, no syncing, `monk_uuid()` registered), with the file
/// locked for this connection alone (`locking_mode=EXCLUSIVE`: no lock taken and dropped per
/// transaction), temporary tables in memory, and foreign keys off: the caller gives the rows
/// fresh ids first, checks the keys itself and turns them on. Finish it with `finish_build`.
pub fn open_clone(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .at(path)?;
    conn.execute_batch(
        "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF; PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;",
    )
    .at(path)?;
    system::register_functions(&conn).at(path)?;
    Ok(conn)
}

/// Finishes a built database: switches it to WAL (persistent in the file header, as the API
/// expects) and closes it (no `-wal` is left). It does not sync: whoever places the file makes
/// it durable first (`tenant::create_one` syncs it, `tenant::create_many` syncs a whole batch at
/// once).
pub fn finish_build(conn: Connection, path: &Path) -> Result<()> {
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .at(path)?;
    conn.close().map_err(|(_, e)| e).at(path)
}

/// Opens a private file of our own for writing with no journal and no syncing, creating it
/// (owner-only) when missing: the file is synced once when complete, and a crash leaves only a
/// temporary file to discard. An archive made in it is finished with `leave_wal`.
pub fn open_scratch(path: &Path) -> Result<Connection> {
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

/// Makes a private copy (open through `open_scratch`) one self-contained file: the rollback
/// journal (`DELETE`) instead of the WAL flag that a copy of a live database carries in its
/// header (an archive needs nothing beside it), and still no syncing (it is synced once when
/// complete).
pub fn leave_wal(conn: &Connection, path: &Path) -> Result<()> {
    let jm: String = conn
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .at(path)?;
    if !jm.eq_ignore_ascii_case("delete") {
        return Err(Error::Other(format!(
            "{}: could not leave WAL mode (journal_mode is {jm}); an archive must be one self-contained file",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous=OFF;").at(path)
}
