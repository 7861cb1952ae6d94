//! Finding destructive statements in pending migrations, from SQLite's own view of each statement.
//!
//! Each statement runs through `guard` on a scratch in-memory copy of a database's schema: the
//! actions SQLite asks permission for while preparing it (drop table, delete, update, alter
//! table) are what the statement would do, and the statement is then run on the copy so that
//! later statements see the schema the earlier ones leave. An ALTER TABLE is told apart (add,
//! rename or drop a column, rename the table) by comparing the copy's schema before and after it.
//! Never touches a real database: the guard refuses anything that would reach a file.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;

use super::Mig;
use crate::core::db;
use crate::core::error::Error;
use crate::core::guard::{self, Act, Fault, Kind};

/// One destructive action of one statement.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub version: i64,
    pub file: String,
    /// The statement, shortened to one line.
    pub statement: String,
    /// `drop_table`, `drop_index`, `drop_view`, `drop_trigger`, `drop_column`, `rename_table`,
    /// `rename_column`, `delete_rows`, `update_rows` or `rebuild_table`.
    pub action: String,
    pub object: String,
}

/// Why a statement did not pass on the scratch copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailKind {
    /// The guard refuses it (exit 2 wherever it is met).
    Refused,
    /// It ran longer than the limit.
    Timeout(Duration),
    /// It failed there: it would fail on the real database too.
    Failed,
}

/// A statement that did not pass on the scratch copy.
#[derive(Debug, Clone)]
pub struct Failure {
    pub version: i64,
    pub file: String,
    pub line: usize,
    /// 1-based number of the statement in its file.
    pub number: usize,
    pub statement: String,
    pub message: String,
    pub kind: FailKind,
}

impl Failure {
    /// The error of this failure: a refusal (exit 2) or a timeout (exit 20) as such, a failing
    /// statement as `failed` words it.
    pub fn error(&self, failed: impl FnOnce(&Failure) -> Error) -> Error {
        let st = guard::Statement {
            line: self.line,
            sql: self.statement.clone(),
        };
        let fault = match &self.kind {
            FailKind::Refused => Fault::Refused(self.message.clone()),
            FailKind::Timeout(d) => Fault::Timeout(*d),
            FailKind::Failed => return failed(self),
        };
        fault.into_error(Path::new(&self.file), self.number, &st, |_| {
            Error::Other(self.message.clone())
        })
    }
}

pub use crate::core::guard::shorten;

/// An in-memory database with the schema given as `CREATE` statements (from `sqlite_master`, in
/// creation order).
pub fn scratch_from_schema(schema: &[String]) -> rusqlite::Result<Connection> {
    guard::scratch_from_schema(schema)
}

