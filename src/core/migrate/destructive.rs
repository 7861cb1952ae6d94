//! Finding destructive statements in pending migrations, from SQLite's own view of each statement.
//!
//! Each statement is prepared on a scratch in-memory copy of a database's schema with an
//! authorizer installed; the actions SQLite asks permission for (drop table, delete, update,
//! alter table) are what the statement would do. Statements are then run on the scratch copy so
//! that later statements see the schema the earlier ones leave. Never touches a real database.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{Batch, Connection};
use serde::Serialize;

use super::Mig;
use crate::core::system;

/// One destructive action of one statement.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub version: i64,
    pub file: String,
    /// The statement, shortened to one line.
    pub statement: String,
    /// `drop_table`, `drop_index`, `drop_view`, `drop_trigger`, `drop_column`, `delete_rows`,
    /// `update_rows`, `rebuild_table` or `transaction_control` (never allowed).
    pub action: String,
    pub object: String,
}

/// A statement that failed on the scratch copy: it would fail on the real database too.
#[derive(Debug, Clone)]
pub struct Failure {
    pub version: i64,
    pub file: String,
    pub statement: String,
    pub message: String,
}

/// One line of at most 160 characters for messages.
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

/// The first complete statement of `rest` (SQLite's own `sqlite3_complete` decides where it
/// ends, so semicolons in strings and trigger bodies are handled), for naming a statement that
/// failed to prepare.
pub fn first_statement(rest: &str) -> &str {
    let rest = rest.trim_start();
    for (i, _) in rest.match_indices(';') {
        let candidate = &rest[..=i];
        if let Ok(c) = std::ffi::CString::new(candidate) {
            // SAFETY: a valid NUL-terminated string that outlives the call.
            if unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) } != 0 {
                return candidate;
            }
        }
    }
    rest
}

/// Tracks where in a migration's text the statements SQLite prepared end, so that a statement
/// that fails to prepare can be quoted.
pub struct Cursor<'s> {
    sql: &'s str,
    pos: usize,
}

impl<'s> Cursor<'s> {
    pub fn new(sql: &'s str) -> Self {
        Cursor { sql, pos: 0 }
    }

    /// Moves past a prepared statement whose text is `text`.
    pub fn passed(&mut self, text: &str) {
        if let Some(i) = self.sql[self.pos..].find(text) {
            self.pos += i + text.len();
        }
    }

    /// The statement after the last one passed.
    pub fn next_text(&self) -> &'s str {
        first_statement(&self.sql[self.pos..])
    }
}

/// Builds an in-memory database with the schema given as `CREATE` statements (from
/// `sqlite_master`, in creation order).
pub fn scratch_from_schema(schema: &[String]) -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    system::register_functions(&conn)?;
    for sql in schema {
        conn.execute_batch(sql)?;
    }
    Ok(conn)
}

