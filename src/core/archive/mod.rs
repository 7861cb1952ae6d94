//! Tenant archives: `extract` a live tenant to one portable SQLite file, `inspect` and `verify`
//! such a file, and `restore` it as a new tenant or over an existing one.
//!
//! An archive is the tenant's own database (same tables, same pages, `journal_mode=DELETE`, no
//! WAL) plus one table, `_monk_archive` (key/value, JSON values), that records the registry row,
//! the fixtures, the schema version, where and when it was made, row counts and a content
//! checksum. So any `sqlite3` can read an archive, and `verify` can tell damage apart.
//!
//! Rules this module keeps: a live tenant database is written only through SQLite, into the
//! open database in one transaction (`db::Replacement`), and read only as SQLite sees it:
//! through the backup API, or, when its WAL holds nothing, as its file's bytes while an open
//! SQLite read transaction (or the write lock) keeps every checkpoint from writing the file,
//! read through SQLite's own handle on it (`db::read_main_file`), never the file and its `-wal`
//! separately and never by opening the file beside SQLite; every file it makes is written beside
//! its final name, synced, then renamed or linked; a restore computes every path from the layout
//! and validated names, never from what the archive says; memory stays bounded whatever the
//! tenant's size (SQLite copies page by page, the checksum streams row by row).
//!
//! An archive is the same file whichever backend the tenant lives on: a PostgreSQL tenant is
//! written into it in the SQLite form, and any archive restores into either backend.
//!
//! The parts: `checksum` (the content checksum), `extract` (a SQLite tenant to an archive),
//! `verify` (header, metadata, `inspect`, `verify`, `list`), `restore` (into SQLite, and
//! `tenant copy`), `crossing` (values and model tables between the backends) and `postgres`
//! (extract of a schema, restore into PostgreSQL); this file holds the format's constants and
//! metadata and what the parts share (opening, placing and copying files).

mod checksum;
pub mod crossing;
mod extract;
mod postgres;
mod restore;
mod verify;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::db;
use super::error::{Context, Error, Result};
use super::fsutil;
use super::ids;
use super::lock::{self, Lock};
use super::migrate::{self, MigrationSet};
use super::names;
use super::progress::Progress;
use super::registry::{FixtureRow, TenantRow};
use super::schema;
use super::tenant::{self, Built, CreateSpec};
use super::{Batch, Workspace};

/// The metadata table every archive carries.
pub const META_TABLE: &str = "_monk_archive";
/// The value of the `format` key: what kind of file this is.
pub const FORMAT_NAME: &str = "monkctl-tenant-archive";
/// The archive format this monkctl writes, and the newest it reads. Version 2: the checksum is
/// `xxh3:` (`core::fingerprint`), and an archive of a PostgreSQL tenant carries its PostgreSQL
/// facts and `_monk_exact_values`; version 1 archives (`lanes64:` checksums) are read as well. A
/// monkctl that reads only version 1 refuses version 2 with "upgrade monkctl" (exit 7).
pub const FORMAT_VERSION: i64 = 2;
/// The suffix of archive file names.
pub const SUFFIX: &str = ".monk.db";

/// Ends the name of the copy `restore --force` saves in the trash before replacing a tenant.
pub const BEFORE_RESTORE_SUFFIX: &str = ".before-restore.monk.db";

/// Where `restore --force` saves the tenant it replaces (both backends):
/// `<trash>/<schema>.<id>.<UTC time>-<8 hex digits>.before-restore.monk.db`, the random part
/// keeping two restores within one second apart.
pub fn before_restore_path(trash: &std::path::Path, schema: &str, id: &str) -> std::path::PathBuf {
    trash.join(format!(
        "{schema}.{id}.{}-{}{BEFORE_RESTORE_SUFFIX}",
        crate::core::ids::file_stamp(std::time::SystemTime::now()),
        &crate::core::ids::uuid_v4()[..8]
    ))
}
/// The name of the content checksum algorithm, recorded in front of the digest
/// (`core::fingerprint`).
pub const CHECKSUM_ALGORITHM: &str = crate::core::fingerprint::TAG;
/// The checksum of archives made before: still verified.
pub const LEGACY_CHECKSUM_ALGORITHM: &str = "lanes64";

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// How long a copy into a live database waits for the API to let go of its write lock.
const LIVE_WRITE_WAIT: Duration = Duration::from_secs(60);

