//! Compatibility with the Monk API's own files: a created tenant against the reference files the
//! API wrote, and data directories in the API-6 layout administered in place.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::Env;
use rusqlite::Connection;

/// A private copy of a reference file (opening the original would leave `-wal`/`-shm` beside it).
fn reference(file: &str) -> PathBuf {
    static COPIES: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = COPIES.get_or_init(|| tempfile::tempdir().unwrap());
    let copy = dir.path().join(format!("{}-{file}", std::process::id()));
    let original = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/monk-api-6.2")
        .join(file);
    let tmp = dir
        .path()
        .join(format!(".{file}.{:?}", std::thread::current().id()));
    fs::copy(&original, &tmp).unwrap();
    fs::rename(&tmp, &copy).unwrap();
    copy
}

fn open_ro(p: &Path) -> Connection {
    Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn rows(conn: &Connection, sql: &str) -> Vec<Vec<String>> {
    let mut st = conn.prepare(sql).unwrap();
    let n = st.column_count();
    let out = st
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    use rusqlite::types::Value as V;
                    Ok(match r.get::<_, V>(i)? {
                        V::Null => "NULL".to_string(),
                        V::Integer(n) => n.to_string(),
                        V::Real(f) => format!("{f:?}"),
                        V::Text(t) => format!("'{t}'"),
                        V::Blob(b) => format!(
                            "x'{}'",
                            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
                        ),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    out
}

/// Everything SQLite knows of a schema, table by table, in a comparable form.
fn schema_facts(conn: &Connection, skip: &[&str]) -> Vec<String> {
    let mut facts = Vec::new();
    let objects = rows(
        conn,
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name",
    );
    for o in objects {
        let name = o[1].clone();
        let table = o[2].clone();
        if skip.iter().any(|s| table == format!("'{s}'")) {
            continue;
        }
        facts.push(format!(
            "object {} {} on {} sql {}",
            o[0], name, table, o[3]
        ));
    }
    let tables = rows(
        conn,
        "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name",
    );
    for t in tables {
        let t = t[0].trim_matches('\'').to_string();
        if skip.contains(&t.as_str()) {
            continue;
        }
        for r in rows(conn, &format!("SELECT * FROM pragma_table_info('{t}')")) {
            facts.push(format!("column {t} {r:?}"));
        }
        for r in rows(
            conn,
            &format!("SELECT * FROM pragma_foreign_key_list('{t}')"),
        ) {
            facts.push(format!("fk {t} {r:?}"));
        }
        for r in rows(
            conn,
            &format!("SELECT name, \"unique\", origin, partial FROM pragma_index_list('{t}') ORDER BY name"),
        ) {
            let idx = r[0].trim_matches('\'').to_string();
            facts.push(format!("index {t} {r:?}"));
            for c in rows(conn, &format!("SELECT * FROM pragma_index_xinfo('{idx}')")) {
                facts.push(format!("index column {idx} {c:?}"));
            }
        }
    }
    facts
}

fn assert_same<T: PartialEq + std::fmt::Debug>(ours: Vec<T>, theirs: Vec<T>, what: &str) {
    let missing: Vec<_> = theirs.iter().filter(|f| !ours.contains(f)).collect();
    let extra: Vec<_> = ours.iter().filter(|f| !theirs.contains(f)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what} differs from the API's\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
}

/// monkctl's migration history in a tenant it created (the API never reads it).
const MONKCTL_HISTORY: &str = "refinery_schema_history";

const MODEL_COLUMNS: &str = "model_name, status, description, sudo, frozen, immutable, external, \
     passthrough, access_read, access_edit, access_full, access_deny, trashed_at, deleted_at";
const FIELD_COLUMNS: &str = "model_name, field_name, type, required, default_value, description, \
     relationship_type, related_model, related_field, relationship_name, cascade_delete, \
     required_relationship, minimum, maximum, pattern, enum_values, is_array, immutable, sudo, \
     \"unique\", \"index\", tracked, searchable, transform, access_read, access_edit, access_full, \
     access_deny, trashed_at, deleted_at";

#[test]
fn a_created_tenant_matches_the_api_schema_and_system_rows() {
    let env = Env::new();
    env.ok(&["tenant", "create", "globex"]);
    let ours = open_ro(&env.tenant_file("globex"));
    let theirs = open_ro(&reference("ns_tenant_globex.db"));

    // Besides the API's tables, a created tenant holds monkctl's record of its schema version
    // (refinery's history table, which the API never reads): V1, the API 6.2 baseline.
    assert_same(
        schema_facts(&ours, &[MONKCTL_HISTORY]),
        schema_facts(&theirs, &[]),
        "schema",
    );
    assert_eq!(
        rows(&ours, "SELECT version, name FROM refinery_schema_history"),
        vec![vec!["1".to_string(), "'api_6_2_baseline'".to_string()]]
    );

    for (table, cols, order) in [
        ("models", MODEL_COLUMNS, "model_name"),
        ("fields", FIELD_COLUMNS, "model_name, field_name"),
        (
            "users",
            "id, name, auth, access, access_read, access_edit, access_full, access_deny, trashed_at, deleted_at",
            "id",
        ),
        (
            "fs",
            "parent_id, name, path, node_type, content, target, mode, size, owner_id, access_read, trashed_at, deleted_at",
            "path",
        ),
        ("sqlite_sequence", "name, seq", "name"),
    ] {
        let sql = format!("SELECT {cols} FROM {table} ORDER BY {order}");
        assert_same(rows(&ours, &sql), rows(&theirs, &sql), table);
    }
    let models: i64 = ours
        .query_row("SELECT count(*) FROM models", [], |r| r.get(0))
        .unwrap();
    let fields: i64 = ours
        .query_row("SELECT count(*) FROM fields", [], |r| r.get(0))
        .unwrap();
    assert_eq!((models, fields), (7, 68));

    // Ids are fresh uuids per tenant; timestamps have the API's two forms.
    let ids: Vec<String> = ours
        .prepare(
            "SELECT id FROM models UNION ALL SELECT id FROM fields UNION ALL SELECT id FROM fs",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(ids.iter().all(|i| i.len() == 36 && &i[14..15] == "4"));
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    let (m_created, fs_created): (String, String) = ours
        .query_row(
            "SELECT (SELECT created_at FROM models LIMIT 1), (SELECT created_at FROM fs)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(m_created.len(), "2026-11-23 03:25:53".len());
    assert!(fs_created.ends_with('Z') && fs_created.contains('T'));
}

#[test]
fn an_owned_tenant_has_the_owner_user_as_the_api_writes_it() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "--owner", "admin"]);
    let ours = open_ro(&env.tenant_file("acme"));
    let theirs = open_ro(&reference("ns_tenant_acme.db"));
    // acme also holds the user model `widgets` that the API added later; the rest is identical.
    assert_same(
        schema_facts(&ours, &[MONKCTL_HISTORY]),
        schema_facts(&theirs, &["widgets"]),
        "schema",
    );
    let sql = "SELECT name, auth, access, access_read, trashed_at FROM users ORDER BY auth";
    assert_same(rows(&ours, sql), rows(&theirs, sql), "users");
}

#[test]
fn the_infra_schema_matches_the_api_tables_it_owns() {
    let env = Env::new();
    env.ok(&["init"]);
    let ours = open_ro(&env.infra());
    let theirs = open_ro(&reference("public.db"));
    let keep = |facts: Vec<String>| -> Vec<String> {
        facts
            .into_iter()
            .filter(|f| {
                !f.contains("processes")
                    && !f.contains("auth0_identity_mappings")
                    && !f.contains("sqlite_sequence")
                    && !f.contains("refinery_schema_history")
            })
            .map(|f| {
                f.replace("CREATE TABLE IF NOT EXISTS", "CREATE TABLE")
                    .replace("CREATE INDEX IF NOT EXISTS", "CREATE INDEX")
            })
            .collect()
    };
    // monkctl adds one column the API ignores: `tenant_fixtures.version` (deployed fixture
    // versions). Everything else is the API's, to the letter.
    let ours = keep(schema_facts(&ours, &[]));
    let theirs = keep(schema_facts(&theirs, &[]));
    let table_sql = "object 'table' 'tenant_fixtures'";
    let added = |f: &String| f.starts_with(table_sql) || f.contains("\"'version'\"");
    let missing: Vec<_> = theirs
        .iter()
        .filter(|f| !ours.contains(f) && !f.starts_with(table_sql))
        .collect();
    let extra: Vec<_> = ours
        .iter()
        .filter(|f| !theirs.contains(f) && !added(f))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "infra schema differs from the API's\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
    let with_version = theirs.iter().find(|f| f.starts_with(table_sql)).map(|f| {
        f.replace(
            "NOT NULL,\n    PRIMARY",
            "NOT NULL, version TEXT,\n    PRIMARY",
        )
    });
    assert!(
        ours.iter().any(|f| Some(f) == with_version.as_ref()),
        "tenant_fixtures is the API's table plus `version TEXT`"
    );
}

/// Copies the reference files into an API-6 layout: `<data>/monk/public.db` and tenants beside.
fn api_layout_from_reference(env: &Env) -> PathBuf {
    let dir = env.data().join("monk");
    fs::create_dir_all(&dir).unwrap();
    for f in ["public.db", "ns_tenant_acme.db", "ns_tenant_globex.db"] {
        fs::copy(reference(f), dir.join(f)).unwrap();
        let mut p = fs::metadata(dir.join(f)).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o600);
        fs::set_permissions(dir.join(f), p).unwrap();
    }
    dir
}

#[test]
fn an_api6_data_directory_is_administered_in_place() {
    let env = Env::new();
    let dir = api_layout_from_reference(&env);
    let infra = dir.join("public.db");
    let before = rows(&open_ro(&infra), "SELECT * FROM tenants ORDER BY name");

    let v = env.json(&["tenant", "list"]);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["acme", "globex"]);
    assert_eq!(v[1]["status"], "pending");
    let shown = env.json(&["tenant", "show", "acme"]);
    assert_eq!(shown["owner_name"], "admin");
    assert!(shown["tables"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["table"] == "widgets" && t["row_count"] == 2));
    let cfg = env.json(&["config"]);
    assert_eq!(cfg["layout"], "api");

    // A write adopts the API's infra database: its rows are untouched, no design dirs appear.
    env.ok(&["tenant", "create", "initech", "--owner", "boss"]);
    assert!(dir.join("ns_tenant_initech.db").exists());
    assert!(!env.data().join("infra").exists());
    assert!(!env.data().join("db_main").exists());
    let conn = open_ro(&infra);
    let after = rows(
        &conn,
        "SELECT * FROM tenants WHERE name != 'initech' ORDER BY name",
    );
    assert_eq!(before, after);
    let (db, schema): (String, String) = conn
        .query_row(
            "SELECT database, schema FROM tenants WHERE name='initech'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (db.as_str(), schema.as_str()),
        ("monk", "ns_tenant_initech")
    );
    // Tables the API owns are untouched.
    let procs: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE name IN ('processes','auth0_identity_mappings')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(procs, 2);

    env.ok(&["tenant", "trash", "globex"]);
    let v = env.json(&["tenant", "delete", "acme", "--yes"]);
    assert!(!dir.join("ns_tenant_acme.db").exists());
    let id = v["id"].as_str().unwrap();
    assert!(env
        .data()
        .join(format!("trash/ns_tenant_acme.{id}.db"))
        .exists());
    env.fails(&["tenant", "create", "acme"], 4);
}

