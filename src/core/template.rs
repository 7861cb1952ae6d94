//! Templates: prebuilt tenant databases that new tenants are cloned from instead of replaying SQL.
//!
//! Owns `<data>/templates/NAME.db` (a single-file tenant database: WAL in its header, no `-wal`
//! beside it, vacuumed) and its sidecar `<data>/templates/NAME.toml` (what it holds and its
//! checksum). Builds happen in private temporary files beside the final names, synced, then
//! renamed, under a per-template lock in `<data>/locks/`. Cloning verifies the checksum once, then
//! writes the verified bytes into a new private file and applies the per-tenant parts through
//! SQLite; placing the clone and registering it is `tenant::create_one`'s job. The built-in
//! `system` template is (re)built on first use when the binary's `system` fixture changed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::db;
use super::error::{Context, Error, Result};
use super::fixture::{self, FixtureVersion, Loaded};
use super::fsutil;
use super::guard;
use super::ids;
use super::layout::Layout;
use super::migrate::MigrationSet;
use super::names;
use super::schema;
use super::system;
use super::tenant::{Built, CreateSpec};
use super::Workspace;

/// The built-in template: the `system` fixture alone.
pub const SYSTEM: &str = "system";

/// Tables whose ids the API generates per tenant (`monk_uuid()` in the system fixture): a clone
/// gets fresh ones, and every foreign key that points at them is rewritten to match.
pub const FRESH_ID_TABLES: [&str; 3] = ["models", "fields", "fs"];

/// What a template holds, kept in its sidecar `NAME.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub name: String,
    /// 1 for the first build, one more at each rebuild; new tenants get it as `template_version`.
    pub generation: i64,
    pub built_at: String,
    /// The tenant schema version of the template database.
    pub schema_version: i64,
    /// The migrations it was built with, `V<version>:<checksum>` each (`set_fingerprint`);
    /// empty in sidecars written before monkctl recorded them.
    #[serde(default)]
    pub migrations: Vec<String>,
    /// `fixture::checksum_hex` of the whole `.db` file.
    pub checksum: String,
    pub size_bytes: u64,
    /// The version (checksum) of the `system` fixture the template was built from.
    pub system_version: String,
    /// Fixtures besides `system`, in the order they were applied.
    pub fixtures: Vec<FixtureVersion>,
}

/// A line of `template list` / the result of `template show`.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub name: String,
    pub path: PathBuf,
    pub meta: Option<Meta>,
    /// `template show` only: whether the file matches its recorded checksum.
    pub checksum_ok: Option<bool>,
    pub error: Option<String>,
}

fn paths(layout: &Layout, name: &str) -> (PathBuf, PathBuf) {
    let dir = layout.templates_dir();
    (
        dir.join(format!("{name}.db")),
        dir.join(format!("{name}.toml")),
    )
}

/// Holds the per-template lock (`Layout::template_lock`) until dropped, waiting for another
/// process's build of that template to finish.
fn lock(layout: &Layout, name: &str) -> Result<crate::core::lock::Lock> {
    crate::core::lock::Lock::wait(
        &layout.template_lock(name),
        &format!("monkctl: template {name}"),
    )
}

fn read_meta(path: &Path) -> Result<Option<Meta>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    toml::from_str(&text).map(Some).map_err(|e| Error::TemplateDamaged {
        path: path.to_path_buf(),
        detail: format!(
            "the template's metadata cannot be read ({}); rebuild it with `monkctl template build NAME --fixture ...`",
            e.message().trim()
        ),
    })
}

/// `template build NAME --fixture F...`: `system` plus the fixtures (and their dependencies).
pub fn build(
    ws: &Workspace,
    fixtures_dir: &Path,
    name: &str,
    wanted: &[String],
    limit: Duration,
) -> Result<Meta> {
    names::plain("template name", name)?;
    if name == SYSTEM && !wanted.is_empty() {
        return Err(Error::Usage(
            "the 'system' template holds the system fixture alone; choose another name for a template with fixtures".into(),
        ));
    }
    if let super::Backend::Postgres(t) = &ws.backend {
        return build_recipe(ws, t, fixtures_dir, name, wanted, limit);
    }
    let loaded = fixture::prepare(fixtures_dir, wanted, limit)?;
    let set = ws.migration_set()?;
    let _lock = lock(&ws.layout, name)?;
    build_locked(&ws.layout, set, name, &loaded, limit)
}

