//! Values and tables between the two backends: how the API stores each field type on SQLite and
//! on PostgreSQL, the DDL it makes for a user model on each, and the conversion of one value.
//!
//! An archive is always in the SQLite form (`archive`). A PostgreSQL tenant is written into it
//! as the API's SQLite backend stores the same data: uuids, timestamps and dates as text
//! (timestamps as the API writes them, `YYYY-MM-DDTHH:MM:SS.mmmZ`, with six fraction digits
//! where the microseconds need them), booleans as 0/1, `jsonb` as compact JSON text, arrays as
//! JSON arrays, `numeric` as REAL, `bytea` as BLOB. What REAL cannot hold exactly (a numeric's
//! digits) is kept beside, in `EXACT_TABLE`, so that nothing is lost on the way back.
//!
//! Going into PostgreSQL, every value is written in `COPY`'s text format for the type of the
//! column it goes to (`Kind`), and a value that does not fit is an error that names the column
//! (the caller adds the table and row).

use rusqlite::types::ValueRef;

/// The archive table that keeps the exact text of values the SQLite form holds only
/// approximately (a `numeric` whose digits a REAL does not reproduce): table, SQLite rowid,
/// column, text.
pub const EXACT_TABLE: &str = "_monk_exact_values";

/// The DDL of `EXACT_TABLE`.
pub const EXACT_DDL: &str = "CREATE TABLE _monk_exact_values (\
     tbl TEXT NOT NULL, rid INTEGER NOT NULL, col TEXT NOT NULL, value TEXT NOT NULL, \
     PRIMARY KEY (tbl, rid, col)) WITHOUT ROWID";

/// The 15 field types of the API (`fields.type`, the same names on both backends).
pub const FIELD_TYPES: [&str; 15] = [
    "text",
    "integer",
    "bigint",
    "bigserial",
    "numeric",
    "boolean",
    "jsonb",
    "uuid",
    "timestamp",
    "date",
    "binary",
    "text[]",
    "integer[]",
    "numeric[]",
    "uuid[]",
];

/// The column type the API gives a field of type `ft` on SQLite.
pub fn sqlite_type(ft: &str) -> Option<&'static str> {
    Some(match ft {
        "integer" | "bigint" | "bigserial" | "boolean" => "INTEGER",
        "numeric" => "REAL",
        "binary" => "BLOB",
        "text" | "jsonb" | "uuid" | "timestamp" | "date" | "text[]" | "integer[]" | "numeric[]"
        | "uuid[]" => "TEXT",
        _ => return None,
    })
}

/// The column type the API gives a field of type `ft` on PostgreSQL.
pub fn postgres_type(ft: &str) -> Option<&'static str> {
    Some(match ft {
        "text" => "text",
        "integer" => "integer",
        "bigint" => "bigint",
        "bigserial" => "bigserial",
        "numeric" => "numeric",
        "boolean" => "boolean",
        "jsonb" => "jsonb",
        "uuid" => "uuid",
        "timestamp" => "timestamp",
        "date" => "date",
        "binary" => "bytea",
        "text[]" => "text[]",
        "integer[]" => "integer[]",
        "numeric[]" => "numeric[]",
        "uuid[]" => "uuid[]",
        _ => return None,
    })
}

/// A PostgreSQL type as `format_type` prints it and an archive records it (`numeric(10,2)`,
/// `timestamp without time zone`, `integer[]`), checked before it goes into DDL: words of
/// lowercase letters, digits and `_`, then at most one `(n)` or `(n,m)`, then `[]`s. Anything
/// else (a quote, a `;`, a schema-qualified name) is refused, since the archive is a file from
/// outside.
pub fn recorded_type(ty: &str) -> Option<&str> {
    let (words, rest) = match ty.find(['(', '[']) {
        Some(i) => ty.split_at(i),
        None => (ty, ""),
    };
    let words_ok = !words.is_empty()
        && words.starts_with(|c: char| c.is_ascii_lowercase())
        && words.split(' ').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    let mut rest = rest;
    if let Some(r) = rest.strip_prefix('(') {
        let (inside, after) = r.split_once(')')?;
        if !inside
            .split(',')
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            || inside.split(',').count() > 2
        {
            return None;
        }
        rest = after;
    }
    while let Some(r) = rest.strip_prefix("[]") {
        rest = r;
    }
    (words_ok && rest.is_empty()).then_some(ty)
}

