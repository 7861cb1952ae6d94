//! Renders a command's result as a table (people), JSON or CSV (scripts), to stdout.
//!
//! JSON is the result's `Serialize` form, a public interface documented in the README. Tables and
//! CSV show the same rows; CSV has a header line and quotes per RFC 4180.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use comfy_table::{presets, ContentArrangement, Table as Comfy};
use serde::Serialize;

use crate::cli::Format;

/// Rows for table and CSV output.
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// The columns a table shows without `--wide` (all when `None`); CSV has every column.
    pub narrow: Option<Vec<&'static str>>,
    /// For a run over tenants: which rows need attention (a failure, a refusal, a tenant that
    /// is not as expected). Such a table over `SUMMARY_FIRST` rows prints its footer first and
    /// lists only those rows, identical ones grouped, unless `--all-rows`.
    pub attention: Option<Vec<bool>>,
}

/// Above this many rows, a run's table is summary-first (see `Table::attention`).
pub const SUMMARY_FIRST: usize = 50;

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
            narrow: None,
            attention: None,
        }
    }

    /// Adds one tenant's row of a run, saying whether it needs attention.
    pub fn row(&mut self, cells: Vec<String>, attention: bool) {
        let flags = self.attention.get_or_insert_with(Vec::new);
        flags.resize(self.rows.len(), false);
        flags.push(attention);
        self.rows.push(cells);
    }

    /// A failed tenant's row of a run whose columns are `tenant, result, ...`: `failed` and the
    /// error in the third column, the others empty.
    pub fn failed(&mut self, tenant: &str, error: &Option<String>) {
        let mut cells = vec![tenant.to_string(), "failed".into(), opt(error)];
        cells.resize(self.headers.len().max(3), String::new());
        self.row(cells, true);
    }

    /// A two-column table of fields and values, for one object.
    pub fn fields(pairs: Vec<(&'static str, String)>) -> Table {
        Table {
            headers: vec!["field", "value"],
            rows: pairs.into_iter().map(|(k, v)| vec![k.into(), v]).collect(),
            narrow: None,
            attention: None,
        }
    }

    /// Shows only `columns` in a table unless `--wide` is given.
    pub fn narrow(mut self, columns: &[&'static str]) -> Table {
        self.narrow = Some(columns.to_vec());
        self
    }

    /// The table as shown: the narrow columns, unless `--wide`.
    fn shown(self) -> Table {
        let Some(keep) = self
            .narrow
            .clone()
            .filter(|_| !WIDE.load(Ordering::Relaxed))
        else {
            return Table {
                narrow: None,
                ..self
            };
        };
        let idx: Vec<usize> = self
            .headers
            .iter()
            .enumerate()
            .filter(|(_, h)| keep.contains(h))
            .map(|(i, _)| i)
            .collect();
        Table {
            headers: idx.iter().map(|i| self.headers[*i]).collect(),
            rows: self
                .rows
                .into_iter()
                .map(|r| idx.iter().map(|i| r[*i].clone()).collect())
                .collect(),
            narrow: None,
            attention: self.attention,
        }
    }

    /// A summary-first table's rows: those that need attention, each group of rows that differ
    /// only in the tenant made one row whose tenant cell counts and names them. `None` when the
    /// table lists every row (not a run, at most `SUMMARY_FIRST` rows, or `--all-rows`).
    fn attention_rows(&self) -> Option<Vec<Vec<String>>> {
        let flags = self.attention.as_ref()?;
        if self.rows.len() <= SUMMARY_FIRST || ALL_ROWS.load(Ordering::Relaxed) {
            return None;
        }
        let col = self.headers.iter().position(|h| *h == "tenant")?;
        let flagged = self
            .rows
            .iter()
            .zip(flags.iter().chain(std::iter::repeat(&false)))
            .filter(|(_, f)| **f)
            .map(|(r, _)| (r[col].as_str(), r.as_slice()));
        Some(
            group_by_tenant(flagged, col)
                .into_iter()
                .map(|(mut key, tenants)| {
                    key[col] = if tenants.len() == 1 {
                        tenants[0].to_string()
                    } else {
                        format!("{} tenants: {}", tenants.len(), some_names(&tenants, ", "))
                    };
                    key
                })
                .collect(),
        )
    }
}

/// Rows that differ only in their tenant (column `col`, and the tenant's name inside other
/// cells, shown as `<tenant>` when a group has several), in the order they first appear.
fn group_by_tenant<'a>(
    rows: impl Iterator<Item = (&'a str, &'a [String])>,
    col: usize,
) -> Vec<(Vec<String>, Vec<&'a str>)> {
    let mut groups: Vec<(Vec<String>, Vec<&'a str>)> = Vec::new();
    let mut index: std::collections::HashMap<Vec<String>, usize> = Default::default();
    for (tenant, row) in rows {
        let key: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == col {
                    String::new()
                } else {
                    without_tenant(c, tenant)
                }
            })
            .collect();
        match index.get(&key) {
            Some(&g) => groups[g].1.push(tenant),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![tenant]));
            }
        }
    }
    // A group of one shows its own text again, not the `<tenant>` form.
    for (key, tenants) in &mut groups {
        if let [only] = tenants.as_slice() {
            for c in key.iter_mut() {
                *c = c.replace(TENANT_MARK, only);
            }
        }
    }
    groups
}

