//! `monkctl query`: the adapter from arguments to `core::query`, and the rendering of its rows
//! (JSON and CSV stream as they come; a table collects).

use std::io::{self, Write};

use rusqlite::types::Value;

use crate::cli::{Format, GlobalArgs, QueryArgs};
use crate::core::query::{self, Request, Selection, Sink, TenantResult};
use crate::core::{ids, Error};
use crate::output::{self, Table};

use super::{workspace, Outcome};

pub fn run(g: &GlobalArgs, a: QueryArgs) -> Outcome {
    let timeout =
        ids::parse_wait(&a.timeout).map_err(|e| Error::Usage(format!("--timeout: {e}")))?;
    if timeout.is_zero() {
        return Err(
            Error::Usage("--timeout: give a limit above zero, like 500ms or 5s".into()).into(),
        );
    }
    // With --file, every positional argument names a tenant.
    let (sql, tenants) = match a.file {
        Some(_) => (None, a.sql.into_iter().chain(a.names).collect()),
        None => (a.sql, a.names),
    };
    let tenants = super::picked(&tenants, &a.pick)?;
    if a.all && !tenants.is_empty() {
        return Err(Error::Usage(
            "--all queries every tenant: give it without tenant names".into(),
        )
        .into());
    }
    // Bad input is refused before the data directory is looked at.
    let st = query::statement(sql, a.file.as_deref())?;
    let req = Request {
        sql: st.sql,
        file: a.file,
        selection: Selection {
            tenants,
            all: a.all,
            status: a.status,
        },
        params: a.params,
        jobs: crate::core::pool::jobs(a.jobs, crate::core::pool::Work::Waiting),
        timeout,
    };
    let ws = workspace(g)?;
    let mut out = Out {
        w: io::BufWriter::with_capacity(1 << 16, output::stdout()),
        format: g.format,
        summary: a.summary,
        rows_written: 0,
        table: None,
        summaries: Vec::new(),
        error: None,
        errors: output::ErrorGroups::default(),
    };
    let totals = query::run(&ws, &req, &mut out)?;
    let errors = std::mem::take(&mut out.errors);
    out.finish()?;
    for line in errors.repeats() {
        let _ = writeln!(io::stderr(), "{line}");
    }
    if totals.failed > 0 {
        // A closed stderr loses the line, not the exit code.
        let _ = writeln!(
            io::stderr(),
            "{} of {} tenants failed",
            totals.failed,
            totals.tenants
        );
    }
    Ok(totals.exit_code)
}

/// Renders the results as they come.
struct Out<W: Write> {
    w: W,
    format: Format,
    summary: bool,
    rows_written: u64,
    /// Table output: headers and rows, collected.
    table: Option<Table>,
    summaries: Vec<TenantResult>,
    error: Option<io::Error>,
    /// Tenants' errors on stderr, each kind once.
    errors: output::ErrorGroups,
}

fn json_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => serde_json::to_string(f).unwrap_or_else(|_| "null".into()),
        Value::Text(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Blob(b) => format!("\"{}\"", hex(b)),
    }
}

fn text_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => hex(b),
    }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn static_str(s: &str) -> &'static str {
    // Column names of one run: a handful of short strings.
    Box::leak(s.to_string().into_boxed_str())
}

impl<W: Write> Out<W> {
    /// Writes unless a write failed already; false once the reader is gone (or any error).
    fn put(&mut self, bytes: &[u8]) -> bool {
        if self.error.is_none() {
            if let Err(e) = self.w.write_all(bytes) {
                self.error = Some(e);
            }
        }
        self.error.is_none()
    }

