//! `monkctl query` on PostgreSQL: the statement in every selected tenant schema.
//!
//! Read-only is enforced by PostgreSQL: each tenant is queried in a `READ ONLY` transaction with
//! `search_path` set to its schema alone and `statement_timeout` as the time limit. Before any
//! tenant runs it, the statement passes the PostgreSQL guard (`guard_postgres`: one query, no
//! name of another schema, no catalog, no function that reads files or settings) and is prepared
//! on the selected tenants in order until one prepares it: a refusal, a statement that is not a
//! query, or a wrong number of `--param` values fails the command (exit 2) with nothing run.
//! Parameters are bound as text, as on SQLite (`$1::uuid` casts one).
//!
//! Rows come back as one JSON array per row (`json_each(row_to_json(q))` keeps the columns'
//! order and duplicates), so every PostgreSQL type arrives without a decoder of its own:
//! numbers and booleans as numbers (booleans 1/0, as SQLite stores them), text as text, and
//! everything else (uuid, timestamps, arrays, json) as its text.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use postgres::types::Type;
use postgres::Client;
use rusqlite::types::Value;

use super::{fan_out, Msg, Request, Sink, Target, TenantResult, Totals, CHUNK_ROWS};
use crate::core::backend::postgres::{ident, Registry, Target as PgTarget};
use crate::core::error::{exit, Error, Result};
use crate::core::guard::Statement;
use crate::core::{guard_postgres, ids, names};

pub(super) fn run(
    target: &PgTarget,
    req: &Request,
    st: &Statement,
    sink: &mut dyn Sink,
) -> Result<Totals> {
    let target = std::sync::Arc::new(PgTarget::new(&target.url)?);
    let mut reg = Registry::open_existing(&target)?;
    let targets = select(&mut reg, req)?;
    let schemas = crate::core::backend::postgres::schemas(&mut reg.client, &target)?;
    let path = req.file.clone().unwrap_or_else(|| PathBuf::from("<query>"));
    let refused = |message: String| Error::Refused {
        path: path.clone(),
        line: st.line,
        message: format!("the statement is refused: {message}; no tenant ran it"),
    };
    let checked = guard_postgres::check(&st.sql, &path, "", &schemas)?;
    let [one] = checked.as_slice() else {
        return Err(refused("a query runs exactly one statement".into()));
    };
    if !one.is_query {
        return Err(refused(
            "only a query (SELECT, VALUES, WITH ... SELECT) may run in `query`".into(),
        ));
    }
    let sql = one.sql.clone();
    let columns = probe(&mut reg.client, &target, &targets, &sql, req, &refused)?;
    drop(reg);
    if !sink.columns(&columns) {
        return Ok(Totals::default());
    }
    let wrapped = format!(
        "SELECT (SELECT coalesce(json_agg(value), '[]'::json) FROM json_each(row_to_json(q)))::text \
         FROM ({sql}) AS q"
    );
    let mut it = targets.into_iter();
    let work = |conn: &mut Option<Client>, t: &Target, tx: &SyncSender<Msg>| {
        query_schema(&target, conn, req, &wrapped, t, tx)
    };
    fan_out(req.jobs, &mut || Ok(it.next()), &work, sink)
}

/// The selected tenants in name order (PostgreSQL tenants of the registry; deleted ones never).
fn select(reg: &mut Registry, req: &Request) -> Result<Vec<Target>> {
    let sel = &req.selection;
    if sel.tenants.is_empty() && !sel.all && sel.status.is_none() {
        return Err(Error::Usage(
            "say which tenants to query: name them, or pass --all (or --status S)".into(),
        ));
    }
    let rows = if sel.tenants.is_empty() {
        reg.all()?
            .into_iter()
            .filter(|t| !t.is_deleted() && t.db_type == "postgresql")
            .collect::<Vec<_>>()
    } else {
        let mut out = Vec::new();
        for n in &sel.tenants {
            names::tenant(n)?;
            let row = reg
                .find(n)?
                .ok_or_else(|| Error::TenantNotFound(n.clone()))?;
            if row.is_deleted() {
                return Err(Error::Conflict(format!(
                    "tenant '{n}' is deleted and is never queried"
                )));
            }
            out.push(row);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        out
    };
    Ok(rows
        .into_iter()
        .filter(|t| sel.status.as_ref().is_none_or(|s| *s == t.status))
        .map(|t| Target {
            name: t.name,
            path: PathBuf::new(),
            schema: Some(t.schema),
        })
        .collect())
}

/// Opens a read-only transaction in `schema` with the time limit.
fn begin<'c>(
    client: &'c mut Client,
    target: &PgTarget,
    schema: &str,
    limit_ms: u128,
) -> Result<postgres::Transaction<'c>> {
    let err = |e| target.error(Some(schema), e);
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(err)?;
    tx.batch_execute(&format!(
        "SET LOCAL search_path TO {}; SET LOCAL statement_timeout = {}",
        ident(schema),
        limit_ms.max(1)
    ))
    .map_err(err)?;
    Ok(tx)
}