const TENANT_MARK: &str = "<tenant>";

/// `text` with every whole-word occurrence of the tenant's name replaced by `<tenant>`, so that
/// messages naming their tenant group with those of other tenants.
pub fn without_tenant(text: &str, tenant: &str) -> String {
    if tenant.is_empty() || !text.contains(tenant) {
        return text.to_string();
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(tenant) {
        let before = rest[..at].chars().next_back().or(out.chars().next_back());
        let after = rest[at + tenant.len()..].chars().next();
        out.push_str(&rest[..at]);
        if word(before) || word(after) {
            out.push_str(tenant);
        } else {
            out.push_str(TENANT_MARK);
        }
        rest = &rest[at + tenant.len()..];
    }
    out.push_str(rest);
    out
}

/// Tenant names for people: every one with `--all-rows` or when there are at most 10, else the
/// first 8 and how many more.
pub fn some_names(names: &[&str], sep: &str) -> String {
    if names.len() <= 10 || ALL_ROWS.load(Ordering::Relaxed) {
        return names.join(sep);
    }
    format!(
        "{}{sep}… and {} more",
        names[..8].join(sep),
        names.len() - 8
    )
}

/// Errors of a run's tenants on stderr, each kind once: the first tenant with a given error
/// (its tenant's name aside) is printed in full as it comes; the others with the same error are
/// counted and named at the end (`repeats`), so that a refusal shared by 200 tenants is one
/// message, not 200.
#[derive(Default)]
pub struct ErrorGroups {
    seen: std::collections::HashMap<String, usize>,
    groups: Vec<(String, Vec<String>)>,
}

impl ErrorGroups {
    /// The line to print now for this tenant's error, or `None` when one like it was printed.
    pub fn add(&mut self, tenant: &str, message: &str) -> Option<String> {
        let key = without_tenant(message, tenant);
        match self.seen.get(&key) {
            Some(&g) => {
                self.groups[g].1.push(tenant.to_string());
                None
            }
            None => {
                self.seen.insert(key.clone(), self.groups.len());
                self.groups.push((key, vec![tenant.to_string()]));
                Some(format!("error: {tenant}: {message}"))
            }
        }
    }

    /// A line for each error shared by several tenants: those not yet printed.
    pub fn repeats(&self) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, t)| t.len() > 1)
            .map(|(_, t)| {
                let others: Vec<&str> = t[1..].iter().map(String::as_str).collect();
                format!(
                    "error: the same error as {} for {} more tenant{}: {}",
                    t[0],
                    others.len(),
                    if others.len() == 1 { "" } else { "s" },
                    some_names(&others, " ")
                )
            })
            .collect()
    }
}

