//! The WAL and the file's locks: checkpoints (`checkpoint_before_close`, `checkpoint_truncate`,
//! `wal_folded`), whether the file alone holds a database's content,
//! and the POSIX locks SQLite takes on a database file, asked of (or taken from) the operating
//! system directly, never through a connection.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::core::fsutil;

/// SQLite's pending byte: the first byte of the lock range at 1 GiB of a database file (locks,
/// never data, are placed there).
pub(super) const PENDING_BYTE: i64 = 0x4000_0000;

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

/// Takes the shared lock SQLite's unix VFS takes on a database file (a read lock on its shared
/// byte range, asked while holding a read lock on the pending byte so that a writer waiting
/// for the exclusive lock is not overtaken), without waiting.
pub(super) fn shared_lock(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
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

/// Before a writer lets go of a live database: copies what its commits left in the WAL into the
/// file with a passive checkpoint (best effort; it waits for nobody and takes no lock the API's
/// requests need). Closing the last connection to a WAL database checkpoints it under the
/// file's exclusive lock, during which every API connection fails; after this, that close
/// finds nothing left to copy and holds the lock only to delete the `-wal` and `-shm`.
pub fn checkpoint_before_close(conn: &Connection) {
    let _ = checkpoint(conn, "PASSIVE");
}

/// What a checkpoint did: SQLite's three answers to `PRAGMA wal_checkpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpointed {
    /// It could not finish: a reader still needed an older state or, for a truncating one,
    /// another connection held the lock it waited for.
    pub busy: bool,
    /// Frames in the WAL (-1 when the database is not in WAL mode).
    pub log: i64,
    /// Frames copied into the file (-1 likewise).
    pub done: i64,
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`: copies every frame of the WAL into the file and empties
/// the WAL, waiting (up to the connection's busy timeout) for its writer and readers. A
/// checkpoint that could not finish is `busy`, not an error; what that means (a repair refused,
/// a skipped vacuum, a best effort that settles for less) is each caller's to say.
pub fn checkpoint_truncate(conn: &Connection) -> rusqlite::Result<Checkpointed> {
    checkpoint(conn, "TRUNCATE")
}

fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<Checkpointed> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok(Checkpointed {
            busy: r.get::<_, i64>(0)? != 0,
            log: r.get(1)?,
            done: r.get(2)?,
        })
    })
}

/// Whether the file of the database at `path` holds its last commit, with nothing of it only
/// in the WAL: the WAL is empty, or a checkpoint run now (through `conn`, a connection to it
/// that has no transaction open) copies every frame into the file. Meant for a caller that
/// holds the write lock through another connection, so that no frame can be added after. The
/// checkpoint is SQLite's own passive one, as the API runs after its commits; it does not
/// wait, and it cannot complete while a reader still needs an older state, in which case the
/// answer is no.
pub fn wal_folded(conn: &Connection, path: &Path) -> bool {
    file_alone(path) || checkpoint(conn, "PASSIVE").is_ok_and(|c| !c.busy && c.log == c.done)
}

/// Whether the file at `path` alone holds its database's content: no `-wal` with frames and no
/// `-journal` beside it (looked at, never opened).
pub(super) fn file_alone(path: &Path) -> bool {
    ["-wal", "-journal"].iter().all(|suffix| {
        fsutil::with_suffix(path, suffix)
            .metadata()
            .map_or(true, |m| m.len() == 0)
    })
}
