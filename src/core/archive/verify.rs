//! `archive inspect`, `verify` and `list`: an archive's header, metadata and content checked, never
//! changed.

use super::*;

/// The facts of the 100-byte SQLite header that tell damage apart before SQLite opens the file.
pub(super) fn check_header(path: &Path) -> Result<u64> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::FileNotFound {
            what: "archive",
            path: path.to_path_buf(),
            hint: String::new(),
        },
        _ => Error::io(path, e),
    })?;
    if !meta.is_file() {
        return Err(Error::NotArchive {
            path: path.to_path_buf(),
            detail: "it is not a regular file".into(),
        });
    }
    let len = meta.len();
    let mut head = Vec::with_capacity(100);
    fs::File::open(path)
        .at(path)?
        .take(100)
        .read_to_end(&mut head)
        .at(path)?;
    let n = head.len().min(16);
    if head.is_empty() || head[..n] != SQLITE_MAGIC[..n] {
        return Err(Error::NotArchive {
            path: path.to_path_buf(),
            detail: if head.is_empty() {
                "the file is empty".into()
            } else {
                "it does not start with the SQLite header".into()
            },
        });
    }
    if head.len() < 100 {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            detail: format!("only {len} bytes, shorter than the 100-byte SQLite header"),
        });
    }
    let raw = u16::from_be_bytes([head[16], head[17]]);
    let page_size: u64 = if raw == 1 { 65_536 } else { u64::from(raw) };
    if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(Error::NotArchive {
            path: path.to_path_buf(),
            detail: format!("its header gives an impossible page size {page_size}"),
        });
    }
    check_header_fields(&head, page_size).map_err(|detail| Error::NotArchive {
        path: path.to_path_buf(),
        detail,
    })?;
    let change = u32::from_be_bytes(head[24..28].try_into().expect("4"));
    let valid_for = u32::from_be_bytes(head[92..96].try_into().expect("4"));
    let pages = u64::from(u32::from_be_bytes(head[28..32].try_into().expect("4")));
    if change == valid_for && pages > 0 && len < pages * page_size {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "{len} bytes, but its header says {pages} pages of {page_size} bytes ({} bytes)",
                pages * page_size
            ),
        });
    }
    if len % page_size != 0 {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            detail: format!("{len} bytes is not a whole number of {page_size}-byte pages"),
        });
    }
    Ok(page_size)
}

/// The fields of the 100-byte header that SQLite 3 gives fixed values or a small range, so
/// that a file SQLite would open read-only or refuse later (a write version of 3 makes the
/// restored tenant read-only) is refused by `verify` and `restore` alike, before anything is
/// written. The page size and the page count are checked by the caller.
pub(super) fn check_header_fields(head: &[u8], page_size: u64) -> std::result::Result<(), String> {
    let (write, read) = (head[18], head[19]);
    if !matches!(write, 1 | 2) || !matches!(read, 1 | 2) {
        return Err(format!(
            "its header's file format versions (bytes 18 and 19) are {write} and {read}; SQLite 3 writes 1 (rollback journal) or 2 (WAL)"
        ));
    }
    let reserved = u64::from(head[20]);
    if page_size - reserved < 480 {
        return Err(format!(
            "its header reserves {reserved} bytes of each {page_size}-byte page (byte 20), leaving less than the 480 SQLite needs"
        ));
    }
    if head[21..24] != [64, 32, 32] {
        return Err(format!(
            "its header's payload fractions (bytes 21 to 23) are {:?}, not the [64, 32, 32] of every SQLite 3 file",
            &head[21..24]
        ));
    }
    let schema_format = u32::from_be_bytes(head[44..48].try_into().expect("4"));
    if !(1..=4).contains(&schema_format) {
        return Err(format!(
            "its header's schema format number (bytes 44 to 47) is {schema_format}, not 1 to 4"
        ));
    }
    let encoding = u32::from_be_bytes(head[56..60].try_into().expect("4"));
    if !(1..=3).contains(&encoding) {
        return Err(format!(
            "its header's text encoding (bytes 56 to 59) is {encoding}, not 1 (UTF-8), 2 or 3 (UTF-16)"
        ));
    }
    Ok(())
}