    fn finish(mut self) -> io::Result<()> {
        if self.summary {
            let t = summary_table(&self.summaries);
            let r = match self.format {
                Format::Json => output::write_json_lines(&mut self.w, &self.summaries),
                _ => output::write(&mut self.w, self.format, &Rendered(t)),
            };
            if let Err(e) = r {
                self.error.get_or_insert(e);
            }
        } else {
            match self.format {
                Format::Json => {
                    let end: &[u8] = if self.rows_written == 0 {
                        b"]\n"
                    } else {
                        b"\n]\n"
                    };
                    self.put(end);
                }
                Format::Csv => {}
                Format::Table => {
                    if let Some(t) = self.table.take() {
                        let r = output::write(&mut self.w, Format::Table, &Rendered(t));
                        if let Err(e) = r {
                            self.error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        let r = match self.error.take() {
            Some(e) => Err(e),
            None => self.w.flush(),
        };
        output::reader_gone_is_done(r)
    }
}

fn summary_table(rs: &[TenantResult]) -> Table {
    let mut t = Table::new(vec!["tenant", "row_count", "ms", "error", "exit_code"]);
    for r in rs {
        t.row(
            vec![
                r.tenant.clone(),
                r.rows.to_string(),
                r.ms.to_string(),
                output::opt(&r.error),
                r.exit_code.to_string(),
            ],
            r.error.is_some(),
        );
    }
    t
}

/// The keys of a row object: each column's name, made unique so that no key repeats (a JSON
/// object with two equal keys loses one in most readers): a column named `tenant` (the leading
/// key) or a name a previous column has gets `_2`, `_3`... (`SELECT a.name, b.name`: `name`,
/// `name_2`).
fn json_keys(columns: &[String]) -> Vec<String> {
    let mut seen: std::collections::HashSet<String> = ["tenant".to_string()].into();
    columns
        .iter()
        .map(|c| {
            let mut key = c.clone();
            let mut n = 2;
            while seen.contains(&key) {
                key = format!("{c}_{n}");
                n += 1;
            }
            seen.insert(key.clone());
            key
        })
        .collect()
}

/// A table already made, rendered through `output::write`.
struct Rendered(Table);

impl serde::Serialize for Rendered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl output::Render for Rendered {
    fn table(&self) -> Table {
        Table {
            headers: self.0.headers.clone(),
            rows: self.0.rows.clone(),
            narrow: None,
            attention: self.0.attention.clone(),
        }
    }
}

impl<W: Write> Sink for Out<W> {
    fn columns(&mut self, columns: &[String]) -> bool {
        if self.summary {
            return true;
        }
        match self.format {
            Format::Json => self.put(b"["),
            Format::Csv => {
                let mut line = String::from("tenant");
                for c in columns {
                    line.push(',');
                    line.push_str(&output::csv_field(c));
                }
                line.push('\n');
                self.put(line.as_bytes())
            }
            Format::Table => {
                let mut headers = vec!["tenant"];
                headers.extend(columns.iter().map(|c| static_str(c)));
                self.table = Some(Table::new(headers));
                true
            }
        }
    }

    fn rows(&mut self, tenant: &str, columns: &[String], rows: &[Vec<Value>]) -> bool {
        if self.summary {
            return true;
        }
        let mut buf = String::new();
        match self.format {
            Format::Json => {
                let name = serde_json::to_string(tenant).unwrap_or_default();
                let keys: Vec<String> = json_keys(columns)
                    .iter()
                    .map(|c| serde_json::to_string(c).unwrap_or_default())
                    .collect();
                for r in rows {
                    buf.push_str(if self.rows_written == 0 { "\n" } else { ",\n" });
                    self.rows_written += 1;
                    buf.push_str("{\"tenant\":");
                    buf.push_str(&name);
                    for (k, v) in keys.iter().zip(r) {
                        buf.push(',');
                        buf.push_str(k);
                        buf.push(':');
                        buf.push_str(&json_value(v));
                    }
                    buf.push('}');
                }
            }
            Format::Csv => {
                let name = output::csv_field(tenant);
                for r in rows {
                    buf.push_str(&name);
                    for v in r {
                        buf.push(',');
                        buf.push_str(&output::csv_field(&text_value(v)));
                    }
                    buf.push('\n');
                }
            }
            Format::Table => {
                if let Some(t) = &mut self.table {
                    for r in rows {
                        let mut cells = vec![tenant.to_string()];
                        cells.extend(r.iter().map(text_value));
                        t.rows.push(cells);
                    }
                }
                return true;
            }
        }
        self.put(buf.as_bytes())
    }

    fn done(&mut self, r: &TenantResult) -> bool {
        if let Some(line) = r.error.as_ref().and_then(|e| self.errors.add(&r.tenant, e)) {
            let _ = writeln!(io::stderr(), "{line}");
        }
        if self.summary {
            self.summaries.push(r.clone());
        }
        self.error.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::json_keys;

    #[test]
    fn row_keys_never_repeat() {
        let cols: Vec<String> = ["tenant", "name", "name", "name_2", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            json_keys(&cols),
            vec!["tenant_2", "name", "name_2", "name_2_2", "x"]
        );
    }
}
