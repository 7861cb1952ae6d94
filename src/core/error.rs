//! Typed errors of the core and the one mapping from an error to a process exit code.
//!
//! Every error names what went wrong, the tenant or file concerned, and what to do next. The exit
//! codes are a public interface: they are listed in the README and the man page, and must not be
//! renumbered.

use std::path::{Path, PathBuf};

/// Exit codes of monkctl. Listed in the README; stable across releases.
pub mod exit {
    pub const SUCCESS: i32 = 0;
    /// Anything not covered below: an I/O or SQLite failure, an internal error.
    pub const FAILURE: i32 = 1;
    /// Bad arguments or input: an invalid name, a malformed file, a missing `--yes`.
    pub const USAGE: i32 = 2;
    /// A tenant, file or infra database that does not exist.
    pub const NOT_FOUND: i32 = 3;
    /// The name or file exists already, or the tenant's state forbids the operation.
    pub const CONFLICT: i32 = 4;
    /// A database or the data directory is locked by another process.
    pub const BUSY: i32 = 5;
    /// A file is not a valid database or archive, or fails its integrity or checksum check.
    pub const CORRUPT: i32 = 6;
    /// Something monkctl does not support: a `postgresql://` URL, a newer format or version.
    pub const UNSUPPORTED: i32 = 7;
    /// A run over several tenants where some succeeded and some failed.
    pub const PARTIAL: i32 = 8;
    /// The operating system refused access: a read-only data directory, a permission problem.
    pub const PERMISSION: i32 = 9;
    /// `doctor`: warnings were found (status `degraded`), no errors.
    pub const DEGRADED: i32 = 10;
    /// `doctor`: errors were found (status `failing`).
    pub const FAILING: i32 = 11;
    /// A file given as an archive is not a SQLite file at all (wrong header).
    pub const NOT_ARCHIVE: i32 = 12;
    /// An archive is shorter than its own header says: cut off by a copy or a full disk.
    pub const TRUNCATED: i32 = 13;
    /// A SQLite file without readable archive metadata (the `_monk_archive` table).
    pub const ARCHIVE_METADATA: i32 = 14;
    /// An archive whose content no longer matches its recorded checksum or row counts.
    pub const CHECKSUM_MISMATCH: i32 = 15;
    /// An archive of a different tenant than the one of the same name here.
    pub const OTHER_TENANT: i32 = 16;
    /// Applied migrations were edited since (checksum differs) or are no longer present.
    pub const DIVERGED: i32 = 17;
    /// A migration would drop or rewrite data and `--allow-destructive` was not given.
    pub const DESTRUCTIVE: i32 = 18;
    /// The device holding a file ran out of space (or the user's disk quota is used up).
    pub const DISK_FULL: i32 = 19;
    /// A statement of a fixture or migration ran longer than its time limit and was stopped.
    pub const STATEMENT_TIMEOUT: i32 = 20;
    /// The user answered no to a confirmation (or closed it): nothing was changed.
    pub const CANCELLED: i32 = 21;
    /// The PostgreSQL server could not be reached or refused the connection.
    pub const UNREACHABLE: i32 = 22;
    /// A table, column or value of an archive that the target backend cannot hold.
    pub const UNCONVERTIBLE: i32 = 23;
    /// Ctrl-C during a run over several tenants: those in progress finished, no other started.
    pub const INTERRUPTED: i32 = 130;
}

/// An exit code, its stable name (in JSON errors and scripts) and what it means.
#[derive(Debug, Clone, Copy)]
pub struct ExitCode {
    pub code: i32,
    pub name: &'static str,
    pub meaning: &'static str,
}