/// One field of a user model, in its table's column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// `fields.type`.
    pub ftype: String,
    pub required: bool,
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The table the API's SQLite backend makes for a user model: the standard columns, then one
/// per field (the text of the API's own statement, so that `sqlite_master` reads the same).
pub fn sqlite_model_ddl(model: &str, fields: &[Field]) -> Result<String, (String, String)> {
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {} (\n\n    \"id\" TEXT PRIMARY KEY,\n    \"access_read\" TEXT DEFAULT '[]',\n    \"access_edit\" TEXT DEFAULT '[]',\n    \"access_full\" TEXT DEFAULT '[]',\n    \"access_deny\" TEXT DEFAULT '[]',\n    \"created_at\" TEXT NOT NULL,\n    \"updated_at\" TEXT NOT NULL,\n    \"trashed_at\" TEXT,\n    \"deleted_at\" TEXT\n\n",
        quoted(model)
    );
    for f in fields {
        let ty = sqlite_type(&f.ftype).ok_or_else(|| unknown_type(f))?;
        sql.push_str(&format!(", {} {ty}", quoted(&f.name)));
        if f.required {
            sql.push_str(" NOT NULL");
        }
    }
    sql.push(')');
    Ok(sql)
}

/// The table the API's PostgreSQL backend makes for a user model (as `\d+` shows it for the
/// reference tenant's `widgets`).
pub fn postgres_model_ddl(model: &str, fields: &[Field]) -> Result<String, (String, String)> {
    let mut sql = format!(
        "CREATE TABLE {} (id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY, \
         access_read uuid[] DEFAULT '{{}}'::uuid[], access_edit uuid[] DEFAULT '{{}}'::uuid[], \
         access_full uuid[] DEFAULT '{{}}'::uuid[], access_deny uuid[] DEFAULT '{{}}'::uuid[], \
         created_at timestamp DEFAULT now() NOT NULL, updated_at timestamp DEFAULT now() NOT NULL, \
         trashed_at timestamp, deleted_at timestamp",
        quoted(model)
    );
    for f in fields {
        // A column without a `fields` row takes the PostgreSQL type its archive recorded.
        let ty = match f.ftype.strip_prefix("pg:") {
            Some(recorded) => recorded_type(recorded).ok_or_else(|| {
                (
                    f.name.clone(),
                    format!(
                        "the recorded type '{}' is not a plain PostgreSQL type name",
                        recorded.escape_debug()
                    ),
                )
            })?,
            None => postgres_type(&f.ftype).ok_or_else(|| unknown_type(f))?,
        };
        sql.push_str(&format!(", {} {ty}", quoted(&f.name)));
        if f.required {
            sql.push_str(" NOT NULL");
        }
    }
    sql.push(')');
    Ok(sql)
}

/// The column and what is wrong with a field whose type is none of the API's.
fn unknown_type(f: &Field) -> (String, String) {
    (
        f.name.clone(),
        format!(
            "field type '{}' is none of the API's types ({})",
            f.ftype.escape_debug(),
            FIELD_TYPES.join(", ")
        ),
    )
}

/// How a PostgreSQL column's values are read and written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `smallint`, `integer`, `bigint`: INTEGER.
    Int,
    /// `boolean`: 0/1.
    Bool,
    /// `numeric`: REAL, the exact text kept beside when REAL does not reproduce it.
    Numeric,
    /// `real`, `double precision`: REAL.
    Float,
    /// `timestamp`: ISO text ending in `Z`.
    Timestamp,
    /// `json`, `jsonb`: compact JSON text.
    Json,
    /// Any array: a JSON array.
    Array,
    /// `bytea`: BLOB.
    Bytea,
    /// Everything else (`text`, `uuid`, `date`, enums, and types the API does not use): the
    /// value's text form, which PostgreSQL reads back as the same value.
    Text,
}

impl Kind {
    /// The kind of a column from its type's name (`pg_type.typname`) and category.
    pub fn of(typname: &str, category: &str) -> Kind {
        if category == "A" {
            return Kind::Array;
        }
        match typname {
            "int2" | "int4" | "int8" => Kind::Int,
            "bool" => Kind::Bool,
            "numeric" => Kind::Numeric,
            "float4" | "float8" => Kind::Float,
            "timestamp" => Kind::Timestamp,
            "json" | "jsonb" => Kind::Json,
            "bytea" => Kind::Bytea,
            _ => Kind::Text,
        }
    }

