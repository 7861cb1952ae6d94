//! `monkctl query`: one read-only statement run in every selected tenant, in parallel, its rows
//! streamed in tenant (name) order.
//!
//! Read-only is enforced by SQLite, never judged from the text: every tenant is read through a
//! read-only connection (`immutable` when the file is quiet, `db::read_once`) with the guard
//! (`guard::Kind::Query`: no ATTACH, no raw-page tables, a PRAGMA allowlist, no
//! `load_extension`) installed, and the statement must be `readonly()` as SQLite prepared it.
//! Before any tenant runs it, it is prepared (never run) on the selected tenants in order until
//! one prepares: a refusal there, a statement that would write, or a wrong number of `--param`
//! values fails the command (exit 2) with nothing run.
//!
//! Memory is flat in tenants and rows: workers hand rows over in chunks through a bounded
//! channel per tenant; the caller's sink takes the tenants in order, and a worker whose
//! tenant's channel is full waits until its turn comes.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use serde::Serialize;

use super::error::{exit, Error, Result};
use super::guard::{self, Fault, Kind, Statement};
use super::registry::Registry;
use super::{db, ids, names, Workspace};

/// The default time limit of the statement in each tenant.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows handed over at a time, and chunks a tenant's channel holds before its worker waits.
const CHUNK_ROWS: usize = 256;
const CHUNKS_PER_TENANT: usize = 4;

/// Which tenants a query covers: the named ones, or the fleet (every tenant not deleted), each
/// optionally only those with `status`. Deleted tenants are never queried.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub tenants: Vec<String>,
    pub all: bool,
    pub status: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Request {
    /// The statement's text, and the file it came from (`None`: the command line).
    pub sql: String,
    pub file: Option<PathBuf>,
    pub selection: Selection,
    pub params: Vec<String>,
    pub jobs: usize,
    pub timeout: Duration,
}

/// How one tenant's query ended (the `--summary` row).
#[derive(Debug, Clone, Serialize)]
pub struct TenantResult {
    pub tenant: String,
    /// Rows the tenant returned.
    #[serde(rename = "row_count")]
    pub rows: u64,
    pub ms: u64,
    pub error: Option<String>,
    pub exit_code: i32,
}

/// Where the results go, on the calling thread, in tenant order. `columns` is called once,
/// before anything else, with the columns of the statement as the first tenant that prepared
/// it sees them. `rows` and `done` return false when nothing more is wanted (the reader went
/// away): the run then stops.
pub trait Sink {
    fn columns(&mut self, columns: &[String]) -> bool;
    fn rows(&mut self, tenant: &str, columns: &[String], rows: &[Vec<Value>]) -> bool;
    fn done(&mut self, result: &TenantResult) -> bool;
}

/// What a run did: tenants queried, how many failed, and the exit code.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub tenants: usize,
    pub failed: usize,
    pub exit_code: i32,
}

/// The one statement of a request: from the command line or a file (`guard::read_source`), split
/// with SQLite's tokenizer; empty or several statements are refused (exit 2).
pub fn statement(sql: Option<String>, file: Option<&Path>) -> Result<Statement> {
    let (text, label) = match (sql, file) {
        (_, Some(path)) => (guard::read_source(path)?, path.display().to_string()),
        (Some(s), None) => (s, "the statement".to_string()),
        (None, None) => {
            return Err(Error::Usage(
                "give the statement as an argument or with --file FILE".into(),
            ))
        }
    };
    if text.contains('\0') {
        return Err(Error::Usage(format!(
            "{label} holds a NUL byte; SQLite would stop reading there: remove it"
        )));
    }
    let mut st = guard::split(&text);
    match st.len() {
        0 => Err(Error::Usage(format!(
            "{label} is empty (nothing but blanks or comments); give one SELECT"
        ))),
        1 => Ok(st.remove(0)),
        n => Err(Error::Usage(format!(
            "{label} holds {n} statements (the second on line {}); a query runs exactly one: run them one by one",
            st[1].line
        ))),
    }
}

/// A tenant to query: its file (SQLite) or its schema (PostgreSQL, `path` empty).
#[derive(Debug, Clone)]
struct Target {
    name: String,
    path: PathBuf,
    schema: Option<String>,
}