/// Every exit code: the one table that `--help`, the man pages and the README's table come
/// from (tests/docs.rs checks the README against it).
pub const CODES: &[ExitCode] = &[
    ExitCode {
        code: exit::SUCCESS,
        name: "success",
        meaning: "success",
    },
    ExitCode {
        code: exit::FAILURE,
        name: "failure",
        meaning: "failure: an I/O or SQLite error not covered below",
    },
    ExitCode {
        code: exit::USAGE,
        name: "usage",
        meaning: "usage or invalid input: bad arguments, an invalid name, a malformed file, `--yes` missing without a terminal",
    },
    ExitCode {
        code: exit::NOT_FOUND,
        name: "not_found",
        meaning: "not found: a tenant, a file, the infra database",
    },
    ExitCode {
        code: exit::CONFLICT,
        name: "conflict",
        meaning: "already exists, or the tenant's state forbids the change (e.g. a deleted tenant)",
    },
    ExitCode {
        code: exit::BUSY,
        name: "busy",
        meaning: "busy: a database or the data directory is locked by another process",
    },
    ExitCode {
        code: exit::CORRUPT,
        name: "corrupt",
        meaning: "corrupt: a file is not a valid SQLite database or fails its checks",
    },
    ExitCode {
        code: exit::UNSUPPORTED,
        name: "unsupported",
        meaning: "unsupported: a newer format or version, or a command not yet available on a PostgreSQL deployment",
    },
    ExitCode {
        code: exit::PARTIAL,
        name: "partial",
        meaning: "partial: a run over several tenants where some succeeded and some failed",
    },
    ExitCode {
        code: exit::PERMISSION,
        name: "permission",
        meaning: "permission denied: a read-only data directory, a file not writable by this user",
    },
    ExitCode {
        code: exit::DEGRADED,
        name: "degraded",
        meaning: "`doctor`: status `degraded` (warnings, no errors)",
    },
    ExitCode {
        code: exit::FAILING,
        name: "failing",
        meaning: "`doctor`: status `failing` (errors)",
    },
    ExitCode {
        code: exit::NOT_ARCHIVE,
        name: "not_archive",
        meaning: "not an archive or SQLite file",
    },
    ExitCode {
        code: exit::TRUNCATED,
        name: "truncated",
        meaning: "truncated archive",
    },
    ExitCode {
        code: exit::ARCHIVE_METADATA,
        name: "archive_metadata",
        meaning: "archive metadata missing or unreadable",
    },
    ExitCode {
        code: exit::CHECKSUM_MISMATCH,
        name: "checksum_mismatch",
        meaning: "archive content does not match its checksum or row counts",
    },
    ExitCode {
        code: exit::OTHER_TENANT,
        name: "other_tenant",
        meaning: "the archive is of another tenant than the one of that name or id here",
    },
    ExitCode {
        code: exit::DIVERGED,
        name: "diverged",
        meaning: "diverged or missing migrations: an applied migration was edited since (its refinery checksum differs) or is no longer present",
    },
    ExitCode {
        code: exit::DESTRUCTIVE,
        name: "destructive",
        meaning: "a destructive migration was refused: pass `--allow-destructive`",
    },
    ExitCode {
        code: exit::DISK_FULL,
        name: "disk_full",
        meaning: "disk full: no space left (or the disk quota used up) where a file was being written; nothing was changed",
    },
    ExitCode {
        code: exit::STATEMENT_TIMEOUT,
        name: "statement_timeout",
        meaning: "a fixture or migration statement ran longer than its time limit (`--statement-timeout`, 5 s during analysis) and was stopped; its tenant was rolled back",
    },
    ExitCode {
        code: exit::CANCELLED,
        name: "cancelled",
        meaning: "a confirmation was answered no (or its prompt closed); nothing was changed",
    },
    ExitCode {
        code: exit::UNREACHABLE,
        name: "unreachable",
        meaning: "the PostgreSQL server of `DATABASE_URL` could not be reached (refused, timed out, unknown host, TLS failed); nothing was changed",
    },
    ExitCode {
        code: exit::UNCONVERTIBLE,
        name: "unconvertible",
        meaning: "a table, column or value cannot be moved between SQLite and PostgreSQL (the message names table, row and column); nothing was changed",
    },
    ExitCode {
        code: exit::INTERRUPTED,
        name: "interrupted",
        meaning: "Ctrl-C: a run over several tenants finished the tenants in progress and started no other (the results say which are done); outside such a run, or at a second Ctrl-C, the process stops at once",
    },
];