    /// The expression that reads column `col` (quoted) for the SQLite form.
    pub fn select_expr(&self, col: &str) -> String {
        match self {
            Kind::Int => format!("{col}::int8"),
            Kind::Bool | Kind::Bytea => col.to_string(),
            Kind::Float => format!("{col}::float8"),
            Kind::Array => format!("array_to_json({col})::text"),
            _ => format!("{col}::text"),
        }
    }
}

/// A timestamp's text as PostgreSQL prints it (`DateStyle` ISO: `2026-12-02 05:13:22.827069`)
/// in the form the API's SQLite backend holds it: what the API writes,
/// `2026-12-02T05:13:22.827Z` (three fraction digits, or six when the microseconds need them);
/// a whole second as SQLite's `CURRENT_TIMESTAMP` writes it (the defaults of the system
/// tables), `2026-12-02 05:13:22`, since PostgreSQL keeps the instant, not its spelling, and
/// the API's own values nearly always carry milliseconds. Anything else (`infinity`, a BC
/// date) is kept as it is.
pub fn api_timestamp(pg: &str) -> String {
    let b = pg.as_bytes();
    if b.len() < 19 || b[10] != b' ' || !b[..4].iter().all(u8::is_ascii_digit) {
        return pg.to_string();
    }
    let (whole, frac) = match pg.split_once('.') {
        Some((w, f)) => (w, f),
        None => (pg, ""),
    };
    if whole.len() != 19 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return pg.to_string();
    }
    if frac.bytes().all(|c| c == b'0') {
        return whole.to_string();
    }
    let digits = if frac.len() <= 3 { 3 } else { 6 };
    let mut out = String::with_capacity(27);
    out.push_str(&whole[..10]);
    out.push('T');
    out.push_str(&whole[11..]);
    out.push('.');
    out.push_str(frac);
    for _ in frac.len()..digits {
        out.push('0');
    }
    out.push('Z');
    out
}

/// JSON text without the whitespace between tokens (`jsonb` prints `{"a": 1}`; the API's
/// SQLite backend stores `{"a":1}`). Strings are kept byte for byte, so this is exact.
pub fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// A numeric's text as REAL, and whether the REAL gives the same text back (else the text is
/// kept in `EXACT_TABLE`). `NaN` has no REAL (SQLite stores it as NULL): `None`.
pub fn numeric_as_real(text: &str) -> (Option<f64>, bool) {
    match text {
        "NaN" => return (None, false),
        "Infinity" => return (Some(f64::INFINITY), true),
        "-Infinity" => return (Some(f64::NEG_INFINITY), true),
        _ => {}
    }
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => (Some(x), real_text(x) == text),
        _ => (None, false),
    }
}

/// The text PostgreSQL reads a REAL back from: the shortest digits that give the same double,
/// never an exponent (`numeric` prints none).
pub fn real_text(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if x == 0.0 {
        // -0 has no numeric; `numeric` has one zero.
        return "0".to_string();
    }
    format!("{x}")
}

/// Appends `s` to a `COPY` text-format line, escaped.
pub fn copy_escape(s: &str, out: &mut String) {
    // Most values have nothing to escape: copied whole.
    if !s
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn storage(v: &ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}

fn text_of<'a>(v: &ValueRef<'a>) -> Result<std::borrow::Cow<'a, str>, String> {
    match *v {
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(std::borrow::Cow::Borrowed)
            .map_err(|_| "its text is not valid UTF-8".to_string()),
        ValueRef::Integer(i) => Ok(i.to_string().into()),
        ValueRef::Real(x) => Ok(real_text(x).into()),
        ValueRef::Blob(_) => Err("it is a blob where text belongs".into()),
        ValueRef::Null => Ok("".into()),
    }
}

