//! The operator-SQL guard on PostgreSQL: what a fixture or migration may run in a tenant's schema.
//!
//! SQLite's guard is the authorizer, which sees every action as SQLite performs it. PostgreSQL
//! has no such hook for a client, so the guard has two layers, both always on:
//! 1. Before anything runs, the script is parsed (sqlparser, PostgreSQL dialect) and every
//!    statement checked: only schema and data statements of the kinds below; no transaction
//!    control, settings, roles, COPY, functions or DO blocks; no name qualified by another schema
//!    (any schema of the database but the tenant's), no catalog relation, no function that reads
//!    files or settings, signals sessions or reaches another database. A script the parser
//!    cannot read is refused: what cannot be checked does not run.
//! 2. What runs is exactly what was checked: each statement as the parser rendered it, one at a
//!    time, inside the tenant's transaction with `search_path` set to the tenant's schema alone
//!    (an unqualified `tenants` is "relation does not exist", never the registry) and
//!    `statement_timeout` bounding each statement.

use std::path::Path;

use sqlparser::ast::{visit_expressions, visit_relations, Expr, ObjectName, ObjectType, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::error::{Error, Result};

/// Functions operator SQL may not call: they read files or settings, change settings, signal or
/// end sessions, reach other databases, or take locks that outlive the statement.
const DENIED_FUNCTIONS: &[&str] = &[
    "set_config",
    "current_setting",
    "lo_import",
    "lo_export",
    "lo_unlink",
    "lo_from_bytea",
    "lo_put",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "query_to_xml",
    "table_to_xml",
    "cursor_to_xml",
];

/// One checked statement, ready to run: its text as the parser rendered it and its first line
/// in the file, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub sql: String,
    pub line: usize,
}

/// Checks a script for `schema`. `other_schemas` are the database's other schemas (the registry's
/// `public`, other tenants, the catalogs): a name qualified by any of them is refused.
pub fn check(
    sql: &str,
    path: &Path,
    schema: &str,
    other_schemas: &[String],
) -> Result<Vec<Checked>> {
    let refused = |line: usize, message: String| Error::Refused {
        path: path.to_path_buf(),
        line,
        message,
    };
    let dialect = PostgreSqlDialect {};
    let statements = Parser::parse_sql(&dialect, sql).map_err(|e| {
        refused(
            0,
            format!("the statement cannot be read ({e}); on PostgreSQL operator SQL runs only when the guard can check it: write it in plain SQL"),
        )
    })?;
    let mut out = Vec::with_capacity(statements.len());
    for stmt in statements {
        let text = stmt.to_string();
        let line = line_of(sql, &text);
        let bad = |why: String| refused(line, format!("{why}: `{}`", excerpt(&text)));
        if let Some(why) = refused_kind(&stmt) {
            return Err(bad(why));
        }
        check_names(&stmt, &text, schema, other_schemas).map_err(bad)?;
        out.push(Checked { sql: text, line });
    }
    Ok(out)
}

/// Why a statement of this kind may not run, or `None` when it may.
fn refused_kind(stmt: &Statement) -> Option<String> {
    match stmt {
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::CreateTable(_)
        | Statement::AlterTable(_)
        | Statement::CreateIndex(_)
        | Statement::AlterIndex { .. }
        | Statement::CreateView(_)
        | Statement::CreateSequence { .. }
        | Statement::CreateType { .. }
        | Statement::AlterType(_)
        | Statement::Truncate(_)
        | Statement::Comment { .. } => None,
        Statement::Drop { object_type, .. } => match object_type {
            ObjectType::Table
            | ObjectType::View
            | ObjectType::Index
            | ObjectType::Sequence
            | ObjectType::Type => None,
            other => Some(format!("DROP {other} is not allowed in operator SQL")),
        },
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => Some(
            "transaction control is not allowed: each tenant's statements run in one transaction monkctl commits"
                .into(),
        ),
        Statement::Set(_) => Some(
            "SET is not allowed: operator SQL may not change settings (search_path, roles, timeouts)"
                .into(),
        ),
        Statement::Copy { .. } => {
            Some("COPY is not allowed: load data with INSERT or a fixture's data files".into())
        }
        _ => Some(
            "only queries, INSERT/UPDATE/DELETE and tables, views, indexes, sequences and types of the tenant's own schema are allowed"
                .into(),
        ),
    }
}

