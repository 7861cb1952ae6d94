//! The guard every statement an operator supplies passes through: fixture SQL (check, deploy,
//! `tenant create --fixture`, template builds) and tenant migrations (plan, destructive analysis,
//! up). Nothing else in monkctl prepares operator SQL.
//!
//! What it owns:
//! - reading operator files (`read_source`): regular files only, never through a symbolic link,
//!   a FIFO or a device refused before it is opened for reading, UTF-8 without NUL bytes;
//! - splitting a file into statements with the line each starts on (`split`);
//! - the rules, from SQLite's own view of each statement and never from its text: an authorizer
//!   (`sqlite3_set_authorizer`) that refuses ATTACH/DETACH, BEGIN/COMMIT/ROLLBACK (and, in
//!   migrations, savepoints), PRAGMAs outside a read-only allowlist, `load_extension()`, any
//!   read or write of the virtual tables that reach the file's pages (`sqlite_dbpage`,
//!   `dbstat`), virtual tables of other modules than full-text and r-tree, and writes by the
//!   statement itself to SQLite's own `sqlite_*` tables; plus the statement's bytecode (its
//!   `EXPLAIN`), which tells a `VACUUM` (and `VACUUM INTO`) that the authorizer never sees;
//! - a time limit per statement, enforced by SQLite's progress handler (`Fault::Timeout`);
//! - scratch databases for analysis: in memory, never a file.
//!
//! "Refused before anything runs". Whether a statement can be prepared depends on what the
//! statements before it did (a CREATE TABLE, then an INSERT into it), so a file cannot be judged
//! statement by statement against the real database without running the earlier ones there.
//! Every caller therefore first runs the whole file, statement by statement, through the guard
//! on an in-memory scratch database (the tenant's schema copied in, or the `system` baseline):
//! each statement is prepared with the authorizer on, judged, and run there so that the next one
//! sees its effects. Only when that pass finds no refusal does anything run on a real tenant, and
//! there every statement passes the same guard again (a tenant's schema may differ from the
//! scratch copy); a refusal then fails the tenant's one transaction, which rolls back. A refused
//! statement is refused while being prepared, so it never runs anywhere: an ATTACH never creates
//! its file, a VACUUM INTO never writes its copy. The scratch databases live in memory (with
//! `temp_store=MEMORY`), so analysis creates no file at all and no scratch directory is needed.
//!
//! It must not print, and must not judge statements by their text.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization, TransactionOperation};
use rusqlite::Connection;

use super::error::{Context, Error, Result};
use super::system;

/// The time limit of one statement during analysis on a scratch copy (`fixture check`,
/// `migrate plan`, the destructive analysis): the scratch copies hold the schema and little data.
pub const ANALYSIS_TIMEOUT: Duration = Duration::from_secs(5);

/// The default time limit of one statement on a real tenant (`--statement-timeout` of
/// `fixture deploy`, `tenant create --fixture`, `template build` and `migrate up`).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// SQLite calls the progress handler every this many virtual-machine instructions.
const PROGRESS_STEPS: i32 = 10_000;

/// Who wrote the statements: the rules differ only in savepoints, which a fixture may use (they
/// nest inside monkctl's transaction) and a migration may not (as documented since migrations
/// came).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fixture,
    Migration,
    /// `monkctl query`: one statement that must only read (checked with `stmt.readonly()` on a
    /// read-only connection); savepoints refused as in migrations.
    Query,
}

/// PRAGMAs operator SQL may run with or without an argument: they only describe the schema or
/// check the file (the argument names a table or index, or limits a check), and change nothing.
pub const ALLOWED_PRAGMAS: [&str; 16] = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "collation_list",
    "database_list",
    "function_list",
    "module_list",
    "pragma_list",
    "compile_options",
];

/// PRAGMAs operator SQL may read (without a value, so they set nothing). Reads of settings only:
/// pragmas that act when run bare (`optimize`, `wal_checkpoint`, `incremental_vacuum`,
/// `shrink_memory`...) are not here.
pub const READABLE_PRAGMAS: [&str; 14] = [
    "application_id",
    "user_version",
    "schema_version",
    "data_version",
    "foreign_keys",
    "defer_foreign_keys",
    "recursive_triggers",
    "journal_mode",
    "encoding",
    "page_size",
    "page_count",
    "freelist_count",
    "auto_vacuum",
    "ignore_check_constraints",
];

/// Virtual tables that read or write the database file below SQLite's b-trees.
pub const FILE_TABLES: [&str; 2] = ["sqlite_dbpage", "dbstat"];

/// Modules operator SQL may create virtual tables of: full-text search and r-trees, which keep
/// their data in ordinary tables of the same file.
pub const VTAB_MODULES: [&str; 6] = ["fts3", "fts4", "fts5", "rtree", "rtree_i32", "geopoly"];

