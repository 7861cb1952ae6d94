//! The rules, from SQLite's own view of each statement and never from its text: what the
//! authorizer refuses (`judge`: ATTACH/DETACH, transactions, savepoints where they are not
//! allowed, PRAGMAs outside the read-only lists, `load_extension()`, the raw-page virtual tables
//! and virtual tables of other modules), the writes a statement may not make to SQLite's or
//! monkctl's own tables, and the `VACUUM` that only the statement's bytecode tells.

use rusqlite::hooks::{AuthAction, AuthContext, TransactionOperation};
use rusqlite::Connection;

use super::Kind;

/// PRAGMAs operator SQL may run with or without an argument: they only describe the schema or
/// check the file (the argument names a table or index, or limits a check), and change nothing.
pub const ALLOWED_PRAGMAS: [&str; 16] = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "collation_list",
    "database_list",
    "function_list",
    "module_list",
    "pragma_list",
    "compile_options",
];

/// PRAGMAs operator SQL may read (without a value, so they set nothing). Reads of settings only:
/// pragmas that act when run bare (`optimize`, `wal_checkpoint`, `incremental_vacuum`,
/// `shrink_memory`...) are not here.
pub const READABLE_PRAGMAS: [&str; 14] = [
    "application_id",
    "user_version",
    "schema_version",
    "data_version",
    "foreign_keys",
    "defer_foreign_keys",
    "recursive_triggers",
    "journal_mode",
    "encoding",
    "page_size",
    "page_count",
    "freelist_count",
    "auto_vacuum",
    "ignore_check_constraints",
];

/// Virtual tables that read or write the database file below SQLite's b-trees.
pub const FILE_TABLES: [&str; 2] = ["sqlite_dbpage", "dbstat"];

/// Modules operator SQL may create virtual tables of: full-text search and r-trees, which keep
/// their data in ordinary tables of the same file.
pub const VTAB_MODULES: [&str; 6] = ["fts3", "fts4", "fts5", "rtree", "rtree_i32", "geopoly"];

/// Whether operator SQL may run `PRAGMA name` (`value` is the argument or assigned value, if
/// any). Everything not listed is refused: operator SQL must not change the file's settings,
/// turn off the API's constraints (`ignore_check_constraints`, `defer_foreign_keys`,
/// `foreign_keys`, `writable_schema`), or stamp the file's headers (`user_version`,
/// `application_id`) that belong to monkctl and the API.
pub fn pragma_allowed(name: &str, value: Option<&str>) -> bool {
    let name = name.to_ascii_lowercase();
    ALLOWED_PRAGMAS.contains(&name.as_str())
        || (value.is_none() && READABLE_PRAGMAS.contains(&name.as_str()))
}

// ---------------------------------------------------------------------------------------------
// operator files

/// What a statement asked SQLite's permission for, as far as callers care (the destructive
/// analysis): changes of the schema and writes of rows. Objects are named as SQLite names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    CreateTable(String),
    DropTable(String),
    DropIndex(String),
    DropView(String),
    DropTrigger(String),
    AlterTable(String),
    /// A trigger created, on the table (or view) named.
    CreateTrigger(String),
    /// A view created.
    CreateView(String),
    /// Another change of the schema: an index or virtual table created, ANALYZE, REINDEX.
    OtherSchema,
    Insert(String),
    Update(String, String),
    Delete(String),
}

impl Act {
    fn is_schema(&self) -> bool {
        !matches!(self, Act::Insert(_) | Act::Update(..) | Act::Delete(_))
    }

    fn written_table(&self) -> Option<&str> {
        match self {
            Act::Insert(t) | Act::Update(t, _) | Act::Delete(t) => Some(t),
            _ => None,
        }
    }
}

/// Tables monkctl keeps in a tenant: its migration history, its record of deployed fixtures,
/// an archive's metadata. Operator SQL may neither write nor reshape them.
pub const MONKCTL_TABLES: [&str; 3] = [
    "refinery_schema_history",
    "_monkctl_fixtures",
    "_monk_archive",
];