static WIDE: AtomicBool = AtomicBool::new(false);
static ALL_ROWS: AtomicBool = AtomicBool::new(false);

/// `--all-rows`: a run's table lists every tenant, however many.
pub fn set_all_rows(all: bool) {
    ALL_ROWS.store(all, Ordering::Relaxed);
}
static QUIET: AtomicBool = AtomicBool::new(false);
/// Set while CSV cells are made: raw values (sizes in bytes, no units; absent values empty).
static RAW: AtomicBool = AtomicBool::new(false);

/// Whether the cells being made are CSV's raw values rather than a table's readable ones.
pub fn raw() -> bool {
    RAW.load(Ordering::Relaxed)
}

/// `-q/--quiet`: data only (no footers, notes or progress bars).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

static VERBOSE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// `-v/--verbose`: `trace` lines from now on, timed from this moment.
pub fn set_verbose() {
    let _ = VERBOSE.set(std::time::Instant::now());
}

pub fn verbose() -> bool {
    VERBOSE.get().is_some()
}

/// With `--verbose`, one step on stderr: `[  12.3 ms] what`; nothing otherwise.
pub fn trace(what: &str) {
    if let Some(t0) = VERBOSE.get() {
        eprintln!("[{:>9.1} ms] {what}", t0.elapsed().as_secs_f64() * 1e3);
    }
}

/// A note for people on stderr (`note: ...`); nothing with `--quiet`.
pub fn note(message: &str) {
    if !quiet() {
        eprintln!("note: {message}");
    }
}

/// `--wide`: tables show every column.
pub fn set_wide(wide: bool) {
    WIDE.store(wide, Ordering::Relaxed);
}

/// A command result: JSON from `Serialize`, table and CSV from `table()`.
pub trait Render: Serialize {
    fn table(&self) -> Table;

    /// Lines printed under a table (summaries, hints); not part of JSON or CSV.
    fn footer(&self) -> Vec<String> {
        Vec::new()
    }

    /// Writes the JSON form. Objects are pretty-printed; `List` streams one element a line.
    fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self).map_err(io::Error::other)?;
        out.write_all(b"\n")
    }
}

/// Writes a JSON array with one element a line. Long lists are serialized in chunks on all
/// cores, each into its own buffer, and written in order: the output is the same bytes.
pub fn write_json_lines<T: Serialize + Sync>(out: &mut dyn Write, items: &[T]) -> io::Result<()> {
    const CHUNK_MIN: usize = 4096;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(CHUNK_MIN);
    let encode = |part: &[T], first: bool| -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(part.len() * 256);
        for (i, item) in part.iter().enumerate() {
            buf.extend_from_slice(if first && i == 0 { b"\n" } else { b",\n" });
            serde_json::to_writer(&mut buf, item).map_err(io::Error::other)?;
        }
        Ok(buf)
    };
    out.write_all(b"[")?;
    if items.len() <= chunk {
        out.write_all(&encode(items, true)?)?;
    } else {
        std::thread::scope(|s| -> io::Result<()> {
            let parts: Vec<_> = items
                .chunks(chunk)
                .enumerate()
                .map(|(i, part)| s.spawn(move || encode(part, i == 0)))
                .collect();
            for p in parts {
                out.write_all(
                    &p.join()
                        .map_err(|_| io::Error::other("a JSON writer panicked"))??,
                )?;
            }
            Ok(())
        })?;
    }
    out.write_all(if items.is_empty() { b"]\n" } else { b"\n]\n" })
}

/// A list rendered as a JSON array with one element a line, so that large lists stream and diff well.
pub struct List<T>(pub Vec<T>);

impl<T: Serialize> Serialize for List<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Writes one pretty JSON object while a run is still going: the fields of `head` first, then
/// `"<outer>": {"<inner>": [ ... ]` whose items are written one by one as they come (so that
/// memory does not grow with their number), then the rest of that object and the fields of a
/// tail. The result parses to exactly what serializing the whole document at once gives. After
/// a write error (a closed pipe), nothing more is written and `finish` returns the error.
pub struct JsonStream<W: Write> {
    out: W,
    items: usize,
    error: Option<io::Error>,
}