pub(super) fn meta_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::ArchiveMetadata {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Reads and validates the metadata: `ArchiveMetadata` when missing or unreadable,
/// `Unsupported` when newer than this monkctl.
pub(super) fn read_metadata(conn: &Connection, path: &Path) -> Result<Metadata> {
    if !db::has_table(conn, META_TABLE).at(path)? {
        return Err(meta_err(path, format!("the table {META_TABLE} is missing")));
    }
    // A damaged page under the table is corruption (6); a table of another shape is metadata
    // that cannot be read (14).
    let unreadable = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            Error::sqlite(path, e)
        }
        _ => meta_err(path, format!("{META_TABLE} cannot be read: {e}")),
    };
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    {
        let mut st = conn
            .prepare(&format!("SELECT key, value FROM {META_TABLE}"))
            .map_err(unreadable)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(unreadable)?;
        for r in rows {
            let (k, v) = r.map_err(unreadable)?;
            kv.insert(k, v);
        }
    }
    let get = |k: &str| {
        kv.get(k)
            .cloned()
            .ok_or_else(|| meta_err(path, format!("the key '{k}' is missing")))
    };
    let int = |k: &str| -> Result<i64> {
        get(k)?
            .parse()
            .map_err(|_| meta_err(path, format!("the key '{k}' is not a number")))
    };
    let format = get("format")?;
    if format != FORMAT_NAME {
        return Err(meta_err(
            path,
            format!("its format is '{format}', not '{FORMAT_NAME}'"),
        ));
    }
    let format_version = int("format_version")?;
    if format_version > FORMAT_VERSION {
        return Err(Error::Unsupported(format!(
            "{} is a version {format_version} archive; this monkctl ({}) reads versions up to {FORMAT_VERSION}: upgrade monkctl",
            path.display(),
            env!("CARGO_PKG_VERSION")
        )));
    }
    let parse = |k: &str| -> Result<serde_json::Value> {
        serde_json::from_str(&get(k)?)
            .map_err(|e| meta_err(path, format!("the key '{k}' is not valid JSON: {e}")))
    };
    let tenant: TenantRow = serde_json::from_value(parse("tenant")?)
        .map_err(|e| meta_err(path, format!("the tenant row is incomplete: {e}")))?;
    let fixtures: Vec<FixtureRow> = serde_json::from_value(parse("fixtures")?)
        .map_err(|e| meta_err(path, format!("the fixtures are unreadable: {e}")))?;
    let row_counts: BTreeMap<String, i64> = serde_json::from_value(parse("row_counts")?)
        .map_err(|e| meta_err(path, format!("the row counts are unreadable: {e}")))?;
    let m = Metadata {
        format,
        format_version,
        tenant,
        fixtures,
        schema_version: int("schema_version")?,
        created_at: get("created_at")?,
        host: get("host")?,
        monkctl_version: get("monkctl_version")?,
        row_counts,
        checksum: get("checksum")?,
        source_backend: kv.get("source_backend").cloned(),
        postgres_columns: match kv.get("postgres_columns") {
            None => None,
            Some(v) => Some(serde_json::from_str(v).map_err(|e| {
                meta_err(
                    path,
                    format!("the key 'postgres_columns' is unreadable: {e}"),
                )
            })?),
        },
    };
    // Whatever the metadata says is checked before a restore could use it.
    names::tenant(&m.tenant.name)
        .map_err(|e| meta_err(path, format!("its tenant name is unusable: {e}")))?;
    check_id(&m.tenant.id)
        .map_err(|d| meta_err(path, format!("its tenant id is unusable: {d}")))?;
    if m.tenant.owner_id.is_empty() || m.tenant.owner_id.len() > 64 {
        return Err(meta_err(path, "its owner_id is empty or too long"));
    }
    for f in &m.fixtures {
        names::plain("fixture name", &f.fixture_name)
            .map_err(|e| meta_err(path, format!("a fixture name is unusable: {e}")))?;
    }
    check_archived_facts(conn, path, &m)?;
    let known = crate::core::fingerprint::algorithm(&m.checksum)
        .is_some_and(|a| Digest::for_tag(a).is_some());
    if !known {
        return Err(meta_err(path, format!("unknown checksum '{}'", m.checksum)));
    }
    Ok(m)
}

/// Where an archive's tenant schema stands against the deployment's migrations.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaStanding {
    /// The version its migration history (or, without one, its tables) shows.
    pub version: i64,
    /// True when the deployment's migrations have versions it lacks: restore with `--migrate`,
    /// or run `migrate up` for it after the restore.
    pub needs_migration: bool,
    /// Those versions.
    pub pending: Vec<i64>,
}

