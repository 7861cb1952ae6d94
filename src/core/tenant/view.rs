//! `tenant list` and `tenant show`.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Name,
    Created,
    Status,
    Size,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only these statuses (any when empty).
    pub statuses: Vec<String>,
    pub include_trashed: bool,
    pub include_deleted: bool,
    pub sort: SortKey,
    pub reverse: bool,
}

/// One line of `tenant list`.
#[derive(Debug, Clone, Serialize)]
pub struct TenantSummary {
    pub id: String,
    pub name: String,
    pub status: String,
    pub owner_id: String,
    pub description: Option<String>,
    #[serde(serialize_with = "crate::core::ids::serialize_iso")]
    pub created_at: String,
    #[serde(serialize_with = "crate::core::ids::serialize_opt_iso")]
    pub trashed_at: Option<String>,
    #[serde(serialize_with = "crate::core::ids::serialize_opt_iso")]
    pub deleted_at: Option<String>,
    pub path: Option<PathBuf>,
    /// Size of the database file (not its WAL); `null` when the file is missing.
    pub size_bytes: Option<u64>,
    pub fixtures: Vec<DeployedFixture>,
}

/// Lists tenants. Trashed and deleted ones only on request.
pub fn list(ws: &Workspace, filter: &ListFilter) -> Result<Vec<TenantSummary>> {
    let (rows, fixtures, mut measure): (_, _, Measure) = match ws.store()? {
        Store::Postgres(mut reg) => {
            let (rows, fixtures) = (reg.all()?, reg.all_fixtures()?);
            let sizes = reg.schema_sizes()?;
            // A SQLite tenant of the registry: its file, when `--sqlite-data-dir` says where.
            let files = ws.sqlite_files.clone();
            (
                rows,
                fixtures,
                Box::new(move |t: &TenantRow| {
                    if t.db_type == "sqlite" {
                        let path = files.as_ref().and_then(|l| file_of(l, t).ok());
                        let size = path.as_deref().and_then(fsutil::size_of);
                        return (path, size);
                    }
                    (None, sizes.get(&t.schema).copied())
                }),
            )
        }
        Store::Sqlite(reg) => {
            let (rows, fixtures, sizes) = sqlite_rows_and_sizes(ws, &reg)?;
            let layout = ws.layout.clone();
            let mut sizes = sizes;
            (
                rows,
                fixtures,
                Box::new(move |t: &TenantRow| located_size(&layout, t, &mut sizes)),
            )
        }
    };
    summarize(rows, fixtures, filter, &mut *measure)
}

/// Where a tenant is and its size: a file and its bytes, or (PostgreSQL) no path and the bytes
/// of its schema's tables.
pub(super) type Located = (Option<PathBuf>, Option<u64>);

/// Finds where each listed tenant is and its size.
pub(super) type Measure = Box<dyn FnMut(&TenantRow) -> Located>;

/// The registry's rows and fixtures, with the sizes of the files of the directory most tenants
/// live in, measured while the registry is read.
#[allow(clippy::type_complexity)]
pub(super) fn sqlite_rows_and_sizes(
    ws: &Workspace,
    reg: &Registry,
) -> Result<(
    Vec<TenantRow>,
    std::collections::HashMap<String, Vec<FixtureRow>>,
    fsutil::DirSizes,
)> {
    // Most tenants live in one directory: measure its files while the registry is read.
    let main_dir = ws.layout.new_tenant_database().to_string();
    let scan_path = ws.layout.data_dir.join(&main_dir);
    let (rows, fixtures, scanned) = std::thread::scope(|s| {
        let scan = s.spawn(|| fsutil::scan_sizes(&scan_path));
        let rows = reg.all();
        let fixtures = reg.all_fixtures();
        (rows, fixtures, scan.join().unwrap_or_default())
    });
    let (rows, fixtures) = (rows?, fixtures?);
    let mut sizes = fsutil::DirSizes::default();
    sizes.insert(&main_dir, scanned);
    Ok((rows, fixtures, sizes))
}

/// The rule of `tenant list`, the same on every backend: which rows, what each line says, order.
pub(super) fn summarize(
    rows: Vec<TenantRow>,
    mut fixtures: std::collections::HashMap<String, Vec<FixtureRow>>,
    filter: &ListFilter,
    measure: &mut dyn FnMut(&TenantRow) -> Located,
) -> Result<Vec<TenantSummary>> {
    let wanted = |t: &TenantRow| {
        let status_ok = filter.statuses.is_empty() || filter.statuses.contains(&t.status);
        let named_deleted = filter.statuses.iter().any(|s| s == "deleted");
        let deleted_ok = !t.is_deleted() || filter.include_deleted || named_deleted;
        let trashed_ok = !t.is_trashed() || filter.include_trashed;
        status_ok && deleted_ok && trashed_ok
    };
    let mut out: Vec<TenantSummary> = rows
        .into_iter()
        .filter(wanted)
        .map(|t| {
            let (path, size_bytes) = measure(&t);
            let deployed = if fixtures.is_empty() {
                None
            } else {
                fixtures.remove(&t.id)
            };
            TenantSummary {
                fixtures: deployed
                    .unwrap_or_default()
                    .into_iter()
                    .map(DeployedFixture::from)
                    .collect(),
                id: t.id,
                name: t.name,
                status: t.status,
                owner_id: t.owner_id,
                description: t.description,
                created_at: t.created_at,
                trashed_at: t.trashed_at,
                deleted_at: t.deleted_at,
                path,
                size_bytes,
            }
        })
        .collect();
    match filter.sort {
        SortKey::Name => {}
        SortKey::Created => out.sort_by_key(|t| ids::parse_timestamp_ms(&t.created_at)),
        SortKey::Status => out.sort_by(|a, b| a.status.cmp(&b.status)),
        SortKey::Size => out.sort_by_key(|t| t.size_bytes),
    }
    if filter.reverse {
        out.reverse();
    }
    Ok(out)
}