/// What an archive records about the tenant it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    pub format: String,
    pub format_version: i64,
    /// The tenant's registry row when the archive was made.
    pub tenant: TenantRow,
    /// Its `tenant_fixtures` rows.
    pub fixtures: Vec<FixtureRow>,
    /// Its schema version (`core::schema::tenant_version`).
    pub schema_version: i64,
    pub created_at: String,
    pub host: String,
    pub monkctl_version: String,
    /// Rows per tenant table, by table name.
    pub row_counts: BTreeMap<String, i64>,
    /// `xxh3:<32 hex digits>` over the content (see `content_of`; `lanes64:<16 hex digits>`
    /// in archives made before).
    pub checksum: String,
    /// `postgresql` for an archive of a PostgreSQL tenant; absent (SQLite) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_backend: Option<String>,
    /// For an archive of a PostgreSQL tenant: every table's columns and their PostgreSQL types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_columns: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

pub use checksum::*;
pub use extract::*;
pub use restore::*;
pub use verify::*;

// ---------------------------------------------------------------------------------------------
// Opening and copying.
// ---------------------------------------------------------------------------------------------

/// Copies the file `from` (an archive: a file no SQLite connection of this process holds locks
/// on, see `db::read_main_file`) into the new private file `to`, by the kernel.
fn copy_file_bytes(from: &Path, to: &Path) -> Result<()> {
    let mut src = fs::File::open(from).at(from)?;
    // A new file (never one found at the temporary name): owner-only.
    let mut out = fsutil::create_private_file(to)?;
    std::io::copy(&mut src, &mut out).at(to)?;
    Ok(())
}

/// Copies the first `len` bytes of the main database file of `conn` (at `from`) into `to`, a
/// private temporary file this run created (`TempFile::held`), read through SQLite's own handle
/// on it (`db::read_main_file`: the live tenant is never opened beside SQLite).
fn copy_main_file(conn: &Connection, from: &Path, to: &Path, len: u64) -> Result<()> {
    use std::io::Write;
    let mut out = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(to)
        .at(to)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        db::read_main_file(conn, at, &mut buf[..n], from)?;
        out.write_all(&buf[..n]).at(to)?;
        at += n as u64;
    }
    Ok(())
}

impl Metadata {
    /// The recorded fixtures, as outputs show them.
    pub fn deployed_fixtures(&self) -> Vec<crate::core::registry::DeployedFixture> {
        self.fixtures.iter().cloned().map(Into::into).collect()
    }

    /// The metadata of an archive made now of tenant `t`, whose content is `content`.
    fn made_now(
        t: &TenantRow,
        fixtures: &[FixtureRow],
        schema_version: i64,
        content: &Content,
    ) -> Metadata {
        Metadata {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            tenant: t.clone(),
            fixtures: fixtures.to_vec(),
            schema_version,
            created_at: ids::now_iso(),
            host: lock::hostname(),
            monkctl_version: env!("CARGO_PKG_VERSION").into(),
            row_counts: content.row_counts.clone(),
            checksum: content.checksum.clone(),
            source_backend: None,
            postgres_columns: None,
        }
    }
}

