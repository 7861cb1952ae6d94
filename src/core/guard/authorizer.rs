//! The guard installed on one connection: its authorizer (which records what a statement asks
//! permission for and refuses what the rules refuse) and its progress handler (the time limit);
//! running operator statements and read-only queries under it; and why a statement did not
//! complete (`Fault`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthContext, Authorization};
use rusqlite::Connection;

use super::rules::{internal_write, judge, monkctl_write, vacuums, Act};
use super::split::{shorten, Statement};
use super::Kind;
use crate::core::db::quote_ident;
use crate::core::error::Error;

/// SQLite calls the progress handler every this many virtual-machine instructions.
const PROGRESS_STEPS: i32 = 10_000;

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
                    let q = quote_ident(t);
                    let col = first_column(conn, t).unwrap_or_else(|| "rowid".into());
                    (
                        format!("a trigger on '{t}'"),
                        vec![
                            format!("INSERT INTO {q} DEFAULT VALUES"),
                            format!("UPDATE {q} SET {c} = {c}", c = quote_ident(&col)),
                            format!("DELETE FROM {q}"),
                        ],
                    )
                }
                Act::CreateView(v) => (
                    format!("view '{v}'"),
                    vec![format!("SELECT * FROM {}", quote_ident(v))],
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

fn first_column(conn: &Connection, table: &str) -> Option<String> {
    conn.query_row(
        "SELECT name FROM pragma_table_info(?1) LIMIT 1",
        [table],
        |r| r.get::<_, String>(0),
    )
    .ok()
}