/// A tenant's current file and its size, from one directory scan per directory (see `file_of`).
pub(super) fn located_size(
    layout: &Layout,
    t: &TenantRow,
    sizes: &mut fsutil::DirSizes,
) -> (Option<PathBuf>, Option<u64>) {
    if names::path_component("tenants.database", &t.database).is_err()
        || names::path_component("tenants.schema", &t.schema).is_err()
    {
        return (None, None);
    }
    let live_name = format!("{}.db", t.schema);
    let live = sizes.get(&layout.data_dir, &t.database, &live_name);
    if live.is_some() || !t.is_deleted() {
        let path = layout.data_dir.join(&t.database).join(live_name);
        return (Some(path), live);
    }
    match layout.trash_path(&t.schema, &t.id) {
        Ok(p) => {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let size = name.and_then(|n| sizes.get(&layout.data_dir, "trash", &n));
            (Some(p), size)
        }
        Err(_) => (None, None),
    }
}

/// Where a tenant's database file is now: its live path, or its trash path once deleted.
pub fn file_of(layout: &Layout, t: &TenantRow) -> Result<PathBuf> {
    let live = layout.tenant_path(&t.database, &t.schema)?;
    if t.is_deleted() && !live.exists() {
        return layout.trash_path(&t.schema, &t.id);
    }
    Ok(live)
}

pub use crate::core::db::TableCount;

/// `tenant show`: the row, the file, and what the file holds.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: TenantRow,
    /// The database file; `null` on PostgreSQL, where the tenant is its `schema`.
    pub path: Option<PathBuf>,
    /// Whether the file (on PostgreSQL, the schema) exists.
    pub file_exists: bool,
    pub size_bytes: Option<u64>,
    pub wal_bytes: Option<u64>,
    /// The owner's name in the tenant's `users` table, when the file can be read.
    pub owner_name: Option<String>,
    pub tables: Vec<TableCount>,
    pub fixtures: Vec<DeployedFixture>,
    /// Why the file's content could not be read, if it could not.
    pub file_error: Option<String>,
    /// A deleted tenant whose trash copy `tenant purge` removed: there is no file to read.
    pub purged: bool,
}

pub fn show(ws: &Workspace, name: &str) -> Result<TenantDetail> {
    names::tenant(name)?;
    let mut store = ws.store()?;
    let tenant = store.get(name)?;
    let fixtures = store.fixtures_of(&tenant.id)?;
    let sqlite_tenant = tenant.db_type == "sqlite";
    let (path, file_exists, size_bytes, wal_bytes, content) = match &mut store {
        Store::Postgres(reg) if !sqlite_tenant => {
            let exists = reg.schema_exists(&tenant.schema)?;
            let size = if exists {
                reg.schema_sizes()?.get(&tenant.schema).copied()
            } else {
                None
            };
            let content = exists.then(|| reg.read_content(&tenant.schema, &tenant.owner_id));
            (None, exists, size, None, content)
        }
        // Without `--sqlite-data-dir`, a SQLite tenant of a PostgreSQL registry is shown from
        // its row, and the detail says which setting finds its file.
        Store::Postgres(_) if ws.sqlite_files.is_none() => (
            None,
            false,
            None,
            None,
            Some(Err(ws.sqlite_layout().err().unwrap_or_else(|| {
                Error::Other("no SQLite data directory".into())
            }))),
        ),
        _ => {
            let path = ws.sqlite_file_of(&tenant)?;
            let exists = path.exists();
            let content = exists.then(|| read_content(&path, &tenant.owner_id));
            (
                Some(path.clone()),
                exists,
                fsutil::size_of(&path),
                fsutil::size_of(&fsutil::with_suffix(&path, "-wal")),
                content,
            )
        }
    };
    let (mut owner_name, mut tables, mut file_error) = (None, Vec::new(), None);
    match content {
        Some(Ok((o, t))) => {
            owner_name = o;
            tables = t;
        }
        Some(Err(e)) => file_error = Some(e.to_string()),
        None if !tenant.is_deleted() => {
            file_error = Some(match &path {
                Some(p) => format!(
                    "the file is missing: {} (run `monkctl doctor`)",
                    p.display()
                ),
                None => format!(
                    "the schema {} is missing (run `monkctl doctor`)",
                    tenant.schema
                ),
            })
        }
        None => {}
    }
    // A deleted tenant whose trash copy (schema) is gone was purged: nothing is left to read.
    let purged = tenant.is_deleted() && !file_exists;
    Ok(TenantDetail {
        size_bytes,
        wal_bytes,
        tenant,
        path,
        file_exists,
        purged,
        owner_name,
        tables,
        fixtures: fixtures.into_iter().map(DeployedFixture::from).collect(),
        file_error,
    })
}

/// Reads a tenant file without writing to it: the owner's name and row counts per table.
pub(super) fn read_content(
    path: &Path,
    owner_id: &str,
) -> Result<(Option<String>, Vec<TableCount>)> {
    db::read_quietly(path, |conn, path| {
        let tables = db::table_counts(conn).at(path)?;
        let owner = conn
            .query_row("SELECT name FROM users WHERE id = ?1", [owner_id], |r| {
                r.get(0)
            })
            .ok();
        Ok((owner, tables))
    })
}
