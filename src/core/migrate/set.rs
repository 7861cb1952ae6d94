//! The tenant migration set: built-in and operator files, per-backend halves, refinery
//! checksums; building a tenant's schema at a version.

use super::*;

/// One tenant migration: embedded or from the operator's directory.
#[derive(Debug, Clone)]
pub struct Mig {
    pub version: i64,
    pub name: String,
    /// Where it comes from, for messages: a path, or `built-in V1__x.sql`.
    pub file: String,
    pub sql: String,
    /// refinery's checksum of name, version and SQL.
    pub checksum: u64,
    /// The body run on PostgreSQL: the same SQL for `V<n>__<name>.sql`, the `.postgres.sql`
    /// file's for a pair, empty (recorded, nothing run) for a `.sqlite.sql` alone.
    pub pg_sql: String,
    /// refinery's checksum of name, version and `pg_sql`, as a PostgreSQL history records it.
    pub pg_checksum: u64,
}

/// Which backends a migration file is for: `V<n>__<name>.sql` (both), `.sqlite.sql` or
/// `.postgres.sql` (that one; the other records the version without running anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForBackend {
    Both,
    Sqlite,
    Postgres,
}

/// Whether a migration read so far is one backend's half of a pair that a file for `other`
/// completes: it came from one `.sqlite.sql` or `.postgres.sql` file and `other` is the other.
pub(super) fn pair_half(m: &Mig, other: ForBackend) -> bool {
    match other {
        ForBackend::Postgres => m.file.ends_with(".sqlite.sql") && m.pg_sql.is_empty(),
        ForBackend::Sqlite => m.file.ends_with(".postgres.sql") && m.sql.is_empty(),
        ForBackend::Both => false,
    }
}

/// refinery's checksum of a migration named `V<version>__<name>` with this SQL.
pub(super) fn refinery_checksum(version: i64, name: &str, sql: &str) -> Result<u64> {
    refinery::Migration::unapplied(&format!("V{version}__{name}"), sql)
        .map(|m| m.checksum())
        .map_err(|e| Error::Usage(format!("V{version}__{name}: {e}")))
}

/// The ordered tenant migrations of this run.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    pub migs: Vec<Mig>,
    /// The operator directory, when there is one.
    pub dir: Option<PathBuf>,
}

/// `V<version>__<name>.sql` with a positive version that fits refinery's 32-bit versions and a
/// name of ASCII letters, digits and `_`.
pub fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    parse_file_name_for(name).map(|(v, n, _)| (v, n))
}

/// `parse_file_name`, with the backend a `.sqlite.sql` or `.postgres.sql` file is for.
pub fn parse_file_name_for(name: &str) -> Option<(i64, &str, ForBackend)> {
    let (name, backend) = if let Some(n) = name.strip_suffix(".postgres.sql") {
        (n, ForBackend::Postgres)
    } else if let Some(n) = name.strip_suffix(".sqlite.sql") {
        (n, ForBackend::Sqlite)
    } else {
        (name.strip_suffix(".sql")?, ForBackend::Both)
    };
    let (v, n) = parse_stem(name.strip_prefix('V')?)?;
    Some((v, n, backend))
}

pub(super) fn parse_stem(stem: &str) -> Option<(i64, &str)> {
    let (num, nm) = stem.split_once("__")?;
    if num.is_empty()
        || !num.bytes().all(|b| b.is_ascii_digit())
        || nm.is_empty()
        || !nm.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    let v: i32 = num.parse().ok()?;
    (v >= 1).then_some((i64::from(v), nm))
}