/// `value` pretty-printed, every line after the first indented by `by` more.
fn pretty_at(value: &impl Serialize, by: &str) -> io::Result<String> {
    let s = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    Ok(s.replace('\n', &format!("\n{by}")))
}

/// The fields of an object pretty-printed at `by`, without its braces (empty for `{}`).
fn fields_at(value: &impl Serialize, by: &str) -> io::Result<String> {
    let s = pretty_at(value, by)?;
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| io::Error::other("a JSON head or tail must be an object"))?;
    Ok(inner.trim_end().to_string())
}

impl<W: Write> JsonStream<W> {
    pub fn begin(mut out: W, head: &impl Serialize, outer: &str, inner: &str) -> JsonStream<W> {
        let error = fields_at(head, "")
            .and_then(|f| {
                let sep = if f.is_empty() { "" } else { "," };
                write!(out, "{{{f}{sep}\n  \"{outer}\": {{\n    \"{inner}\": [")
            })
            .err();
        JsonStream {
            out,
            items: 0,
            error,
        }
    }

    pub fn item(&mut self, v: &impl Serialize) {
        if self.error.is_some() {
            return;
        }
        let sep = if self.items == 0 {
            "\n      "
        } else {
            ",\n      "
        };
        self.items += 1;
        if let Err(e) = pretty_at(v, "      ").and_then(|s| write!(self.out, "{sep}{s}")) {
            self.error = Some(e);
        }
    }

    /// Closes the list, writes the rest of the outer object (`outer_rest`'s fields) and the
    /// fields of `tail`, and flushes.
    pub fn finish(self, outer_rest: &impl Serialize, tail: &impl Serialize) -> io::Result<()> {
        reader_gone_is_done(self.close(outer_rest, tail))
    }

    fn close(mut self, outer_rest: &impl Serialize, tail: &impl Serialize) -> io::Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let close = if self.items == 0 { "]" } else { "\n    ]" };
        let rest = fields_at(outer_rest, "  ")?;
        let tail = fields_at(tail, "")?;
        let rest_sep = if rest.is_empty() { "" } else { "," };
        let tail_sep = if tail.is_empty() { "" } else { "," };
        write!(
            self.out,
            "{close}{rest_sep}{rest}\n  }}{tail_sep}{tail}\n}}\n"
        )?;
        self.out.flush()
    }
}

/// Row counts of tables as one cell: `users (3), widgets (12)`.
pub fn table_counts(tables: &[crate::core::db::TableCount]) -> String {
    tables
        .iter()
        .map(|c| format!("{} ({})", c.table, c.rows))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// A path that may be absent (a PostgreSQL tenant has no file): its text, or `-` (empty in CSV).
pub fn opt_path(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| if raw() { String::new() } else { "-".into() })
}

/// Whether a command wrote anything to standard output (through `stdout`).
static STDOUT_USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Standard output that records being written to: a command that fails before it wrote its
/// result gets its error as a JSON object there instead (`error_json`).
pub fn stdout() -> Tracked<io::Stdout> {
    Tracked(io::stdout())
}

/// Whether anything was written to standard output so far.
pub fn stdout_used() -> bool {
    STDOUT_USED.load(std::sync::atomic::Ordering::Relaxed)
}

/// A writer that records, at its first byte, that standard output was used.
pub struct Tracked<W>(W);

impl<W: Write> Write for Tracked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() {
            STDOUT_USED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The error a command ended with, for `--format json`: `{"error": {"code", "exit_code",
/// "message", "fix", "tenant", "path"}}`, `code` being the exit code's stable name; `fix`,
/// `tenant` and `path` are `null` where the error does not know them.
pub fn error_json(exit_code: i32, message: &str, e: Option<&crate::core::Error>) -> String {
    let name = crate::core::error::CODES
        .iter()
        .find(|c| c.code == exit_code)
        .map_or("failure", |c| c.name);
    serde_json::json!({
        "error": {
            "code": name,
            "exit_code": exit_code,
            "message": message,
            "fix": e.and_then(|e| e.fix()),
            "tenant": e.and_then(|e| e.tenant()),
            "path": e.and_then(|e| e.path()),
        }
    })
    .to_string()
}

pub fn print<T: Render>(format: Format, value: &T) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout());
    reader_gone_is_done(write(&mut out, format, value).and_then(|_| out.flush()))
}