/// The exit codes in one paragraph, for `--help` and the man page.
pub fn codes_help() -> String {
    let list: Vec<String> = CODES
        .iter()
        .map(|c| format!("{} {}", c.code, c.name))
        .collect();
    format!(
        "Exit codes (the README and `man monkctl` say what each means): {}.",
        list.join(", ")
    )
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} '{value}' is not valid: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error("{0}")]
    Usage(String),

    #[error("{path}:{line}: {message}")]
    BadInput {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("tenant '{0}' does not exist (see `monkctl tenant list --all`)")]
    TenantNotFound(String),

    #[error("{what} not found: {}{}", path.display(), hint_suffix(hint))]
    FileNotFound {
        what: &'static str,
        path: PathBuf,
        hint: String,
    },

    #[error("no infra database in {}: looked for {} and {}; run `monkctl init` to create one, or pass --data-dir / DATABASE_URL for an existing one", data_dir.display(), design.display(), api.display())]
    NoInfra {
        data_dir: PathBuf,
        design: PathBuf,
        api: PathBuf,
    },

    #[error("tenant '{0}' already exists (names are never reused, deleted tenants included); choose another name")]
    TenantExists(String),

    #[error("{0}")]
    Conflict(String),

    #[error("{what} is busy: {detail}")]
    Busy { what: String, detail: String },

    #[error("{} is not a valid SQLite database ({detail}); restore it from a backup or move it aside", path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// A template whose files do not agree (a damaged file, or a build interrupted between its
    /// two renames): derived data, so the fix is a rebuild, not a backup.
    #[error("{}: {detail}", path.display())]
    TemplateDamaged { path: PathBuf, detail: String },

    #[error("{0}")]
    Unsupported(String),

    #[error("permission denied on {}: {detail}; check the owner and mode of the data directory", path.display())]
    Permission { path: PathBuf, detail: String },

    #[error("{action} needs confirmation: pass --yes to run it without a terminal")]
    NeedsConfirmation { action: String },

    #[error("cancelled: nothing was changed")]
    Cancelled,

    #[error("{} failed of {}", failed, total)]
    Partial { failed: usize, total: usize },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("{} is not a monkctl archive or SQLite database ({detail}); give a file made by `monkctl extract`", path.display())]
    NotArchive { path: PathBuf, detail: String },

    #[error("{} is truncated: {detail}; copy the archive again from its source", path.display())]
    Truncated { path: PathBuf, detail: String },

    #[error("{} has no usable archive metadata ({detail}); it is not a `monkctl extract` archive or its metadata was removed or edited", path.display())]
    ArchiveMetadata { path: PathBuf, detail: String },

    #[error("{} does not match its recorded checksum or row counts ({detail}); the archive was altered or damaged, use another copy", path.display())]
    ChecksumMismatch { path: PathBuf, detail: String },

    #[error("{0}")]
    OtherTenant(String),
    /// `doctor` found warnings; the message summarises them.
    #[error("degraded: {0}")]
    Degraded(String),

    /// `doctor` found errors; the message summarises them.
    #[error("failing: {0}")]
    Failing(String),

    #[error("{0}")]
    Diverged(String),

    #[error("{0}")]
    Destructive(String),

    /// No space left where a file was being written (ENOSPC, EDQUOT, SQLITE_FULL). The
    /// operations that can hit it write privately and roll back, so the message can promise that
    /// nothing was changed.
    #[error("no space left on the device holding {}: {detail}; free space there (or write to another directory) and retry; nothing was changed", path.display())]
    DiskFull { path: PathBuf, detail: String },

    /// An operator statement (fixture, migration) that the guard refuses (`core::guard`).
    #[error("{}:{line}: {message}", path.display())]
    Refused {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// An operator statement interrupted by its time limit (`--statement-timeout`); the
    /// transaction it ran in is rolled back.
    #[error("{}:{line}: statement {number} ran longer than its limit of {} and was stopped: `{statement}`; nothing was changed; make it cheaper, or raise the limit with --statement-timeout", path.display(), crate::core::ids::format_wait(*limit))]
    StatementTimeout {
        path: PathBuf,
        line: usize,
        number: usize,
        limit: std::time::Duration,
        statement: String,
    },

    /// An error of the PostgreSQL server or its connection, at `target` (host, database and
    /// schema; never the password). `exit` is chosen by `backend::postgres::error`.
    #[error("{target}: {detail}")]
    Postgres {
        target: String,
        detail: String,
        exit: i32,
    },

    /// Something of a tenant that the other backend cannot hold: `table`, `row` (its id, or
    /// empty for the table as a whole), `column` (or empty) and what is wrong.
    #[error("table {table}{}{}: {detail}", if row.is_empty() { String::new() } else { format!(", row {row}") }, if column.is_empty() { String::new() } else { format!(", column {column}") })]
    Unconvertible {
        table: String,
        row: String,
        column: String,
        detail: String,
    },

    /// A tenant of a run that Ctrl-C stopped before it started.
    #[error("not started: the run was interrupted (Ctrl-C)")]
    Interrupted,

    #[error("{0}")]
    Other(String),
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    }
}

