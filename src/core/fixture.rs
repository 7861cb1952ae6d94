//! Fixtures: named, versioned bundles of SQL and data that seed tenant databases.
//!
//! Owns reading fixture directories (`<fixtures>/<name>/fixture.toml` and its files), resolving
//! dependencies (topological order, cycle detection), parsing SQL into statements and CSV/JSONL
//! into rows, applying a fixture to an open tenant connection, `fixture check` against a scratch
//! tenant in memory, and `fixture deploy` over tenants. Every statement of a fixture runs through
//! `guard` (its rules and time limit), after the whole plan passed it on a scratch copy. It never writes inside the fixtures directory; it
//! writes tenant databases only through SQLite transactions, and the registry only through
//! `Registry::write`, after the tenant's transaction has committed. The built-in `system` fixture
//! lives in the binary (`system::SYSTEM_SQL`) and no directory may shadow it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::db::{self, Mode};
use super::error::{Context, Error, Result};
use super::fsutil;
use super::guard::{self, Guard, Kind};
use super::ids;
use super::migrate::MigrationSet;
use super::names;
use super::progress::Progress;
use super::registry::TenantRow;
use super::system;
use super::tenant::{Built, CreateSpec};
use super::{Batch, Workspace};

/// The name of the built-in fixture every tenant starts from.
pub const SYSTEM: &str = "system";

/// The manifest file of a directory fixture.
pub const MANIFEST: &str = "fixture.toml";

/// A 64-bit FNV-1a hash over 8-byte little-endian words (the tail byte by byte): fast, not
/// cryptographic. It detects damaged or swapped files, not deliberate tampering.
pub fn checksum(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(PRIME);
    }
    for b in chunks.remainder() {
        h = (h ^ u64::from(*b)).wrapping_mul(PRIME);
    }
    h
}

/// The checksum as it is written in files and output: 16 lower-case hex digits.
pub fn checksum_hex(bytes: &[u8]) -> String {
    format!("{:016x}", checksum(bytes))
}

/// The version of the built-in `system` fixture: the checksum of its SQL.
pub fn system_version() -> String {
    checksum_hex(system::SYSTEM_SQL.as_bytes())
}

/// What `fixture.toml` holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    #[serde(default)]
    description: Option<String>,
    version: String,
    #[serde(default)]
    depends_on: Vec<String>,
    files: Vec<String>,
}

/// A fixture as its manifest describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fixture {
    pub name: String,
    pub description: Option<String>,
    pub version: String,
    pub depends_on: Vec<String>,
    pub files: Vec<String>,
    /// `built-in` or the fixture's directory.
    pub source: String,
    #[serde(skip)]
    pub dir: Option<PathBuf>,
    #[serde(skip)]
    manifest_text: String,
}

impl Fixture {
    fn builtin() -> Fixture {
        Fixture {
            name: SYSTEM.into(),
            description: Some("the tenant schema and rows of Monk API 6.2 (built in)".into()),
            version: system_version(),
            depends_on: Vec::new(),
            files: vec!["system.sql".into()],
            source: "built-in".into(),
            dir: None,
            manifest_text: String::new(),
        }
    }

    /// The built-in `system` fixture (by its source: a fixture read back from a template's
    /// recipe has no directory either).
    pub fn is_builtin(&self) -> bool {
        self.source == "built-in"
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.join(MANIFEST))
            .unwrap_or_else(|| PathBuf::from("<built-in system fixture>"))
    }

    /// The line of the manifest that names `needle` in quotes (1 when not found).
    fn line_naming(&self, needle: &str) -> usize {
        line_naming(&self.manifest_text, needle)
    }
}

fn line_naming(text: &str, needle: &str) -> usize {
    for quote in ['"', '\''] {
        let q = format!("{quote}{needle}{quote}");
        if let Some(pos) = text.find(&q) {
            return line_at(text, pos);
        }
    }
    1
}