/// No name reaches outside `schema`: relations, functions and string-named objects alike.
fn check_names(
    stmt: &Statement,
    text: &str,
    schema: &str,
    others: &[String],
) -> std::result::Result<(), String> {
    let outside = |name: &ObjectName| -> Option<String> {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| p.to_string().trim_matches('"').to_string())
            .collect();
        match parts.as_slice() {
            [only] if only.starts_with("pg_") || only == "information_schema" => {
                Some(format!("{name}: the catalogs are outside the tenant"))
            }
            [_] => None,
            [qualifier, ..] if qualifier == schema && parts.len() == 2 => None,
            _ => Some(format!(
                "{name}: names qualified by another schema are outside the tenant; use the bare name"
            )),
        }
    };
    let mut problem: Option<String> = None;
    let _ = visit_relations(stmt, |name| {
        if let Some(p) = outside(name) {
            problem = Some(p);
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    if let Some(p) = problem {
        return Err(p);
    }
    if let Statement::Drop { names, .. } = stmt {
        if let Some(p) = names.iter().find_map(outside) {
            return Err(p);
        }
    }
    let _ = visit_expressions(stmt, |e| {
        if let Expr::Function(f) = e {
            let full = f.name.to_string().to_ascii_lowercase();
            let last = full.rsplit('.').next().unwrap_or(&full).trim_matches('"');
            if f.name.0.len() > 1 {
                problem = Some(format!(
                    "{}: functions of another schema are outside the tenant",
                    f.name
                ));
            } else if DENIED_FUNCTIONS.contains(&last)
                || (last.starts_with("pg_") && last != "pg_typeof")
            {
                problem = Some(format!(
                    "{}(): this function is not allowed in operator SQL",
                    f.name
                ));
            }
            if problem.is_some() {
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    if let Some(p) = problem {
        return Err(p);
    }
    // What the AST does not name as an object: `other.thing` anywhere (types, sequences in
    // defaults), and objects named in strings (`nextval('public.seq')`, `'public.t'::regclass`).
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize()
        .map_err(|e| format!("the statement cannot be read: {e}"))?;
    let words: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    for (i, t) in words.iter().enumerate() {
        match t {
            Token::Word(w)
                if matches!(words.get(i + 1), Some(Token::Period))
                    && others.iter().any(|o| o == &w.value) =>
            {
                return Err(format!(
                    "{}.: schema {} is outside the tenant",
                    w.value, w.value
                ));
            }
            Token::SingleQuotedString(s) => {
                let lower = s.to_ascii_lowercase();
                if let Some(o) = others.iter().find(|o| {
                    lower.starts_with(&format!("{o}.")) || lower.starts_with(&format!("\"{o}\"."))
                }) {
                    return Err(format!("'{s}': schema {o} is outside the tenant"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The 1-based line of the script where a statement's first words appear (best effort: the
/// rendered text may differ in spacing).
fn line_of(sql: &str, rendered: &str) -> usize {
    let head: String = rendered
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let first = rendered.split_whitespace().next().unwrap_or("");
    let lower = sql.to_ascii_lowercase();
    let at = lower
        .find(&head.to_ascii_lowercase())
        .or_else(|| lower.find(&first.to_ascii_lowercase()))
        .unwrap_or(0);
    1 + sql[..at].matches('\n').count()
}

fn excerpt(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 120 {
        format!("{}...", one.chars().take(117).collect::<String>())
    } else {
        one
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str) -> std::result::Result<Vec<Checked>, String> {
        let others = vec![
            "public".to_string(),
            "ns_tenant_other".to_string(),
            "pg_catalog".to_string(),
        ];
        check(sql, Path::new("V2__x.sql"), "ns_tenant_acme", &others).map_err(|e| e.to_string())
    }

    #[test]
    fn schema_and_data_statements_pass() {
        let ok = run("ALTER TABLE users ADD COLUMN nickname text; \
             CREATE TABLE notes (id uuid DEFAULT gen_random_uuid() PRIMARY KEY, body text); \
             CREATE INDEX notes_body ON notes (body); \
             INSERT INTO notes (body) VALUES ('a.b'); UPDATE notes SET body = 'x' WHERE body = 'y'; \
             DELETE FROM notes; DROP TABLE notes; SELECT count(*) FROM users u WHERE u.name = 'root'")
        .unwrap();
        assert_eq!(ok.len(), 8);
    }

    #[test]
    fn everything_outside_the_tenant_is_refused() {
        for sql in [
            "COMMIT",
            "BEGIN; INSERT INTO users (name) VALUES ('x')",
            "ROLLBACK",
            "SAVEPOINT a",
            "SET search_path TO public",
            "SET ROLE postgres",
            "RESET ALL",
            "COPY users TO PROGRAM 'id'",
            "COPY users FROM '/etc/passwd'",
            "SELECT * FROM public.tenants",
            "DELETE FROM public.tenants",
            "UPDATE ns_tenant_other.users SET name = 'x'",
            "INSERT INTO ns_tenant_other.users (name) VALUES ('x')",
            "SELECT * FROM pg_authid",
            "SELECT * FROM pg_catalog.pg_class",
            "SELECT * FROM information_schema.tables",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT set_config('search_path', 'public', false)",
            "SELECT current_setting('data_directory')",
            "SELECT pg_terminate_backend(1)",
            "SELECT public.gen_random_uuid()",
            "SELECT nextval('public.processes_pid_seq')",
            "SELECT 'public.tenants'::regclass",
            "DROP SCHEMA public CASCADE",
            "DROP TABLE public.tenants",
            "CREATE SCHEMA x",
            "CREATE EXTENSION dblink",
            "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
            "DO $$ BEGIN PERFORM 1; END $$",
            "GRANT ALL ON users TO PUBLIC",
            "CREATE ROLE x",
            "VACUUM users",
            "LISTEN x",
            "CREATE TABLE t (x public.mytype)",
            "not sql at all",
        ] {
            assert!(run(sql).is_err(), "{sql} passed the guard");
        }
    }

    #[test]
    fn what_runs_is_what_was_checked() {
        let c = run("-- a comment\nINSERT INTO users (name)\n  VALUES ('x');\n").unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].sql, "INSERT INTO users (name) VALUES ('x')");
        assert_eq!(c[0].line, 2);
    }
}