impl Error {
    /// The process exit code for this error. The only place codes are chosen.
    /// What to do about it, where one thing is known (also said in the message): for scripts,
    /// in the JSON form of an error.
    pub fn fix(&self) -> Option<String> {
        let s = |t: &str| Some(t.to_string());
        match self {
            Error::TenantNotFound(_) => s("see `monkctl tenant list --all`"),
            Error::FileNotFound { hint, .. } if !hint.is_empty() => Some(hint.clone()),
            Error::NoInfra { .. } => s(
                "run `monkctl init` to create one, or pass --data-dir / DATABASE_URL for an existing one",
            ),
            Error::TenantExists(_) => s("choose another name"),
            Error::Busy { .. } => s("retry when the other process is done"),
            Error::Corrupt { .. } => s("restore it from a backup or move it aside"),
            Error::TemplateDamaged { .. } => s("rebuild the template (`monkctl template build`)"),
            Error::Permission { .. } => s("check the owner and mode of the data directory"),
            Error::NeedsConfirmation { .. } => s("pass --yes to run it without a terminal"),
            Error::NotArchive { .. } => s("give a file made by `monkctl extract`"),
            Error::Truncated { .. } => s("copy the archive again from its source"),
            Error::ChecksumMismatch { .. } => s("use another copy of the archive"),
            Error::DiskFull { .. } => {
                s("free space there (or write to another directory) and retry")
            }
            Error::StatementTimeout { .. } => {
                s("make it cheaper, or raise the limit with --statement-timeout")
            }
            Error::Interrupted => s("run the command again for the tenants not started"),
            _ => None,
        }
    }