/// `standing` of the archive at `path`, which must agree with the version its metadata records.
pub(super) fn judged(path: &Path, set: &MigrationSet, recorded: i64) -> Result<SchemaStanding> {
    let s = standing(&db::open_immutable(path)?, path, set)?;
    if s.version != recorded {
        return Err(meta_err(
            path,
            format!(
                "its metadata says schema version {recorded}, but its content is at version {}",
                s.version
            ),
        ));
    }
    Ok(s)
}

/// Judges an archive's migration history against the deployment's set (`migrate::judge`): a
/// migration the set does not have, or has with other content, is exit 17.
pub(super) fn standing(
    conn: &Connection,
    path: &Path,
    set: &MigrationSet,
) -> Result<SchemaStanding> {
    let ins = migrate::judge(conn, path, set)?;
    Ok(SchemaStanding {
        version: ins.version,
        needs_migration: !ins.pending.is_empty(),
        pending: ins.pending,
    })
}

/// Every field of the archived registry row and fixtures against the registry's rules and the
/// archive's own content, so that what `verify` accepts a restore can store: the owner is a
/// user of the archived tenant, the status one the API knows, names and locations valid,
/// numbers in range, timestamps readable. The message names the field and what is wrong.
pub(super) fn check_archived_facts(conn: &Connection, path: &Path, m: &Metadata) -> Result<()> {
    check_archived_row(m).map_err(|d| meta_err(path, d))?;
    // The owner must be a user of the archived tenant (else the API has no one to let in, and
    // `doctor` would report `owner_missing` after the restore). A damaged page is corruption.
    let owner = conn
        .prepare("SELECT 1 FROM users WHERE id = ?1")
        .and_then(|mut st| st.exists([&m.tenant.owner_id]));
    match owner {
        Ok(true) => Ok(()),
        Ok(false) => Err(meta_err(
            path,
            format!(
                "owner_id {} is no user in the archived tenant's users table",
                m.tenant.owner_id
            ),
        )),
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ) =>
        {
            Err(Error::sqlite(path, e))
        }
        Err(e) => Err(meta_err(
            path,
            format!("the owner cannot be looked up in the archived tenant's users table: {e}"),
        )),
    }
}

/// The fields of the archived row and fixtures on their own (see `check_archived_facts`).
pub(super) fn check_archived_row(m: &Metadata) -> std::result::Result<(), String> {
    let t = &m.tenant;
    let shown = |v: &str| v.escape_debug().to_string();
    let expected = m.source_backend.as_deref().unwrap_or("sqlite");
    if !["sqlite", "postgresql"].contains(&expected) {
        return Err(format!(
            "source_backend '{}' is neither 'sqlite' nor 'postgresql'",
            shown(expected)
        ));
    }
    if t.db_type != expected {
        return Err(format!(
            "db_type '{}' is not '{expected}' (the backend the archive was made on)",
            shown(&t.db_type)
        ));
    }
    if !crate::core::registry::STATUSES.contains(&t.status.as_str()) {
        return Err(format!(
            "status '{}' is none of the API's statuses ({})",
            shown(&t.status),
            crate::core::registry::STATUSES.join(", ")
        ));
    }
    if t.template_version < 0 {
        return Err(format!(
            "template_version {} is negative",
            t.template_version
        ));
    }
    if let Some(st) = &t.source_template {
        names::plain("template name", st).map_err(|e| format!("source_template: {e}"))?;
    }
    if t.description.as_ref().is_some_and(|d| d.len() > 10_000) {
        return Err("description is longer than 10000 bytes".into());
    }
    names::path_component("tenants.database", &t.database)
        .map_err(|_| format!("database '{}' is not a plain name", shown(&t.database)))?;
    names::path_component("tenants.schema", &t.schema)
        .map_err(|_| format!("schema '{}' is not a plain name", shown(&t.schema)))?;
    check_id(&t.owner_id).map_err(|d| format!("owner_id: {d}"))?;
    let times = [
        ("created_at", Some(&t.created_at)),
        ("updated_at", Some(&t.updated_at)),
        ("trashed_at", t.trashed_at.as_ref()),
        ("deleted_at", t.deleted_at.as_ref()),
        ("the archive's created_at", Some(&m.created_at)),
    ];
    for (field, v) in times {
        if let Some(v) = v.filter(|v| ids::parse_timestamp(v).is_none()) {
            return Err(format!("{field} '{}' is not a timestamp", shown(v)));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for f in &m.fixtures {
        if !seen.insert(f.fixture_name.as_str()) {
            return Err(format!("fixture '{}' is listed twice", f.fixture_name));
        }
        if ids::parse_timestamp(&f.deployed_at).is_none() {
            return Err(format!(
                "fixture '{}': deployed_at '{}' is not a timestamp",
                f.fixture_name,
                shown(&f.deployed_at)
            ));
        }
        if let Some(v) = &f.version {
            if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
                return Err(format!(
                    "fixture '{}': version '{}' is empty, too long or holds control characters",
                    f.fixture_name,
                    shown(v)
                ));
            }
        }
    }
    for (key, v) in [("host", &m.host), ("monkctl_version", &m.monkctl_version)] {
        if v.len() > 255 || v.chars().any(char::is_control) {
            return Err(format!(
                "{key} '{}' is longer than 255 bytes or holds control characters",
                shown(v)
            ));
        }
    }
    if let Some((table, n)) = m.row_counts.iter().find(|(_, n)| **n < 0) {
        return Err(format!("row count of '{}' is negative ({n})", shown(table)));
    }
    Ok(())
}

/// A registry id from an archive: hex digits and hyphens (a UUID), as the API writes them.
pub(super) fn check_id(id: &str) -> std::result::Result<(), String> {
    if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        Ok(())
    } else {
        Err(format!("'{}' is not a UUID", id.escape_debug()))
    }
}