/// A scratch database at the baseline: the `system` fixture's schema.
pub fn scratch_baseline() -> rusqlite::Result<Connection> {
    guard::scratch_baseline()
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare("SELECT name FROM pragma_table_info(?1)")
        .and_then(|mut s| {
            s.query_map([table], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap_or_default()
}

fn tables(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap_or_default()
}

/// `db::has_table`, with a schema that cannot be read counting as no such table, as the analysis
/// has always taken it.
fn table_exists(conn: &Connection, table: &str) -> bool {
    db::has_table(conn, table).unwrap_or(false)
}

fn internal(name: &str) -> bool {
    name.starts_with("sqlite_")
}

/// Classifies and runs `migs` in order on `scratch`, each statement through the guard with
/// `limit`. Returns the findings, or the first statement that is refused, runs too long or
/// fails. With `keep_going`, every statement that does not pass is passed over (none of them
/// ran), and the findings of the others are returned.
pub fn analyse(
    scratch: &mut Connection,
    migs: &[&Mig],
    limit: Duration,
    keep_going: bool,
) -> Result<Vec<Finding>, Failure> {
    analyse_collecting(scratch, migs, limit, keep_going, &mut Vec::new())
}

/// Every statement of `migs` that the guard refuses or stops on `scratch` (statements that
/// merely fail there are passed over, as are the ones refused: none of them ran).
pub fn refusals(scratch: &mut Connection, migs: &[&Mig], limit: Duration) -> Vec<Failure> {
    let mut out = Vec::new();
    if let Err(f) = analyse_collecting(scratch, migs, limit, true, &mut out) {
        out.push(f);
    }
    out
}

fn analyse_collecting(
    scratch: &mut Connection,
    migs: &[&Mig],
    limit: Duration,
    keep_going: bool,
    refused: &mut Vec<Failure>,
) -> Result<Vec<Finding>, Failure> {
    let g = guard::install(scratch, Kind::Migration, limit).map_err(|e| Failure {
        version: 0,
        file: "<scratch>".into(),
        line: 0,
        number: 0,
        statement: String::new(),
        message: e.to_string(),
        kind: FailKind::Failed,
    })?;
    let r = analyse_guarded(scratch, &g, migs, keep_going, refused);
    let _ = g.remove(scratch);
    r
}

fn analyse_guarded(
    scratch: &Connection,
    g: &guard::Guard,
    migs: &[&Mig],
    keep_going: bool,
    refused: &mut Vec<Failure>,
) -> Result<Vec<Finding>, Failure> {
    let mut findings = Vec::new();
    for m in migs {
        let mut dropped_tables: Vec<(String, String)> = Vec::new();
        // Tables made by this migration: renaming them breaks no client.
        let mut created: Vec<String> = Vec::new();
        for (i, st) in guard::split(&m.sql).iter().enumerate() {
            let text = shorten(&st.sql);
            // Before an ALTER TABLE: the table's columns and the tables there are.
            let mut altered: Vec<(String, Vec<String>)> = Vec::new();
            let mut tables_before: Vec<String> = Vec::new();
            let acts = match g.run_with(scratch, st, &mut |acts| {
                for a in acts {
                    if let Act::AlterTable(t) = a {
                        altered.push((t.clone(), columns(scratch, t)));
                        tables_before = tables(scratch);
                    }
                }
            }) {
                Ok(acts) => acts,
                Err(f) => {
                    let (kind, message) = match f {
                        Fault::Refused(r) => (FailKind::Refused, r),
                        Fault::Timeout(d) => (FailKind::Timeout(d), String::new()),
                        Fault::Failed(e) => (FailKind::Failed, e.to_string()),
                    };
                    let f = Failure {
                        version: m.version,
                        file: m.file.clone(),
                        line: st.line,
                        number: i + 1,
                        statement: st.sql.clone(),
                        message,
                        kind,
                    };
                    if !keep_going {
                        return Err(f);
                    }
                    if f.kind != FailKind::Failed {
                        refused.push(f);
                    }
                    continue;
                }
            };
            let mut push = |action: &str, object: &str| {
                let f = Finding {
                    version: m.version,
                    file: m.file.clone(),
                    statement: text.clone(),
                    action: action.to_string(),
                    object: object.to_string(),
                };
                if !findings.contains(&f) {
                    findings.push(f);
                }
            };
            // Dropping an object also asks to delete its rows; report the drop only.
            let dropped: Vec<&String> = acts
                .iter()
                .filter_map(|a| match a {
                    Act::DropTable(t)
                    | Act::DropIndex(t)
                    | Act::DropView(t)
                    | Act::DropTrigger(t) => Some(t),
                    _ => None,
                })
                .collect();
            for a in &acts {
                match a {
                    Act::CreateTable(t) => created.push(t.clone()),
                    Act::DropTable(t) if !internal(t) => {
                        dropped_tables.push((t.clone(), text.clone()));
                        push("drop_table", t)
                    }
                    Act::DropIndex(t) => push("drop_index", t),
                    Act::DropView(t) => push("drop_view", t),
                    Act::DropTrigger(t) => push("drop_trigger", t),
                    Act::Delete(t) if !internal(t) && !dropped.contains(&t) => {
                        push("delete_rows", t)
                    }
                    Act::Update(t, c) if !internal(t) => push("update_rows", &format!("{t}.{c}")),
                    _ => {}
                }
            }
            for (table, before) in altered {
                let fresh = created.contains(&table);
                if !table_exists(scratch, &table) {
                    // Renamed: the new name is the table that was not there before.
                    let now = tables(scratch);
                    let to = now
                        .iter()
                        .find(|t| !tables_before.contains(t))
                        .cloned()
                        .unwrap_or_else(|| "?".into());
                    if fresh {
                        created.push(to);
                    } else {
                        push("rename_table", &format!("{table} -> {to}"));
                    }
                    continue;
                }
                if fresh {
                    continue;
                }
                let after = columns(scratch, &table);
                let gone: Vec<&String> = before.iter().filter(|c| !after.contains(c)).collect();
                if after.len() < before.len() {
                    for c in gone {
                        push("drop_column", &format!("{table}.{c}"));
                    }
                } else if !gone.is_empty() {
                    let new: Vec<&String> = after.iter().filter(|c| !before.contains(c)).collect();
                    for (old, new) in gone.iter().zip(new.iter()) {
                        push("rename_column", &format!("{table}.{old} -> {new}"));
                    }
                }
            }
        }
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
            pg_sql: sql.into(),
            pg_checksum: 0,
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
        analyse(&mut c, &[&m], guard::ANALYSIS_TIMEOUT, false)
            .unwrap()
            .into_iter()
            .map(|f| (f.action, f.object))
            .collect()
    }

    #[test]
    fn additive_statements_are_not_destructive() {
        assert!(actions("ALTER TABLE a ADD COLUMN z TEXT; CREATE INDEX a_z ON a (z); INSERT INTO a (x) VALUES ('q'); CREATE TABLE b (id INTEGER)").is_empty());
        assert!(actions(
            "CREATE TABLE n (q); ALTER TABLE n RENAME TO n2; ALTER TABLE n2 RENAME COLUMN q TO r"
        )
        .is_empty());
    }

    #[test]
    fn renames_are_destructive() {
        let p = |a: &str, o: &str| (a.to_string(), o.to_string());
        assert_eq!(
            actions("ALTER TABLE a RENAME COLUMN y TO yy"),
            vec![p("rename_column", "a.y -> yy")]
        );
        assert_eq!(
            actions("DROP VIEW va; ALTER TABLE a RENAME TO b"),
            vec![p("drop_view", "va"), p("rename_table", "a -> b")]
        );
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
        let mut c = scratch_baseline().unwrap();
        let m = mig(2, "CREATE TABLE t (x);\nBEGIN;\nCOMMIT;");
        let f = analyse(&mut c, &[&m], guard::ANALYSIS_TIMEOUT, false).unwrap_err();
        assert_eq!((f.kind, f.line, f.number), (FailKind::Refused, 2, 2));
    }

    #[test]
    fn a_failing_statement_is_named() {
        let mut c = scratch_baseline().unwrap();
        let m = mig(2, "CREATE TABLE ok1 (x); INSERT INTO nowhere VALUES (1);");
        let f = analyse(&mut c, &[&m], guard::ANALYSIS_TIMEOUT, false).unwrap_err();
        assert!(f.statement.contains("nowhere"), "{}", f.statement);
        assert!(f.message.contains("no such table"), "{}", f.message);
    }
}