    /// The tenant the error is about, where it names one.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Error::TenantNotFound(n) | Error::TenantExists(n) => Some(n),
            _ => None,
        }
    }

    /// The file the error is about, where it names one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::BadInput { path, .. }
            | Error::FileNotFound { path, .. }
            | Error::Corrupt { path, .. }
            | Error::TemplateDamaged { path, .. }
            | Error::Permission { path, .. }
            | Error::Io { path, .. }
            | Error::Sqlite { path, .. }
            | Error::NotArchive { path, .. }
            | Error::Truncated { path, .. }
            | Error::ArchiveMetadata { path, .. }
            | Error::ChecksumMismatch { path, .. }
            | Error::DiskFull { path, .. }
            | Error::Refused { path, .. }
            | Error::StatementTimeout { path, .. } => Some(path),
            Error::NoInfra { data_dir, .. } => Some(data_dir),
            _ => None,
        }
    }

    pub fn exit_code(&self) -> i32 {
        use rusqlite::ErrorCode as C;
        match self {
            Error::InvalidName { .. }
            | Error::Usage(_)
            | Error::BadInput { .. }
            | Error::Refused { .. }
            | Error::NeedsConfirmation { .. } => exit::USAGE,
            Error::TenantNotFound(_) | Error::FileNotFound { .. } | Error::NoInfra { .. } => {
                exit::NOT_FOUND
            }
            Error::TenantExists(_) | Error::Conflict(_) => exit::CONFLICT,
            Error::Busy { .. } => exit::BUSY,
            Error::Corrupt { .. } | Error::TemplateDamaged { .. } => exit::CORRUPT,
            Error::Unsupported(_) => exit::UNSUPPORTED,
            Error::Partial { .. } => exit::PARTIAL,
            Error::Permission { .. } => exit::PERMISSION,
            Error::NotArchive { .. } => exit::NOT_ARCHIVE,
            Error::Truncated { .. } => exit::TRUNCATED,
            Error::ArchiveMetadata { .. } => exit::ARCHIVE_METADATA,
            Error::ChecksumMismatch { .. } => exit::CHECKSUM_MISMATCH,
            Error::OtherTenant(_) => exit::OTHER_TENANT,
            Error::Degraded(_) => exit::DEGRADED,
            Error::Failing(_) => exit::FAILING,
            Error::Diverged(_) => exit::DIVERGED,
            Error::Destructive(_) => exit::DESTRUCTIVE,
            Error::DiskFull { .. } => exit::DISK_FULL,
            Error::StatementTimeout { .. } => exit::STATEMENT_TIMEOUT,
            Error::Cancelled => exit::CANCELLED,
            Error::Other(_) => exit::FAILURE,
            Error::Unconvertible { .. } => exit::UNCONVERTIBLE,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Postgres { exit, .. } => *exit,
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => exit::NOT_FOUND,
                std::io::ErrorKind::AlreadyExists => exit::CONFLICT,
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    exit::PERMISSION
                }
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                    exit::DISK_FULL
                }
                _ => exit::FAILURE,
            },
            Error::Sqlite { source, .. } => match source.sqlite_error_code() {
                Some(C::DatabaseBusy | C::DatabaseLocked) => exit::BUSY,
                Some(C::DatabaseCorrupt | C::NotADatabase) => exit::CORRUPT,
                Some(C::ReadOnly | C::PermissionDenied | C::CannotOpen) => exit::PERMISSION,
                Some(C::ConstraintViolation) => exit::CONFLICT,
                Some(C::DiskFull) => exit::DISK_FULL,
                _ => exit::FAILURE,
            },
        }
    }

    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        match source.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                Error::Permission {
                    path,
                    detail: source.to_string(),
                }
            }
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                Error::DiskFull {
                    path,
                    detail: source.to_string(),
                }
            }
            _ => Error::Io { path, source },
        }
    }

    /// Wraps a SQLite error for `path`, turning the codes a user can act on into their own kinds.
    pub fn sqlite(path: impl AsRef<Path>, source: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        let path = path.as_ref().to_path_buf();
        match source.sqlite_error_code() {
            Some(C::NotADatabase | C::DatabaseCorrupt) => Error::Corrupt {
                path,
                detail: source.to_string(),
            },
            Some(C::DatabaseBusy | C::DatabaseLocked) => Error::Busy {
                what: path.display().to_string(),
                detail: format!(
                    "{source}; another process holds a lock on it, retry when it is done"
                ),
            },
            Some(C::ReadOnly | C::PermissionDenied) => Error::Permission {
                path,
                detail: source.to_string(),
            },
            Some(C::DiskFull | C::SystemIoFailure) => match Error::disk_full(&path, &source) {
                Some(full) => full,
                None => Error::Sqlite { path, source },
            },
            _ => Error::Sqlite { path, source },
        }
    }

    /// `DiskFull` when the SQLite error `e` on `path` comes from a full disk: SQLITE_FULL, or an
    /// I/O error while writing on a nearly full device (see `full_device`); `None` otherwise.
    /// For callers that wrap SQLite errors in messages of their own (a migration's statement, a
    /// refinery run) and must keep a full disk recognisable.
    pub fn disk_full(path: &Path, e: &rusqlite::Error) -> Option<Error> {
        let detail = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => e.to_string(),
            Some(rusqlite::ErrorCode::SystemIoFailure) if write_side(e) => {
                let left = full_device(path)?;
                format!("{e} while writing, with {left} bytes left there")
            }
            _ => return None,
        };
        Some(Error::DiskFull {
            path: path.to_path_buf(),
            detail,
        })
    }
}