fn build_locked(
    layout: &Layout,
    set: &MigrationSet,
    name: &str,
    loaded: &[Loaded],
    limit: Duration,
) -> Result<Meta> {
    let (db_path, meta_path) = paths(layout, name);
    fsutil::create_private_dir(&layout.templates_dir())?;
    let previous = read_meta(&meta_path).ok().flatten();
    let tmp = fsutil::temp_beside(&db_path);
    let guard = fsutil::TempFile(Some(tmp.clone()));
    // The file is a private temporary one: errors name the template, not it.
    let execute = || -> Result<i64> {
        let mut conn = db::open_build(&tmp)?;
        // A private file being built: an error discards it, so no rollback is needed.
        conn.execute_batch("BEGIN").at(&tmp)?;
        set.execute_schema(&mut conn, &tmp, limit)?;
        let plan: Vec<&Loaded> = loaded.iter().collect();
        fixture::apply_guarded(&mut conn, &tmp, &plan, limit, &mut |e| Err(e))?;
        fixture::record_in(&conn, &tmp, &plan, &[])?;
        fixture::commit(&conn, &tmp)?;
        conn.execute_batch("VACUUM").at(&tmp)?;
        let schema_version = schema::tenant_version(&conn).at(&tmp)?;
        db::finish_build(conn, &tmp)?;
        Ok(schema_version)
    };
    let schema_version = execute().map_err(|e| e.renamed(&tmp, &format!("template '{name}'")))?;
    fsutil::sync_file(&tmp)?;
    let bytes = fs::read(&tmp).at(&tmp)?;
    let meta = Meta {
        name: name.to_string(),
        generation: previous.map(|m| m.generation + 1).unwrap_or(1),
        built_at: ids::now_iso(),
        schema_version,
        migrations: set_fingerprint(set),
        checksum: fixture::checksum_hex(&bytes),
        size_bytes: bytes.len() as u64,
        system_version: fixture::system_version(),
        fixtures: loaded
            .iter()
            .map(|l| FixtureVersion {
                name: l.fixture.name.clone(),
                version: l.fixture.version.clone(),
            })
            .collect(),
    };
    let text = toml::to_string(&meta).map_err(|e| Error::Other(e.to_string()))?;
    let tmp_meta = fsutil::temp_beside(&meta_path);
    let meta_guard = fsutil::TempFile(Some(tmp_meta.clone()));
    let mut f = fsutil::create_private_file(&tmp_meta)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .at(&tmp_meta)?;
    // Two files cannot be renamed at once, so the new sidecar is first put in place as
    // `NAME.toml.pending` (made durable before the database moves), then the database, then the
    // sidecar. A crash between the renames leaves the new database with a pending sidecar that
    // matches it, and `recover` (run by every clone under the lock) finishes the build; a crash
    // before the database rename leaves the old pair intact and a stale pending file, which the
    // next build replaces. Anything else that makes the files disagree is damage: `load`
    // rebuilds the `system` template (derived data) and refuses a user template (exit 6) with
    // the `template build` command that rebuilds it.
    let pending = pending_path(&meta_path);
    fs::rename(&tmp_meta, &pending).at(&pending)?;
    fsutil::sync_dir(&layout.templates_dir())?;
    fs::rename(&tmp, &db_path).at(&db_path)?;
    fs::rename(&pending, &meta_path).at(&meta_path)?;
    fsutil::sync_dir(&layout.templates_dir())?;
    drop(guard);
    drop(meta_guard);
    Ok(meta)
}

/// The file a PostgreSQL template keeps beside its sidecar: the fixtures it froze, parsed.
const RECIPE_SUFFIX: &str = "pgrecipe.json";