/// `archive inspect`: what a file holds, read without changing it.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// `null` when the file has no usable metadata; `metadata_error` says why.
    pub metadata: Option<Metadata>,
    pub metadata_error: Option<String>,
    /// Its schema against the deployment's migrations; `null` when it cannot be judged, and
    /// `schema_error` says why (a migration the deployment does not have, for one).
    pub schema: Option<SchemaStanding>,
    pub schema_error: Option<String>,
    pub tables: Vec<db::TableCount>,
}

/// `archive inspect`: reports what the file holds, problems included, and fails only when it is
/// not a readable SQLite file.
pub fn inspect(path: &Path, set: &MigrationSet) -> Result<Inspection> {
    check_header(path)?;
    let conn = db::open_immutable(path)?;
    let (metadata, metadata_error) = match read_metadata(&conn, path) {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let (schema, schema_error) = match standing(&conn, path, set) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut tables = db::table_counts(&conn).at(path)?;
    tables.retain(|t| t.table != META_TABLE);
    Ok(Inspection {
        size_bytes: fsutil::size_of(path).unwrap_or(0),
        path: path.to_path_buf(),
        metadata,
        metadata_error,
        schema,
        schema_error,
        tables,
    })
}

/// `archive verify`: every check passed.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub path: PathBuf,
    pub ok: bool,
    pub tenant: String,
    pub tenant_id: String,
    pub format_version: i64,
    pub schema_version: i64,
    /// True when the deployment's migrations have versions the archive lacks: restore it with
    /// `--migrate` (or run `migrate up` for it after the restore).
    pub needs_migration: bool,
    /// Those versions.
    pub pending_migrations: Vec<i64>,
    pub checksum: String,
    #[serde(rename = "row_count")]
    pub rows: i64,
    #[serde(rename = "table_count")]
    pub tables: usize,
    #[serde(skip)]
    pub metadata: Option<Metadata>,
}

/// Checks an archive: header (not SQLite → `NotArchive`, short → `Truncated`), metadata
/// (missing → `ArchiveMetadata`, newer → `Unsupported`), `PRAGMA integrity_check` (→ `Corrupt`),
/// then the row counts and content checksum (→ `ChecksumMismatch`). Never changes the file.
/// Last, its migration history against the deployment's set (`standing`: a migration the set
/// does not have → `Diverged`).
pub fn verify(path: &Path, set: &MigrationSet) -> Result<Verified> {
    let mut v = verify_file(path)?;
    let s = judged(path, set, v.schema_version)?;
    v.schema_version = s.version;
    v.needs_migration = s.needs_migration;
    v.pending_migrations = s.pending;
    Ok(v)
}

/// The checks of `verify` on the file alone: header, metadata, integrity and checksum.
pub(super) fn verify_file(path: &Path) -> Result<Verified> {
    check_header(path)?;
    let conn = db::open_immutable(path)?;
    let meta = read_metadata(&conn, path)?;
    verify_content(&conn, path, meta)
}

