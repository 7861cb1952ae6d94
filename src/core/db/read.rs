//! Quiet reading and read snapshots: reads that take no lock a running API's requests need,
//! through `immutable` connections under the shared lock every reader holds (`QuietFile`,
//! `read_quietly`, `read_once`, `open_readers`), and read transactions lined up on one state of
//! the database (`begin_read_snapshot`, `begin_readers_under_lock`).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::open::{open_beside_others, open_for_inspection, open_immutable};
use super::wal::{file_alone, shared_lock, wal_folded};
use crate::core::error::{Error, Result};
use crate::core::fsutil;

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
        open_immutable(&self.path)
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

/// How long a read keeps trying to share the file with the API (a quiet file, or the API's
/// `-shm`) before it opens the ordinary way, which may rebuild the shared-memory index under
/// exclusive locks and fail the API's requests meanwhile. The API's closing connection deletes
/// its `-wal` and `-shm` in well under a millisecond, but on a loaded machine the next chance
/// can be many milliseconds away: a few milliseconds of trying were seen to run out there.
const SHARE_WAIT: Duration = Duration::from_millis(500);

/// The tries of `read_quietly` and `read_once`: short pauses growing to 2 ms, for at most
/// `SHARE_WAIT` (none for a file that does not exist: the ordinary open reports that).
pub(super) struct ShareWait {
    until: std::time::Instant,
    attempt: u32,
    exists: bool,
}

impl ShareWait {
    pub(super) fn new(path: &Path) -> ShareWait {
        ShareWait {
            until: std::time::Instant::now() + SHARE_WAIT,
            attempt: 0,
            exists: path.exists(),
        }
    }

    pub(super) fn more(&self) -> bool {
        self.exists && std::time::Instant::now() < self.until
    }

    pub(super) fn pause(&mut self) {
        std::thread::sleep(Duration::from_micros(250 << (self.attempt / 5).min(3)));
        self.attempt += 1;
    }
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
