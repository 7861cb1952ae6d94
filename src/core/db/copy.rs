//! Copying a database: the whole of it with SQLite's backup API (`backup_all`, and
//! `backup_checked`, decided under the destination's write lock), into memory
//! (`copy_into_memory`), and the bytes of its main file read through SQLite's own handle
//! (`read_main_file`).

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::Connection;

use super::open::BUSY_TIMEOUT;
use crate::core::error::{Context, Error, Result};

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