/// The checks of `verify` after the metadata was read: SQLite's integrity check and the content
/// checksum, on two connections side by side (the file never changes, so both read the same).
pub(super) fn verify_content(conn: &Connection, path: &Path, meta: Metadata) -> Result<Verified> {
    let second = db::open_immutable(path)?;
    let (problems, content) = std::thread::scope(|s| {
        let tag = crate::core::fingerprint::algorithm(&meta.checksum)
            .unwrap_or(CHECKSUM_ALGORITHM)
            .to_string();
        let sum = s.spawn(move || content_as(&second, path, &tag));
        let problems = (|| -> Result<Vec<String>> {
            let mut st = conn.prepare("PRAGMA integrity_check(20)").at(path)?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).at(path)?;
            rows.collect::<rusqlite::Result<_>>().at(path)
        })();
        let content = sum
            .join()
            .unwrap_or_else(|_| Err(Error::Other("computing the checksum failed".into())));
        (problems, content)
    });
    let problems = problems?;
    if problems.len() != 1 || problems[0] != "ok" {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!("integrity check: {}", problems.join("; ")),
        });
    }
    let content = content?;
    if content.row_counts != meta.row_counts {
        let diff: Vec<String> = meta
            .row_counts
            .keys()
            .chain(content.row_counts.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|t| meta.row_counts.get(*t) != content.row_counts.get(*t))
            .map(|t| {
                format!(
                    "{t}: recorded {}, found {}",
                    meta.row_counts.get(t).map_or("none".into(), i64::to_string),
                    content
                        .row_counts
                        .get(t)
                        .map_or("none".into(), i64::to_string)
                )
            })
            .collect();
        return Err(Error::ChecksumMismatch {
            path: path.to_path_buf(),
            detail: format!("row counts differ: {}", diff.join(", ")),
        });
    }
    if content.checksum != meta.checksum {
        return Err(Error::ChecksumMismatch {
            path: path.to_path_buf(),
            detail: format!("recorded {}, computed {}", meta.checksum, content.checksum),
        });
    }
    Ok(Verified {
        path: path.to_path_buf(),
        ok: true,
        tenant: meta.tenant.name.clone(),
        tenant_id: meta.tenant.id.clone(),
        format_version: meta.format_version,
        schema_version: meta.schema_version,
        needs_migration: false,
        pending_migrations: Vec::new(),
        checksum: content.checksum,
        rows: content.row_counts.values().sum(),
        tables: content.row_counts.len(),
        metadata: Some(meta),
    })
}

/// A line of `archive list`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// `null` when the file has no usable metadata; `error` says why.
    pub tenant: Option<String>,
    pub tenant_id: Option<String>,
    /// When the archive was made.
    pub created_at: Option<String>,
    pub format_version: Option<i64>,
    pub schema_version: Option<i64>,
    /// With `--verify`: whether every check of `archive verify` passed; `null` when not checked.
    pub verified: Option<bool>,
    pub error: Option<String>,
}

/// `archive list DIR`: every `*.monk.db` in `dir` (not below it), by name, with what its
/// metadata says; with `verify`, each fully verified against the deployment's `set` as `archive
/// verify` does. A file that fails is listed with its error, never stops the listing. Reads
/// only.
pub fn list(dir: &Path, verify_each: bool, set: &MigrationSet) -> Result<Vec<Listed>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .at(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(SUFFIX) && !n.starts_with('.'))
        })
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let mut l = Listed {
                size_bytes: fsutil::size_of(&path).unwrap_or(0),
                path: path.clone(),
                tenant: None,
                tenant_id: None,
                created_at: None,
                format_version: None,
                schema_version: None,
                verified: None,
                error: None,
            };
            match metadata_of(&path) {
                Ok(m) => {
                    l.tenant = Some(m.tenant.name);
                    l.tenant_id = Some(m.tenant.id);
                    l.created_at = Some(m.created_at);
                    l.format_version = Some(m.format_version);
                    l.schema_version = Some(m.schema_version);
                }
                Err(e) => l.error = Some(e.to_string()),
            }
            if verify_each && l.error.is_none() {
                match verify(&path, set) {
                    Ok(_) => l.verified = Some(true),
                    Err(e) => {
                        l.verified = Some(false);
                        l.error = Some(e.to_string());
                    }
                }
            }
            l
        })
        .collect())
}

/// The metadata of an archive, checked only as far as reading it (for planning a restore).
pub fn metadata_of(path: &Path) -> Result<Metadata> {
    check_header(path)?;
    let conn = db::open_immutable(path)?;
    read_metadata(&conn, path)
}