#[test]
fn an_api6_directory_built_from_the_spec_and_an_older_registry_without_status() {
    // Build the API-6 layout from our own code: the registry as an older API wrote it (no
    // `status` column) and a tenant file made by the system builder, placed where the row says.
    let env = Env::new();
    let dir = env.data().join("prod");
    fs::create_dir_all(&dir).unwrap();
    let infra = Connection::open(dir.join("public.db")).unwrap();
    infra
        .execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE tenants (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE,
               db_type TEXT DEFAULT 'sqlite' NOT NULL, database TEXT NOT NULL, schema TEXT NOT NULL,
               template_version INTEGER DEFAULT 1 NOT NULL, description TEXT, source_template TEXT,
               owner_id TEXT NOT NULL, is_active INTEGER DEFAULT 1 NOT NULL,
               created_at TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
               updated_at TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL, trashed_at TEXT, deleted_at TEXT,
               UNIQUE(database, schema));
             CREATE TABLE tenant_fixtures (tenant_id TEXT NOT NULL, fixture_name TEXT NOT NULL,
               deployed_at TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, fixture_name));
             INSERT INTO tenants (id, name, database, schema, owner_id, is_active)
               VALUES ('11111111-1111-4111-8111-111111111111', 'legacy', 'prod', 'ns_tenant_legacy',
                       '00000000-0000-0000-0000-000000000000', 1),
                      ('22222222-2222-4222-8222-222222222222', 'paused', 'prod', 'ns_tenant_paused',
                       '00000000-0000-0000-0000-000000000000', 0);",
        )
        .unwrap();
    drop(infra);
    for t in ["legacy", "paused"] {
        monkctl::core::system::build(
            &dir.join(format!("ns_tenant_{t}.db")),
            "root",
            &monkctl::core::migrate::MigrationSet::builtin(),
        )
        .unwrap();
    }
    let v = env.json(&["--database-url", "sqlite:prod", "tenant", "list", "--all"]);
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    env.ok(&["--database-url", "sqlite:prod", "tenant", "create", "fresh"]);
    let conn = open_ro(&dir.join("public.db"));
    let statuses = rows(&conn, "SELECT name, status FROM tenants ORDER BY name");
    assert_eq!(
        statuses,
        vec![
            vec!["'fresh'".to_string(), "'active'".to_string()],
            vec!["'legacy'".to_string(), "'active'".to_string()],
            vec!["'paused'".to_string(), "'suspended'".to_string()],
        ]
    );
    assert!(dir.join("ns_tenant_fresh.db").exists());
    let shown = env.json(&["--database-url", "sqlite:prod", "tenant", "show", "legacy"]);
    assert_eq!(shown["file_exists"], true);
}