/// 1-based line number of byte offset `pos`.
fn line_at(text: &str, pos: usize) -> usize {
    1 + text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// Reads a file of a fixture: a regular file in the fixture's directory (no symbolic link, FIFO
/// or device), UTF-8 without NUL bytes (see `guard::read_source`).
fn read_utf8(path: &Path) -> Result<String> {
    guard::read_source(path)
}

fn bad(path: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::BadInput {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// Whether a data file's stem can name a table (`[A-Za-z_][A-Za-z0-9_]*`).
fn plain_table(stem: &str) -> bool {
    !stem.is_empty()
        && stem.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Loads the manifest of fixture `name` from the fixtures directory `dir` (the built-in one for
/// `system`). Checks the manifest and that every file it names exists.
pub fn load(dir: &Path, name: &str) -> Result<Fixture> {
    names::plain("fixture name", name)?;
    if name == SYSTEM {
        return Ok(Fixture::builtin());
    }
    let fdir = dir.join(name);
    let path = fdir.join(MANIFEST);
    if fs::symlink_metadata(&fdir).is_ok() {
        guard::check_dir(&fdir, "fixture directory")?;
    }
    if fs::symlink_metadata(&path).is_err() {
        return Err(Error::FileNotFound {
            what: "fixture manifest",
            path,
            hint: format!(
                "no fixture '{name}'; see `monkctl fixture list` (the fixtures directory comes from --fixtures, MONK_FIXTURES_DIR or fixtures_dir in the config file)"
            ),
        });
    }
    let text = read_utf8(&path)?;
    let m: Manifest = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| line_at(&text, s.start)).unwrap_or(1);
        bad(
            &path,
            line,
            format!(
                "malformed manifest: {}; a manifest has name, version, files and optional description and depends_on",
                e.message().trim()
            ),
        )
    })?;
    if m.name != name {
        return Err(bad(
            &path,
            line_naming(&text, &m.name),
            format!(
                "the manifest names the fixture '{}' but its directory is '{name}'; make them equal",
                m.name
            ),
        ));
    }
    if m.version.trim().is_empty() {
        return Err(bad(
            &path,
            1,
            "version is empty; give the fixture a version",
        ));
    }
    for d in &m.depends_on {
        names::plain("dependency name", d)
            .map_err(|e| bad(&path, line_naming(&text, d), e.to_string()))?;
        if d == name {
            return Err(bad(
                &path,
                line_naming(&text, d),
                format!("dependency cycle: {name} -> {name}; a fixture cannot depend on itself"),
            ));
        }
    }
    if m.files.is_empty() {
        return Err(bad(
            &path,
            1,
            "files is empty; list the fixture's files in order",
        ));
    }
    for f in &m.files {
        let line = line_naming(&text, f);
        let (stem, ext) = f.rsplit_once('.').unwrap_or((f.as_str(), ""));
        let plain_file = !f.contains(['/', '\\', '\0']) && !f.starts_with('.');
        if !plain_file {
            return Err(bad(
                &path,
                line,
                format!(
                    "'{}' is not a plain file name in the fixture's directory",
                    f.escape_debug()
                ),
            ));
        }
        match ext {
            "sql" => {}
            "csv" | "jsonl" => {
                if !plain_table(stem) {
                    return Err(bad(
                        &path,
                        line,
                        format!("'{f}': a data file is named after its table (letters, digits, _)"),
                    ));
                }
                let lower = stem.to_ascii_lowercase();
                if lower.starts_with("sqlite_") || guard::FILE_TABLES.contains(&lower.as_str()) {
                    return Err(bad(
                        &path,
                        line,
                        format!("'{f}': a data file may not fill '{stem}', which belongs to SQLite itself; name it after one of the tenant's tables"),
                    ));
                }
            }
            _ => {
                return Err(bad(
                    &path,
                    line,
                    format!("'{f}': unknown file kind; use .sql, .csv or .jsonl"),
                ))
            }
        }
        if let Ok(meta) = fs::symlink_metadata(fdir.join(f)) {
            guard::check_regular(&fdir.join(f), &meta)?;
        } else {
            return Err(bad(
                &path,
                line,
                format!(
                    "the manifest names '{f}', which does not exist in {}",
                    fdir.display()
                ),
            ));
        }
    }
    Ok(Fixture {
        name: m.name,
        description: m.description,
        version: m.version,
        depends_on: m.depends_on,
        files: m.files,
        source: fdir.display().to_string(),
        dir: Some(fdir),
        manifest_text: text,
    })
}

/// An entry of `fixture list`: a fixture, or a directory whose manifest is broken.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    pub version: Option<String>,
    pub depends_on: Vec<String>,
    pub description: Option<String>,
    pub source: String,
    pub error: Option<String>,
}

/// The names of the fixture directories in `dir` (sorted). A directory named `system` is refused:
/// it would shadow the built-in fixture.
fn directory_names(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for e in rd.flatten() {
        let p = e.path();
        if fs::symlink_metadata(p.join(MANIFEST)).is_ok() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == SYSTEM {
                return Err(bad(
                    &p.join(MANIFEST),
                    1,
                    "a directory fixture may not be named 'system': it would shadow the built-in system fixture; rename the directory",
                ));
            }
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// `fixture list`: the built-in fixture, then every directory fixture.
pub fn list(dir: &Path) -> Result<Vec<Listed>> {
    let mut out = vec![listed(&Fixture::builtin())];
    for name in directory_names(dir)? {
        match load(dir, &name) {
            Ok(f) => out.push(listed(&f)),
            Err(e) => out.push(Listed {
                source: dir.join(&name).display().to_string(),
                name,
                version: None,
                depends_on: Vec::new(),
                description: None,
                error: Some(e.to_string()),
            }),
        }
    }
    Ok(out)
}

fn listed(f: &Fixture) -> Listed {
    Listed {
        name: f.name.clone(),
        version: Some(f.version.clone()),
        depends_on: f.depends_on.clone(),
        description: f.description.clone(),
        source: f.source.clone(),
        error: None,
    }
}

/// Resolves `wanted` and their dependencies into an application order (dependencies first, each
/// once). `system` is left out: every tenant holds it. A cycle is a `BadInput` at the manifest
/// line that closes it.
pub fn resolve(dir: &Path, wanted: &[String]) -> Result<Vec<Fixture>> {
    if dir.join(SYSTEM).join(MANIFEST).is_file() {
        directory_names(dir)?;
    }
    let mut done: Vec<Fixture> = Vec::new();
    let mut stack: Vec<Fixture> = Vec::new();
    for w in wanted {
        names::plain("fixture name", w)?;
        visit(dir, w, &mut stack, &mut done)?;
    }
    Ok(done.into_iter().filter(|f| !f.is_builtin()).collect())
}

fn visit(dir: &Path, name: &str, stack: &mut Vec<Fixture>, done: &mut Vec<Fixture>) -> Result<()> {
    if done.iter().any(|f| f.name == name) {
        return Ok(());
    }
    if let Some(pos) = stack.iter().position(|f| f.name == name) {
        let last = stack.last().expect("non-empty stack");
        let mut chain: Vec<&str> = stack[pos..].iter().map(|f| f.name.as_str()).collect();
        chain.push(name);
        return Err(bad(
            &last.manifest_path(),
            last.line_naming(name),
            format!(
                "dependency cycle: {}; remove one of these depends_on entries",
                chain.join(" -> ")
            ),
        ));
    }
    let f = match load(dir, name) {
        Ok(f) => f,
        Err(Error::FileNotFound { what, path, hint }) if !stack.is_empty() => {
            let parent = stack.last().expect("non-empty stack");
            return Err(Error::FileNotFound {
                what,
                path,
                hint: format!(
                    "{hint}; it is named in depends_on of '{}' at {}:{}",
                    parent.name,
                    parent.manifest_path().display(),
                    parent.line_naming(name)
                ),
            });
        }
        Err(e) => return Err(e),
    };
    let deps = f.depends_on.clone();
    stack.push(f);
    for d in &deps {
        visit(dir, d, stack, done)?;
    }
    let f = stack.pop().expect("pushed above");
    done.push(f);
    Ok(())
}

pub use super::guard::{split as split_sql, Statement};

/// A field of a data file before it meets the table's column types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    /// An unquoted empty CSV field, or JSON `null`.
    Null,
    Text(String),
    Json(serde_json::Value),
}

/// A row of a data file with the line it starts on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataRow {
    pub line: usize,
    /// JSONL: the keys of this row; CSV rows use the header.
    pub columns: Option<Vec<String>>,
    pub cells: Vec<Cell>,
}

/// A parsed file of a fixture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Part {
    Sql {
        file: PathBuf,
        statements: Vec<Statement>,
    },
    Rows {
        file: PathBuf,
        table: String,
        header: Vec<String>,
        rows: Vec<DataRow>,
    },
}

/// A fixture with its files read and parsed, ready to apply to any number of tenants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Loaded {
    pub fixture: Fixture,
    pub parts: Vec<Part>,
}

/// Reads and parses every file of a fixture (syntax only; types are checked against the tenant).
pub fn parse(f: &Fixture) -> Result<Loaded> {
    parse_for(f, false)
}

/// `parse` for one backend: a listed `x.sql` is read from `x.postgres.sql` (PostgreSQL) or
/// `x.sqlite.sql` (SQLite) when that file exists beside it; data files serve both.
pub fn parse_for(f: &Fixture, postgres: bool) -> Result<Loaded> {
    let mut parts = Vec::new();
    let Some(dir) = &f.dir else {
        return Ok(Loaded {
            fixture: f.clone(),
            parts: vec![Part::Sql {
                file: PathBuf::from("<built-in>/system.sql"),
                statements: split_sql(system::SYSTEM_SQL),
            }],
        });
    };
    for name in &f.files {
        let mut path = dir.join(name);
        if let Some(stem) = name.strip_suffix(".sql") {
            let own = dir.join(format!(
                "{stem}.{}.sql",
                if postgres { "postgres" } else { "sqlite" }
            ));
            if fs::symlink_metadata(&own).is_ok_and(|m| m.is_file()) {
                path = own;
            }
        }
        let text = read_utf8(&path)?;
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name.as_str(), ""));
        parts.push(match ext {
            "sql" => Part::Sql {
                statements: split_sql(&text),
                file: path,
            },
            "csv" => {
                let (header, rows) = parse_csv(&path, &text)?;
                Part::Rows {
                    file: path,
                    table: stem.to_string(),
                    header,
                    rows,
                }
            }
            _ => Part::Rows {
                rows: parse_jsonl(&path, &text)?,
                file: path,
                table: stem.to_string(),
                header: Vec::new(),
            },
        });
    }
    Ok(Loaded {
        fixture: f.clone(),
        parts,
    })
}