/// A reader that closed the pipe (`monkctl ... | head`) wants no more output: writing stops
/// there, and the command goes on to exit with the code its result decides, never with one that
/// rendering decided.
pub fn reader_gone_is_done(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

pub fn write<T: Render>(out: &mut dyn Write, format: Format, value: &T) -> io::Result<()> {
    match format {
        Format::Json => value.write_json(out),
        Format::Csv => {
            RAW.store(true, Ordering::Relaxed);
            let t = value.table();
            RAW.store(false, Ordering::Relaxed);
            write_csv(out, &t)
        }
        Format::Table => {
            let t = value.table().shown();
            let footer = if quiet() { Vec::new() } else { value.footer() };
            let rows = match t.attention_rows() {
                None => t.rows,
                // Summary first: thousands of tenants that are fine are counted, not listed.
                Some(rows) => {
                    for line in &footer {
                        writeln!(out, "{line}")?;
                    }
                    if !quiet() {
                        let n = t.attention.iter().flatten().filter(|f| **f).count();
                        writeln!(
                            out,
                            "{n} of {} tenants need attention (--all-rows lists every tenant){}",
                            t.rows.len(),
                            if n == 0 { "" } else { ":" }
                        )?;
                    }
                    return write_table(out, &t.headers, rows);
                }
            };
            write_table(out, &t.headers, rows)?;
            for line in footer {
                writeln!(out, "{line}")?;
            }
            Ok(())
        }
    }
}

fn write_table(out: &mut dyn Write, headers: &[&str], rows: Vec<Vec<String>>) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut c = Comfy::new();
    c.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.to_vec());
    // The terminal's width, or an exported COLUMNS (a table piped to a pager or a file keeps
    // the width it would have had; without either, rows are not wrapped).
    if let Some(w) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|w| *w >= 20)
    {
        c.set_width(w);
    }
    for r in rows {
        c.add_row(r);
    }
    writeln!(out, "{c}")
}

fn write_csv(out: &mut dyn Write, t: &Table) -> io::Result<()> {
    let line =
        |cells: &mut dyn Iterator<Item = &str>| cells.map(csv_field).collect::<Vec<_>>().join(",");
    writeln!(out, "{}", line(&mut t.headers.iter().copied()))?;
    for r in &t.rows {
        writeln!(out, "{}", line(&mut r.iter().map(String::as_str)))?;
    }
    Ok(())
}

pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The names of deployed fixtures, for a table cell: `system crm`.
pub fn fixture_names(fixtures: &[crate::core::registry::DeployedFixture]) -> String {
    fixtures
        .iter()
        .map(|f| f.fixture.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fixture version for a table cell: a content fingerprint (`xxh3:` and 32 hex digits) is
/// shortened to its first 12 digits, as git shortens commit ids; CSV and JSON have it whole.
pub fn version(v: &str) -> String {
    match v.split_once(':') {
        Some((tag, hex))
            if !raw() && hex.len() > 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            format!("{tag}:{}…", &hex[..12])
        }
        _ => v.to_string(),
    }
}

/// Human-readable size: `1.5 MiB` (in CSV, the bytes: `1572864`).
pub fn size(bytes: Option<u64>) -> String {
    let Some(b) = bytes else {
        return if raw() { String::new() } else { "-".into() };
    };
    if raw() {
        return b.to_string();
    }
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn a_streamed_document_is_the_whole_document() {
        #[derive(Serialize)]
        struct Head {
            run_id: &'static str,
            infra: serde_json::Value,
        }
        #[derive(Serialize)]
        struct Counts {
            succeeded: usize,
            failed: usize,
        }
        #[derive(Serialize)]
        struct Tail {
            not_started: Vec<&'static str>,
            summary: serde_json::Value,
        }
        let items = [
            serde_json::json!({"tenant": "a", "ok": true, "result": {"applied": [2, 3]}}),
            serde_json::json!({"tenant": "b", "ok": false, "error": "line\nbreak"}),
        ];
        for n in [0, 1, 2] {
            let head = Head {
                run_id: "r1",
                infra: serde_json::json!({"from": 1, "to": 2}),
            };
            let mut buf = Vec::new();
            let mut js = JsonStream::begin(&mut buf, &head, "tenants", "results");
            for i in &items[..n] {
                js.item(i);
            }
            let tail = Tail {
                not_started: vec!["c"],
                summary: serde_json::json!({"tenants": 3}),
            };
            js.finish(
                &Counts {
                    succeeded: 1,
                    failed: n,
                },
                &tail,
            )
            .unwrap();
            let got: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            let want = serde_json::json!({
                "run_id": "r1",
                "infra": {"from": 1, "to": 2},
                "tenants": {"results": items[..n], "succeeded": 1, "failed": n},
                "not_started": ["c"],
                "summary": {"tenants": 3},
            });
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&buf));
        }
    }

    #[test]
    fn a_tenant_name_is_taken_out_of_a_message_only_as_a_whole_word() {
        assert_eq!(
            without_tenant("tenant 'acme' would run DROP; acme: rerun", "acme"),
            "tenant '<tenant>' would run DROP; <tenant>: rerun"
        );
        assert_eq!(
            without_tenant("acme-2 and acmes", "acme"),
            "acme-2 and acmes"
        );
        assert_eq!(without_tenant("no name here", "acme"), "no name here");
    }

    #[test]
    fn rows_that_differ_only_in_their_tenant_are_one_group() {
        let rows: Vec<Vec<String>> = [
            ["a", "failed", "tenant 'a' is busy"],
            ["b", "failed", "tenant 'b' is busy"],
            ["c", "failed", "disk full"],
            ["d", "failed", "tenant 'd' is busy"],
        ]
        .iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
        let groups = group_by_tenant(rows.iter().map(|r| (r[0].as_str(), r.as_slice())), 0);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].1, ["a", "b", "d"]);
        assert_eq!(groups[0].0[2], "tenant '<tenant>' is busy");
        // A group of one keeps its own words.
        assert_eq!(groups[1].1, ["c"]);
        assert_eq!(groups[1].0[2], "disk full");
    }

    #[test]
    fn an_error_shared_by_tenants_is_printed_once_and_the_others_named() {
        let mut e = ErrorGroups::default();
        assert_eq!(
            e.add("a", "tenant 'a' refused").as_deref(),
            Some("error: a: tenant 'a' refused")
        );
        assert_eq!(e.add("b", "tenant 'b' refused"), None);
        assert!(e.add("c", "other").is_some());
        assert_eq!(e.add("d", "tenant 'd' refused"), None);
        assert_eq!(
            e.repeats(),
            ["error: the same error as a for 2 more tenants: b d"]
        );
    }

    #[test]
    fn long_name_lists_are_cut() {
        let names: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(some_names(&names[..3], " "), "t0 t1 t2");
        assert_eq!(
            some_names(&names, ", "),
            "t0, t1, t2, t3, t4, t5, t6, t7, … and 4 more"
        );
    }

    #[test]
    fn fingerprints_are_shortened_in_tables_only() {
        let fp = "xxh3:5ba35bfdc7c01427097a1b2c3d4e5f60";
        assert_eq!(version(fp), "xxh3:5ba35bfdc7c0…");
        assert_eq!(version("1.2.0"), "1.2.0");
        RAW.store(true, Ordering::Relaxed);
        let whole = version(fp);
        RAW.store(false, Ordering::Relaxed);
        assert_eq!(whole, fp);
    }

    #[test]
    fn sizes() {
        assert_eq!(size(Some(512)), "512 B");
        assert_eq!(size(Some(1536)), "1.5 KiB");
        assert_eq!(size(None), "-");
    }
}