/// Appends one archive value, for a column of kind `kind` (type `ty`, for messages), to a
/// `COPY` text-format line. `exact` is the value's exact text when the archive keeps one.
pub fn copy_field(
    kind: &Kind,
    ty: &str,
    v: ValueRef<'_>,
    exact: Option<&str>,
    out: &mut String,
) -> Result<(), String> {
    if let Some(e) = exact {
        copy_escape(e, out);
        return Ok(());
    }
    if let ValueRef::Null = v {
        out.push_str("\\N");
        return Ok(());
    }
    let wrong = |what: &str| format!("{} is not {what} ({ty})", storage(&v));
    match kind {
        Kind::Int => match v {
            ValueRef::Integer(i) => out.push_str(&i.to_string()),
            ValueRef::Real(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => {
                out.push_str(&(x as i64).to_string())
            }
            ValueRef::Text(t) => {
                let t = std::str::from_utf8(t).unwrap_or("");
                match t.parse::<i64>() {
                    Ok(i) => out.push_str(&i.to_string()),
                    Err(_) => {
                        return Err(format!("'{}' is not an integer ({ty})", t.escape_debug()))
                    }
                }
            }
            _ => return Err(wrong("an integer")),
        },
        Kind::Bool => match v {
            ValueRef::Integer(0) => out.push('f'),
            ValueRef::Integer(1) => out.push('t'),
            ValueRef::Integer(i) => {
                return Err(format!("{i} is not a boolean (0 or 1) ({ty})"));
            }
            _ => return Err(wrong("a boolean (0 or 1)")),
        },
        Kind::Numeric | Kind::Float => match v {
            ValueRef::Integer(i) => out.push_str(&i.to_string()),
            ValueRef::Real(x) => out.push_str(&real_text(x)),
            ValueRef::Text(t) => {
                let t = std::str::from_utf8(t).unwrap_or("");
                if t.trim().parse::<f64>().is_err() {
                    return Err(format!("'{}' is not a number ({ty})", t.escape_debug()));
                }
                copy_escape(t.trim(), out);
            }
            _ => return Err(wrong("a number")),
        },
        Kind::Json => {
            let t = text_of(&v)?;
            if serde_json::from_str::<serde::de::IgnoredAny>(&t).is_err() {
                return Err(format!(
                    "'{}' is not valid JSON ({ty})",
                    shorten(&t).escape_debug()
                ));
            }
            copy_escape(&t, out);
        }
        Kind::Array => {
            let t = text_of(&v)?;
            let not_array = || {
                format!(
                    "'{}' is not a JSON array ({ty})",
                    shorten(&t).escape_debug()
                )
            };
            let items: Vec<&serde_json::value::RawValue> =
                serde_json::from_str(&t).map_err(|_| not_array())?;
            let mut lit = String::new();
            array_literal(&items, &mut lit).map_err(|_| not_array())?;
            copy_escape(&lit, out);
        }
        Kind::Bytea => match v {
            ValueRef::Blob(b) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\\\x");
                out.reserve(b.len() * 2);
                for byte in b {
                    out.push(HEX[usize::from(byte >> 4)] as char);
                    out.push(HEX[usize::from(byte & 15)] as char);
                }
            }
            _ => return Err(wrong("binary data (a blob)")),
        },
        Kind::Timestamp | Kind::Text => {
            let t = text_of(&v)?;
            copy_escape(&t, out);
        }
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

/// A PostgreSQL array literal (`{"a","b",NULL}`) of JSON items, each read from its own text so
/// that numbers keep every digit: strings quoted and escaped, numbers as written, booleans as
/// `t`/`f`, `null` as NULL, nested arrays as nested braces, objects as their JSON text.
pub fn array_literal(
    items: &[&serde_json::value::RawValue],
    out: &mut String,
) -> serde_json::Result<()> {
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let raw = item.get().trim();
        match raw.as_bytes().first() {
            Some(b'"') => quote_element(&serde_json::from_str::<String>(raw)?, out),
            Some(b'[') => {
                let inner: Vec<&serde_json::value::RawValue> = serde_json::from_str(raw)?;
                array_literal(&inner, out)?;
            }
            Some(b'{') => quote_element(raw, out),
            Some(b'n') => out.push_str("NULL"),
            Some(b't') => out.push('t'),
            Some(b'f') => out.push('f'),
            _ => out.push_str(raw),
        }
    }
    out.push('}');
    Ok(())
}

fn quote_element(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_take_the_api_form() {
        assert_eq!(
            api_timestamp("2026-12-02 05:13:22.827069"),
            "2026-12-02T05:13:22.827069Z"
        );
        assert_eq!(
            api_timestamp("2026-12-02 05:13:22.779"),
            "2026-12-02T05:13:22.779Z"
        );
        assert_eq!(
            api_timestamp("2026-12-02 05:13:22.5"),
            "2026-12-02T05:13:22.500Z"
        );
        // A whole second, as SQLite's CURRENT_TIMESTAMP writes it.
        assert_eq!(api_timestamp("2026-12-02 05:13:22"), "2026-12-02 05:13:22");
        assert_eq!(
            api_timestamp("2026-12-02 05:13:22.1234"),
            "2026-12-02T05:13:22.123400Z"
        );
        assert_eq!(api_timestamp("infinity"), "infinity");
    }

    #[test]
    fn json_loses_only_whitespace() {
        assert_eq!(
            compact_json(r#"{"a": [1, 2], "b c": "x \" y", "d": {"e": null}}"#),
            r#"{"a":[1,2],"b c":"x \" y","d":{"e":null}}"#
        );
        assert_eq!(compact_json(r#""\\" "#), r#""\\""#);
    }

    #[test]
    fn numerics_that_real_cannot_hold_are_marked() {
        assert_eq!(numeric_as_real("9.99"), (Some(9.99), true));
        assert_eq!(numeric_as_real("0"), (Some(0.0), true));
        assert_eq!(numeric_as_real("1234567.891"), (Some(1234567.891), true));
        assert!(!numeric_as_real("9.90").1);
        assert!(!numeric_as_real("12345678901234567890.123").1);
        assert_eq!(numeric_as_real("NaN"), (None, false));
    }

    #[test]
    fn array_literals_quote_and_escape() {
        let v: Vec<&serde_json::value::RawValue> = serde_json::from_str(
            r#"["a", "b\"c", null, "NULL", "x\\y", "", 127195224664197448930790489771541.425912724028, [1.10, true]]"#,
        )
        .unwrap();
        let mut s = String::new();
        array_literal(&v, &mut s).unwrap();
        assert_eq!(
            s,
            r#"{"a","b\"c",NULL,"NULL","x\\y","",127195224664197448930790489771541.425912724028,{1.10,t}}"#
        );
    }

    #[test]
    fn bad_values_name_the_problem() {
        let mut s = String::new();
        let e = copy_field(
            &Kind::Numeric,
            "numeric",
            ValueRef::Text(b"abc"),
            None,
            &mut s,
        )
        .unwrap_err();
        assert!(e.contains("'abc' is not a number"), "{e}");
        let e = copy_field(&Kind::Json, "jsonb", ValueRef::Text(b"{x"), None, &mut s).unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = copy_field(&Kind::Bool, "boolean", ValueRef::Integer(2), None, &mut s).unwrap_err();
        assert!(e.contains("not a boolean"), "{e}");
    }

    #[test]
    fn recorded_types_are_plain_names_only() {
        for ok in [
            "numeric",
            "numeric(10,2)",
            "timestamp without time zone",
            "integer[]",
            "character varying(20)[]",
            "interval",
        ] {
            assert_eq!(recorded_type(ok), Some(ok), "{ok}");
        }
        for bad in [
            "text; DROP SCHEMA public CASCADE",
            "public.evil",
            "text) , x (int",
            "\"quoted\"",
            "numeric(1,2,3)",
            "text -- x",
            "",
            "Text",
        ] {
            assert_eq!(recorded_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn model_ddl_follows_the_api() {
        let f = [Field {
            name: "name".into(),
            ftype: "text".into(),
            required: true,
        }];
        // The reference tenant's `widgets`, as the API's SQLite backend made it.
        assert_eq!(
            sqlite_model_ddl("widgets", &f).unwrap(),
            "CREATE TABLE IF NOT EXISTS \"widgets\" (\n\n    \"id\" TEXT PRIMARY KEY,\n    \"access_read\" TEXT DEFAULT '[]',\n    \"access_edit\" TEXT DEFAULT '[]',\n    \"access_full\" TEXT DEFAULT '[]',\n    \"access_deny\" TEXT DEFAULT '[]',\n    \"created_at\" TEXT NOT NULL,\n    \"updated_at\" TEXT NOT NULL,\n    \"trashed_at\" TEXT,\n    \"deleted_at\" TEXT\n\n, \"name\" TEXT NOT NULL)"
        );
        let bad = [Field {
            name: "x".into(),
            ftype: "money".into(),
            required: false,
        }];
        let (column, why) = postgres_model_ddl("w", &bad).unwrap_err();
        assert_eq!(column, "x");
        assert!(why.contains("'money'"), "{why}");
    }
}