/// A scratch database at the baseline: the `system` fixture's schema.
pub fn scratch_baseline() -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    system::register_functions(&conn)?;
    conn.execute_batch(system::SYSTEM_SQL)?;
    Ok(conn)
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare("SELECT name FROM pragma_table_info(?1)")
        .and_then(|mut s| {
            s.query_map([table], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap_or_default()
}

fn table_exists(conn: &Connection, table: &str) -> bool {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .unwrap_or(false)
}

fn internal(name: &str) -> bool {
    name.starts_with("sqlite_")
}

/// Classifies and runs `migs` in order on `scratch`. Returns the findings, or the first statement
/// that fails.
pub fn analyse(scratch: &mut Connection, migs: &[&Mig]) -> Result<Vec<Finding>, Failure> {
    let mut findings = Vec::new();
    for m in migs {
        let mut dropped_tables: Vec<(String, String)> = Vec::new();
        let seen: Arc<Mutex<Vec<(i32, String, String)>>> = Arc::new(Mutex::new(Vec::new()));
        let hook = seen.clone();
        let _ = scratch.authorizer(Some(move |ctx: AuthContext<'_>| {
            if let Some(entry) = record(&ctx) {
                if let Ok(mut v) = hook.lock() {
                    v.push(entry);
                }
            }
            Authorization::Allow
        }));
        let fail = |stmt: &str, e: rusqlite::Error| Failure {
            version: m.version,
            file: m.file.clone(),
            statement: shorten(stmt),
            message: e.to_string(),
        };
        let mut batch = Batch::new(scratch, &m.sql);
        let mut cursor = Cursor::new(&m.sql);
        loop {
            if let Ok(mut v) = seen.lock() {
                v.clear();
            }
            let mut stmt = match batch.next() {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) => return Err(fail(cursor.next_text(), e)),
            };
            let text = stmt.expanded_sql().unwrap_or_default();
            cursor.passed(&text);
            let actions: Vec<(i32, String, String)> =
                seen.lock().map(|v| v.clone()).unwrap_or_default();
            // Columns before an ALTER TABLE, to tell DROP COLUMN from ADD/RENAME.
            let altered: Vec<(String, Vec<String>)> = actions
                .iter()
                .filter(|a| a.0 == KIND_ALTER)
                .map(|a| (a.1.clone(), columns(scratch, &a.1)))
                .collect();
            let run = {
                let mut rows = stmt.raw_query();
                let mut r = Ok(());
                loop {
                    match rows.next() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                }
                r
            };
            run.map_err(|e| fail(&text, e))?;
            let mut push = |action: &str, object: &str| {
                let f = Finding {
                    version: m.version,
                    file: m.file.clone(),
                    statement: shorten(&text),
                    action: action.to_string(),
                    object: object.to_string(),
                };
                if !findings.contains(&f) {
                    findings.push(f);
                }
            };
            // Dropping an object also asks to delete its rows; report the drop only.
            let dropped: Vec<&String> = actions
                .iter()
                .filter(|x| (KIND_DROP_TABLE..=KIND_DROP_TRIGGER).contains(&x.0))
                .map(|x| &x.1)
                .collect();
            for (kind, a, b) in &actions {
                if *kind == KIND_DELETE && dropped.contains(&a) {
                    continue;
                }
                match *kind {
                    KIND_DROP_TABLE => {
                        dropped_tables.push((a.clone(), shorten(&text)));
                        push("drop_table", a)
                    }
                    KIND_DROP_INDEX => push("drop_index", a),
                    KIND_DROP_VIEW => push("drop_view", a),
                    KIND_DROP_TRIGGER => push("drop_trigger", a),
                    KIND_DELETE => push("delete_rows", a),
                    KIND_UPDATE => push("update_rows", &format!("{a}.{b}")),
                    KIND_TRANSACTION => push("transaction_control", a),
                    _ => {}
                }
            }
            for (table, before) in altered {
                let after = columns(scratch, &table);
                // A rename keeps the count; only a dropped column lowers it.
                if table_exists(scratch, &table) && after.len() < before.len() {
                    for c in before.iter().filter(|c| !after.contains(c)) {
                        push("drop_column", &format!("{table}.{c}"));
                    }
                }
            }
        }
        let _ = scratch.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
        // A table dropped and present again at the end of the migration was rebuilt (the
        // create-copy-drop-rename pattern SQLite documents for schema changes ALTER cannot do).
        for (t, stmt) in dropped_tables {
            if table_exists(scratch, &t) {
                let f = Finding {
                    version: m.version,
                    file: m.file.clone(),
                    statement: stmt,
                    action: "rebuild_table".into(),
                    object: t,
                };
                if !findings.contains(&f) {
                    findings.push(f);
                }
            }
        }
    }
    Ok(findings)
}

const KIND_DROP_TABLE: i32 = 1;
const KIND_DROP_INDEX: i32 = 2;
const KIND_DROP_VIEW: i32 = 3;
const KIND_DROP_TRIGGER: i32 = 4;
const KIND_DELETE: i32 = 5;
const KIND_UPDATE: i32 = 6;
const KIND_ALTER: i32 = 7;
const KIND_TRANSACTION: i32 = 8;