/// Whether operator SQL may run `PRAGMA name` (`value` is the argument or assigned value, if
/// any). Everything not listed is refused: operator SQL must not change the file's settings,
/// turn off the API's constraints (`ignore_check_constraints`, `defer_foreign_keys`,
/// `foreign_keys`, `writable_schema`), or stamp the file's headers (`user_version`,
/// `application_id`) that belong to monkctl and the API.
pub fn pragma_allowed(name: &str, value: Option<&str>) -> bool {
    let name = name.to_ascii_lowercase();
    ALLOWED_PRAGMAS.contains(&name.as_str())
        || (value.is_none() && READABLE_PRAGMAS.contains(&name.as_str()))
}

// ---------------------------------------------------------------------------------------------
// operator files

/// Reads an operator file: it must be a regular file itself (a symbolic link is refused, even one
/// that points inside the directory: a link is how a file from elsewhere slips in), valid UTF-8
/// and free of NUL bytes (SQLite stops reading a statement at a NUL, so what followed it would be
/// skipped silently). A FIFO, socket or device is refused from its metadata, before any open; the
/// file is opened without following links and without blocking, and must still be the file that
/// was looked at. Errors name the file and the fix (exit 2).
pub fn read_source(path: &Path) -> Result<String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Err(Error::io(path, e)),
    };
    check_regular(path, &meta)?;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .at(path)?;
    let opened = f.metadata().at(path)?;
    if !opened.is_file() || opened.ino() != meta.ino() || opened.dev() != meta.dev() {
        return Err(Error::Usage(format!(
            "{}: the file changed while it was being opened; run again when nothing is replacing it",
            path.display()
        )));
    }
    let mut bytes = Vec::with_capacity(opened.len() as usize);
    f.read_to_end(&mut bytes).at(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        Error::BadInput {
            path: path.to_path_buf(),
            line: line_of(bytes, valid),
            message: format!(
                "the file is not valid UTF-8 (byte {} of the file); save it as UTF-8",
                valid + 1
            ),
        }
    })?;
    if let Some(at) = text.bytes().position(|b| b == 0) {
        return Err(Error::BadInput {
            path: path.to_path_buf(),
            line: line_of(text.as_bytes(), at),
            message: format!(
                "the file holds a NUL byte (byte {}); SQLite would stop reading there and skip the rest silently: remove it",
                at + 1
            ),
        });
    }
    Ok(text)
}

/// Refuses anything but a regular file (looked at without following a link).
pub fn check_regular(path: &Path, meta: &fs::Metadata) -> Result<()> {
    let ft = meta.file_type();
    let what = if ft.is_symlink() {
        let target = fs::read_link(path)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        format!("is a symbolic link{target}; operator files are read only as regular files inside their directory: copy the file there instead of linking it")
    } else if ft.is_dir() {
        "is a directory, not a file".to_string()
    } else if ft.is_file() {
        return Ok(());
    } else {
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        format!("is {kind}, not a regular file; it is not read: put a regular file there")
    };
    Err(Error::Usage(format!("{}: {what}", path.display())))
}

/// Refuses a directory of operator files that is a symbolic link (or not a directory).
pub fn check_dir(path: &Path, what: &str) -> Result<()> {
    let meta = fs::symlink_metadata(path).at(path)?;
    if meta.file_type().is_symlink() {
        return Err(Error::Usage(format!(
            "{}: the {what} is a symbolic link; it is not followed: move the directory itself there",
            path.display()
        )));
    }
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{}: the {what} is not a directory",
            path.display()
        )));
    }
    Ok(())
}

/// 1-based line of byte offset `at`.
fn line_of(bytes: &[u8], at: usize) -> usize {
    1 + bytes[..at.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

// ---------------------------------------------------------------------------------------------
// statements

/// One statement of an operator file and the line it starts on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Statement {
    pub line: usize,
    pub sql: String,
}

/// Whether `sql` ends a complete statement, by SQLite's own tokenizer.
fn sql_complete(sql: &str) -> bool {
    match std::ffi::CString::new(sql) {
        // SAFETY: a valid NUL-terminated string that lives across the call.
        Ok(c) => unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 },
        Err(_) => false,
    }
}

/// Skips whitespace and comments; returns the offset of the first token (or the length).
fn skip_blank(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            match s[i + 2..].find("*/") {
                Some(end) => i += end + 4,
                None => return b.len(),
            }
        } else {
            return i;
        }
    }
}

/// Splits an SQL script into statements with SQLite's `sqlite3_complete` (so `;` inside strings,
/// comments and trigger bodies does not split), each with the line its first token is on.
pub fn split(text: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut start = 0;
    // Lines are counted forward from the previous statement, so long scripts stay linear.
    let (mut seen, mut line) = (0usize, 1usize);
    let mut push = |chunk: &str, offset: usize| {
        let first = skip_blank(chunk);
        let body = chunk[first..].trim();
        if body.is_empty() || body == ";" {
            return;
        }
        let at = offset + first;
        line += text.as_bytes()[seen..at]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        seen = at;
        out.push(Statement {
            line,
            sql: chunk[first..].to_string(),
        });
    };
    for (i, b) in text.bytes().enumerate() {
        if b == b';' && sql_complete(&text[start..=i]) {
            push(&text[start..=i], start);
            start = i + 1;
        }
    }
    if start < text.len() {
        push(&text[start..], start);
    }
    out
}