impl Extracted {
    /// The report of an archive of tenant `t` placed at `path`.
    fn placed(t: &TenantRow, path: &Path, schema_version: i64, content: Content) -> Self {
        Extracted {
            tenant: t.name.clone(),
            size_bytes: fsutil::size_of(path).unwrap_or(0),
            path: path.to_path_buf(),
            schema_version,
            tables: content.row_counts.len(),
            rows: content.row_counts.values().sum(),
            checksum: content.checksum,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared by extract and restore.
// ---------------------------------------------------------------------------------------------

fn check_free(final_path: &Path, force: bool) -> Result<()> {
    if !force && final_path.exists() {
        return Err(Error::Conflict(format!(
            "{} exists already; choose another -o or pass --force to overwrite it",
            final_path.display()
        )));
    }
    if final_path.is_dir() {
        return Err(Error::Conflict(format!(
            "{} is a directory; name a file, or give the directory as -o for default names",
            final_path.display()
        )));
    }
    Ok(())
}

/// Puts a finished, synced temporary file at its final name: never over an existing file unless
/// `force` (then an atomic rename replaces it).
fn place(tmp: &Path, final_path: &Path, force: bool) -> Result<()> {
    if force {
        fs::rename(tmp, final_path).at(final_path)?;
        if let Some(d) = final_path.parent() {
            fsutil::sync_dir(d)?;
        }
        Ok(())
    } else {
        fsutil::place_new(tmp, final_path).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Error::Conflict(format!(
                    "{} exists already; choose another -o or pass --force to overwrite it",
                    final_path.display()
                ))
            }
            other => other,
        })
    }
}

/// Where an archive goes, checked: free (or `force`), in a directory that exists. A bare file
/// name is in the working directory; it says so, so that its directory can be synced.
fn output_path(final_path: &Path, force: bool) -> Result<PathBuf> {
    let final_path = match final_path.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new(".").join(final_path),
        _ => final_path.to_path_buf(),
    };
    check_free(&final_path, force)?;
    if let Some(dir) = final_path.parent() {
        if !dir.is_dir() {
            return Err(Error::FileNotFound {
                what: "output directory",
                path: dir.to_path_buf(),
                hint: "create it first".into(),
            });
        }
    }
    Ok(final_path)
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The result of a scoped thread; a panic there becomes an error naming `what`.
fn joined<T>(r: std::thread::Result<Result<T>>, what: &str) -> Result<T> {
    r.unwrap_or_else(|_| Err(Error::Other(format!("{what} failed"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(data: &[u8]) -> u64 {
        let mut h = Checksum::default();
        h.update(data);
        h.finish()
    }

    #[test]
    fn archives_made_before_keep_their_checksum_algorithm() {
        // The `lanes64` digest of a known content, as archives of format 1 recorded it: the
        // reader kept for them must give exactly this.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (a, b); INSERT INTO t VALUES (1, 'x'), (NULL, x'00ff'), (2.5, '');",
        )
        .unwrap();
        let old = content_as(&conn, &path, LEGACY_CHECKSUM_ALGORITHM).unwrap();
        assert_eq!(old.checksum, "lanes64:0ddf28b57662d9d8");
        let new = content_of(&conn, &path).unwrap();
        assert!(new.checksum.starts_with("xxh3:"), "{}", new.checksum);
        assert_eq!(old.row_counts, new.row_counts);
        assert!(content_as(&conn, &path, "md5").is_err());
    }

    #[test]
    fn checksum_is_stable_across_chunking() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = digest(&data);
        let mut h = Checksum::default();
        for c in data.chunks(13) {
            h.update(c);
        }
        assert_eq!(h.finish(), whole);
    }

    #[test]
    fn checksum_sees_every_flipped_byte_and_padding() {
        let data: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let base = digest(&data);
        for i in 0..data.len() {
            let mut d = data.clone();
            d[i] ^= 0x01;
            assert_ne!(digest(&d), base, "flip at {i}");
        }
        assert_ne!(digest(b"ab"), digest(b"ab\0"));
        assert_ne!(digest(b""), digest(b"\0"));
    }

    #[test]
    fn uri_escapes_what_sqlite_would_misread() {
        let u = db::file_uri(Path::new("/tmp/a b?c#d%e.db"), "mode=ro");
        assert_eq!(u, "file:/tmp/a%20b%3Fc%23d%25e.db?mode=ro");
    }

    #[test]
    fn archived_ids_must_be_uuids() {
        assert!(check_id("0f8e4a52-1c2b-4d3e-9f00-123456789abc").is_ok());
        for bad in ["", "../../x", "a/b", "x y"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