/// `(content, sidecar)`: `NAME.db` on SQLite, `NAME.pgrecipe.json` on PostgreSQL, and `NAME.toml`.
fn paths_for(ws: &Workspace, name: &str) -> (PathBuf, PathBuf) {
    let (db, meta) = paths(&ws.layout, name);
    match ws.backend {
        super::Backend::Sqlite => (db, meta),
        super::Backend::Postgres(_) => (
            ws.layout
                .templates_dir()
                .join(format!("{name}.{RECIPE_SUFFIX}")),
            meta,
        ),
    }
}

/// `template build` on PostgreSQL. A schema cannot be cloned like a file, so a template is its
/// recipe: the fixtures (with their dependencies) read, parsed and frozen in
/// `NAME.pgrecipe.json`, after a trial run on a scratch tenant schema in a transaction that is
/// rolled back. `tenant create --template` replays the frozen fixtures in each new tenant's
/// transaction: the fixtures directory may change afterwards, the template does not.
fn build_recipe(
    ws: &Workspace,
    target: &super::backend::postgres::Target,
    fixtures_dir: &Path,
    name: &str,
    wanted: &[String],
    limit: Duration,
) -> Result<Meta> {
    let loaded = fixture::prepare_postgres(fixtures_dir, wanted)?;
    let set = ws.migration_set()?;
    fixture::postgres::trial(target, &loaded, set, limit)
        .map_err(|e| e.renamed(Path::new("<scratch>"), &format!("template '{name}'")))?;
    let _lock = lock(&ws.layout, name)?;
    let (recipe_path, meta_path) = paths_for(ws, name);
    fsutil::create_private_dir(&ws.layout.templates_dir())?;
    let previous = read_meta(&meta_path).ok().flatten();
    let bytes = serde_json::to_vec(&loaded).map_err(|e| Error::Other(e.to_string()))?;
    let meta = Meta {
        name: name.to_string(),
        generation: previous.map(|m| m.generation + 1).unwrap_or(1),
        built_at: ids::now_iso(),
        schema_version: set.latest(),
        migrations: set_fingerprint(set),
        checksum: fixture::checksum_hex(&bytes),
        size_bytes: bytes.len() as u64,
        system_version: super::backend::postgres::system_version(),
        fixtures: loaded
            .iter()
            .map(|l| FixtureVersion {
                name: l.fixture.name.clone(),
                version: l.fixture.version.clone(),
            })
            .collect(),
    };
    let text = toml::to_string(&meta).map_err(|e| Error::Other(e.to_string()))?;
    // The recipe, then its sidecar, each written beside, synced and renamed; a crash between the
    // two leaves a sidecar whose checksum the new recipe does not match: exit 6 with the
    // command that builds it again.
    for (path, content) in [
        (&recipe_path, bytes.as_slice()),
        (&meta_path, text.as_bytes()),
    ] {
        let tmp = fsutil::temp_beside(path);
        let guard = fsutil::TempFile(Some(tmp.clone()));
        let mut f = fsutil::create_private_file(&tmp)?;
        f.write_all(content).and_then(|_| f.sync_all()).at(&tmp)?;
        fs::rename(&tmp, path).at(path)?;
        drop(guard);
    }
    fsutil::sync_dir(&ws.layout.templates_dir())?;
    Ok(meta)
}