/// Parses CSV (RFC 4180: `"` quoting, `""` escapes, newlines inside quotes, CRLF or LF). The first
/// record is the header of column names. An unquoted empty field is `Null`; `""` is empty text.
pub fn parse_csv(path: &Path, text: &str) -> Result<(Vec<String>, Vec<DataRow>)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Delimiters are ASCII, so slicing at their byte offsets keeps valid UTF-8.
    let b = text.as_bytes();
    let n = b.len();
    let mut records: Vec<(usize, Vec<Cell>)> = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < n {
        let rec_line = line;
        let mut fields: Vec<Cell> = Vec::new();
        loop {
            if i < n && b[i] == b'"' {
                let qline = line;
                i += 1;
                let mut val = String::new();
                let mut seg = i;
                loop {
                    if i >= n {
                        return Err(bad(
                            path,
                            qline,
                            "a quoted field is never closed; add the closing \"",
                        ));
                    }
                    match b[i] {
                        b'"' => {
                            val.push_str(&text[seg..i]);
                            if i + 1 < n && b[i + 1] == b'"' {
                                val.push('"');
                                i += 2;
                                seg = i;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        b'\n' => {
                            line += 1;
                            i += 1;
                        }
                        _ => i += 1,
                    }
                }
                fields.push(Cell::Text(val));
                if i + 1 < n && b[i] == b'\r' && b[i + 1] == b'\n' {
                    i += 1;
                }
                if i >= n {
                    break;
                }
                match b[i] {
                    b',' => {
                        i += 1;
                        if i >= n {
                            fields.push(Cell::Null);
                            break;
                        }
                    }
                    b'\n' => {
                        i += 1;
                        line += 1;
                        break;
                    }
                    _ => {
                        let c = text[i..].chars().next().unwrap_or(' ');
                        return Err(bad(
                            path,
                            line,
                            format!(
                                "text after a closing quote ('{}'); put a comma after the quoted field",
                                c.escape_debug()
                            ),
                        ));
                    }
                }
            } else {
                let start = i;
                while i < n && b[i] != b',' && b[i] != b'\n' && b[i] != b'"' {
                    i += 1;
                }
                if i < n && b[i] == b'"' {
                    return Err(bad(
                        path,
                        line,
                        "a quote inside an unquoted field; quote the whole field and double inner quotes (\"\")",
                    ));
                }
                let mut end = i;
                if end > start && b[end - 1] == b'\r' {
                    end -= 1;
                }
                fields.push(if end == start {
                    Cell::Null
                } else {
                    Cell::Text(text[start..end].to_string())
                });
                if i >= n {
                    break;
                }
                i += 1;
                if b[i - 1] == b'\n' {
                    line += 1;
                    break;
                }
                if i >= n {
                    fields.push(Cell::Null);
                    break;
                }
            }
        }
        if fields.len() == 1 && fields[0] == Cell::Null {
            continue; // a blank line
        }
        records.push((rec_line, fields));
    }
    let mut it = records.into_iter();
    let Some((hline, hcells)) = it.next() else {
        return Err(bad(
            path,
            1,
            "the file is empty; the first line names the columns",
        ));
    };
    let mut header = Vec::with_capacity(hcells.len());
    for c in hcells {
        match c {
            Cell::Text(s) if !s.trim().is_empty() => {
                let s = s.trim().to_string();
                if header.contains(&s) {
                    return Err(bad(
                        path,
                        hline,
                        format!("column '{s}' is named twice in the header"),
                    ));
                }
                header.push(s)
            }
            _ => return Err(bad(path, hline, "an empty column name in the header")),
        }
    }
    let mut rows = Vec::new();
    for (l, cells) in it {
        if cells.len() != header.len() {
            return Err(bad(
                path,
                l,
                format!(
                    "the row has {} fields but the header names {} columns",
                    cells.len(),
                    header.len()
                ),
            ));
        }
        rows.push(DataRow {
            line: l,
            columns: None,
            cells,
        });
    }
    Ok((header, rows))
}

/// Parses JSON Lines: one object a line (blank lines ignored); its keys are columns.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<DataRow>> {
    let mut rows = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| {
            bad(
                path,
                i + 1,
                format!("not valid JSON: {e}; write one JSON object a line"),
            )
        })?;
        let serde_json::Value::Object(map) = v else {
            return Err(bad(
                path,
                i + 1,
                "not a JSON object; write one object a line, keys are columns",
            ));
        };
        let mut columns = Vec::with_capacity(map.len());
        let mut cells = Vec::with_capacity(map.len());
        for (k, v) in map {
            columns.push(k);
            cells.push(if v.is_null() {
                Cell::Null
            } else {
                Cell::Json(v)
            });
        }
        if columns.is_empty() {
            return Err(bad(
                path,
                i + 1,
                "an empty object; name at least one column",
            ));
        }
        rows.push(DataRow {
            line: i + 1,
            columns: Some(columns),
            cells,
        });
    }
    Ok(rows)
}

/// SQLite's type affinity of a declared column type (the rules of "Datatypes In SQLite" 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

impl Affinity {
    pub fn of(declared: &str) -> Affinity {
        let d = declared.to_ascii_uppercase();
        if d.contains("INT") {
            Affinity::Integer
        } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
            Affinity::Text
        } else if d.contains("BLOB") || d.is_empty() {
            Affinity::Blob
        } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }

    fn label(self) -> &'static str {
        match self {
            Affinity::Integer => "INTEGER",
            Affinity::Text => "TEXT",
            Affinity::Blob => "BLOB",
            Affinity::Real => "REAL",
            Affinity::Numeric => "NUMERIC",
        }
    }
}

/// Converts a cell for a column: integers and reals must parse (`true`/`false` are 1/0 in an
/// integer column, as the API stores booleans); text stays text; JSON arrays and objects become
/// their JSON text. The error says what was expected.
pub fn convert(cell: &Cell, aff: Affinity) -> std::result::Result<ToSqlOutput<'_>, String> {
    use ToSqlOutput::{Borrowed, Owned};
    fn text_value(s: &str, aff: Affinity) -> std::result::Result<ToSqlOutput<'_>, String> {
        match aff {
            Affinity::Integer => {
                let t = s.trim();
                t.parse::<i64>()
                    .map(|i| Owned(Value::Integer(i)))
                    .or_else(|_| match t {
                        "true" | "TRUE" | "True" => Ok(Owned(Value::Integer(1))),
                        "false" | "FALSE" | "False" => Ok(Owned(Value::Integer(0))),
                        _ => Err(format!("'{}' is not an integer", s.escape_debug())),
                    })
            }
            Affinity::Real => s
                .trim()
                .parse::<f64>()
                .map(|f| Owned(Value::Real(f)))
                .map_err(|_| format!("'{}' is not a number", s.escape_debug())),
            Affinity::Numeric => {
                let t = s.trim();
                Ok(t.parse::<i64>()
                    .map(|i| Owned(Value::Integer(i)))
                    .or_else(|_| t.parse::<f64>().map(|f| Owned(Value::Real(f))))
                    .unwrap_or(Borrowed(ValueRef::Text(s.as_bytes()))))
            }
            Affinity::Text | Affinity::Blob => Ok(Borrowed(ValueRef::Text(s.as_bytes()))),
        }
    }
    match cell {
        Cell::Null => Ok(Owned(Value::Null)),
        Cell::Text(s) => text_value(s, aff),
        Cell::Json(v) => match v {
            serde_json::Value::Null => Ok(Owned(Value::Null)),
            serde_json::Value::Bool(b) => Ok(Owned(Value::Integer(i64::from(*b)))),
            serde_json::Value::Number(n) => match aff {
                Affinity::Text | Affinity::Blob => Ok(Owned(Value::Text(n.to_string()))),
                Affinity::Integer => n
                    .as_i64()
                    .map(|i| Owned(Value::Integer(i)))
                    .ok_or_else(|| format!("{n} is not an integer")),
                _ => Ok(Owned(
                    n.as_i64()
                        .map(Value::Integer)
                        .unwrap_or_else(|| Value::Real(n.as_f64().unwrap_or(0.0))),
                )),
            },
            serde_json::Value::String(s) => text_value(s, aff),
            other => Ok(Owned(Value::Text(other.to_string()))),
        },
    }
}