/// A statement that writes, creates, drops, alters or puts a trigger on one of
/// `MONKCTL_TABLES`: what monkctl records of a tenant would stop being true.
pub(super) fn monkctl_write(acts: &[Act]) -> Option<String> {
    acts.iter()
        .find_map(|a| match a {
            Act::Insert(t)
            | Act::Update(t, _)
            | Act::Delete(t)
            | Act::CreateTable(t)
            | Act::DropTable(t)
            | Act::AlterTable(t)
            | Act::CreateTrigger(t) => MONKCTL_TABLES
                .iter()
                .find(|m| m.eq_ignore_ascii_case(t))
                .copied(),
            _ => None,
        })
        .map(|t| format!("it changes '{t}', which monkctl keeps as its record of the tenant"))
}

/// A write to SQLite's own tables by the statement itself. Creating or dropping an object
/// writes `sqlite_master` (and `sqlite_sequence`) as bookkeeping; a statement with no schema
/// change that writes them (`UPDATE sqlite_master`, `DELETE FROM sqlite_sequence`) is refused.
pub(super) fn internal_write(acts: &[Act]) -> Option<String> {
    if acts.iter().any(Act::is_schema) {
        return None;
    }
    acts.iter()
        .filter_map(Act::written_table)
        .find(|t| is_internal(t))
        .map(|t| format!("it writes '{t}', which belongs to SQLite itself"))
}

/// The rules: `Err(reason)` refuses, `Ok(Some(act))` allows and remembers.
pub(super) fn judge(kind: Kind, ctx: &AuthContext<'_>) -> std::result::Result<Option<Act>, String> {
    let s = |x: &str| x.to_string();
    let file_table = |t: &str| FILE_TABLES.iter().any(|f| f.eq_ignore_ascii_case(t));
    let raw = |t: &str| {
        Err(format!(
            "'{t}' reads or writes the database file's pages directly, below SQLite's tables"
        ))
    };
    match ctx.action {
        AuthAction::Attach { filename } => Err(format!(
            "ATTACH '{filename}' would open another file; operator SQL reaches its own tenant only"
        )),
        AuthAction::Detach { database_name } => Err(format!(
            "DETACH {database_name}: operator SQL may not attach or detach databases"
        )),
        AuthAction::Transaction { operation } => Err(format!(
            "{} ends or starts a transaction, and monkctl runs the whole file in one transaction of its own",
            op_name(operation)
        )),
        AuthAction::Savepoint { savepoint_name, .. } if kind == Kind::Query => Err(format!(
            "savepoint '{savepoint_name}': a query only reads"
        )),
        AuthAction::Savepoint { savepoint_name, .. } if kind == Kind::Migration => Err(format!(
            "savepoint '{savepoint_name}': a migration may not contain BEGIN, COMMIT, ROLLBACK or SAVEPOINT (each tenant runs in one transaction)"
        )),
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } if !pragma_allowed(pragma_name, pragma_value) => Err(format!(
            "PRAGMA {pragma_name}{} is not among the read-only PRAGMAs operator SQL may run; it could change the file's settings or headers",
            pragma_value.map(|v| format!(" = {v}")).unwrap_or_default()
        )),
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            Err("load_extension() would load code into monkctl; extensions stay disabled".into())
        }
        AuthAction::CreateVtable {
            table_name,
            module_name,
        } => {
            if VTAB_MODULES
                .iter()
                .any(|m| m.eq_ignore_ascii_case(module_name))
            {
                Ok(Some(Act::OtherSchema))
            } else {
                Err(format!(
                    "virtual table '{table_name}' of module '{module_name}': only {} are allowed",
                    VTAB_MODULES.join(", ")
                ))
            }
        }
        AuthAction::Read { table_name, .. } if file_table(table_name) => raw(table_name),
        AuthAction::Insert { table_name } if file_table(table_name) => raw(table_name),
        AuthAction::Update { table_name, .. } if file_table(table_name) => raw(table_name),
        AuthAction::Delete { table_name } if file_table(table_name) => raw(table_name),
        AuthAction::CreateTable { table_name } => Ok(Some(Act::CreateTable(s(table_name)))),
        AuthAction::DropTable { table_name } | AuthAction::DropVtable { table_name, .. } => {
            Ok(Some(Act::DropTable(s(table_name))))
        }
        AuthAction::DropIndex { index_name, .. } => Ok(Some(Act::DropIndex(s(index_name)))),
        AuthAction::DropView { view_name } => Ok(Some(Act::DropView(s(view_name)))),
        AuthAction::DropTrigger { trigger_name, .. } => {
            Ok(Some(Act::DropTrigger(s(trigger_name))))
        }
        AuthAction::AlterTable { table_name, .. } => Ok(Some(Act::AlterTable(s(table_name)))),
        AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::CreateTempTrigger { table_name, .. } => {
            Ok(Some(Act::CreateTrigger(s(table_name))))
        }
        AuthAction::CreateView { view_name } | AuthAction::CreateTempView { view_name } => {
            Ok(Some(Act::CreateView(s(view_name))))
        }
        AuthAction::CreateIndex { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. }
        | AuthAction::Analyze { .. }
        | AuthAction::Reindex { .. } => Ok(Some(Act::OtherSchema)),
        AuthAction::Insert { table_name } => Ok(Some(Act::Insert(s(table_name)))),
        AuthAction::Update {
            table_name,
            column_name,
        } => Ok(Some(Act::Update(s(table_name), s(column_name)))),
        AuthAction::Delete { table_name } => Ok(Some(Act::Delete(s(table_name)))),
        _ => Ok(None),
    }
}