/// `load` on PostgreSQL: the frozen fixtures of a template, checked against their checksum and
/// the deployment's migrations; `system` is the API's tenant alone (nothing to replay).
fn load_recipe(ws: &Workspace, name: &str) -> Result<Image> {
    let set = ws.migration_set()?;
    let (recipe_path, meta_path) = paths_for(ws, name);
    if name == SYSTEM {
        return Ok(Image {
            meta: Meta {
                name: SYSTEM.into(),
                generation: 1,
                built_at: String::new(),
                schema_version: set.latest(),
                migrations: set_fingerprint(set),
                checksum: String::new(),
                size_bytes: 0,
                system_version: super::backend::postgres::system_version(),
                fixtures: Vec::new(),
            },
            bytes: Vec::new(),
            loaded: Vec::new(),
        });
    }
    if !recipe_path.exists() && !meta_path.exists() {
        return Err(not_found(recipe_path, name));
    }
    let _lock = lock(&ws.layout, name)?;
    let meta = read_meta(&meta_path)?.ok_or_else(|| not_found(recipe_path.clone(), name))?;
    refuse_stale(
        &meta,
        stale_against(&meta, set, super::backend::postgres::SYSTEM_SQL),
    )?;
    let damaged = |detail: String| {
        let fixtures: String = meta
            .fixtures
            .iter()
            .map(|f| format!(" --fixture {}", f.name))
            .collect();
        Error::TemplateDamaged {
            path: recipe_path.clone(),
            detail: format!("{detail}; rebuild it with `monkctl template build {name}{fixtures}`"),
        }
    };
    let bytes =
        fs::read(&recipe_path).map_err(|e| damaged(format!("its recipe cannot be read ({e})")))?;
    if !fixture::checksum_matches(&bytes, &meta.checksum) {
        return Err(damaged("its recipe does not match its checksum".into()));
    }
    let loaded: Vec<Loaded> = serde_json::from_slice(&bytes)
        .map_err(|e| damaged(format!("its recipe cannot be read ({e})")))?;
    Ok(Image {
        meta,
        bytes: Vec::new(),
        loaded,
    })
}

/// A template read and verified: its metadata and the exact bytes whose checksum matched.
#[derive(Debug, Clone)]
pub struct Image {
    pub meta: Meta,
    /// The template database (SQLite); empty on PostgreSQL.
    pub bytes: Vec<u8>,
    /// PostgreSQL: the fixtures the template froze, replayed in each new tenant's transaction;
    /// empty on SQLite.
    pub loaded: Vec<Loaded>,
}

/// Reads template `name` and verifies its checksum (a mismatch is `TemplateDamaged`, exit 6). The
/// `system` template is (re)built first when missing, built from another `system` fixture, or
/// failing its checksum.
pub fn load(ws: &Workspace, name: &str) -> Result<Image> {
    names::plain("template name", name)?;
    if let super::Backend::Postgres(_) = ws.backend {
        return load_recipe(ws, name);
    }
    let (db_path, meta_path) = paths(&ws.layout, name);
    if name != SYSTEM && !db_path.exists() && !meta_path.exists() {
        // Not found before taking the lock, so that a typo leaves no lock file behind.
        return Err(not_found(db_path, name));
    }
    let _lock = lock(&ws.layout, name)?;
    recover(&ws.layout, &db_path, &meta_path)?;
    // The `system` template is derived data: whatever is wrong with it (no sidecar, an unreadable
    // one, another system fixture, a file that fails its checksum after a damaged disk or a build
    // interrupted between its renames), it is rebuilt rather than refused.
    let set = ws.migration_set()?;
    let mut meta = match read_meta(&meta_path) {
        Err(_) if name == SYSTEM => None,
        other => other?,
    };
    if name == SYSTEM && meta.as_ref().is_none_or(|m| stale(m, set).is_some()) {
        meta = Some(build_locked(
            &ws.layout,
            set,
            SYSTEM,
            &[],
            guard::STATEMENT_TIMEOUT,
        )?);
    }
    let Some(mut meta) = meta else {
        return Err(Error::FileNotFound {
            what: "template",
            path: db_path,
            hint: format!(
                "no template '{name}'; see `monkctl template list`, or build it with `monkctl template build {name} --fixture ...`"
            ),
        });
    };
    if name != SYSTEM {
        refuse_other_version(&meta, set)?;
    }
    let mut bytes = read_if_exists(&db_path)?;
    if name == SYSTEM && !matches(&bytes, &meta) {
        meta = build_locked(&ws.layout, set, SYSTEM, &[], guard::STATEMENT_TIMEOUT)?;
        bytes = read_if_exists(&db_path)?;
    }
    let Some(bytes) = bytes.filter(|b| fixture::checksum_matches(b, &meta.checksum)) else {
        let fixtures: String = meta
            .fixtures
            .iter()
            .map(|f| format!(" --fixture {}", f.name))
            .collect();
        return Err(Error::TemplateDamaged {
            path: db_path,
            detail: format!(
                "template '{name}' fails its checksum (its sidecar records {}): the file was damaged, or its last build was interrupted; rebuild it with `monkctl template build {name}{fixtures}`",
                meta.checksum
            ),
        });
    };
    Ok(Image {
        meta,
        bytes,
        loaded: Vec::new(),
    })
}