/// One line of at most 160 characters, for messages.
pub fn shorten(sql: &str) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 160 {
        let mut s: String = one.chars().take(157).collect();
        s.push_str("...");
        s
    } else {
        one
    }
}

// ---------------------------------------------------------------------------------------------
// the guard

/// What a statement asked SQLite's permission for, as far as callers care (the destructive
/// analysis): changes of the schema and writes of rows. Objects are named as SQLite names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    CreateTable(String),
    DropTable(String),
    DropIndex(String),
    DropView(String),
    DropTrigger(String),
    AlterTable(String),
    /// A trigger created, on the table (or view) named.
    CreateTrigger(String),
    /// A view created.
    CreateView(String),
    /// Another change of the schema: an index or virtual table created, ANALYZE, REINDEX.
    OtherSchema,
    Insert(String),
    Update(String, String),
    Delete(String),
}

impl Act {
    fn is_schema(&self) -> bool {
        !matches!(self, Act::Insert(_) | Act::Update(..) | Act::Delete(_))
    }

    fn written_table(&self) -> Option<&str> {
        match self {
            Act::Insert(t) | Act::Update(t, _) | Act::Delete(t) => Some(t),
            _ => None,
        }
    }
}

/// Why a statement did not complete.
#[derive(Debug)]
pub enum Fault {
    /// The guard refused it before it ran; the reason says what and why.
    Refused(String),
    /// It ran longer than the limit and was interrupted.
    Timeout(Duration),
    /// SQLite failed it (no such table, a constraint...), as it would fail anywhere.
    Failed(rusqlite::Error),
}

impl Fault {
    /// The error of this fault for statement `n` of `file`: a refusal is `Refused` (exit 2), a
    /// timeout `StatementTimeout` (exit 20); a failure is made by `failed`, whose message depends
    /// on what was running.
    pub fn into_error(
        self,
        file: &Path,
        n: usize,
        st: &Statement,
        failed: impl FnOnce(rusqlite::Error) -> Error,
    ) -> Error {
        match self {
            Fault::Refused(reason) => Error::Refused {
                path: file.to_path_buf(),
                line: st.line,
                message: format!(
                    "statement {n} is refused: {reason}: `{}`; nothing was run",
                    shorten(&st.sql)
                ),
            },
            Fault::Timeout(limit) => Error::StatementTimeout {
                path: file.to_path_buf(),
                line: st.line,
                number: n,
                limit,
                statement: shorten(&st.sql),
            },
            Fault::Failed(e) => failed(e),
        }
    }
}

struct Shared {
    kind: Kind,
    /// Whether the authorizer keeps what it sees (only while an operator statement is prepared).
    recording: AtomicBool,
    acts: Mutex<Vec<Act>>,
    refusal: Mutex<Option<String>>,
    base: Instant,
    /// Milliseconds after `base` when the running statement must stop; `u64::MAX`: no limit.
    deadline_ms: AtomicU64,
    tripped: AtomicBool,
}

/// The guard installed on one connection (its authorizer and progress handler). Statements run
/// through `run`; monkctl's own statements on the same connection (rows of data files, foreign
/// key checks) still meet the authorizer's refusals but no time limit.
pub struct Guard {
    shared: Arc<Shared>,
    limit: Duration,
}

/// Installs the guard on `conn` with a time limit per operator statement. Remove it with
/// `Guard::remove` before monkctl runs statements of its own that the rules forbid (VACUUM,
/// `journal_mode`).
pub fn install(conn: &mut Connection, kind: Kind, limit: Duration) -> rusqlite::Result<Guard> {
    let shared = Arc::new(Shared {
        kind,
        recording: AtomicBool::new(false),
        acts: Mutex::new(Vec::new()),
        refusal: Mutex::new(None),
        base: Instant::now(),
        deadline_ms: AtomicU64::new(u64::MAX),
        tripped: AtomicBool::new(false),
    });
    let hook = shared.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        let recording = hook.recording.load(Ordering::SeqCst);
        match judge(hook.kind, &ctx) {
            Err(reason) => {
                if let Ok(mut r) = hook.refusal.lock() {
                    if r.is_none() {
                        *r = Some(reason);
                    }
                }
                Authorization::Deny
            }
            Ok(Some(act)) if recording => {
                if let Ok(mut v) = hook.acts.lock() {
                    v.push(act);
                }
                Authorization::Allow
            }
            Ok(_) => Authorization::Allow,
        }
    }))?;
    let timer = shared.clone();
    conn.progress_handler(
        PROGRESS_STEPS,
        Some(move || {
            let deadline = timer.deadline_ms.load(Ordering::Relaxed);
            if deadline != u64::MAX && timer.base.elapsed().as_millis() as u64 > deadline {
                timer.tripped.store(true, Ordering::SeqCst);
                true
            } else {
                false
            }
        }),
    )?;
    Ok(Guard { shared, limit })
}

