//! Splitting an operator file into statements, by SQLite's own tokenizer (`sqlite3_complete`),
//! with the line each starts on; and statements shortened to one line for messages.

/// One statement of an operator file and the line it starts on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Statement {
    pub line: usize,
    pub sql: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_counts_lines() {
        let s = split("-- head\nCREATE TABLE a (x);\n\nINSERT INTO a VALUES (';');\nSELECT 1");
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].line, 2);
        assert_eq!(s[1].line, 4);
        assert_eq!(s[2].line, 5);
    }
}