/// The sidecar of a build between its two renames (see `build_locked`).
fn pending_path(meta_path: &Path) -> PathBuf {
    fsutil::with_suffix(meta_path, ".pending")
}

/// Finishes a build that stopped between its renames: when a pending sidecar matches the
/// database in place, it becomes the sidecar. Call with the template's lock held.
fn recover(layout: &Layout, db_path: &Path, meta_path: &Path) -> Result<()> {
    let pending = pending_path(meta_path);
    let Ok(Some(next)) = read_meta(&pending) else {
        return Ok(());
    };
    if matches(&read_if_exists(db_path)?, &next) {
        fs::rename(&pending, meta_path).at(meta_path)?;
        fsutil::sync_dir(&layout.templates_dir())?;
    }
    Ok(())
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn matches(bytes: &Option<Vec<u8>>, meta: &Meta) -> bool {
    bytes
        .as_ref()
        .is_some_and(|b| fixture::checksum_matches(b, &meta.checksum))
}

/// The deployment's migrations as a template records them: `V<version>:<checksum>` each.
fn set_fingerprint(set: &MigrationSet) -> Vec<String> {
    set.migs
        .iter()
        .map(|m| format!("V{}:{}", m.version, m.checksum))
        .collect()
}

/// Why a template no longer matches this deployment, if it does not: another `system` fixture,
/// or a migration set that moved on (another latest version, or migrations added or edited
/// since it was built; a sidecar from before migrations were recorded is judged by version).
fn stale(meta: &Meta, set: &MigrationSet) -> Option<String> {
    stale_against(meta, set, super::system::SYSTEM_SQL)
}

/// `stale` against the `system` fixture of a backend (its SQL): the version recorded is that
/// SQL's checksum, in the current form or the earlier one (`fixture::checksum_matches`).
fn stale_against(meta: &Meta, set: &MigrationSet, system_sql: &str) -> Option<String> {
    if !fixture::checksum_matches(system_sql.as_bytes(), &meta.system_version) {
        return Some(format!(
            "it was built from system fixture {}, but this monkctl has {}",
            meta.system_version,
            fixture::checksum_hex(system_sql.as_bytes())
        ));
    }
    let latest = set.latest();
    if meta.schema_version != latest {
        return Some(format!(
            "it was built at tenant schema version {}, but the deployment's migrations are at version {latest}",
            meta.schema_version
        ));
    }
    if !meta.migrations.is_empty() && meta.migrations != set_fingerprint(set) {
        return Some(
            "the deployment's migrations were added to or edited since it was built".to_string(),
        );
    }
    None
}

/// A user template that no longer matches the deployment's schema would give tenants a schema
/// the deployment does not create (and the registry would record them as if it did): it is
/// refused (exit 7) until rebuilt. The `system` template is rebuilt instead, as it holds nothing
/// but derived data.
fn refuse_other_version(meta: &Meta, set: &MigrationSet) -> Result<()> {
    refuse_stale(meta, stale(meta, set))
}

fn refuse_stale(meta: &Meta, why: Option<String>) -> Result<()> {
    let Some(why) = why else {
        return Ok(());
    };
    let fixtures: String = meta
        .fixtures
        .iter()
        .map(|f| format!(" --fixture {}", f.name))
        .collect();
    Err(Error::Unsupported(format!(
        "template '{}' is stale: {why}; rebuild it with `monkctl template build {}{fixtures}`",
        meta.name, meta.name
    )))
}

/// Gives the rows of `FRESH_ID_TABLES` fresh ids and rewrites the foreign keys that point at them.
fn regenerate_ids(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS monk_idmap (old TEXT PRIMARY KEY, new TEXT NOT NULL)",
    )?;
    let tables = super::db::user_tables(conn)?;
    let mut refs: Vec<(String, String, String)> = Vec::new();
    {
        let mut st =
            conn.prepare("SELECT \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1)")?;
        for t in &tables {
            let rows = st.query_map([t], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })?;
            for r in rows {
                let (target, from, to) = r?;
                if FRESH_ID_TABLES.contains(&target.as_str())
                    && to.as_deref().is_none_or(|c| c == "id")
                {
                    refs.push((t.clone(), from, target));
                }
            }
        }
    }
    for t in FRESH_ID_TABLES {
        if !tables.iter().any(|x| x == t) {
            continue;
        }
        let q = super::db::quote_ident(t);
        conn.execute_batch(&format!(
            "DELETE FROM temp.monk_idmap;
             INSERT INTO temp.monk_idmap (old, new) SELECT id, monk_uuid() FROM {q};
             UPDATE {q} SET id = (SELECT new FROM temp.monk_idmap WHERE old = {q}.id);"
        ))?;
        for (table, col, _) in refs.iter().filter(|r| r.2 == t) {
            let (tq, cq) = (super::db::quote_ident(table), super::db::quote_ident(col));
            conn.execute_batch(&format!(
                "UPDATE {tq} SET {cq} = (SELECT new FROM temp.monk_idmap WHERE old = {tq}.{cq}) \
                 WHERE {cq} IN (SELECT old FROM temp.monk_idmap)"
            ))?;
        }
    }
    conn.execute_batch("DROP TABLE temp.monk_idmap")
}