impl Guard {
    /// Takes the authorizer and the progress handler off the connection.
    pub fn remove(self, conn: &mut Connection) -> rusqlite::Result<()> {
        conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)?;
        conn.progress_handler(PROGRESS_STEPS, None::<fn() -> bool>)
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    fn begin(&self) {
        if let Ok(mut v) = self.shared.acts.lock() {
            v.clear();
        }
        if let Ok(mut r) = self.shared.refusal.lock() {
            *r = None;
        }
        self.shared.tripped.store(false, Ordering::SeqCst);
        self.shared.recording.store(true, Ordering::SeqCst);
    }

    fn refusal(&self) -> Option<String> {
        self.shared.refusal.lock().ok().and_then(|mut r| r.take())
    }

    fn arm(&self) {
        let until = self.shared.base.elapsed() + self.limit;
        self.shared
            .deadline_ms
            .store(until.as_millis() as u64, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.shared.recording.store(false, Ordering::SeqCst);
        self.shared.deadline_ms.store(u64::MAX, Ordering::SeqCst);
    }

    /// Prepares `st` under the rules, refuses it if it breaks one, else runs it to completion
    /// within the time limit. Returns what it asked permission for.
    pub fn run(&self, conn: &Connection, st: &Statement) -> std::result::Result<Vec<Act>, Fault> {
        self.run_with(conn, st, &mut |_| {})
    }

    /// As `run`, calling `before` with the statement's actions once it passed the rules and
    /// before it runs (the destructive analysis looks at the schema then).
    pub fn run_with(
        &self,
        conn: &Connection,
        st: &Statement,
        before: &mut dyn FnMut(&[Act]),
    ) -> std::result::Result<Vec<Act>, Fault> {
        self.begin();
        let r = self.run_armed(conn, st, before);
        self.disarm();
        r
    }

    /// Prepares `st` with the authorizer recording, and refuses it when it breaks a rule (the
    /// authorizer's, a write to SQLite's or monkctl's own tables, a VACUUM). `None`: nothing but
    /// a comment. The caller has called `begin`.
    fn prepare_judged<'c>(
        &self,
        conn: &'c Connection,
        st: &Statement,
    ) -> std::result::Result<(Option<rusqlite::Statement<'c>>, Vec<Act>), Fault> {
        if st.sql.contains('\0') {
            return Err(Fault::Refused("it holds a NUL byte".into()));
        }
        let prepared = conn.prepare(&st.sql);
        self.shared.recording.store(false, Ordering::SeqCst);
        let acts: Vec<Act> = self
            .shared
            .acts
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        if let Some(reason) = self
            .refusal()
            .or_else(|| internal_write(&acts))
            .or_else(|| monkctl_write(&acts))
        {
            return Err(Fault::Refused(reason));
        }
        let stmt = prepared.map_err(Fault::Failed)?;
        if stmt.expanded_sql().is_none() {
            // Nothing but a comment: SQLite prepared no statement.
            return Ok((None, acts));
        }
        // VACUUM is the one statement SQLite never asks the authorizer to write or change
        // anything for: a statement that writes without having asked for a write or a schema
        // change has its program looked at. (Rows written or schema changed: not a VACUUM.)
        if acts.is_empty() && !stmt.readonly() && stmt.is_explain() == 0 && vacuums(conn, &st.sql) {
            return Err(Fault::Refused(
                "VACUUM rewrites the whole file (VACUUM INTO writes a copy elsewhere); monkctl vacuums tenants itself (`monkctl tenant vacuum`)".into(),
            ));
        }
        Ok((Some(stmt), acts))
    }

    fn run_armed(
        &self,
        conn: &Connection,
        st: &Statement,
        before: &mut dyn FnMut(&[Act]),
    ) -> std::result::Result<Vec<Act>, Fault> {
        let (stmt, acts) = self.prepare_judged(conn, st)?;
        let Some(mut stmt) = stmt else {
            return Ok(acts);
        };
        before(&acts);
        self.step_all(&mut stmt, &mut |_| true)?;
        drop(stmt);
        self.probe_stored(conn, &acts)?;
        Ok(acts)
    }