/// The declared columns of a table: name → affinity; empty when the table does not exist.
fn columns_of(conn: &Connection, table: &str) -> rusqlite::Result<Vec<(String, Affinity)>> {
    let mut st = conn.prepare("SELECT name, type FROM pragma_table_info(?1)")?;
    let rows = st.query_map([table], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Affinity::of(&r.get::<_, String>(1)?),
        ))
    })?;
    rows.collect()
}

/// The error of a fixture's statement or row that failed with `e`: the fixture's fault (exit 1),
/// unless the disk holding the database is full, which keeps its own kind (exit 19) naming the
/// database, with `what` (the fixture file, line and statement) as the detail.
fn statement_error(conn: &Connection, e: &rusqlite::Error, what: String) -> Error {
    let db = Path::new(conn.path().unwrap_or_default());
    match Error::disk_full(db, e) {
        Some(Error::DiskFull { path, .. }) => Error::DiskFull { path, detail: what },
        _ => Error::Other(what),
    }
}

/// Applies a parsed fixture to an open connection through `guard` (installed on it by the
/// caller, who owns the transaction). Each problem goes to `on_error`: returning `Err` stops
/// (deploy), `Ok` goes on with the next item (check). Without `rows`, data files are passed over
/// (the scratch pass: whether a statement is refused depends on the schema, not on rows).
fn apply(
    conn: &Connection,
    guard: &Guard,
    loaded: &Loaded,
    rows: bool,
    on_error: &mut dyn FnMut(Error) -> Result<()>,
) -> Result<()> {
    for part in &loaded.parts {
        match part {
            Part::Sql { file, statements } => {
                for (i, s) in statements.iter().enumerate() {
                    if let Err(f) = guard.run(conn, s) {
                        on_error(f.into_error(file, i + 1, s, |e| {
                            statement_error(
                                conn,
                                &e,
                                format!(
                                    "{}:{}: statement failed: {e}: {}",
                                    file.display(),
                                    s.line,
                                    excerpt(&s.sql)
                                ),
                            )
                        }))?;
                    }
                }
            }
            Part::Rows { .. } if !rows => {}
            Part::Rows {
                file,
                table,
                header,
                rows,
            } => apply_rows(conn, file, table, header, rows, on_error)?,
        }
    }
    Ok(())
}

fn excerpt(sql: &str) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 120 {
        format!("{}...", one.chars().take(117).collect::<String>())
    } else {
        one
    }
}

fn apply_rows(
    conn: &Connection,
    file: &Path,
    table: &str,
    header: &[String],
    rows: &[DataRow],
    on_error: &mut dyn FnMut(Error) -> Result<()>,
) -> Result<()> {
    let cols = columns_of(conn, table).at(file)?;
    if cols.is_empty() {
        return on_error(bad(
            file,
            1,
            format!("table '{table}' does not exist in the tenant (a data file is named after its table)"),
        ));
    }
    let affinity = |name: &str| cols.iter().find(|(c, _)| c == name).map(|(_, a)| *a);
    let insert_sql = |names: &[String]| {
        let list: Vec<String> = names.iter().map(|c| db::quote_ident(c)).collect();
        let params: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            db::quote_ident(table),
            list.join(", "),
            params.join(", ")
        )
    };
    // CSV: one header for every row, one statement prepared once.
    let mut header_aff = Vec::with_capacity(header.len());
    for h in header {
        match affinity(h) {
            Some(a) => header_aff.push(a),
            None => return on_error(bad(file, 1, format!("table '{table}' has no column '{h}'"))),
        }
    }
    let mut csv_stmt = if header.is_empty() {
        None
    } else {
        Some(conn.prepare(&insert_sql(header)).at(file)?)
    };
    let mut values: Vec<ToSqlOutput<'_>> = Vec::new();
    'rows: for row in rows {
        values.clear();
        let (names, affs): (&[String], std::borrow::Cow<'_, [Affinity]>) = match &row.columns {
            None => (header, std::borrow::Cow::Borrowed(&header_aff[..])),
            Some(names) => {
                let mut a = Vec::with_capacity(names.len());
                for n in names {
                    match affinity(n) {
                        Some(x) => a.push(x),
                        None => {
                            on_error(bad(
                                file,
                                row.line,
                                format!("table '{table}' has no column '{n}'"),
                            ))?;
                            continue 'rows;
                        }
                    }
                }
                (names.as_slice(), std::borrow::Cow::Owned(a))
            }
        };
        for (i, (cell, aff)) in row.cells.iter().zip(affs.iter()).enumerate() {
            match convert(cell, *aff) {
                Ok(v) => values.push(v),
                Err(m) => {
                    on_error(bad(
                        file,
                        row.line,
                        format!("column {} ('{}', {}): {m}", i + 1, names[i], aff.label()),
                    ))?;
                    continue 'rows;
                }
            }
        }
        let r = match (&mut csv_stmt, &row.columns) {
            (Some(st), None) => st.execute(rusqlite::params_from_iter(values.iter())),
            _ => conn
                .prepare_cached(&insert_sql(names))
                .and_then(|mut st| st.execute(rusqlite::params_from_iter(values.iter()))),
        };
        if let Err(e) = r {
            on_error(statement_error(
                conn,
                &e,
                format!(
                    "{}:{}: row rejected by table '{table}': {e}",
                    file.display(),
                    row.line
                ),
            ))?;
        }
    }
    Ok(())
}

/// Resolves and parses fixtures for applying: every file is read and checked, and every
/// statement passes the guard on a scratch tenant in memory (with `limit` per statement), before
/// any tenant is touched.
pub fn prepare(dir: &Path, wanted: &[String], limit: Duration) -> Result<Vec<Loaded>> {
    let loaded: Vec<Loaded> = resolve(dir, wanted)?
        .iter()
        .map(parse)
        .collect::<Result<_>>()?;
    precheck(&loaded, limit)?;
    Ok(loaded)
}

/// Runs the fixtures in order on a scratch tenant in memory and fails at the first statement the
/// guard refuses or stops. Statements that merely fail there (a table a real tenant may have) are
/// passed over: the real run meets the guard again.
fn precheck(loaded: &[Loaded], limit: Duration) -> Result<()> {
    let label = guard::scratch_path();
    let mut conn = guard::scratch_baseline().at(&label)?;
    conn.execute_batch("PRAGMA foreign_keys=ON; BEGIN;")
        .at(&label)?;
    let g = guard::install(&mut conn, Kind::Fixture, limit).at(&label)?;
    for l in loaded {
        apply(&conn, &g, l, false, &mut |e| match e {
            Error::Refused { .. } | Error::StatementTimeout { .. } => Err(e),
            _ => Ok(()),
        })?;
    }
    Ok(())
}

/// A fixture and the version deployed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FixtureVersion {
    pub name: String,
    pub version: String,
}

/// Applies fixtures inside the transaction the caller opened, every statement through `guard`
/// (its rules and `limit` per statement): a refused statement is named by file and line and
/// fails the run (exit 2), one that runs too long is stopped (exit 20).
pub fn apply_guarded(
    conn: &mut Connection,
    path: &Path,
    plan: &[&Loaded],
    limit: Duration,
    on_error: &mut dyn FnMut(Error) -> Result<()>,
) -> Result<()> {
    let g = guard::install(conn, Kind::Fixture, limit).at(path)?;
    let r = apply_checked(conn, &g, path, plan, on_error);
    g.remove(conn).at(path)?;
    r
}