/// A tenant builder that clones `image`, then applies the per-tenant parts (owner user, fresh
/// ids) and `extra` fixtures (those the template does not hold) in SQLite transactions. The file
/// is not synced here: it is a private temporary file until `tenant::create_one` (which syncs it)
/// or `tenant::create_many` (which syncs a whole batch with one call) links it into place.
pub fn builder<'a>(
    image: &'a Image,
    extra: &'a [Loaded],
    limit: Duration,
) -> impl Fn(&Path, &CreateSpec) -> Result<Built> + Sync + 'a {
    move |path: &Path, spec: &CreateSpec| {
        // The file is a private temporary one: errors name the tenant, not it.
        clone_into(image, extra, path, spec, limit)
            .map_err(|e| e.renamed(path, &format!("tenant '{}'", spec.name)))
    }
}

fn clone_into(
    image: &Image,
    extra: &[Loaded],
    path: &Path,
    spec: &CreateSpec,
    limit: Duration,
) -> Result<Built> {
    let mut f = fsutil::create_private_file(path)?;
    // The copy is written as a rollback-journal database (header bytes 18-19 = 1) and edited
    // with an in-memory journal (no file; ROLLBACK TO still works for extra fixtures), then
    // switched to WAL before it is closed: opened in WAL mode, SQLite
    // would create and delete a `-wal` beside every clone, and on ext4 allocating inodes
    // next to many recently deleted ones is slower than everything else a clone does.
    let bytes = &image.bytes;
    if bytes.len() < 100 {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "the template '{}' is shorter than a database header; rebuild it",
                image.meta.name
            ),
        });
    }
    f.write_all(&bytes[..18])
        .and_then(|_| f.write_all(&[1, 1]))
        .and_then(|_| f.write_all(&bytes[20..]))
        .at(path)?;
    drop(f);
    let mut conn = db::open_clone(path)?;
    let tx = conn.transaction().at(path)?;
    let owner_id = system::add_owner(&tx, &spec.owner).at(path)?;
    regenerate_ids(&tx).at(path)?;
    let broken: i64 = tx
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .at(path)?;
    if broken > 0 {
        return Err(Error::Other(format!(
            "{}: {broken} broken foreign key(s) after giving the clone fresh ids; rebuild the template '{}'",
            path.display(),
            image.meta.name
        )));
    }
    tx.commit().at(path)?;
    conn.execute_batch("PRAGMA foreign_keys=ON;").at(path)?;
    let plan: Vec<&Loaded> = extra
        .iter()
        .filter(|l| !image.meta.fixtures.iter().any(|f| f.name == l.fixture.name))
        .collect();
    if !plan.is_empty() {
        // A template built before templates recorded their fixtures: its own count as known.
        let known: Vec<fixture::Recorded> = image
            .meta
            .fixtures
            .iter()
            .map(|f| fixture::Recorded {
                name: f.name.clone(),
                version: Some(f.version.clone()),
                deployed_at: image.meta.built_at.clone(),
            })
            .collect();
        fixture::apply_all(&mut conn, path, &plan, &known, limit)?;
    }
    db::finish_build(conn, path)?;
    let mut versions: Vec<(String, String)> =
        vec![(SYSTEM.to_string(), image.meta.system_version.clone())];
    versions.extend(
        image
            .meta
            .fixtures
            .iter()
            .map(|f| (f.name.clone(), f.version.clone())),
    );
    versions.extend(
        plan.iter()
            .map(|l| (l.fixture.name.clone(), l.fixture.version.clone())),
    );
    Ok(Built {
        owner_id,
        source_template: Some(image.meta.name.clone()),
        template_version: Some(image.meta.generation),
        fixtures: versions.iter().map(|v| v.0.clone()).collect(),
        fixture_versions: versions,
        ..Built::default()
    })
}