    /// Runs a prepared statement within the time limit, handing each row to `on_row` until it
    /// returns false.
    fn step_all(
        &self,
        stmt: &mut rusqlite::Statement<'_>,
        on_row: &mut dyn FnMut(&rusqlite::Row<'_>) -> bool,
    ) -> std::result::Result<(), Fault> {
        self.arm();
        let mut rows = stmt.raw_query();
        loop {
            match rows.next() {
                Ok(Some(row)) => {
                    if !on_row(row) {
                        return Ok(());
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    if self.shared.tripped.load(Ordering::SeqCst) {
                        return Err(Fault::Timeout(self.limit));
                    }
                    if let Some(reason) = self.refusal() {
                        return Err(Fault::Refused(reason));
                    }
                    return Err(Fault::Failed(e));
                }
            }
        }
    }

    /// Prepares a query under the rules and refuses it unless it only reads and takes exactly
    /// `params` parameters. Returns the prepared statement (`None`: nothing but a comment) and
    /// its column names. The caller has called `begin` and calls `disarm`.
    fn prepare_query<'c>(
        &self,
        conn: &'c Connection,
        st: &Statement,
        params: usize,
    ) -> std::result::Result<(rusqlite::Statement<'c>, Vec<String>), Fault> {
        let (stmt, _) = self.prepare_judged(conn, st)?;
        let Some(stmt) = stmt else {
            return Err(Fault::Refused(
                "the statement is empty (only a comment); give one SELECT".into(),
            ));
        };
        if !stmt.readonly() {
            return Err(Fault::Refused(
                "it would write to the database; a query only reads".into(),
            ));
        }
        let wanted = stmt.parameter_count();
        if wanted != params {
            return Err(Fault::Refused(format!(
                "it has {wanted} parameter placeholder(s) and {params} --param value(s) were given; give one --param per placeholder, in order"
            )));
        }
        let columns = stmt.column_names().map(String::from).collect();
        Ok((stmt, columns))
    }

    /// Checks a query on `conn` without running it: the rules, that it only reads, and its
    /// parameter count. Returns its column names.
    pub fn check_query(
        &self,
        conn: &Connection,
        st: &Statement,
        params: usize,
    ) -> std::result::Result<Vec<String>, Fault> {
        self.begin();
        let r = self.prepare_query(conn, st, params).map(|(_, c)| c);
        self.disarm();
        r
    }

    /// Runs a query that only reads (checked as `check_query` does) with `params` bound in
    /// order as text, within the time limit: `columns` gets the column names first, then
    /// `on_row` each row until it returns false.
    pub fn stream_query(
        &self,
        conn: &Connection,
        st: &Statement,
        params: &[String],
        columns: &mut dyn FnMut(Vec<String>),
        on_row: &mut dyn FnMut(&rusqlite::Row<'_>) -> bool,
    ) -> std::result::Result<(), Fault> {
        self.begin();
        let r = self
            .prepare_query(conn, st, params.len())
            .and_then(|(mut stmt, names)| {
                for (i, p) in params.iter().enumerate() {
                    stmt.raw_bind_parameter(i + 1, p).map_err(Fault::Failed)?;
                }
                columns(names);
                self.step_all(&mut stmt, on_row)
            });
        self.disarm();
        r
    }

    /// A trigger or view runs later, in whatever statement fires or reads it, the API's
    /// included: what it would do is judged now. SQLite builds a trigger's program into every
    /// statement that may fire it, and a view's query into every statement that reads it, so
    /// preparing (never running) such statements asks the authorizer about their bodies.
    fn probe_stored(&self, conn: &Connection, acts: &[Act]) -> std::result::Result<(), Fault> {
        for a in acts {
            let (what, probes) = match a {
                Act::CreateTrigger(t) => {
                    let q = quote(t);
                    let col = first_column(conn, t).unwrap_or_else(|| "rowid".into());
                    (
                        format!("a trigger on '{t}'"),
                        vec![
                            format!("INSERT INTO {q} DEFAULT VALUES"),
                            format!("UPDATE {q} SET {c} = {c}", c = quote(&col)),
                            format!("DELETE FROM {q}"),
                        ],
                    )
                }
                Act::CreateView(v) => (
                    format!("view '{v}'"),
                    vec![format!("SELECT * FROM {}", quote(v))],
                ),
                _ => continue,
            };
            for sql in probes {
                self.begin();
                let prepared = conn.prepare(&sql).map(drop);
                self.shared.recording.store(false, Ordering::SeqCst);
                let inner: Vec<Act> = self
                    .shared
                    .acts
                    .lock()
                    .map(|v| v.clone())
                    .unwrap_or_default();
                // The probe's own write (an INSERT into the table) is not the body's.
                let body: Vec<Act> = inner.into_iter().skip(1).collect();
                if let Some(reason) = self
                    .refusal()
                    .or_else(|| internal_write(&body))
                    .or_else(|| monkctl_write(&body))
                {
                    return Err(Fault::Refused(format!(
                        "{what} would do this when it runs: {reason}"
                    )));
                }
                let _ = prepared;
            }
        }
        Ok(())
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn first_column(conn: &Connection, table: &str) -> Option<String> {
    conn.query_row(
        "SELECT name FROM pragma_table_info(?1) LIMIT 1",
        [table],
        |r| r.get::<_, String>(0),
    )
    .ok()
}

/// Whether the program of `sql` holds SQLite's `Vacuum` instruction: VACUUM is the one
/// statement the authorizer is never asked about.
fn vacuums(conn: &Connection, sql: &str) -> bool {
    let Ok(mut st) = conn.prepare(&format!("EXPLAIN {sql}")) else {
        // A statement that prepares cannot fail to prepare under EXPLAIN; if it does, refuse
        // rather than run something not looked at.
        return true;
    };
    let Ok(mut rows) = st.query([]) else {
        return true;
    };
    loop {
        match rows.next() {
            Ok(Some(r)) => {
                if r.get_ref(1)
                    .ok()
                    .and_then(|v| v.as_str().ok())
                    .is_some_and(|op| op.eq_ignore_ascii_case("vacuum"))
                {
                    return true;
                }
            }
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}

fn is_internal(table: &str) -> bool {
    table.len() >= 7 && table[..7].eq_ignore_ascii_case("sqlite_")
}

/// Tables monkctl keeps in a tenant: its migration history, its record of deployed fixtures,
/// an archive's metadata. Operator SQL may neither write nor reshape them.
pub const MONKCTL_TABLES: [&str; 3] = [
    "refinery_schema_history",
    "_monkctl_fixtures",
    "_monk_archive",
];

/// A statement that writes, creates, drops, alters or puts a trigger on one of
/// `MONKCTL_TABLES`: what monkctl records of a tenant would stop being true.
fn monkctl_write(acts: &[Act]) -> Option<String> {
    acts.iter()
        .find_map(|a| match a {
            Act::Insert(t)
            | Act::Update(t, _)
            | Act::Delete(t)
            | Act::CreateTable(t)
            | Act::DropTable(t)
            | Act::AlterTable(t)
            | Act::CreateTrigger(t) => MONKCTL_TABLES
                .iter()
                .find(|m| m.eq_ignore_ascii_case(t))
                .copied(),
            _ => None,
        })
        .map(|t| format!("it changes '{t}', which monkctl keeps as its record of the tenant"))
}

/// A write to SQLite's own tables by the statement itself. Creating or dropping an object
/// writes `sqlite_master` (and `sqlite_sequence`) as bookkeeping; a statement with no schema
/// change that writes them (`UPDATE sqlite_master`, `DELETE FROM sqlite_sequence`) is refused.
fn internal_write(acts: &[Act]) -> Option<String> {
    if acts.iter().any(Act::is_schema) {
        return None;
    }
    acts.iter()
        .filter_map(Act::written_table)
        .find(|t| is_internal(t))
        .map(|t| format!("it writes '{t}', which belongs to SQLite itself"))
}

/// The rules: `Err(reason)` refuses, `Ok(Some(act))` allows and remembers.
fn judge(kind: Kind, ctx: &AuthContext<'_>) -> std::result::Result<Option<Act>, String> {
    let s = |x: &str| x.to_string();
    let file_table = |t: &str| FILE_TABLES.iter().any(|f| f.eq_ignore_ascii_case(t));
    let raw = |t: &str| {
        Err(format!(
            "'{t}' reads or writes the database file's pages directly, below SQLite's tables"
        ))
    };
    match ctx.action {
        AuthAction::Attach { filename } => Err(format!(
            "ATTACH '{filename}' would open another file; operator SQL reaches its own tenant only"
        )),
        AuthAction::Detach { database_name } => Err(format!(
            "DETACH {database_name}: operator SQL may not attach or detach databases"
        )),
        AuthAction::Transaction { operation } => Err(format!(
            "{} ends or starts a transaction, and monkctl runs the whole file in one transaction of its own",
            op_name(operation)
        )),
        AuthAction::Savepoint { savepoint_name, .. } if kind == Kind::Query => Err(format!(
            "savepoint '{savepoint_name}': a query only reads"
        )),
        AuthAction::Savepoint { savepoint_name, .. } if kind == Kind::Migration => Err(format!(
            "savepoint '{savepoint_name}': a migration may not contain BEGIN, COMMIT, ROLLBACK or SAVEPOINT (each tenant runs in one transaction)"
        )),
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } if !pragma_allowed(pragma_name, pragma_value) => Err(format!(
            "PRAGMA {pragma_name}{} is not among the read-only PRAGMAs operator SQL may run; it could change the file's settings or headers",
            pragma_value.map(|v| format!(" = {v}")).unwrap_or_default()
        )),
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            Err("load_extension() would load code into monkctl; extensions stay disabled".into())
        }
        AuthAction::CreateVtable {
            table_name,
            module_name,
        } => {
            if VTAB_MODULES
                .iter()
                .any(|m| m.eq_ignore_ascii_case(module_name))
            {
                Ok(Some(Act::OtherSchema))
            } else {
                Err(format!(
                    "virtual table '{table_name}' of module '{module_name}': only {} are allowed",
                    VTAB_MODULES.join(", ")
                ))
            }
        }
        AuthAction::Read { table_name, .. } if file_table(table_name) => raw(table_name),
        AuthAction::Insert { table_name } if file_table(table_name) => raw(table_name),
        AuthAction::Update { table_name, .. } if file_table(table_name) => raw(table_name),
        AuthAction::Delete { table_name } if file_table(table_name) => raw(table_name),
        AuthAction::CreateTable { table_name } => Ok(Some(Act::CreateTable(s(table_name)))),
        AuthAction::DropTable { table_name } | AuthAction::DropVtable { table_name, .. } => {
            Ok(Some(Act::DropTable(s(table_name))))
        }
        AuthAction::DropIndex { index_name, .. } => Ok(Some(Act::DropIndex(s(index_name)))),
        AuthAction::DropView { view_name } => Ok(Some(Act::DropView(s(view_name)))),
        AuthAction::DropTrigger { trigger_name, .. } => {
            Ok(Some(Act::DropTrigger(s(trigger_name))))
        }
        AuthAction::AlterTable { table_name, .. } => Ok(Some(Act::AlterTable(s(table_name)))),
        AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::CreateTempTrigger { table_name, .. } => {
            Ok(Some(Act::CreateTrigger(s(table_name))))
        }
        AuthAction::CreateView { view_name } | AuthAction::CreateTempView { view_name } => {
            Ok(Some(Act::CreateView(s(view_name))))
        }
        AuthAction::CreateIndex { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. }
        | AuthAction::Analyze { .. }
        | AuthAction::Reindex { .. } => Ok(Some(Act::OtherSchema)),
        AuthAction::Insert { table_name } => Ok(Some(Act::Insert(s(table_name)))),
        AuthAction::Update {
            table_name,
            column_name,
        } => Ok(Some(Act::Update(s(table_name), s(column_name)))),
        AuthAction::Delete { table_name } => Ok(Some(Act::Delete(s(table_name)))),
        _ => Ok(None),
    }
}

fn op_name(op: TransactionOperation) -> &'static str {
    match op {
        TransactionOperation::Begin => "BEGIN",
        TransactionOperation::Rollback => "ROLLBACK",
        TransactionOperation::Release => "RELEASE",
        // SQLite names COMMIT (and END), which rusqlite does not map.
        _ => "COMMIT",
    }
}

// ---------------------------------------------------------------------------------------------
// scratch databases

fn scratch() -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch("PRAGMA temp_store=MEMORY;")?;
    system::register_functions(&conn)?;
    Ok(conn)
}

/// An in-memory database with the schema given as `CREATE` statements (from `sqlite_master`, in
/// creation order): never a file.
pub fn scratch_from_schema(schema: &[String]) -> rusqlite::Result<Connection> {
    let conn = scratch()?;
    for sql in schema {
        conn.execute_batch(sql)?;
    }
    Ok(conn)
}

/// An in-memory database at the baseline: the `system` fixture's schema and rows.
pub fn scratch_baseline() -> rusqlite::Result<Connection> {
    let conn = scratch()?;
    conn.execute_batch(system::SYSTEM_SQL)?;
    Ok(conn)
}

/// A label for a scratch database in errors.
pub fn scratch_path() -> PathBuf {
    PathBuf::from("<scratch copy in memory>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: Kind, setup: &str, sql: &str) -> std::result::Result<Vec<Act>, Fault> {
        let mut c = scratch_baseline().unwrap();
        c.execute_batch(setup).unwrap();
        let g = install(&mut c, kind, Duration::from_millis(300)).unwrap();
        let mut last = Ok(Vec::new());
        for st in split(sql) {
            last = g.run(&c, &st);
            if last.is_err() {
                break;
            }
        }
        last
    }

    fn refused(sql: &str) -> String {
        match run(Kind::Migration, "", sql) {
            Err(Fault::Refused(r)) => r,
            other => panic!("{sql}: not refused: {other:?}"),
        }
    }

    #[test]
    fn every_escape_is_refused() {
        assert!(refused("ATTACH 'x.db' AS o").contains("ATTACH"));
        assert!(refused("DETACH main").contains("DETACH"));
        assert!(refused("SELECT * FROM sqlite_dbpage").contains("sqlite_dbpage"));
        assert!(refused("SELECT count(*) FROM sqlite_dbpage").contains("sqlite_dbpage"));
        assert!(
            refused("UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 2")
                .contains("sqlite_dbpage")
        );
        assert!(refused("SELECT * FROM dbstat").contains("dbstat"));
        assert!(refused("CREATE VIRTUAL TABLE d USING dbstat").contains("dbstat"));
        assert!(refused("PRAGMA writable_schema = ON").contains("writable_schema"));
        assert!(refused("PRAGMA journal_mode = DELETE").contains("journal_mode"));
        assert!(refused("PRAGMA page_size = 1024").contains("page_size"));
        assert!(refused("VACUUM").contains("VACUUM"));
        assert!(refused("VACUUM INTO 'copy.db'").contains("VACUUM"));
        assert!(refused("VACUUM INTO lower('COPY.db')").contains("VACUUM"));
        assert!(
            refused("VACUUM INTO (SELECT name || '.db' FROM users LIMIT 1)").contains("VACUUM")
        );
        assert!(refused("SELECT load_extension('x')").contains("load_extension"));
        assert!(refused("BEGIN").contains("BEGIN"));
        assert!(refused("COMMIT").contains("COMMIT"));
        assert!(refused("SAVEPOINT a").contains("savepoint"));
        assert!(refused("DELETE FROM sqlite_sequence").contains("sqlite_sequence"));
        // Stored code is judged when it is created. (SQLite itself refuses raw-page tables in
        // triggers and views: "unsafe use of virtual table".)
        let t = refused(
            "CREATE TABLE t (a); CREATE TRIGGER tr AFTER UPDATE ON t BEGIN DELETE FROM sqlite_sequence; END;",
        );
        assert!(
            t.contains("trigger on 't'") && t.contains("sqlite_sequence"),
            "{t}"
        );
        // SQLite itself refuses this one while preparing it (writable_schema is refused above).
        assert!(run(Kind::Migration, "", "UPDATE sqlite_master SET sql = 'x'").is_err());
        // monkctl's own records of the tenant.
        let history = "CREATE TABLE refinery_schema_history (version int4 PRIMARY KEY, name TEXT, applied_on TEXT, checksum TEXT);";
        for sql in [
            "DELETE FROM refinery_schema_history",
            "INSERT INTO refinery_schema_history VALUES (9, 'x', 'now', '1')",
            "DROP TABLE refinery_schema_history",
            "ALTER TABLE refinery_schema_history ADD COLUMN x",
            "CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM refinery_schema_history; END",
        ] {
            assert!(run(Kind::Migration, history, sql).is_err(), "{sql}");
        }
        assert!(run(Kind::Fixture, "", "CREATE TABLE _monkctl_fixtures (name)").is_err());
        assert!(run(
            Kind::Migration,
            history,
            "SELECT count(*) FROM refinery_schema_history"
        )
        .is_ok());
    }

    #[test]
    fn ordinary_statements_pass_and_report_their_actions() {
        let acts = run(Kind::Migration, "", "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, x); INSERT INTO t (x) VALUES (1); PRAGMA table_info(t); DROP TABLE t;").unwrap();
        assert!(acts.contains(&Act::DropTable("t".into())), "{acts:?}");
        assert!(run(
            Kind::Fixture,
            "",
            "CREATE TABLE n (b); SAVEPOINT s; INSERT INTO n VALUES (1); ROLLBACK TO s; RELEASE s;"
        )
        .is_ok());
        assert!(run(
            Kind::Fixture,
            "",
            "CREATE VIRTUAL TABLE f USING fts5 (body);"
        )
        .is_ok());
    }

    #[test]
    fn an_endless_statement_times_out() {
        let r = run(
            Kind::Fixture,
            "",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;",
        );
        assert!(matches!(r, Err(Fault::Timeout(_))), "{r:?}");
    }

    #[test]
    fn a_query_only_reads_and_streams_its_rows() {
        let mut c = scratch_baseline().unwrap();
        c.execute_batch("CREATE TABLE n (x INTEGER); INSERT INTO n VALUES (1), (2), (3);")
            .unwrap();
        let g = install(&mut c, Kind::Query, Duration::from_millis(300)).unwrap();
        let st = |sql: &str| Statement {
            line: 1,
            sql: sql.into(),
        };
        let mut cols = Vec::new();
        let mut seen = Vec::new();
        g.stream_query(
            &c,
            &st("SELECT x FROM n WHERE x >= ? ORDER BY x"),
            &["2".into()],
            &mut |c| cols = c,
            &mut |r| {
                seen.push(r.get::<_, i64>(0).unwrap());
                true
            },
        )
        .unwrap();
        assert_eq!((cols, seen), (vec!["x".to_string()], vec![2, 3]));
        for sql in [
            "DELETE FROM n",
            "INSERT INTO n VALUES (4)",
            "CREATE TABLE m (y)",
            "SAVEPOINT s",
            "ATTACH 'x.db' AS o",
            "PRAGMA user_version = 3",
        ] {
            assert!(
                matches!(g.check_query(&c, &st(sql), 0), Err(Fault::Refused(_))),
                "{sql}"
            );
        }
        assert!(matches!(
            g.check_query(&c, &st("SELECT ?"), 0),
            Err(Fault::Refused(_))
        ));
        assert!(matches!(
            g.check_query(&c, &st("SELECT * FROM nowhere"), 0),
            Err(Fault::Failed(_))
        ));
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
        let r = g.stream_query(&c, &st(endless), &[], &mut |_| {}, &mut |_| true);
        assert!(matches!(r, Err(Fault::Timeout(_))), "{r:?}");
        // Nothing was written.
        let n: i64 = c
            .query_row("SELECT count(*) FROM n", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn split_counts_lines() {
        let s = split("-- head\nCREATE TABLE a (x);\n\nINSERT INTO a VALUES (';');\nSELECT 1");
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].line, 2);
        assert_eq!(s[1].line, 4);
        assert_eq!(s[2].line, 5);
    }

    #[test]
    fn pragma_allowlist() {
        assert!(pragma_allowed("table_info", Some("people")));
        assert!(pragma_allowed("FOREIGN_KEY_CHECK", None));
        assert!(pragma_allowed("user_version", None));
        assert!(!pragma_allowed("user_version", Some("42")));
        assert!(!pragma_allowed("writable_schema", Some("ON")));
        assert!(!pragma_allowed("writable_schema", None));
        assert!(!pragma_allowed("optimize", None));
        assert!(!pragma_allowed("ignore_check_constraints", Some("ON")));
        assert!(!pragma_allowed("defer_foreign_keys", Some("1")));
        assert!(!pragma_allowed("journal_mode", Some("DELETE")));
        assert!(!pragma_allowed("wal_checkpoint", None));
    }
}