/// Below this many free bytes, an I/O error while writing is taken for a full disk.
const NEARLY_FULL_BYTES: u64 = 1 << 20;

/// Whether a SQLite I/O error comes from writing, extending or syncing a file (the calls that
/// fail with ENOSPC or EDQUOT), as opposed to reading, locking or opening one.
fn write_side(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return false;
    };
    matches!(
        f.extended_code,
        ffi::SQLITE_IOERR
            | ffi::SQLITE_IOERR_WRITE
            | ffi::SQLITE_IOERR_FSYNC
            | ffi::SQLITE_IOERR_DIR_FSYNC
            | ffi::SQLITE_IOERR_TRUNCATE
            | ffi::SQLITE_IOERR_SHMSIZE
            | ffi::SQLITE_IOERR_SHMMAP
    )
}

/// The free bytes of the file system holding `path` when it is (nearly) full.
///
/// SQLite reports ENOSPC as SQLITE_FULL only for writes to a database or journal; extending the
/// `-shm` index (`SQLITE_IOERR_SHMSIZE`, the first write when a WAL database is opened) and a
/// failed sync surface as a generic "disk I/O error" without the errno. A write-side I/O error on
/// a file system with less than `NEARLY_FULL_BYTES` left is a full disk for the user.
fn full_device(path: &Path) -> Option<u64> {
    super::fsutil::available_bytes(path).filter(|left| *left < NEARLY_FULL_BYTES)
}

impl Error {
    /// The same error with the private temporary file `tmp` named as `name` instead (such as
    /// "tenant 'acme'"): a `.monktmp-` file is gone by the time the user reads the message. A
    /// constraint failure there is the content's fault, not a name conflict, so it becomes a plain
    /// failure (exit 1) rather than exit 4.
    pub fn renamed(self, tmp: &Path, name: &str) -> Error {
        let shown = tmp.display().to_string();
        let fix = |s: String| s.replace(&shown, name);
        match self {
            Error::Sqlite { path, source } if path == tmp => match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => {
                    Error::Other(format!("{name}: {source}"))
                }
                _ => Error::Sqlite {
                    path: PathBuf::from(name),
                    source,
                },
            },
            Error::Io { path, source } if path == tmp => Error::Io {
                path: PathBuf::from(name),
                source,
            },
            Error::Permission { path, detail } if path == tmp => Error::Permission {
                path: PathBuf::from(name),
                detail,
            },
            Error::Corrupt { path, detail } if path == tmp => Error::Corrupt {
                path: PathBuf::from(name),
                detail,
            },
            Error::DiskFull { path, detail } if path == tmp => Error::DiskFull {
                path: PathBuf::from(name),
                detail,
            },
            Error::Busy { what, detail } => Error::Busy {
                what: fix(what),
                detail: fix(detail),
            },
            Error::Other(m) => Error::Other(fix(m)),
            other => other,
        }
    }
}