fn info(ws: &Workspace, name: &str, verify: bool) -> Info {
    let (db_path, meta_path) = paths_for(ws, name);
    let mut out = Info {
        name: name.to_string(),
        path: db_path.clone(),
        meta: None,
        checksum_ok: None,
        error: None,
    };
    match read_meta(&meta_path) {
        Ok(Some(m)) => {
            if verify {
                match fs::read(&db_path) {
                    Ok(b) => out.checksum_ok = Some(fixture::checksum_matches(&b, &m.checksum)),
                    Err(e) => out.error = Some(Error::io(&db_path, e).to_string()),
                }
            }
            out.meta = Some(m);
        }
        Ok(None) => {
            out.error = Some(format!(
                "no metadata file {}; rebuild or remove the template",
                meta_path.display()
            ))
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    out
}

/// `template list`: every template in `<data>/templates/` (built or half-built).
pub fn list(ws: &Workspace) -> Result<Vec<Info>> {
    let dir = ws.layout.templates_dir();
    let mut names: Vec<String> = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.contains(fsutil::TEMP_MARKER) {
            continue;
        }
        let stem = n
            .strip_suffix(".db")
            .or_else(|| n.strip_suffix(&format!(".{RECIPE_SUFFIX}")))
            .or_else(|| n.strip_suffix(".toml"))
            .map(String::from);
        if let Some(s) = stem {
            if names::plain("template name", &s).is_ok() && !names.contains(&s) {
                names.push(s);
            }
        }
    }
    names.sort();
    Ok(names.iter().map(|n| info(ws, n, false)).collect())
}

/// `template show NAME`: metadata and whether the file still matches its checksum.
pub fn show(ws: &Workspace, name: &str) -> Result<Info> {
    names::plain("template name", name)?;
    let (db_path, meta_path) = paths_for(ws, name);
    if !db_path.exists() && !meta_path.exists() {
        return Err(not_found(db_path, name));
    }
    Ok(info(ws, name, true))
}

fn not_found(path: PathBuf, name: &str) -> Error {
    Error::FileNotFound {
        what: "template",
        path,
        hint: format!("no template '{name}'; see `monkctl template list`"),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub name: String,
    pub removed: Vec<PathBuf>,
}

/// `template rm NAME`: removes the template's files (tenants cloned from it are not affected).
pub fn rm(ws: &Workspace, name: &str) -> Result<Removed> {
    names::plain("template name", name)?;
    let _lock = lock(&ws.layout, name)?;
    let (db_path, meta_path) = paths_for(ws, name);
    if !db_path.exists() && !meta_path.exists() {
        return Err(not_found(db_path, name));
    }
    let mut removed = Vec::new();
    // The metadata first: a crash in between leaves a database without metadata, which nothing
    // clones from and `template list` reports.
    for p in [pending_path(&meta_path), meta_path, db_path] {
        if p.exists() {
            fs::remove_file(&p).at(&p)?;
            removed.push(p);
        }
    }
    fsutil::sync_dir(&ws.layout.templates_dir())?;
    Ok(Removed {
        name: name.to_string(),
        removed,
    })
}