/// A row that breaks a foreign key: its table, rowid (none for a WITHOUT ROWID table) and the
/// table it should reference.
type Violation = (String, Option<i64>, String);

fn fk_violations(conn: &Connection) -> rusqlite::Result<HashSet<Violation>> {
    let mut st = conn.prepare("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// Applies each fixture, then looks for rows it left breaking a foreign key. A deferred foreign
/// key (`DEFERRABLE INITIALLY DEFERRED`) is only enforced at COMMIT, where the failure could name
/// neither the fixture nor the row; checked here, it is an error of the fixture, naming the
/// tables and rows. Rows that broke a key before the first fixture do not count (COMMIT does not
/// fail on them either).
fn apply_checked(
    conn: &Connection,
    guard: &Guard,
    path: &Path,
    plan: &[&Loaded],
    on_error: &mut dyn FnMut(Error) -> Result<()>,
) -> Result<()> {
    let mut seen = fk_violations(conn).at(path)?;
    for l in plan {
        apply(conn, guard, l, true, on_error)?;
        let mut new: Vec<Violation> = fk_violations(conn)
            .at(path)?
            .into_iter()
            .filter(|v| !seen.contains(v))
            .collect();
        if new.is_empty() {
            continue;
        }
        new.sort();
        let shown: Vec<String> = new
            .iter()
            .take(5)
            .map(|(t, rowid, parent)| match rowid {
                Some(id) => format!("table '{t}' rowid {id} (references '{parent}')"),
                None => format!("table '{t}' (references '{parent}')"),
            })
            .collect();
        let more = if new.len() > 5 {
            format!(" and {} more", new.len() - 5)
        } else {
            String::new()
        };
        let message = format!(
            "fixture '{}': {} row(s) break a foreign key when the fixture is done, so its transaction cannot commit: {}{more}; add the missing rows or fix the references",
            l.fixture.name,
            new.len(),
            shown.join(", ")
        );
        seen.extend(new);
        on_error(Error::Other(message))?;
    }
    Ok(())
}

/// Commits the transaction of a fixture run. A failure here is not a conflict with another
/// tenant or name: a constraint is the content's fault (exit 1, like a failing statement).
pub(crate) fn commit(conn: &Connection, path: &Path) -> Result<()> {
    conn.execute_batch("COMMIT")
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => Error::Other(format!(
                "{}: the fixtures break a constraint checked at COMMIT ({e}); nothing was applied",
                path.display()
            )),
            _ => Error::sqlite(path, e),
        })
}

/// The table in a tenant file that records the fixtures applied to it, written in the same
/// transaction as the fixtures: the file itself says what it holds, whatever happens between
/// its commit and the registry's. `tenant_fixtures` follows from it (a later deploy, or
/// `doctor --repair`, fills a row a crash left out). Its name (a leading underscore and monkctl's
/// prefix) keeps it apart from the tables the API makes for its models; the API serves only
/// tables it has a model for and leaves this one alone. A tenant holding nothing but `system` has no such table.
pub const TENANT_RECORD: &str = "_monkctl_fixtures";

#[path = "fixture_postgres.rs"]
pub(crate) mod postgres;

/// A fixture as a tenant file records it (`TENANT_RECORD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    pub name: String,
    pub version: Option<String>,
    pub deployed_at: String,
}

/// The fixtures a tenant file records, by name; `None` when it has no record table (a tenant
/// made before monkctl kept one, or one that never got a fixture besides `system`).
pub fn recorded_in(conn: &Connection) -> rusqlite::Result<Option<Vec<Recorded>>> {
    let has: bool = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists([TENANT_RECORD])?;
    if !has {
        return Ok(None);
    }
    let mut st = conn.prepare(&format!(
        "SELECT name, version, deployed_at FROM {TENANT_RECORD} ORDER BY name"
    ))?;
    let rows = st.query_map([], |r| {
        Ok(Recorded {
            name: r.get(0)?,
            version: r.get(1)?,
            deployed_at: r.get(2)?,
        })
    })?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map(Some)
}

/// Records `applied` in the tenant's own record table, inside the caller's transaction. When the
/// table is new, `known` (what the registry already says the file holds, from before the table
/// existed) is copied into it first, so that the table is complete from its first row on.
pub(crate) fn record_in(
    conn: &Connection,
    path: &Path,
    applied: &[&Loaded],
    known: &[Recorded],
) -> Result<()> {
    if applied.is_empty() {
        return Ok(());
    }
    let existed = recorded_in(conn).at(path)?.is_some();
    let now = ids::now_iso();
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {TENANT_RECORD} (name TEXT PRIMARY KEY NOT NULL, version TEXT, deployed_at TEXT NOT NULL)"
    ))
    .at(path)?;
    if !existed {
        let mut st = conn
            .prepare(&format!(
                "INSERT OR IGNORE INTO {TENANT_RECORD} (name, version, deployed_at) VALUES (?1, ?2, ?3)"
            ))
            .at(path)?;
        for k in known.iter().filter(|k| k.name != SYSTEM) {
            st.execute(rusqlite::params![k.name, k.version, k.deployed_at])
                .at(path)?;
        }
    }
    let mut st = conn
        .prepare(&format!(
            "INSERT INTO {TENANT_RECORD} (name, version, deployed_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, deployed_at = excluded.deployed_at"
        ))
        .at(path)?;
    for l in applied {
        st.execute(rusqlite::params![l.fixture.name, l.fixture.version, now])
            .at(path)?;
    }
    Ok(())
}

/// Applies fixtures to an open connection in one transaction, recording them in the tenant's
/// record table (`known`: see `record_in`); all or nothing.
pub fn apply_all(
    conn: &mut Connection,
    path: &Path,
    plan: &[&Loaded],
    known: &[Recorded],
    limit: Duration,
) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE").at(path)?;
    match apply_guarded(conn, path, plan, limit, &mut |e| Err(e))
        .and_then(|()| record_in(conn, path, plan, known))
    {
        Ok(()) => commit(conn, path).inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        }),
        Err(e) => {
            // SQLite may have rolled back already (some errors do); nothing to report then.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// A tenant builder that executes `system` and then `fixtures` into the new file (one
/// transaction), for `tenant create --fixture`.
pub fn builder<'a>(
    set: &'a MigrationSet,
    fixtures: &'a [Loaded],
    limit: Duration,
) -> impl Fn(&Path, &CreateSpec) -> Result<Built> + Sync + 'a {
    move |path: &Path, spec: &CreateSpec| {
        // The file is a private temporary one: errors name the tenant, not it.
        let build = || -> Result<String> {
            let mut conn = system::open_build(path)?;
            // A private file being built: an error discards it, so no rollback is needed.
            conn.execute_batch("BEGIN").at(path)?;
            set.execute_schema(&mut conn, path, limit)?;
            let owner_id = system::add_owner(&conn, &spec.owner).at(path)?;
            let plan: Vec<&Loaded> = fixtures.iter().collect();
            apply_guarded(&mut conn, path, &plan, limit, &mut |e| Err(e))?;
            record_in(&conn, path, &plan, &[])?;
            commit(&conn, path)?;
            system::finish_build(conn, path)?;
            Ok(owner_id)
        };
        let owner_id = build().map_err(|e| e.renamed(path, &format!("tenant '{}'", spec.name)))?;
        let mut built = Built::with_system(owner_id);
        for l in fixtures {
            built.fixtures.push(l.fixture.name.clone());
            built
                .fixture_versions
                .push((l.fixture.name.clone(), l.fixture.version.clone()));
        }
        Ok(built)
    }
}