/// The selected tenants in name order: named ones checked up front (an unknown name is exit 3
/// before anything runs), the fleet read from the registry a page at a time.
struct Targets<'a> {
    ws: &'a Workspace,
    reg: &'a Registry,
    named: Option<std::vec::IntoIter<Target>>,
    status: Option<String>,
    after: String,
    page: std::vec::IntoIter<Target>,
    done: bool,
}

const PAGE: usize = 512;

#[path = "query_postgres.rs"]
mod postgres;

impl<'a> Targets<'a> {
    fn new(ws: &'a Workspace, reg: &'a Registry, sel: &Selection) -> Result<Targets<'a>> {
        let named = if sel.tenants.is_empty() {
            if !sel.all && sel.status.is_none() {
                return Err(Error::Usage(
                    "say which tenants to query: name them, or pass --all (or --status S)".into(),
                ));
            }
            None
        } else {
            let mut out: Vec<Target> = Vec::new();
            for n in &sel.tenants {
                names::tenant(n)?;
                let row = reg.get(n)?;
                if row.is_deleted() {
                    return Err(Error::Conflict(format!(
                        "tenant '{n}' is deleted: its file is in the trash and is never queried"
                    )));
                }
                if sel.status.as_ref().is_some_and(|s| *s != row.status) {
                    continue;
                }
                if out.iter().any(|t| t.name == row.name) {
                    continue;
                }
                out.push(Target {
                    path: ws.layout.tenant_path(&row.database, &row.schema)?,
                    name: row.name,
                    schema: None,
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Some(out.into_iter())
        };
        Ok(Targets {
            ws,
            reg,
            named,
            status: sel.status.clone(),
            after: String::new(),
            page: Vec::new().into_iter(),
            done: false,
        })
    }

    fn next(&mut self) -> Result<Option<Target>> {
        if let Some(it) = &mut self.named {
            return Ok(it.next());
        }
        loop {
            if let Some(t) = self.page.next() {
                return Ok(Some(t));
            }
            if self.done {
                return Ok(None);
            }
            let rows = self.reg.locations_after(&self.after, PAGE)?;
            self.done = rows.len() < PAGE;
            if let Some(last) = rows.last() {
                self.after.clone_from(&last.name);
            }
            let mut page = Vec::with_capacity(rows.len());
            for l in rows {
                if l.deleted || self.status.as_ref().is_some_and(|s| *s != l.status) {
                    continue;
                }
                page.push(Target {
                    path: self.ws.layout.tenant_path(&l.database, &l.schema)?,
                    name: l.name,
                    schema: None,
                });
            }
            self.page = page.into_iter();
        }
    }
}

/// What a worker hands over for its tenant.
enum Msg {
    Columns(Vec<String>),
    Rows(Vec<Vec<Value>>),
    Done(TenantResult),
}

/// Opens `path` for reading with the guard installed, and runs `f` with the connection and the
/// guard.
fn with_guard<T>(
    path: &Path,
    limit: Duration,
    f: impl FnOnce(&rusqlite::Connection, &guard::Guard) -> Result<T>,
) -> Result<T> {
    db::read_once(path, |conn| {
        let g = guard::install(conn, Kind::Query, limit).map_err(|e| Error::sqlite(path, e))?;
        f(conn, &g)
    })
}

fn refused(req: &Request, st: &Statement, reason: String) -> Error {
    Error::Refused {
        path: req.file.clone().unwrap_or_else(|| PathBuf::from("<query>")),
        line: st.line,
        message: format!(
            "the statement is refused: {reason}: `{}`; no tenant ran it",
            guard::shorten(&st.sql)
        ),
    }
}

/// Prepares the statement on the targets in order until one prepares it, and judges it there.
/// Returns its columns (empty when no tenant could prepare it: each will report why).
fn probe(ws: &Workspace, reg: &Registry, req: &Request, st: &Statement) -> Result<Vec<String>> {
    let mut targets = Targets::new(ws, reg, &req.selection)?;
    while let Some(t) = targets.next()? {
        let judged = with_guard(&t.path, req.timeout, |conn, g| {
            Ok(g.check_query(conn, st, req.params.len()))
        });
        match judged {
            Ok(Ok(columns)) => return Ok(columns),
            Ok(Err(Fault::Refused(reason))) => return Err(refused(req, st, reason)),
            // Fails here (a table this tenant lacks), or the tenant cannot be read: the next.
            Ok(Err(_)) | Err(_) => continue,
        }
    }
    Ok(Vec::new())
}

/// Queries one tenant, sending its columns, rows and result to `tx`; stops when the receiver
/// went away.
fn query_tenant(req: &Request, st: &Statement, t: &Target, tx: &SyncSender<Msg>) {
    use std::cell::Cell;
    let start = Instant::now();
    let mut rows = 0u64;
    let gone = Cell::new(false);
    let width = Cell::new(0usize);
    let outcome = with_guard(&t.path, req.timeout, |conn, g| {
        let mut chunk: Vec<Vec<Value>> = Vec::with_capacity(CHUNK_ROWS);
        let r = g.stream_query(
            conn,
            st,
            &req.params,
            &mut |cols| {
                width.set(cols.len());
                if tx.send(Msg::Columns(cols)).is_err() {
                    gone.set(true);
                }
            },
            &mut |row| {
                if gone.get() {
                    return false;
                }
                let mut v = Vec::with_capacity(width.get());
                for i in 0..width.get() {
                    v.push(row.get::<_, Value>(i).unwrap_or(Value::Null));
                }
                chunk.push(v);
                rows += 1;
                if chunk.len() == CHUNK_ROWS {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                    if tx.send(Msg::Rows(full)).is_err() {
                        gone.set(true);
                    }
                }
                !gone.get()
            },
        );
        if !chunk.is_empty() && !gone.get() {
            let _ = tx.send(Msg::Rows(chunk));
        }
        Ok(r)
    });
    let (error, exit_code) = match outcome {
        Ok(Ok(())) => (None, exit::SUCCESS),
        Ok(Err(Fault::Refused(reason))) => (Some(format!("refused: {reason}")), exit::USAGE),
        Ok(Err(Fault::Timeout(limit))) => (
            Some(format!(
                "the statement ran longer than the limit of {} and was stopped; make it cheaper, or raise --timeout",
                ids::format_wait(limit)
            )),
            exit::STATEMENT_TIMEOUT,
        ),
        Ok(Err(Fault::Failed(e))) => {
            let err = Error::sqlite(&t.path, e);
            let code = match err.exit_code() {
                exit::CORRUPT | exit::BUSY | exit::PERMISSION | exit::DISK_FULL => err.exit_code(),
                _ => exit::FAILURE,
            };
            let msg = match err {
                Error::Sqlite { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            (Some(msg), code)
        }
        Err(e) => (Some(e.to_string()), e.exit_code()),
    };
    crate::core::pause_point("query.tenant.done");
    let _ = tx.send(Msg::Done(TenantResult {
        tenant: t.name.clone(),
        rows,
        ms: start.elapsed().as_millis() as u64,
        error,
        exit_code,
    }));
}

/// Runs the request: checks the statement (exit 2 with nothing run), then queries every
/// selected tenant on `jobs` threads and hands the results to `sink` in tenant order.
pub fn run(ws: &Workspace, req: &Request, sink: &mut dyn Sink) -> Result<Totals> {
    let st = statement(Some(req.sql.clone()), None)?;
    if let super::Backend::Postgres(t) = &ws.backend {
        return postgres::run(t, req, &st, sink);
    }
    let reg = ws.registry()?;
    let columns = probe(ws, &reg, req, &st)?;
    if !sink.columns(&columns) {
        return Ok(Totals::default());
    }
    let mut targets = Targets::new(ws, &reg, &req.selection)?;
    fan_out(
        req.jobs,
        &mut || targets.next(),
        &|_: &mut (), t: &Target, tx: &SyncSender<Msg>| query_tenant(req, &st, t, tx),
        sink,
    )
}

/// Hands the targets to `jobs` workers (each with its own `W`, such as a connection) and the
/// results to `sink` in target order; each tenant's rows wait in a bounded channel until its
/// turn, so memory stays flat.
fn fan_out<W: Default>(
    jobs: usize,
    next: &mut dyn FnMut() -> Result<Option<Target>>,
    work: &(dyn Fn(&mut W, &Target, &SyncSender<Msg>) + Sync),
    sink: &mut dyn Sink,
) -> Result<Totals> {
    let mut totals = Totals::default();
    let mut codes: Option<Option<i32>> = None;
    let jobs = jobs.max(1);
    let ahead = jobs * 2;
    let (work_tx, work_rx) = mpsc::sync_channel::<(Target, SyncSender<Msg>)>(ahead);
    let work_rx = Mutex::new(work_rx);
    let mut feed_error = None;
    let _stoppable = crate::core::Stoppable::begin();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let work_rx = &work_rx;
            s.spawn(move || {
                let mut state = W::default();
                loop {
                    let job = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((t, tx)) = job else { break };
                    // Ctrl-C: the tenants being queried finish, the queued ones do not start.
                    if crate::core::interrupted() {
                        let _ = tx.send(Msg::Done(not_started(&t.name)));
                        continue;
                    }
                    work(&mut state, &t, &tx);
                }
            });
        }
        let mut work_tx = Some(work_tx);
        let mut pending: VecDeque<(String, Receiver<Msg>)> = VecDeque::new();
        let mut wanted = true;
        loop {
            while wanted && pending.len() < ahead {
                let Some(tx) = &work_tx else { break };
                if crate::core::interrupted() {
                    work_tx = None;
                    break;
                }
                match next() {
                    Ok(Some(t)) => {
                        let (rtx, rrx) = mpsc::sync_channel(CHUNKS_PER_TENANT);
                        pending.push_back((t.name.clone(), rrx));
                        if tx.send((t, rtx)).is_err() {
                            break;
                        }
                    }
                    Ok(None) => {
                        work_tx = None;
                    }
                    Err(e) => {
                        feed_error = Some(e);
                        work_tx = None;
                    }
                }
            }
            if !wanted {
                break;
            }
            let Some((name, rx)) = pending.pop_front() else {
                break;
            };
            let mut cols: Vec<String> = Vec::new();
            loop {
                match rx.recv() {
                    Ok(Msg::Columns(c)) => cols = c,
                    Ok(Msg::Rows(rows)) => {
                        if !sink.rows(&name, &cols, &rows) {
                            wanted = false;
                            break;
                        }
                    }
                    Ok(Msg::Done(r)) => {
                        count(&mut totals, &mut codes, &r);
                        if !sink.done(&r) {
                            wanted = false;
                        }
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        // Dropping the queue ends the workers; dropping the receivers ends any tenant running.
        drop(work_tx);
        drop(pending);
        // Interrupted: the tenants never handed out are reported as not started.
        while wanted && feed_error.is_none() && crate::core::interrupted() {
            match next() {
                Ok(Some(t)) => {
                    let r = not_started(&t.name);
                    count(&mut totals, &mut codes, &r);
                    wanted = sink.done(&r);
                }
                Ok(None) => break,
                Err(e) => feed_error = Some(e),
            }
        }
    });
    if let Some(e) = feed_error {
        return Err(e);
    }
    totals.exit_code = if totals.failed == 0 {
        exit::SUCCESS
    } else if totals.failed == totals.tenants {
        codes.flatten().unwrap_or(exit::PARTIAL)
    } else {
        exit::PARTIAL
    };
    Ok(totals)
}

/// Adds a tenant's result to the totals; `codes` is the one exit code every failure had so far
/// (`Some(None)` once they differ).
fn count(totals: &mut Totals, codes: &mut Option<Option<i32>>, r: &TenantResult) {
    totals.tenants += 1;
    if r.error.is_some() {
        totals.failed += 1;
        *codes = Some(match *codes {
            None => Some(r.exit_code),
            Some(Some(c)) if c == r.exit_code => Some(c),
            Some(_) => None,
        });
    }
}

/// The result of a tenant a Ctrl-C kept from starting.
fn not_started(tenant: &str) -> TenantResult {
    TenantResult {
        tenant: tenant.to_string(),
        rows: 0,
        ms: 0,
        error: Some(Error::Interrupted.to_string()),
        exit_code: Error::Interrupted.exit_code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_only() {
        assert!(statement(Some("SELECT 1".into()), None).is_ok());
        assert!(statement(Some("SELECT 1;".into()), None).is_ok());
        for bad in ["", "  -- nothing\n", "SELECT 1; SELECT 2", "SELECT 1\0"] {
            let e = statement(Some(bad.into()), None).unwrap_err();
            assert_eq!(e.exit_code(), exit::USAGE, "{bad:?}: {e}");
        }
    }
}