#[test]
fn a_hand_edited_row_cannot_point_outside_the_data_directory() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme"]);
    env.open(&env.infra())
        .execute("UPDATE tenants SET database = '..' WHERE name = 'acme'", [])
        .unwrap();
    let err = env.fails(&["tenant", "show", "acme"], 2);
    assert!(err.contains("tenants.database"), "{err}");
    let err = env.fails(&["tenant", "delete", "acme", "--yes"], 2);
    assert!(err.contains("tenants.database"), "{err}");
}

#[test]
fn a_hand_edited_row_cannot_point_at_monkctls_own_files() {
    let env = Env::new();
    env.ok(&["tenant", "create", "acme", "victim"]);
    env.ok(&["template", "build", "plain"]);
    let infra_before = fs::read(env.infra()).unwrap();
    for (database, schema) in [
        ("infra", "monk"),
        ("infra", "ns_tenant_monk"),
        ("templates", "ns_tenant_plain"),
        ("db_main", "public"),
    ] {
        env.open(&env.infra())
            .execute(
                "UPDATE tenants SET database = ?1, schema = ?2 WHERE name = 'victim'",
                [database, schema],
            )
            .unwrap();
        for args in [
            &["tenant", "delete", "victim", "--yes"][..],
            &["tenant", "show", "victim"],
            &["extract", "victim", "-o", "/dev/null"],
        ] {
            let err = env.fails(args, 2);
            assert!(
                err.contains("tenants.database") || err.contains("tenants.schema"),
                "{args:?}: {err}"
            );
        }
        assert!(env.infra().exists());
        assert!(env.data().join("templates/plain.db").exists());
    }
    // The registry is still there and readable, and the other tenant untouched.
    let v = env.json(&["tenant", "list"]);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(env.tenant_file("acme").exists());
    assert_eq!(fs::read(env.infra()).unwrap().len(), infra_before.len());
}

#[test]
fn reading_an_api_registry_in_rollback_journal_mode_does_not_change_it() {
    let env = Env::new();
    let dir = api_layout_from_reference(&env);
    let infra = dir.join("public.db");
    Connection::open(&infra)
        .unwrap()
        .execute_batch("PRAGMA journal_mode=DELETE")
        .unwrap();
    let before = fs::read(&infra).unwrap();
    env.ok(&["tenant", "list", "--all"]);
    env.ok(&["tenant", "show", "globex"]);
    env.ok(&["config"]);
    assert_eq!(
        fs::read(&infra).unwrap(),
        before,
        "a read-only command changed public.db"
    );
    assert!(!dir.join("public.db-wal").exists());
}
