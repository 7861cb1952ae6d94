//! Replacing the content of an open database with that of another file in one write
//! transaction: the page writer, which writes only the pages that differ through
//! `sqlite_dbpage` (`Replacement`, `PageWriter`, `replace_content`), and the whole copy through
//! the backup API where pages cannot be written one by one (`replace_whole`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::copy::{backup_checked, read_main_file};
use super::wal::{file_alone, wal_folded, PENDING_BYTE};
use crate::core::error::{Context, Error, Result};
use crate::core::fsutil;

/// What a replacement wrote into the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Replaced {
    /// Pages of the new content.
    pub total: u64,
    /// Pages written: those that differed from the destination's (page 1 always), or every
    /// page when the backup API copied them.
    pub written: u64,
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

/// The page that holds SQLite's lock bytes (offset 1 GiB): never written, and read as zeros.
fn pending_byte_page(page_size: i64) -> i64 {
    PENDING_BYTE / page_size + 1
}
