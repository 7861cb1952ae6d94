//! The guard every statement an operator supplies passes through: fixture SQL (check, deploy,
//! `tenant create --fixture`, template builds) and tenant migrations (plan, destructive analysis,
//! up). Nothing else in monkctl prepares operator SQL.
//!
//! What it owns:
//! - reading operator files (`read_source`): regular files only, never through a symbolic link,
//!   a FIFO or a device refused before it is opened for reading, UTF-8 without NUL bytes;
//! - splitting a file into statements with the line each starts on (`split`);
//! - the rules, from SQLite's own view of each statement and never from its text: an authorizer
//!   (`sqlite3_set_authorizer`) that refuses ATTACH/DETACH, BEGIN/COMMIT/ROLLBACK (and, in
//!   migrations, savepoints), PRAGMAs outside a read-only allowlist, `load_extension()`, any
//!   read or write of the virtual tables that reach the file's pages (`sqlite_dbpage`,
//!   `dbstat`), virtual tables of other modules than full-text and r-tree, and writes by the
//!   statement itself to SQLite's own `sqlite_*` tables; plus the statement's bytecode (its
//!   `EXPLAIN`), which tells a `VACUUM` (and `VACUUM INTO`) that the authorizer never sees;
//! - a time limit per statement, enforced by SQLite's progress handler (`Fault::Timeout`);
//! - scratch databases for analysis: in memory, never a file.
//!
//! "Refused before anything runs". Whether a statement can be prepared depends on what the
//! statements before it did (a CREATE TABLE, then an INSERT into it), so a file cannot be judged
//! statement by statement against the real database without running the earlier ones there.
//! Every caller therefore first runs the whole file, statement by statement, through the guard
//! on an in-memory scratch database (the tenant's schema copied in, or the `system` baseline):
//! each statement is prepared with the authorizer on, judged, and run there so that the next one
//! sees its effects. Only when that pass finds no refusal does anything run on a real tenant, and
//! there every statement passes the same guard again (a tenant's schema may differ from the
//! scratch copy); a refusal then fails the tenant's one transaction, which rolls back. A refused
//! statement is refused while being prepared, so it never runs anywhere: an ATTACH never creates
//! its file, a VACUUM INTO never writes its copy. The scratch databases live in memory (with
//! `temp_store=MEMORY`), so analysis creates no file at all and no scratch directory is needed.
//!
//! It must not print, and must not judge statements by their text.

//!
//! The parts (everything is used as `guard::<item>`):
//! - `source`: operator files and path checks (`read_source`, `check_regular`, `check_dir`);
//! - `split`: statement splitting (`Statement`, `split`, `shorten`);
//! - `rules`: what is refused and why, judged from the authorizer's view of a statement
//!   (`pragma_allowed` and its lists, `Act`, `MONKCTL_TABLES`) and from its bytecode;
//! - `authorizer`: the guard installed on a connection (`install`, `Guard`), running operator
//!   statements and queries under it within their time limit, and why one did not complete
//!   (`Fault`);
//! - `scratch`: the in-memory scratch databases analysis runs on.

mod authorizer;
mod rules;
mod scratch;
mod source;
mod split;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use authorizer::{install, Fault, Guard};
pub use rules::{
    pragma_allowed, Act, ALLOWED_PRAGMAS, FILE_TABLES, MONKCTL_TABLES, READABLE_PRAGMAS,
    VTAB_MODULES,
};
pub use scratch::{scratch_baseline, scratch_from_schema, scratch_path};
pub use source::{check_dir, check_regular, read_source};
pub use split::{shorten, split, Statement};

/// The time limit of one statement during analysis on a scratch copy (`fixture check`,
/// `migrate plan`, the destructive analysis): the scratch copies hold the schema and little data.
pub const ANALYSIS_TIMEOUT: Duration = Duration::from_secs(5);

/// The default time limit of one statement on a real tenant (`--statement-timeout` of
/// `fixture deploy`, `tenant create --fixture`, `template build` and `migrate up`).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Who wrote the statements: the rules differ only in savepoints, which a fixture may use (they
/// nest inside monkctl's transaction) and a migration may not (as documented since migrations
/// came).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fixture,
    Migration,
    /// `monkctl query`: one statement that must only read (checked with `stmt.readonly()` on a
    /// read-only connection); savepoints refused as in migrations.
    Query,
}
