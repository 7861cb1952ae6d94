//! Renders a command's result as a table (people), JSON or CSV (scripts), to stdout.
//!
//! JSON is the result's `Serialize` form, a public interface documented in the README. Tables and
//! CSV show the same rows; CSV has a header line and quotes per RFC 4180.

use std::io::{self, Write};

use comfy_table::{presets, ContentArrangement, Table as Comfy};
use serde::Serialize;

use crate::cli::Format;

/// Rows for table and CSV output.
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
        }
    }

    /// A two-column table of fields and values, for one object.
    pub fn fields(pairs: Vec<(&'static str, String)>) -> Table {
        Table {
            headers: vec!["field", "value"],
            rows: pairs.into_iter().map(|(k, v)| vec![k.into(), v]).collect(),
        }
    }
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

pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

pub fn print<T: Render>(format: Format, value: &T) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    write(&mut out, format, value)?;
    out.flush()
}

pub fn write<T: Render>(out: &mut dyn Write, format: Format, value: &T) -> io::Result<()> {
    match format {
        Format::Json => value.write_json(out),
        Format::Csv => write_csv(out, &value.table()),
        Format::Table => {
            let t = value.table();
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
            for line in value.footer() {
                writeln!(out, "{line}")?;
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

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Human-readable size: `1.5 MiB`.
pub fn size(bytes: Option<u64>) -> String {
    let Some(b) = bytes else {
        return "-".into();
    };
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
    fn sizes() {
        assert_eq!(size(Some(512)), "512 B");
        assert_eq!(size(Some(1536)), "1.5 KiB");
        assert_eq!(size(None), "-");
    }
}