impl MigrationSet {
    /// The embedded migrations plus every file of `dir`. Every file there must be a migration
    /// (refinery would skip a misnamed one silently; this refuses it), versions must be unique,
    /// files regular (no symbolic link, FIFO or device), UTF-8 without NUL bytes. Reads only.
    pub fn load(dir: Option<&Path>) -> Result<MigrationSet> {
        let mut migs: Vec<Mig> = schema::tenant_migrations()
            .into_iter()
            .map(|m| {
                let version = i64::from(m.version());
                // The API's baseline has a body of its own on PostgreSQL.
                let pg_sql = if version == schema::BASELINE_VERSION {
                    crate::core::backend::postgres::SYSTEM_SQL.to_string()
                } else {
                    m.sql().unwrap_or_default().to_string()
                };
                Mig {
                    version,
                    name: m.name().to_string(),
                    file: format!("built-in V{}__{}.sql", m.version(), m.name()),
                    sql: m.sql().unwrap_or_default().to_string(),
                    checksum: m.checksum(),
                    pg_checksum: refinery_checksum(version, m.name(), &pg_sql)
                        .expect("a built-in migration has a valid name"),
                    pg_sql,
                }
            })
            .collect();
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(Error::FileNotFound {
                    what: "migrations directory",
                    path: dir.to_path_buf(),
                    hint: "check --migrations, MONK_MIGRATIONS_DIR or migrations_dir in the config file".into(),
                });
            }
            let mut paths: Vec<PathBuf> = fs::read_dir(dir)
                .at(dir)?
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()
                .at(dir)?;
            paths.sort();
            for p in paths {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Looked at without following a link: a linked file or directory is refused
                // (`guard::read_source`), a FIFO or device never opened.
                let meta = fs::symlink_metadata(&p).at(&p)?;
                if meta.is_dir() {
                    return Err(Error::Usage(format!(
                        "{}: is a directory; the migrations directory is read flat: move its files up or the directory elsewhere",
                        p.display()
                    )));
                }
                let Some((version, nm, backend)) = parse_file_name_for(&name) else {
                    return Err(Error::Usage(format!(
                        "{}: not a migration file name: every file in {} must be named V<version>__<name>.sql (or .sqlite.sql / .postgres.sql for one backend; version a positive number, name of letters, digits and _), otherwise refinery would skip it silently; rename it or move it out",
                        p.display(),
                        dir.display()
                    )));
                };
                guard::check_regular(&p, &meta)?;
                let sql = guard::read_source(&p)?;
                let file = p.display().to_string();
                match migs.iter_mut().find(|m| m.version == version) {
                    // The other backend's half of a pair `V<n>__<name>.sqlite.sql` +
                    // `V<n>__<name>.postgres.sql`.
                    Some(m)
                        if m.name == nm
                            && !m.file.starts_with("built-in")
                            && pair_half(m, backend) =>
                    {
                        match backend {
                            ForBackend::Postgres => {
                                m.pg_checksum = refinery_checksum(version, nm, &sql)?;
                                m.pg_sql = sql;
                            }
                            _ => {
                                m.checksum = refinery_checksum(version, nm, &sql)?;
                                m.sql = sql;
                            }
                        }
                        m.file = format!("{} + {file}", m.file);
                    }
                    Some(other) => {
                        return Err(Error::Usage(format!(
                            "{}: version {version} is also used by {}; every migration needs its own version (a pair for both backends is V{version}__{nm}.sqlite.sql and V{version}__{nm}.postgres.sql)",
                            p.display(),
                            other.file
                        )))
                    }
                    None => {
                        let (lite, pg) = match backend {
                            ForBackend::Both => (sql.clone(), sql),
                            ForBackend::Sqlite => (sql, String::new()),
                            ForBackend::Postgres => (String::new(), sql),
                        };
                        migs.push(Mig {
                            version,
                            name: nm.to_string(),
                            checksum: refinery_checksum(version, nm, &lite)?,
                            pg_checksum: refinery_checksum(version, nm, &pg)?,
                            file,
                            sql: lite,
                            pg_sql: pg,
                        });
                    }
                }
            }
        }
        migs.sort_by_key(|m| m.version);
        Ok(MigrationSet {
            migs,
            dir: dir.map(Path::to_path_buf),
        })
    }

    /// Executes the deployment's tenant schema into a database being built, inside the caller's
    /// open transaction: the `system` fixture (the API's baseline, V1), then every later
    /// migration of the set, each recorded in the database's migration history as `migrate up`
    /// records it. A tenant, template or scratch copy built this way is at `latest()`, and
    /// `migrate status` finds nothing to adopt or run. Returns the version.
    /// The operator's migrations pass the guard as in `migrate up` (`limit` per statement).
    pub fn execute_schema(
        &self,
        conn: &mut Connection,
        path: &Path,
        limit: Duration,
    ) -> Result<i64> {
        self.execute_schema_to(conn, path, self.latest(), limit)
    }

    /// `execute_schema` up to `version` (the reference schema of a tenant at that version).
    pub fn execute_schema_to(
        &self,
        conn: &mut Connection,
        path: &Path,
        version: i64,
        limit: Duration,
    ) -> Result<i64> {
        conn.execute_batch(system::SYSTEM_SQL).at(path)?;
        conn.execute_batch(HISTORY_DDL).at(path)?;
        let g = guard::install(conn, guard::Kind::Migration, limit).at(path)?;
        let run = || -> Result<()> {
            for m in self.migs.iter().take_while(|m| m.version <= version) {
                if m.version > schema::BASELINE_VERSION {
                    run_statements(conn, &g, path, m, schema::BASELINE_VERSION)?;
                }
                record_applied(conn, path, m)?;
            }
            Ok(())
        };
        let r = run();
        g.remove(conn).at(path)?;
        r.map(|_| version.max(schema::BASELINE_VERSION))
    }

    /// The built-in migrations alone: for code that has no deployment (tests, benchmarks).
    pub fn builtin() -> MigrationSet {
        MigrationSet::load(None).expect("the built-in migrations load")
    }

    /// Where the set's migrations come from, for messages.
    pub fn origin(&self) -> String {
        match &self.dir {
            Some(d) => format!("the built-in migrations and {}", d.display()),
            None => "the built-in migrations (no --migrations directory is set)".to_string(),
        }
    }

    /// The set as a survey's head lists it.
    pub fn infos(&self) -> Vec<MigInfo> {
        self.migs
            .iter()
            .map(|m| MigInfo {
                version: m.version,
                name: m.name.clone(),
                file: m.file.clone(),
            })
            .collect()
    }

    pub fn latest(&self) -> i64 {
        self.migs.last().map(|m| m.version).unwrap_or(0)
    }

    pub fn get(&self, version: i64) -> Option<&Mig> {
        self.migs.iter().find(|m| m.version == version)
    }

    /// The target version: `--target N` must name a migration of the set.
    pub fn target(&self, target: Option<i64>) -> Result<i64> {
        match target {
            None => Ok(self.latest()),
            Some(n) if self.get(n).is_some() => Ok(n),
            Some(n) => Err(Error::Usage(format!(
                "--target {n}: there is no migration V{n}; known versions are {}",
                self.migs
                    .iter()
                    .map(|m| m.version.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// A row of a tenant's `refinery_schema_history`.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub(crate) version: i64,
    pub(crate) name: String,
    pub(crate) checksum: String,
}
