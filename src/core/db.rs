//! The one way monkctl opens a SQLite database, with the pragmas the Monk API uses.
//!
//! WAL, foreign keys on, a 5 s busy timeout, synchronous NORMAL. Writes to shared databases take
//! `BEGIN IMMEDIATE` (set as the connection's default transaction behaviour) so monkctl queues
//! behind a running API instead of failing half-way through a transaction.

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

/// Opens an existing database to read it without changing it: no pragma that writes, and
/// read-write flags when the file allows it, so that closing the last connection removes the
/// `-wal` and `-shm` that reading a WAL database needs (a read-only connection leaves them).
pub fn open_for_inspection(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(Error::FileNotFound {
            what: "database file",
            path: path.to_path_buf(),
            hint: String::new(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_READ_WRITE)
        .or_else(|_| Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_READ_ONLY))
        .at(path)?;
    conn.busy_timeout(BUSY_TIMEOUT).at(path)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .at(path)?;
    Ok(conn)
}

/// Copies every page of `from` into `to` with SQLite's backup API, in one step: the source is
/// read inside one read transaction, so the copy is one consistent snapshot even while other
/// connections write (in WAL mode they never block it), and SQLite never holds more than its
/// page cache in memory. Waits up to `wait` for a destination that another connection locks.
pub fn backup_all(
    from: &Connection,
    to: &mut Connection,
    to_path: &Path,
    wait: Duration,
) -> Result<()> {
    let b = Backup::new(from, to).at(to_path)?;
    let start = Instant::now();
    loop {
        match b.step(-1).at(to_path)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                if start.elapsed() > wait {
                    return Err(Error::Busy {
                        what: to_path.display().to_string(),
                        detail: "another connection held it locked during the whole copy; retry when the API is idle".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {}
        }
    }
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