/// `fixture show`: the manifest, its files and the tables they touch.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    #[serde(flatten)]
    pub fixture: Fixture,
    pub file_details: Vec<FileDetail>,
    pub tables: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileDetail {
    pub file: String,
    pub kind: String,
    pub size_bytes: u64,
    /// Statements of an SQL file, rows of a data file.
    pub items: usize,
}

pub fn show(dir: &Path, name: &str) -> Result<Shown> {
    let f = load(dir, name)?;
    let loaded = parse(&f)?;
    let mut tables: Vec<String> = Vec::new();
    let mut details = Vec::new();
    for (part, file) in loaded.parts.iter().zip(&f.files) {
        let (kind, items, path) = match part {
            Part::Sql { statements, file } => {
                for s in statements {
                    for t in tables_in(&s.sql) {
                        if !tables.contains(&t) {
                            tables.push(t);
                        }
                    }
                }
                ("sql", statements.len(), file)
            }
            Part::Rows {
                table, rows, file, ..
            } => {
                if !tables.contains(table) {
                    tables.push(table.clone());
                }
                (
                    if file.extension().is_some_and(|e| e == "csv") {
                        "csv"
                    } else {
                        "jsonl"
                    },
                    rows.len(),
                    file,
                )
            }
        };
        details.push(FileDetail {
            file: file.clone(),
            kind: kind.into(),
            size_bytes: if f.is_builtin() {
                system::SYSTEM_SQL.len() as u64
            } else {
                fsutil::size_of(path).unwrap_or(0)
            },
            items,
        });
    }
    Ok(Shown {
        fixture: f,
        file_details: details,
        tables,
    })
}

/// The tables a statement writes or creates, by its leading keywords (for `fixture show`).
fn tables_in(sql: &str) -> Vec<String> {
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .take(12)
        .map(String::from)
        .collect();
    let up: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let after = |kw: &str| up.iter().position(|w| w == kw).map(|i| i + 1);
    let idx = match up.first().map(String::as_str) {
        Some("INSERT") | Some("REPLACE") => after("INTO"),
        Some("UPDATE") => {
            let mut i = 1;
            if up.get(1).map(String::as_str) == Some("OR") {
                i = 3;
            }
            Some(i)
        }
        Some("DELETE") => after("FROM"),
        Some("CREATE") | Some("ALTER") | Some("DROP") => {
            if up.iter().any(|w| w == "TABLE") {
                let mut i = after("TABLE").unwrap_or(0);
                if up.get(i).map(String::as_str) == Some("IF") {
                    i += if up.get(i + 1).map(String::as_str) == Some("NOT") {
                        3
                    } else {
                        2
                    };
                }
                Some(i)
            } else {
                None
            }
        }
        _ => None,
    };
    idx.and_then(|i| words.get(i))
        .map(|t| {
            vec![t
                .trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']')
                .to_string()]
        })
        .unwrap_or_default()
}

/// A problem `fixture check` found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub fixture: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub checked: Vec<String>,
    pub problems: Vec<Problem>,
}

