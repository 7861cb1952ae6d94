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
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
            narrow: None,
        }
    }

    /// A two-column table of fields and values, for one object.
    pub fn fields(pairs: Vec<(&'static str, String)>) -> Table {
        Table {
            headers: vec!["field", "value"],
            rows: pairs.into_iter().map(|(k, v)| vec![k.into(), v]).collect(),
            narrow: None,
        }
    }

    /// Shows only `columns` in a table unless `--wide` is given.
    pub fn narrow(mut self, columns: &[&'static str]) -> Table {
        self.narrow = Some(columns.to_vec());
        self
    }

    /// The table as shown: the narrow columns, unless `--wide`.
    fn shown(self) -> Table {
        let Some(keep) = self.narrow.filter(|_| !WIDE.load(Ordering::Relaxed)) else {
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
        }
    }
}

static WIDE: AtomicBool = AtomicBool::new(false);
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
            if !t.rows.is_empty() {
                let mut c = Comfy::new();
                c.load_style(presets::UTF8_FULL_CONDENSED)
                    .set_content_arrangement(ContentArrangement::Dynamic)
                    .set_header(t.headers.clone());
                for r in t.rows {
                    c.add_row(r);
                }
                writeln!(out, "{c}")?;
            }
            if !quiet() {
                for line in value.footer() {
                    writeln!(out, "{line}")?;
                }
            }
            Ok(())
        }
    }
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
    fn sizes() {
        assert_eq!(size(Some(512)), "512 B");
        assert_eq!(size(Some(1536)), "1.5 KiB");
        assert_eq!(size(None), "-");
    }
}