fn op_name(op: TransactionOperation) -> &'static str {
    match op {
        TransactionOperation::Begin => "BEGIN",
        TransactionOperation::Rollback => "ROLLBACK",
        TransactionOperation::Release => "RELEASE",
        // SQLite names COMMIT (and END), which rusqlite does not map.
        _ => "COMMIT",
    }
}

// ---------------------------------------------------------------------------------------------
// scratch databases

fn is_internal(table: &str) -> bool {
    table.len() >= 7 && table[..7].eq_ignore_ascii_case("sqlite_")
}

/// Whether the program of `sql` holds SQLite's `Vacuum` instruction: VACUUM is the one
/// statement the authorizer is never asked about.
pub(super) fn vacuums(conn: &Connection, sql: &str) -> bool {
    let Ok(mut st) = conn.prepare(&format!("EXPLAIN {sql}")) else {
        // A statement that prepares cannot fail to prepare under EXPLAIN; if it does, refuse
        // rather than run something not looked at.
        return true;
    };
    let Ok(mut rows) = st.query([]) else {
        return true;
    };
    loop {
        match rows.next() {
            Ok(Some(r)) => {
                if r.get_ref(1)
                    .ok()
                    .and_then(|v| v.as_str().ok())
                    .is_some_and(|op| op.eq_ignore_ascii_case("vacuum"))
                {
                    return true;
                }
            }
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pragma_allowlist() {
        assert!(pragma_allowed("table_info", Some("people")));
        assert!(pragma_allowed("FOREIGN_KEY_CHECK", None));
        assert!(pragma_allowed("user_version", None));
        assert!(!pragma_allowed("user_version", Some("42")));
        assert!(!pragma_allowed("writable_schema", Some("ON")));
        assert!(!pragma_allowed("writable_schema", None));
        assert!(!pragma_allowed("optimize", None));
        assert!(!pragma_allowed("ignore_check_constraints", Some("ON")));
        assert!(!pragma_allowed("defer_foreign_keys", Some("1")));
        assert!(!pragma_allowed("journal_mode", Some("DELETE")));
        assert!(!pragma_allowed("wal_checkpoint", None));
    }
}