/// `fixture check [NAME]`: parses every manifest and file, resolves dependencies, and applies the
/// fixtures in order to a scratch tenant in memory at the deployment's schema (`set`), through
/// the guard (`limit` per statement), reporting every refused, stopped or failing statement and
/// row with its file and line. Creates no file anywhere.
pub fn check(
    ws: &Workspace,
    dir: &Path,
    name: Option<&str>,
    limit: Duration,
) -> Result<CheckReport> {
    let set = ws.migration_set()?;
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    let wanted: Vec<String> = match name {
        Some(n) => {
            names::plain("fixture name", n)?;
            vec![n.to_string()]
        }
        None => match directory_names(dir) {
            // Checking nothing is no pass: a CI job pointed at the wrong directory must fail.
            Ok(v) if v.is_empty() => {
                return Err(Error::FileNotFound {
                    what: "fixture to check",
                    path: dir.to_path_buf(),
                    hint: if dir.is_dir() {
                        "the fixtures directory holds no fixture (a directory with a fixture.toml); check --fixtures or MONK_FIXTURES_DIR".into()
                    } else {
                        "there is no fixtures directory there; give it with --fixtures or MONK_FIXTURES_DIR (default ./fixtures)".into()
                    },
                })
            }
            Ok(v) => v,
            Err(e) => {
                problems.push(Problem {
                    fixture: SYSTEM.into(),
                    message: e.to_string(),
                });
                Vec::new()
            }
        },
    };
    let mut order: Vec<Fixture> = Vec::new();
    for w in &wanted {
        match resolve(dir, std::slice::from_ref(w)) {
            Ok(fs) => {
                for f in fs {
                    if !order.iter().any(|o| o.name == f.name) {
                        order.push(f);
                    }
                }
            }
            Err(e) => {
                if name.is_some() && matches!(e, Error::FileNotFound { .. }) && order.is_empty() {
                    return Err(e);
                }
                problems.push(Problem {
                    fixture: w.clone(),
                    message: e.to_string(),
                })
            }
        }
    }
    if let super::Backend::Postgres(target) = &ws.backend {
        postgres::check(target, &order, set, limit, &mut checked, &mut problems)?;
        return Ok(CheckReport { checked, problems });
    }
    let path = guard::scratch_path();
    let mut conn = guard::scratch_from_schema(&[]).at(&path)?;
    set.execute_schema(&mut conn, &path, limit)?;
    conn.execute_batch("PRAGMA foreign_keys=ON; BEGIN;")
        .at(&path)?;
    for f in &order {
        checked.push(f.name.clone());
        let loaded = match parse(f) {
            Ok(l) => l,
            Err(e) => {
                problems.push(Problem {
                    fixture: f.name.clone(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut n = 0;
        apply_guarded(&mut conn, &path, &[&loaded], limit, &mut |e| {
            n += 1;
            if n <= 50 {
                problems.push(Problem {
                    fixture: f.name.clone(),
                    message: e.to_string(),
                });
            }
            Ok(())
        })?;
    }
    drop(conn);
    Ok(CheckReport { checked, problems })
}

/// Takes an OS lock on `path` (created 0600, its directory 0700), waiting for a holder to finish;
/// released when the file is dropped or the process ends. For short critical sections between
/// monkctl processes (deploys to one tenant, builds of one template).
pub(crate) fn wait_lock(path: &Path) -> Result<fs::File> {
    if let Some(dir) = path.parent() {
        fsutil::create_private_dir(dir)?;
    }
    let f = fs::File::options()
        .mode(0o600)
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .at(path)?;
    f.lock().at(path)?;
    Ok(f)
}

/// The result of deploying to one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    pub applied: Vec<FixtureVersion>,
    /// Already deployed (use --force to redeploy the named ones).
    pub skipped: Vec<String>,
    /// Found deployed in the tenant file but missing from `tenant_fixtures` (a deploy that was
    /// interrupted after the tenant's commit): recorded in the registry now.
    pub recorded: Vec<String>,
}

/// Which tenants a deploy goes to.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub tenants: Vec<String>,
    /// Every active tenant that is neither trashed nor deleted.
    pub all: bool,
}

/// `fixture deploy`: resolves and parses the fixtures first (bad input fails before any tenant is
/// touched), then per tenant applies the ones not yet deployed in one transaction that also
/// records them in the tenant file (`TENANT_RECORD`), and records them in `tenant_fixtures` after
/// it commits. One tenant's failure does not stop the others.
pub fn deploy(
    ws: &Workspace,
    dir: &Path,
    wanted: &[String],
    targets: &Targets,
    force: bool,
    limit: Duration,
    progress: &dyn Progress,
) -> Result<Batch<Deployed>> {
    if wanted.is_empty() {
        return Err(Error::Usage("name at least one fixture to deploy".into()));
    }
    for t in &targets.tenants {
        names::tenant(t)?;
    }
    if targets.tenants.is_empty() && !targets.all {
        return Err(Error::Usage(
            "name the tenants with --tenant NAME, or pass --all for every active tenant".into(),
        ));
    }
    if let super::Backend::Postgres(_) = ws.backend {
        return deploy_postgres(ws, dir, wanted, targets, force, limit, progress);
    }
    let loaded = prepare(dir, wanted, limit)?;
    // A data directory without an infra database is an error here, not something to create.
    drop(ws.registry()?);
    let mut reg = super::Store::Sqlite(ws.registry_for_write()?);
    let tenants: Vec<TenantRow> = if targets.all {
        reg.all()?
            .into_iter()
            .filter(|t| t.status == "active" && !t.is_trashed() && !t.is_deleted())
            .collect()
    } else {
        targets
            .tenants
            .iter()
            .map(|n| reg.get(n))
            .collect::<Result<_>>()?
    };
    progress.start(tenants.len() as u64, "deploying fixtures");
    let mut batch = Batch::default();
    for t in &tenants {
        let r = deploy_one(ws, &mut reg, t, &loaded, wanted, force, limit);
        progress.advance(1, &t.name);
        batch.push(&t.name, r);
    }
    progress.finish();
    Ok(batch)
}

/// `prepare` for the deployment's backend: on PostgreSQL the fixtures are read with their
/// `.postgres.sql` files and checked by the PostgreSQL guard (`prepare_postgres`).
pub fn prepare_for(
    ws: &Workspace,
    dir: &Path,
    wanted: &[String],
    limit: Duration,
) -> Result<Vec<Loaded>> {
    match ws.backend {
        super::Backend::Postgres(_) => prepare_postgres(dir, wanted),
        super::Backend::Sqlite => prepare(dir, wanted, limit),
    }
}

/// The fixtures of `wanted` with their dependencies, read for PostgreSQL, every SQL statement
/// checked by the PostgreSQL guard before any tenant is touched.
pub fn prepare_postgres(dir: &Path, wanted: &[String]) -> Result<Vec<Loaded>> {
    let loaded: Vec<Loaded> = resolve(dir, wanted)?
        .iter()
        .map(|f| parse_for(f, true))
        .collect::<Result<_>>()?;
    let outside = [
        "public".to_string(),
        "pg_catalog".to_string(),
        "information_schema".to_string(),
    ];
    for l in loaded.iter().filter(|l| !l.fixture.is_builtin()) {
        for part in &l.parts {
            if let Part::Sql { file, statements } = part {
                for st in statements {
                    super::guard_postgres::check(&st.sql, file, "", &outside).map_err(
                        |e| match e {
                            Error::Refused { path, message, .. } => Error::Refused {
                                path,
                                line: st.line,
                                message,
                            },
                            other => other,
                        },
                    )?;
                }
            }
        }
    }
    Ok(loaded)
}

#[allow(clippy::too_many_arguments)]
fn deploy_postgres(
    ws: &Workspace,
    dir: &Path,
    wanted: &[String],
    targets: &Targets,
    force: bool,
    limit: Duration,
    progress: &dyn Progress,
) -> Result<Batch<Deployed>> {
    let loaded = prepare_postgres(dir, wanted)?;
    let super::Store::Postgres(mut reg) = ws.store_existing_for_write()? else {
        unreachable!("a PostgreSQL deployment has a PostgreSQL registry")
    };
    // The registry's SQLite tenants are deployed to as files when `--sqlite-data-dir` says where
    // they are (their fixtures read for SQLite); else a run over all leaves them out.
    let files = ws.sqlite_files.is_some();
    let tenants: Vec<TenantRow> = if targets.all {
        reg.all()?
            .into_iter()
            .filter(|t| {
                t.status == "active"
                    && !t.is_trashed()
                    && !t.is_deleted()
                    && (t.db_type == "postgresql" || (files && t.db_type == "sqlite"))
            })
            .collect()
    } else {
        let mut out = Vec::new();
        for n in &targets.tenants {
            out.push(
                reg.find(n)?
                    .ok_or_else(|| Error::TenantNotFound(n.clone()))?,
            );
        }
        out
    };
    let others = postgres::schemas(&mut reg)?;
    let sqlite_loaded = if tenants.iter().any(|t| t.db_type == "sqlite") && files {
        Some(prepare(dir, wanted, limit)?)
    } else {
        None
    };
    let mut store = super::Store::Postgres(reg);
    progress.start(tenants.len() as u64, "deploying fixtures");
    let mut batch = Batch::default();
    for t in &tenants {
        let r = match (&sqlite_loaded, &mut store) {
            (Some(l), store) if t.db_type == "sqlite" => {
                deploy_one(ws, store, t, l, wanted, force, limit)
            }
            (_, super::Store::Postgres(reg)) => {
                postgres::deploy_one(reg, t, &loaded, wanted, force, limit, &others)
            }
            (_, super::Store::Sqlite(_)) => unreachable!("a PostgreSQL registry"),
        };
        progress.advance(1, &t.name);
        batch.push(&t.name, r);
    }
    progress.finish();
    Ok(batch)
}

fn deploy_one(
    ws: &Workspace,
    reg: &mut super::Store,
    t: &TenantRow,
    loaded: &[Loaded],
    wanted: &[String],
    force: bool,
    limit: Duration,
) -> Result<Deployed> {
    if t.is_deleted() {
        return Err(Error::Conflict(format!(
            "tenant '{}' is deleted; fixtures cannot be deployed to it",
            t.name
        )));
    }
    // The file of a SQLite deployment's tenant, or of a PostgreSQL registry's SQLite tenant.
    let path = ws.sqlite_file_of(t)?;
    // Two deploys to one tenant queue here, so the second sees what the first recorded. The lock
    // is an flock on the tenant file itself (no extra file; SQLite's own locks are fcntl locks,
    // independent on Linux); it is taken before SQLite opens the file and released after SQLite
    // closed it, so closing it never drops SQLite's locks.
    let _lock = fs::File::open(&path)
        .and_then(|f| f.lock().map(|_| f))
        .at(&path)?;
    let in_registry = reg.fixtures_of(&t.id)?;
    let mut conn = db::open(&path, Mode::ReadWrite)?;
    // The tenant's own record (see `TENANT_RECORD`) is the truth of what its file holds; the
    // registry can lag behind it when a deploy was killed between the two commits.
    let in_tenant = recorded_in(&conn).at(&path)?.unwrap_or_default();
    let done: HashSet<&str> = in_registry
        .iter()
        .map(|f| f.fixture_name.as_str())
        .chain(in_tenant.iter().map(|r| r.name.as_str()))
        .collect();
    let (plan, skipped): (Vec<&Loaded>, Vec<&Loaded>) = loaded.iter().partition(|l| {
        !done.contains(l.fixture.name.as_str()) || (force && wanted.contains(&l.fixture.name))
    });
    let skipped: Vec<String> = skipped.iter().map(|l| l.fixture.name.clone()).collect();
    // Recorded in the file but not in the registry, and not applied again now: only the
    // registry's row is missing.
    let unrecorded: Vec<Recorded> = in_tenant
        .iter()
        .filter(|r| !in_registry.iter().any(|f| f.fixture_name == r.name))
        .filter(|r| !plan.iter().any(|l| l.fixture.name == r.name))
        .cloned()
        .collect();
    if !plan.is_empty() {
        let known: Vec<Recorded> = in_registry
            .iter()
            .map(|f| Recorded {
                name: f.fixture_name.clone(),
                version: f.version.clone(),
                deployed_at: f.deployed_at.clone(),
            })
            .collect();
        system::register_functions(&conn).at(&path)?;
        apply_all(&mut conn, &path, &plan, &known, limit)?;
        db::checkpoint_before_close(&conn);
    }
    drop(conn);
    if plan.is_empty() && unrecorded.is_empty() {
        return Ok(Deployed {
            applied: Vec::new(),
            skipped,
            recorded: Vec::new(),
        });
    }
    super::pause_point("fixture.deploy.applied");
    let now = ids::now_iso();
    let applied: Vec<FixtureVersion> = plan
        .iter()
        .map(|l| FixtureVersion {
            name: l.fixture.name.clone(),
            version: l.fixture.version.clone(),
        })
        .collect();
    reg.write(|w| {
        for a in &applied {
            w.record_fixture(&t.id, &a.name, &now)?;
            w.set_fixture_version(&t.id, &a.name, &a.version)?;
        }
        for r in &unrecorded {
            w.record_fixture(&t.id, &r.name, &r.deployed_at)?;
            if let Some(v) = &r.version {
                w.set_fixture_version(&t.id, &r.name, v)?;
            }
        }
        Ok(())
    })?;
    Ok(Deployed {
        applied,
        skipped,
        recorded: unrecorded.into_iter().map(|r| r.name).collect(),
    })
}

/// A line of `fixture status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub fixture: String,
    pub version: Option<String>,
    pub deployed_at: String,
}

/// `fixture status --tenant T`: what `tenant_fixtures` records for the tenant.
pub fn status(ws: &Workspace, tenant_name: &str) -> Result<Vec<Status>> {
    names::tenant(tenant_name)?;
    if let super::Backend::Postgres(_) = ws.backend {
        let mut store = ws.store()?;
        let t = store.get(tenant_name)?;
        return Ok(store
            .fixtures_of(&t.id)?
            .into_iter()
            .map(|f| Status {
                version: f.version,
                fixture: f.fixture_name,
                deployed_at: f.deployed_at,
            })
            .collect());
    }
    let reg = ws.registry()?;
    let t = reg.get(tenant_name)?;
    let versions: HashMap<String, Option<String>> = reg.fixture_versions(&t.id)?;
    Ok(reg
        .fixtures_of(&t.id)?
        .into_iter()
        .map(|f| Status {
            version: versions.get(&f.fixture_name).cloned().flatten(),
            fixture: f.fixture_name,
            deployed_at: f.deployed_at,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sql_by_sqlite_rules_with_lines() {
        let sql = "-- head\nCREATE TABLE a (x TEXT);\n\nINSERT INTO a VALUES ('1;2');\n/* c */ INSERT INTO a VALUES ('x')";
        let s = split_sql(sql);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].line, 2);
        assert_eq!(s[1].line, 4);
        assert!(s[1].sql.contains("'1;2'"));
        assert_eq!(s[2].line, 5);
        let trig = "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;\nSELECT 3;";
        let s = split_sql(trig);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].line, 2);
    }

    #[test]
    fn csv_follows_rfc_4180() {
        let p = Path::new("t.csv");
        let (h, rows) =
            parse_csv(p, "a,b,c\r\n1,\"x,\"\"y\"\"\",\n\"multi\nline\",\"\",z\n").unwrap();
        assert_eq!(h, vec!["a", "b", "c"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cells[1], Cell::Text("x,\"y\"".into()));
        assert_eq!(rows[0].cells[2], Cell::Null);
        assert_eq!(rows[1].cells[0], Cell::Text("multi\nline".into()));
        assert_eq!(rows[1].cells[1], Cell::Text(String::new()));
        assert_eq!(rows[1].line, 3);
        let e = parse_csv(p, "a,b\n1,2\n\"x\ny\",2,3\n").unwrap_err();
        assert!(matches!(e, Error::BadInput { line: 3, .. }), "{e}");
        assert!(parse_csv(p, "a\n\"open\n").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        /// Any table written as RFC 4180 CSV (text quoted with `""` escapes, `NULL` as an
        /// unquoted empty field, LF or CRLF, a final newline or not) reads back cell for cell:
        /// `""` stays empty text and an empty field stays `Null`.
        #[test]
        fn csv_reads_back_what_was_written(
            rows in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::option::of("[a-z ,\"\n\r\u{e9}\u{1F600}]{0,8}"),
                    3,
                ),
                0..6,
            ),
            crlf in proptest::bool::ANY,
            final_newline in proptest::bool::ANY,
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let field = |c: &Option<String>| match c {
                None => String::new(),
                Some(s) => format!("\"{}\"", s.replace('"', "\"\"")),
            };
            let mut text = String::from("a,b,c");
            for r in &rows {
                text.push_str(eol);
                text.push_str(&r.iter().map(field).collect::<Vec<_>>().join(","));
            }
            if final_newline {
                text.push_str(eol);
            }
            let (header, parsed) = parse_csv(Path::new("p.csv"), &text).unwrap();
            proptest::prop_assert_eq!(header, vec!["a", "b", "c"]);
            proptest::prop_assert_eq!(parsed.len(), rows.len());
            for (want, got) in rows.iter().zip(&parsed) {
                let want: Vec<Cell> = want
                    .iter()
                    .map(|c| c.clone().map_or(Cell::Null, Cell::Text))
                    .collect();
                proptest::prop_assert_eq!(&got.cells, &want);
            }
        }
    }

    #[test]
    fn conversion_follows_declared_types() {
        assert_eq!(Affinity::of("INTEGER"), Affinity::Integer);
        assert_eq!(Affinity::of("varchar(10)"), Affinity::Text);
        assert_eq!(Affinity::of(""), Affinity::Blob);
        assert_eq!(Affinity::of("DOUBLE"), Affinity::Real);
        assert_eq!(Affinity::of("DECIMAL"), Affinity::Numeric);
        let t = |s: &str| Cell::Text(s.into());
        let owned = |v: Value| Ok(ToSqlOutput::Owned(v));
        assert_eq!(
            convert(&t("42"), Affinity::Integer),
            owned(Value::Integer(42))
        );
        assert_eq!(
            convert(&t("true"), Affinity::Integer),
            owned(Value::Integer(1))
        );
        assert!(convert(&t("4x"), Affinity::Integer).is_err());
        assert!(convert(&t("abc"), Affinity::Real).is_err());
        let cell = t("007");
        assert_eq!(
            convert(&cell, Affinity::Text),
            Ok(ToSqlOutput::Borrowed(ValueRef::Text(b"007")))
        );
        assert_eq!(convert(&Cell::Null, Affinity::Text), owned(Value::Null));
    }

    #[test]
    fn jsonl_rows_and_errors_carry_their_line() {
        let p = Path::new("t.jsonl");
        let rows = parse_jsonl(p, "{\"a\":1,\"b\":null}\n\n{\"a\":[1,2]}\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cells[1], Cell::Null);
        assert_eq!(rows[1].line, 3);
        let e = parse_jsonl(p, "{\"a\":1}\n{\"a\":\n").unwrap_err();
        assert!(matches!(e, Error::BadInput { line: 2, .. }), "{e}");
        let e = parse_jsonl(p, "[1]\n").unwrap_err();
        assert!(e.to_string().contains("not a JSON object"), "{e}");
    }

    #[test]
    fn checksum_is_stable_and_sensitive() {
        assert_eq!(checksum(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(checksum(b"abcdefghi"), checksum(b"abcdefghj"));
        assert_eq!(checksum_hex(b"x").len(), 16);
    }
}