/// The actions worth recording, as (kind, object, detail). SQLite's own bookkeeping on
/// `sqlite_*` tables (a DROP deletes from `sqlite_master`) is not the user's data.
fn record(ctx: &AuthContext<'_>) -> Option<(i32, String, String)> {
    let s = |x: &str| x.to_string();
    match ctx.action {
        AuthAction::DropTable { table_name } if !internal(table_name) => {
            Some((KIND_DROP_TABLE, s(table_name), String::new()))
        }
        AuthAction::DropVtable { table_name, .. } => {
            Some((KIND_DROP_TABLE, s(table_name), String::new()))
        }
        AuthAction::DropIndex { index_name, .. } => {
            Some((KIND_DROP_INDEX, s(index_name), String::new()))
        }
        AuthAction::DropView { view_name } => Some((KIND_DROP_VIEW, s(view_name), String::new())),
        AuthAction::DropTrigger { trigger_name, .. } => {
            Some((KIND_DROP_TRIGGER, s(trigger_name), String::new()))
        }
        AuthAction::Delete { table_name } if !internal(table_name) => {
            Some((KIND_DELETE, s(table_name), String::new()))
        }
        AuthAction::Update {
            table_name,
            column_name,
        } if !internal(table_name) => Some((KIND_UPDATE, s(table_name), s(column_name))),
        AuthAction::AlterTable { table_name, .. } => {
            Some((KIND_ALTER, s(table_name), String::new()))
        }
        AuthAction::Transaction { operation } => Some((
            KIND_TRANSACTION,
            format!("{operation:?}").to_lowercase(),
            String::new(),
        )),
        AuthAction::Savepoint { savepoint_name, .. } => {
            Some((KIND_TRANSACTION, s(savepoint_name), String::new()))
        }
        _ => None,
    }
}

/// Distinct actions of a list of findings, for one-line summaries.
pub fn summary(findings: &[Finding]) -> String {
    let set: BTreeSet<String> = findings
        .iter()
        .map(|f| format!("V{} {} {}", f.version, f.action, f.object))
        .collect();
    set.into_iter().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mig(v: i64, sql: &str) -> Mig {
        Mig {
            version: v,
            name: format!("m{v}"),
            file: format!("V{v}__m{v}.sql"),
            sql: sql.into(),
            checksum: 0,
        }
    }

    fn actions(sql: &str) -> Vec<(String, String)> {
        let mut c = scratch_from_schema(&[
            "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT, y TEXT)".into(),
            "CREATE INDEX a_x ON a (x)".into(),
            "CREATE VIEW va AS SELECT id FROM a".into(),
        ])
        .unwrap();
        let m = mig(2, sql);
        analyse(&mut c, &[&m])
            .unwrap()
            .into_iter()
            .map(|f| (f.action, f.object))
            .collect()
    }

    #[test]
    fn additive_statements_are_not_destructive() {
        assert!(actions("ALTER TABLE a ADD COLUMN z TEXT; CREATE INDEX a_z ON a (z); INSERT INTO a (x) VALUES ('q'); CREATE TABLE b (id INTEGER)").is_empty());
        assert!(actions("ALTER TABLE a RENAME COLUMN y TO yy").is_empty());
    }

    #[test]
    fn each_destructive_kind_is_found() {
        let p = |a: &str, o: &str| (a.to_string(), o.to_string());
        assert_eq!(actions("DROP INDEX a_x"), vec![p("drop_index", "a_x")]);
        assert_eq!(actions("DROP VIEW va"), vec![p("drop_view", "va")]);
        assert_eq!(
            actions("DELETE FROM a WHERE id > 3"),
            vec![p("delete_rows", "a")]
        );
        assert_eq!(
            actions("UPDATE a SET x = 'k'"),
            vec![p("update_rows", "a.x")]
        );
        assert_eq!(
            actions("ALTER TABLE a DROP COLUMN y"),
            vec![p("drop_column", "a.y")]
        );
        assert!(actions("DROP VIEW va; DROP TABLE a").contains(&p("drop_table", "a")));
        let rebuilt = actions(
            "CREATE TABLE a_new (id INTEGER PRIMARY KEY, x TEXT); INSERT INTO a_new SELECT id, x FROM a; \
             DROP VIEW va; DROP TABLE a; ALTER TABLE a_new RENAME TO a;",
        );
        assert!(rebuilt.contains(&p("rebuild_table", "a")), "{rebuilt:?}");
        assert!(actions("BEGIN; CREATE TABLE t (x); COMMIT;")
            .iter()
            .any(|(a, _)| a == "transaction_control"));
    }

    #[test]
    fn a_failing_statement_is_named() {
        let mut c = scratch_baseline().unwrap();
        let m = mig(2, "CREATE TABLE ok1 (x); INSERT INTO nowhere VALUES (1);");
        let f = analyse(&mut c, &[&m]).unwrap_err();
        assert!(f.statement.contains("nowhere"), "{}", f.statement);
        assert!(f.message.contains("no such table"), "{}", f.message);
    }
}