/// Prepares the statement on the targets in order until one prepares it: its columns, and its
/// placeholders against `--param`.
fn probe(
    client: &mut Client,
    target: &PgTarget,
    targets: &[Target],
    sql: &str,
    req: &Request,
    refused: &dyn Fn(String) -> Error,
) -> Result<Vec<String>> {
    for t in targets {
        let Some(schema) = &t.schema else { continue };
        let Ok(mut tx) = begin(client, target, schema, req.timeout.as_millis()) else {
            continue;
        };
        let types = vec![Type::TEXT; req.params.len()];
        let prepared = tx.prepare_typed(sql, &types);
        let _ = tx.rollback();
        let Ok(stmt) = prepared else { continue };
        if stmt.params().len() != req.params.len() {
            return Err(refused(format!(
                "it has {} placeholder(s) and {} --param value(s) were given",
                stmt.params().len(),
                req.params.len()
            )));
        }
        return Ok(stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect());
    }
    Ok(Vec::new())
}

fn query_schema(
    target: &PgTarget,
    conn: &mut Option<Client>,
    req: &Request,
    wrapped: &str,
    t: &Target,
    tx: &SyncSender<Msg>,
) {
    let start = Instant::now();
    let mut rows = 0u64;
    let schema = t.schema.clone().unwrap_or_default();
    let outcome = (|| -> Result<()> {
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            *conn = Some(target.connect()?);
        }
        let client = conn.as_mut().expect("connected above");
        let mut txn = begin(client, target, &schema, req.timeout.as_millis())?;
        let err = |e: postgres::Error| query_error(target, &schema, req, e);
        let types = vec![Type::TEXT; req.params.len()];
        let stmt = txn.prepare_typed(wrapped, &types).map_err(err)?;
        let columns = req_columns(&mut txn, wrapped, &types);
        if tx.send(Msg::Columns(columns)).is_err() {
            return Ok(());
        }
        let params: Vec<&str> = req.params.iter().map(String::as_str).collect();
        let mut it = txn.query_raw(&stmt, params).map_err(err)?;
        let mut chunk: Vec<Vec<Value>> = Vec::with_capacity(CHUNK_ROWS);
        use postgres::fallible_iterator::FallibleIterator;
        while let Some(row) = it.next().map_err(err)? {
            let text: String = row.get(0);
            chunk.push(values(&text));
            rows += 1;
            if chunk.len() == CHUNK_ROWS {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                if tx.send(Msg::Rows(full)).is_err() {
                    return Ok(());
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(Msg::Rows(chunk));
        }
        drop(it);
        txn.rollback().map_err(err)?;
        Ok(())
    })();
    let (error, exit_code) = match outcome {
        Ok(()) => (None, exit::SUCCESS),
        Err(e) => (Some(e.to_string()), e.exit_code()),
    };
    let _ = tx.send(Msg::Done(TenantResult {
        tenant: t.name.clone(),
        rows,
        ms: start.elapsed().as_millis() as u64,
        error,
        exit_code,
    }));
}

/// The columns of the operator's statement (not of the wrapper), as this tenant sees them.
fn req_columns(txn: &mut postgres::Transaction<'_>, wrapped: &str, types: &[Type]) -> Vec<String> {
    let inner = wrapped
        .split_once(" FROM (")
        .and_then(|(_, rest)| rest.strip_suffix(") AS q"))
        .unwrap_or(wrapped);
    txn.prepare_typed(inner, types)
        .map(|s| s.columns().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default()
}

/// A tenant's failure: the time limit (exit 20) and a statement that tried to write (exit 2)
/// have their own codes; any other failure of the statement is the tenant's (exit 1).
fn query_error(target: &PgTarget, schema: &str, req: &Request, e: postgres::Error) -> Error {
    use postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::QUERY_CANCELED => Error::Postgres {
            target: target.at(Some(schema)),
            detail: format!(
                "the statement ran longer than the limit of {} and was stopped; make it cheaper, or raise --timeout",
                ids::format_wait(req.timeout)
            ),
            exit: exit::STATEMENT_TIMEOUT,
        },
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => Error::Postgres {
            target: target.at(Some(schema)),
            detail: "the statement would write; `query` only reads".into(),
            exit: exit::USAGE,
        },
        _ => {
            let err = target.error(Some(schema), e);
            match err {
                Error::Postgres { target, detail, exit: code } => Error::Postgres {
                    target,
                    detail,
                    exit: match code {
                        exit::BUSY | exit::PERMISSION | exit::UNREACHABLE => code,
                        _ => exit::FAILURE,
                    },
                },
                other => other,
            }
        }
    }
}

/// One row's JSON array as values: integers, reals, text; booleans 1/0; nested JSON as text.
fn values(text: &str) -> Vec<Value> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return vec![Value::Text(text.to_string())];
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Integer(i64::from(b)),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Integer(i),
                None => n
                    .as_f64()
                    .map(Value::Real)
                    .unwrap_or_else(|| Value::Text(n.to_string())),
            },
            serde_json::Value::String(s) => Value::Text(s),
            other => Value::Text(other.to_string()),
        })
        .collect()
}