/// Attaches a path to I/O and SQLite results.
pub trait Context<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

impl<T> Context<T> for std::result::Result<T, rusqlite::Error> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::sqlite(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_map_to_documented_exit_codes() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert_eq!(Error::sqlite("/x", busy).exit_code(), exit::BUSY);
        let notadb = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
            None,
        );
        assert_eq!(Error::sqlite("/x", notadb).exit_code(), exit::CORRUPT);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(Error::io("/x", denied).exit_code(), exit::PERMISSION);
    }

    fn full() -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None)
    }

    #[test]
    fn a_full_disk_has_its_own_exit_code_from_sqlite_and_from_the_os() {
        let e = Error::sqlite("/data/db_main/ns_tenant_acme.db", full());
        assert!(matches!(e, Error::DiskFull { .. }), "{e:?}");
        assert_eq!(e.exit_code(), exit::DISK_FULL);
        let msg = e.to_string();
        assert!(
            msg.starts_with("no space left on the device holding /data/db_main/ns_tenant_acme.db")
                && msg.contains("free space there"),
            "{msg}"
        );
        for kind in [
            std::io::ErrorKind::StorageFull,
            std::io::ErrorKind::QuotaExceeded,
        ] {
            let e = Error::io("/data/locks/x.lock", std::io::Error::from(kind));
            assert!(matches!(e, Error::DiskFull { .. }), "{kind:?}");
            assert_eq!(e.exit_code(), exit::DISK_FULL);
            // An error built without `Error::io` still exits with the same code.
            let raw = Error::Io {
                path: "/x".into(),
                source: std::io::Error::from(kind),
            };
            assert_eq!(raw.exit_code(), exit::DISK_FULL);
        }
        let raw = Error::Sqlite {
            path: "/x".into(),
            source: full(),
        };
        assert_eq!(raw.exit_code(), exit::DISK_FULL);
    }

    #[test]
    fn an_io_error_while_writing_is_a_full_disk_only_on_a_nearly_full_device() {
        let ioerr = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        assert!(write_side(&ioerr(rusqlite::ffi::SQLITE_IOERR_SHMSIZE)));
        assert!(write_side(&ioerr(rusqlite::ffi::SQLITE_IOERR_FSYNC)));
        assert!(!write_side(&ioerr(rusqlite::ffi::SQLITE_IOERR_READ)));
        assert!(!write_side(&ioerr(rusqlite::ffi::SQLITE_IOERR_LOCK)));
        // The build directory has room: a failed `-shm` extension there is a plain I/O error.
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("no-such.db");
        if super::super::fsutil::available_bytes(&here).is_some_and(|b| b > NEARLY_FULL_BYTES) {
            let e = Error::sqlite(&here, ioerr(rusqlite::ffi::SQLITE_IOERR_SHMSIZE));
            assert!(matches!(e, Error::Sqlite { .. }), "{e:?}");
            assert_eq!(e.exit_code(), exit::FAILURE);
        }
    }

    #[test]
    fn renamed_keeps_a_full_disk_and_names_the_final_file() {
        let tmp = Path::new("/data/db_main/.ns_tenant_acme.db.monktmp-1-ab");
        let e = Error::sqlite(tmp, full()).renamed(tmp, "/data/db_main/ns_tenant_acme.db");
        assert_eq!(e.exit_code(), exit::DISK_FULL);
        let msg = e.to_string();
        assert!(
            msg.contains("/data/db_main/ns_tenant_acme.db") && !msg.contains("monktmp"),
            "{msg}"
        );
        // Another file's full disk is left as it is.
        let other = Error::io(
            "/data/infra/monk.db",
            std::io::ErrorKind::StorageFull.into(),
        )
        .renamed(tmp, "tenant 'acme'");
        assert!(other.to_string().contains("/data/infra/monk.db"));
    }
}
